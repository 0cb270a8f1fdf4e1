//! `member add` and `member remove`: edit the topology in memory, apply it, write the file
//! once the plan is accepted; an earlier interrupted run of the same edit is finished.

use super::apply::{apply, ApplyOpts, ApplyOutcome, PendingEdit};
use super::{Edit, Front, Notice, Workspace};
use crate::topology;
use anyhow::{anyhow, bail, Context, Result};

/// A member to add, as the command line gives it.
pub struct NewMemberSpec {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    /// `NAME=BALANCE` texts.
    pub accounts: Vec<String>,
}

/// The topology file with `edit` applied, in memory: [`apply`] writes it once the plan is
/// accepted (an edit that would not load is refused when it is planned).
pub(super) fn edit_topology(
    ws: &Workspace,
    edit: impl FnOnce(&str) -> Result<String>,
) -> Result<String> {
    let source = std::fs::read_to_string(&ws.file)
        .with_context(|| format!("cannot read {}", ws.file.display()))?;
    edit(&source)
}

/// `--account NAME=BALANCE` flags as (name, balance text), each balance checked.
pub fn parse_accounts(accounts: &[String]) -> Result<Vec<(String, String)>> {
    let mut accts = Vec::new();
    for spec in accounts {
        let (n, b) = spec.split_once('=').ok_or_else(|| {
            anyhow!("--account {spec:?}: expected NAME=BALANCE, e.g. --account ops=\"100 ether\"")
        })?;
        topology::parse_balance(b.trim()).map_err(|e| anyhow!("--account {spec:?}: {e}"))?;
        accts.push((n.trim().to_string(), b.trim().to_string()));
    }
    Ok(accts)
}

pub fn add(
    ws: &Workspace,
    member: NewMemberSpec,
    opts: ApplyOpts,
    front: &dyn Front,
) -> Result<ApplyOutcome> {
    let opts = ApplyOpts {
        command: "member add",
        ..opts
    };
    let NewMemberSpec {
        name,
        validators,
        tx_nodes,
        accounts,
    } = member;
    let accts = parse_accounts(&accounts)?;
    // An earlier `member add` of the same member that was interrupted (Ctrl-C, kill -9,
    // a failed vote) wrote the topology already: finish it rather than refuse the name.
    if let Ok(current) = topology::load(&ws.file) {
        if let Some(have) = current.topology.member(&name) {
            let same = have.validators == validators
                && have.tx_nodes == tx_nodes
                && have.accounts.len() == accts.len()
                && accts
                    .iter()
                    .all(|(n, _)| have.accounts.iter().any(|a| &a.name == n));
            if !same {
                bail!(
                    "{}: member {name} is already in the topology, with {} validator(s), {} tx node(s) and {} account(s); run `consort apply` to finish adding {name}, or `consort member remove {name}` first to add it differently",
                    ws.file.display(),
                    have.validators,
                    have.tx_nodes,
                    have.accounts.len()
                );
            }
            front.notice(Notice::FinishingMember {
                name: &name,
                adding: true,
            });
            return apply(ws, opts, false, None, front);
        }
    }
    let m = topology::edit::NewMember {
        name: name.clone(),
        validators,
        tx_nodes,
        accounts: accts,
        external: None,
    };
    let text = edit_topology(ws, |src| {
        topology::edit::add_member(src, &m).map_err(|e| anyhow!("{}: {e}", ws.file.display()))
    })?;
    let what = Edit::MemberAdded { name };
    apply(ws, opts, false, Some(PendingEdit { text, what }), front)
}

pub fn remove(
    ws: &Workspace,
    name: &str,
    opts: ApplyOpts,
    front: &dyn Front,
) -> Result<ApplyOutcome> {
    let opts = ApplyOpts {
        command: "member remove",
        ..opts
    };
    // An interrupted `member remove` wrote the topology already: if state still holds
    // some of the member's resources, finish removing them.
    if let Ok(current) = topology::load(&ws.file) {
        if current.topology.member(name).is_none() {
            let sd = ws.state_dir(&current.topology.network.name);
            let left = sd.load().ok().flatten().is_some_and(|st| {
                st.resources
                    .values()
                    .any(|r| r.attrs.get("member").and_then(|m| m.as_str()) == Some(name))
            });
            if left {
                front.notice(Notice::FinishingMember {
                    name,
                    adding: false,
                });
                return apply(ws, opts, false, None, front);
            }
        }
    }
    let text = edit_topology(ws, |src| {
        topology::edit::remove_member(src, name).map_err(|e| anyhow!("{}: {e}", ws.file.display()))
    })?;
    let what = Edit::MemberRemoved {
        name: name.to_string(),
    };
    apply(ws, opts, false, Some(PendingEdit { text, what }), front)
}
