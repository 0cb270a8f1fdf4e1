//! Where everything goes: one /24 per member carved from `address_space`, one static
//! private IP per node, resource names derived from node and member names.
//!
//! Allocation is stable: a member keeps the /24 and a node the IP that state records for
//! them (so removing a member from the middle of the list moves nobody), and newcomers take
//! the lowest free ones. Azure reserves .0–.3 and .255 of every subnet, so nodes get .4 up.

use crate::state::State;
use crate::topology::{NodeSpec, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// First usable host of an Azure subnet (.1–.3 are Azure's).
const FIRST_HOST: u32 = 4;
/// Last usable host of a /24 (.255 is broadcast).
const LAST_HOST: u32 = 254;

pub fn vm_name(node: &str) -> String {
    format!("{node}-vm")
}
pub fn nic_name(node: &str) -> String {
    format!("{node}-nic")
}
pub fn pip_name(node: &str) -> String {
    format!("{node}-pip")
}
pub fn nsg_name(member: &str) -> String {
    format!("{member}-nsg")
}
pub fn subnet_name(member: &str) -> String {
    format!("{member}-subnet")
}
pub fn vnet_name(network: &str) -> String {
    format!("{network}-vnet")
}

pub fn nat_gateway_name(network: &str) -> String {
    format!("{network}-nat")
}
pub fn nat_pip_name(network: &str) -> String {
    format!("{network}-nat-pip")
}

// State addresses of the Azure resources.
pub const RG_ADDR: &str = "azure.rg";
pub const VNET_ADDR: &str = "azure.vnet";
pub const VAULT_ADDR: &str = "azure.vault";
pub const NAT_ADDR: &str = "azure.nat";
pub const NAT_PIP_ADDR: &str = "azure.natpip";
pub fn secrets_addr(node: &str) -> String {
    format!("azure.secrets.{node}")
}
pub fn nsg_addr(member: &str) -> String {
    format!("azure.nsg.{member}")
}
pub fn subnet_addr(member: &str) -> String {
    format!("azure.subnet.{member}")
}
pub fn pip_addr(node: &str) -> String {
    format!("azure.pip.{node}")
}
pub fn nic_addr(node: &str) -> String {
    format!("azure.nic.{node}")
}
pub fn vm_addr(node: &str) -> String {
    format!("azure.vm.{node}")
}

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, p) = s.trim().split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Some(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    pub fn contains(&self, ip: u32) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        ip & mask == self.base
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The network layout of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub address_space: Cidr,
    /// member → its /24.
    pub subnets: BTreeMap<String, Cidr>,
    /// node → private IP.
    pub ips: BTreeMap<String, Ipv4Addr>,
}

impl Layout {
    pub fn ip(&self, node: &str) -> String {
        self.ips
            .get(node)
            .map(|i| i.to_string())
            .unwrap_or_default()
    }
}

/// What state recorded, if anything, for a prefix / IP attribute.
fn recorded<'a>(state: Option<&'a State>, addr: &str, key: &str) -> Option<&'a str> {
    state?.resources.get(addr)?.attrs.get(key)?.as_str()
}

pub fn layout(
    topology: &Topology,
    address_space: &str,
    state: Option<&State>,
) -> Result<Layout, String> {
    let space = Cidr::parse(address_space).ok_or_else(|| {
        format!(
            "provider.azure.address_space {address_space:?} is not an IPv4 CIDR like 10.42.0.0/16"
        )
    })?;
    if space.prefix > 24 {
        return Err(format!(
            "provider.azure.address_space {space} is smaller than a /24; each member needs a /24 of it: use e.g. a /16"
        ));
    }
    let slots = 1u32 << (24 - space.prefix);
    let slot_cidr = |i: u32| Cidr {
        base: space.base + (i << 8),
        prefix: 24,
    };

    // Members: keep recorded /24s, then hand out the lowest free ones.
    let mut subnets: BTreeMap<String, Cidr> = BTreeMap::new();
    let mut used: BTreeSet<u32> = BTreeSet::new();
    for m in &topology.members {
        if let Some(c) =
            recorded(state, &subnet_addr(&m.name), "address_prefix").and_then(Cidr::parse)
        {
            if c.prefix == 24 && space.contains(c.base) && used.insert(c.base) {
                subnets.insert(m.name.clone(), c);
            }
        }
    }
    let mut next = 0u32;
    for m in &topology.members {
        if subnets.contains_key(&m.name) {
            continue;
        }
        while next < slots && used.contains(&slot_cidr(next).base) {
            next += 1;
        }
        if next >= slots {
            return Err(format!(
                "provider.azure.address_space {space} has room for {slots} member /24s but the topology has {} members: use a larger address space (e.g. a /16)",
                topology.members.len()
            ));
        }
        let c = slot_cidr(next);
        used.insert(c.base);
        subnets.insert(m.name.clone(), c);
    }

    // Nodes: keep recorded IPs inside their member's /24, then the lowest free hosts.
    let nodes = topology.nodes();
    let mut ips: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for n in &nodes {
        let sub = subnets[&n.member];
        if let Some(ip) = recorded(state, &nic_addr(&n.name), "private_ip")
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
        {
            let v = u32::from(ip);
            let host = v - sub.base.min(v);
            if sub.contains(v) && (FIRST_HOST..=LAST_HOST).contains(&host) && taken.insert(v) {
                ips.insert(n.name.clone(), ip);
            }
        }
    }
    let by_member: BTreeMap<&str, Vec<&NodeSpec>> =
        nodes.iter().fold(BTreeMap::new(), |mut acc, n| {
            acc.entry(n.member.as_str()).or_default().push(n);
            acc
        });
    for (member, members_nodes) in by_member {
        let sub = subnets[member];
        let mut host = FIRST_HOST;
        for n in members_nodes {
            if ips.contains_key(&n.name) {
                continue;
            }
            while host <= LAST_HOST && taken.contains(&(sub.base + host)) {
                host += 1;
            }
            if host > LAST_HOST {
                return Err(format!(
                    "member {member} has more nodes than its /24 subnet {sub} can hold ({} usable addresses)",
                    LAST_HOST - FIRST_HOST + 1
                ));
            }
            let v = sub.base + host;
            taken.insert(v);
            ips.insert(n.name.clone(), Ipv4Addr::from(v));
        }
    }
    Ok(Layout {
        address_space: space,
        subnets,
        ips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Kind;
    use crate::state::ResourceState;
    use crate::topology::*;
    use serde_json::json;

    fn topo(members: &[(&str, u32, u32)]) -> Topology {
        Topology {
            network: Network {
                name: "n".into(),
                chain_id: 1,
                clique: Clique {
                    period: 1,
                    epoch: 30000,
                },
                gas_limit: 1,
                funding_account: None,
            },
            client: Client {
                geth: "1.13.15".into(),
            },
            members: members
                .iter()
                .map(|(m, v, t)| Member {
                    name: m.to_string(),
                    validators: *v,
                    tx_nodes: *t,
                    accounts: vec![],
                    external: None,
                })
                .collect(),
            provider: ProviderConfig::Local(LocalConfig {
                address: None,
                base_port: None,
            }),
            rpc: Rpc::default(),
        }
    }

    #[test]
    fn members_get_24s_in_order_and_nodes_start_at_dot_4() {
        let l = layout(&topo(&[("a", 2, 1), ("b", 1, 0)]), "10.42.0.0/16", None).unwrap();
        assert_eq!(l.subnets["a"].to_string(), "10.42.0.0/24");
        assert_eq!(l.subnets["b"].to_string(), "10.42.1.0/24");
        assert_eq!(l.ip("a-validator-0"), "10.42.0.4");
        assert_eq!(l.ip("a-validator-1"), "10.42.0.5");
        assert_eq!(l.ip("a-tx-0"), "10.42.0.6");
        assert_eq!(l.ip("b-validator-0"), "10.42.1.4");
    }

    #[test]
    fn recorded_allocation_is_kept_when_a_member_leaves() {
        let mut st = State::new("n", "azure");
        let rec = |attrs| ResourceState {
            kind: Kind::AzureSubnet,
            attrs,
            outputs: json!({}),
            deps: vec![],
        };
        st.resources.insert(
            "azure.subnet.b".into(),
            rec(json!({"address_prefix": "10.42.1.0/24"})),
        );
        st.resources.insert(
            "azure.subnet.c".into(),
            rec(json!({"address_prefix": "10.42.2.0/24"})),
        );
        st.resources.insert(
            "azure.nic.c-validator-0".into(),
            rec(json!({"private_ip": "10.42.2.9"})),
        );
        // a is gone from the front; b and c keep theirs, the newcomer d takes the free .0.
        let l = layout(
            &topo(&[("b", 1, 0), ("c", 1, 1), ("d", 1, 0)]),
            "10.42.0.0/16",
            Some(&st),
        )
        .unwrap();
        assert_eq!(l.subnets["b"].to_string(), "10.42.1.0/24");
        assert_eq!(l.subnets["c"].to_string(), "10.42.2.0/24");
        assert_eq!(l.subnets["d"].to_string(), "10.42.0.0/24");
        assert_eq!(l.ip("c-validator-0"), "10.42.2.9");
        assert_eq!(l.ip("c-tx-0"), "10.42.2.4");
    }

    #[test]
    fn too_small_spaces_are_refused_with_a_fix() {
        let e = layout(
            &topo(&[("a", 1, 0), ("b", 1, 0), ("c", 1, 0)]),
            "10.42.0.0/23",
            None,
        )
        .unwrap_err();
        assert!(
            e.contains("room for 2 member /24s") && e.contains("larger address space"),
            "{e}"
        );
        let e = layout(&topo(&[("a", 1, 0)]), "10.42.0.0/25", None).unwrap_err();
        assert!(e.contains("smaller than a /24"), "{e}");
        assert!(layout(&topo(&[("a", 1, 0)]), "nonsense", None).is_err());
        assert!(layout(&topo(&[("a", 252, 0)]), "10.0.0.0/16", None)
            .unwrap_err()
            .contains("more nodes"));
    }
}
