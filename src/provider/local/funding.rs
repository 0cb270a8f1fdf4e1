//! Funding accounts added after genesis.

use super::*;

impl LocalProvider {
    /// Funds an account added after genesis with a transfer signed by the funding account
    /// (`governance::apply_funding`), sent through a running node.
    pub(super) fn apply_funding(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        governance::apply_funding(ctx, change, |f, st| {
            // Any running node of the network will do; prefer the funding member's own:
            // they were running before this change, so they are synced (a node that just
            // started may not be, and would give a stale nonce and balance).
            let funder_nodes: BTreeSet<String> = ctx
                .topology
                .nodes()
                .into_iter()
                .filter(|n| n.member == f.funder_member)
                .map(|n| n.name)
                .collect();
            recorded_nodes(st)
                .into_iter()
                .filter(|(_, o)| o.is_running())
                .min_by_key(|(n, _)| !funder_nodes.contains(n))
                .map(|(_, o)| o.control())
                .ok_or_else(|| {
                    ProviderError::at(&change.addr, "no running node to send the transfer through")
                })
        })
    }
}
