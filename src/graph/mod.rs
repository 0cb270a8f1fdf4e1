//! The topology as a picture: members as labelled groups, validators and tx nodes
//! distinguished, signers marked, peer links — planned from the topology, or what the
//! nodes report. [`svg`] draws it (consort's own drawing: no Graphviz at run time),
//! [`dot`] writes it for people who have Graphviz; the dashboard embeds the same SVG with
//! each node's live state.

pub mod dot;
pub mod live;
pub mod svg;

use crate::provider::Health;
use crate::topology::{Role, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// What the picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub network: String,
    pub members: Vec<Member>,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub role: Role,
    /// A Clique signer (planned: every validator; live: what `clique_getSigners` says).
    pub signer: bool,
    /// Live state, when the picture is of a running network.
    pub status: Option<NodeStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub running: bool,
    /// No problem reported by the health assessment.
    pub healthy: bool,
    pub peers: u32,
    pub head: u64,
    /// Blocks behind the network's head.
    pub lag: u64,
}

/// A peer link between two nodes (`a < b`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub a: String,
    pub b: String,
    pub kind: LinkKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// In the topology's mesh (nothing live known).
    Planned,
    /// Planned and connected.
    Up,
    /// Planned but not connected now.
    Missing,
    /// Connected but not planned.
    Extra,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Planned => "planned",
            LinkKind::Up => "up",
            LinkKind::Missing => "missing",
            LinkKind::Extra => "extra",
        }
    }
}

/// The planned peer pairs: the peering plan both providers build (`plan::peering`: a
/// full mesh for small networks, a bounded-degree graph beyond).
pub fn planned_pairs(topology: &Topology) -> BTreeSet<(String, String)> {
    crate::plan::peering::Peering::plan(&topology.nodes())
        .pairs()
        .map(|(a, b)| pair(a, b))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl Graph {
    /// The topology as planned: every validator a signer, the planned mesh.
    pub fn planned(topology: &Topology) -> Graph {
        let nodes = topology.nodes();
        let members = topology
            .members
            .iter()
            .map(|m| Member {
                name: m.name.clone(),
                nodes: nodes
                    .iter()
                    .filter(|n| n.member == m.name)
                    .map(|n| Node {
                        name: n.name.clone(),
                        role: n.role,
                        signer: n.role == Role::Validator,
                        status: None,
                    })
                    .collect(),
            })
            .collect();
        let links = planned_pairs(topology)
            .into_iter()
            .map(|(a, b)| Link {
                a,
                b,
                kind: LinkKind::Planned,
            })
            .collect();
        Graph {
            network: topology.network.name.clone(),
            members,
            links,
        }
    }

    /// Replaces the planned links with what the nodes report: planned pairs become up or
    /// missing, unplanned connections are extra.
    pub fn with_live_links(mut self, live: &BTreeSet<(String, String)>) -> Graph {
        let planned: BTreeSet<(String, String)> = self
            .links
            .iter()
            .map(|l| (l.a.clone(), l.b.clone()))
            .collect();
        let mut links: Vec<Link> = planned
            .iter()
            .map(|(a, b)| Link {
                a: a.clone(),
                b: b.clone(),
                kind: if live.contains(&(a.clone(), b.clone())) {
                    LinkKind::Up
                } else {
                    LinkKind::Missing
                },
            })
            .collect();
        links.extend(live.difference(&planned).map(|(a, b)| Link {
            a: a.clone(),
            b: b.clone(),
            kind: LinkKind::Extra,
        }));
        links.sort();
        self.links = links;
        self
    }

    /// Marks the live signers (node names) instead of the planned ones.
    pub fn with_signers(mut self, signers: &BTreeSet<String>) -> Graph {
        for n in self.members.iter_mut().flat_map(|m| m.nodes.iter_mut()) {
            n.signer = signers.contains(&n.name);
        }
        self
    }

    /// Each node's state from the health assessment `consort status` shows.
    pub fn with_health(mut self, health: &Health) -> Graph {
        let by_name: BTreeMap<&str, _> =
            health.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        for n in self.members.iter_mut().flat_map(|m| m.nodes.iter_mut()) {
            if let Some(h) = by_name.get(n.name.as_str()) {
                n.status = Some(NodeStatus {
                    running: h.running,
                    healthy: h.problems.is_empty(),
                    peers: h.peers,
                    head: h.block,
                    lag: health.head.saturating_sub(h.block),
                });
            }
        }
        self
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.members.iter().flat_map(|m| m.nodes.iter())
    }
}

/// The node's name without its member's prefix (`contoso-validator-0` → `validator-0`):
/// the group already says whose it is.
pub(crate) fn short_name<'a>(member: &str, node: &'a str) -> &'a str {
    node.strip_prefix(member)
        .and_then(|s| s.strip_prefix('-'))
        .unwrap_or(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        crate::topology::parse(
            std::path::Path::new("demo.yaml"),
            b"network: { name: demo, chain_id: 4242, consensus: { clique: { period: 2, epoch: 30000 } } }\n\
             members:\n  - { name: alpha, validators: 2, tx_nodes: 1 }\n  - { name: beta, validators: 1 }\n\
             provider: { local: {} }\n",
        )
        .expect("loads")
        .topology
    }

    #[test]
    fn planned_graph_is_the_full_mesh_with_validators_as_signers() {
        let g = Graph::planned(&topo());
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.nodes().count(), 4);
        assert_eq!(g.links.len(), 6);
        assert!(g.nodes().all(|n| n.signer == (n.role == Role::Validator)));
    }

    #[test]
    fn live_links_split_into_up_missing_and_extra() {
        let live: BTreeSet<(String, String)> = [
            pair("alpha-validator-0", "alpha-validator-1"),
            pair("beta-validator-0", "alpha-tx-0"),
            pair("alpha-tx-0", "stranger"),
        ]
        .into_iter()
        .collect();
        let g = Graph::planned(&topo()).with_live_links(&live);
        let count = |k| g.links.iter().filter(|l| l.kind == k).count();
        assert_eq!(count(LinkKind::Up), 2);
        assert_eq!(count(LinkKind::Missing), 4);
        assert_eq!(count(LinkKind::Extra), 1);
    }

    #[test]
    fn links_are_drawn_above_the_member_boxes_and_below_the_nodes_and_fills_are_explained() {
        let mut g = Graph::planned(&topo());
        let planned = super::svg::render(&g);
        assert!(!planned.contains("fill-legend"), "nothing live to explain");
        for (i, n) in g.members[0].nodes.iter_mut().enumerate() {
            n.status = Some(NodeStatus {
                running: i != 1,
                healthy: i == 0,
                peers: 1,
                head: 1,
                lag: 0,
            });
        }
        let svg = super::svg::render(&g);
        let at = |needle: &str| svg.find(needle).unwrap_or_else(|| panic!("no {needle}"));
        assert!(at("class=\"member-boxes\"") < at("class=\"link "), "{svg}");
        assert!(at("class=\"link ") < at("data-node="), "{svg}");
        assert!(at("class=\"link ") < at("class=\"member\""), "{svg}");
        for state in ["ok", "down"] {
            assert!(
                svg.contains(&format!("data-state=\"{state}\"")),
                "{state}: {svg}"
            );
        }
        assert!(svg.contains("running, healthy"));
    }

    #[test]
    fn short_names_drop_the_member() {
        assert_eq!(short_name("alpha", "alpha-tx-0"), "tx-0");
        assert_eq!(short_name("alpha", "other"), "other");
    }
}
