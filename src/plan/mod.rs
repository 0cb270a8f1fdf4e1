//! Plan as data: desired resources diffed against state.
//!
//! A resource has an address (`node.contoso-validator-0`), a kind, non-secret attributes and
//! dependencies. `diff` compares desired with state (plus live drift from the provider) and
//! yields changes: `+` create, `~` update, `-` destroy, `-/+` replace, each with a reason.

pub mod build;
mod checks;
pub mod desired;
pub mod display;
pub mod key_files;
pub mod loss;
pub mod peering;
mod planning;
pub mod ports;

pub use planning::Planning;

use crate::state::{Action, Kind, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One desired resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub addr: String,
    pub kind: Kind,
    /// Non-secret, deterministic attributes (a JSON object). Compared with state to diff.
    pub attrs: Value,
    pub deps: Vec<String>,
    /// Human summary for plan output ("validator of contoso", "enode known after apply").
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub addr: String,
    pub kind: Kind,
    pub action: Action,
    pub reason: String,
    pub summary: String,
    /// Attributes in state (None for create).
    pub before: Option<Value>,
    /// Desired attributes (None for destroy).
    pub after: Option<Value>,
    /// For create/update/replace: desired deps. For destroy: the deps recorded in state.
    pub deps: Vec<String>,
    /// Already done on the live network (a refresh found it, e.g. a funding transfer an
    /// interrupted run got mined): apply only records it in state. Shown with `=`, not
    /// counted as a change (`--detailed-exitcode` 0, "No changes").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub network: String,
    pub provider: String,
    /// The state this plan was made against: `apply PLAN` refuses if it moved on.
    pub state_lineage: Option<String>,
    pub state_serial: u64,
    /// sha256 of the topology file's bytes when the plan was made.
    pub topology_sha256: String,
    pub destroy: bool,
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    /// Changes that would lose chain data or a funded key (shown with `!`); apply refuses
    /// them without `--allow-data-loss`. Never set on destroy plans (`consort destroy`
    /// asks on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_loss: Vec<loss::DataLoss>,
    /// What the refresh could not read (each names the resource and why), e.g. a validator
    /// whose Run Command stayed busy: such a plan never says "No changes", since it does
    /// not know (see `Planning::unread`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
    /// The ports each new node will get (local provider), by node name: shown under its
    /// `+ node.<name>` line; apply reports the nodes that got others (a port taken since).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, ports::PlannedPorts>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

/// Does dependency `dep` name `addr`? A dep ending in `*` names every address with that
/// prefix (`key.node.*`: all node keys), which keeps full-mesh dependencies O(n).
pub fn dep_matches(dep: &str, addr: &str) -> bool {
    match dep.strip_suffix('*') {
        Some(prefix) => addr.starts_with(prefix),
        None => dep == addr,
    }
}

impl Plan {
    /// The heaviest chain of changes along their dependencies (exact or `prefix*`), each
    /// weighing `weight(change)`: with a provider's per-operation time as the weight, the
    /// shortest an apply could take however parallel it runs.
    pub fn longest_chain(&self, weight: impl Fn(&Change) -> u32) -> u32 {
        fn visit(
            i: usize,
            changes: &[Change],
            weight: &dyn Fn(&Change) -> u32,
            memo: &mut [Option<u32>],
        ) -> u32 {
            if let Some(d) = memo[i] {
                return d;
            }
            // Dependencies never form a cycle; a provisional 0 keeps a bad graph finite.
            memo[i] = Some(0);
            let c = &changes[i];
            let before = (0..changes.len())
                .filter(|&j| j != i && c.deps.iter().any(|d| dep_matches(d, &changes[j].addr)))
                .map(|j| visit(j, changes, weight, memo))
                .max()
                .unwrap_or(0);
            let d = before + weight(c);
            memo[i] = Some(d);
            d
        }
        let mut memo = vec![None; self.changes.len()];
        (0..self.changes.len())
            .map(|i| visit(i, &self.changes, &weight, &mut memo))
            .max()
            .unwrap_or(0)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in self.changes.iter().filter(|c| !c.record_only) {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Destroy => s.destroy += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1
                }
            }
        }
        s
    }
    /// No change to make (record-only steps are not changes).
    pub fn is_empty(&self) -> bool {
        self.changes.iter().all(|c| c.record_only)
    }
}

/// Diffs desired against state. `drift` maps addresses of resources that exist in state
/// but need work anyway (e.g. a dead process) to the reason.
pub fn diff(
    desired: &[Resource],
    state: Option<&State>,
    drift: &BTreeMap<String, String>,
) -> Vec<Change> {
    let empty = BTreeMap::new();
    let existing = state.map(|s| &s.resources).unwrap_or(&empty);
    let mut changes = Vec::new();
    let mut wanted = BTreeSet::new();
    for r in desired {
        wanted.insert(r.addr.as_str());
        match existing.get(&r.addr) {
            None => changes.push(Change {
                addr: r.addr.clone(),
                kind: r.kind,
                action: Action::Create,
                reason: String::new(),
                summary: r.summary.clone(),
                before: None,
                after: Some(r.attrs.clone()),
                deps: r.deps.clone(),
                record_only: false,
            }),
            Some(cur) => {
                let changed = changed_keys(&cur.attrs, &r.attrs);
                if changed.is_empty() {
                    if let Some(reason) = drift.get(&r.addr) {
                        changes.push(Change {
                            addr: r.addr.clone(),
                            kind: r.kind,
                            action: Action::Update,
                            reason: reason.clone(),
                            summary: r.summary.clone(),
                            before: Some(cur.attrs.clone()),
                            after: Some(r.attrs.clone()),
                            deps: r.deps.clone(),
                            record_only: false,
                        });
                    }
                    continue;
                }
                let forced: Vec<&String> = changed
                    .iter()
                    .filter(|k| r.kind.force_new().contains(&k.as_str()))
                    .collect();
                let (action, reason) = if forced.is_empty() {
                    (
                        Action::Update,
                        describe_changes(&cur.attrs, &r.attrs, &changed),
                    )
                } else {
                    (
                        Action::Replace,
                        format!(
                            "{} (forces replacement)",
                            describe_changes(&cur.attrs, &r.attrs, &changed)
                        ),
                    )
                };
                changes.push(Change {
                    addr: r.addr.clone(),
                    kind: r.kind,
                    action,
                    reason,
                    summary: r.summary.clone(),
                    before: Some(cur.attrs.clone()),
                    after: Some(r.attrs.clone()),
                    deps: r.deps.clone(),
                    record_only: false,
                });
            }
        }
    }
    for (addr, cur) in existing {
        if !wanted.contains(addr.as_str()) {
            changes.push(Change {
                addr: addr.clone(),
                kind: cur.kind,
                action: Action::Destroy,
                reason: "no longer in the topology".into(),
                summary: String::new(),
                before: Some(cur.attrs.clone()),
                after: None,
                deps: cur.deps.clone(),
                record_only: false,
            });
        }
    }
    changes
}

/// A digest of the full node set: every node's `mesh` attribute. Adding or removing a node
/// changes it on every other node (its static peers change) in O(n) plan data.
pub fn mesh_digest<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut v: Vec<&str> = names.into_iter().collect();
    v.sort_unstable();
    let mut h = Sha256::new();
    for n in v {
        h.update(n.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..8])
}

fn changed_keys(before: &Value, after: &Value) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return if before == after {
            vec![]
        } else {
            vec!["value".into()]
        };
    };
    let mut keys: BTreeSet<&String> = b.keys().collect();
    keys.extend(a.keys());
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect()
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 60 {
                format!("{}…", s.chars().take(57).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// "peers: +delta-validator-0 -fabrikam-tx-0" for string lists, "size: a → b" otherwise.
fn describe_changes(before: &Value, after: &Value, keys: &[String]) -> String {
    keys.iter()
        // `mesh` is a digest; plan::build::build rewrites it as "peer add/remove …".
        .filter(|k| k.as_str() != "mesh")
        .map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            if let (Some(Value::Array(bl)), Some(Value::Array(al))) = (b, a) {
                let added: Vec<String> = al
                    .iter()
                    .filter(|x| !bl.contains(x))
                    .map(|x| format!("+{}", short(Some(x))))
                    .collect();
                let removed: Vec<String> = bl
                    .iter()
                    .filter(|x| !al.contains(x))
                    .map(|x| format!("-{}", short(Some(x))))
                    .collect();
                let mut parts = added;
                parts.extend(removed);
                if !parts.is_empty() {
                    return format!("{k}: {}", parts.join(" "));
                }
            }
            format!("{k}: {} → {}", short(b), short(a))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ResourceState;
    use serde_json::json;

    fn res(addr: &str, kind: Kind, attrs: Value) -> Resource {
        Resource {
            addr: addr.into(),
            kind,
            attrs,
            deps: vec![],
            summary: String::new(),
        }
    }

    #[test]
    fn diff_classifies_create_update_replace_destroy_and_drift() {
        let mut st = State::new("n", "local");
        for (a, k, v) in [
            (
                "node.a",
                Kind::LocalNode,
                json!({"role":"tx","peers":["b"]}),
            ),
            (
                "node.b",
                Kind::LocalNode,
                json!({"role":"tx","peers":["a"]}),
            ),
            ("node.c", Kind::LocalNode, json!({"role":"tx"})),
            ("node.gone", Kind::LocalNode, json!({"role":"tx"})),
        ] {
            st.resources.insert(
                a.into(),
                ResourceState {
                    kind: k,
                    attrs: v,
                    outputs: json!({}),
                    deps: vec![],
                },
            );
        }
        let desired = vec![
            res(
                "node.a",
                Kind::LocalNode,
                json!({"role":"tx","peers":["b","d"]}),
            ),
            res(
                "node.b",
                Kind::LocalNode,
                json!({"role":"validator","peers":["a"]}),
            ),
            res("node.c", Kind::LocalNode, json!({"role":"tx"})),
            res("node.d", Kind::LocalNode, json!({"role":"tx"})),
        ];
        let drift = BTreeMap::from([(
            "node.c".to_string(),
            "restart (process not running)".to_string(),
        )]);
        let ch = diff(&desired, Some(&st), &drift);
        let got: Vec<(String, Action, String)> = ch
            .iter()
            .map(|c| (c.addr.clone(), c.action, c.reason.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("node.a".into(), Action::Update, "peers: +d".into()),
                (
                    "node.b".into(),
                    Action::Replace,
                    "role: tx → validator (forces replacement)".into()
                ),
                (
                    "node.c".into(),
                    Action::Update,
                    "restart (process not running)".into()
                ),
                ("node.d".into(), Action::Create, "".into()),
                (
                    "node.gone".into(),
                    Action::Destroy,
                    "no longer in the topology".into()
                ),
            ]
        );
    }

    #[test]
    fn unchanged_gives_no_changes() {
        let mut st = State::new("n", "local");
        st.resources.insert(
            "genesis".into(),
            ResourceState {
                kind: Kind::Genesis,
                attrs: json!({"chain_id": 1}),
                outputs: json!({}),
                deps: vec![],
            },
        );
        let ch = diff(
            &[res("genesis", Kind::Genesis, json!({"chain_id": 1}))],
            Some(&st),
            &BTreeMap::new(),
        );
        assert!(ch.is_empty());
    }
}
