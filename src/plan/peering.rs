//! The peering plan: which nodes are static peers of which.
//!
//! Small networks are a full mesh: every node sees every other, the cheapest and most
//! robust layout while the pair count is small. Past [`FULL_MESH_MAX_NODES`] a full mesh is
//! n(n−1)/2 connections (1,770 at 60 nodes), past geth's default peer limits and costly to
//! set up, so the plan becomes a bounded-degree graph:
//!
//! - **validators** are fully meshed while there are at most [`VALIDATOR_MESH_MAX`];
//!   otherwise they sit on a ring ordered round-robin across members (so one member's
//!   validators are spread out) and each is linked to the validators 1, ⌈V^¼⌉, ⌈V^½⌉ and
//!   ⌈V^¾⌉ places further on: degree ≤ 8, diameter about 2·V^¼ hops (8 at 600 validators).
//!   A member's nodes going down must not split the rest, so the plan checks that for
//!   every member and links the pieces if it would;
//! - **tx nodes** peer with validators of at least two members, their own first: up to two
//!   of their own member's validators and one validator each of two other members, spread
//!   so no validator collects every tx node.
//!
//! The plan is a pure function of the topology's node list: every command (and both
//! providers) computes the same graph, and state records it through each node's static
//! peers and `mesh` digest.

use crate::topology::{NodeSpec, Role, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// Networks up to this many nodes are a full mesh.
pub const FULL_MESH_MAX_NODES: usize = 16;
/// Up to this many validators are meshed with each other in a larger network.
pub const VALIDATOR_MESH_MAX: usize = 12;
/// Validator-to-validator links of each validator on the ring (at most; fewer on small rings).
pub const VALIDATOR_RING_DEGREE: usize = 8;
/// Validators of other members a tx node peers with (besides its own member's).
const TX_FOREIGN_VALIDATORS: usize = 2;
/// Own-member validators a tx node peers with.
const TX_OWN_VALIDATORS: usize = 2;

/// Who peers with whom: an undirected graph over node names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peering {
    peers: BTreeMap<String, BTreeSet<String>>,
    full_mesh: bool,
}

impl Peering {
    /// The plan for these nodes (the topology's `nodes()`, in its order).
    pub fn plan(nodes: &[NodeSpec]) -> Peering {
        let mut p = Peering {
            peers: nodes
                .iter()
                .map(|n| (n.name.clone(), BTreeSet::new()))
                .collect(),
            full_mesh: nodes.len() <= FULL_MESH_MAX_NODES,
        };
        if p.full_mesh {
            for (i, a) in nodes.iter().enumerate() {
                for b in &nodes[i + 1..] {
                    p.link(&a.name, &b.name);
                }
            }
            return p;
        }
        let ring = round_robin_validators(nodes);
        p.link_validators(&ring);
        p.keep_connected_without_each_member(nodes);
        p.link_tx_nodes(nodes, &ring);
        p
    }

    /// The plan over every node of `topology`'s network, other operators' nodes included
    /// (see [`Topology::network_nodes`]): our nodes' planned peers, and so their peer
    /// limits, cover the nodes of every member.
    pub fn for_topology(topology: &Topology) -> Peering {
        Peering::plan(&topology.network_nodes())
    }

    /// Whether every node peers with every other.
    pub fn is_full_mesh(&self) -> bool {
        self.full_mesh
    }

    /// The planned peers of `node` (empty for a node not in the plan).
    pub fn peers_of(&self, node: &str) -> impl Iterator<Item = &str> {
        self.peers
            .get(node)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    pub fn are_peers(&self, a: &str, b: &str) -> bool {
        self.peers.get(a).is_some_and(|s| s.contains(b))
    }

    /// How many peers `node` is planned to have.
    pub fn degree(&self, node: &str) -> usize {
        self.peers.get(node).map_or(0, BTreeSet::len)
    }

    pub fn max_degree(&self) -> usize {
        self.peers.values().map(BTreeSet::len).max().unwrap_or(0)
    }

    /// Number of planned connections (each pair once).
    pub fn links(&self) -> usize {
        self.peers.values().map(BTreeSet::len).sum::<usize>() / 2
    }

    /// Every planned pair once, `(a, b)` with `a < b`.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.peers.iter().flat_map(|(a, s)| {
            s.iter()
                .filter(move |b| a.as_str() < b.as_str())
                .map(move |b| (a.as_str(), b.as_str()))
        })
    }

    /// The node of a pair that dials the other: exactly one side, so two nodes never dial
    /// each other at the same moment (geth then drops both connections and waits ~35 s).
    pub fn dials(a: &str, b: &str) -> bool {
        a > b
    }

    /// Whether the nodes not in `without` form one connected graph.
    pub fn connected_without(&self, without: &BTreeSet<&str>) -> bool {
        self.components_without(without).len() <= 1
    }

    /// Connected components of the graph minus `without`, each sorted, in name order.
    fn components_without(&self, without: &BTreeSet<&str>) -> Vec<Vec<String>> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::new();
        for start in self.peers.keys() {
            if without.contains(start.as_str()) || seen.contains(start.as_str()) {
                continue;
            }
            let mut comp = Vec::new();
            let mut stack = vec![start.as_str()];
            seen.insert(start);
            while let Some(n) = stack.pop() {
                comp.push(n.to_string());
                for m in self.peers_of(n) {
                    if !without.contains(m) && seen.insert(m) {
                        stack.push(m);
                    }
                }
            }
            comp.sort();
            out.push(comp);
        }
        out
    }

    /// Longest shortest path (in hops) between nodes not in `without`; `None` when they are
    /// not connected.
    pub fn diameter_without(&self, without: &BTreeSet<&str>) -> Option<usize> {
        let mut worst = 0;
        for start in self.peers.keys().filter(|n| !without.contains(n.as_str())) {
            let mut dist: BTreeMap<&str, usize> = BTreeMap::from([(start.as_str(), 0)]);
            let mut queue = std::collections::VecDeque::from([start.as_str()]);
            while let Some(n) = queue.pop_front() {
                let d = dist[n];
                for m in self.peers_of(n) {
                    if !without.contains(m) && !dist.contains_key(m) {
                        dist.insert(m, d + 1);
                        queue.push_back(m);
                    }
                }
            }
            if dist.len() + without.len() < self.peers.len() {
                return None;
            }
            worst = worst.max(dist.values().copied().max().unwrap_or(0));
        }
        Some(worst)
    }

    fn link(&mut self, a: &str, b: &str) {
        if a == b {
            return;
        }
        if let Some(s) = self.peers.get_mut(a) {
            s.insert(b.to_string());
        }
        if let Some(s) = self.peers.get_mut(b) {
            s.insert(a.to_string());
        }
    }

    fn link_validators(&mut self, ring: &[&NodeSpec]) {
        let v = ring.len();
        if v <= VALIDATOR_MESH_MAX {
            for (i, a) in ring.iter().enumerate() {
                for b in &ring[i + 1..] {
                    self.link(&a.name, &b.name);
                }
            }
            return;
        }
        for j in ring_jumps(v) {
            for i in 0..v {
                let (a, b) = (&ring[i].name, &ring[(i + j) % v].name);
                self.link(a, b);
            }
        }
    }

    /// With any one member's nodes down, the others stay connected: for each member whose
    /// removal splits the rest, link the pieces (a chain between each piece's first nodes).
    fn keep_connected_without_each_member(&mut self, nodes: &[NodeSpec]) {
        let members: Vec<&str> = unique(nodes.iter().map(|n| n.member.as_str()));
        for m in members {
            // The validator graph only: tx nodes are linked after this.
            let without: BTreeSet<&str> = nodes
                .iter()
                .filter(|n| n.member == m || n.role == Role::Tx)
                .map(|n| n.name.as_str())
                .collect();
            let comps = self.components_without(&without);
            for w in comps.windows(2) {
                let (a, b) = (w[0][0].clone(), w[1][0].clone());
                self.link(&a, &b);
            }
        }
    }

    fn link_tx_nodes(&mut self, nodes: &[NodeSpec], ring: &[&NodeSpec]) {
        let mut next = 0usize;
        for t in nodes.iter().filter(|n| n.role == Role::Tx) {
            let own: Vec<&&NodeSpec> = ring.iter().filter(|v| v.member == t.member).collect();
            for k in 0..own.len().min(TX_OWN_VALIDATORS) {
                let v = own[(t.index as usize + k) % own.len()];
                self.link(&t.name, &v.name);
            }
            // Foreign validators: walk the ring from a position that moves on with every
            // tx node, taking validators of members not yet chosen.
            let mut chosen: BTreeSet<&str> = BTreeSet::from([t.member.as_str()]);
            let mut taken = 0;
            for step in 0..ring.len() {
                if taken == TX_FOREIGN_VALIDATORS {
                    break;
                }
                let v = ring[(next + step) % ring.len()];
                if chosen.insert(v.member.as_str()) {
                    self.link(&t.name, &v.name);
                    taken += 1;
                }
            }
            next = (next + 2 * TX_FOREIGN_VALIDATORS + 1) % ring.len().max(1);
        }
    }
}

/// Validators ordered round-robin across members: each member's first validator in member
/// order, then each member's second, and so on.
fn round_robin_validators(nodes: &[NodeSpec]) -> Vec<&NodeSpec> {
    let members: Vec<&str> = unique(nodes.iter().map(|n| n.member.as_str()));
    let by_member: Vec<Vec<&NodeSpec>> = members
        .iter()
        .map(|m| {
            nodes
                .iter()
                .filter(|n| n.member == *m && n.role == Role::Validator)
                .collect()
        })
        .collect();
    let rounds = by_member.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for r in 0..rounds {
        for vs in &by_member {
            if let Some(v) = vs.get(r) {
                out.push(*v);
            }
        }
    }
    out
}

/// The ring's link distances for `v` validators: 1, ⌈v^¼⌉, ⌈v^½⌉, ⌈v^¾⌉, each larger than
/// the last and at most v/2 (a larger distance is a smaller one the other way round).
fn ring_jumps(v: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let steps = VALIDATOR_RING_DEGREE / 2;
    for i in 0..steps {
        let want = (v as f64).powf(i as f64 / steps as f64).ceil() as usize;
        let j = want.max(out.last().map_or(1, |l| l + 1));
        if j <= v / 2 {
            out.push(j);
        }
    }
    out
}

fn unique<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    it.filter(|m| seen.insert(*m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(members: &[(u32, u32)]) -> Vec<NodeSpec> {
        let mut out = Vec::new();
        for (mi, (v, t)) in members.iter().enumerate() {
            let m = format!("m{mi}");
            for (role, count, label) in [(Role::Validator, v, "validator"), (Role::Tx, t, "tx")] {
                for i in 0..*count {
                    out.push(NodeSpec {
                        name: format!("{m}-{label}-{i}"),
                        member: m.clone(),
                        role,
                        index: i,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn small_networks_are_a_full_mesh() {
        let nodes = topo(&[(2, 1), (1, 0), (1, 1), (1, 0)]);
        let p = Peering::plan(&nodes);
        assert!(p.is_full_mesh());
        for n in &nodes {
            assert_eq!(p.degree(&n.name), nodes.len() - 1, "{}", n.name);
        }
        assert_eq!(p.links(), 7 * 6 / 2);
    }

    #[test]
    fn sixty_nodes_are_bounded_and_tx_nodes_reach_two_members() {
        let nodes = topo(&[(2, 1); 20]);
        let p = Peering::plan(&nodes);
        assert!(!p.is_full_mesh());
        assert!(p.max_degree() <= 14, "max degree {}", p.max_degree());
        assert!(p.links() < 60 * 59 / 2 / 5, "{} links", p.links());
        for t in nodes.iter().filter(|n| n.role == Role::Tx) {
            let members: BTreeSet<&str> = p
                .peers_of(&t.name)
                .filter_map(|x| nodes.iter().find(|n| n.name == x))
                .filter(|n| n.role == Role::Validator)
                .map(|n| n.member.as_str())
                .collect();
            assert!(members.contains(t.member.as_str()) && members.len() >= 2);
        }
        assert!(p.diameter_without(&BTreeSet::new()).unwrap() <= 6);
    }

    #[test]
    fn ring_jumps_grow_and_stay_within_half_the_ring() {
        assert_eq!(ring_jumps(13), vec![1, 2, 4]);
        assert_eq!(ring_jumps(40), vec![1, 3, 7, 16]);
        for v in 13..700 {
            let j = ring_jumps(v);
            assert!(j.windows(2).all(|w| w[0] < w[1]) && j.iter().all(|x| *x <= v / 2));
            assert_eq!(j[0], 1);
        }
    }

    #[test]
    fn the_plan_is_deterministic_and_symmetric() {
        let nodes = topo(&[(3, 2), (1, 1), (5, 0), (2, 3), (1, 1), (4, 1), (2, 2)]);
        let a = Peering::plan(&nodes);
        assert_eq!(a, Peering::plan(&nodes));
        for (x, y) in a.pairs() {
            assert!(a.are_peers(y, x));
        }
    }

    /// The issue's properties, for generated topologies of 1 to 300 members.
    fn check_properties(members: &[(u32, u32)]) -> Result<(), String> {
        let nodes = topo(members);
        let p = Peering::plan(&nodes);
        let none = BTreeSet::new();
        if !p.connected_without(&none) {
            return Err("not connected".into());
        }
        let validators: Vec<&NodeSpec> =
            nodes.iter().filter(|n| n.role == Role::Validator).collect();
        let tx = nodes.len() - validators.len();
        let members_with_validators: BTreeSet<&str> =
            validators.iter().map(|v| v.member.as_str()).collect();
        // Degree: the ring (or the validator mesh), repair links, and the tx nodes spread
        // over the validators plus a member's own tx nodes.
        let busiest_member_tx = members.iter().map(|(_, t)| *t as usize).max().unwrap_or(0);
        let bound = if p.is_full_mesh() {
            nodes.len() - 1
        } else {
            VALIDATOR_RING_DEGREE.max(VALIDATOR_MESH_MAX - 1)
                + 2
                + busiest_member_tx * TX_OWN_VALIDATORS
                + (tx * TX_FOREIGN_VALIDATORS).div_ceil(validators.len().max(1)) * 2
                + 2
        };
        if p.max_degree() > bound {
            return Err(format!("max degree {} > {bound}", p.max_degree()));
        }
        for t in nodes.iter().filter(|n| n.role == Role::Tx) {
            let reached: BTreeSet<&str> = p
                .peers_of(&t.name)
                .filter_map(|x| validators.iter().find(|v| v.name == x))
                .map(|v| v.member.as_str())
                .collect();
            let want = members_with_validators.len().min(2);
            if reached.len() < want {
                return Err(format!("{} reaches validators of {reached:?} only", t.name));
            }
            if members_with_validators.contains(t.member.as_str())
                && !reached.contains(t.member.as_str())
            {
                return Err(format!("{} is not peered with its own validators", t.name));
            }
        }
        for m in members_with_validators.iter().chain(
            nodes
                .iter()
                .map(|n| n.member.as_str())
                .collect::<BTreeSet<_>>()
                .iter(),
        ) {
            let without: BTreeSet<&str> = nodes
                .iter()
                .filter(|n| n.member == *m)
                .map(|n| n.name.as_str())
                .collect();
            // With every validator gone there is nothing left to connect through.
            let validators_left = validators
                .iter()
                .any(|v| !without.contains(v.name.as_str()));
            if validators_left && !p.connected_without(&without) {
                return Err(format!("split with member {m} down"));
            }
        }
        Ok(())
    }

    #[test]
    fn shipped_and_issue_sizes_have_the_properties() {
        for members in [
            vec![(1, 0)],
            vec![(2, 1); 3],
            vec![(2, 1); 10],
            vec![(2, 1); 20],
            vec![(2, 1); 100],
            vec![(1, 1); 300],
            vec![(2, 1); 300],
            // One member holding most validators, others with tx nodes only.
            std::iter::once((20, 1)).chain(vec![(0, 2); 30]).collect(),
        ] {
            check_properties(&members).unwrap_or_else(|e| panic!("{}: {e}", members.len()));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        #[test]
        fn generated_topologies_have_the_properties(
            members in proptest::collection::vec((0u32..=4, 0u32..=3), 1..=300)
        ) {
            let mut members = members;
            if members.iter().all(|(v, _)| *v == 0) {
                members[0].0 = 1;
            }
            if let Err(e) = check_properties(&members) {
                proptest::prop_assert!(false, "{e}");
            }
        }
    }
}
