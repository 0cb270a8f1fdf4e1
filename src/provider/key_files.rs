//! Restoring key files that went missing from their other copy, as plan found them
//! (`plan::key_files`: which are missing, which can be restored, which are lost).

use super::ProviderError;
use crate::crypto::keystore::{self, ScryptParams};
use crate::crypto::SecretKey;
use crate::plan::key_files::{node_copy, output_path};
use crate::state::fsutil::{create_private_dir, write_secret};
use crate::state::{Kind, State};
use std::path::Path;

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
        output_path(r, "keystore").unwrap_or_default(),
        output_path(r, "password_file").unwrap_or_default(),
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
            let raw = output_path(r, "key_file").unwrap_or_default();
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
