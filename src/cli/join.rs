//! `consort invite`, `consort join`, `consort admit`: parse, call `crate::ops::join`,
//! render.

use super::apply::{member_opts, run, spec};
use super::front::Terminal;
use super::{workspace, Global, MemberApply, NewMemberArgs};
use crate::ops;
use anyhow::Result;
use std::path::Path;

pub(super) fn invite(
    g: &Global,
    member: NewMemberArgs,
    out: &Path,
    valid_hours: u64,
) -> Result<i32> {
    let member = spec(member);
    let ops::join::Invited { invite: inv, kept } =
        ops::join::invite(&workspace(g), &member, out, valid_hours)?;
    let (name, validators, tx_nodes) = (&member.name, member.validators, member.tx_nodes);
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
    let front = Terminal::new(&g.file, a.yes);
    let joined = ops::join::join(
        &workspace(g),
        invite_path,
        address,
        base_port,
        out,
        member_opts(a, "join"),
        &front,
    );
    let joined = match joined {
        Ok(j) => j,
        Err(e) => {
            front.finish();
            return Err(e);
        }
    };
    let code = front.outcome(&joined.applied);
    let Some(r) = joined.request else {
        return Ok(code);
    };
    // `consort admit` is the other operators' command (their own files); `status` is ours.
    outln!(
        "Nodes of {} run on {}. Wrote {}: send it to the network's operator(s), who run `consort admit {}`; the nodes sync once they are admitted ({}).",
        r.invite.invited.name,
        r.address,
        r.path.display(),
        r.path.display(),
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
    let opts = member_opts(a, "admit");
    run(g, a.yes, |ws, front| {
        ops::join::admit(ws, request_path, invite, opts, front)
    })
}
