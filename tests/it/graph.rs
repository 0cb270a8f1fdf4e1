//! `consort graph` on the shipped topologies, no network needed: the SVG is valid XML
//! (parsed) with a labelled group per member holding each of its nodes, validators and tx
//! nodes told apart and signers marked; the DOT is valid DOT — Graphviz' own `dot` must
//! read it (`.ci/run` installs graphviz; the test fails loudly without it).

use crate::support::consort_ok;
use consort::topology::Role;
use std::path::Path;
use std::process::{Command, Stdio};

fn topologies() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    assert!(out.len() >= 3, "{out:?}");
    out
}

#[test]
fn svg_has_every_member_and_node_for_every_shipped_topology() {
    for file in topologies() {
        let topo = consort::topology::load(&file).unwrap().topology;
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("t.svg");
        consort_ok(
            tmp.path(),
            &[
                "graph",
                "-f",
                file.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
        );
        let svg = std::fs::read_to_string(&out).unwrap();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{}: not valid XML: {e}", file.display()));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert!(root.attribute("viewBox").is_some());
        for m in &topo.members {
            let group = doc
                .descendants()
                .find(|n| n.attribute("data-member") == Some(m.name.as_str()))
                .unwrap_or_else(|| panic!("{}: no group for member {}", file.display(), m.name));
            let label = group
                .descendants()
                .any(|n| n.tag_name().name() == "text" && n.text() == Some(m.name.as_str()));
            assert!(label, "member {} has no label", m.name);
            for n in topo.nodes().iter().filter(|n| n.member == m.name) {
                let node = group
                    .descendants()
                    .find(|x| x.attribute("data-node") == Some(n.name.as_str()))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: node {} not in {}'s group",
                            file.display(),
                            n.name,
                            m.name
                        )
                    });
                let class = node.attribute("class").unwrap();
                let (shape, role) = match n.role {
                    Role::Validator => ("rect", "validator"),
                    Role::Tx => ("circle", "tx"),
                };
                assert!(class.contains(role), "{}: {class}", n.name);
                assert!(
                    node.children().any(|c| c.tag_name().name() == shape),
                    "{} is no {shape}",
                    n.name
                );
                // Planned: every validator signs, and wears the star.
                let star = node
                    .descendants()
                    .any(|c| c.attribute("class") == Some("signer-mark"));
                assert_eq!(star, n.role == Role::Validator, "{}", n.name);
                let title = node
                    .children()
                    .find(|c| c.tag_name().name() == "title")
                    .unwrap();
                assert!(title.text().unwrap().contains(&n.name));
            }
        }
        // The links of the peering plan the providers build.
        let plan = consort::plan::peering::Peering::plan(&topo.nodes());
        let links: Vec<(String, String)> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("link planned"))
            .map(|n| {
                let (a, b) = (
                    n.attribute("data-a").unwrap(),
                    n.attribute("data-b").unwrap(),
                );
                assert!(plan.are_peers(a, b), "{a} -- {b} is not planned");
                (a.to_string(), b.to_string())
            })
            .collect();
        assert_eq!(links.len(), plan.links(), "{}", file.display());
    }
}

#[test]
fn dot_is_read_by_graphviz() {
    for file in topologies() {
        let topo = consort::topology::load(&file).unwrap().topology;
        let tmp = tempfile::tempdir().unwrap();
        let dot = consort_ok(
            tmp.path(),
            &["graph", "--format", "dot", "-f", file.to_str().unwrap()],
        );
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("this test needs Graphviz' dot (`apt-get install graphviz`; .ci/run installs it): {e}"));
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "dot refused:\n{stderr}\n{dot}"
        );
        // Graphviz's rendering holds every member's cluster and every node.
        let svg = String::from_utf8(out.stdout).unwrap();
        for m in &topo.members {
            let cluster = format!("cluster_{}", m.name.replace('-', "&#45;"));
            assert!(svg.contains(&cluster), "{}", m.name);
        }
        for n in topo.nodes() {
            // Graphviz writes '-' as &#45; in its SVG.
            let title = format!("<title>{}</title>", n.name.replace('-', "&#45;"));
            assert!(svg.contains(&title), "{}", n.name);
        }
    }
}
