//! The typed topology: what `consort.yaml` says once loaded and validated.
//!
//! The serde structs deny unknown fields; semantic checks (names, duplicates, chain ids,
//! balances) live in `validate.rs` and report positions through the span index.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Amount of wei. `u128` holds 3.4e38 wei (3.4e20 ether), far above any sane genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Wei(pub u128);

impl Wei {
    pub const ETHER: u128 = 1_000_000_000_000_000_000;
    pub const GWEI: u128 = 1_000_000_000;
}

impl fmt::Display for Wei {
    /// Displays as the shortest exact unit: `5000000 ether`, `1.5 ether`, `21 gwei`, `7 wei`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v == 0 {
            return write!(f, "0 wei");
        }
        for (unit, scale) in [("ether", Wei::ETHER), ("gwei", Wei::GWEI)] {
            if v >= scale / 1000 && v % (scale / 1_000_000_000).max(1) == 0 {
                let whole = v / scale;
                let frac = v % scale;
                if frac == 0 {
                    return write!(f, "{whole} {unit}");
                }
                let digits = scale.ilog10() as usize;
                let s = format!("{frac:0digits$}");
                let s = s.trim_end_matches('0');
                if s.len() <= 9 {
                    return write!(f, "{whole}.{s} {unit}");
                }
            }
        }
        write!(f, "{v} wei")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub network: Network,
    pub client: Client,
    pub members: Vec<Member>,
    pub provider: ProviderConfig,
    /// What applications may do with the tx nodes' RPC (every provider).
    #[serde(default)]
    pub rpc: Rpc,
}

/// Settings of the tx nodes' HTTP and WebSocket JSON-RPC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rpc {
    /// Web origins (`http://localhost:5173`) whose pages may call the tx nodes from a
    /// browser: geth's `--http.corsdomain` and `--ws.origins`. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub chain_id: u64,
    pub clique: Clique,
    pub gas_limit: u64,
    /// `<member>/<account>` that funds accounts added after genesis.
    pub funding_account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clique {
    pub period: u64,
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// geth version, e.g. "1.13.15".
    pub geth: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    pub accounts: Vec<Account>,
    /// A member another operator runs (admitted with `consort admit`, or the founders as
    /// seen by a member that joined): consort holds none of its keys and runs none of its
    /// nodes; it peers with `enodes` and counts `signers` in Clique votes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
}

impl Member {
    /// Whether this operator runs the member's nodes and holds its keys.
    pub fn is_operated(&self) -> bool {
        self.external.is_none()
    }
}

/// What an operator knows of a member it does not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// Signer addresses of its validators (EIP-55 checksummed), one per validator.
    pub signers: Vec<String>,
    /// Enode URLs its nodes are reached at.
    pub enodes: Vec<String>,
    /// The invitation it was admitted with (None for the founders a joiner lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    #[serde(with = "wei_serde")]
    pub balance: Wei,
    /// An address the user holds the key of (EIP-55 checksummed): funded, no key held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl Account {
    /// Whether consort generates and holds this account's key.
    pub fn has_key(&self) -> bool {
        self.address.is_none()
    }
}

// One value per loaded topology: boxing Azure's config would cost more API churn than
// the bytes it saves.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderConfig {
    Local(LocalConfig),
    Azure(AzureConfig),
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Local(_) => "local",
            ProviderConfig::Azure(_) => "azure",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalConfig {
    /// The address this operator's nodes listen on and advertise (an address of this
    /// machine; default 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// First p2p port (node i of the topology gets base + i; default 30303); tx nodes' HTTP
    /// and WebSocket ports follow the p2p block (default: from 8545).
    pub base_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureConfig {
    /// From the file or `AZURE_SUBSCRIPTION_ID`; `None` only for offline plan/export.
    pub subscription_id: Option<String>,
    pub location: String,
    pub resource_group: String,
    pub address_space: String,
    pub vm_size: String,
    pub validator_vm_size: Option<String>,
    pub tx_vm_size: Option<String>,
    pub admin_username: String,
    /// The public key text (already read from `ssh_public_key_file` if that was given).
    pub ssh_public_key: String,
    pub allowed_rpc_cidrs: Vec<String>,
    pub allowed_ssh_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Validator,
    Tx,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Validator => "validator",
            Role::Tx => "tx",
        })
    }
}

/// One node the topology asks for: `<member>-validator-<i>` or `<member>-tx-<i>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub member: String,
    pub role: Role,
    pub index: u32,
}

impl LocalConfig {
    pub const DEFAULT_ADDRESS: &'static str = "127.0.0.1";

    /// Where the nodes listen and what their enodes advertise.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(Self::DEFAULT_ADDRESS)
    }
}

impl Topology {
    /// The nodes this operator runs, in a stable order: members in file order, validators
    /// before tx nodes. External members' nodes are not among them.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        let mut out = Vec::new();
        for m in self.members.iter().filter(|m| m.is_operated()) {
            for i in 0..m.validators {
                out.push(NodeSpec {
                    name: format!("{}-validator-{i}", m.name),
                    member: m.name.clone(),
                    role: Role::Validator,
                    index: i,
                });
            }
            for i in 0..m.tx_nodes {
                out.push(NodeSpec {
                    name: format!("{}-tx-{i}", m.name),
                    member: m.name.clone(),
                    role: Role::Tx,
                    index: i,
                });
            }
        }
        out
    }

    pub fn validator_count(&self) -> u32 {
        self.members.iter().map(|m| m.validators).sum()
    }

    /// Members another operator runs.
    pub fn external_members(&self) -> impl Iterator<Item = (&Member, &External)> {
        self.members
            .iter()
            .filter_map(|m| m.external.as_ref().map(|e| (m, e)))
    }

    /// Whether other operators run part of this network (their votes count in Clique).
    pub fn has_external_members(&self) -> bool {
        self.external_members().next().is_some()
    }

    /// Enode URLs of every external member's nodes, each with its member.
    pub fn external_enodes(&self) -> Vec<(&str, &str)> {
        self.external_members()
            .flat_map(|(m, e)| e.enodes.iter().map(move |u| (m.name.as_str(), u.as_str())))
            .collect()
    }

    /// The local provider's listen address (127.0.0.1 for other providers).
    pub fn local_address(&self) -> &str {
        match &self.provider {
            ProviderConfig::Local(l) => l.address(),
            _ => LocalConfig::DEFAULT_ADDRESS,
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The funding account as (member, account): the configured one, else the first account
    /// consort holds the key of (an `address:` account cannot sign transfers).
    pub fn funding_account(&self) -> Option<(&Member, &Account)> {
        if let Some(spec) = &self.network.funding_account {
            let (m, a) = spec.split_once('/')?;
            let member = self.member(m)?;
            let acct = member.accounts.iter().find(|x| x.name == a)?;
            return Some((member, acct));
        }
        self.members
            .iter()
            .find_map(|m| m.accounts.iter().find(|a| a.has_key()).map(|a| (m, a)))
    }
}

/// Balances serialise as decimal wei strings (JSON numbers cannot hold u128 safely).
pub mod wei_serde {
    use super::Wei;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &Wei, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&w.0.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Wei, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<u128>().map(Wei).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wei_display_picks_exact_unit() {
        assert_eq!(Wei(5_000_000 * Wei::ETHER).to_string(), "5000000 ether");
        assert_eq!(Wei(Wei::ETHER * 3 / 2).to_string(), "1.5 ether");
        assert_eq!(Wei(21 * Wei::GWEI).to_string(), "21 gwei");
        assert_eq!(Wei(7).to_string(), "7 wei");
        assert_eq!(Wei(0).to_string(), "0 wei");
    }
}
