//! The file as written: serde structs that deny unknown fields and keep optional things
//! optional, so validation can apply defaults and report what is missing.

use schemars::JsonSchema;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

// The doc comments below are the descriptions in `consort schema` (the JSON Schema editors
// use to complete and check consort.yaml): keep them about the file, for its authors.

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with network, members, provider and optionally client, rpc"
)]
#[schemars(title = "consort topology")]
/// A consort topology (consort.yaml): a private Ethereum consortium network of Clique
/// validators, transaction nodes and funded accounts, and where it runs.
pub struct RawTopology {
    /// The chain: its name, chain id, Clique consensus and gas limit.
    pub network: RawNetwork,
    /// The Ethereum client consort runs.
    #[serde(default)]
    pub client: Option<RawClient>,
    /// The member organisations, each with its own validators, tx nodes and accounts.
    #[serde(default)]
    pub members: Vec<RawMember>,
    /// Where the nodes run: `local: {}` (geth processes on this machine) or `azure: {...}`.
    pub provider: RawProvider,
    /// The tx nodes' HTTP and WebSocket JSON-RPC, as browsers see it.
    #[serde(default)]
    pub rpc: Option<RawRpc>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a mapping with cors_origins")]
pub struct RawRpc {
    /// Origins of web pages allowed to call the tx nodes from a browser, each a full
    /// origin like `http://localhost:5173` or `https://app.example.com` (scheme, host and
    /// port if not the scheme's default; no path). `*` is refused. Default: none.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(inner(regex(pattern = r"^https?://[^/?#*]+$")))]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with name, chain_id and optionally consensus, gas_limit, funding_account"
)]
pub struct RawNetwork {
    /// 2 to 24 characters: a lowercase letter, then lowercase letters, digits or '-'.
    pub name: String,
    /// The chain id in every signed transaction; must not be a public network's id.
    pub chain_id: u64,
    #[serde(default)]
    pub consensus: Option<RawConsensus>,
    /// Block gas limit (default 30000000).
    #[serde(default)]
    pub gas_limit: Option<u64>,
    /// `<member>/<account>` that pays for accounts added after genesis (default: the first
    /// account consort holds the key of).
    #[serde(default)]
    pub funding_account: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a mapping with clique")]
pub struct RawConsensus {
    #[serde(default)]
    pub clique: Option<RawClique>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a mapping with period and epoch")]
/// Clique proof-of-authority settings.
pub struct RawClique {
    /// Seconds between blocks (default 5).
    #[serde(default)]
    pub period: Option<u64>,
    /// Blocks between Clique checkpoints (default 30000).
    #[serde(default)]
    pub epoch: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a mapping with geth")]
pub struct RawClient {
    /// geth version: 1.13.x, the last series that seals Clique blocks (default 1.13.15).
    #[serde(default)]
    pub geth: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a member: a mapping with name, validators, tx_nodes, accounts"
)]
/// A member organisation.
pub struct RawMember {
    /// 2 to 24 characters: a lowercase letter, then lowercase letters, digits or '-'.
    pub name: String,
    /// Clique signer nodes of this member (an odd total across members tolerates most
    /// failures).
    #[serde(default)]
    pub validators: u32,
    /// Nodes that serve applications over JSON-RPC.
    #[serde(default)]
    pub tx_nodes: u32,
    /// Funded accounts of this member.
    #[serde(default, deserialize_with = "null_as_default")]
    pub accounts: Vec<RawAccount>,
    /// A member another operator runs (written by `consort admit` and `consort join`):
    /// this operator holds none of its keys and runs none of its nodes.
    #[serde(default)]
    pub external: Option<RawExternal>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with signers (one address per validator) and enodes"
)]
/// The signers and nodes of a member another operator runs.
pub struct RawExternal {
    /// The signer address of each of its validators.
    #[serde(default)]
    #[schemars(schema_with = "addresses_schema")]
    pub signers: Vec<String>,
    /// The enode URL of each of its nodes (`enode://<id>@<ip>:<port>`).
    #[serde(default)]
    pub enodes: Vec<String>,
    /// The invitation it was admitted with.
    #[serde(default)]
    pub invitation: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "an account: a mapping with name, balance and optionally address"
)]
/// An account funded with `balance`: consort generates its key and keystore, or funds
/// `address`, an account you already hold the key of (consort then holds no key).
pub struct RawAccount {
    /// 2 to 24 characters: a lowercase letter, then lowercase letters, digits or '-'.
    pub name: String,
    /// Ether to give it, like `5000000 ether`, `1.5 ether`, `21 gwei`, or whole wei.
    pub balance: RawBalance,
    /// An address you hold the key of (0x + 40 hex digits; mixed case must match its
    /// EIP-55 checksum). Leave it out and consort generates a key.
    #[serde(default)]
    #[schemars(schema_with = "optional_address_schema")]
    pub address: Option<String>,
}

/// An address as the loader takes it: text (`"0x5290…"`), or the same written unquoted,
/// which a YAML 1.2 reader (every editor's YAML language server) reads as a hexadecimal
/// integer while consort reads the text. So the schema takes any integer an address can be
/// (0 to 2^160) too; whether it is 40 hex digits with a valid checksum is `consort
/// validate`'s to say.
fn address_schema() -> serde_json::Value {
    serde_json::json!({
        "description": "0x and 40 hex digits (mixed case must match its EIP-55 checksum); quoting it (\"0x…\") keeps every YAML reader from taking it for a number",
        "anyOf": [
            { "type": "string", "pattern": r"^0x[0-9a-fA-F]{40}$" },
            { "type": "integer", "minimum": 0, "maximum": 1461501637330902918203684832716283019655932542976.0_f64 }
        ]
    })
}

fn optional_address_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut s = address_schema();
    s["anyOf"]
        .as_array_mut()
        .expect("anyOf is a list")
        .push(serde_json::json!({ "type": "null" }));
    s.try_into().expect("an object is a schema")
}

fn addresses_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    serde_json::json!({ "type": "array", "items": address_schema() })
        .try_into()
        .expect("an object is a schema")
}

/// A balance as written: text (`"5 ether"`) or a YAML number.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBalance {
    Text(String),
    Wei(u128),
    Negative,
    Float(f64),
}

impl JsonSchema for RawBalance {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Balance".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A balance like `5000000 ether`, `1.5 ether`, `21 gwei`, `7 wei`, or a whole number of wei.",
            "anyOf": [
                { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([eE][tT][hH][eE][rR]|[gG][wW][eE][iI]|[wW][eE][iI])?\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for RawBalance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawBalance;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a balance like \"5000000 ether\" or a whole number of wei")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBalance, E> {
                Ok(RawBalance::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawBalance, E> {
                Ok(RawBalance::Wei(v.into()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawBalance, E> {
                Ok(RawBalance::Wei(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawBalance, E> {
                Ok(match u128::try_from(v) {
                    Ok(w) => RawBalance::Wei(w),
                    Err(_) => RawBalance::Negative,
                })
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawBalance, E> {
                Ok(match u128::try_from(v) {
                    Ok(w) => RawBalance::Wei(w),
                    Err(_) => RawBalance::Negative,
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawBalance, E> {
                Ok(RawBalance::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with either local or azure"
)]
/// Exactly one of `local` or `azure`.
pub struct RawProvider {
    /// geth processes on this machine, listening on 127.0.0.1 only. `local:` with nothing
    /// after it means all defaults.
    #[serde(default, deserialize_with = "present_or_null")]
    pub local: Option<Option<RawLocal>>,
    /// Azure VMs in their own resource group and VNet.
    #[serde(default, deserialize_with = "present_or_null")]
    pub azure: Option<Option<RawAzure>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with base_port and address (both optional)"
)]
/// Local geth processes.
pub struct RawLocal {
    /// The address the nodes listen on and advertise: an address of this machine
    /// (127.0.0.0/8 is all local on Linux), default 127.0.0.1.
    #[serde(default)]
    pub address: Option<String>,
    /// First TCP port to try; ports are chosen free from here upwards.
    #[serde(default)]
    pub base_port: Option<u16>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with location and ssh_public_key_file"
)]
pub struct RawAzure {
    /// A GUID; leave it out to use AZURE_SUBSCRIPTION_ID.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// An Azure region name like `westeurope`.
    pub location: String,
    /// Default `consort-<network>`.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// A private IPv4 range, /8 to /24, one /24 per member (default 10.42.0.0/16).
    #[serde(default)]
    pub address_space: Option<String>,
    /// VM size of every node (default Standard_D2s_v5, a current-generation size).
    #[serde(default)]
    pub vm_size: Option<String>,
    #[serde(default)]
    pub validator_vm_size: Option<String>,
    #[serde(default)]
    pub tx_vm_size: Option<String>,
    #[serde(default)]
    pub admin_username: Option<String>,
    /// The text of an OpenSSH public key (or use ssh_public_key_file).
    #[serde(default)]
    pub ssh_public_key: Option<String>,
    /// Path to an OpenSSH .pub file, relative to the topology file.
    #[serde(default)]
    pub ssh_public_key_file: Option<String>,
    /// CIDRs allowed to reach the tx nodes' JSON-RPC.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_rpc_cidrs: Vec<String>,
    /// CIDRs allowed to reach SSH.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_ssh_cidrs: Vec<String>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Field present (even as null) -> `Some(..)`; absent -> `None` via `#[serde(default)]`.
fn present_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::<T>::deserialize(d)?))
}

/// One part of the file to deserialise on its own, ignoring the rest, so that errors in
/// different parts are all found (serde stops at the first error of a pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Network,
    Client,
    Provider,
    Rpc,
    Member(usize),
}

impl<'de> DeserializeSeed<'de> for Section {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(TopVisitor(self))
    }
}

struct TopVisitor(Section);

impl<'de> Visitor<'de> for TopVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with network, members and provider")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), self.0) {
                ("network", Section::Network) => {
                    map.next_value::<RawNetwork>()?;
                }
                ("client", Section::Client) => {
                    map.next_value::<Option<RawClient>>()?;
                }
                ("provider", Section::Provider) => {
                    map.next_value::<RawProvider>()?;
                }
                ("rpc", Section::Rpc) => {
                    map.next_value::<Option<RawRpc>>()?;
                }
                ("members", Section::Member(i)) => map.next_value_seed(OnlyItem(i))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A list where only item `.0` is deserialised as a member.
struct OnlyItem(usize);

impl<'de> DeserializeSeed<'de> for OnlyItem {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OnlyItem {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of members")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let more = if i == self.0 {
                seq.next_element::<RawMember>()?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
    // Anything else is the full pass's error to report.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
}

/// A node read without committing to types: what kind it is, its text if it is a string,
/// its length if it is a list and, for a mapping, the length of its `members` list.
/// Reading the top level as a `Peek` checks the YAML syntax of the whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peek {
    /// "null", "a list", "a mapping", "a string", "a number", "a boolean", "a tagged value".
    pub kind: &'static str,
    pub text: Option<String>,
    pub len: usize,
    pub members: usize,
}

impl Peek {
    fn kind(kind: &'static str) -> Self {
        Peek {
            kind,
            ..Peek::default()
        }
    }
}

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PeekVisitor)
    }
}

struct PeekVisitor;

macro_rules! peek_scalars {
    ($($name:ident: $t:ty => $what:literal),* $(,)?) => {$(
        fn $name<E: de::Error>(self, _: $t) -> Result<Peek, E> {
            Ok(Peek::kind($what))
        }
    )*};
}

impl<'de> Visitor<'de> for PeekVisitor {
    type Value = Peek;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML node")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Peek, E> {
        Ok(Peek::kind("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Peek, E> {
        Ok(Peek::kind("null"))
    }
    peek_scalars! {
        visit_bool: bool => "a boolean",
        visit_i64: i64 => "a number",
        visit_i128: i128 => "a number",
        visit_u64: u64 => "a number",
        visit_u128: u128 => "a number",
        visit_f64: f64 => "a number",
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Peek, E> {
        Ok(Peek {
            text: Some(v.to_string()),
            ..Peek::kind("a string")
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Peek, A::Error> {
        // Nested values are read as `Peek` too (not skipped), so serde_yaml's recursion
        // limit refuses absurd nesting before anything recursive sees it.
        let mut len = 0;
        while seq.next_element::<Peek>()?.is_some() {
            len += 1;
        }
        Ok(Peek {
            len,
            ..Peek::kind("a list")
        })
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Peek, A::Error> {
        use de::VariantAccess;
        let (_, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<Peek>()?;
        Ok(Peek::kind("a tagged value"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Peek, A::Error> {
        let mut members = 0;
        while let Some(key) = map.next_key::<Peek>()? {
            if key.text.as_deref() == Some("members") {
                members = map.next_value::<Peek>()?.len;
            } else {
                map.next_value::<Peek>()?;
            }
        }
        Ok(Peek {
            members,
            ..Peek::kind("a mapping")
        })
    }
}
