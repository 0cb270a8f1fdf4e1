//! Plan building: the desired resources (core ones from `desired.rs`, the provider's
//! through `Planning`) diffed against state and the live drift the provider reports, after
//! the refusals of `checks.rs`, with each change's reason told in the user's terms.

use super::checks::{check_funding_unchanged, check_genesis_unchanged, check_membership};
use super::desired::core_resources;
use super::{diff, Change, Plan, Planning};
use crate::state::{Action, Kind, State};
use crate::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};

pub const PLAN_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Refused(String),
    /// The provider's error while giving its desired resources (`Planning::desired`).
    #[error(transparent)]
    Provider(Box<dyn std::error::Error + Send + Sync>),
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
        Kind::AzureVault => 10,
        Kind::AzureSecrets => 10,
        Kind::AzureNatGateway => 8,
        Kind::AzureVm => 10,
        Kind::LocalNode => 11,
        Kind::Signer => 12,
        Kind::Funding => 13,
        Kind::CliqueSigners => 14,
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

pub fn build(input: PlanInput, provider: &dyn Planning) -> Result<Plan, PlanError> {
    let topo = input.topology;
    let state = input.state;
    let warnings: Vec<String> = Vec::new();
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
    if input.refresh {
        provider
            .preflight(topo, input.destroy)
            .map_err(PlanError::Refused)?;
    }
    let (mut drift, unread) = match (state, input.refresh) {
        (Some(st), true) => (provider.refresh(topo, st), provider.unread()),
        _ => (BTreeMap::new(), Vec::new()),
    };
    let mut warnings = warnings;
    warnings.extend(provider.plan_notes(topo, &desired));
    if let (Some(st), false) = (state, input.destroy) {
        let keys = super::key_files::check(topo, st);
        if !keys.lost.is_empty() {
            return Err(PlanError::Refused(keys.lost.join("\n")));
        }
        drift.extend(keys.drift);
        warnings.extend(keys.warnings);
    }
    if let (Some(st), true, false) = (state, input.refresh, input.destroy) {
        provider.check_live(topo, st).map_err(PlanError::Refused)?;
    }
    if !input.destroy {
        check_genesis_unchanged(topo, state, &desired)?;
        check_funding_unchanged(state, &desired)?;
        if let Some(st) = state {
            check_membership(topo, st, &drift, provider)?;
        }
        let unfundable: Vec<&str> = desired
            .iter()
            .filter(|r| r.kind == Kind::Funding && r.attrs["from"].is_null())
            .map(|r| r.addr.as_str())
            .collect();
        if !unfundable.is_empty() {
            return Err(PlanError::Refused(format!(
                "accounts added after genesis are funded by a transfer, but the topology has \
                 no funding account for {}: give a member an account in genesis, or set \
                 network.funding_account: <member>/<account>",
                unfundable.join(", ")
            )));
        }
    }
    let mut changes = diff(&desired, state, &drift);
    if let (Some(st), true, false) = (state, input.refresh, input.destroy) {
        let done = provider.already_done(topo, st, &changes);
        for c in changes.iter_mut() {
            if let Some(why) = done.get(&c.addr) {
                c.record_only = true;
                c.reason = why.clone();
            }
        }
    }
    if input.refresh && !input.destroy {
        let held = provider.held_names(topo, state, &changes);
        for c in changes.iter_mut() {
            if let Some(what) = held.get(&c.addr) {
                c.summary = format!("{} — ~ {what}", c.summary);
            }
        }
    }
    if input.destroy {
        for c in changes.iter_mut() {
            c.reason = "destroy (consort destroy)".into();
        }
    }
    describe_mesh_changes(topo, state, input.destroy, &mut changes);
    if !input.destroy {
        describe_vote_outs(state, &mut changes);
    }
    changes.sort_by(|a, b| {
        let da = a.action == Action::Destroy;
        let db = b.action == Action::Destroy;
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
        data_loss: Vec::new(),
        unread,
        ports: BTreeMap::new(),
    })
}

/// A node's `mesh` digest changed: say which peers it gains and loses. Its old peers are
/// what state recorded (its static nodes, by enode id); the new ones the peering plan's.
fn describe_mesh_changes(
    topo: &Topology,
    state: Option<&State>,
    destroy: bool,
    changes: &mut [Change],
) {
    let mesh_changed = |c: &Change| {
        c.action != Action::Destroy
            && c.before.as_ref().and_then(|b| b.get("mesh"))
                != c.after.as_ref().and_then(|a| a.get("mesh"))
            && c.before.as_ref().and_then(|b| b.get("mesh")).is_some()
    };
    if destroy || !changes.iter().any(mesh_changed) {
        return;
    }
    let peering = super::peering::Peering::for_topology(topo);
    // enode id → node name, for every node key state knows and every other operator's
    // node the topology lists.
    let external = topo.external_nodes();
    let names: BTreeMap<&str, &str> = state
        .map(|s| {
            s.resources
                .iter()
                .filter_map(|(addr, r)| {
                    let name = addr.strip_prefix("key.node.")?;
                    Some((r.outputs.get("enode_id")?.as_str()?, name))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(
            external
                .iter()
                .filter_map(|(n, url)| Some((crate::rpc::enode_pubkey(url)?, n.name.as_str()))),
        )
        .collect();
    for c in changes.iter_mut().filter(|c| mesh_changed(c)) {
        let Some(node) = c
            .after
            .as_ref()
            .and_then(|a| a.get("node"))
            .and_then(|v| v.as_str())
            .map(String::from)
        else {
            continue;
        };
        let had: BTreeSet<&str> = state
            .and_then(|s| s.resources.get(&c.addr))
            .and_then(|r| r.outputs.get("static_nodes"))
            .and_then(|v| v.as_array())
            .map(|l| {
                l.iter()
                    .filter_map(|e| crate::rpc::enode_pubkey(e.as_str()?))
                    .filter_map(|id| names.get(id).copied())
                    .collect()
            })
            .unwrap_or_default();
        let wants: BTreeSet<&str> = peering.peers_of(&node).collect();
        let list = |v: Vec<&&str>| v.iter().map(|s| **s).collect::<Vec<_>>().join(", ");
        let added: Vec<&&str> = wants.difference(&had).collect();
        let removed: Vec<&&str> = had.difference(&wants).collect();
        let mut text = Vec::new();
        if !added.is_empty() {
            text.push(format!("peer add {}", list(added)));
        }
        if !removed.is_empty() {
            text.push(format!("peer remove {}", list(removed)));
        }
        let text = if text.is_empty() {
            "static peers changed".to_string()
        } else {
            text.join("; ")
        };
        c.reason = if c.reason.is_empty() {
            text
        } else {
            format!("{text}; {}", c.reason)
        };
    }
}

/// A signer leaving the topology is voted out by the running current signers (itself
/// included): say so, with its address when state knows it.
fn describe_vote_outs(state: Option<&State>, changes: &mut [Change]) {
    let Some(st) = state else { return };
    let signers: Vec<&str> = st
        .resources
        .iter()
        .filter(|(_, r)| r.kind == Kind::Signer)
        .filter_map(|(a, _)| a.strip_prefix("signer."))
        .collect();
    for c in changes
        .iter_mut()
        .filter(|c| c.kind == Kind::Signer && c.action == Action::Destroy)
    {
        let before = c.before.as_ref();
        let field = |k: &str| {
            before
                .and_then(|b| b.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (node, member) = (field("node"), field("member"));
        let who = match st.output_str(&format!("key.signer.{node}"), "address") {
            Some(a) => format!("{a} (signer of {member})"),
            None => format!("the signer of {member}"),
        };
        c.reason = format!("vote out {who} by a majority of {}", signers.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::desired::account_id;
    use crate::plan::{mesh_digest, Resource};
    use crate::state::ResourceState;
    use crate::topology::*;
    use serde_json::json;

    /// A provider with one resource per node, for plan tests (applies nothing).
    struct Nodes;
    impl Planning for Nodes {
        fn name(&self) -> &'static str {
            "local"
        }
        fn desired(
            &self,
            t: &Topology,
            _s: Option<&State>,
            _c: &[Resource],
        ) -> Result<Vec<Resource>, PlanError> {
            let nodes = t.nodes();
            let peering = crate::plan::peering::Peering::plan(&nodes);
            Ok(nodes
                .iter()
                .map(|n| Resource {
                    addr: format!("node.{}", n.name),
                    kind: Kind::LocalNode,
                    attrs: json!({"node": n.name, "member": n.member, "role": n.role,
                        "mesh": mesh_digest(peering.peers_of(&n.name).chain([n.name.as_str()]))}),
                    deps: vec!["key.node.*".into()],
                    summary: String::new(),
                })
                .collect())
        }
    }

    fn member(name: &str, validators: u32, tx: u32, accounts: &[&str]) -> Member {
        Member {
            name: name.into(),
            validators,
            tx_nodes: tx,
            accounts: accounts
                .iter()
                .map(|a| Account {
                    name: a.to_string(),
                    balance: Wei(1000 * Wei::ETHER),
                    address: None,
                })
                .collect(),
            external: None,
        }
    }

    fn topo(members: Vec<Member>) -> Topology {
        Topology {
            network: Network {
                name: "net".into(),
                chain_id: 707070,
                clique: Clique {
                    period: 5,
                    epoch: 30000,
                },
                gas_limit: 30_000_000,
                funding_account: None,
            },
            client: Client {
                geth: "1.13.15".into(),
            },
            members,
            provider: ProviderConfig::Local(LocalConfig::default()),
            rpc: Rpc::default(),
        }
    }

    fn plan(t: &Topology, st: Option<&State>) -> Result<Plan, PlanError> {
        plan_drift(t, st, false)
    }

    fn plan_drift(t: &Topology, st: Option<&State>, refresh: bool) -> Result<Plan, PlanError> {
        build(
            PlanInput {
                topology: t,
                topology_sha256: String::new(),
                state: st,
                destroy: false,
                refresh,
            },
            &Nodes,
        )
    }

    /// State as if `p` had been applied (genesis outputs filled like core::create_genesis).
    fn applied(t: &Topology, p: &Plan) -> State {
        let mut st = State::new("net", "local");
        for c in &p.changes {
            let outputs = if c.addr == "genesis" {
                let signers: Vec<String> = t
                    .nodes()
                    .into_iter()
                    .filter(|n| n.role == Role::Validator)
                    .map(|n| n.name)
                    .collect();
                let accounts: serde_json::Map<String, serde_json::Value> = t
                    .members
                    .iter()
                    .flat_map(|m| {
                        m.accounts.iter().map(move |a| {
                            (account_id(&m.name, &a.name), json!(a.balance.0.to_string()))
                        })
                    })
                    .collect();
                let funding = t
                    .funding_account()
                    .map(|(m, a)| account_id(&m.name, &a.name));
                json!({"signers": signers, "accounts": accounts, "funding_account": funding})
            } else if let Some(node) = c.addr.strip_prefix("key.node.") {
                json!({ "enode_id": fake_enode_id(node) })
            } else if let Some(node) = c.addr.strip_prefix("node.") {
                let peering = crate::plan::peering::Peering::plan(&t.nodes());
                let statics: Vec<String> = peering
                    .peers_of(node)
                    .map(|p| format!("enode://{}@127.0.0.1:1", fake_enode_id(p)))
                    .collect();
                json!({ "static_nodes": statics })
            } else {
                json!({})
            };
            st.resources.insert(
                c.addr.clone(),
                ResourceState {
                    kind: c.kind,
                    attrs: c.after.clone().unwrap(),
                    outputs,
                    deps: c.deps.clone(),
                },
            );
        }
        st
    }

    /// A stand-in enode id (128 hex digits) that names its node.
    fn fake_enode_id(node: &str) -> String {
        format!("{:0>128}", hex::encode(node))
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.changes
            .iter()
            .map(|c| {
                format!(
                    "{} {} | {}",
                    c.action.symbol(),
                    c.addr,
                    if c.reason.is_empty() {
                        &c.summary
                    } else {
                        &c.reason
                    }
                )
            })
            .collect()
    }

    #[test]
    fn first_plan_creates_keys_genesis_nodes_signers_in_order() {
        let t = topo(vec![member("a", 1, 1, &["t"]), member("b", 1, 0, &[])]);
        let p = plan(&t, None).unwrap();
        let got: Vec<String> = p
            .changes
            .iter()
            .map(|c| format!("{} {}", c.action.symbol(), c.addr))
            .collect();
        assert_eq!(
            got,
            [
                "+ key.node.a-tx-0",
                "+ key.node.a-validator-0",
                "+ key.node.b-validator-0",
                "+ key.signer.a-validator-0",
                "+ key.signer.b-validator-0",
                "+ account.a.t",
                "+ genesis",
                "+ node.a-tx-0",
                "+ node.a-validator-0",
                "+ node.b-validator-0",
                "+ signer.a-validator-0",
                "+ signer.b-validator-0",
            ]
        );
        let g = p.changes.iter().find(|c| c.addr == "genesis").unwrap();
        assert_eq!(
            g.deps,
            [
                "key.signer.a-validator-0",
                "key.signer.b-validator-0",
                "account.a.t"
            ]
        );
        assert_eq!(p.summary().add, 12);
        let text = crate::plan::display::render(&p);
        assert!(
            text.ends_with("Plan: 12 to add, 0 to change, 0 to destroy.\n"),
            "{text}"
        );
    }

    #[test]
    fn replan_after_apply_is_empty() {
        let t = topo(vec![member("a", 1, 1, &["t"])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let p = plan(&t, Some(&st)).unwrap();
        assert!(p.changes.is_empty(), "{:?}", lines(&p));
        assert!(crate::plan::display::render(&p).starts_with("No changes."));
    }

    #[test]
    fn adding_a_member_votes_funds_and_peers() {
        let t = topo(vec![member("a", 1, 0, &["t"]), member("b", 1, 0, &[])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.push(member("c", 1, 1, &["ops"]));
        let p = plan(&t2, Some(&st)).unwrap();
        let l = lines(&p);
        assert!(
            l.contains(&"~ node.a-validator-0 | peer add c-tx-0, c-validator-0".to_string()),
            "{l:#?}"
        );
        assert!(
            l.iter().any(|x| x.starts_with("+ signer.c-validator-0 | vote in signer of c by a majority of a-validator-0, b-validator-0")),
            "{l:#?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("+ fund.c.ops | transfer 1000 ether to c/ops from a/t")),
            "{l:#?}"
        );
        assert!(
            !l.iter().any(|x| x.contains("genesis")),
            "genesis untouched: {l:#?}"
        );
        let vote = p
            .changes
            .iter()
            .find(|c| c.addr == "signer.c-validator-0")
            .unwrap();
        assert!(vote.deps.contains(&"node.c-validator-0".to_string()));
        assert!(vote.deps.contains(&"node.a-validator-0".to_string()));
    }

    #[test]
    fn a_later_accounts_changed_balance_is_refused_not_planned_forever() {
        let t = topo(vec![member("a", 1, 0, &["t"])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.push(member("c", 1, 0, &["ops"]));
        let st2 = {
            let p = plan(&t2, Some(&st)).unwrap();
            let mut s2 = st.clone();
            s2.resources.extend(applied(&t2, &p).resources);
            s2
        };
        assert!(plan(&t2, Some(&st2)).unwrap().changes.is_empty());
        let mut t3 = t2.clone();
        t3.members[1].accounts[0].balance = Wei(2000 * Wei::ETHER);
        let err = plan(&t3, Some(&st2)).unwrap_err().to_string();
        assert!(
            err.contains("members.c.accounts.ops.balance: 1000 ether → 2000 ether"),
            "{err}"
        );
        assert!(err.contains("Revert the balance"), "{err}");
    }

    #[test]
    fn destroy_plans_say_so() {
        let t = topo(vec![member("a", 1, 0, &["t"])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let p = build(
            PlanInput {
                topology: &t,
                topology_sha256: String::new(),
                state: Some(&st),
                destroy: true,
                refresh: false,
            },
            &Nodes,
        )
        .unwrap();
        assert!(!p.changes.is_empty());
        for c in &p.changes {
            assert_eq!(c.reason, "destroy (consort destroy)", "{c:?}");
        }
    }

    #[test]
    fn removing_a_member_votes_out_and_unpeers() {
        let t = topo(vec![
            member("a", 1, 0, &["t"]),
            member("b", 1, 0, &[]),
            member("c", 1, 0, &[]),
        ]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.remove(2);
        let p = plan(&t2, Some(&st)).unwrap();
        let l = lines(&p);
        assert!(
            l.contains(
                &"- signer.c-validator-0 | vote out the signer of c by a majority of \
                  a-validator-0, b-validator-0, c-validator-0"
                    .to_string()
            ),
            "{l:#?}"
        );
        assert!(
            l.contains(&"~ node.a-validator-0 | peer remove c-validator-0".to_string()),
            "{l:#?}"
        );
        let node_destroy = p
            .changes
            .iter()
            .find(|c| c.addr == "node.c-validator-0")
            .unwrap();
        assert_eq!(node_destroy.action, Action::Destroy);
        // The vote-out depends on the node, so the executor destroys the node after it.
        let vote = p
            .changes
            .iter()
            .find(|c| c.addr == "signer.c-validator-0")
            .unwrap();
        assert!(vote.deps.contains(&"node.c-validator-0".to_string()));
    }

    #[test]
    fn genesis_changes_are_refused_with_the_way_out() {
        let t = topo(vec![member("a", 1, 0, &["t"])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.network.chain_id = 8080;
        t2.members[0].accounts[0].balance = Wei(5 * Wei::ETHER);
        let err = plan(&t2, Some(&st)).unwrap_err().to_string();
        assert!(err.contains("network.chain_id: 707070 → 8080"), "{err}");
        assert!(
            err.contains("members.a.accounts.t.balance: 1000 ether → 5 ether (funded in genesis)"),
            "{err}"
        );
        assert!(err.contains("consort destroy"), "{err}");
    }

    #[test]
    fn removal_leaving_no_signer_is_refused() {
        let t = topo(vec![member("a", 1, 0, &[]), member("b", 0, 1, &[])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.remove(0);
        let err = plan(&t2, Some(&st)).unwrap_err().to_string();
        assert!(err.contains("no signer"), "{err}");
    }

    /// A provider whose refresh reports the nodes `self.0` as not running.
    struct Down(&'static [&'static str]);
    impl Planning for Down {
        fn name(&self) -> &'static str {
            "local"
        }
        fn desired(
            &self,
            t: &Topology,
            s: Option<&State>,
            c: &[Resource],
        ) -> Result<Vec<Resource>, PlanError> {
            Nodes.desired(t, s, c)
        }
        fn refresh(&self, _: &Topology, _: &State) -> BTreeMap<String, String> {
            self.0
                .iter()
                .map(|n| (format!("node.{n}"), "restart (process not running)".into()))
                .collect()
        }
    }

    fn plan_with_down(
        t: &Topology,
        st: &State,
        down: &'static [&'static str],
    ) -> Result<Plan, PlanError> {
        build(
            PlanInput {
                topology: t,
                topology_sha256: String::new(),
                state: Some(st),
                destroy: false,
                refresh: true,
            },
            &Down(down),
        )
    }

    #[test]
    fn removal_the_current_signers_cannot_vote_through_is_refused() {
        let t = topo(vec![
            member("a", 1, 0, &[]),
            member("b", 1, 0, &[]),
            member("c", 1, 0, &[]),
            member("d", 1, 0, &[]),
        ]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.remove(3);
        // d and c down: a and b would still seal for {a, b, c}, but voting d out takes 3 of
        // the 4 current signers.
        let err = plan_with_down(&t2, &st, &["c-validator-0", "d-validator-0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs 3 of the 4 current signers"), "{err}");
        assert!(err.contains("only 2 are running"), "{err}");
        assert!(err.contains("c-validator-0, d-validator-0"), "{err}");
        // One down (c): a, b and d (voting itself out) are 3 of 4; a and b seal for 3.
        let p = plan_with_down(&t2, &st, &["c-validator-0"]).unwrap();
        assert!(p
            .changes
            .iter()
            .any(|c| c.addr == "signer.d-validator-0" && c.action == Action::Destroy));
    }

    #[test]
    fn removal_below_liveness_with_nodes_down_is_refused() {
        let t = topo(vec![
            member("a", 1, 0, &[]),
            member("b", 1, 0, &[]),
            member("c", 1, 0, &[]),
        ]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.remove(2);
        let err = plan_with_down(&t2, &st, &["b-validator-0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("only 1 running"), "{err}");
        assert!(err.contains("b-validator-0"), "{err}");
        assert!(err.contains("needs 2 of 2"), "{err}");
        assert!(
            !err.contains("  "),
            "no runs of spaces in the message: {err}"
        );
    }

    #[test]
    fn later_accounts_without_a_funding_account_are_refused() {
        let t = topo(vec![member("a", 1, 0, &[])]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.push(member("b", 0, 1, &["ops"]));
        let err = plan(&t2, Some(&st)).unwrap_err().to_string();
        assert!(err.contains("no funding account for fund.b.ops"), "{err}");
    }

    #[test]
    fn removing_the_funding_member_needs_another_named() {
        let t = topo(vec![
            member("a", 1, 0, &["t"]),
            member("b", 1, 0, &["u"]),
            member("c", 1, 0, &[]),
        ]);
        let st = applied(&t, &plan(&t, None).unwrap());
        let mut t2 = t.clone();
        t2.members.remove(0);
        let err = plan(&t2, Some(&st)).unwrap_err().to_string();
        assert!(err.contains("holds the funding account a/t"), "{err}");
        t2.network.funding_account = Some("b/u".into());
        plan(&t2, Some(&st)).unwrap();
    }
}
