//! Funding accounts added after genesis.

use super::*;

impl LocalProvider {
    /// Funds an account added after genesis with a transfer signed by the funding account
    /// (`provider::funding::apply_funding`), sent through a running node.
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
        crate::provider::funding::apply_funding(ctx, change, |f, st| {
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

    /// Fundings planned as creates whose recipient already holds the amount: an
    /// interrupted run's transfer was mined (`provider::funding::earlier_transfer` says the same
    /// at apply, which then only records it). Read through any running node; an account
    /// not in state yet has no address, so it cannot have been funded.
    pub(super) fn mined_fundings(
        &self,
        topology: &Topology,
        state: &State,
        changes: &[Change],
    ) -> BTreeMap<String, String> {
        let fundings: Vec<&Change> = changes
            .iter()
            .filter(|c| c.kind == Kind::Funding && c.action == Action::Create)
            .collect();
        if fundings.is_empty() {
            return BTreeMap::new();
        }
        let live: BTreeSet<String> = topology.nodes().into_iter().map(|n| n.name).collect();
        let Some(rpc) = recorded_nodes(state)
            .into_iter()
            .filter(|(n, o)| live.contains(n) && o.is_running() && !o.ipc_path.is_empty())
            .map(|(_, o)| o.control().with_timeout(PROBE_TIMEOUT))
            .find(|c| c.block_number().is_ok())
        else {
            return BTreeMap::new();
        };
        let mut done = BTreeMap::new();
        for c in fundings {
            let attrs = c.after.clone().unwrap_or_default();
            let get = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
            let (member, name) = (get("member"), get("name"));
            let Ok(amount) = get("balance").parse::<u128>() else {
                continue;
            };
            let Some(to) = state
                .output_str(&format!("account.{member}.{name}"), "address")
                .and_then(rpc::parse_address)
            else {
                continue;
            };
            if let Ok(held) = rpc.eth_get_balance(&to, BlockId::Latest) {
                if crate::provider::funding::already_funded(held, amount) {
                    done.insert(
                        c.addr.clone(),
                        format!(
                            "already on the chain: {member}/{name} holds {} (an earlier \
                             run's transfer was mined); apply only records it, sending nothing",
                            crate::topology::Wei(held)
                        ),
                    );
                }
            }
        }
        done
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
