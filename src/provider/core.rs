//! Core resources every provider shares: node keys, signer keys, accounts, genesis.
//! Generated on this machine and stored under the state directory:
//!
//! ```text
//! .consort/<net>/keys/nodes/<node>/nodekey                   devp2p key, hex (0600)
//! .consort/<net>/keys/signers/<node>/keystore/UTC--…         V3 keystore (0600, light scrypt)
//! .consort/<net>/keys/signers/<node>/password                (0600)
//! .consort/<net>/keys/accounts/<member>/<name>/keystore/UTC--…  V3 keystore (0600, light scrypt)
//! .consort/<net>/keys/accounts/<member>/<name>/password      (0600)
//! .consort/<net>/keys/accounts/<member>/<name>/key           raw key, hex (0600): signs funding transfers
//! .consort/<net>/genesis.json
//! ```
//! A create whose files exist from an interrupted run (not in state) starts afresh; the
//! old files are moved to `.consort/<net>/archive/<time>/`, like the keys of destroyed
//! resources (a member or account removed from the topology): consort never deletes a key
//! itself — `consort destroy` removes the archive with everything else.

use super::{ApplyCtx, ProviderError};
use crate::chain::genesis::genesis_json;
use crate::crypto::keystore::{self, ScryptParams};
use crate::crypto::{Address, SecretKey};
use crate::plan::Change;
use crate::state::fsutil::{create_private_dir, write_atomic, write_secret};
use crate::state::{Action, Kind};
use crate::state::{GenesisRecord, ResourceState, State};
use crate::topology::Wei;
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

fn io(addr: &str, what: &str, path: &Path, e: std::io::Error) -> ProviderError {
    ProviderError::at(addr, format!("{what} {}: {e}", path.display()))
}

fn attr<'a>(change: &'a Change, key: &str) -> &'a str {
    change
        .after
        .as_ref()
        .or(change.before.as_ref())
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Where a core resource keeps its files.
pub fn resource_dir(root: &Path, change_addr: &str, kind: Kind) -> Option<PathBuf> {
    let keys = root.join("keys");
    match kind {
        Kind::NodeKey => Some(
            keys.join("nodes")
                .join(change_addr.strip_prefix("key.node.")?),
        ),
        Kind::SignerKey => Some(
            keys.join("signers")
                .join(change_addr.strip_prefix("key.signer.")?),
        ),
        Kind::Account => {
            let rest = change_addr.strip_prefix("account.")?;
            let (m, a) = rest.split_once('.')?;
            Some(keys.join("accounts").join(m).join(a))
        }
        _ => None,
    }
}

pub fn apply_change(
    ctx: &ApplyCtx,
    change: &Change,
) -> Result<Option<ResourceState>, ProviderError> {
    let root = ctx.state_dir.root.clone();
    match change.action {
        Action::Destroy => {
            destroy(ctx, change, &root)?;
            Ok(None)
        }
        Action::Replace => {
            destroy(ctx, change, &root)?;
            create(ctx, change, &root).map(Some)
        }
        Action::Create => create(ctx, change, &root).map(Some),
        Action::Update => {
            // Core resources have no updatable attributes: an update restores key files
            // that went missing from their other copy (see `key_files`).
            let st = ctx.snapshot();
            if matches!(change.kind, Kind::SignerKey | Kind::Account) {
                super::key_files::restore(&st, &change.addr)?;
            }
            Ok(st.resources.get(&change.addr).cloned())
        }
    }
}

fn destroy(ctx: &ApplyCtx, change: &Change, root: &Path) -> Result<(), ProviderError> {
    if change.kind == Kind::Genesis {
        for path in [
            root.join("genesis.json"),
            root.join(crate::state::JOINED_FILE),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&change.addr, "cannot remove", &path, e)),
            }
        }
        ctx.state.lock().unwrap().genesis = None;
        return Ok(());
    }
    if let Some(dir) = resource_dir(root, &change.addr, change.kind) {
        archive(root, &dir).map_err(|e| io(&change.addr, "cannot archive", &dir, e))?;
    }
    Ok(())
}

/// This command's archive directory: `<root>/archive/<UTC time>-<pid>/`.
fn archive_stamp() -> &'static str {
    static STAMP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STAMP.get_or_init(|| {
        let now = time::OffsetDateTime::now_utc();
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]-[minute]-[second]Z");
        format!(
            "{}-{}",
            now.format(&fmt).unwrap_or_default(),
            std::process::id()
        )
    })
}

/// Moves `dir` (under `root`) to `root/archive/<stamp>/<same relative path>`; nothing to
/// do if it does not exist. Returns where it went.
pub fn archive(root: &Path, dir: &Path) -> std::io::Result<Option<PathBuf>> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(None);
    }
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let base = root.join("archive").join(archive_stamp());
    let mut target = base.join(rel);
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = base.join(format!("{}.{n}", rel.display()));
    }
    let parent = target.parent().expect("archive path has a parent");
    create_private_dir(&root.join("archive"))?;
    fs::create_dir_all(parent)?;
    fs::rename(dir, &target)?;
    crate::state::fsutil::fsync_dir(parent)?;
    Ok(Some(target))
}

fn fresh_dir(root: &Path, addr: &str, dir: &Path) -> Result<(), ProviderError> {
    archive(root, dir).map_err(|e| io(addr, "cannot archive", dir, e))?;
    create_private_dir(dir).map_err(|e| io(addr, "cannot create", dir, e))
}

/// The key of a signer or account being created: its newest earlier copy that opens (see
/// `archived_keys`: a new key would be a new address), else a new one. Leaves `dir` fresh
/// (anything in it archived first).
fn earlier_or_new(
    ctx: &ApplyCtx,
    root: &Path,
    addr: &str,
    dir: &Path,
    kind: Kind,
) -> Result<SecretKey, ProviderError> {
    let earlier = super::archived_keys::newest(root, dir, kind);
    fresh_dir(root, addr, dir)?;
    Ok(match earlier {
        Some(e) => {
            ctx.emit(crate::events::Event::Step {
                subject: addr.to_string(),
                step: format!("restored earlier key {}", e.key.address().to_checksum()),
            });
            e.key
        }
        None => SecretKey::random(),
    })
}

/// Scrypt for every keystore consort writes: n = 2^12, p = 1. Key stretching only defends
/// guessable passwords; ours are 32 random alphanumerics (~190 bits), beyond brute force at
/// any work factor, and each sits 0600 beside its keystore anyway (an account's raw key
/// too). Standard scrypt (n = 2^18) would add ~0.5 s of CPU per key to the path to genesis
/// and to every signer's `--unlock`; even geth's light p = 6 costs 40 signers of a large
/// network over a CPU-second before genesis, and buys nothing.
const KEYSTORE_KDF: ScryptParams = ScryptParams::RANDOM_PASSWORD;

fn write_keystore(
    addr: &str,
    dir: &Path,
    key: &SecretKey,
    params: ScryptParams,
) -> Result<(PathBuf, PathBuf), ProviderError> {
    let password = keystore::random_password();
    let pw_path = dir.join("password");
    write_secret(&pw_path, password.as_bytes())
        .map_err(|e| io(addr, "cannot write", &pw_path, e))?;
    let ks_dir = dir.join("keystore");
    create_private_dir(&ks_dir).map_err(|e| io(addr, "cannot create", &ks_dir, e))?;
    let json = crate::parallel::cpu_bound(|| keystore::encrypt(key, &password, params));
    let name = keystore::file_name(&key.address(), time::OffsetDateTime::now_utc());
    let ks_path = ks_dir.join(name);
    write_secret(&ks_path, json.to_string().as_bytes())
        .map_err(|e| io(addr, "cannot write", &ks_path, e))?;
    Ok((ks_path, pw_path))
}

/// Writes a key directory this change just made fresh (anything there before is in
/// `archive/`): on failure (a full disk, say) what it half-wrote is removed, so no key
/// directory is left that state does not account for — or, if that fails too, the error
/// names it for removal.
fn written_or_removed<T>(
    addr: &str,
    dir: &Path,
    write: impl FnOnce() -> Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    write().map_err(|e| {
        let message = e.beside(addr);
        let then = match fs::remove_dir_all(dir) {
            Ok(()) => format!("; removed the half-written {}", dir.display()),
            Err(r) => format!(
                "; the half-written {} could not be removed ({r}): delete it before running again",
                dir.display()
            ),
        };
        ProviderError::at(addr, format!("{message}{then}"))
    })
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn create(ctx: &ApplyCtx, change: &Change, root: &Path) -> Result<ResourceState, ProviderError> {
    let addr = change.addr.as_str();
    let attrs = change.after.clone().unwrap_or(json!({}));
    let outputs = match change.kind {
        Kind::NodeKey => {
            let dir = resource_dir(root, addr, change.kind).expect("node key address");
            fresh_dir(root, addr, &dir)?;
            let key = SecretKey::random();
            let path = dir.join("nodekey");
            written_or_removed(addr, &dir, || {
                write_secret(&path, key.to_hex().as_bytes())
                    .map_err(|e| io(addr, "cannot write", &path, e))
            })?;
            ctx.emit(crate::events::Event::Step {
                subject: attr(change, "node").to_string(),
                step: "keys".into(),
            });
            json!({ "enode_id": key.enode_id(), "key_file": p(&path) })
        }
        Kind::SignerKey => {
            let dir = resource_dir(root, addr, change.kind).expect("signer address");
            let key = earlier_or_new(ctx, root, addr, &dir, change.kind)?;
            let (ks, pw) = written_or_removed(addr, &dir, || {
                write_keystore(addr, &dir, &key, KEYSTORE_KDF)
            })?;
            json!({
                "address": key.address().to_checksum(),
                "keystore": p(&ks),
                "keystore_dir": p(ks.parent().unwrap_or(&dir)),
                "password_file": p(&pw),
            })
        }
        // An address the user holds the key of: funded like the others, nothing to keep.
        Kind::Account if attrs.get("address").is_some_and(Value::is_string) => {
            let address: Address = attrs["address"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| ProviderError::at(addr, format!("{e}")))?;
            json!({ "address": address.to_checksum(), "external": true })
        }
        Kind::Account => {
            let dir = resource_dir(root, addr, change.kind).expect("account address");
            let key = earlier_or_new(ctx, root, addr, &dir, change.kind)?;
            let raw = dir.join("key");
            let (ks, pw) = written_or_removed(addr, &dir, || {
                let written = write_keystore(addr, &dir, &key, KEYSTORE_KDF)?;
                write_secret(&raw, key.to_hex().as_bytes())
                    .map_err(|e| io(addr, "cannot write", &raw, e))?;
                Ok(written)
            })?;
            json!({
                "address": key.address().to_checksum(),
                "keystore": p(&ks),
                "password_file": p(&pw),
                "key_file": p(&raw),
            })
        }
        Kind::Genesis => create_genesis(ctx, change, root)?,
        other => {
            return Err(ProviderError::at(
                addr,
                format!("{other:?} is not a core resource"),
            ))
        }
    };
    Ok(ResourceState {
        kind: change.kind,
        attrs,
        outputs,
        deps: change.deps.clone(),
    })
}

fn address_of(st: &State, addr: &str) -> Result<Address, ProviderError> {
    st.output_str(addr, "address")
        .ok_or_else(|| ProviderError::at(addr, "has no address in state; re-run apply"))?
        .parse()
        .map_err(|e| ProviderError::at(addr, format!("bad address in state: {e}")))
}

fn create_genesis(ctx: &ApplyCtx, change: &Change, root: &Path) -> Result<Value, ProviderError> {
    let topo = ctx.topology;
    let st = ctx.snapshot();
    let mut signer_names = Vec::new();
    let mut signers = Vec::new();
    for n in topo.nodes() {
        if n.role == crate::topology::Role::Validator {
            signers.push(address_of(&st, &format!("key.signer.{}", n.name))?);
            signer_names.push(n.name);
        }
    }
    let mut alloc = Vec::new();
    let mut accounts = Map::new();
    for m in &topo.members {
        for a in &m.accounts {
            let address = address_of(&st, &format!("account.{}.{}", m.name, a.name))?;
            alloc.push((address, a.balance));
            accounts.insert(
                format!("{}/{}", m.name, a.name),
                Value::String(a.balance.0.to_string()),
            );
        }
    }
    let net = &topo.network;
    let json = genesis_json(net.chain_id, net.clique, net.gas_limit, &signers, &alloc);
    let path = root.join("genesis.json");
    let mut text = serde_json::to_vec_pretty(&json).expect("genesis serialises");
    text.push(b'\n');
    write_atomic(&path, &text, 0o644).map_err(|e| io(&change.addr, "cannot write", &path, e))?;
    ctx.state.lock().unwrap().genesis = Some(GenesisRecord {
        json,
        hash: String::new(),
    });
    let total: u128 = alloc.iter().map(|(_, w)| w.0).sum();
    let funding = topo
        .funding_account()
        .map(|(m, a)| format!("{}/{}", m.name, a.name));
    Ok(json!({
        "file": p(&path),
        "funding_account": funding,
        "signers": signer_names,
        "accounts": accounts,
        "total_alloc": Wei(total).to_string(),
    }))
}

/// Removes the key directories left empty once every key resource is destroyed (each key
/// resource removes its own directory; their parents are the core's).
pub fn cleanup_key_dirs(state_dir: &crate::state::StateDir) {
    let keys = state_dir.keys_dir();
    for sub in ["nodes", "signers", "accounts"] {
        let d = keys.join(sub);
        if let Ok(entries) = fs::read_dir(&d) {
            for e in entries.flatten() {
                let _ = fs::remove_dir(e.path());
            }
        }
        let _ = fs::remove_dir(&d);
    }
    let _ = fs::remove_dir(&keys);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archived_keys_keep_their_path_and_never_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let key = root.join("keys/accounts/m/ops");
        fs::create_dir_all(&key).unwrap();
        fs::write(key.join("key"), b"one").unwrap();
        let first = archive(root, &key).unwrap().unwrap();
        assert!(!key.exists());
        assert!(
            first.starts_with(root.join("archive")),
            "{}",
            first.display()
        );
        assert!(
            first.ends_with("keys/accounts/m/ops"),
            "{}",
            first.display()
        );
        assert_eq!(fs::read(first.join("key")).unwrap(), b"one");
        fs::create_dir_all(&key).unwrap();
        fs::write(key.join("key"), b"two").unwrap();
        let second = archive(root, &key).unwrap().unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read(first.join("key")).unwrap(), b"one");
        assert_eq!(fs::read(second.join("key")).unwrap(), b"two");
        assert_eq!(archive(root, &key).unwrap(), None);
    }
}
