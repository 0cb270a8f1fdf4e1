//! The consensus rules, in one room: which signer seals when, how the signer set changes
//! (votes and their resumption), and what keeps a chain live. Clique (geth's proof of
//! authority) is the one engine today; this folder is the seam a second one would plug
//! into.
//!
//! Nothing here knows where a node runs or how it is reached: the rules take what they
//! need as values (signer addresses, heads) or through a control channel a provider
//! implements (geth's IPC socket locally, VM Run Command on Azure). The consensus room
//! sits below `provider` and `plan` and imports neither.

pub mod control;
pub mod drift;
pub mod liveness;
pub mod sealing;
pub mod votes;
