//! Live Clique reconciliation of local networks ([`crate::consensus::drift`]) over each
//! validator's IPC socket; a dead validator is restarted by the same apply.

use super::*;
use crate::consensus::control::{NodeControl, Validators};
use crate::consensus::drift::{self, SignerDrift};
use crate::provider::clique;

/// The validators' Clique API over IPC.
pub(super) struct Ipc;

impl Validators for Ipc {
    fn recorded(&self, st: &State) -> BTreeSet<String> {
        recorded_nodes(st).into_iter().map(|(n, _)| n).collect()
    }
    fn restartable(&self, _st: &State, _node: &str) -> bool {
        true
    }
    /// A running node's IPC socket.
    fn node_control<'a>(&'a self, st: &State, node: &str) -> Option<Box<dyn NodeControl + 'a>> {
        let o = NodeOutputs::from_state(st, node).filter(NodeOutputs::is_running)?;
        Some(Box::new(o.control().with_timeout(PROBE_TIMEOUT)))
    }
}

/// Compares the live chain with `topology` and `st` (see [`SignerDrift`]).
pub(super) fn signer_drift(topology: &Topology, st: &State) -> SignerDrift {
    drift::signer_drift(topology, st, &Ipc)
}

impl LocalProvider {
    /// Applies the `clique` resource (see [`drift::reconcile`]).
    pub(super) fn reconcile_signers(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        if change.action == Action::Destroy {
            return Ok(None);
        }
        let signers = self.reconcile_live(ctx)?;
        Ok(Some(clique::record(change, signers)))
    }

    /// Discards every pending proposal, votes the live signer set to the topology's,
    /// checks the result and discards again; returns the live signers.
    pub(super) fn reconcile_live(&self, ctx: &ApplyCtx) -> Result<Vec<String>, ProviderError> {
        clique::reconcile(ctx, &Ipc, &|label, a, authorize| {
            self.vote(
                ctx,
                clique::CLIQUE_ADDR,
                label,
                &rpc::hex_address(a),
                authorize,
            )
            .map(drop)
        })
    }
}
