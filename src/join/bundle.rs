//! The invitation and the join request, as files, and their canonical encoding.

use super::JoinError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

pub const INVITE_FORMAT: &str = "consort-invite/1";
pub const REQUEST_FORMAT: &str = "consort-join-request/1";

/// `consort invite NAME`: everything a new member needs to start nodes on the network, and
/// nothing secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    pub format: String,
    /// 128 random bits, hex: names this invitation at `admit`.
    pub invitation_id: String,
    /// Unix seconds after which `join` and `admit` refuse it.
    pub expires_at: u64,
    pub network: InviteNetwork,
    /// The members already in the network, as the inviting operator knows them.
    pub members: Vec<InviteMember>,
    pub invited: Invited,
    /// The signer address whose key signed this invitation (one of the inviting
    /// operator's validators), and the signature (see [`super::sign`]).
    pub signed_by: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteNetwork {
    pub name: String,
    pub chain_id: u64,
    pub clique_period: u64,
    pub clique_epoch: u64,
    pub gas_limit: u64,
    /// The genesis file every node is initialised with.
    pub genesis: Value,
    pub genesis_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteMember {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    pub signers: Vec<String>,
    /// Where its nodes are reached (the address its operator's nodes advertise).
    pub enodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invited {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    /// Accounts the admitting operator funds once admitted: (name, balance in wei).
    #[serde(default)]
    pub accounts: Vec<InvitedAccount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitedAccount {
    pub name: String,
    /// Decimal wei.
    pub balance: String,
}

/// `consort join`'s answer: the joiner's nodes and signers, signed by each signer key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub format: String,
    pub invitation_id: String,
    pub network: RequestNetwork,
    pub member: RequestMember,
    /// One per signer, in the order of `member.signers`.
    pub signatures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestNetwork {
    pub name: String,
    pub chain_id: u64,
    pub genesis_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestMember {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    pub enodes: Vec<String>,
    /// Signer addresses of its validators; empty for a member without validators.
    pub signers: Vec<String>,
    pub accounts: Vec<RequestAccount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestAccount {
    pub name: String,
    pub address: String,
    /// Decimal wei (as the invitation offered).
    pub balance: String,
}

/// Canonical JSON: object keys sorted at every level, no whitespace. The bytes that are
/// hashed and signed, so a re-indented file still verifies and any changed value does not.
pub fn canonical(v: &Value) -> Vec<u8> {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(v)).expect("JSON values serialise")
}

impl Invite {
    /// The signed part: everything but `signed_by` and `signature`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("invite serialises");
        if let Some(o) = v.as_object_mut() {
            o.remove("signed_by");
            o.remove("signature");
        }
        canonical(&v)
    }
}

impl JoinRequest {
    /// The signed part: everything but `signatures`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("request serialises");
        if let Some(o) = v.as_object_mut() {
            o.remove("signatures");
        }
        canonical(&v)
    }
}

/// Reads a bundle file, checking its `format`.
pub fn read<T: for<'de> Deserialize<'de>>(path: &Path, format: &str) -> Result<T, JoinError> {
    let file = |message: String| JoinError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file(format!("cannot read: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        file(format!(
            "not JSON (line {}, column {}: {e}); it must be the file `consort {}` wrote",
            e.line(),
            e.column(),
            if format == INVITE_FORMAT {
                "invite"
            } else {
                "join"
            }
        ))
    })?;
    match v.get("format").and_then(Value::as_str) {
        Some(f) if f == format => {}
        Some(f) => {
            return Err(file(format!(
                "is a {f:?} file, expected {format:?}; pass the {} here",
                if format == INVITE_FORMAT {
                    "invitation (`consort invite` wrote it)"
                } else {
                    "join request (`consort join` wrote it)"
                }
            )))
        }
        None => return Err(file(format!("has no \"format\": {format:?}"))),
    }
    serde_json::from_value(v).map_err(|e| file(format!("{e}")))
}

/// Writes a bundle (0644: it holds nothing secret), atomically.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), JoinError> {
    let mut text = serde_json::to_vec_pretty(value).expect("bundle serialises");
    text.push(b'\n');
    crate::state::fsutil::write_atomic(path, &text, 0o644).map_err(|e| JoinError::File {
        path: path.display().to_string(),
        message: format!("cannot write: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level_and_drops_whitespace() {
        let a = json!({"b": 1, "a": {"z": [ {"y": 2, "x": 1} ], "c": "s"}});
        assert_eq!(
            String::from_utf8(canonical(&a)).unwrap(),
            r#"{"a":{"c":"s","z":[{"x":1,"y":2}]},"b":1}"#
        );
        let b: Value = serde_json::from_str(
            "{ \"a\": {\"z\": [{\"x\": 1, \"y\": 2}], \"c\": \"s\"},\n \"b\": 1 }",
        )
        .unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }
}
