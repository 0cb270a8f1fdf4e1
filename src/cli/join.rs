//! `consort invite`, `consort join`, `consort admit`: parse, call `crate::join`, render.

use super::commands::{
    apply_member_edit, deployed, edit_topology, member_apply_opts, parse_accounts, run_apply,
    state_dir, ApplyOpts,
};
use super::{Global, MemberApply, NewMemberArgs};
use crate::join::bundle::{self, INVITE_FORMAT, REQUEST_FORMAT};
use crate::join::flow::{self, InviteSpec};
use crate::join::{Invite, JoinRequest};
use crate::topology;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

pub(super) fn invite(
    g: &Global,
    member: &NewMemberArgs,
    out: &Path,
    valid_hours: u64,
) -> Result<i32> {
    let (name, validators, tx_nodes) = (member.name.clone(), member.validators, member.tx_nodes);
    let (loaded, sd, state) = deployed(g)?;
    let accounts = parse_accounts(&member.accounts)?
        .into_iter()
        .map(|(n, b)| Ok((n, topology::parse_balance(&b).map_err(|e| anyhow!(e))?)))
        .collect::<Result<Vec<_>>>()?;
    let spec = InviteSpec {
        name: name.clone(),
        validators,
        tx_nodes,
        accounts,
        valid_for: valid_hours.saturating_mul(3600),
    };
    let inv = flow::make_invite(&loaded.topology, &state, &spec, flow::now_secs())?;
    let kept = flow::store_invite(&sd, &inv)?;
    bundle::write(out, &inv)?;
    let until = time::OffsetDateTime::from_unix_timestamp(inv.expires_at as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| inv.expires_at.to_string());
    say!(
        "Invitation {} for {name} ({validators} validator(s), {tx_nodes} tx node(s)) written to {}, valid until {until}.",
        inv.invitation_id,
        out.display()
    );
    // `consort join` is the other operator's command (in their own directory, with their
    // own file); `consort admit` is ours, so only it names our file.
    outln!(
        "It holds no secret: send it to {name}'s operator, who runs `consort join {}` and sends back join-request.json for {}. (A copy is kept in {}.)",
        out.display(),
        super::hint::hint("`consort admit`"),
        kept.display()
    );
    Ok(0)
}

pub(super) fn join(
    g: &Global,
    invite_path: &Path,
    address: &str,
    base_port: Option<u16>,
    out: Option<&Path>,
    a: &MemberApply,
) -> Result<i32> {
    let inv: Invite = bundle::read(invite_path, INVITE_FORMAT)?;
    flow::check_invite(&inv, flow::now_secs())?;
    let address = topology::check_local_address(address)
        .map_err(|e| anyhow!("--address: {e}"))?
        .to_string();
    let sd = state_dir(g, &inv.network.name);
    let joined_before = sd
        .load()
        .ok()
        .flatten()
        .and_then(|st| st.resources.get("genesis").cloned())
        .and_then(|r| r.outputs["joined"].as_str().map(String::from))
        .is_some_and(|id| id == inv.invitation_id);
    if joined_before && g.file.exists() {
        // An interrupted join: its topology and state are there, finish it.
        say!(
            "{} joined with invitation {} already: finishing.",
            g.file.display(),
            inv.invitation_id
        );
    } else {
        if g.file.exists() {
            bail!(
                "{} exists; `consort join` writes a new topology for the joining member: run it in a new directory or name another file with -f",
                g.file.display()
            );
        }
        let text = flow::joiner_topology(&inv, &address, base_port);
        let loaded = topology::parse(&g.file, text.as_bytes()).map_err(|e| anyhow!("{e}"))?;
        flow::seed_state(&sd, &loaded.topology, &inv)?;
        crate::state::fsutil::write_atomic(&g.file, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", g.file.display()))?;
        say!(
            "Wrote {} for member {} of network {} (its other members are external: run by other operators).",
            g.file.display(),
            inv.invited.name,
            inv.network.name
        );
    }
    // The other operators' nodes let ours in only once they admit us: no health wait.
    let code = run_apply(
        g,
        ApplyOpts {
            skip_health: true,
            ..member_apply_opts(a, "join")
        },
        false,
        None,
    )?;
    if code != 0 {
        return Ok(code);
    }
    let loaded = topology::load(&g.file).map_err(|e| anyhow!("{e}"))?;
    let st = sd
        .load()?
        .ok_or_else(|| anyhow!("{}: no state after apply", sd.state_file().display()))?;
    let request = flow::make_request(&loaded.topology, &st, &inv)?;
    let default_out = g
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("join-request.json");
    let out = out.unwrap_or(&default_out);
    bundle::write(out, &request)?;
    // `consort admit` is the other operators' command (their own files); `status` is ours.
    outln!(
        "Nodes of {} run on {address}. Wrote {}: send it to the network's operator(s), who run `consort admit {}`; the nodes sync once they are admitted ({}).",
        inv.invited.name,
        out.display(),
        out.display(),
        super::hint::hint("`consort status`")
    );
    Ok(0)
}

pub(super) fn admit(
    g: &Global,
    request_path: &Path,
    invite: Option<&Path>,
    a: &MemberApply,
) -> Result<i32> {
    let request: JoinRequest = bundle::read(request_path, REQUEST_FORMAT)?;
    let (loaded, sd, state) = deployed(g)?;
    let inv = flow::find_invitation(
        &sd,
        &loaded.topology,
        &state,
        &request.invitation_id,
        invite,
    )?;
    let member = flow::check_request(&request, &inv, &loaded.topology, &state, flow::now_secs())?;
    let name = member.name.clone();
    let text = edit_topology(g, |src| {
        topology::edit::add_member(src, &member).map_err(|e| anyhow!("{}: {e}", g.file.display()))
    })?;
    apply_member_edit(
        g,
        a,
        "admit",
        text,
        format!(
            "Admitted {name} (invitation {}) to {} as an external member.",
            request.invitation_id,
            g.file.display()
        ),
    )
}
