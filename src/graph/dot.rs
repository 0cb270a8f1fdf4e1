//! The picture in Graphviz' DOT language (`consort graph --format dot | dot -Tpng`): a
//! cluster per member, validators as boxes and tx nodes as ellipses, signers with a
//! double border, peer links styled by kind.

use super::{short_name, Graph, LinkKind};
use crate::topology::Role;
use std::fmt::Write;

/// A DOT quoted string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn render(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", q(&g.network));
    let _ = writeln!(
        s,
        "  graph [label={}, labelloc=t, fontname=\"Helvetica\", fontsize=16, splines=true, overlap=false];",
        q(&format!("{} (Clique)", g.network))
    );
    s.push_str("  node [fontname=\"Helvetica\", fontsize=11, style=filled, fillcolor=white];\n");
    s.push_str("  edge [color=\"#94a3b8\"];\n");
    for (k, m) in g.members.iter().enumerate() {
        let colour = super::svg::PALETTE[k % super::svg::PALETTE.len()];
        let _ = writeln!(s, "  subgraph {} {{", q(&format!("cluster_{}", m.name)));
        let _ = writeln!(
            s,
            "    label={}; color={}; style=rounded;",
            q(&m.name),
            q(colour)
        );
        for n in &m.nodes {
            let shape = match n.role {
                Role::Validator => "box",
                Role::Tx => "ellipse",
            };
            let mut label = short_name(&m.name, &n.name).to_string();
            if n.signer {
                label.push_str("\n(signer)");
            }
            let colour = match &n.status {
                None => colour,
                Some(st) if !st.running => "#d64545",
                Some(st) if !st.healthy => "#d89b16",
                Some(_) => "#2e9d5b",
            };
            let _ = writeln!(
                s,
                "    {} [label={}, shape={shape}, color={}, peripheries={}];",
                q(&n.name),
                q(&label),
                q(colour),
                if n.signer { 2 } else { 1 }
            );
        }
        s.push_str("  }\n");
    }
    for l in &g.links {
        let style = match l.kind {
            LinkKind::Planned => "",
            LinkKind::Up => ", color=\"#4f86c6\"",
            LinkKind::Missing => ", color=\"#d64545\", style=dashed, label=\"missing\"",
            LinkKind::Extra => ", color=\"#d9822b\", style=dotted, label=\"not planned\"",
        };
        let _ = writeln!(
            s,
            "  {} -- {} [class={}{style}];",
            q(&l.a),
            q(&l.b),
            l.kind.as_str()
        );
    }
    s.push_str("}\n");
    s
}
