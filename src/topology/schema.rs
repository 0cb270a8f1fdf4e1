//! The JSON Schema of `consort.yaml`, generated from the serde types the loader reads
//! (`RawTopology`), so it cannot drift from what `consort validate` accepts. Editors use
//! it (through a `# yaml-language-server: $schema=…` line) to complete and check the file.
//!
//! The schema checks shape only (fields, types, patterns); names, chain ids, balances and
//! the rest are `consort validate`'s to judge, with line and column.

use super::raw::RawTopology;
use serde_json::Value;

/// The file `consort init` writes beside the topology and points its first line at.
pub const SCHEMA_FILE: &str = "consort.schema.json";

/// The schema as JSON (draft 2020-12).
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(RawTopology)).expect("schema serialises")
}

/// The schema as `consort schema` prints and `consort init` writes it.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).expect("schema serialises");
    s.push('\n');
    s
}

/// The topology read leniently, for a second look after the strict pass failed: fields the
/// schema does not know are dropped (their errors are reported already), so the semantic
/// checks can still report the problems elsewhere in the file in the same run. Returns the
/// paths dropped (`members[0].validatorz`) too: checks of what encloses them would judge a
/// part of the file that is not what its author meant, so they stay silent.
pub(crate) fn lenient(text: &str) -> Option<(RawTopology, Vec<String>)> {
    let mut v: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let schema = json_schema();
    let mut dropped = Vec::new();
    strip_unknown(&mut v, &schema, &schema, "", &mut dropped);
    drop_mistyped(&mut v, &mut dropped);
    Some((serde_yaml::from_value(v).ok()?, dropped))
}

/// Does `v` read as a `T`?
fn reads_as<T: serde::de::DeserializeOwned>(v: &serde_yaml::Value) -> bool {
    serde_yaml::from_value::<T>(v.clone()).is_ok()
}

/// In each section that does not read as its type, drops the optional fields that do not
/// read on their own (a `validators: two` is reported already; the rest of the member is
/// still checked). Each field is tried beside placeholder values of the section's required
/// fields; a bad required field (a member's `name: [1]`) stays, and the lenient pass gives
/// up.
fn drop_mistyped(v: &mut serde_yaml::Value, dropped: &mut Vec<String>) {
    use super::raw::{RawClient, RawMember, RawNetwork, RawProvider};
    type Reads<'a> = &'a dyn Fn(&serde_yaml::Value) -> bool;
    fn fix(
        section: &mut serde_yaml::Value,
        path: &str,
        required: &[(&str, serde_yaml::Value)],
        reads: Reads,
        dropped: &mut Vec<String>,
    ) {
        if reads(section) {
            return;
        }
        let Some(m) = section.as_mapping_mut() else {
            return;
        };
        let mut base = serde_yaml::Mapping::new();
        for (k, placeholder) in required {
            base.insert((*k).into(), placeholder.clone());
        }
        let bad: Vec<serde_yaml::Value> = m
            .iter()
            .filter(|(k, _)| !required.iter().any(|(r, _)| k.as_str() == Some(r)))
            .filter(|(k, val)| {
                let mut probe = base.clone();
                probe.insert((*k).clone(), (*val).clone());
                !reads(&serde_yaml::Value::Mapping(probe))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in bad {
            m.remove(&k);
            dropped.push(format!("{path}.{}", k.as_str().unwrap_or("?")));
        }
    }
    let Some(top) = v.as_mapping_mut() else {
        return;
    };
    let name = || serde_yaml::Value::from("placeholder");
    if let Some(s) = top.get_mut("network") {
        let required = [
            ("name", name()),
            ("chain_id", serde_yaml::Value::from(1u64)),
        ];
        fix(s, "network", &required, &reads_as::<RawNetwork>, dropped);
    }
    if let Some(s) = top.get_mut("client") {
        fix(s, "client", &[], &reads_as::<Option<RawClient>>, dropped);
    }
    if let Some(s) = top.get_mut("provider") {
        fix(s, "provider", &[], &reads_as::<RawProvider>, dropped);
    }
    if let Some(serde_yaml::Value::Sequence(members)) = top.get_mut("members") {
        for (i, m) in members.iter_mut().enumerate() {
            let required = [("name", name())];
            fix(
                m,
                &format!("members[{i}]"),
                &required,
                &reads_as::<RawMember>,
                dropped,
            );
        }
    }
}

/// Follows `$ref`s into `$defs` and picks the structured branch of an `anyOf` (an
/// `Option<T>` is `anyOf: [T, null]`).
fn resolve<'a>(node: &'a Value, root: &'a Value, depth: usize) -> &'a Value {
    if depth > 16 {
        return node;
    }
    if let Some(name) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(def, root, depth + 1);
        }
    }
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
        for b in branches {
            let b = resolve(b, root, depth + 1);
            if b.get("properties").is_some() || b.get("items").is_some() {
                return b;
            }
        }
    }
    node
}

fn strip_unknown(
    v: &mut serde_yaml::Value,
    node: &Value,
    root: &Value,
    path: &str,
    dropped: &mut Vec<String>,
) {
    let node = resolve(node, root, 0);
    let key_path = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        serde_yaml::Value::Mapping(m) => {
            let Some(props) = node.get("properties").and_then(Value::as_object) else {
                return;
            };
            m.retain(|k, _| {
                let known = k.as_str().is_some_and(|k| props.contains_key(k));
                if !known {
                    dropped.push(key_path(k.as_str().unwrap_or("?")));
                }
                known
            });
            for (k, val) in m.iter_mut() {
                if let Some((k, p)) = k.as_str().and_then(|k| props.get(k).map(|p| (k, p))) {
                    strip_unknown(val, p, root, &key_path(k), dropped);
                }
            }
        }
        serde_yaml::Value::Sequence(items) => {
            if let Some(item) = node.get("items") {
                for (i, x) in items.iter_mut().enumerate() {
                    strip_unknown(x, item, root, &format!("{path}[{i}]"), dropped);
                }
            }
        }
        _ => {}
    }
}
