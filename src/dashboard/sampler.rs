//! Once a second: state, the health assessment `consort status` makes, who peers with
//! whom, the live Clique signers, the latest blocks and who sealed them, and each node's
//! metrics — into one JSON snapshot the page polls (`GET /api/snapshot`). The nodes are
//! asked over their IPC sockets; no key or password is read or put in the snapshot.

use super::{metrics, Shared};
use crate::graph::{self, Graph};
use crate::provider::local::NodeOutputs;
use crate::provider::{self, Health};
use crate::rpc::{self, parse_quantity, RpcClient};
use crate::topology::Topology;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the snapshot is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Blocks kept for the sealing chart (the last min(epoch, this) blocks) and shown.
pub const WINDOW: u64 = 256;
/// Latest blocks listed on the page.
const LATEST: usize = 12;
/// Blocks re-read every sample, so a short Clique reorg does not stay in the cache.
const REREAD: u64 = 3;
const IPC_TIMEOUT: Duration = Duration::from_secs(2);

/// A block as the page shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BlockInfo {
    pub number: u64,
    pub hash: String,
    pub timestamp: u64,
    /// The Clique signer that sealed it (0x-address, lowercase), if the node said.
    pub signer: Option<String>,
    pub txs: usize,
    pub gas_used: u64,
}

/// Blocks read so far, by number.
#[derive(Default)]
pub struct ChainCache {
    blocks: BTreeMap<u64, BlockInfo>,
    genesis: Option<String>,
}

pub fn run(shared: &Shared) {
    let mut cache = ChainCache::default();
    // The last snapshot read whole, kept to show (marked stale) when a sample fails.
    let mut last_good: Option<Arc<Value>> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        // A bug in here must not freeze the page on its last picture: a panic is a failed
        // sample like any other (and the cache it may have left half-written is dropped).
        let taken =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sample(shared, &mut cache)))
                .unwrap_or_else(|p| {
                    cache = ChainCache::default();
                    Err(format!(
                        "the sampler failed: {} (a bug in consort; please report it)",
                        panic_text(&p)
                    ))
                });
        let mut snap = match taken {
            Ok(v) => v,
            Err(e) => stale(last_good.as_deref(), &e, now_secs()),
        };
        // How long reading the network took (the page shows it beside the time).
        snap["sample_ms"] = json!(started.elapsed().as_millis() as u64);
        let snap = Arc::new(snap);
        if snap.get("stale").is_none() && snap.get("error").is_none() {
            last_good = Some(snap.clone());
        }
        *shared.snapshot.write().unwrap() = Some(snap);
        while started.elapsed() < INTERVAL && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What a failed sample shows: the last good snapshot marked `stale` (since when it was
/// taken, and why the network cannot be read now), or only the error if there is none.
pub fn stale(last_good: Option<&Value>, error: &str, now: u64) -> Value {
    match last_good {
        Some(good) => {
            let mut v = good.clone();
            v["stale"] = json!({ "since": good["taken_at"], "error": error });
            v["taken_at"] = json!(now);
            v
        }
        None => json!({ "error": error, "taken_at": now }),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sample(shared: &Shared, cache: &mut ChainCache) -> Result<Value, String> {
    let loaded = crate::topology::load(&shared.opts.file).map_err(|e| e.to_string())?;
    let topo = loaded.topology;
    let sd = &shared.opts.state_dir;
    let st = sd.load().map_err(|e| e.to_string())?.ok_or_else(|| {
        format!(
            "network {} has no state in {}: nothing is deployed (run `consort apply`)",
            topo.network.name,
            sd.root.display()
        )
    })?;
    let provider = provider::for_topology(&topo).map_err(|e| e.to_string())?;
    // The same assessment as `consort status`.
    let health = provider::assess(provider.as_ref(), &topo, &st, sd);

    let outputs: BTreeMap<String, NodeOutputs> = topo
        .nodes()
        .into_iter()
        .filter_map(|n| Some((n.name.clone(), NodeOutputs::from_state(&st, &n.name)?)))
        .collect();
    let mut endpoints: Vec<(bool, PathBuf)> = health
        .nodes
        .iter()
        .filter(|n| {
            n.running
                && n.problems
                    .iter()
                    .all(|p| !p.starts_with("RPC not answering"))
        })
        .filter_map(|n| {
            let o = outputs.get(&n.name)?;
            (!o.ipc_path.is_empty()).then(|| (n.role != "tx", PathBuf::from(&o.ipc_path)))
        })
        .collect();
    endpoints.sort();
    let endpoints: Vec<PathBuf> = endpoints.into_iter().map(|(_, p)| p).collect();
    *shared.endpoints.write().unwrap() = endpoints.clone();
    let rpc = endpoints
        .first()
        .map(|p| RpcClient::ipc(p).with_timeout(IPC_TIMEOUT));

    let live_signers: Option<Vec<String>> = rpc.as_ref().and_then(|r| {
        r.clique_get_signers().ok().map(|s| {
            s.iter()
                .map(|a| rpc::hex_address(a).to_ascii_lowercase())
                .collect()
        })
    });
    match &rpc {
        Some(r) => update_chain(r, cache, health.head, topo.network.clique.epoch),
        // Nobody answers: the blocks cached are no longer known to be the chain's.
        None => cache.blocks.clear(),
    }

    // Metrics, all nodes at once.
    let metrics: BTreeMap<String, metrics::NodeMetrics> = std::thread::scope(|scope| {
        let handles: Vec<_> = outputs
            .iter()
            .filter_map(|(n, o)| {
                let url = o.metrics_url.clone()?;
                Some((n.clone(), scope.spawn(move || metrics::scrape(&url))))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(n, h)| Some((n, h.join().ok()??)))
            .collect()
    });
    let reading = Reading {
        // Who is who: signer addresses and accounts of the members (addresses only).
        signer_of: graph::live::signer_nodes(&topo, &st),
        accounts: topo
            .members
            .iter()
            .flat_map(|m| m.accounts.iter().map(move |a| (m, a)))
            .filter_map(|(m, a)| {
                let addr = st.output_str(&format!("account.{}.{}", m.name, a.name), "address")?;
                Some((m.name.clone(), a.name.clone(), addr.to_ascii_lowercase()))
            })
            .collect(),
        metrics_urls: outputs
            .iter()
            .filter_map(|(n, o)| Some((n.clone(), o.metrics_url.clone()?)))
            .collect(),
        metrics,
        live_signers,
        pairs: graph::live::live_pairs(&topo, &st),
        health,
    };
    Ok(compose(&topo, &reading, cache, now_secs()))
}

/// Everything one sample read from state and the nodes.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub health: Health,
    /// Signer address (lowercase) → (node, member).
    pub signer_of: BTreeMap<String, (String, String)>,
    /// (member, account, address) of every recorded account.
    pub accounts: Vec<(String, String, String)>,
    pub metrics_urls: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, metrics::NodeMetrics>,
    /// `clique_getSigners` as a running node answered, if one did.
    pub live_signers: Option<Vec<String>>,
    /// Node pairs peered right now.
    pub pairs: BTreeSet<(String, String)>,
}

/// The blocks of `cache` in `from..=to`, none when the range is empty (a stopped network
/// has head 0, below the window's first block).
fn blocks_in(cache: &ChainCache, from: u64, to: u64) -> impl Iterator<Item = &BlockInfo> {
    let range = (from <= to).then(|| cache.blocks.range(from..=to));
    range.into_iter().flatten().map(|(_, b)| b)
}

/// The snapshot the page shows, from what one sample read: no I/O, and no network state
/// makes it panic (see the property test below).
pub fn compose(topo: &Topology, r: &Reading, cache: &ChainCache, now: u64) -> Value {
    let health = &r.health;
    let window = WINDOW.min(topo.network.clique.epoch.max(1));
    let from = health.head.saturating_sub(window - 1).max(1);
    let in_window: Vec<&BlockInfo> = blocks_in(cache, from, health.head).collect();
    let mut sealed: BTreeMap<String, u64> = BTreeMap::new();
    for b in &in_window {
        if let Some(s) = &b.signer {
            *sealed.entry(s.clone()).or_default() += 1;
        }
    }
    let live_signers = &r.live_signers;
    let signer_list: BTreeSet<String> = live_signers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(sealed.keys().cloned())
        .collect();
    let signers: Vec<Value> = signer_list
        .iter()
        .map(|a| {
            let who = r.signer_of.get(a);
            json!({
                "address": a,
                "node": who.map(|w| w.0.clone()),
                "member": who.map(|w| w.1.clone()),
                "active": live_signers.as_ref().is_some_and(|l| l.contains(a)),
                "sealed": sealed.get(a).copied().unwrap_or(0),
            })
        })
        .collect();
    let latest: Vec<Value> = blocks_in(cache, 0, health.head)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(LATEST)
        .map(|b| block_json(b, &r.signer_of))
        .collect();
    let production: Vec<Value> =
        blocks_in(cache, health.head.saturating_sub(59).max(1), health.head)
            .map(|b| json!({"number": b.number, "timestamp": b.timestamp, "txs": b.txs}))
            .collect();
    let accounts: Vec<Value> = r
        .accounts
        .iter()
        .map(|(m, a, addr)| json!({"member": m, "name": a, "address": addr}))
        .collect();

    let live_signer_nodes: BTreeSet<String> = live_signers
        .iter()
        .flatten()
        .filter_map(|a| r.signer_of.get(a).map(|w| w.0.clone()))
        .collect();
    let mut g = Graph::planned(topo)
        .with_live_links(&r.pairs)
        .with_health(health);
    if live_signers.is_some() {
        g = g.with_signers(&live_signer_nodes);
    }
    let svg = graph::svg::render(&g);

    let nodes: Vec<Value> = health
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "member": n.member,
                "role": n.role,
                "running": n.running,
                "peers": n.peers,
                "block": n.block,
                "lag": health.head.saturating_sub(n.block),
                "problems": n.problems,
                "signer": live_signer_nodes.contains(&n.name),
                "rpc_url": n.rpc_url,
                "metrics_url": r.metrics_urls.get(&n.name),
                "metrics": r.metrics.get(&n.name),
            })
        })
        .collect();
    let head_time = cache.blocks.get(&health.head).map(|b| b.timestamp);
    json!({
        "taken_at": now,
        "network": {
            "name": topo.network.name,
            "chain_id": topo.network.chain_id,
            "period": topo.network.clique.period,
            "epoch": topo.network.clique.epoch,
            "genesis_hash": cache.genesis,
        },
        "health": health_json(health),
        "head": health.head,
        "head_time": head_time,
        "nodes": nodes,
        "signers": signers,
        "window": {"from": from, "to": health.head, "blocks": in_window.len()},
        "proposals": health.proposals,
        "external": health.external,
        "removed": health.removed,
        "pending_transactions": health.pending_transactions,
        "latest": latest,
        "production": production,
        "accounts": accounts,
        "graph_svg": svg,
    })
}

/// The banner: healthy or why not, in the words of `consort status`.
fn health_json(h: &Health) -> Value {
    let stopped = h.down == Some(provider::Down::Stopped);
    let crashed = h.down == Some(provider::Down::Crashed);
    let reasons: Vec<String> = h
        .network_problems()
        .into_iter()
        .chain(
            h.nodes
                .iter()
                .flat_map(|n| n.problems.iter().map(move |p| format!("{}: {p}", n.name))),
        )
        .chain(h.pending_transactions.iter().map(|t| t.to_string()))
        .collect();
    json!({
        "healthy": h.healthy,
        "stopped": stopped,
        "crashed": crashed,
        "head": h.head,
        "halted": h.halted,
        "reasons": reasons,
    })
}

fn block_json(b: &BlockInfo, signer_of: &BTreeMap<String, (String, String)>) -> Value {
    let who = b.signer.as_ref().and_then(|s| signer_of.get(s));
    json!({
        "number": b.number,
        "hash": b.hash,
        "timestamp": b.timestamp,
        "signer": b.signer,
        "signer_node": who.map(|w| w.0.clone()),
        "signer_member": who.map(|w| w.1.clone()),
        "txs": b.txs,
        "gas_used": b.gas_used,
    })
}

/// Reads the blocks of the window that are not cached yet (and the last few again).
fn update_chain(rpc: &RpcClient, cache: &mut ChainCache, head: u64, epoch: u64) {
    if cache.genesis.is_none() {
        cache.genesis = rpc.genesis_hash().ok();
    }
    let window = WINDOW.min(epoch.max(1));
    let from = head.saturating_sub(window - 1).max(1);
    cache.blocks.retain(|n, _| *n >= from && *n <= head);
    for n in from..=head {
        if cache.blocks.contains_key(&n) && n + REREAD <= head {
            continue;
        }
        match read_block(rpc, n) {
            Some(b) => {
                cache.blocks.insert(n, b);
            }
            None => break,
        }
    }
}

pub fn read_block(rpc: &RpcClient, n: u64) -> Option<BlockInfo> {
    let tag = format!("0x{n:x}");
    let b = rpc
        .call_raw("eth_getBlockByNumber", json!([tag, false]))
        .ok()?;
    if b.is_null() {
        return None;
    }
    let q = |k: &str| b[k].as_str().and_then(parse_quantity);
    let signer = rpc
        .call_raw("clique_getSigner", json!([tag]))
        .ok()
        .and_then(|v| v.as_str().map(str::to_ascii_lowercase));
    Some(BlockInfo {
        number: q("number")?,
        hash: b["hash"].as_str()?.to_string(),
        timestamp: q("timestamp").unwrap_or(0),
        signer,
        txs: b["transactions"].as_array().map(Vec::len).unwrap_or(0),
        gas_used: q("gasUsed").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::liveness::Halted;
    use crate::provider::{Down, NodeHealth, StuckTx};
    use proptest::prelude::*;

    fn topology() -> Topology {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-members.yaml");
        crate::topology::load(&p).unwrap().topology
    }

    /// A network state as a sample may find it: any mix of running and stopped nodes,
    /// heads, cached blocks (some past the head, as after a restart on older data),
    /// windows longer or shorter than the chain.
    #[derive(Debug, Clone)]
    struct Generated {
        head: u64,
        epoch: u64,
        nodes: Vec<(bool, u64, bool)>,
        cached: Vec<u64>,
        signers: Option<Vec<u8>>,
        down: Option<bool>,
        halted: bool,
        stuck: bool,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        (
            prop_oneof![Just(0u64), 0u64..5, 0u64..2000],
            prop_oneof![Just(0u64), Just(1u64), 1u64..600],
            proptest::collection::vec((any::<bool>(), 0u64..2000, any::<bool>()), 0..8),
            proptest::collection::vec(0u64..2500, 0..300),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4)),
            proptest::option::of(any::<bool>()),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(head, epoch, nodes, cached, signers, down, halted, stuck)| Generated {
                    head,
                    epoch,
                    nodes,
                    cached,
                    signers,
                    down,
                    halted,
                    stuck,
                },
            )
    }

    fn reading(topo: &Topology, g: &Generated) -> (Reading, ChainCache) {
        let names: Vec<String> = topo.nodes().into_iter().map(|n| n.name).collect();
        let nodes: Vec<NodeHealth> = g
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (running, block, bad))| NodeHealth {
                // Past the topology's nodes: a node state records that the file lost.
                name: names.get(i).cloned().unwrap_or(format!("gone-{i}")),
                member: "contoso".into(),
                role: if i % 2 == 0 { "validator" } else { "tx" }.into(),
                running: *running,
                peers: 1,
                planned_peers: 4,
                block: *block,
                rpc_url: None,
                problems: if *bad {
                    vec!["process not running".into()]
                } else {
                    vec![]
                },
            })
            .collect();
        let health = Health {
            healthy: nodes.iter().all(|n| n.problems.is_empty()),
            head: g.head,
            nodes,
            halted: g.halted.then_some(Halted {
                online: 1,
                signers: 3,
                needed: 2,
            }),
            down: g
                .down
                .map(|s| if s { Down::Stopped } else { Down::Crashed }),
            pending_transactions: if g.stuck {
                vec![StuckTx {
                    hash: "0x01".into(),
                    from: "0x02".into(),
                    nonce: 0,
                    tip_wei: "0".into(),
                    max_fee_wei: "7".into(),
                    pending_secs: 9,
                    reason: "tip 0 wei is below the validators' floor".into(),
                }]
            } else {
                vec![]
            },
            ..Default::default()
        };
        let signer = |b: u8| format!("0x{:040x}", b);
        let mut cache = ChainCache::default();
        for n in &g.cached {
            cache.blocks.insert(
                *n,
                BlockInfo {
                    number: *n,
                    hash: format!("0x{n:064x}"),
                    timestamp: 1_700_000_000 + n,
                    signer: Some(signer((*n % 3) as u8)),
                    txs: (*n % 4) as usize,
                    gas_used: 21_000,
                },
            );
        }
        let r = Reading {
            health,
            signer_of: (0..3u8)
                .map(|b| (signer(b), (format!("v{b}"), "contoso".to_string())))
                .collect(),
            live_signers: g
                .signers
                .as_ref()
                .map(|s| s.iter().map(|b| signer(*b)).collect()),
            ..Default::default()
        };
        (r, cache)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_network_state_makes_a_snapshot_that_tells_it(g in generated()) {
            let mut topo = topology();
            topo.network.clique.epoch = g.epoch;
            let (r, cache) = reading(&topo, &g);
            let v = compose(&topo, &r, &cache, 1_700_000_000);
            prop_assert_eq!(v["head"].as_u64(), Some(g.head));
            let h = &v["health"];
            prop_assert_eq!(h["stopped"].as_bool(), Some(g.down == Some(true)));
            prop_assert_eq!(h["crashed"].as_bool(), Some(g.down == Some(false)));
            // Nothing past the head is shown as the chain's.
            for b in v["latest"].as_array().unwrap().iter().chain(v["production"].as_array().unwrap()) {
                prop_assert!(b["number"].as_u64().unwrap() <= g.head);
            }
            let w = &v["window"];
            prop_assert!(w["from"].as_u64().unwrap() >= 1);
            prop_assert!(w["blocks"].as_u64().unwrap() <= g.head);
            prop_assert_eq!(v["latest"].as_array().unwrap().len() as u64 > 0, g.cached.iter().any(|n| *n <= g.head));
            let reasons = h["reasons"].as_array().unwrap();
            prop_assert_eq!(g.stuck, reasons.iter().any(|x| x.as_str().unwrap().contains("below the validators' floor")));
            prop_assert_eq!(v["pending_transactions"].as_array().unwrap().len(), usize::from(g.stuck));
        }
    }

    #[test]
    fn a_stopped_network_with_blocks_cached_is_the_panic_of_issue_21() {
        // head 0 (no node answers) with the window's first block at 1: range 1..=0.
        let topo = topology();
        let g = Generated {
            head: 0,
            epoch: 30000,
            nodes: vec![(false, 0, true); 5],
            cached: (1..=40).collect(),
            signers: None,
            down: Some(true),
            halted: true,
            stuck: false,
        };
        let (r, cache) = reading(&topo, &g);
        let v = compose(&topo, &r, &cache, 0);
        assert_eq!(v["health"]["stopped"], true);
        assert_eq!(v["window"]["blocks"], 0);
    }

    #[test]
    fn a_failed_sample_keeps_the_last_picture_marked_stale() {
        let good = json!({"taken_at": 100, "head": 7, "health": {"healthy": true}});
        let v = stale(Some(&good), "cannot read state: denied", 130);
        assert_eq!(
            v["stale"],
            json!({"since": 100, "error": "cannot read state: denied"})
        );
        assert_eq!(
            (v["head"].clone(), v["taken_at"].clone()),
            (json!(7), json!(130))
        );
        let v = stale(None, "no state", 5);
        assert_eq!(v, json!({"error": "no state", "taken_at": 5}));
    }
}
