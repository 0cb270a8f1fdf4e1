//! Funding accounts added after genesis.

use super::*;

impl LocalProvider {
    /// Funds an account added after genesis with a transfer signed by the funding account.
    pub(super) fn apply_funding(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let addr = change.addr.as_str();
        let st = ctx.snapshot();
        match change.action {
            // A transfer cannot be undone; forgetting it is all a destroy can do.
            Action::Destroy => return Ok(None),
            Action::Update => return Ok(st.resources.get(addr).cloned()),
            Action::Create | Action::Replace => {}
        }
        let attrs = change.after.clone().unwrap_or(json!({}));
        let governance::Funding {
            member,
            name,
            funder: from,
            funder_member: fm,
            key,
            to,
            amount,
        } = governance::funding_parties(change, &st).map_err(|m| ProviderError::at(addr, m))?;
        // Any running node of the network will do; prefer the funding member's own: they
        // were running before this change, so they are synced (a node that just started
        // may not be, and would give a stale nonce and balance).
        let funder_nodes: BTreeSet<String> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.member == fm)
            .map(|n| n.name)
            .collect();
        let nodes = recorded_nodes(&st);
        let (_, node) = nodes
            .iter()
            .filter(|(_, o)| o.is_running())
            .min_by_key(|(n, _)| !funder_nodes.contains(n))
            .ok_or_else(|| {
                ProviderError::at(addr, "no running node to send the transfer through")
            })?;
        let rpc = node.control();
        let from_addr = key.address();
        let hash = governance::fund(
            &rpc,
            ctx.topology.network.chain_id,
            &from,
            &key,
            &format!("{member}/{name}"),
            to,
            amount,
            ctx.health_timeout,
        )
        .map_err(|e| ProviderError::at(addr, e.to_string()))?;
        Ok(Some(ResourceState {
            kind: Kind::Funding,
            attrs,
            // tx_hash is null when an earlier, interrupted run's transfer had already landed.
            outputs: json!({ "tx_hash": hash, "from": rpc::hex_address(&from_addr) }),
            deps: change.deps.clone(),
        }))
    }
}
