//! Human rendering of a plan (Terraform's shape): one line per change with its symbol,
//! address, and reason or summary, then `Plan: N to add, N to change, N to destroy.`

use super::ports::PlannedPorts;
use super::Plan;
use crate::state::Action;
use std::collections::BTreeMap;
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
        let node = c.addr.strip_prefix("node.").unwrap_or_default();
        if let (Action::Create, Some(p)) = (c.action, plan.ports.get(node)) {
            let _ = writeln!(out, "      {:<width$}  ports: {}", "", ports_text(p));
        }
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

/// "p2p 30304, http 8545, ws 8546, metrics 6061 (busy: p2p 30303)".
pub fn ports_text(p: &PlannedPorts) -> String {
    let mut parts = vec![format!("p2p {}", p.ports.p2p)];
    for (kind, port) in [
        ("http", p.ports.http),
        ("ws", p.ports.ws),
        ("metrics", p.ports.metrics),
    ] {
        if let Some(port) = port {
            parts.push(format!("{kind} {port}"));
        }
    }
    let mut text = parts.join(", ");
    if !p.busy.is_empty() {
        text.push_str(&format!(" (busy: {})", p.busy.join(", ")));
    }
    text
}

/// Apply's one line for the nodes that got other ports than the plan showed:
/// "2 nodes got other ports than planned (busy): org1-tx-0 http 8545→8547, …".
pub fn moved_ports_line(moved: &BTreeMap<String, Vec<(&'static str, u16, u16)>>) -> Option<String> {
    if moved.is_empty() {
        return None;
    }
    let each: Vec<String> = moved
        .iter()
        .map(|(node, ports)| {
            let ports: Vec<String> = ports
                .iter()
                .map(|(kind, planned, got)| format!("{kind} {planned}→{got}"))
                .collect();
            format!("{node} {}", ports.join(" "))
        })
        .collect();
    Some(format!(
        "{} node{} got other ports than planned (busy): {}",
        moved.len(),
        if moved.len() == 1 { "" } else { "s" },
        each.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ports::NodePorts;
    use crate::plan::Change;
    use crate::state::Kind;

    fn create(addr: &str, summary: &str) -> Change {
        Change {
            addr: addr.into(),
            kind: Kind::LocalNode,
            action: Action::Create,
            reason: String::new(),
            summary: summary.into(),
            before: None,
            after: None,
            deps: vec![],
            record_only: false,
        }
    }

    /// Issue 22 item 8: each new node's ports under its line, with the busy ones it skips.
    #[test]
    fn new_nodes_show_their_ports_and_the_busy_ones_they_skip() {
        let ports = |p2p, http: Option<u16>, metrics, busy: &[&str]| PlannedPorts {
            ports: NodePorts {
                p2p,
                http,
                ws: http.map(|h| h + 1),
                metrics: Some(metrics),
            },
            busy: busy.iter().map(|s| s.to_string()).collect(),
        };
        let plan = Plan {
            format_version: 1,
            network: "net".into(),
            provider: "local".into(),
            state_lineage: None,
            state_serial: 0,
            topology_sha256: String::new(),
            destroy: false,
            changes: vec![
                create("genesis", "chain 1"),
                create("node.org1-tx-0", "tx of org1"),
                create("node.org1-validator-0", "validator of org1"),
            ],
            warnings: vec![],
            data_loss: vec![],
            unread: vec![],
            ports: BTreeMap::from([
                (
                    "org1-tx-0".into(),
                    ports(30304, Some(8547), 6061, &["http/ws 8545/8546"]),
                ),
                ("org1-validator-0".into(), ports(30303, None, 6060, &[])),
            ]),
        };
        insta::assert_snapshot!(render(&plan), @r"
        consort will perform these actions on network net (local provider):

            + genesis                chain 1
            + node.org1-tx-0         tx of org1
                                     ports: p2p 30304, http 8547, ws 8548, metrics 6061 (busy: http/ws 8545/8546)
            + node.org1-validator-0  validator of org1
                                     ports: p2p 30303, metrics 6060

        Plan: 3 to add, 0 to change, 0 to destroy.
        ");
        // In `plan --json` too, flat beside each other.
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            v["ports"]["org1-tx-0"],
            serde_json::json!({"p2p": 30304, "http": 8547, "ws": 8548, "metrics": 6061,
                               "busy": ["http/ws 8545/8546"]})
        );
        assert_eq!(
            v["ports"]["org1-validator-0"],
            serde_json::json!({"p2p": 30303, "metrics": 6060})
        );
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back, plan, "a saved plan keeps its ports");
    }

    #[test]
    fn moved_ports_are_one_line() {
        assert_eq!(moved_ports_line(&BTreeMap::new()), None);
        let moved = BTreeMap::from([
            (
                "org1-tx-0".to_string(),
                vec![("http", 8545, 8547), ("ws", 8546, 8548)],
            ),
            ("org2-validator-0".to_string(), vec![("p2p", 30305, 30307)]),
        ]);
        assert_eq!(
            moved_ports_line(&moved).unwrap(),
            "2 nodes got other ports than planned (busy): org1-tx-0 http 8545→8547 ws 8546→8548, \
             org2-validator-0 p2p 30305→30307"
        );
        let one = BTreeMap::from([("a".to_string(), vec![("metrics", 6060, 6062)])]);
        assert_eq!(
            moved_ports_line(&one).unwrap(),
            "1 node got other ports than planned (busy): a metrics 6060→6062"
        );
    }
}
