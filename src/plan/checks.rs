//! What plan refuses on a deployed network, with the way out: a changed genesis (it would
//! fork the chain), a changed balance of an account genesis funded, and membership changes
//! that would leave the chain without enough live signers or without a funding account.

use super::build::PlanError;
use super::desired::{account_id, GenesisFacts};
use super::{Planning, Resource};
use crate::consensus::liveness;
use crate::state::{Kind, State};
use crate::topology::{Role, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// Genesis fixes chain id, Clique period/epoch, gas limit and the balances of the accounts
/// it funded: changing them on a deployed network would fork it. Refuse, saying what to do.
pub(super) fn check_genesis_unchanged(
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
            // The address genesis funded: a different `address:` (or dropping or adding
            // one) would move the balance.
            let held = st.resources.get(&format!("account.{}.{}", m.name, a.name));
            let held_external = held
                .and_then(|r| r.attrs.get("address"))
                .and_then(|v| v.as_str());
            if facts.accounts.contains_key(&id)
                && held.is_some()
                && held_external != a.address.as_deref()
            {
                problems.push(format!(
                    "members.{}.accounts.{}.address: {} → {} (funded in genesis)",
                    m.name,
                    a.name,
                    held_external.unwrap_or("(key held by consort)"),
                    a.address.as_deref().unwrap_or("(key held by consort)")
                ));
            }
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

/// An account funded by a transfer after genesis got what it was funded with; a changed
/// balance would plan an update that sends nothing (a transfer cannot be undone, and a
/// top-up would be a second transfer nobody reviewed). Refuse, saying what to do.
pub(super) fn check_funding_unchanged(
    state: Option<&State>,
    desired: &[Resource],
) -> Result<(), PlanError> {
    let Some(st) = state else { return Ok(()) };
    let mut problems = Vec::new();
    for r in desired.iter().filter(|r| r.kind == Kind::Funding) {
        let Some(cur) = st.resources.get(&r.addr) else {
            continue;
        };
        let (old, new) = (&cur.attrs["balance"], &r.attrs["balance"]);
        if old != new {
            let wei = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|s| s.parse::<u128>().ok())
                    .map(|w| crate::topology::Wei(w).to_string())
                    .unwrap_or_else(|| v.to_string())
            };
            problems.push(format!(
                "members.{}.accounts.{}.balance: {} → {} (funded by a transfer when it was added)",
                r.attrs["member"].as_str().unwrap_or(""),
                r.attrs["name"].as_str().unwrap_or(""),
                wei(old),
                wei(new)
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(PlanError::Refused(format!(
        "these accounts were funded once, by a transfer, and consort does not send more (nor \
         take ether back):\n  {}\nRevert the balance in the topology. To send an account more \
         ether, transfer it yourself from the funding account (its keystore is in `consort \
         output`), or add a new account, which consort funds by transfer.",
        problems.join("\n  ")
    )))
}

/// Removing validators must leave the chain live: at least one signer, and at least
/// ⌊N/2⌋+1 of the N remaining signers running (Clique needs that many to seal). The member
/// holding the funding account may only go once another funding account is named.
pub(super) fn check_membership(
    topo: &Topology,
    st: &State,
    drift: &BTreeMap<String, String>,
    provider: &dyn Planning,
) -> Result<(), PlanError> {
    let validators: BTreeSet<String> = topo
        .nodes()
        .into_iter()
        .filter(|n| n.role == Role::Validator)
        .map(|n| n.name)
        .collect();
    let signers_now: Vec<String> = st
        .resources
        .iter()
        .filter(|(_, r)| r.kind == Kind::Signer)
        .filter_map(|(a, _)| a.strip_prefix("signer.").map(String::from))
        .collect();
    let removed: Vec<&String> = signers_now
        .iter()
        .filter(|s| !validators.contains(*s))
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    let removed_list = removed
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let remaining: Vec<&String> = signers_now
        .iter()
        .filter(|s| validators.contains(*s))
        .collect();
    if remaining.is_empty() {
        return Err(PlanError::Refused(format!(
            "removing {removed_list} would leave the network with no signer, and no block could \
             ever be sealed again. Keep at least one validator (add a member with validators \
             first), or run `consort destroy` to end the network."
        )));
    }
    let n = remaining.len();
    let need = liveness::quorum(n);
    let running: Vec<&&String> = remaining
        .iter()
        .filter(|s| !drift.contains_key(&provider.node_addr(s)))
        .collect();
    if running.len() < need {
        let down: Vec<&str> = remaining
            .iter()
            .filter(|s| drift.contains_key(&provider.node_addr(s)))
            .map(|s| s.as_str())
            .collect();
        return Err(PlanError::Refused(format!(
            "removing {removed_list} would leave {n} signer(s), of which only {} running ({} down: \
             {}); Clique needs {need} of {n} to seal. Bring the stopped nodes back first \
             (`consort apply` without this removal restarts them), then remove.",
            running.len(),
            down.len(),
            down.join(", ")
        )));
    }
    // Voting them out takes more than half of the current signers (the departing ones
    // vote too while they run): with fewer running, the vote can never pass.
    let n_now = signers_now.len();
    let need_now = liveness::quorum(n_now);
    let down_now: Vec<&str> = signers_now
        .iter()
        .filter(|s| drift.contains_key(&provider.node_addr(s)))
        .map(|s| s.as_str())
        .collect();
    if n_now - down_now.len() < need_now {
        return Err(PlanError::Refused(format!(
            "voting out {removed_list} needs {need_now} of the {n_now} current signers, but only \
             {} are running ({} down: {}); Clique cannot change its signers (nor seal) \
             without them. Bring the stopped nodes back first (`consort apply` without this \
             removal restarts them), then remove.",
            n_now - down_now.len(),
            down_now.len(),
            down_now.join(", ")
        )));
    }
    // The funding account recorded at genesis (the default when none is named).
    if topo.network.funding_account.is_none() {
        if let Some(f) = st
            .resources
            .get("genesis")
            .and_then(|g| g.outputs.get("funding_account"))
            .and_then(|v| v.as_str())
        {
            let member = f.split('/').next().unwrap_or("");
            if topo.member(member).is_none() {
                return Err(PlanError::Refused(format!(
                    "member {member} holds the funding account {f}, which pays for accounts \
                     added later. Name another before removing it: set \
                     `network.funding_account: <member>/<account>` in the topology."
                )));
            }
        }
    }
    Ok(())
}
