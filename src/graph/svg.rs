//! The picture, drawn by consort: each member a labelled box (its colour), validators as
//! rounded squares and tx nodes as circles inside it, a gold star on signers, peer links
//! as lines behind the boxes, and — for a running network — each node coloured by its
//! state with its head and peer count. Members sit on a circle (side by side when two).

use super::{short_name, Graph, LinkKind, Node};
use crate::topology::Role;
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt::Write;

const NODE: f64 = 44.0;
const COL: f64 = 92.0;
const ROW: f64 = 100.0;
const PER_ROW: usize = 4;
const HEADER: f64 = 42.0;
const PAD: f64 = 16.0;
const GAP: f64 = 70.0;
const MARGIN: f64 = 24.0;
const TITLE: f64 = 34.0;
const LEGEND: f64 = 40.0;
const FONT: &str = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/// Member colours, in topology order.
pub const PALETTE: &[&str] = &[
    "#4f6bed", "#0f9d8a", "#c2477a", "#d9822b", "#7a5af8", "#2f8fd8", "#8a9a2b", "#b0563c",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

struct Boxed {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

/// A rough width of `text` at `size` px (no font metrics here): wide enough to keep a
/// member's name and its counts from overlapping.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

fn counts(m: &super::Member) -> String {
    format!(
        "{} validator(s), {} tx",
        m.nodes.iter().filter(|n| n.role == Role::Validator).count(),
        m.nodes.iter().filter(|n| n.role == Role::Tx).count()
    )
}

fn box_size(m: &super::Member) -> (f64, f64) {
    let nodes = m.nodes.len();
    let cols = nodes.clamp(1, PER_ROW);
    let rows = nodes.div_ceil(PER_ROW).max(1);
    let header = text_width(&m.name, 14.0) + text_width(&counts(m), 11.0) + 44.0;
    let w = (cols as f64 * COL + 2.0 * PAD).max(170.0).max(header);
    let h = HEADER + rows as f64 * ROW + 4.0;
    (w, h)
}

/// Box centres for `sizes`, before translation into the canvas.
fn place(sizes: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let m = sizes.len();
    let biggest = sizes.iter().map(|(w, h)| w.max(*h)).fold(0.0_f64, f64::max);
    match m {
        0 => vec![],
        1 => vec![(0.0, 0.0)],
        2 => {
            let d = (sizes[0].0 + sizes[1].0) / 2.0 + GAP;
            vec![(-d / 2.0, 0.0), (d / 2.0, 0.0)]
        }
        _ => {
            let r = (biggest + GAP) / (2.0 * (PI / m as f64).sin());
            (0..m)
                .map(|k| {
                    let a = -PI / 2.0 + 2.0 * PI * k as f64 / m as f64;
                    (r * a.cos(), r * a.sin())
                })
                .collect()
        }
    }
}

/// Colours (fill, stroke) of a node for its state; `member` is its member's colour.
fn node_colours<'a>(n: &Node, member: &'a str) -> (&'a str, &'a str, &'static str) {
    let state = match &n.status {
        None => return ("#ffffff", member, "planned"),
        Some(s) if !s.running => "down",
        Some(s) if !s.healthy => "degraded",
        Some(_) => "ok",
    };
    let (_, fill, stroke, _) = STATE_COLOURS
        .iter()
        .find(|c| c.0 == state)
        .expect("every state has colours");
    (fill, stroke, state)
}

/// (state, fill, stroke, what the legend says) of a node the nodes reported on.
const STATE_COLOURS: [(&str, &str, &str, &str); 3] = [
    ("ok", "#e6f6ec", "#2e9d5b", "running, healthy"),
    ("degraded", "#fff4dc", "#d89b16", "running, not healthy"),
    ("down", "#fde8e8", "#d64545", "down"),
];

fn star(cx: f64, cy: f64, r: f64) -> String {
    let mut pts = Vec::new();
    for i in 0..10 {
        let rr = if i % 2 == 0 { r } else { r * 0.45 };
        let a = -PI / 2.0 + PI * i as f64 / 5.0;
        pts.push(format!("{:.1},{:.1}", cx + rr * a.cos(), cy + rr * a.sin()));
    }
    pts.join(" ")
}

/// The SVG document for `g`.
pub fn render(g: &Graph) -> String {
    let sizes: Vec<(f64, f64)> = g.members.iter().map(box_size).collect();
    let centres = place(&sizes);
    let mut boxes: Vec<Boxed> = sizes
        .iter()
        .zip(&centres)
        .map(|((w, h), (cx, cy))| Boxed {
            x: cx - w / 2.0,
            y: cy - h / 2.0,
            w: *w,
            h: *h,
        })
        .collect();
    let min_x = boxes.iter().map(|b| b.x).fold(f64::INFINITY, f64::min);
    let min_y = boxes.iter().map(|b| b.y).fold(f64::INFINITY, f64::min);
    let max_x = boxes
        .iter()
        .map(|b| b.x + b.w)
        .fold(f64::NEG_INFINITY, f64::max);
    let max_y = boxes
        .iter()
        .map(|b| b.y + b.h)
        .fold(f64::NEG_INFINITY, f64::max);
    let (min_x, min_y, max_x, max_y) = if boxes.is_empty() {
        (0.0, 0.0, 300.0, 60.0)
    } else {
        (min_x, min_y, max_x, max_y)
    };
    let width = (max_x - min_x + 2.0 * MARGIN).max(520.0);
    let height = max_y - min_y + 2.0 * MARGIN + TITLE + LEGEND;
    let dx = (width - (max_x - min_x)) / 2.0 - min_x;
    let dy = MARGIN + TITLE - min_y;
    for b in &mut boxes {
        b.x += dx;
        b.y += dy;
    }

    // Node centres.
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (m, b) in g.members.iter().zip(&boxes) {
        let n = m.nodes.len();
        for (i, node) in m.nodes.iter().enumerate() {
            let row = i / PER_ROW;
            let in_row = (n - row * PER_ROW).min(PER_ROW);
            let col = i % PER_ROW;
            let row_w = in_row as f64 * COL;
            let x = b.x + (b.w - row_w) / 2.0 + COL * (col as f64 + 0.5);
            let y = b.y + HEADER + ROW * row as f64 + NODE / 2.0 + 8.0;
            at.insert(node.name.as_str(), (x, y));
        }
    }

    let nodes = g.nodes().count();
    let signers = g.nodes().filter(|n| n.signer).count();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="{FONT}" role="img" aria-label="{}">"#,
        esc(&format!("Topology of network {}", g.network))
    );
    let _ = write!(
        s,
        "<title>{}</title>",
        esc(&format!(
            "{}: {} member(s), {} node(s), {} signer(s)",
            g.network,
            g.members.len(),
            nodes,
            signers
        ))
    );
    let _ = write!(
        s,
        r##"<text x="{MARGIN}" y="{:.0}" font-size="16" font-weight="600" fill="#1f2a37">{}</text><text x="{MARGIN}" y="{:.0}" font-size="12" fill="#6b7785">{}</text>"##,
        MARGIN + 2.0,
        esc(&g.network),
        MARGIN + 20.0,
        esc(&format!(
            "{} member(s) · {} node(s) · {} signer(s)",
            g.members.len(),
            nodes,
            signers
        ))
    );

    // Member boxes first, then the links above them (a box would hide the links that cross
    // it), then each member's label and nodes above the links.
    s.push_str(r#"<g class="member-boxes">"#);
    for (k, b) in boxes.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="14" fill="#ffffff" fill-opacity="0.82" stroke="{colour}" stroke-width="1.5"/><rect x="{:.1}" y="{:.1}" width="{:.1}" height="6" rx="3" fill="{colour}"/>"##,
            b.x,
            b.y,
            b.w,
            b.h,
            b.x + 14.0,
            b.y + 8.0,
            b.w - 28.0,
        );
    }
    s.push_str("</g>");

    // Links: fainter the more there are, so the groups stay readable.
    let fade = if g.links.len() > 40 { 0.45 } else { 1.0 };
    s.push_str(r#"<g class="links">"#);
    for l in &g.links {
        let (Some(a), Some(b)) = (at.get(l.a.as_str()), at.get(l.b.as_str())) else {
            continue;
        };
        let (stroke, width, dash, opacity) = match l.kind {
            LinkKind::Planned => ("#94a3b8", 1.4, "", 0.7 * fade),
            LinkKind::Up => ("#4f86c6", 1.8, "", 0.75 * fade),
            LinkKind::Missing => ("#d64545", 2.0, r#" stroke-dasharray="6 5""#, 0.9),
            LinkKind::Extra => ("#d9822b", 1.8, r#" stroke-dasharray="2 4""#, 0.9),
        };
        let _ = write!(
            s,
            r#"<line class="link {}" data-a="{}" data-b="{}" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{stroke}" stroke-width="{width}" stroke-opacity="{opacity}"{dash}><title>{}</title></line>"#,
            l.kind.as_str(),
            esc(&l.a),
            esc(&l.b),
            a.0,
            a.1,
            b.0,
            b.1,
            esc(&format!("{} — {} ({})", l.a, l.b, l.kind.as_str()))
        );
    }
    s.push_str("</g>");

    for (k, (m, b)) in g.members.iter().zip(&boxes).enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let _ = write!(
            s,
            r##"<g class="member" data-member="{name}"><text x="{:.1}" y="{:.1}" font-size="14" font-weight="600" fill="#1f2a37">{name}</text><text x="{:.1}" y="{:.1}" font-size="11" fill="#6b7785" text-anchor="end">{}</text>"##,
            b.x + 14.0,
            b.y + 30.0,
            b.x + b.w - 14.0,
            b.y + 30.0,
            esc(&counts(m)),
            name = esc(&m.name),
        );
        for n in &m.nodes {
            let (x, y) = at[n.name.as_str()];
            let (fill, stroke, state) = node_colours(n, colour);
            let role = match n.role {
                Role::Validator => "validator",
                Role::Tx => "tx",
            };
            let mut tip = format!("{} — {role} of {}", n.name, m.name);
            if n.signer {
                tip.push_str(", Clique signer");
            }
            if let Some(st) = &n.status {
                if st.running {
                    let _ = write!(tip, "; head #{}, {} peer(s)", st.head, st.peers);
                    if st.lag > 0 {
                        let _ = write!(tip, ", {} behind", st.lag);
                    }
                } else {
                    tip.push_str("; not running");
                }
            }
            let _ = write!(
                s,
                r#"<g class="node {role}{} {state}" data-node="{}"><title>{}</title>"#,
                if n.signer { " signer" } else { "" },
                esc(&n.name),
                esc(&tip)
            );
            match n.role {
                Role::Validator => {
                    let _ = write!(
                        s,
                        r#"<rect x="{:.1}" y="{:.1}" width="{NODE}" height="{NODE}" rx="11" fill="{fill}" stroke="{stroke}" stroke-width="2.2"/>"#,
                        x - NODE / 2.0,
                        y - NODE / 2.0
                    );
                }
                Role::Tx => {
                    let _ = write!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="{:.1}" fill="{fill}" stroke="{stroke}" stroke-width="2.2"/>"#,
                        NODE / 2.0
                    );
                }
            }
            let glyph = match n.role {
                Role::Validator => "V",
                Role::Tx => "TX",
            };
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" font-size="13" font-weight="700" fill="{stroke}" text-anchor="middle">{glyph}</text>"#,
                y + 4.5
            );
            if n.signer {
                let _ = write!(
                    s,
                    r##"<polygon class="signer-mark" points="{}" fill="#f5b301" stroke="#ffffff" stroke-width="1.2"/>"##,
                    star(x + NODE / 2.0 - 2.0, y - NODE / 2.0 + 2.0, 9.0)
                );
            }
            let _ = write!(
                s,
                r##"<text x="{x:.1}" y="{:.1}" font-size="12" font-weight="500" fill="#1f2a37" text-anchor="middle">{}</text>"##,
                y + NODE / 2.0 + 16.0,
                esc(short_name(&m.name, &n.name))
            );
            if let Some(st) = &n.status {
                let line = if !st.running {
                    "stopped".to_string()
                } else if st.lag > 1 {
                    format!("#{} · {} behind", st.head, st.lag)
                } else {
                    format!("#{} · {} peers", st.head, st.peers)
                };
                let _ = write!(
                    s,
                    r##"<text x="{x:.1}" y="{:.1}" font-size="11" fill="#6b7785" text-anchor="middle">{}</text>"##,
                    y + NODE / 2.0 + 30.0,
                    esc(&line)
                );
            }
            s.push_str("</g>");
        }
        s.push_str("</g>");
    }

    // Legend.
    let ly = height - LEGEND / 2.0;
    let mut lx = MARGIN;
    s.push_str(r##"<g class="legend" font-size="11" fill="#4b5563">"##);
    let _ = write!(
        s,
        r##"<rect x="{lx:.1}" y="{:.1}" width="14" height="14" rx="4" fill="#ffffff" stroke="#64748b" stroke-width="1.6"/><text x="{:.1}" y="{:.1}">validator</text>"##,
        ly - 7.0,
        lx + 20.0,
        ly + 4.0
    );
    lx += 86.0;
    let _ = write!(
        s,
        r##"<circle cx="{:.1}" cy="{ly:.1}" r="7" fill="#ffffff" stroke="#64748b" stroke-width="1.6"/><text x="{:.1}" y="{:.1}">tx node</text>"##,
        lx + 7.0,
        lx + 20.0,
        ly + 4.0
    );
    lx += 76.0;
    let _ = write!(
        s,
        r##"<polygon points="{}" fill="#f5b301"/><text x="{:.1}" y="{:.1}">signer</text>"##,
        star(lx + 7.0, ly, 8.0),
        lx + 20.0,
        ly + 4.0
    );
    lx += 70.0;
    let kinds: Vec<LinkKind> = {
        let mut k: Vec<LinkKind> = g.links.iter().map(|l| l.kind).collect();
        k.sort();
        k.dedup();
        k
    };
    for k in kinds {
        let (stroke, dash, label) = match k {
            LinkKind::Planned => ("#94a3b8", "", "planned peering"),
            LinkKind::Up => ("#4f86c6", "", "connected"),
            LinkKind::Missing => (
                "#d64545",
                r#" stroke-dasharray="6 5""#,
                "planned, not connected",
            ),
            LinkKind::Extra => (
                "#d9822b",
                r#" stroke-dasharray="2 4""#,
                "connected, not planned",
            ),
        };
        let _ = write!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{stroke}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
        lx += 40.0 + label.len() as f64 * 6.0;
    }
    // Fills: a node's state as the nodes report it (`--live`, the dashboard).
    let states: Vec<&str> = g
        .members
        .iter()
        .flat_map(|m| m.nodes.iter())
        .filter(|n| n.status.is_some())
        .map(|n| node_colours(n, "").2)
        .collect();
    for (state, fill, stroke, label) in STATE_COLOURS {
        if !states.contains(&state) {
            continue;
        }
        let _ = write!(
            s,
            r#"<g class="fill-legend" data-state="{state}"><circle cx="{:.1}" cy="{ly:.1}" r="7" fill="{fill}" stroke="{stroke}" stroke-width="1.6"/><text x="{:.1}" y="{:.1}">{label}</text></g>"#,
            lx + 7.0,
            lx + 20.0,
            ly + 4.0
        );
        lx += 34.0 + label.len() as f64 * 6.0;
    }
    s.push_str("</g></svg>\n");
    s
}
