//! The consensus rules, in one room: which signer seals when, how the signer set changes
//! (votes and their resumption), and what keeps a chain live. Clique (geth's proof of
//! authority) is the one engine today; this folder is the seam a second one would plug
//! into.
//!
//! Nothing here knows where a node runs or how it is reached: the rules take what they
//! need as values (signer addresses, heads) or through a control channel a provider
//! implements (geth's IPC socket locally, VM Run Command on Azure). The consensus room
//! sits below `provider` and `plan` and imports neither.
//!
//! - [`control`]: how the rules reach a node — [`control::NodeControl`] (one channel per
//!   node: signers, proposals, propose, discard, votes on chain), which `RpcClient` and
//!   Azure's `VmControl` implement, and [`control::Validators`] (a provider's validators
//!   and which of them an apply brings back);
//! - [`votes`]: changing the signer set — vote, cast beside other operators, steering
//!   proposals, resumption, who counts as a signer, tallies and who a vote waits for;
//! - [`drift`]: the live signer set and proposals against the topology, and the
//!   reconciliation apply runs;
//! - [`sealing`]: which signer is in turn, and the order validators start sealing in;
//! - [`start`]: when restarted validators are ready to seal, from what each reports, and
//!   which group starts next;
//! - [`forks`]: which head wins a Clique fork geth does not leave, and what the others need;
//! - [`liveness`]: how many signers must be online (⌊n/2⌋+1) and when the chain is halted.

pub mod control;
pub mod drift;
pub mod forks;
pub mod liveness;
pub mod sealing;
pub mod start;
pub mod votes;
