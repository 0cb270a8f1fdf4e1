//! The file as written: serde structs that deny unknown fields and keep optional things
//! optional, so validation can apply defaults and report what is missing.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with network, members and provider"
)]
pub struct RawTopology {
    pub network: RawNetwork,
    #[serde(default)]
    pub client: Option<RawClient>,
    #[serde(default)]
    pub members: Vec<RawMember>,
    pub provider: RawProvider,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with name, chain_id and optionally consensus, gas_limit, funding_account"
)]
pub struct RawNetwork {
    pub name: String,
    pub chain_id: u64,
    #[serde(default)]
    pub consensus: Option<RawConsensus>,
    #[serde(default)]
    pub gas_limit: Option<u64>,
    #[serde(default)]
    pub funding_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with clique")]
pub struct RawConsensus {
    #[serde(default)]
    pub clique: Option<RawClique>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with period and epoch")]
pub struct RawClique {
    #[serde(default)]
    pub period: Option<u64>,
    #[serde(default)]
    pub epoch: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with geth")]
pub struct RawClient {
    #[serde(default)]
    pub geth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a member: a mapping with name, validators, tx_nodes, accounts"
)]
pub struct RawMember {
    pub name: String,
    #[serde(default)]
    pub validators: u32,
    #[serde(default)]
    pub tx_nodes: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub accounts: Vec<RawAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an account: a mapping with name and balance"
)]
pub struct RawAccount {
    pub name: String,
    pub balance: RawBalance,
}

/// A balance as written: text (`"5 ether"`) or a YAML number.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBalance {
    Text(String),
    Wei(u128),
    Negative,
    Float(f64),
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

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with either local or azure"
)]
pub struct RawProvider {
    /// `local:` with nothing after it means all defaults.
    #[serde(default, deserialize_with = "present_or_null")]
    pub local: Option<Option<RawLocal>>,
    #[serde(default, deserialize_with = "present_or_null")]
    pub azure: Option<Option<RawAzure>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with base_port (optional)")]
pub struct RawLocal {
    #[serde(default)]
    pub base_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with location and ssh_public_key_file"
)]
pub struct RawAzure {
    #[serde(default)]
    pub subscription_id: Option<String>,
    pub location: String,
    #[serde(default)]
    pub resource_group: Option<String>,
    #[serde(default)]
    pub address_space: Option<String>,
    #[serde(default)]
    pub vm_size: Option<String>,
    #[serde(default)]
    pub validator_vm_size: Option<String>,
    #[serde(default)]
    pub tx_vm_size: Option<String>,
    #[serde(default)]
    pub admin_username: Option<String>,
    #[serde(default)]
    pub ssh_public_key: Option<String>,
    #[serde(default)]
    pub ssh_public_key_file: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_rpc_cidrs: Vec<String>,
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
