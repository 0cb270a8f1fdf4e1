//! Key files that went missing. A key already on the chain is never regenerated (a new key
//! is a new address: a genesis signer would silently stop being one, a funded account
//! would lose its balance). Plan checks every key file state names; what has another copy
//! is restored by apply (`~ key.signer.<n>` / `~ account.<m>.<a>`), what has none is said
//! plainly, with the way to replace it.
//!
//! The other copies: a validator's keystore and password are also in its node directory
//! (`nodes/<n>/keystore/`, `nodes/<n>/password`); an account's raw key file and its
//! keystore + password are each enough to rebuild the other.

use super::ProviderError;
use crate::crypto::keystore::{self, ScryptParams};
use crate::crypto::SecretKey;
use crate::plan::Kind;
use crate::state::fsutil::{create_private_dir, write_secret};
use crate::state::{ResourceState, State};
use crate::topology::{Role, Topology};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What plan learned about the key files.
#[derive(Debug, Default)]
pub struct KeyCheck {
    /// address → reason: restorable, apply restores it.
    pub drift: BTreeMap<String, String>,
    /// Keys the topology still needs and nothing can restore: plan refuses.
    pub lost: Vec<String>,
    /// Keys nothing can restore that the topology no longer needs (e.g. a departing
    /// validator): said, not refused.
    pub warnings: Vec<String>,
}

fn out(r: &ResourceState, k: &str) -> Option<PathBuf> {
    r.outputs.get(k).and_then(|v| v.as_str()).map(PathBuf::from)
}

/// The node dir copy of a validator's keystore and password (local provider layout).
fn node_copy(st: &State, node: &str, keystore: &Path) -> Option<(PathBuf, PathBuf)> {
    let datadir = st.output_str(&format!("node.{node}"), "datadir")?;
    let dir = Path::new(datadir);
    let ks = dir.join("keystore").join(keystore.file_name()?);
    let pw = dir.join("password");
    (ks.is_file() && pw.is_file()).then_some((ks, pw))
}

/// Checks every signer key and account key file that state names.
pub fn check(topology: &Topology, st: &State) -> KeyCheck {
    let mut c = KeyCheck::default();
    let validators: Vec<String> = topology
        .nodes()
        .into_iter()
        .filter(|n| n.role == Role::Validator)
        .map(|n| n.name)
        .collect();
    for (addr, r) in &st.resources {
        match r.kind {
            Kind::SignerKey => {
                let node = addr.strip_prefix("key.signer.").unwrap_or_default();
                let (Some(ks), Some(pw)) = (out(r, "keystore"), out(r, "password_file")) else {
                    continue;
                };
                if ks.is_file() && pw.is_file() {
                    continue;
                }
                let address = r.outputs["address"].as_str().unwrap_or("?");
                if node_copy(st, node, &ks).is_some() {
                    c.drift.insert(
                        addr.clone(),
                        format!("restore its missing keystore/password from the copy in node {node}'s directory"),
                    );
                } else if validators.iter().any(|v| v == node) {
                    c.lost.push(format!(
                        "{addr}: the keystore or password of signer {address} is gone ({} / {}) and no copy is left; consort never regenerates a key that is on the chain (a new key is a new address). Restore the files from a backup, or replace the validator: remove it from the topology (its address is voted out), apply, then add a new one (a new key is voted in)",
                        ks.display(),
                        pw.display()
                    ));
                } else {
                    c.warnings.push(format!(
                        "{addr}: the keystore of departing signer {address} is already gone"
                    ));
                }
            }
            Kind::Account => {
                let (Some(ks), Some(pw), Some(raw)) = (
                    out(r, "keystore"),
                    out(r, "password_file"),
                    out(r, "key_file"),
                ) else {
                    continue;
                };
                let (has_ks, has_raw) = (ks.is_file() && pw.is_file(), raw.is_file());
                let address = r.outputs["address"].as_str().unwrap_or("?");
                match (has_ks, has_raw) {
                    (true, true) => {}
                    (true, false) => {
                        c.drift.insert(addr.clone(), "restore its missing key file from its keystore".into());
                    }
                    (false, true) => {
                        c.drift.insert(
                            addr.clone(),
                            "rebuild its missing keystore/password from its key file (same address)".into(),
                        );
                    }
                    (false, false) => c.warnings.push(format!(
                        "{addr}: every key file of account {address} is gone ({}, {}); consort cannot recover it — restore the files from a backup (the address and its balance stay on the chain)",
                        ks.display(),
                        raw.display()
                    )),
                }
            }
            _ => {}
        }
    }
    c
}

fn io(addr: &str, what: &str, path: &Path, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::at(addr, format!("cannot {what} {}: {e}", path.display()))
}

/// Restores the missing files of `addr` from their other copy, checking that what is
/// restored opens with its password and gives the address state records.
pub fn restore(st: &State, addr: &str) -> Result<(), ProviderError> {
    let r = st
        .resources
        .get(addr)
        .ok_or_else(|| ProviderError::at(addr, "is not in state"))?;
    let want = r.outputs["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let check_address = |key: &SecretKey| -> Result<(), ProviderError> {
        if key.address().to_checksum().eq_ignore_ascii_case(&want) {
            Ok(())
        } else {
            Err(ProviderError::at(
                addr,
                format!(
                    "the copy holds the key of {}, not {want}: restore the files from a backup",
                    key.address().to_checksum()
                ),
            ))
        }
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| io(addr, "read", p, e));
    let write = |p: &Path, b: &[u8]| {
        if let Some(d) = p.parent() {
            create_private_dir(d).map_err(|e| io(addr, "create", d, e))?;
        }
        write_secret(p, b).map_err(|e| io(addr, "write", p, e))
    };
    let open = |ks: &[u8], pw: &[u8]| -> Result<SecretKey, ProviderError> {
        let json: serde_json::Value = serde_json::from_slice(ks)
            .map_err(|e| ProviderError::at(addr, format!("the keystore copy is not JSON: {e}")))?;
        let pw = String::from_utf8_lossy(pw);
        keystore::decrypt(&json, pw.trim_end())
            .map_err(|e| ProviderError::at(addr, format!("the keystore copy does not open: {e}")))
    };
    let (ks, pw) = (
        out(r, "keystore").unwrap_or_default(),
        out(r, "password_file").unwrap_or_default(),
    );
    match r.kind {
        Kind::SignerKey => {
            let node = addr.strip_prefix("key.signer.").unwrap_or_default();
            let (ks_copy, pw_copy) = node_copy(st, node, &ks)
                .ok_or_else(|| ProviderError::at(addr, "no copy of its keystore is left"))?;
            let (k, p) = (read(&ks_copy)?, read(&pw_copy)?);
            check_address(&open(&k, &p)?)?;
            write(&ks, &k)?;
            write(&pw, &p)?;
        }
        Kind::Account => {
            let raw = out(r, "key_file").unwrap_or_default();
            if ks.is_file() && pw.is_file() {
                let key = open(&read(&ks)?, &read(&pw)?)?;
                check_address(&key)?;
                write(&raw, key.to_hex().as_bytes())?;
            } else {
                let hex = String::from_utf8_lossy(&read(&raw)?).trim().to_string();
                let key = SecretKey::from_hex(&hex).map_err(|e| {
                    ProviderError::at(addr, format!("{} is not a key: {e}", raw.display()))
                })?;
                check_address(&key)?;
                let password = keystore::random_password();
                let json = keystore::encrypt(&key, &password, ScryptParams::RANDOM_PASSWORD);
                write(&pw, password.as_bytes())?;
                write(&ks, json.to_string().as_bytes())?;
            }
        }
        _ => {}
    }
    Ok(())
}
