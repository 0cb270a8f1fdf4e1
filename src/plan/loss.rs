//! Destructive changes, loud and guarded: which changes of a plan would lose what exists
//! nowhere else — the chain itself (every node holding it deleted or re-initialised) or
//! the key of an account that holds ether. Plan shows each with a `!` line; apply refuses
//! them without `--allow-data-loss`.

use super::Plan;

use crate::consensus::liveness;
use crate::state::State;
use crate::state::{Action, Kind};
use crate::topology::Wei;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataLoss {
    pub addr: String,
    /// What would be lost, for the `!` line.
    pub what: String,
}

/// How a node's change starts when geth cannot open its chain data: apply deletes that
/// data and resyncs the node from its peers (a `!` change; see `corrupt_chain_data`).
pub const CORRUPT_CHAIN_DATA: &str = "chain data corrupt";

fn is_node(k: Kind) -> bool {
    matches!(k, Kind::LocalNode | Kind::AzureVm)
}

/// Marks the changes of `plan` that lose data. `balance(address)` asks the live chain for
/// an account's balance (None: no node answered). `head` is the live head, if known.
pub fn mark(
    plan: &mut Plan,
    state: Option<&State>,
    head: Option<u64>,
    balance: &dyn Fn(&str) -> Option<u128>,
) {
    plan.data_loss.clear();
    let Some(st) = state else { return };
    if plan.destroy {
        return;
    }
    // The chain: lost when no node in state keeps its data through this plan.
    let nodes: Vec<&String> = st
        .resources
        .iter()
        .filter(|(_, r)| is_node(r.kind))
        .map(|(a, _)| a)
        .collect();
    let wiped: Vec<&super::Change> = plan
        .changes
        .iter()
        .filter(|c| is_node(c.kind) && matches!(c.action, Action::Destroy | Action::Replace))
        .collect();
    let chain_lost = !nodes.is_empty() && nodes.iter().all(|n| wiped.iter().any(|c| &&c.addr == n));
    if chain_lost {
        let head = head.map(|h| format!(" at block #{h}")).unwrap_or_default();
        for c in &wiped {
            plan.data_loss.push(DataLoss {
                addr: c.addr.clone(),
                what: format!(
                    "its chain data is {}, and no other node keeps the chain{head}: the \
                     network restarts from genesis and every transaction and balance since is lost",
                    if c.action == Action::Replace {
                        "deleted and re-initialised"
                    } else {
                        "deleted"
                    }
                ),
            });
        }
    }
    corrupt_chain_data(plan, head);
    funded_accounts(plan, st, balance);
}

/// Whether `c` deletes a node's chain data geth cannot open (the provider planned it so
/// only while another node holds the chain).
pub fn is_corrupt_resync(c: &super::Change) -> bool {
    is_node(c.kind) && c.action == Action::Update && c.reason.starts_with(CORRUPT_CHAIN_DATA)
}

/// The `!` lines of nodes whose corrupt chain data apply deletes and resyncs from peers.
fn corrupt_chain_data(plan: &mut Plan, head: Option<u64>) {
    let head = head
        .map(|h| format!(" (at block #{h})"))
        .unwrap_or_default();
    let lines: Vec<DataLoss> = plan
        .changes
        .iter()
        .filter(|c| is_corrupt_resync(c))
        .map(|c| DataLoss {
            addr: c.addr.clone(),
            what: format!(
                "its chain data is deleted and re-initialised from genesis, then resynced from \
                 the nodes that hold the chain{head}; its keys (node key, signer keystore) are \
                 kept. Copy its geth/chaindata aside first if you want to examine it"
            ),
        })
        .collect();
    plan.data_loss.extend(lines);
}

/// The `!` lines of funded accounts whose keys the plan archives.
fn funded_accounts(plan: &mut Plan, st: &State, balance: &dyn Fn(&str) -> Option<u128>) {
    for c in plan.changes.iter().filter(|c| {
        c.kind == Kind::Account && matches!(c.action, Action::Destroy | Action::Replace)
    }) {
        let Some(address) = st.output_str(&c.addr, "address") else {
            continue;
        };
        // An address its owner holds the key of (an `address:` account, an external
        // member's account): consort holds no key, so none leaves its management.
        if st.resources[&c.addr].outputs["external"] == serde_json::Value::Bool(true) {
            continue;
        }
        let what = match balance(address) {
            Some(0) => continue,
            Some(b) => format!(
                "{address} holds {}: its key leaves consort's management (archived under \
                 .consort/{}/archive/)",
                Wei(b),
                plan.network
            ),
            None => format!(
                "{address} may hold ether (no node answered for its balance): its key leaves \
                 consort's management (archived under .consort/{}/archive/)",
                plan.network
            ),
        };
        plan.data_loss.push(DataLoss {
            addr: c.addr.clone(),
            what,
        });
    }
}

/// What a `destroy` of one operator's part of a chain other operators run (a topology with
/// external members) loses: the chain lives on without this operator's nodes, so each of
/// its live signers is a signer gone for good until the others vote it out, and each
/// funded account's key leaves consort (archived, never deleted). `live_signers` is the
/// chain's signer set (None: no node answered; the signers state records count then);
/// `member_of(node)` names a node's member.
pub fn mark_shared_destroy(
    plan: &mut Plan,
    st: &State,
    live_signers: Option<&[String]>,
    member_of: &dyn Fn(&str) -> Option<String>,
    balance: &dyn Fn(&str) -> Option<u128>,
) {
    plan.data_loss.clear();
    let ours: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::SignerKey && c.action == Action::Destroy)
        .filter_map(|c| {
            let node = c.addr.strip_prefix("key.signer.")?;
            let address = st.output_str(&c.addr, "address")?;
            // The live set decides (the others may have voted it out already); without
            // one, what state records.
            let signing = match live_signers {
                Some(live) => live.iter().any(|a| a.eq_ignore_ascii_case(address)),
                None => st.resources.contains_key(&format!("signer.{node}")),
            };
            signing.then_some((c.addr.as_str(), address))
        })
        .collect();
    if !ours.is_empty() {
        let total = live_signers.map_or(ours.len(), |l| l.len()).max(ours.len());
        let need = liveness::quorum(total);
        let gone = ours.len();
        let halts = if total - gone < need {
            format!(
                " — only {} can still sign, so the chain halts",
                total - gone
            )
        } else {
            String::new()
        };
        let mut members: Vec<String> = ours
            .iter()
            .filter_map(|(a, _)| member_of(a.strip_prefix("key.signer.").unwrap_or(a)))
            .collect();
        members.dedup();
        let first = if members.is_empty() {
            "have the other operators vote them out first".to_string()
        } else {
            format!(
                "have another operator run `consort member remove {}` first (their votes take \
                 these signers out), then destroy",
                members.join("` and `consort member remove ")
            )
        };
        let lines: Vec<DataLoss> = ours
            .iter()
            .map(|(addr, address)| DataLoss {
                addr: addr.to_string(),
                what: format!(
                    "signer {address} stays a signer of the chain other operators run, and its \
                     key leaves consort (archived under .consort/{}/archive/): the consortium \
                     keeps {total} signers, {gone} of them gone for good: Clique needs \
                     {need}{halts}; {first}",
                    plan.network
                ),
            })
            .collect();
        plan.data_loss.extend(lines);
    }
    funded_accounts(plan, st, balance);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Change;
    use crate::state::ResourceState;
    use serde_json::json;

    fn st() -> State {
        let mut st = State::new("net", "local");
        add(
            &mut st,
            [
                ("node.a", Kind::LocalNode, json!({})),
                ("node.b", Kind::LocalNode, json!({})),
                ("account.m.rich", Kind::Account, json!({"address": "0xaa"})),
                ("account.m.poor", Kind::Account, json!({"address": "0xbb"})),
            ],
        );
        st
    }

    fn add<const N: usize>(st: &mut State, resources: [(&str, Kind, serde_json::Value); N]) {
        for (a, k, out) in resources {
            st.resources.insert(
                a.into(),
                ResourceState {
                    kind: k,
                    attrs: json!({}),
                    outputs: out,
                    deps: vec![],
                },
            );
        }
    }

    fn plan(changes: &[(&str, Kind, Action)], destroy: bool) -> Plan {
        Plan {
            format_version: 1,
            network: "net".into(),
            provider: "local".into(),
            state_lineage: None,
            state_serial: 0,
            topology_sha256: String::new(),
            destroy,
            unread: Vec::new(),
            ports: Default::default(),
            changes: changes
                .iter()
                .map(|(a, k, act)| Change {
                    addr: a.to_string(),
                    kind: *k,
                    action: *act,
                    reason: String::new(),
                    summary: String::new(),
                    before: None,
                    after: None,
                    deps: vec![],
                    record_only: false,
                })
                .collect(),
            warnings: vec![],
            data_loss: vec![],
        }
    }

    fn balance(a: &str) -> Option<u128> {
        (a == "0xaa").then_some(1000 * Wei::ETHER).or(Some(0))
    }

    #[test]
    fn replacing_every_node_loses_the_chain_one_node_does_not() {
        let st = st();
        let mut p = plan(
            &[
                ("node.a", Kind::LocalNode, Action::Replace),
                ("node.b", Kind::LocalNode, Action::Replace),
            ],
            false,
        );
        mark(&mut p, Some(&st), Some(42), &balance);
        assert_eq!(p.data_loss.len(), 2, "{:?}", p.data_loss);
        assert!(
            p.data_loss[0].what.contains("at block #42"),
            "{:?}",
            p.data_loss
        );
        let mut p = plan(&[("node.a", Kind::LocalNode, Action::Destroy)], false);
        mark(&mut p, Some(&st), Some(42), &balance);
        assert!(p.data_loss.is_empty(), "{:?}", p.data_loss);
    }

    #[test]
    fn a_corrupt_nodes_resync_is_marked_and_a_plain_restart_is_not() {
        let st = st();
        let mut p = plan(
            &[
                ("node.a", Kind::LocalNode, Action::Update),
                ("node.b", Kind::LocalNode, Action::Update),
            ],
            false,
        );
        p.changes[0].reason = format!("{CORRUPT_CHAIN_DATA}: pebble: malformed manifest file");
        p.changes[1].reason = "restart (process not running)".into();
        mark(&mut p, Some(&st), Some(7), &balance);
        assert_eq!(p.data_loss.len(), 1, "{:?}", p.data_loss);
        assert_eq!(p.data_loss[0].addr, "node.a");
        assert!(
            p.data_loss[0].what.contains("resynced"),
            "{:?}",
            p.data_loss
        );
        assert!(p.data_loss[0].what.contains("#7"), "{:?}", p.data_loss);
    }

    #[test]
    fn a_shared_chain_destroy_marks_live_signers_and_funded_keys() {
        let mut st = st();
        add(
            &mut st,
            [
                ("key.signer.a", Kind::SignerKey, json!({"address": "0xA1"})),
                ("key.signer.b", Kind::SignerKey, json!({"address": "0xb2"})),
            ],
        );
        let changes = [
            ("key.signer.a", Kind::SignerKey, Action::Destroy),
            ("key.signer.b", Kind::SignerKey, Action::Destroy),
            ("account.m.rich", Kind::Account, Action::Destroy),
            ("account.m.poor", Kind::Account, Action::Destroy),
        ];
        let member = |_: &str| Some("delta".to_string());
        // 0xb2 was voted out already: only 0xa1 is a live signer, 1 of 4.
        let live: Vec<String> = ["0xa1", "0xc3", "0xd4", "0xe5"].map(String::from).into();
        let mut p = plan(&changes, true);
        mark_shared_destroy(&mut p, &st, Some(&live), &member, &balance);
        let addrs: Vec<&str> = p.data_loss.iter().map(|l| l.addr.as_str()).collect();
        assert_eq!(
            addrs,
            ["key.signer.a", "account.m.rich"],
            "{:?}",
            p.data_loss
        );
        let w = &p.data_loss[0].what;
        assert!(
            w.contains("keeps 4 signers, 1 of them gone for good: Clique needs 3"),
            "{w}"
        );
        assert!(w.contains("consort member remove delta"), "{w}");
        assert!(!w.contains("halts"), "{w}");
        // Two of three: the chain halts.
        let live: Vec<String> = ["0xa1", "0xb2", "0xe5"].map(String::from).into();
        mark_shared_destroy(&mut p, &st, Some(&live), &member, &balance);
        assert!(
            p.data_loss[0].what.contains("chain halts"),
            "{:?}",
            p.data_loss
        );
    }

    #[test]
    fn only_funded_account_keys_are_marked_and_destroy_plans_never() {
        let st = st();
        let changes = [
            ("account.m.rich", Kind::Account, Action::Destroy),
            ("account.m.poor", Kind::Account, Action::Destroy),
        ];
        let mut p = plan(&changes, false);
        mark(&mut p, Some(&st), None, &balance);
        assert_eq!(p.data_loss.len(), 1, "{:?}", p.data_loss);
        assert_eq!(p.data_loss[0].addr, "account.m.rich");
        assert!(
            p.data_loss[0].what.contains("holds 1000 ether"),
            "{:?}",
            p.data_loss
        );
        let mut p = plan(&changes, true);
        mark(&mut p, Some(&st), None, &balance);
        assert!(p.data_loss.is_empty());
        // Unknown balance: marked, saying so.
        let mut p = plan(&changes[..1], false);
        mark(&mut p, Some(&st), None, &|_| None);
        assert!(
            p.data_loss[0].what.contains("may hold ether"),
            "{:?}",
            p.data_loss
        );
    }
}
