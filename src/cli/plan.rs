//! `consort plan`: the plan as text or JSON, optionally saved; the exit code says whether
//! it has changes and whether "No changes" can be promised.

use super::{workspace, Global};
use crate::ops::{self, plan::unread_message};
use crate::plan::{display, Plan};
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;

fn plan_json(plan: &Plan) -> serde_json::Value {
    let s = plan.summary();
    let mut v = serde_json::to_value(plan).expect("plan serialises");
    v["summary"] = json!({ "add": s.add, "change": s.change, "destroy": s.destroy });
    v
}

pub(super) fn plan(
    g: &Global,
    as_json: bool,
    out: Option<PathBuf>,
    destroy: bool,
    detailed: bool,
    refresh: bool,
) -> Result<i32> {
    let p = ops::plan::plan(&workspace(g), destroy, refresh)?;
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&plan_json(&p.plan))?);
    } else {
        say_raw!("{}", display::render(&p.plan));
    }
    if let Some(path) = out {
        ops::plan::save(&p.plan, &path)?;
        if !as_json {
            say!(
                "\nSaved the plan to {}. Apply exactly it with `consort apply {}`.",
                path.display(),
                path.display()
            );
        }
    }
    // A plan that could not read part of the network does not know it has no changes.
    if !p.plan.unread.is_empty() {
        say_err!("{}", unread_message(&p.plan));
        if p.plan.is_empty() {
            return Ok(1);
        }
    }
    // "No changes" promises a healthy network: say so when it is not.
    if let Some(h) = p.unhealthy() {
        let mut msg = format!(
            "network {} is not healthy, although its resources match the topology:",
            p.plan.network
        );
        if let Some(halted) = &h.halted {
            msg.push_str(&format!("\n  {halted}"));
        }
        for n in h.nodes.iter().filter(|n| !n.problems.is_empty()) {
            msg.push_str(&format!("\n  {}: {}", n.name, n.problems.join("; ")));
        }
        for t in &h.pending_transactions {
            msg.push_str(&format!("\n  {t}"));
        }
        msg.push_str("\n`consort apply` waits for it and repairs what it can; `consort status` shows it live.");
        say_err!("{msg}");
        return Ok(1);
    }
    Ok(if detailed && !p.plan.is_empty() { 2 } else { 0 })
}
