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
        if change.action != Action::Destroy {
            // Validators this apply restarted (after an interrupted destroy, say) seal only
            // once told to: the transfer needs blocks.
            self.seal_now(ctx);
        }
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
            // The highest head among the running nodes: a node this apply (re)created may
            // still be syncing, and its stale balance would have the account paid twice.
            recorded_nodes(st)
                .into_iter()
                .filter(|(_, o)| o.is_running())
                .map(|(n, o)| {
                    let rpc = o.control();
                    (rpc.block_number().ok(), funder_nodes.contains(&n), rpc)
                })
                .max_by_key(|(head, own, _)| (*head, *own))
                .map(|(_, _, rpc)| rpc)
                .ok_or_else(|| {
                    ProviderError::at(&change.addr, "no running node to send the transfer through")
                })
        })
    }

    /// Starts sealing on the running validators (see `after_apply`); returns once all seal,
    /// on Ctrl-C, or after the wait.
    pub(super) fn seal_now(&self, ctx: &ApplyCtx) {
        // Validators start without --mine; seal once each sees every running node, so no
        // two signers fork block 1 unseen by each other (then Clique's "signed recently"
        // rule deadlocks them). Past the wait, start the rest anyway: sealing beats halting.
        let deadline = Instant::now() + ctx.health_timeout.min(Duration::from_secs(30));
        let mut started = BTreeSet::new();
        self.sync_mesh(ctx.topology, &ctx.snapshot(), false);
        loop {
            let st = ctx.snapshot();
            let h = assess(ctx.topology, &st);
            let waiting = start_sealing(
                &h,
                &st,
                ctx.peering(),
                &mut started,
                Instant::now() >= deadline,
            );
            if waiting == 0 || Instant::now() >= deadline {
                return;
            }
            if ctx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}
