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
//! A create whose files exist from an interrupted run (not in state) starts afresh.

use super::{ApplyCtx, ProviderError};
use crate::chain::genesis::genesis_json;
use crate::crypto::keystore::{self, ScryptParams};
use crate::crypto::{Address, SecretKey};
use crate::plan::{Action, Change, Kind};
use crate::state::fsutil::{create_private_dir, write_atomic, write_secret};
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
            // Core resources have no updatable attributes: keep what state has.
            let st = ctx.state.lock().unwrap();
            Ok(st.resources.get(&change.addr).cloned())
        }
    }
}

fn destroy(ctx: &ApplyCtx, change: &Change, root: &Path) -> Result<(), ProviderError> {
    if change.kind == Kind::Genesis {
        let path = root.join("genesis.json");
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&change.addr, "cannot remove", &path, e)),
        }
        ctx.state.lock().unwrap().genesis = None;
        return Ok(());
    }
    if let Some(dir) = resource_dir(root, &change.addr, change.kind) {
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&change.addr, "cannot remove", &dir, e)),
        }
    }
    Ok(())
}

fn fresh_dir(addr: &str, dir: &Path) -> Result<(), ProviderError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| io(addr, "cannot clear", dir, e))?;
    }
    create_private_dir(dir).map_err(|e| io(addr, "cannot create", dir, e))
}

/// Scrypt for every keystore consort writes: geth's light parameters. Key stretching
/// only defends guessable passwords; ours are 32 random alphanumerics (~190 bits), beyond
/// brute force at any work factor, and each sits 0600 beside its keystore anyway (an
/// account's raw key too). Standard scrypt (n = 2^18) would add ~0.5 s of CPU per key to
/// the path to genesis and to every signer's `--unlock`, and buy nothing.
const KEYSTORE_KDF: ScryptParams = ScryptParams::LIGHT;

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
    let json = keystore::encrypt(key, &password, params);
    let name = keystore::file_name(&key.address(), time::OffsetDateTime::now_utc());
    let ks_path = ks_dir.join(name);
    write_secret(&ks_path, json.to_string().as_bytes())
        .map_err(|e| io(addr, "cannot write", &ks_path, e))?;
    Ok((ks_path, pw_path))
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
            fresh_dir(addr, &dir)?;
            let key = SecretKey::random();
            let path = dir.join("nodekey");
            write_secret(&path, key.to_hex().as_bytes())
                .map_err(|e| io(addr, "cannot write", &path, e))?;
            ctx.emit(super::events::Event::Step {
                subject: attr(change, "node").to_string(),
                step: "keys".into(),
            });
            json!({ "enode_id": key.enode_id(), "key_file": p(&path) })
        }
        Kind::SignerKey => {
            let dir = resource_dir(root, addr, change.kind).expect("signer address");
            fresh_dir(addr, &dir)?;
            let key = SecretKey::random();
            let (ks, pw) = write_keystore(addr, &dir, &key, KEYSTORE_KDF)?;
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
            fresh_dir(addr, &dir)?;
            let key = SecretKey::random();
            let (ks, pw) = write_keystore(addr, &dir, &key, KEYSTORE_KDF)?;
            let raw = dir.join("key");
            write_secret(&raw, key.to_hex().as_bytes())
                .map_err(|e| io(addr, "cannot write", &raw, e))?;
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
