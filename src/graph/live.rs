//! Who is connected to whom, as the nodes report it (`admin_peers` over each node's IPC
//! socket, the control channel only the operator can use): local networks.

use crate::provider::local::NodeOutputs;
use crate::state::State;
use crate::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long one node may take to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Peer pairs `(a, b)` with `a < b` that at least one side reports connected. A peer
/// that is not a node of the network shows under its enode id's first 8 hex digits.
/// Nodes that are not running or do not answer contribute nothing.
pub fn live_pairs(topology: &Topology, state: &State) -> BTreeSet<(String, String)> {
    let nodes: Vec<(String, NodeOutputs)> = topology
        .nodes()
        .into_iter()
        .filter_map(|n| Some((n.name.clone(), NodeOutputs::from_state(state, &n.name)?)))
        .collect();
    let by_id: BTreeMap<String, String> = topology
        .nodes()
        .into_iter()
        .filter_map(|n| {
            let id = state.output_str(&format!("key.node.{}", n.name), "enode_id")?;
            Some((id.trim_start_matches("0x").to_ascii_lowercase(), n.name))
        })
        .collect();
    let reports: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|(name, o)| {
                scope.spawn(move || {
                    if !o.is_running() {
                        return (name.clone(), vec![]);
                    }
                    let peers = o
                        .control()
                        .with_timeout(TIMEOUT)
                        .admin_peers()
                        .unwrap_or_default();
                    let ids = peers
                        .iter()
                        .filter_map(|p| p.pubkey().map(|k| k.to_ascii_lowercase()))
                        .collect();
                    (name.clone(), ids)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut out = BTreeSet::new();
    for (name, ids) in reports {
        for id in ids {
            let other = by_id
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("peer-{}", &id[..id.len().min(8)]));
            if other != name {
                out.insert(super::pair(&name, &other));
            }
        }
    }
    out
}

/// Validators' signer addresses (lowercase 0x-hex) → (node, member), from state.
pub fn signer_nodes(topology: &Topology, state: &State) -> BTreeMap<String, (String, String)> {
    topology
        .nodes()
        .into_iter()
        .filter(|n| n.role == crate::topology::Role::Validator)
        .filter_map(|n| {
            let a = state.output_str(&format!("key.signer.{}", n.name), "address")?;
            Some((a.to_ascii_lowercase(), (n.name.clone(), n.member.clone())))
        })
        .collect()
}

/// The live Clique signers (lowercase 0x-hex) as the first running node that answers
/// reports them.
pub fn live_signers(topology: &Topology, state: &State) -> Option<Vec<String>> {
    topology.nodes().iter().find_map(|n| {
        let o = NodeOutputs::from_state(state, &n.name)?;
        if !o.is_running() {
            return None;
        }
        let s = o
            .control()
            .with_timeout(TIMEOUT)
            .clique_get_signers()
            .ok()?;
        Some(
            s.iter()
                .map(|a| crate::rpc::hex_address(a).to_ascii_lowercase())
                .collect(),
        )
    })
}
