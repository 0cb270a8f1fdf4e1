//! Health: probe every node and assess the network.

use super::*;
use crate::provider::pending::{read_pool, PoolTx};

/// What one probe of a node saw.
#[derive(Debug, Default, Clone)]
pub(super) struct Probe {
    running: bool,
    rpc_error: Option<String>,
    block: u64,
    block_time: u64,
    genesis: Option<String>,
    peers: BTreeSet<String>,
    signers: Option<BTreeSet<Address>>,
    proposals: Vec<rpc::CliqueProposal>,
}

pub(super) fn probe(o: &NodeOutputs, validator: bool) -> Probe {
    let mut p = Probe {
        running: o.is_running(),
        ..Default::default()
    };
    if !p.running {
        return p;
    }
    let rpc = o.control().with_timeout(PROBE_TIMEOUT);
    // One JSON-RPC batch: one IPC connection and one request per node instead of five
    // (issue 23: `status` of hundreds of nodes is mostly waiting for geth's answers).
    let mut calls = vec![
        RpcClient::block_call(BlockId::Latest),
        RpcClient::block_call(BlockId::Number(0)),
        ("admin_peers", json!([])),
        ("clique_getSigners", json!([null])),
    ];
    if validator {
        calls.push(("clique_proposals", json!([])));
    }
    let r = (|| -> Result<(), rpc::RpcError> {
        let mut answers = rpc.call_batch(&calls)?.into_iter();
        let mut next = || answers.next().expect("one answer per call");
        if let Some(b) = rpc.decode_block(next()?)? {
            p.block = b.number;
            p.block_time = b.timestamp;
        }
        let genesis = rpc
            .decode_block(next()?)?
            .ok_or_else(|| rpc::RpcError::Decode {
                url: rpc.url().to_string(),
                method: "eth_getBlockByNumber".into(),
                reason: "the node has no block 0".into(),
            })?;
        p.genesis = Some(genesis.hash);
        p.peers = rpc
            .decode_peers(next()?)?
            .iter()
            .filter_map(|x| x.pubkey().map(str::to_string))
            .collect();
        p.signers = Some(rpc.decode_signers(next()?)?.into_iter().collect());
        if validator {
            p.proposals = rpc.decode_proposals(next()?)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        p.rpc_error = Some(e.to_string());
    }
    p
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Health of the network as state and the live nodes say.
pub(super) fn assess(topology: &Topology, st: &State) -> Health {
    let specs = topology.nodes();
    let external = topology.has_external_members();
    let peering = Peering::for_topology(topology);
    let outs: BTreeMap<String, NodeOutputs> = recorded_nodes(st).into_iter().collect();
    let probed: Vec<(&NodeSpec, &NodeOutputs)> = specs
        .iter()
        .filter_map(|n| Some((n, outs.get(&n.name)?)))
        .collect();
    let probes: BTreeMap<String, Probe> =
        parallel::map(&probed, parallel::PROBE_CONCURRENCY, |(n, o)| {
            (n.name.clone(), probe(o, n.role == Role::Validator))
        })
        .into_iter()
        .collect();

    // One chain: every answering node has the same block at the lowest height any of
    // them is at (a start-up fork keeps equal heights but different hashes).
    let common = probes
        .values()
        .filter(|p| p.running && p.rpc_error.is_none())
        .map(|p| p.block)
        .min();
    let hashes_at_common: BTreeMap<String, String> = match common {
        Some(h) if h > 0 => {
            let answering: Vec<(&String, &NodeOutputs)> = probes
                .iter()
                .filter(|(_, p)| p.running && p.rpc_error.is_none())
                .filter_map(|(n, _)| Some((n, outs.get(n)?)))
                .collect();
            parallel::map(&answering, parallel::PROBE_CONCURRENCY, |(n, o)| {
                let hash = o
                    .control()
                    .with_timeout(PROBE_TIMEOUT)
                    .block_by_number(BlockId::Number(h))
                    .ok()
                    .flatten()
                    .map(|b| b.hash);
                Some(((*n).clone(), hash?))
            })
            .into_iter()
            .flatten()
            .collect()
        }
        _ => BTreeMap::new(),
    };
    let mut hash_votes: BTreeMap<&str, usize> = BTreeMap::new();
    for h in hashes_at_common.values() {
        *hash_votes.entry(h.as_str()).or_default() += 1;
    }
    let forked = hash_votes.len() > 1;

    // What the network should look like.
    let enode_ids = planned_ids(topology, st);
    let validators: Vec<&NodeSpec> = specs.iter().filter(|n| n.role == Role::Validator).collect();
    let counted = consensus::votes::counted_signer(st);
    let expected_signers: BTreeSet<Address> = validators
        .iter()
        .filter(|n| counted(&n.name))
        .filter_map(|n| st.output_str(&format!("key.signer.{}", n.name), "address"))
        .filter_map(rpc::parse_address)
        .collect();
    let genesis = st
        .genesis
        .as_ref()
        .map(|g| g.hash.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            // Not recorded yet: the most common answer.
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for p in probes.values() {
                if let Some(g) = &p.genesis {
                    *count.entry(g.as_str()).or_default() += 1;
                }
            }
            count
                .into_iter()
                .max_by_key(|(_, c)| *c)
                .map(|(g, _)| g.to_string())
        });
    let head = probes.values().map(|p| p.block).max().unwrap_or(0);
    let period = topology.network.clique.period;
    let stale_after = 2 * period + 10;
    let now = now_secs();

    let mut health = Health {
        healthy: true,
        head,
        nodes: vec![],
        proposals: vec![],
        halted: None,
        ..Default::default()
    };
    for n in &specs {
        let o = outs.get(&n.name);
        let p = probes.get(&n.name).cloned().unwrap_or_default();
        let mut problems = Vec::new();
        match (o, p.running) {
            (None, _) => problems.push("not created (run `consort apply`)".to_string()),
            (Some(o), false) => problems.push(if stopped_by_consort(o) {
                "process not running (stopped by `consort stop`)".to_string()
            } else {
                "process not running: it exited or was killed, not by `consort stop` (`consort start` or `consort apply` starts it again)".to_string()
            }),
            (Some(o), true) => {
                if let Some(host) =
                    running_address(o).filter(|h| *h != topology.local_address())
                {
                    problems.push(format!(
                        "runs on {host}, but provider.local.address is {} (`consort plan` says why it will not move)",
                        topology.local_address()
                    ));
                }
                if let Some(e) = &p.rpc_error {
                    problems.push(format!("RPC not answering: {e}"));
                } else {
                    let missing = missing_peers(&peering, &enode_ids, &n.name, &p.peers);
                    if !missing.is_empty() {
                        problems.push(not_peered(&missing, topology));
                    }
                    if let (Some(want), Some(got)) = (&genesis, &p.genesis) {
                        if want != got {
                            problems
                                .push(format!("genesis {got} differs from the network's {want}"));
                        }
                    }
                    if let (true, Some(mine)) = (forked, hashes_at_common.get(&n.name)) {
                        let others: Vec<String> = hash_votes
                            .keys()
                            .filter(|h| **h != mine.as_str())
                            .map(|h| short_hash(h))
                            .collect();
                        problems.push(format!(
                            "on its own fork: block {} is {} here but {} on other nodes",
                            common.unwrap_or(0),
                            short_hash(mine),
                            others.join(", ")
                        ));
                    }
                    if p.block + BEHIND_TOLERANCE < head {
                        problems.push(format!("at block {} while the head is {head}", p.block));
                    }
                    if period > 0 && now.saturating_sub(p.block_time) > stale_after {
                        problems.push(if p.block == 0 {
                            "no block sealed yet (head is the genesis block)".to_string()
                        } else {
                            format!(
                                "head not advancing: block {} is {}s old (period {period}s); are more than half of the signers running?",
                                p.block,
                                now.saturating_sub(p.block_time)
                            )
                        });
                    }
                    // With other operators' signers, votes pass only once they vote too:
                    // `status` shows each vote's progress instead (see `votes`).
                    if let (Some(got), false) = (&p.signers, external) {
                        if !expected_signers.is_empty() && got != &expected_signers {
                            let fmt = |s: &BTreeSet<Address>| {
                                s.iter()
                                    .map(rpc::hex_address)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            };
                            problems.push(format!(
                                "clique signers are [{}], expected [{}]",
                                fmt(got),
                                fmt(&expected_signers)
                            ));
                        }
                    }
                }
            }
        }
        for prop in &p.proposals {
            // Ours, left over from a vote that other operators' signers have since carried.
            let in_effect = p
                .signers
                .as_ref()
                .is_some_and(|s| s.contains(&prop.address) == prop.authorize);
            health.proposals.push(Proposal {
                proposer: n.name.clone(),
                address: rpc::hex_address(&prop.address),
                authorize: prop.authorize,
            });
            // With other operators, our cast votes stay pending until theirs come (`votes`
            // shows them); once theirs carried the vote, ours is left over: inert while
            // the vote holds, but it would undo a later opposite vote.
            if external && in_effect {
                problems.push(format!(
                    "pending Clique proposal to {} {}, though the vote passed (other operators' votes carried it); `consort apply` discards it",
                    if prop.authorize { "add" } else { "remove" },
                    prop.address.to_checksum()
                ));
                continue;
            }
            // consort discards its proposals once a vote passed: a pending one takes
            // effect later whatever the topology says.
            if external {
                continue;
            }
            problems.push(format!(
                "pending Clique proposal to {} {} (no change of consort's is voting; `consort apply` discards it)",
                if prop.authorize { "add" } else { "remove" },
                prop.address.to_checksum()
            ));
        }
        if !problems.is_empty() {
            health.healthy = false;
        }
        health.nodes.push(NodeHealth {
            name: n.name.clone(),
            member: n.member.clone(),
            role: n.role.to_string(),
            running: p.running,
            peers: p.peers.len() as u32,
            planned_peers: peering.degree(&n.name) as u32,
            block: p.block,
            rpc_url: o.and_then(|o| o.rpc_url.clone()),
            problems,
        });
    }
    // Clique seals only while more than half of the signers are online. (Other
    // operators' signers cannot be probed from here: the head's age tells instead.)
    let signers_total = expected_signers.len();
    if signers_total > 0 && !external {
        let online = specs
            .iter()
            .filter(|n| n.role == Role::Validator)
            .filter(|n| {
                st.output_str(&format!("key.signer.{}", n.name), "address")
                    .and_then(rpc::parse_address)
                    .is_some_and(|a| expected_signers.contains(&a))
            })
            .filter(|n| {
                probes
                    .get(&n.name)
                    .is_some_and(|p| p.running && p.rpc_error.is_none())
            })
            .count();
        if let Some(halted) = liveness::halted(online, signers_total) {
            health.healthy = false;
            health.halted = Some(halted);
        }
    }
    if specs.is_empty() {
        health.healthy = false;
    }
    if !outs.is_empty() && probes.values().all(|p| !p.running) {
        health.down = Some(
            if specs
                .iter()
                .filter_map(|n| outs.get(&n.name))
                .all(stopped_by_consort)
            {
                Down::Stopped
            } else {
                Down::Crashed
            },
        );
    }
    health
}

/// Every node's id (the enode's public key), by name: ours from state, other operators'
/// from the enodes the topology lists.
pub(super) fn planned_ids(topology: &Topology, st: &State) -> BTreeMap<String, String> {
    topology
        .nodes()
        .iter()
        .filter_map(|n| {
            let id = st.output_str(&format!("key.node.{}", n.name), "enode_id")?;
            Some((n.name.clone(), id.to_string()))
        })
        .chain(
            topology
                .external_nodes()
                .into_iter()
                .filter_map(|(n, url)| Some((n.name, rpc::enode_pubkey(url)?.to_string()))),
        )
        .collect()
}

/// The planned peers of `node` (by name) whose id is not among `peers`.
pub(super) fn missing_peers<'a>(
    peering: &'a Peering,
    ids: &BTreeMap<String, String>,
    node: &str,
    peers: &BTreeSet<String>,
) -> Vec<&'a str> {
    peering
        .peers_of(node)
        .filter(|peer| ids.get(*peer).is_some_and(|id| !peers.contains(id)))
        .collect()
}

/// "not peered with a, b": other operators' nodes marked as theirs (not ours to repair).
pub(super) fn not_peered(missing: &[&str], topology: &Topology) -> String {
    let external = topology.external_nodes();
    let names: Vec<String> = missing
        .iter()
        .map(|n| match external.iter().find(|(e, _)| e.name == *n) {
            Some((e, _)) => format!("{n} (run by {}'s operator)", e.member),
            None => n.to_string(),
        })
        .collect();
    format!("not peered with {}", names.join(", "))
}

/// What the pools of the running tx nodes hold (validators' if the network has no tx
/// node): applications submit there, and a transaction with a nonce gap stays in the
/// pool it was sent to.
pub(super) fn pool(topology: &Topology, st: &State) -> Vec<PoolTx> {
    let specs = topology.nodes();
    let outs: BTreeMap<String, NodeOutputs> = recorded_nodes(st).into_iter().collect();
    let running = |role: Role| -> Vec<&NodeOutputs> {
        specs
            .iter()
            .filter(|n| n.role == role)
            .filter_map(|n| outs.get(&n.name))
            .filter(|o| o.is_running() && !o.ipc_path.is_empty())
            .collect()
    };
    let mut nodes = running(Role::Tx);
    if nodes.is_empty() {
        nodes = running(Role::Validator);
    }
    let mut out: Vec<PoolTx> = Vec::new();
    for txs in parallel::map(&nodes, parallel::PROBE_CONCURRENCY, |o| {
        read_pool(&o.control().with_timeout(PROBE_TIMEOUT))
    })
    .into_iter()
    .flatten()
    {
        for t in txs {
            if !out.iter().any(|x| x.hash == t.hash) {
                out.push(t);
            }
        }
    }
    out
}

/// Whether `consort stop` stopped the node (and nothing started it since).
fn stopped_by_consort(o: &NodeOutputs) -> bool {
    Path::new(&o.datadir)
        .join(super::lifecycle::STOPPED_MARK)
        .exists()
}

pub(super) fn short_hash(h: &str) -> String {
    if h.len() > 14 {
        format!("{}…{}", &h[..8], &h[h.len() - 4..])
    } else {
        h.to_string()
    }
}

/// The deadline error: each unhealthy node, why, and the tail of its log.
pub(super) fn unhealthy_report(
    topology: &Topology,
    st: &State,
    h: &Health,
    waited: Duration,
) -> String {
    let bad: Vec<&NodeHealth> = h.nodes.iter().filter(|n| !n.problems.is_empty()).collect();
    let mut msg = format!(
        "network {} is not healthy after {}s ({} of {} node(s) unhealthy, head #{}):",
        topology.network.name,
        waited.as_secs(),
        bad.len(),
        h.nodes.len(),
        h.head
    );
    if let Some(halted) = &h.halted {
        msg.push_str(&format!("\n  {halted}"));
    }
    for n in bad {
        msg.push_str(&format!("\n  {}: {}", n.name, n.problems.join("; ")));
        if let Some(o) = NodeOutputs::from_state(st, &n.name) {
            msg.push_str(&format!("\n  {}", log_excerpt(Path::new(&o.datadir))));
        }
    }
    msg.push_str(
        "\nThe nodes keep running: `consort status` shows them live, `consort apply --timeout N` waits longer, `consort destroy` removes them.",
    );
    msg
}
