//! Once a second: state, the health assessment `consort status` makes, who peers with
//! whom, the live Clique signers, the latest blocks and who sealed them, and each node's
//! metrics — into one JSON snapshot the page polls (`GET /api/snapshot`). The nodes are
//! asked over their IPC sockets; no key or password is read or put in the snapshot.

use super::{metrics, Shared};
use crate::graph::{self, Graph};
use crate::provider::local::NodeOutputs;
use crate::provider::{self, Health};
use crate::rpc::{self, parse_quantity, RpcClient};
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
    while !shared.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let mut snap = match sample(shared, &mut cache) {
            Ok(v) => v,
            Err(e) => json!({ "error": e, "taken_at": now_secs() }),
        };
        // How long reading the network took (the page shows it beside the time).
        snap["sample_ms"] = json!(started.elapsed().as_millis() as u64);
        *shared.snapshot.write().unwrap() = Some(Arc::new(snap));
        while started.elapsed() < INTERVAL && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
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
    let health = provider.health(&topo, &st);

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

    // Who is who: signer addresses and accounts of the members (addresses only).
    let signer_of = graph::live::signer_nodes(&topo, &st);
    let accounts: Vec<Value> = topo
        .members
        .iter()
        .flat_map(|m| m.accounts.iter().map(move |a| (m, a)))
        .filter_map(|(m, a)| {
            let addr = st.output_str(&format!("account.{}.{}", m.name, a.name), "address")?;
            Some(json!({"member": m.name, "name": a.name, "address": addr.to_ascii_lowercase()}))
        })
        .collect();

    let live_signers: Option<Vec<String>> = rpc.as_ref().and_then(|r| {
        r.clique_get_signers().ok().map(|s| {
            s.iter()
                .map(|a| rpc::hex_address(a).to_ascii_lowercase())
                .collect()
        })
    });
    if let Some(r) = &rpc {
        update_chain(r, cache, health.head, topo.network.clique.epoch);
    }
    let window = WINDOW.min(topo.network.clique.epoch.max(1));
    let from = health.head.saturating_sub(window - 1).max(1);
    let in_window: Vec<&BlockInfo> = cache
        .blocks
        .range(from..=health.head)
        .map(|(_, b)| b)
        .collect();
    let mut sealed: BTreeMap<String, u64> = BTreeMap::new();
    for b in &in_window {
        if let Some(s) = &b.signer {
            *sealed.entry(s.clone()).or_default() += 1;
        }
    }
    let signer_list: BTreeSet<String> = live_signers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(sealed.keys().cloned())
        .collect();
    let signers: Vec<Value> = signer_list
        .iter()
        .map(|a| {
            let who = signer_of.get(a);
            json!({
                "address": a,
                "node": who.map(|w| w.0.clone()),
                "member": who.map(|w| w.1.clone()),
                "active": live_signers.as_ref().is_some_and(|l| l.contains(a)),
                "sealed": sealed.get(a).copied().unwrap_or(0),
            })
        })
        .collect();
    let latest: Vec<Value> = cache
        .blocks
        .values()
        .rev()
        .take(LATEST)
        .map(|b| block_json(b, &signer_of))
        .collect();
    let production: Vec<Value> = cache
        .blocks
        .range(health.head.saturating_sub(59).max(1)..=health.head)
        .map(|(_, b)| json!({"number": b.number, "timestamp": b.timestamp, "txs": b.txs}))
        .collect();

    // Metrics, all nodes at once.
    let node_metrics: BTreeMap<String, metrics::NodeMetrics> = std::thread::scope(|scope| {
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

    let live_signer_nodes: BTreeSet<String> = live_signers
        .iter()
        .flatten()
        .filter_map(|a| signer_of.get(a).map(|w| w.0.clone()))
        .collect();
    let pairs = graph::live::live_pairs(&topo, &st);
    let mut g = Graph::planned(&topo)
        .with_live_links(&pairs)
        .with_health(&health);
    if live_signers.is_some() {
        g = g.with_signers(&live_signer_nodes);
    }
    let svg = graph::svg::render(&g);

    let nodes: Vec<Value> = health
        .nodes
        .iter()
        .map(|n| {
            let o = outputs.get(&n.name);
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
                "metrics_url": o.and_then(|o| o.metrics_url.clone()),
                "metrics": node_metrics.get(&n.name),
            })
        })
        .collect();
    let head_time = cache.blocks.get(&health.head).map(|b| b.timestamp);
    Ok(json!({
        "taken_at": now_secs(),
        "network": {
            "name": topo.network.name,
            "chain_id": topo.network.chain_id,
            "period": topo.network.clique.period,
            "epoch": topo.network.clique.epoch,
            "genesis_hash": cache.genesis,
        },
        "health": health_json(&health),
        "head": health.head,
        "head_time": head_time,
        "nodes": nodes,
        "signers": signers,
        "window": {"from": from, "to": health.head, "blocks": in_window.len()},
        "proposals": health.proposals,
        "external": health.external,
        "removed": health.removed,
        "latest": latest,
        "production": production,
        "accounts": accounts,
        "graph_svg": svg,
    }))
}

/// The banner: healthy or why not, in the words of `consort status`.
fn health_json(h: &Health) -> Value {
    let stopped = !h.nodes.is_empty() && h.nodes.iter().all(|n| !n.running);
    let reasons: Vec<String> = h
        .network_problems()
        .into_iter()
        .chain(
            h.nodes
                .iter()
                .flat_map(|n| n.problems.iter().map(move |p| format!("{}: {p}", n.name))),
        )
        .collect();
    json!({
        "healthy": h.healthy,
        "stopped": stopped,
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
