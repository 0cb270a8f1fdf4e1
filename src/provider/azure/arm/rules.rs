//! Inbound rules of a member's network security group.
//!
//! Azure's default inbound rules allow everything from inside the VNet (AllowVnetInBound,
//! 65000) and from the load balancer (65001) and deny the rest (65500). A validator's geth
//! has an unlocked signer account behind its HTTP RPC, so "inside the VNet" is already too
//! wide: we allow exactly what the consortium needs and then deny every other inbound
//! packet at priority 4096, above Azure's allow rules.
//!
//! | prio | rule            | proto | from                  | to               | port  |
//! |------|-----------------|-------|-----------------------|------------------|-------|
//! | 100  | allow-p2p-tcp   | TCP   | VNet address space    | VNet space       | 30303 |
//! | 110  | allow-p2p-udp   | UDP   | VNet address space    | VNet space       | 30303 |
//! | 200  | allow-rpc       | TCP   | `allowed_rpc_cidrs`   | this member's tx nodes' private IPs | 8545 |
//! | 300  | allow-ssh       | TCP   | `allowed_ssh_cidrs`   | any              | 22    |
//! | 4096 | deny-all-inbound| any   | any                   | any              | any   |
//!
//! allow-rpc exists only when the member has tx nodes and `allowed_rpc_cidrs` is not empty;
//! allow-ssh only when `allowed_ssh_cidrs` is not empty. Validators never match allow-rpc
//! (the destination is tx nodes only), and validators get no public IP anyway. Outbound
//! stays at Azure's default (the VMs download geth from the official release archive).

use serde::{Deserialize, Serialize};

pub const P2P_PORT: u16 = 30303;
pub const RPC_PORT: u16 = 8545;
pub const SSH_PORT: u16 = 22;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    Allow,
    Deny,
}

/// One inbound security rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub name: String,
    pub priority: i32,
    pub access: Access,
    pub protocol: Protocol,
    /// Source address prefixes (CIDRs, IPs or "*").
    pub sources: Vec<String>,
    /// Destination address prefixes.
    pub destinations: Vec<String>,
    /// Destination port ("30303" or "*").
    pub port: String,
    pub description: String,
}

/// The inbound rules of one member's NSG (see the table above).
pub fn member_rules(
    vnet_address_space: &str,
    tx_private_ips: &[String],
    allowed_rpc_cidrs: &[String],
    allowed_ssh_cidrs: &[String],
) -> Vec<RuleSpec> {
    let mut rules = vec![
        RuleSpec {
            name: "allow-p2p-tcp".into(),
            priority: 100,
            access: Access::Allow,
            protocol: Protocol::Tcp,
            sources: vec![vnet_address_space.to_string()],
            destinations: vec![vnet_address_space.to_string()],
            port: P2P_PORT.to_string(),
            description: "geth p2p (devp2p) between consortium nodes, VNet only".into(),
        },
        RuleSpec {
            name: "allow-p2p-udp".into(),
            priority: 110,
            access: Access::Allow,
            protocol: Protocol::Udp,
            sources: vec![vnet_address_space.to_string()],
            destinations: vec![vnet_address_space.to_string()],
            port: P2P_PORT.to_string(),
            description: "geth p2p discovery between consortium nodes, VNet only".into(),
        },
    ];
    if !allowed_rpc_cidrs.is_empty() && !tx_private_ips.is_empty() {
        rules.push(RuleSpec {
            name: "allow-rpc".into(),
            priority: 200,
            access: Access::Allow,
            protocol: Protocol::Tcp,
            sources: allowed_rpc_cidrs.to_vec(),
            destinations: tx_private_ips.to_vec(),
            port: RPC_PORT.to_string(),
            description: "JSON-RPC on tx nodes from allowed_rpc_cidrs".into(),
        });
    }
    if !allowed_ssh_cidrs.is_empty() {
        rules.push(RuleSpec {
            name: "allow-ssh".into(),
            priority: 300,
            access: Access::Allow,
            protocol: Protocol::Tcp,
            sources: allowed_ssh_cidrs.to_vec(),
            destinations: vec!["*".into()],
            port: SSH_PORT.to_string(),
            description: "SSH from allowed_ssh_cidrs".into(),
        });
    }
    rules.push(RuleSpec {
        name: "deny-all-inbound".into(),
        priority: 4096,
        access: Access::Deny,
        protocol: Protocol::Any,
        sources: vec!["*".into()],
        destinations: vec!["*".into()],
        port: "*".into(),
        description: "nothing else, not even from inside the VNet (overrides AllowVnetInBound)"
            .into(),
    });
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_only_member_gets_p2p_and_deny_only() {
        let r = member_rules("10.42.0.0/16", &[], &["203.0.113.0/24".into()], &[]);
        let names: Vec<&str> = r.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            ["allow-p2p-tcp", "allow-p2p-udp", "deny-all-inbound"]
        );
        assert!(r[..2]
            .iter()
            .all(|x| x.sources == ["10.42.0.0/16"] && x.port == "30303"));
        assert_eq!(r[2].access, Access::Deny);
    }

    #[test]
    fn rpc_targets_tx_ips_from_allowed_cidrs_and_ssh_only_when_asked() {
        let r = member_rules(
            "10.42.0.0/16",
            &["10.42.1.5".into()],
            &["203.0.113.0/24".into()],
            &["198.51.100.7/32".into()],
        );
        let rpc = r.iter().find(|x| x.name == "allow-rpc").unwrap();
        assert_eq!(rpc.sources, ["203.0.113.0/24"]);
        assert_eq!(rpc.destinations, ["10.42.1.5"]);
        assert_eq!((rpc.port.as_str(), rpc.protocol), ("8545", Protocol::Tcp));
        let ssh = r.iter().find(|x| x.name == "allow-ssh").unwrap();
        assert_eq!(ssh.sources, ["198.51.100.7/32"]);
        // Every allow sits above the deny, and priorities are unique.
        let deny = r
            .iter()
            .find(|x| x.access == Access::Deny)
            .unwrap()
            .priority;
        assert!(r
            .iter()
            .filter(|x| x.access == Access::Allow)
            .all(|x| x.priority < deny));
        let mut p: Vec<i32> = r.iter().map(|x| x.priority).collect();
        p.dedup();
        assert_eq!(p.len(), r.len());
        // No rule opens RPC without allowed_rpc_cidrs.
        let none = member_rules("10.42.0.0/16", &["10.42.1.5".into()], &[], &[]);
        assert!(none.iter().all(|x| x.port != "8545" && x.port != "22"));
    }
}
