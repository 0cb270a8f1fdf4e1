//! `apply`, `destroy`, `member add`, `member remove`: arguments → one operation of
//! [`crate::ops`] → its outcome printed.

use super::front::Terminal;
use super::{workspace, ApplyArgs, Global, MemberApply, NewMemberArgs};
use crate::ops::apply::{ApplyOpts, ApplyOutcome};
use crate::ops::{self, member::NewMemberSpec};
use anyhow::Result;

/// Runs `op` with the terminal as its front end and prints how it ended.
pub(super) fn run(
    g: &Global,
    yes: bool,
    op: impl FnOnce(&ops::Workspace, &Terminal) -> Result<ApplyOutcome>,
) -> Result<i32> {
    let front = Terminal::new(&g.file, yes);
    let outcome = op(&workspace(g), &front);
    match outcome {
        Ok(o) => Ok(front.outcome(&o)),
        Err(e) => {
            front.finish();
            Err(e)
        }
    }
}

pub(super) fn apply(g: &Global, a: &ApplyArgs) -> Result<i32> {
    let opts = ApplyOpts {
        allow_data_loss: a.allow_data_loss,
        timeout: a.timeout,
        skip_health: a.skip_health_check,
        geth: a.geth.as_deref(),
        saved_plan: a.plan.as_deref(),
        only_restarts: false,
        command: "apply",
    };
    run(g, a.yes, |ws, front| {
        ops::apply::apply(ws, opts, false, None, front)
    })
}

pub(super) fn destroy(g: &Global, yes: bool, allow_data_loss: bool) -> Result<i32> {
    run(g, yes, |ws, front| {
        ops::destroy::destroy(ws, allow_data_loss, front)
    })
}

/// The apply options `member add/remove`, `join` and `admit` take.
pub(super) fn member_opts<'a>(a: &'a MemberApply, command: &'static str) -> ApplyOpts<'a> {
    ApplyOpts {
        allow_data_loss: a.allow_data_loss,
        timeout: a.timeout,
        skip_health: a.skip_health_check,
        geth: a.geth.as_deref(),
        saved_plan: None,
        only_restarts: false,
        command,
    }
}

pub(super) fn spec(m: NewMemberArgs) -> NewMemberSpec {
    NewMemberSpec {
        name: m.name,
        validators: m.validators,
        tx_nodes: m.tx_nodes,
        accounts: m.accounts,
    }
}

pub(super) fn member_add(g: &Global, member: NewMemberArgs, a: &MemberApply) -> Result<i32> {
    let opts = member_opts(a, "member add");
    run(g, a.yes, |ws, front| {
        ops::member::add(ws, spec(member), opts, front)
    })
}

pub(super) fn member_remove(g: &Global, name: &str, a: &MemberApply) -> Result<i32> {
    let opts = member_opts(a, "member remove");
    run(g, a.yes, |ws, front| {
        ops::member::remove(ws, name, opts, front)
    })
}
