//! A consortium of separate operators: `invite` → `join` → `admit`.
//!
//! - [`bundle`]: the two files operators exchange — the invitation (network, genesis,
//!   reachable enodes, the invited member, expiry, a random id) and the join request (the
//!   joiner's enodes, signer addresses and accounts) — and their canonical encoding.
//! - [`sign`]: signatures over those encodings: EIP-191 `personal_sign` of
//!   keccak256(canonical JSON), by a signer key of the inviting operator (invite) and by
//!   each signer key of the joiner (request: proof that it holds them).
//! - [`flow`]: what each command does with them — build an invitation from a running
//!   network, write a joiner's topology and seed its state with the invitation's genesis,
//!   build and check a join request.
//!
//! Neither file holds a secret: keys never leave the operator's state directory.

pub mod bundle;
pub mod flow;
pub mod sign;

pub use bundle::{Invite, JoinRequest};

/// Why an invitation or a join request is refused. Every message says what is wrong and
/// what to do; nothing has been changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn refused(msg: impl Into<String>) -> JoinError {
    JoinError::Refused(msg.into())
}
