//! `invite`, `join`, `admit`: the flows of `crate::join` walked to their end — an
//! invitation written, a joining member's topology, state and nodes, an admitted member
//! applied.

use super::apply::{apply, ApplyOpts, ApplyOutcome, PendingEdit};
use super::member::{edit_topology, parse_accounts, NewMemberSpec};
use super::{Edit, Front, Notice, Workspace};
use crate::join::bundle::{self, INVITE_FORMAT, REQUEST_FORMAT};
use crate::join::flow::{self, InviteSpec};
use crate::join::{Invite, JoinRequest};
use crate::topology;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// What `invite` wrote.
pub struct Invited {
    pub invite: Invite,
    /// The copy kept in the state dir.
    pub kept: PathBuf,
}

pub fn invite(
    ws: &Workspace,
    member: &NewMemberSpec,
    out: &Path,
    valid_hours: u64,
) -> Result<Invited> {
    let (loaded, sd, state) = ws.deployed()?;
    let accounts = parse_accounts(&member.accounts)?
        .into_iter()
        .map(|(n, b)| Ok((n, topology::parse_balance(&b).map_err(|e| anyhow!(e))?)))
        .collect::<Result<Vec<_>>>()?;
    let spec = InviteSpec {
        name: member.name.clone(),
        validators: member.validators,
        tx_nodes: member.tx_nodes,
        accounts,
        valid_for: valid_hours.saturating_mul(3600),
    };
    let inv = flow::make_invite(&loaded.topology, &state, &spec, flow::now_secs())?;
    let kept = flow::store_invite(&sd, &inv)?;
    bundle::write(out, &inv)?;
    Ok(Invited { invite: inv, kept })
}

/// How `join` ended: its apply, and — once the nodes run — the join request written.
pub struct Joined {
    pub applied: ApplyOutcome,
    pub request: Option<JoinRequested>,
}

pub struct JoinRequested {
    pub invite: Box<Invite>,
    /// The `--address` the nodes run on.
    pub address: String,
    /// Where the request was written.
    pub path: PathBuf,
}

pub fn join(
    ws: &Workspace,
    invite_path: &Path,
    address: &str,
    base_port: Option<u16>,
    out: Option<&Path>,
    opts: ApplyOpts,
    front: &dyn Front,
) -> Result<Joined> {
    let inv: Invite = bundle::read(invite_path, INVITE_FORMAT)?;
    flow::check_invite(&inv, flow::now_secs())?;
    let address = topology::check_local_address(address)
        .map_err(|e| anyhow!("--address: {e}"))?
        .to_string();
    let sd = ws.state_dir(&inv.network.name);
    let joined_before = sd
        .load()
        .ok()
        .flatten()
        .and_then(|st| st.resources.get("genesis").cloned())
        .and_then(|r| r.outputs["joined"].as_str().map(String::from))
        .is_some_and(|id| id == inv.invitation_id);
    if joined_before && ws.file.exists() {
        // An interrupted join: its topology and state are there, finish it.
        front.notice(Notice::JoinResumed {
            invitation: &inv.invitation_id,
        });
    } else {
        if ws.file.exists() {
            bail!(
                "{} exists; `consort join` writes a new topology for the joining member: run it in a new directory or name another file with -f",
                ws.file.display()
            );
        }
        let text = flow::joiner_topology(&inv, &address, base_port);
        let loaded = topology::parse(&ws.file, text.as_bytes()).map_err(|e| anyhow!("{e}"))?;
        flow::seed_state(&sd, &loaded.topology, &inv)?;
        crate::state::fsutil::write_atomic(&ws.file, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", ws.file.display()))?;
        front.notice(Notice::JoinWrote {
            member: &inv.invited.name,
            network: &inv.network.name,
        });
    }
    // The other operators' nodes let ours in only once they admit us: no health wait.
    let outcome = apply(
        ws,
        ApplyOpts {
            skip_health: true,
            command: "join",
            ..opts
        },
        false,
        None,
        front,
    )?;
    if outcome.code() != 0 {
        return Ok(Joined {
            applied: outcome,
            request: None,
        });
    }
    let loaded = topology::load(&ws.file).map_err(|e| anyhow!("{e}"))?;
    let st = sd
        .load()?
        .ok_or_else(|| anyhow!("{}: no state after apply", sd.state_file().display()))?;
    let request = flow::make_request(&loaded.topology, &st, &inv)?;
    let default_out = ws.dir().join("join-request.json");
    let out = out.unwrap_or(&default_out);
    bundle::write(out, &request)?;
    Ok(Joined {
        applied: outcome,
        request: Some(JoinRequested {
            invite: Box::new(inv),
            address,
            path: out.to_path_buf(),
        }),
    })
}

/// `admit`: the joining member's request checked against its invitation, then added to
/// the topology as an external member and applied.
pub fn admit(
    ws: &Workspace,
    request_path: &Path,
    invite: Option<&Path>,
    opts: ApplyOpts,
    front: &dyn Front,
) -> Result<ApplyOutcome> {
    let request: JoinRequest = bundle::read(request_path, REQUEST_FORMAT)?;
    let (loaded, sd, state) = ws.deployed()?;
    let inv = flow::find_invitation(
        &sd,
        &loaded.topology,
        &state,
        &request.invitation_id,
        invite,
    )?;
    let member = flow::check_request(&request, &inv, &loaded.topology, &state, flow::now_secs())?;
    let text = edit_topology(ws, |src| {
        topology::edit::add_member(src, &member).map_err(|e| anyhow!("{}: {e}", ws.file.display()))
    })?;
    apply(
        ws,
        ApplyOpts {
            command: "admit",
            ..opts
        },
        false,
        Some(PendingEdit {
            text,
            what: Edit::Admitted {
                name: member.name.clone(),
                invitation: request.invitation_id.clone(),
            },
        }),
        front,
    )
}
