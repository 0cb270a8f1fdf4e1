//! Keys consort made once and set aside: a new key is a new address, so a signer or
//! account key that is created again (an interrupted `destroy` followed by `apply`, a
//! member removed and added back, a create killed before state recorded it) takes its
//! newest earlier copy that still opens instead of a fresh one. The chain may still know
//! that address — as a signer, or holding ether — and a fresh key would re-key the account
//! and fund it twice.
//!
//! Copies are looked for at the resource's own directory (files an interrupted create left
//! behind, not in state) and under `archive/<stamp>/<same relative path>`, newest first.
//! Only `destroy` deletes the archive, once the whole network is gone.

use crate::crypto::{keystore, SecretKey};
use crate::plan::Plan;
use crate::state::{Action, Kind};
use std::path::{Path, PathBuf};

/// A key found in an earlier copy.
pub struct Earlier {
    /// The directory holding the copy.
    pub dir: PathBuf,
    pub key: SecretKey,
}

/// The key in one copy of a signer's or account's directory: an account's raw `key` file,
/// else the keystore (`keystore/UTC--…`) opened with `password`.
fn load(dir: &Path, kind: Kind) -> Option<SecretKey> {
    if kind == Kind::Account {
        if let Ok(hex) = std::fs::read_to_string(dir.join("key")) {
            if let Ok(k) = SecretKey::from_hex(hex.trim()) {
                return Some(k);
            }
        }
    }
    let password = std::fs::read_to_string(dir.join("password")).ok()?;
    let ks = std::fs::read_dir(dir.join("keystore"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file())?;
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(ks).ok()?).ok()?;
    keystore::decrypt(&json, password.trim_end()).ok()
}

/// The newest earlier copy of `addr`'s key that opens (None: make a new key). `dir` is the
/// resource's directory under `root` (see `core::resource_dir`).
pub fn newest(root: &Path, dir: &Path, kind: Kind) -> Option<Earlier> {
    if !matches!(kind, Kind::SignerKey | Kind::Account) {
        return None;
    }
    let rel = dir.strip_prefix(root).ok()?;
    let mut stamps: Vec<PathBuf> = std::fs::read_dir(root.join("archive"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // `<UTC time>-<pid>`: the name sorts by time.
    stamps.sort();
    let archived = stamps.into_iter().rev().map(|s| s.join(rel));
    std::iter::once(dir.to_path_buf())
        .chain(archived)
        // Never through a symlink planted in place of a directory.
        .filter(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
        .find_map(|d| load(&d, kind).map(|key| Earlier { dir: d, key }))
}

/// Says in `plan` which created keys are earlier ones restored (and that their funding
/// sends nothing the address already holds).
pub fn annotate(plan: &mut Plan, root: &Path) {
    let mut restored = Vec::new();
    for c in plan.changes.iter_mut().filter(|c| {
        c.action == Action::Create
            && matches!(c.kind, Kind::SignerKey | Kind::Account)
            && !c
                .after
                .as_ref()
                .is_some_and(|a| a.get("address").is_some_and(|v| v.is_string()))
    }) {
        let Some(dir) = super::core::resource_dir(root, &c.addr, c.kind) else {
            continue;
        };
        let Some(e) = newest(root, &dir, c.kind) else {
            continue;
        };
        let address = e.key.address().to_checksum();
        let from = e.dir.strip_prefix(root).unwrap_or(&e.dir);
        c.summary = format!(
            "restores its earlier key {address} from {} (a new key would be a new address)",
            from.display()
        );
        if let Some(a) = c.addr.strip_prefix("account.") {
            restored.push((format!("fund.{a}"), address));
        }
    }
    for (fund, address) in restored {
        if let Some(c) = plan
            .changes
            .iter_mut()
            .find(|c| c.addr == fund && c.action == Action::Create)
        {
            c.summary
                .push_str(&format!(" (only what {address} does not hold already)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fsutil::write_secret;

    #[test]
    fn the_newest_copy_that_opens_wins_and_a_symlink_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = root.join("keys/accounts/m/a");
        assert!(newest(root, &dir, Kind::Account).is_none());
        let (old, new) = (SecretKey::random(), SecretKey::random());
        for (stamp, key) in [
            ("2026-01-01T00-00-00Z-1", &old),
            ("2026-02-01T00-00-00Z-1", &new),
        ] {
            let d = root.join("archive").join(stamp).join("keys/accounts/m/a");
            std::fs::create_dir_all(&d).unwrap();
            write_secret(&d.join("key"), key.to_hex().as_bytes()).unwrap();
        }
        let e = newest(root, &dir, Kind::Account).unwrap();
        assert_eq!(e.key.address(), new.address());
        // A newer copy that does not open is passed over.
        let broken = root.join("archive/2026-03-01T00-00-00Z-1/keys/accounts/m/a");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("key"), "not a key").unwrap();
        assert_eq!(
            newest(root, &dir, Kind::Account).unwrap().key.address(),
            new.address()
        );
        // Node keys are never restored.
        assert!(newest(root, &dir, Kind::NodeKey).is_none());
        // A symlink in place of the resource directory is not read.
        let elsewhere = tempfile::tempdir().unwrap();
        write_secret(
            &elsewhere.path().join("key"),
            SecretKey::random().to_hex().as_bytes(),
        )
        .unwrap();
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
        assert_eq!(
            newest(root, &dir, Kind::Account).unwrap().key.address(),
            new.address()
        );
    }
}
