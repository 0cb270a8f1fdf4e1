//! Human rendering of a plan (Terraform's shape): one line per change with its symbol,
//! address, and reason or summary, then `Plan: N to add, N to change, N to destroy.`

use super::Plan;

use crate::state::Action;
use std::fmt::Write;

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if plan.changes.is_empty() && plan.destroy {
        let _ = writeln!(
            out,
            "No changes. Nothing to destroy: network {} has nothing in state.",
            plan.network
        );
        return out;
    }
    if !plan.unread.is_empty() {
        let _ = writeln!(
            out,
            "Could not read all of network {}, so this plan may miss changes:",
            plan.network
        );
        for u in &plan.unread {
            let _ = writeln!(out, "  ? {u}");
        }
        if plan.changes.is_empty() {
            let _ = writeln!(
                out,
                "Nothing to change in what could be read; run again once it answers."
            );
            return out;
        }
        let _ = writeln!(out);
    }
    let records: Vec<_> = plan.changes.iter().filter(|c| c.record_only).collect();
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "No changes. Network {} matches the topology.",
            plan.network
        );
        for c in &records {
            let _ = writeln!(out, "  = {}  {}", c.addr, c.reason);
        }
        return out;
    }
    let _ = writeln!(
        out,
        "consort will perform these actions on network {} ({} provider):\n",
        plan.network, plan.provider
    );
    let width = plan
        .changes
        .iter()
        .map(|c| c.addr.chars().count())
        .max()
        .unwrap_or(0);
    for c in &plan.changes {
        let detail = match c.action {
            _ if c.record_only => c.reason.clone(),
            Action::Create => c.summary.clone(),
            Action::Destroy => c.reason.clone(),
            Action::Update | Action::Replace => c.reason.clone(),
        };
        let _ = writeln!(
            out,
            "  {:>3} {:<width$}  {}",
            if c.record_only {
                "="
            } else {
                c.action.symbol()
            },
            c.addr,
            detail
        );
        for l in plan.data_loss.iter().filter(|l| l.addr == c.addr) {
            let _ = writeln!(out, "    ! {}", l.what);
        }
    }
    let s = plan.summary();
    let _ = writeln!(
        out,
        "\nPlan: {} to add, {} to change, {} to destroy.",
        s.add, s.change, s.destroy
    );
    if !plan.data_loss.is_empty() {
        let _ = writeln!(
            out,
            "\n! {} change(s) above lose data that exists nowhere else; apply refuses them \
             without --allow-data-loss.",
            plan.data_loss.len()
        );
    }
    out
}
