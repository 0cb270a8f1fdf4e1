//! Every edit re-parsed and its YAML events compared with the original's: it changed
//! exactly that member, or it is refused.

use super::doc::{events_of, Doc, Kind, Node};
use super::NewMember;
use crate::topology::balance::balance_text;
use yaml_rust2::parser::Event;
use yaml_rust2::scanner::TScalarStyle;

/// The event an empty `members:` reads as.
pub(super) fn empty_scalar() -> Event {
    Event::Scalar(String::new(), TScalarStyle::Plain, 0, None)
}

pub(super) fn verify_remove(before: &Doc, after_src: &str, index: usize) -> Result<(), String> {
    let nodes = before.member_nodes();
    let removed = nodes.get(index).ok_or("the member vanished")?;
    let mut expected = before.plain_events();
    if nodes.len() == 1 {
        // The only member gone: `members:` is left with nothing, an empty scalar.
        let seq = before.root.get("members").ok_or("members vanished")?;
        expected.splice(seq.first_event..=seq.last_event, [empty_scalar()]);
    } else {
        expected.drain(removed.first_event..=removed.last_event);
    }
    let after: Vec<Event> = events_of(after_src)
        .map_err(|e| format!("the result would not parse: {e}"))?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    (after == expected)
        .then_some(())
        .ok_or_else(|| "the rest of the document would change".to_string())
}

pub(super) fn verify_add(before: &Doc, after_src: &str, m: &NewMember) -> Result<(), String> {
    let after = Doc::parse(after_src).map_err(|e| format!("the result would not parse: {e}"))?;
    let nodes = after.member_nodes();
    let n_before = before.member_nodes().len();
    if nodes.len() != n_before + 1 {
        return Err(format!(
            "expected {} members afterwards, found {}",
            n_before + 1,
            nodes.len()
        ));
    }
    let added = nodes.last().ok_or("no members afterwards")?;
    check_added(added, m)?;
    let mut rest = after.plain_events();
    if n_before == 0 {
        // An empty `members:` became a one-item list.
        let seq = after.root.get("members").ok_or("members vanished")?;
        rest.splice(seq.first_event..=seq.last_event, [empty_scalar()]);
    } else {
        rest.drain(added.first_event..=added.last_event);
    }
    (rest == before.plain_events())
        .then_some(())
        .ok_or_else(|| "the rest of the document would change".to_string())
}

/// The appended node says exactly what `m` asked for.
pub(super) fn check_added(node: &Node, m: &NewMember) -> Result<(), String> {
    let text = |n: &Node, k: &str| n.get(k).and_then(Node::scalar).map(str::to_string);
    let ok = text(node, "name").as_deref() == Some(m.name.as_str())
        && text(node, "validators") == Some(m.validators.to_string())
        && text(node, "tx_nodes") == Some(m.tx_nodes.to_string());
    let accounts: Vec<(String, String)> = match node.get("accounts").map(|a| &a.kind) {
        Some(Kind::Seq(items)) => items
            .iter()
            .map(|a| {
                (
                    text(a, "name").unwrap_or_default(),
                    text(a, "balance").unwrap_or_default(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let wanted: Vec<(String, String)> = m
        .accounts
        .iter()
        .map(|(n, b)| (n.clone(), balance_text(b)))
        .collect();
    (ok && accounts == wanted)
        .then_some(())
        .ok_or_else(|| "the new member did not read back as written".to_string())
}
