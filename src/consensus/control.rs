//! How the consensus rules reach a node: the one channel trait ([`NodeControl`], per node)
//! that providers implement — geth's IPC socket locally ([`RpcClient`]), VM Run Command on
//! Azure — and the provider's view of which validators exist ([`Validators`]), for the
//! rules that look at all of them (signer drift).

use super::votes::snapshot_voters;
use crate::crypto::Address;
use crate::rpc::{CliqueProposal, RpcClient, RpcError};
use crate::state::State;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// Why a node could not be asked, or a vote did not pass.
#[derive(Debug, thiserror::Error)]
pub enum GovError {
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Timeout(String),
}

/// A validator's signer set and its pending proposals.
pub type CliqueView = (Vec<Address>, Vec<CliqueProposal>);

/// How consort reaches one signer's Clique API: geth's IPC socket locally
/// ([`RpcClient`]), VM Run Command on Azure. The rules of this folder are the same for both.
pub trait NodeControl: Send + Sync {
    fn signers(&self) -> Result<Vec<Address>, GovError>;
    /// The signer set and this node's pending proposals, in one look.
    fn clique_view(&self) -> Result<CliqueView, GovError>;
    fn propose(&self, target: &Address, authorize: bool) -> Result<(), GovError>;
    fn discard(&self, target: &Address) -> Result<(), GovError>;
    /// The signers whose vote about `target` (`authorize`) is on chain now, when this
    /// channel can tell at every poll (over IPC; not by Run Command, which takes seconds).
    fn voters(&self, _target: &Address, _authorize: bool) -> Option<BTreeSet<Address>> {
        None
    }
    /// How long to wait between two looks at the signer set (a Run Command takes seconds).
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(200)
    }
}

impl NodeControl for RpcClient {
    fn signers(&self) -> Result<Vec<Address>, GovError> {
        Ok(self.clique_get_signers()?)
    }
    fn clique_view(&self) -> Result<CliqueView, GovError> {
        Ok((self.clique_get_signers()?, self.clique_proposals()?))
    }
    fn propose(&self, target: &Address, authorize: bool) -> Result<(), GovError> {
        Ok(self.clique_propose(target, authorize)?)
    }
    fn discard(&self, target: &Address) -> Result<(), GovError> {
        Ok(self.clique_discard(target)?)
    }
    fn voters(&self, target: &Address, authorize: bool) -> Option<BTreeSet<Address>> {
        let snapshot = self.call_raw("clique_getSnapshot", json!([null])).ok()?;
        Some(snapshot_voters(&snapshot, target, authorize))
    }
}

/// A provider's validators, as the rules that look at all of them need them: which nodes
/// state records, which an apply brings back by itself, and the channel to each.
pub trait Validators: Sync {
    /// The nodes state records (whether or not they answer now).
    fn recorded(&self, st: &State) -> BTreeSet<String>;
    /// Whether an apply brings `node` back by itself when it does not answer (the local
    /// provider restarts a dead process in the same apply).
    fn restartable(&self, _st: &State, _node: &str) -> bool {
        false
    }
    /// The channel to `node` (None: it cannot be reached now).
    fn node_control<'a>(&'a self, st: &State, node: &str) -> Option<Box<dyn NodeControl + 'a>>;
    /// The signer set and pending proposals `node` reports (None: it does not answer).
    fn read(&self, st: &State, node: &str) -> Option<CliqueView> {
        self.node_control(st, node)?.clique_view().ok()
    }
    /// Drops `node`'s pending proposal about `target` (best effort).
    fn discard(&self, st: &State, node: &str, target: &Address) {
        if let Some(c) = self.node_control(st, node) {
            let _ = c.discard(target);
        }
    }
}
