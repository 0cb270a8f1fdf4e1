//! The provider-independent desired resources of a topology (keys, accounts, genesis,
//! signers, funding). Plan building is in `build.rs`, what it refuses in `checks.rs`.
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

use super::Resource;
use crate::state::{Kind, State};
use crate::topology::{Role, Topology};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// What genesis fixed, read back from state.
#[derive(Debug, Default, Clone)]
pub struct GenesisFacts {
    pub exists: bool,
    pub signers: BTreeSet<String>,
    /// "member/account" → wei (decimal string).
    pub accounts: BTreeMap<String, String>,
    /// The default funding account genesis recorded (its first funded account).
    pub funding_account: Option<String>,
    /// The invitation this operator joined the network with (`consort join`): the genesis
    /// is another operator's, and that operator funds our accounts at `admit`.
    pub joined: Option<String>,
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
            funding_account: g.outputs["funding_account"].as_str().map(String::from),
            joined: g.outputs["joined"].as_str().map(String::from),
        }
    }
}

/// What the `genesis` resource is applied with: what genesis fixes of the network section.
/// The attributes of a provider's node resource: the ones every provider has (which node,
/// whose, which geth, and `mesh`, the digest of its planned peers), then the provider's own
/// (`extra`, an object).
pub fn node_attrs(
    n: &crate::topology::NodeSpec,
    topology: &Topology,
    mesh: String,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut attrs = json!({
        "node": n.name,
        "member": n.member,
        "role": n.role.to_string(),
        "geth": topology.client.geth,
        "mesh": mesh,
    });
    // Browser origins the tx node's RPC lets in (recorded only when set, so networks that
    // never set any plan no change): a change restarts the node with the new flags.
    if n.role == Role::Tx && !topology.rpc.cors_origins.is_empty() {
        attrs["cors_origins"] = json!(topology.rpc.cors_origins);
    }
    if let (Some(a), serde_json::Value::Object(extra)) = (attrs.as_object_mut(), extra) {
        a.extend(extra);
    }
    attrs
}

pub fn genesis_attrs(c: &crate::topology::Network) -> serde_json::Value {
    json!({
        "chain_id": c.chain_id,
        "period": c.clique.period,
        "epoch": c.clique.epoch,
        "gas_limit": c.gas_limit,
    })
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
            out.push(match &a.address {
                None => Resource {
                    addr: addr.clone(),
                    kind: Kind::Account,
                    attrs: json!({ "member": m.name, "name": a.name }),
                    deps: vec![],
                    summary: format!("account {id}: key + keystore + password file"),
                },
                Some(address) => Resource {
                    addr: addr.clone(),
                    kind: Kind::Account,
                    attrs: json!({ "member": m.name, "name": a.name, "address": address }),
                    deps: vec![],
                    summary: format!("account {id}: your address {address} (no key held)"),
                },
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
        attrs: genesis_attrs(c),
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
        // Named in the topology, else the default genesis recorded: never an account that
        // is itself waiting to be funded.
        let funder = topo
            .network
            .funding_account
            .clone()
            .or_else(|| facts.funding_account.clone());
        for m in &topo.members {
            for a in &m.accounts {
                let id = account_id(&m.name, &a.name);
                // A joiner's own accounts are funded by the operator that admits it.
                if facts.accounts.contains_key(&id) || (facts.joined.is_some() && m.is_operated()) {
                    continue;
                }
                let mut deps = vec![format!("account.{}.{}", m.name, a.name)];
                let mut senders = vec![m.name.as_str()];
                if let Some(f) = &funder {
                    let (fm, fa) = f.split_once('/').unwrap_or((f, ""));
                    deps.push(format!("account.{fm}.{fa}"));
                    // The transfer goes through the funder's nodes: they must be running
                    // (after an interrupted destroy they may be starting again).
                    senders.push(fm);
                }
                deps.extend(
                    nodes
                        .iter()
                        .filter(|n| senders.contains(&n.member.as_str()))
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
