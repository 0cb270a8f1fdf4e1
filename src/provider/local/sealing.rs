//! Sealing and Clique votes over IPC: starting validators' sealing (in the order of
//! [`crate::consensus::sealing`]), start-up fork repair, and signer votes (the rules of
//! [`crate::consensus::votes`], cast through each validator's IPC socket).

use super::*;
use crate::consensus::sealing;

impl LocalProvider {
    /// Returns once a validator has sealed block 1 (at once on a running chain), starting
    /// the validators' sealing itself when they are all up and peered; gives up when a
    /// change failed, on Ctrl-C or after 30 s (the node then starts anyway).
    ///
    /// Why tx nodes of a new network wait for it: geth accepts propagated blocks only once it
    /// counts itself synced, which a node that does not seal becomes only through a sync from
    /// a peer that is ahead — noticed at the peer handshake, or when a propagated block's
    /// *parent* is ahead. Started with the validators, a tx node meets them at block 0 and
    /// stays there until block 2 arrives, one Clique period after block 1. Started after
    /// block 1, it syncs at its first handshake.
    ///
    /// Up to `parallelism` tx nodes wait here together: one of them at a time (the holder of
    /// `sealing_started`) copies state and asks the validators, the others only look at
    /// `first_block_seen`. (Each asking every validator every 50 ms cost 16 × 170 IPC calls
    /// per poll at 250 nodes, on the cores the validators were starting on.)
    pub(super) fn await_first_block(&self, ctx: &ApplyCtx) {
        use std::sync::atomic::Ordering::SeqCst;
        let validators: Vec<String> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.role == Role::Validator)
            .map(|n| n.name)
            .collect();
        let deadline = Instant::now() + ctx.health_timeout.min(Duration::from_secs(30));
        let (mut nudges, mut last_nudge) = (0u32, Instant::now());
        loop {
            if self.first_block_seen.load(SeqCst)
                || ctx.failed.load(SeqCst)
                || ctx.interrupted.load(SeqCst)
            {
                return;
            }
            if let Ok(mut started) = self.sealing_started.try_lock() {
                let st = ctx.snapshot();
                let recorded: BTreeMap<String, NodeOutputs> =
                    recorded_nodes(&st).into_iter().collect();
                let running: Vec<&NodeOutputs> = validators
                    .iter()
                    .filter_map(|v| recorded.get(v))
                    .filter(|o| o.is_running())
                    .collect();
                let sealed = running.iter().any(|o| {
                    o.control()
                        .with_timeout(PROBE_TIMEOUT)
                        .block_number()
                        .is_ok_and(|b| b >= 1)
                });
                if sealed {
                    self.first_block_seen.store(true, SeqCst);
                    return;
                }
                if running.len() == validators.len() {
                    let h = assess(ctx.topology, &st);
                    start_sealing(&h, &st, ctx.peering(), &mut started, false);
                    // Sealing waits for every planned validator pair: a dial lost at start
                    // must not hold it for geth's 35 s redial (see `sync_mesh`).
                    if last_nudge.elapsed() > Duration::from_secs(3) {
                        nudges += 1;
                        self.sync_mesh(ctx.topology, &st, nudges % 2 == 0);
                        last_nudge = Instant::now();
                    }
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Validators that started sealing at the same moment can each end up on their own
    /// block 1: geth drops blocks propagated before a node counts itself synced (mining
    /// start), and a propagated block does not tell the receiver its weight, so nobody
    /// learns of the heavier fork and every signer has "signed recently" on its own. Only
    /// a new handshake (which carries the total difficulty) lets a node sync to the
    /// heaviest fork, so restart each validator whose head is not the heaviest block.
    /// (Sealing starts only once peered, which makes this rare: a validator whose
    /// `miner_start` comes a few ms after the in-turn signer sealed still drops that block.)
    ///
    /// Two heads of *equal* weight never resolve (see `forks`): a validator on a rival of
    /// the winning head is first rewound below the fork with `debug_setHead`, then
    /// restarted the same way. Returns the restarted nodes.
    pub(super) fn repair_forks(&self, ctx: &ApplyCtx) -> Result<Vec<String>, ProviderError> {
        let st = ctx.snapshot();
        let validators: Vec<(NodeSpec, NodeOutputs, consensus::forks::Head)> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.role == Role::Validator)
            .filter_map(|n| {
                let o = NodeOutputs::from_state(&st, &n.name)?;
                if !o.is_running() {
                    return None;
                }
                let b = o
                    .control()
                    .with_timeout(PROBE_TIMEOUT)
                    .block_by_number(BlockId::Latest)
                    .ok()??;
                let head = consensus::forks::Head {
                    node: n.name.clone(),
                    number: b.number,
                    hash: b.hash,
                    total_difficulty: b.total_difficulty?,
                };
                Some((n, o, head))
            })
            .collect();
        let heads: Vec<consensus::forks::Head> =
            validators.iter().map(|(_, _, h)| h.clone()).collect();
        let Some((best, repairs)) = consensus::forks::plan(&heads) else {
            return Ok(vec![]);
        };
        let winner = validators
            .iter()
            .find(|(_, _, h)| h.node == best.node)
            .map(|(_, o, _)| o.control().with_timeout(PROBE_TIMEOUT))
            .expect("the winner is one of the heads");
        let mut restarted = Vec::new();
        for (head, repair) in repairs {
            let (spec, o, _) = validators
                .iter()
                .find(|(_, _, h)| h.node == head.node)
                .expect("a repair names one of the heads");
            let addr = format!("node.{}", spec.name);
            let message = match repair {
                consensus::forks::Repair::Restart => format!(
                    "{addr}: stuck on a competing block {} while the heaviest chain is at block {} (a geth start-up race between signers); restarting it so it syncs to that chain",
                    head.number, best.number
                ),
                consensus::forks::Repair::Rewind => {
                    let rpc = o.control().with_timeout(PROBE_TIMEOUT);
                    let to = forks::rewind_to_common_ancestor(
                        &rpc,
                        &winner,
                        head.number.min(best.number),
                    )
                    .map_err(|e| ProviderError::at(&addr, e))?;
                    format!(
                        "{addr}: stuck on block {} ({}), as heavy as block {} ({}) of {} that the other signers are on, and neither grows (every signer on each side signed recently: a Clique fork geth does not leave); rewound it to block {to} (debug_setHead) and restarting it so it syncs to that chain",
                        head.number,
                        health::short_hash(&head.hash),
                        best.number,
                        health::short_hash(&best.hash),
                        best.node
                    )
                }
            };
            ctx.emit(Event::Warning { message });
            let datadir = super::node_dir(ctx.state_dir, &spec.name);
            process::stop(o.process(), &datadir, STOP_GRACE)
                .map_err(|e| ProviderError::at(&addr, e.to_string()))?;
            let geth = o.geth_binary();
            let (id, ports, statics) =
                self.launch_with_retries(ctx, &addr, spec, &datadir, &geth, o.ports)?;
            let enode_id = st
                .output_str(&format!("key.node.{}", spec.name), "enode_id")
                .unwrap_or_default()
                .to_string();
            let out = Self::outputs(ctx, &datadir, id, ports, &enode_id, statics, &geth);
            let mut guard = ctx.state.lock().unwrap();
            if let Some(r) = guard.resources.get_mut(&addr) {
                r.outputs = serde_json::to_value(out).expect("outputs serialise");
            }
            ctx.state_dir.save(&mut guard)?;
            restarted.push(spec.name.clone());
        }
        Ok(restarted)
    }

    /// `signer.<n>` (see `signer::apply_signer`): votes over IPC.
    pub(super) fn apply_signer(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let st = ctx.snapshot();
        signer::apply_signer(change, &st, ctx.topology, |node, a, authorize| {
            // With other operators, ours may be cast only: the `clique` resource and
            // `status` follow the vote until theirs come.
            Ok(if self.vote(ctx, &change.addr, node, a, authorize)? {
                "vote"
            } else {
                "vote (cast, waiting for other operators)"
            })
        })
    }

    /// This operator's running signer nodes.
    fn own_signer_nodes(st: &State) -> Vec<SignerNode> {
        recorded_nodes(st)
            .into_iter()
            .filter(|(_, o)| o.is_running())
            .filter_map(|(n, o)| {
                let a = st.output_str(&format!("key.signer.{n}"), "address")?;
                Some(SignerNode {
                    address: rpc::parse_address(a)?,
                    control: std::sync::Arc::new(o.control()),
                    name: n,
                })
            })
            .collect()
    }

    /// A Clique vote: every running validator of ours that is a current signer proposes
    /// (the target too, when voting itself out). Alone in the network
    /// (`consensus::votes::vote`) a majority is required, then it waits until
    /// `clique_getSigners` reflects it and discards the proposals. With other operators'
    /// signers (`consensus::votes::cast`) ours vote alone only when they are a majority, else
    /// they propose and nothing waits. Returns whether the vote has taken effect.
    pub(super) fn vote(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        node: &str,
        address: &str,
        authorize: bool,
    ) -> Result<bool, ProviderError> {
        let target = rpc::parse_address(address)
            .ok_or_else(|| ProviderError::at(addr, format!("{address:?} is not an address")))?;
        let candidates = Self::own_signer_nodes(&ctx.snapshot());
        let external = ctx.topology.has_external_members();
        if candidates.is_empty() {
            if external {
                // A member that joined and has no signer yet: the others vote.
                return Ok(false);
            }
            return Err(ProviderError::at(
                addr,
                "no running signer can vote; bring the validators back (`consort apply`) first",
            ));
        }
        let e = |e: GovError| ProviderError::at(addr, e.to_string());
        if external {
            let t = ctx.health_timeout;
            return consensus::votes::cast(&candidates, target, authorize, t, node, &ctx.events)
                .map(|c| c == consensus::votes::Cast::Done)
                .map_err(e);
        }
        step(ctx, node, if authorize { "vote in" } else { "vote out" });
        signer::vote_in_apply(ctx, &candidates, target, authorize, node)
            .map(|_| true)
            .map_err(e)
    }
}

/// Starts sealing (`miner_start`) on the running validators not yet in `started`, all at
/// once and only when every one of them is ready: its signer account unlocked and peered
/// with every running node the peering plan gives it (with `force`: the ready ones,
/// whatever the others do).
/// Idempotent in geth. Returns how many running validators still wait.
///
/// Why all at once: geth drops propagated blocks until it counts itself synced, which a
/// node without `--mine` does only when mining starts. A validator started seconds after
/// the others drops their block 1, seals its own, and the signers fork; each then has
/// "signed recently" on its own fork and the chain never moves. Why the unlock check:
/// geth unlocks `--unlock` accounts a moment after its RPC is up, a seal tried before that
/// fails, and geth's Clique worker does not retry without new transactions.
///
/// Why the next block's in-turn signer goes last (see `in_turn_last`): "at once" is 40
/// IPC calls on a busy machine, spread over ~150 ms. The in-turn signer seals the moment
/// it starts, so started first it sealed block 1 while most others had not counted
/// themselves synced yet; they dropped it and sealed their own, a split that took ~10 s to
/// heal at 60 nodes. Started after every other `miner_start` has returned (which marks that
/// node synced before it returns), its block reaches nodes that all accept it, and it
/// outweighs (difficulty 2) any out-of-turn block sealed meanwhile.
pub(super) fn start_sealing(
    h: &Health,
    st: &State,
    peering: &Peering,
    started: &mut BTreeSet<String>,
    force: bool,
) -> usize {
    let running: BTreeSet<&str> = h
        .nodes
        .iter()
        .filter(|n| n.running)
        .map(|n| n.name.as_str())
        .collect();
    let peers_running =
        |n: &str| peering.peers_of(n).filter(|p| running.contains(p)).count() as u32;
    let pending: Vec<&NodeHealth> = h
        .nodes
        .iter()
        .filter(|n| n.running && n.role == "validator" && !started.contains(&n.name))
        .collect();
    let ready: Vec<(&NodeHealth, RpcClient)> = pending
        .iter()
        .filter(|n| n.peers >= peers_running(&n.name))
        .filter_map(|n| {
            let address = st.output_str(&format!("key.signer.{}", n.name), "address")?;
            let rpc = NodeOutputs::from_state(st, &n.name)?
                .control()
                .with_timeout(PROBE_TIMEOUT);
            let unlocked = rpc.call_raw("eth_sign", json!([address, "0x00"])).is_ok();
            unlocked.then_some((*n, rpc))
        })
        .collect();
    if ready.is_empty() || (ready.len() < pending.len() && !force) {
        return pending.len();
    }
    let start = |batch: &[&(&NodeHealth, RpcClient)]| -> Vec<String> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|(n, rpc)| {
                    scope.spawn(move || {
                        rpc.call_raw("miner_start", json!([]))
                            .ok()
                            .map(|_| n.name.clone())
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        })
    };
    let last = in_turn_last(h, st, ready.iter().map(|(n, _)| n.name.as_str()));
    let (late, first): (Vec<_>, Vec<_>) = ready
        .iter()
        .partition(|(n, _)| Some(&n.name) == last.as_ref());
    let mut ok = start(&first);
    ok.extend(start(&late));
    let n = ok.len();
    started.extend(ok);
    pending.len() - n
}

/// The ready validator that is in turn for the network's next block, when there are
/// others to start before it (`start_sealing`; the rule is `consensus::sealing`'s).
fn in_turn_last<'a>(
    h: &Health,
    st: &State,
    ready: impl Iterator<Item = &'a str> + Clone,
) -> Option<String> {
    let counted = consensus::votes::counted_signer(st);
    let address_of = |name: &str| {
        st.output_str(&format!("key.signer.{name}"), "address")
            .and_then(rpc::parse_address)
    };
    let signers: Vec<Address> = h
        .nodes
        .iter()
        .filter(|n| n.role == "validator")
        .filter(|n| counted(&n.name))
        .filter_map(|n| address_of(&n.name))
        .collect();
    let ready: Vec<(&str, Address)> = ready.filter_map(|r| Some((r, address_of(r)?))).collect();
    let (_, last) = sealing::start_order(ready, &signers, h.head);
    last.map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network of validators `v0..vN` whose signer addresses are given, at `head`.
    fn network(addresses: &[&str], head: u64) -> (Health, State) {
        let mut st = State::new("n", "local");
        let mut h = Health {
            head,
            ..Default::default()
        };
        for (i, a) in addresses.iter().enumerate() {
            let name = format!("v{i}");
            st.resources.insert(
                format!("key.signer.{name}"),
                ResourceState {
                    kind: Kind::SignerKey,
                    attrs: json!({}),
                    outputs: json!({ "address": a }),
                    deps: vec![],
                },
            );
            h.nodes.push(NodeHealth {
                name,
                role: "validator".into(),
                running: true,
                ..Default::default()
            });
        }
        (h, st)
    }

    const A: &str = "0x3000000000000000000000000000000000000000";
    const B: &str = "0x1000000000000000000000000000000000000000";
    const C: &str = "0x2000000000000000000000000000000000000000";

    #[test]
    fn the_next_blocks_in_turn_signer_starts_last() {
        // Sorted by address: B (v1), C (v2), A (v0). Block 1 is in turn for index 1: C.
        let (h, st) = network(&[A, B, C], 0);
        let all = ["v0", "v1", "v2"];
        assert_eq!(
            in_turn_last(&h, &st, all.iter().copied()).as_deref(),
            Some("v2")
        );
        // At head 4, block 5 is in turn for index 5 % 3 = 2: A.
        let (h, st) = network(&[A, B, C], 4);
        assert_eq!(
            in_turn_last(&h, &st, all.iter().copied()).as_deref(),
            Some("v0")
        );
    }

    #[test]
    fn nobody_is_held_back_when_the_in_turn_signer_is_not_starting_or_alone() {
        let (h, st) = network(&[A, B, C], 0);
        assert_eq!(in_turn_last(&h, &st, ["v0", "v1"].iter().copied()), None);
        assert_eq!(in_turn_last(&h, &st, ["v2"].iter().copied()), None);
    }

    #[test]
    fn only_recorded_signers_count_once_votes_are_recorded() {
        // v2 (C) is a validator waiting to be voted in: the signers are B, A; block 1 is
        // in turn for index 1: A.
        let (h, mut st) = network(&[A, B, C], 0);
        for n in ["v0", "v1"] {
            st.resources.insert(
                format!("signer.{n}"),
                ResourceState {
                    kind: Kind::Signer,
                    attrs: json!({}),
                    outputs: json!({}),
                    deps: vec![],
                },
            );
        }
        let all = ["v0", "v1", "v2"];
        assert_eq!(
            in_turn_last(&h, &st, all.iter().copied()).as_deref(),
            Some("v0")
        );
    }
}
