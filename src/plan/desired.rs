//! The provider-independent desired resources of a topology, and plan building.
//!
//! Addresses:
//! - `key.node.<node>`       NodeKey    devp2p key (enode id)
//! - `key.signer.<node>`     SignerKey  validator's signer key, keystore, password
//! - `account.<m>.<a>`       Account    application account key, keystore, password
//! - `genesis`               Genesis    fixed at first apply (signers + alloc recorded)
//! - `signer.<node>`         Signer     validator authorised: in genesis, or voted in/out
//! - `fund.<m>.<a>`          Funding    account added after genesis, funded by transfer
//!
//! Once genesis exists its signers and funded accounts are those recorded in its outputs;
//! validators and accounts added later become votes and transfers.

use super::{diff, Kind, Plan, Resource};
use crate::provider::{Provider, ProviderError};
use crate::state::State;
use crate::topology::{Role, Topology};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What genesis fixed, read back from state.
#[derive(Debug, Default, Clone)]
pub struct GenesisFacts {
    pub exists: bool,
    pub signers: BTreeSet<String>,
    /// "member/account" → wei (decimal string).
    pub accounts: BTreeMap<String, String>,
}

impl GenesisFacts {
    pub fn from_state(state: Option<&State>) -> GenesisFacts {
        let Some(g) = state.and_then(|s| s.resources.get("genesis")) else {
            return GenesisFacts::default();
        };
        let signers = g.outputs["signers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let accounts = g.outputs["accounts"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        GenesisFacts {
            exists: true,
            signers,
            accounts,
        }
    }
}

pub fn account_id(member: &str, name: &str) -> String {
    format!("{member}/{name}")
}

/// Core resources. `node_addr` maps a node name to the provider's address of that node
/// (signers and funding depend on nodes running).
pub fn core_resources(
    topo: &Topology,
    state: Option<&State>,
    node_addr: &dyn Fn(&str) -> String,
) -> Vec<Resource> {
    let facts = GenesisFacts::from_state(state);
    let nodes = topo.nodes();
    let mut out = Vec::new();
    for n in &nodes {
        out.push(Resource {
            addr: format!("key.node.{}", n.name),
            kind: Kind::NodeKey,
            attrs: json!({ "node": n.name }),
            deps: vec![],
            summary: "node key (enode known after apply)".into(),
        });
    }
    let validators: Vec<_> = nodes.iter().filter(|n| n.role == Role::Validator).collect();
    for n in &validators {
        out.push(Resource {
            addr: format!("key.signer.{}", n.name),
            kind: Kind::SignerKey,
            attrs: json!({ "node": n.name }),
            deps: vec![],
            summary: format!(
                "signer key + keystore of {} (address known after apply)",
                n.member
            ),
        });
    }
    let mut genesis_accounts = Vec::new();
    for m in &topo.members {
        for a in &m.accounts {
            let id = account_id(&m.name, &a.name);
            let addr = format!("account.{}.{}", m.name, a.name);
            out.push(Resource {
                addr: addr.clone(),
                kind: Kind::Account,
                attrs: json!({ "member": m.name, "name": a.name }),
                deps: vec![],
                summary: format!("account {id}: key + keystore + password file"),
            });
            if !facts.exists || facts.accounts.contains_key(&id) {
                genesis_accounts.push((addr, id, a.balance));
            }
        }
    }
    let genesis_signers: Vec<&str> = if facts.exists {
        validators
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| facts.signers.contains(*n))
            .collect()
    } else {
        validators.iter().map(|n| n.name.as_str()).collect()
    };
    let mut gdeps: Vec<String> = genesis_signers
        .iter()
        .map(|n| format!("key.signer.{n}"))
        .collect();
    gdeps.extend(genesis_accounts.iter().map(|(a, _, _)| a.clone()));
    let c = &topo.network;
    out.push(Resource {
        addr: "genesis".into(),
        kind: Kind::Genesis,
        attrs: json!({
            "chain_id": c.chain_id,
            "period": c.clique.period,
            "epoch": c.clique.epoch,
            "gas_limit": c.gas_limit,
        }),
        deps: if facts.exists { vec![] } else { gdeps },
        summary: if facts.exists {
            format!("chain {}, clique period {}s", c.chain_id, c.clique.period)
        } else {
            format!(
                "chain {}, clique period {}s, {} signer(s), {} funded account(s)",
                c.chain_id,
                c.clique.period,
                genesis_signers.len(),
                genesis_accounts.len()
            )
        },
    });

    let current_signers: Vec<&str> = if facts.exists {
        // Who signs now: genesis signers and voted-in validators still in state.
        let mut s: Vec<&str> = validators
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| {
                state
                    .map(|st| st.resources.contains_key(&format!("signer.{n}")))
                    .unwrap_or(false)
            })
            .collect();
        s.sort();
        s
    } else {
        vec![]
    };
    for n in &validators {
        let in_genesis = !facts.exists || facts.signers.contains(&n.name);
        let mut deps = vec![format!("key.signer.{}", n.name), node_addr(&n.name)];
        let summary = if in_genesis {
            format!("genesis signer of {}", n.member)
        } else {
            deps.extend(current_signers.iter().map(|s| node_addr(s)));
            format!(
                "vote in signer of {} by a majority of {}",
                n.member,
                if current_signers.is_empty() {
                    "the current signers".to_string()
                } else {
                    current_signers.join(", ")
                }
            )
        };
        out.push(Resource {
            addr: format!("signer.{}", n.name),
            kind: Kind::Signer,
            attrs: json!({ "node": n.name, "member": n.member, "genesis": in_genesis }),
            deps,
            summary,
        });
    }

    if facts.exists {
        let funder = topo
            .funding_account()
            .map(|(m, a)| account_id(&m.name, &a.name));
        for m in &topo.members {
            for a in &m.accounts {
                let id = account_id(&m.name, &a.name);
                if facts.accounts.contains_key(&id) {
                    continue;
                }
                let mut deps = vec![format!("account.{}.{}", m.name, a.name)];
                if let Some(f) = &funder {
                    let (fm, fa) = f.split_once('/').unwrap_or((f, ""));
                    deps.push(format!("account.{fm}.{fa}"));
                }
                deps.extend(
                    nodes
                        .iter()
                        .filter(|n| n.member == m.name)
                        .map(|n| node_addr(&n.name)),
                );
                out.push(Resource {
                    addr: format!("fund.{}.{}", m.name, a.name),
                    kind: Kind::Funding,
                    attrs: json!({
                        "member": m.name,
                        "name": a.name,
                        "balance": a.balance.0.to_string(),
                        "from": funder,
                    }),
                    deps,
                    summary: format!(
                        "transfer {} to {id} from {}",
                        a.balance,
                        funder.as_deref().unwrap_or("(no funding account)")
                    ),
                });
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Order in which changes are listed (and, for equal readiness, started).
fn kind_rank(k: Kind) -> u8 {
    match k {
        Kind::NodeKey => 0,
        Kind::SignerKey => 1,
        Kind::Account => 2,
        Kind::Genesis => 3,
        Kind::AzureResourceGroup => 4,
        Kind::AzureVnet => 5,
        Kind::AzureNsg => 6,
        Kind::AzureSubnet => 7,
        Kind::AzurePublicIp => 8,
        Kind::AzureNic => 9,
        Kind::AzureVm => 10,
        Kind::LocalNode => 11,
        Kind::Signer => 12,
        Kind::Funding => 13,
    }
}

pub struct PlanInput<'a> {
    pub topology: &'a Topology,
    pub topology_sha256: String,
    pub state: Option<&'a State>,
    pub destroy: bool,
    /// Ask the provider for live drift (local: process liveness; Azure: `--refresh`).
    pub refresh: bool,
}

pub fn build(input: PlanInput, provider: &dyn Provider) -> Result<Plan, PlanError> {
    let topo = input.topology;
    let state = input.state;
    let warnings = Vec::new();
    if let Some(st) = state {
        if st.provider != provider.name() {
            return Err(PlanError::Refused(format!(
                "network {:?} was deployed with the {} provider but the topology now says {}; \
                 run `consort destroy` with the old topology first",
                st.network,
                st.provider,
                provider.name()
            )));
        }
    }
    let desired = if input.destroy {
        vec![]
    } else {
        let node_addr = |n: &str| provider.node_addr(n);
        let mut core = core_resources(topo, state, &node_addr);
        let prov = provider.desired(topo, state, &core)?;
        core.extend(prov);
        core
    };
    if !input.destroy {
        check_genesis_unchanged(topo, state, &desired)?;
    }
    let drift = match (state, input.refresh) {
        (Some(st), true) => provider.refresh(topo, st),
        _ => BTreeMap::new(),
    };
    let mut changes = diff(&desired, state, &drift);
    describe_mesh_changes(topo, state, input.destroy, &mut changes);
    changes.sort_by(|a, b| {
        let da = a.action == super::Action::Destroy;
        let db = b.action == super::Action::Destroy;
        let ra = kind_rank(a.kind);
        let rb = kind_rank(b.kind);
        // Creates in dependency-ish order, destroys in reverse.
        (da, if da { u8::MAX - ra } else { ra }, &a.addr).cmp(&(
            db,
            if db { u8::MAX - rb } else { rb },
            &b.addr,
        ))
    });
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        network: topo.network.name.clone(),
        provider: provider.name().to_string(),
        state_lineage: state.map(|s| s.lineage.clone()),
        state_serial: state.map(|s| s.serial).unwrap_or(0),
        topology_sha256: input.topology_sha256,
        destroy: input.destroy,
        changes,
        warnings,
    })
}

/// Genesis fixes chain id, Clique period/epoch, gas limit and the balances of the accounts
/// it funded: changing them on a deployed network would fork it. Refuse, saying what to do.
fn check_genesis_unchanged(
    topo: &Topology,
    state: Option<&State>,
    desired: &[Resource],
) -> Result<(), PlanError> {
    let Some(st) = state else { return Ok(()) };
    let Some(cur) = st.resources.get("genesis") else {
        return Ok(());
    };
    let Some(want) = desired.iter().find(|r| r.addr == "genesis") else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for key in ["chain_id", "period", "epoch", "gas_limit"] {
        if cur.attrs.get(key) != want.attrs.get(key) {
            problems.push(format!(
                "network.{}: {} → {}",
                match key {
                    "period" | "epoch" => format!("consensus.clique.{key}"),
                    k => k.to_string(),
                },
                cur.attrs
                    .get(key)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                want.attrs
                    .get(key)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            ));
        }
    }
    let facts = GenesisFacts::from_state(Some(st));
    for m in &topo.members {
        for a in &m.accounts {
            let id = account_id(&m.name, &a.name);
            if let Some(old) = facts.accounts.get(&id) {
                if *old != a.balance.0.to_string() {
                    let old_wei = old.parse::<u128>().map(crate::topology::Wei).ok();
                    problems.push(format!(
                        "members.{}.accounts.{}.balance: {} → {} (funded in genesis)",
                        m.name,
                        a.name,
                        old_wei
                            .map(|w| w.to_string())
                            .unwrap_or_else(|| old.clone()),
                        a.balance
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(PlanError::Refused(format!(
        "network {:?} is deployed and its genesis fixes these, which the topology now changes:\n  {}\n\
         Changing genesis would start a different chain. Either revert these lines, or run \
         `consort destroy` and then `consort apply` to start a new chain (all chain data is lost).\n\
         To give an account more ether, add a new account (it is funded by transfer) instead.",
        topo.network.name,
        problems.join("\n  ")
    )))
}

/// Nodes' `mesh` digests change together when nodes come or go: say which peers.
fn describe_mesh_changes(
    topo: &Topology,
    state: Option<&State>,
    destroy: bool,
    changes: &mut [super::Change],
) {
    let mesh_changed = |c: &super::Change| {
        c.action != super::Action::Destroy
            && c.before.as_ref().and_then(|b| b.get("mesh"))
                != c.after.as_ref().and_then(|a| a.get("mesh"))
            && c.before.as_ref().and_then(|b| b.get("mesh")).is_some()
    };
    if !changes.iter().any(mesh_changed) {
        return;
    }
    let want: BTreeSet<String> = if destroy {
        BTreeSet::new()
    } else {
        topo.nodes().into_iter().map(|n| n.name).collect()
    };
    let have: BTreeSet<String> = state
        .map(|s| {
            s.resources
                .values()
                .filter(|r| r.attrs.get("mesh").is_some())
                .filter_map(|r| {
                    r.attrs
                        .get("node")
                        .and_then(|v| v.as_str())
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    let added: Vec<&String> = want.difference(&have).collect();
    let removed: Vec<&String> = have.difference(&want).collect();
    let mut text = Vec::new();
    if !added.is_empty() {
        text.push(format!(
            "peer add {}",
            added
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !removed.is_empty() {
        text.push(format!(
            "peer remove {}",
            removed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let text = if text.is_empty() {
        "static peers changed".to_string()
    } else {
        text.join("; ")
    };
    for c in changes.iter_mut().filter(|c| mesh_changed(c)) {
        c.reason = if c.reason.is_empty() {
            text.clone()
        } else {
            format!("{text}; {}", c.reason)
        };
    }
}
