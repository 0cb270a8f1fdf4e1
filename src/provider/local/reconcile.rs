//! Live Clique reconciliation of local networks ([`crate::provider::clique_drift`]) over
//! each validator's IPC socket; a dead validator is restarted by the same apply.

use super::*;
use crate::provider::clique_drift::{self, LiveSigners, SignerDrift};

/// The validators' Clique API over IPC.
pub(super) struct Ipc;

impl LiveSigners for Ipc {
    fn recorded(&self, st: &State) -> BTreeSet<String> {
        recorded_nodes(st).into_iter().map(|(n, _)| n).collect()
    }
    fn restartable(&self, _st: &State, _node: &str) -> bool {
        true
    }
    fn read(&self, st: &State, node: &str) -> Option<(Vec<Address>, Vec<rpc::CliqueProposal>)> {
        let o = NodeOutputs::from_state(st, node).filter(NodeOutputs::is_running)?;
        let rpc = o.control().with_timeout(PROBE_TIMEOUT);
        Some((rpc.clique_get_signers().ok()?, rpc.clique_proposals().ok()?))
    }
    fn discard(&self, st: &State, node: &str, target: &Address) {
        if let Some(o) = NodeOutputs::from_state(st, node) {
            let _ = o
                .control()
                .with_timeout(PROBE_TIMEOUT)
                .clique_discard(target);
        }
    }
}

/// Compares the live chain with `topology` and `st` (see [`SignerDrift`]).
pub(super) fn signer_drift(topology: &Topology, st: &State) -> SignerDrift {
    clique_drift::signer_drift(topology, st, &Ipc)
}

impl LocalProvider {
    /// Applies the `clique` resource (see [`clique_drift::reconcile`]).
    pub(super) fn reconcile_signers(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        if change.action == Action::Destroy {
            return Ok(None);
        }
        let signers = self.reconcile_live(ctx)?;
        Ok(Some(clique_drift::record(change, signers)))
    }

    /// Discards every pending proposal, votes the live signer set to the topology's,
    /// checks the result and discards again; returns the live signers.
    pub(super) fn reconcile_live(&self, ctx: &ApplyCtx) -> Result<Vec<String>, ProviderError> {
        clique_drift::reconcile(ctx, &Ipc, &|label, a, authorize| {
            self.vote(
                ctx,
                clique_drift::CLIQUE_ADDR,
                label,
                &rpc::hex_address(a),
                authorize,
            )
            .map(drop)
        })
    }
}
