//! Key files that went missing. A key already on the chain is never regenerated (a new key
//! is a new address: a genesis signer would silently stop being one, a funded account
//! would lose its balance). Plan checks every key file state names; what has another copy
//! is restored by apply (`~ key.signer.<n>` / `~ account.<m>.<a>`), what has none is said
//! plainly, with the way to replace it.
//!
//! The other copies: a validator's keystore and password are also in its node directory
//! (`nodes/<n>/keystore/`, `nodes/<n>/password`); an account's raw key file and its
//! keystore + password are each enough to rebuild the other.

use crate::state::{Kind, ResourceState, State};
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

pub fn output_path(r: &ResourceState, k: &str) -> Option<PathBuf> {
    r.outputs.get(k).and_then(|v| v.as_str()).map(PathBuf::from)
}

/// The node dir copy of a validator's keystore and password (local provider layout).
pub fn node_copy(st: &State, node: &str, keystore: &Path) -> Option<(PathBuf, PathBuf)> {
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
                let (Some(ks), Some(pw)) =
                    (output_path(r, "keystore"), output_path(r, "password_file"))
                else {
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
                    output_path(r, "keystore"),
                    output_path(r, "password_file"),
                    output_path(r, "key_file"),
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
