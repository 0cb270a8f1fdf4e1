//! Lost state must not mean a new chain.
//!
//! - [`unaccounted`]: what the state directory holds that state does not list (node
//!   data, live processes; with them the keys and genesis they belong to). Plan and apply
//!   refuse while there is any: planning from the missing state would start a new chain
//!   over them and delete their keys.
//! - [`recover`] (`consort state recover`): rebuilds state from the files on disk — keys,
//!   genesis.json, node dirs, pid files and the running nodes — so the same network carries
//!   on with the same addresses and chain.
//! - [`on_disk`]: everything found, for `destroy` without a usable state.
//!
//! The core layout is in `core.rs`; the local provider's node dirs in `local/recover.rs`.

use super::local::recover::{self as local, NodeOnDisk};
use super::{Provider, ProviderError};
use crate::crypto::{Address, SecretKey};
use crate::plan::{desired::core_resources, Resource};
use crate::rpc::{BlockId, RpcClient};
use crate::state::Kind;
use crate::state::{GenesisRecord, ResourceState, State, StateDir};
use crate::topology::{ProviderConfig, Role, Topology, Wei};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const RPC_TIMEOUT: Duration = Duration::from_secs(2);

fn is_local(topology: &Topology) -> bool {
    matches!(topology.provider, ProviderConfig::Local(_))
}

fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut v: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A key directory on disk: its state address and path relative to the state dir.
#[derive(Debug, Clone)]
struct KeyOnDisk {
    addr: String,
    rel: String,
    dir: PathBuf,
}

fn keys_on_disk(sd: &StateDir) -> Vec<KeyOnDisk> {
    let keys = sd.keys_dir();
    let mut out = Vec::new();
    for n in subdirs(&keys.join("nodes")) {
        out.push(KeyOnDisk {
            addr: format!("key.node.{n}"),
            rel: format!("keys/nodes/{n}"),
            dir: keys.join("nodes").join(&n),
        });
    }
    for n in subdirs(&keys.join("signers")) {
        out.push(KeyOnDisk {
            addr: format!("key.signer.{n}"),
            rel: format!("keys/signers/{n}"),
            dir: keys.join("signers").join(&n),
        });
    }
    for m in subdirs(&keys.join("accounts")) {
        for a in subdirs(&keys.join("accounts").join(&m)) {
            out.push(KeyOnDisk {
                addr: format!("account.{m}.{a}"),
                rel: format!("keys/accounts/{m}/{a}"),
                dir: keys.join("accounts").join(&m).join(&a),
            });
        }
    }
    out
}

/// The address in a keystore directory's `UTC--…` file.
fn keystore_in(dir: &Path) -> Option<(PathBuf, Address)> {
    let ks_dir = dir.join("keystore");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ks_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("UTC--"))
        })
        .collect();
    files.sort();
    let path = files.pop()?;
    let json: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let hex = json.get("address")?.as_str()?;
    let addr: Address = format!("0x{}", hex.trim_start_matches("0x")).parse().ok()?;
    Some((path, addr))
}

fn key_label(k: &KeyOnDisk) -> String {
    match keystore_in(&k.dir) {
        Some((_, a)) => format!("{} ({})", k.rel, a.to_checksum()),
        None => k.rel.clone(),
    }
}

/// Node dirs of the network (local provider; none elsewhere).
fn nodes(topology: &Topology, sd: &StateDir) -> Vec<NodeOnDisk> {
    if is_local(topology) {
        local::nodes_on_disk(sd)
    } else {
        vec![]
    }
}

/// What the state dir holds that `state` cannot account for, one line each; empty when
/// state accounts for everything. Files of a create that an interrupted run left before
/// recording it are accounted for: their node's key is in state (or, before genesis, no
/// chain can hold them yet).
pub fn unaccounted(topology: &Topology, sd: &StateDir, state: Option<&State>) -> Vec<String> {
    let has = |addr: &str| state.is_some_and(|s| s.resources.contains_key(addr));
    let genesis_known = has("genesis");
    let mut found = Vec::new();
    for n in nodes(topology, sd) {
        let evidence = n.chain_data || !n.processes.is_empty();
        let known = has(&format!("node.{}", n.name)) || has(&format!("key.node.{}", n.name));
        if evidence && (!genesis_known || !known) {
            found.push(n.describe(&sd.root));
        }
    }
    if !genesis_known && is_local(topology) {
        for (id, dir) in local::orphan_processes(sd) {
            found.push(format!(
                "geth pid {} running on {} (its directory is gone)",
                id.pid,
                dir.display()
            ));
        }
    }
    // Off this machine the chain lives elsewhere: a genesis.json state does not list
    // means keys already bound to a chain.
    let genesis_file = sd.root.join("genesis.json");
    if !genesis_known && !is_local(topology) && genesis_file.is_file() {
        found.push("genesis.json".into());
    }
    if found.is_empty() {
        return found;
    }
    // The keys and genesis that go with that chain data.
    for k in keys_on_disk(sd) {
        if !has(&k.addr) {
            found.push(key_label(&k));
        }
    }
    if !genesis_known && genesis_file.is_file() && !found.iter().any(|f| f == "genesis.json") {
        found.push("genesis.json".into());
    }
    found
}

/// Why plan/apply refuse, with what was found and how to recover.
pub fn refusal(sd: &StateDir, state: Option<&State>, found: &[String], file: &Path) -> String {
    let why = match state {
        None => format!("{} is missing", sd.state_file().display()),
        Some(_) => format!("{} does not list them", sd.state_file().display()),
    };
    let mut msg = format!(
        "{} holds network {} data that state cannot account for ({why}):\n  {}\n\
         Planning without them would start a new chain over this one and delete its keys.\n\
         Rebuild state from these files with `consort state recover -f {f}` (same keys, \
         same chain: the network carries on), then `consort plan -f {f}`.",
        sd.root.display(),
        sd.network,
        found.join("\n  "),
        f = file.display()
    );
    if let Some(b) = sd.newest_backup() {
        msg.push_str(&format!(
            "\nOr restore the newest backup: `cp {} {}`.",
            b.display(),
            sd.state_file().display()
        ));
    }
    msg.push_str(&format!(
        "\nTo really start over, `consort destroy -f {}` stops and deletes them.",
        file.display()
    ));
    msg
}

/// Live geth processes consort started that state does not record (a run killed between
/// starting a node and saving state): one line each, for plan warnings and status.
pub fn unrecorded_processes(topology: &Topology, sd: &StateDir, state: &State) -> Vec<String> {
    let mut out = Vec::new();
    // A command holding the lock records each node once it is up: not leftovers.
    let running = sd.lock_holder();
    for n in nodes(topology, sd) {
        let recorded = state
            .resources
            .get(&format!("node.{}", n.name))
            .and_then(|r| {
                Some((
                    r.outputs.get("pid")?.as_u64()?,
                    r.outputs.get("start_time")?.as_u64()?,
                ))
            });
        for p in &n.processes {
            if recorded != Some((p.pid as u64, p.start_time)) {
                if let Some(holder) = &running {
                    out.push(format!(
                        "node.{}: geth pid {} is running in {} and not recorded yet: {holder} is starting it",
                        n.name,
                        p.pid,
                        n.dir.display()
                    ));
                    continue;
                }
                out.push(format!(
                    "node.{}: geth pid {} is running in {} but state does not record it (an \
                     interrupted run); apply stops it and starts the node under consort's record",
                    n.name,
                    p.pid,
                    n.dir.display()
                ));
            }
        }
    }
    for (id, dir) in local::orphan_processes(sd) {
        if is_local(topology) {
            out.push(format!(
                "geth pid {} runs on {}, a node directory that no longer exists; `consort destroy` stops it",
                id.pid,
                dir.display()
            ));
        }
    }
    out
}

/// Everything the state dir holds, for `destroy` when state is missing or corrupt.
pub fn on_disk(topology: &Topology, sd: &StateDir) -> Vec<String> {
    let mut out: Vec<String> = nodes(topology, sd)
        .iter()
        .map(|n| n.describe(&sd.root))
        .collect();
    if is_local(topology) {
        for (id, dir) in local::orphan_processes(sd) {
            out.push(format!("geth pid {} running on {}", id.pid, dir.display()));
        }
    }
    out.extend(keys_on_disk(sd).iter().map(key_label));
    for f in [
        "genesis.json",
        crate::state::JOINED_FILE,
        "genesis-db",
        "state.json",
        "backups",
        "archive",
    ] {
        if sd.root.join(f).exists() {
            out.push(f.to_string());
        }
    }
    if let Ok(entries) = std::fs::read_dir(&sd.root) {
        let mut aside: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("state.json.corrupt-"))
            .collect();
        aside.sort();
        out.extend(aside);
    }
    out
}

/// What `recover` did.
#[derive(Debug)]
pub struct Recovery {
    pub state: State,
    /// Resources rebuilt, one line each.
    pub recovered: Vec<String>,
    /// Found but not rebuilt, with why.
    pub skipped: Vec<String>,
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn hex_u128(v: &Value) -> Option<u128> {
    let s = v.as_str()?;
    u128::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Rebuilds state from disk. Resources `existing` has are kept as they are; the others
/// named by the topology are rebuilt from their files when those exist. Attributes are
/// the topology's (so an unchanged topology plans no changes), outputs what the files
/// and the running nodes say. Nothing on disk is changed; the caller saves the state.
pub fn recover(
    topology: &Topology,
    sd: &StateDir,
    existing: Option<State>,
    provider: &dyn Provider,
) -> Result<Recovery, ProviderError> {
    let mut state = existing.unwrap_or_else(|| State::new(&topology.network.name, provider.name()));
    let st = &mut state;
    let mut recovered: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let wanted_nodes = topology.nodes();
    let node_names: BTreeSet<&str> = wanted_nodes.iter().map(|n| n.name.as_str()).collect();
    let mut account_ids: BTreeSet<String> = BTreeSet::new();
    for m in &topology.members {
        for a in &m.accounts {
            account_ids.insert(format!("account.{}.{}", m.name, a.name));
        }
    }

    // Keys (outputs only; attributes below, from the desired resources).
    let mut found: BTreeMap<String, Value> = BTreeMap::new();
    let mut signer_addrs: BTreeMap<Address, String> = BTreeMap::new();
    let mut account_addrs: BTreeMap<Address, String> = BTreeMap::new();
    for k in keys_on_disk(sd) {
        let known = match k.addr.split('.').next() {
            Some("key") => k
                .addr
                .rsplit_once('.')
                .is_some_and(|(_, n)| node_names.contains(n)),
            _ => account_ids.contains(&k.addr),
        };
        if !known {
            skipped.push(format!(
                "{}: not in the topology (add it back to the topology and run `consort state recover` again to keep it)",
                key_label(&k)
            ));
            continue;
        }
        let outputs = if k.addr.starts_with("key.node.") {
            let path = k.dir.join("nodekey");
            match std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| SecretKey::from_hex(&t).ok())
            {
                Some(key) => json!({ "enode_id": key.enode_id(), "key_file": s(&path) }),
                None => {
                    skipped.push(format!("{}: no readable nodekey", k.rel));
                    continue;
                }
            }
        } else {
            let Some((ks, address)) = keystore_in(&k.dir) else {
                skipped.push(format!("{}: no keystore file", k.rel));
                continue;
            };
            let pw = k.dir.join("password");
            if k.addr.starts_with("key.signer.") {
                signer_addrs.insert(address, k.addr["key.signer.".len()..].to_string());
                json!({
                    "address": address.to_checksum(),
                    "keystore": s(&ks),
                    "keystore_dir": s(ks.parent().unwrap_or(&k.dir)),
                    "password_file": s(&pw),
                })
            } else if !k.dir.join("key").is_file() || !pw.is_file() {
                skipped.push(format!(
                    "{}: its key or password file is missing",
                    key_label(&k)
                ));
                continue;
            } else {
                let id = k.addr["account.".len()..].replacen('.', "/", 1);
                account_addrs.insert(address, id);
                json!({
                    "address": address.to_checksum(),
                    "keystore": s(&ks),
                    "password_file": s(&pw),
                    "key_file": s(&k.dir.join("key")),
                })
            }
        };
        found.insert(k.addr.clone(), outputs);
    }
    // Keys already in state count for genesis names too.
    for (addr, r) in &st.resources {
        let Some(a) = r
            .outputs
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<Address>().ok())
        else {
            continue;
        };
        if let Some(n) = addr.strip_prefix("key.signer.") {
            signer_addrs.insert(a, n.to_string());
        } else if let Some(id) = addr.strip_prefix("account.") {
            account_addrs.insert(a, id.replacen('.', "/", 1));
        }
    }

    // Genesis: the file every node was initialised with.
    let genesis_path = sd.root.join("genesis.json");
    // Joined with an invitation (`consort join`): the genesis is the founder's, its signers
    // and accounts are other operators' keys, not lost ones.
    let joined = std::fs::read_to_string(sd.joined_file())
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let mut genesis_outputs = None;
    if !st.resources.contains_key("genesis") {
        if let Ok(text) = std::fs::read(&genesis_path) {
            let json: Value = serde_json::from_slice(&text).map_err(|e| {
                ProviderError::Other(format!(
                    "{} is not valid JSON ({e}); it cannot be recovered",
                    genesis_path.display()
                ))
            })?;
            let extra = json["extraData"].as_str().unwrap_or("");
            let bytes = hex::decode(extra.trim_start_matches("0x")).unwrap_or_default();
            let mut signers = Vec::new();
            if bytes.len() >= 32 + 65 {
                for chunk in bytes[32..bytes.len() - 65].chunks(20) {
                    let mut a = [0u8; 20];
                    if chunk.len() == 20 {
                        a.copy_from_slice(chunk);
                        match signer_addrs.get(&Address(a)) {
                            Some(n) => signers.push(n.clone()),
                            None if joined.is_some() => {}
                            None => skipped.push(format!(
                                "genesis signer {} has no key under keys/signers",
                                Address(a).to_checksum()
                            )),
                        }
                    }
                }
            }
            // Topology order, as apply records them.
            signers.sort_by_key(|n| wanted_nodes.iter().position(|w| &w.name == n));
            let mut accounts = Map::new();
            let mut total = 0u128;
            if let Some(alloc) = json["alloc"].as_object() {
                for (hexaddr, v) in alloc {
                    let Ok(a) =
                        format!("0x{}", hexaddr.trim_start_matches("0x")).parse::<Address>()
                    else {
                        continue;
                    };
                    let wei = hex_u128(&v["balance"]).unwrap_or(0);
                    total += wei;
                    match account_addrs.get(&a) {
                        Some(id) => {
                            accounts.insert(id.clone(), Value::String(wei.to_string()));
                        }
                        None if joined.is_some() => {}
                        None => skipped.push(format!(
                            "genesis account {} has no key under keys/accounts",
                            a.to_checksum()
                        )),
                    }
                }
            }
            // The default funding account: the topology's, if genesis funded it, else the
            // first funded account in topology order.
            let funding = topology
                .funding_account()
                .map(|(m, a)| format!("{}/{}", m.name, a.name))
                .filter(|f| accounts.contains_key(f))
                .or_else(|| {
                    topology.members.iter().find_map(|m| {
                        m.accounts
                            .iter()
                            .map(|a| format!("{}/{}", m.name, a.name))
                            .find(|f| accounts.contains_key(f))
                    })
                });
            let cfg = &json["config"];
            let attrs = json!({
                "chain_id": cfg["chainId"].as_u64(),
                "period": cfg["clique"]["period"].as_u64(),
                "epoch": cfg["clique"]["epoch"].as_u64(),
                "gas_limit": json["gasLimit"].as_str()
                    .and_then(|g| u64::from_str_radix(g.trim_start_matches("0x"), 16).ok()),
            });
            let mut deps: Vec<String> = signers.iter().map(|n| format!("key.signer.{n}")).collect();
            deps.extend(
                accounts
                    .keys()
                    .map(|id| format!("account.{}", id.replacen('/', ".", 1))),
            );
            st.genesis = Some(GenesisRecord {
                json,
                hash: String::new(),
            });
            genesis_outputs = Some(ResourceState {
                kind: Kind::Genesis,
                attrs,
                outputs: json!({
                    "file": s(&genesis_path),
                    "funding_account": funding,
                    "signers": signers,
                    "accounts": accounts,
                    "total_alloc": Wei(total).to_string(),
                }),
                deps,
            });
            if let (Some(g), Some(id)) = (genesis_outputs.as_mut(), &joined) {
                g.outputs["joined"] = json!(id);
            }
        }
    }
    if let Some(g) = genesis_outputs {
        st.resources.insert("genesis".into(), g);
        recovered.push(format!("genesis ({})", genesis_path.display()));
    }

    // The desired resources with that genesis: their attributes make an unchanged
    // topology plan no changes.
    let node_addr = |n: &str| provider.node_addr(n);
    let mut desired: Vec<Resource> = core_resources(topology, Some(st), &node_addr);
    let prov = provider.desired(topology, Some(st), &desired)?;
    desired.extend(prov);
    let desired: BTreeMap<String, Resource> =
        desired.into_iter().map(|r| (r.addr.clone(), r)).collect();
    let record =
        |st: &mut State, rec: &mut Vec<String>, addr: &str, outputs: Value, what: String| {
            if st.resources.contains_key(addr) {
                return;
            }
            let Some(d) = desired.get(addr) else { return };
            st.resources.insert(
                addr.to_string(),
                ResourceState {
                    kind: d.kind,
                    attrs: d.attrs.clone(),
                    outputs,
                    deps: d.deps.clone(),
                },
            );
            rec.push(what);
        };
    for (addr, outputs) in found {
        let what = format!(
            "{addr} ({})",
            outputs["address"].as_str().unwrap_or("node key")
        );
        record(st, &mut recovered, &addr, outputs, what);
    }

    // Nodes: their data dirs and running processes.
    // Each running node's control socket.
    let mut rpcs: Vec<RpcClient> = Vec::new();
    if let ProviderConfig::Local(cfg) = &topology.provider {
        let mut reserved: BTreeSet<u16> = BTreeSet::new();
        for r in st.resources.values().filter(|r| r.kind == Kind::LocalNode) {
            if let Ok(o) = serde_json::from_value::<super::local::NodeOutputs>(r.outputs.clone()) {
                reserved.extend(o.ports.all());
                if o.is_running() {
                    rpcs.push(o.control());
                }
            }
        }
        for n in local::nodes_on_disk(sd) {
            let addr = format!("node.{}", n.name);
            if st.resources.contains_key(&addr) {
                continue;
            }
            if !node_names.contains(n.name.as_str()) {
                skipped.push(format!(
                    "{}: not in the topology (add it back and run `consort state recover` again)",
                    n.describe(&sd.root)
                ));
                continue;
            }
            if !n.chain_data {
                skipped.push(format!(
                    "{}: no chain data (apply creates the node afresh)",
                    n.describe(&sd.root)
                ));
                continue;
            }
            let Some(enode_id) = st.output_str(&format!("key.node.{}", n.name), "enode_id") else {
                skipped.push(format!("{}: its node key is missing", n.describe(&sd.root)));
                continue;
            };
            let enode_id = enode_id.to_string();
            let o = local::node_outputs(
                &n,
                &enode_id,
                cfg.base_port,
                &topology.client.geth,
                &mut reserved,
            )
            .map_err(ProviderError::Other)?;
            let what = format!(
                "{addr} ({})",
                if o.pid != 0 {
                    format!("running, pid {}, {}", o.pid, o.ipc_path)
                } else {
                    "not running: apply restarts it on its chain data".to_string()
                }
            );
            if o.pid != 0 {
                rpcs.push(o.control());
            }
            let outputs = serde_json::to_value(&o).expect("outputs serialise");
            record(st, &mut recovered, &addr, outputs, what);
        }
    }

    // The chain, through a running node: genesis hash, voted-in signers, funded accounts.
    let rpc = rpcs.into_iter().find_map(|c| {
        let c = c.with_timeout(RPC_TIMEOUT);
        c.block_number().ok().map(|_| c)
    });
    if let (Some(c), Some(g)) = (&rpc, st.genesis.as_mut()) {
        if g.hash.is_empty() {
            if let Ok(h) = c.genesis_hash() {
                g.hash = h;
            }
        }
    }
    let live_signers: Option<Vec<Address>> = rpc.as_ref().and_then(|c| c.clique_get_signers().ok());
    for n in wanted_nodes.iter().filter(|n| n.role == Role::Validator) {
        let addr = format!("signer.{}", n.name);
        let Some(d) = desired.get(&addr) else {
            continue;
        };
        let Some(a) = st.output_str(&format!("key.signer.{}", n.name), "address") else {
            continue;
        };
        let a = a.to_string();
        let in_genesis = d.attrs["genesis"].as_bool().unwrap_or(false);
        let live = live_signers
            .as_ref()
            .is_some_and(|l| l.iter().any(|x| x.to_checksum() == a));
        if in_genesis {
            let what = format!("{addr} ({a}, genesis signer)");
            record(
                st,
                &mut recovered,
                &addr,
                json!({ "address": a, "via": "genesis" }),
                what,
            );
        } else if live {
            let what = format!("{addr} ({a}, a live signer)");
            record(
                st,
                &mut recovered,
                &addr,
                json!({ "address": a, "via": "vote" }),
                what,
            );
        } else if !st.resources.contains_key(&addr) {
            skipped.push(format!(
                "{addr}: {a} is not a live signer{} (plan votes it in)",
                if rpc.is_none() {
                    " as far as known: no node answered"
                } else {
                    ""
                }
            ));
        }
    }
    // The live-signer reconciliation record: the chain's signers as they are now (plan
    // compares them with the topology again anyway).
    if let Some(live) = &live_signers {
        let signers: Vec<String> = live.iter().map(|a| a.to_checksum()).collect();
        let what = format!("clique ({} live signer(s))", signers.len());
        record(
            st,
            &mut recovered,
            "clique",
            json!({ "signers": signers }),
            what,
        );
    }
    for (addr, d) in desired.iter().filter(|(_, d)| d.kind == Kind::Funding) {
        if st.resources.contains_key(addr) {
            continue;
        }
        let acct = format!("account.{}", &addr["fund.".len()..]);
        let Some(to) = st
            .output_str(&acct, "address")
            .and_then(|a| a.parse::<Address>().ok())
        else {
            continue;
        };
        let balance = rpc
            .as_ref()
            .and_then(|c| c.eth_get_balance(&to, BlockId::Latest).ok());
        match balance {
            Some(b) if b > 0 => {
                let what = format!("{addr} (holds {})", Wei(b));
                // As apply records it: the funding account's address.
                let from = d.attrs["from"]
                    .as_str()
                    .and_then(|f| {
                        st.output_str(&format!("account.{}", f.replacen('/', ".", 1)), "address")
                    })
                    .map(|a| Value::String(a.to_lowercase()))
                    .unwrap_or(Value::Null);
                record(
                    st,
                    &mut recovered,
                    addr,
                    json!({ "tx_hash": null, "from": from }),
                    what,
                );
            }
            _ => skipped.push(format!(
                "{addr}: {} (plan funds it)",
                if rpc.is_none() {
                    "no node answered for its balance; apply transfers only if it holds less"
                } else {
                    "it holds no ether"
                }
            )),
        }
    }
    Ok(Recovery {
        state,
        recovered,
        skipped,
    })
}
