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
//!   every member and links the pieces if it would. The check looks only near the
//!   member's validators (they cut the ring into arcs; links around the cut join the
//!   arcs), and walks the whole graph only when that does not settle it, so planning
//!   stays linear in the node count;
//! - **tx nodes** peer with validators of at least two members, their own first: up to two
//!   of their own member's validators and one validator each of two other members, spread
//!   so no validator collects every tx node.
//!
//! The plan is a pure function of the topology's node list: every command (and both
//! providers) computes the same graph, and state records it through each node's static
//! peers and `mesh` digest.

use crate::topology::{NodeSpec, Role};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
        Self::plan_with_work(nodes).0
    }

    /// The plan and the work it took: links made plus adjacency entries and ring positions
    /// visited. It measures the plan's cost independently of the machine, and tests hold it
    /// to linear growth in the node count.
    pub fn plan_with_work(nodes: &[NodeSpec]) -> (Peering, u64) {
        let full_mesh = nodes.len() <= FULL_MESH_MAX_NODES;
        let mut g = Graph::new(nodes);
        if full_mesh {
            for a in 0..nodes.len() {
                for b in a + 1..nodes.len() {
                    g.link(a, b);
                }
            }
        } else {
            let ring = g.round_robin_validators();
            g.link_validators(&ring);
            g.keep_connected_without_each_member(&ring);
            g.link_tx_nodes(&ring);
        }
        let work = g.work;
        (g.into_peering(full_mesh), work)
    }

    /// Whether every node peers with every other.
    pub fn is_full_mesh(&self) -> bool {
        self.full_mesh
    }

    /// The planned peers of `node`, in name order (empty for a node not in the plan).
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

    /// Whether the nodes not in `without` form one connected graph (a check over the whole
    /// graph, for tests and views; planning never calls it).
    pub fn connected_without(&self, without: &BTreeSet<&str>) -> bool {
        let Some(start) = self.peers.keys().find(|n| !without.contains(n.as_str())) else {
            return true;
        };
        let mut seen: BTreeSet<&str> = BTreeSet::from([start.as_str()]);
        let mut stack = vec![start.as_str()];
        while let Some(n) = stack.pop() {
            for m in self.peers_of(n) {
                if !without.contains(m) && seen.insert(m) {
                    stack.push(m);
                }
            }
        }
        seen.len()
            + without
                .iter()
                .filter(|n| self.peers.contains_key(**n))
                .count()
            == self.peers.len()
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
}

/// The graph while it is planned, over node indices (positions in the topology's node
/// list), with members numbered in order of first appearance.
struct Graph<'a> {
    nodes: &'a [NodeSpec],
    member: Vec<usize>,
    members: usize,
    adj: Vec<BTreeSet<usize>>,
    work: u64,
}

impl<'a> Graph<'a> {
    fn new(nodes: &'a [NodeSpec]) -> Graph<'a> {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let member = nodes
            .iter()
            .map(|n| {
                let next = ids.len();
                *ids.entry(n.member.as_str()).or_insert(next)
            })
            .collect();
        Graph {
            nodes,
            member,
            members: ids.len(),
            adj: vec![BTreeSet::new(); nodes.len()],
            work: 0,
        }
    }

    fn link(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.work += 1;
        self.adj[a].insert(b);
        self.adj[b].insert(a);
    }

    fn into_peering(self, full_mesh: bool) -> Peering {
        let name = |i: usize| self.nodes[i].name.clone();
        Peering {
            peers: self
                .adj
                .iter()
                .enumerate()
                .map(|(i, s)| (name(i), s.iter().map(|&j| name(j)).collect()))
                .collect(),
            full_mesh,
        }
    }

    /// Validators ordered round-robin across members: each member's first validator in
    /// member order, then each member's second, and so on.
    fn round_robin_validators(&self) -> Vec<usize> {
        let mut by_member: Vec<Vec<usize>> = vec![Vec::new(); self.members];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.role == Role::Validator {
                by_member[self.member[i]].push(i);
            }
        }
        let rounds = by_member.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = Vec::new();
        for r in 0..rounds {
            out.extend(by_member.iter().filter_map(|vs| vs.get(r)));
        }
        out
    }

    /// The validator mesh, or the ring with its jumps. Either way consecutive ring
    /// positions are linked, which [`Graph::arcs_stay_joined`] relies on.
    fn link_validators(&mut self, ring: &[usize]) {
        let v = ring.len();
        if v <= VALIDATOR_MESH_MAX {
            for (i, &a) in ring.iter().enumerate() {
                for &b in &ring[i + 1..] {
                    self.link(a, b);
                }
            }
            return;
        }
        for j in ring_jumps(v) {
            for i in 0..v {
                self.link(ring[i], ring[(i + j) % v]);
            }
        }
    }

    /// With any one member's nodes down, the others stay connected: for each member whose
    /// removal splits the rest, link the pieces (a chain between each piece's node whose
    /// name sorts first, pieces in that order). Members are taken in order, each seeing the
    /// links made for those before it. Only validators are linked at this point.
    fn keep_connected_without_each_member(&mut self, ring: &[usize]) {
        let mut pos = vec![usize::MAX; self.nodes.len()];
        let mut cuts: Vec<Vec<usize>> = vec![Vec::new(); self.members];
        for (p, &n) in ring.iter().enumerate() {
            pos[n] = p;
            cuts[self.member[n]].push(p);
        }
        let mut rank: Option<Vec<usize>> = None;
        for (m, cut) in cuts.iter().enumerate() {
            // No validators of its own: the rest is the whole (connected) ring. One or no
            // validator left: nothing to split.
            if cut.is_empty()
                || ring.len() - cut.len() <= 1
                || self.arcs_stay_joined(ring, &pos, m, cut)
            {
                continue;
            }
            let rank = rank.get_or_insert_with(|| self.name_ranks());
            let pieces = self.pieces_without(ring, m, rank);
            for w in pieces.windows(2) {
                self.link(w[0], w[1]);
            }
        }
    }

    /// Whether the validators stay connected without member `m`'s (at the ascending ring
    /// positions `cut`), decided near the cut: the ring falls into arcs between the cut
    /// positions, each connected along the ring, and a link between two arcs joins them.
    /// The links of the cut validators' neighbours nearly always join every arc, at a cost
    /// of the cut's neighbourhood only. `false` means "not shown", not "split".
    fn arcs_stay_joined(&mut self, ring: &[usize], pos: &[usize], m: usize, cut: &[usize]) -> bool {
        let (k, v) = (cut.len(), ring.len());
        if k == 1 {
            return true;
        }
        // Arc i runs from cut[i] to cut[(i + 1) % k], both excluded; some are empty.
        let arc_of = |p: usize| match cut.binary_search(&p) {
            Ok(_) => unreachable!("a cut position is in no arc"),
            Err(0) => k - 1,
            Err(i) => i - 1,
        };
        let mut open = (0..k)
            .filter(|&i| (cut[(i + 1) % k] + v - cut[i]) % v > 1)
            .count();
        let mut parent: Vec<usize> = (0..k).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut work = 0u64;
        let joined = 'search: {
            if open <= 1 {
                break 'search true;
            }
            for &p in cut {
                for &u in &self.adj[ring[p]] {
                    if self.member[u] == m {
                        continue;
                    }
                    debug_assert!(pos[u] != usize::MAX, "only validators are linked yet");
                    let a = root(&mut parent, arc_of(pos[u]));
                    for &w in &self.adj[u] {
                        work += 1;
                        if self.member[w] == m {
                            continue;
                        }
                        let b = root(&mut parent, arc_of(pos[w]));
                        if a != b {
                            parent[b] = a;
                            open -= 1;
                            if open == 1 {
                                break 'search true;
                            }
                        }
                    }
                }
            }
            false
        };
        self.work += work;
        joined
    }

    /// Each node's place in name order.
    fn name_ranks(&self) -> Vec<usize> {
        let mut by_name: Vec<usize> = (0..self.nodes.len()).collect();
        by_name.sort_by(|a, b| self.nodes[*a].name.cmp(&self.nodes[*b].name));
        let mut rank = vec![0; by_name.len()];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i] = r;
        }
        rank
    }

    /// The pieces the validators fall into without member `m`'s, each given by its node
    /// whose name sorts first, in name order: a walk over the whole validator graph, taken
    /// only when [`Graph::arcs_stay_joined`] could not show it stays in one piece.
    fn pieces_without(&mut self, ring: &[usize], m: usize, rank: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut out = Vec::new();
        for &start in ring {
            if self.member[start] == m || seen[start] {
                continue;
            }
            seen[start] = true;
            let (mut first, mut stack) = (start, vec![start]);
            while let Some(x) = stack.pop() {
                if rank[x] < rank[first] {
                    first = x;
                }
                for &y in &self.adj[x] {
                    self.work += 1;
                    if self.member[y] != m && !seen[y] {
                        seen[y] = true;
                        stack.push(y);
                    }
                }
            }
            out.push(first);
        }
        out.sort_by_key(|&i| rank[i]);
        out
    }

    fn link_tx_nodes(&mut self, ring: &[usize]) {
        let mut own: Vec<Vec<usize>> = vec![Vec::new(); self.members];
        for &v in ring {
            own[self.member[v]].push(v);
        }
        let runs = same_member_runs(&ring.iter().map(|&v| self.member[v]).collect::<Vec<_>>());
        let mut next = 0usize;
        for t in 0..self.nodes.len() {
            if self.nodes[t].role != Role::Tx {
                continue;
            }
            let (mine, index) = (&own[self.member[t]], self.nodes[t].index as usize);
            for k in 0..mine.len().min(TX_OWN_VALIDATORS) {
                self.link(t, mine[(index + k) % mine.len()]);
            }
            // Foreign validators: walk the ring from a position that moves on with every
            // tx node, taking validators of members not yet chosen (skipping a run of one
            // chosen member's validators at once).
            let mut chosen = vec![self.member[t]];
            let mut step = 0;
            while chosen.len() <= TX_FOREIGN_VALIDATORS && step < ring.len() {
                self.work += 1;
                let q = (next + step) % ring.len();
                let v = ring[q];
                if chosen.contains(&self.member[v]) {
                    step += runs[q];
                } else {
                    chosen.push(self.member[v]);
                    self.link(t, v);
                    step += 1;
                }
            }
            next = (next + 2 * TX_FOREIGN_VALIDATORS + 1) % ring.len().max(1);
        }
    }
}

/// For each ring position, how many positions from it on (wrapping round, at most the whole
/// ring) hold validators of the same member.
fn same_member_runs(member_at: &[usize]) -> Vec<usize> {
    let len = member_at.len();
    let mut runs = vec![0; len];
    let mut run = 0;
    // Backwards over the ring twice, so a run that wraps round is counted whole.
    for i in (0..2 * len).rev() {
        let q = i % len;
        run = if i + 1 < 2 * len && member_at[(i + 1) % len] == member_at[q] {
            run + 1
        } else {
            1
        };
        if i < len {
            runs[q] = run.min(len);
        }
    }
    runs
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

    /// The repair as first written: per member, the components of the whole validator graph
    /// without that member, over node names. It is the definition the local check in
    /// `Graph::arcs_stay_joined` must agree with.
    fn repaired_by_definition(nodes: &[NodeSpec]) -> Peering {
        let mut g = Graph::new(nodes);
        let ring = g.round_robin_validators();
        g.link_validators(&ring);
        let mut p = g.into_peering(false);
        let mut members: Vec<&str> = Vec::new();
        for n in nodes {
            if !members.contains(&n.member.as_str()) {
                members.push(&n.member);
            }
        }
        for m in members {
            let without: BTreeSet<&str> = nodes
                .iter()
                .filter(|n| n.member == m || n.role == Role::Tx)
                .map(|n| n.name.as_str())
                .collect();
            let mut seen: BTreeSet<String> = BTreeSet::new();
            let mut firsts: Vec<String> = Vec::new();
            for start in p.peers.keys() {
                if without.contains(start.as_str()) || seen.contains(start) {
                    continue;
                }
                // Keys come in name order, so a component's start is its first name.
                firsts.push(start.clone());
                let mut stack = vec![start.clone()];
                seen.insert(start.clone());
                while let Some(n) = stack.pop() {
                    for x in p.peers_of(&n) {
                        if !without.contains(x) && seen.insert(x.to_string()) {
                            stack.push(x.to_string());
                        }
                    }
                }
            }
            for w in firsts.windows(2) {
                p.peers.get_mut(&w[0]).unwrap().insert(w[1].clone());
                p.peers.get_mut(&w[1]).unwrap().insert(w[0].clone());
            }
        }
        p
    }

    /// The validator links of the plan (tx nodes' links left out).
    fn validator_links(p: &Peering, nodes: &[NodeSpec]) -> BTreeSet<(String, String)> {
        let validators: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| n.role == Role::Validator)
            .map(|n| n.name.as_str())
            .collect();
        p.pairs()
            .filter(|(a, b)| validators.contains(a) && validators.contains(b))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn check_repairs_match_the_definition(members: &[(u32, u32)]) -> Result<(), String> {
        let nodes = topo(members);
        if nodes.len() <= FULL_MESH_MAX_NODES {
            return Ok(());
        }
        let (ours, want) = (
            validator_links(&Peering::plan(&nodes), &nodes),
            validator_links(&repaired_by_definition(&nodes), &nodes),
        );
        if ours != want {
            return Err(format!(
                "{members:?}: links only the plan has {:?}, only the definition has {:?}",
                ours.difference(&want).collect::<Vec<_>>(),
                want.difference(&ours).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    #[test]
    fn repairs_are_made_where_a_member_splits_the_rest_and_match_the_definition() {
        // Two members of 35 validators alternate on the ring, and its jumps (1, 3, 9, 25)
        // are all odd: every link joins the two members, so removing either leaves 35
        // pieces.
        assert_eq!(ring_jumps(70), vec![1, 3, 9, 25]);
        let two = [(35, 1), (35, 1)];
        let nodes = topo(&two);
        let p = Peering::plan(&nodes);
        let mut g = Graph::new(&nodes);
        let ring = g.round_robin_validators();
        g.link_validators(&ring);
        assert!(
            p.links() >= g.into_peering(false).links() + 34,
            "expected repair links"
        );
        for members in [
            two.to_vec(),
            vec![(20, 1), (20, 0), (1, 1)],
            vec![(9, 0), (1, 1), (9, 1), (2, 0)],
            std::iter::once((20, 1)).chain(vec![(0, 2); 30]).collect(),
            vec![(3, 1); 40],
            vec![(1, 1); 120],
        ] {
            check_repairs_match_the_definition(&members).unwrap();
            check_properties(&members).unwrap();
        }
    }

    #[test]
    fn planning_work_grows_linearly_to_three_thousand_members() {
        let work = |members: &[(u32, u32)]| {
            let nodes = topo(members);
            let (p, work) = Peering::plan_with_work(&nodes);
            assert!(p.connected_without(&BTreeSet::new()));
            work as f64 / nodes.len() as f64
        };
        for shape in [(1, 1), (2, 1), (4, 3)] {
            let (small, big) = (work(&vec![shape; 300]), work(&vec![shape; 3000]));
            // A walk of the whole graph per member would be ~1,000× the node count here.
            assert!(
                big <= 60.0,
                "{shape:?}: {big:.1} steps per node at 3,000 members"
            );
            assert!(
                big <= small * 3.0,
                "{shape:?}: {small:.1} steps per node at 300 members, {big:.1} at 3,000"
            );
        }
        // One member holding the validators, 3,000 with tx nodes only: tx nodes skip its
        // run of validators on the ring at once.
        let lopsided: Vec<(u32, u32)> = std::iter::once((300, 1))
            .chain(vec![(0, 1); 3000])
            .collect();
        assert!(work(&lopsided) <= 60.0);
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

        #[test]
        fn generated_repairs_match_the_definition(
            members in proptest::collection::vec((0u32..=30, 0u32..=2), 1..=12)
        ) {
            if let Err(e) = check_repairs_match_the_definition(&members) {
                proptest::prop_assert!(false, "{e}");
            }
        }
    }
}
