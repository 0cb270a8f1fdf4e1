//! Issue 10, item 2: conventional, stable ports. With `base_port: B` every node gets p2p
//! port B + i (topology order), tx nodes HTTP and WebSocket from B + node count, pairwise;
//! the same topology gets the same ports after destroy + apply, and a port taken by
//! something else moves only that node, with a warning naming it.

use crate::support::{consort, consort_ok, port_base, topology_copy, NetworkHandle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;

/// node → (p2p port from its enode, HTTP URL, WS URL).
fn ports(dir: &std::path::Path) -> BTreeMap<String, (u16, Option<String>, Option<String>)> {
    let out: Value = serde_json::from_str(&consort_ok(
        dir,
        &["-f", "three-members.yaml", "output", "--json"],
    ))
    .unwrap();
    out["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let enode = n["enode"].as_str().unwrap();
            let p2p = enode.rsplit(':').next().unwrap().parse().unwrap();
            (
                n["name"].as_str().unwrap().to_string(),
                (
                    p2p,
                    n["rpc_url"].as_str().map(str::to_string),
                    n["ws_url"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

#[test]
fn ports_are_conventional_stable_and_a_taken_port_moves_only_its_node() {
    let net = NetworkHandle::new("three-members");
    let dir = net.dir.path().canonicalize().unwrap();
    let base = port_base();
    topology_copy(&dir, "three-members.yaml", base, None);
    let f = ["-f", "three-members.yaml"];
    consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    let first = ports(&dir);

    // Topology order: contoso-validator-0, contoso-tx-0, fabrikam-validator-0,
    // fabrikam-tx-0, northwind-validator-0.
    let order = [
        "contoso-validator-0",
        "contoso-tx-0",
        "fabrikam-validator-0",
        "fabrikam-tx-0",
        "northwind-validator-0",
    ];
    let rpc = base + order.len() as u16;
    for (i, name) in order.iter().enumerate() {
        let (p2p, http, ws) = &first[*name];
        assert_eq!(*p2p, base + i as u16, "{name}: {first:?}");
        if name.contains("validator") {
            assert_eq!((http, ws), (&None, &None), "{name}");
        }
    }
    let url = |p: u16, s: &str| Some(format!("{s}://127.0.0.1:{p}"));
    assert_eq!(first["contoso-tx-0"].1, url(rpc, "http"));
    assert_eq!(first["contoso-tx-0"].2, url(rpc + 1, "ws"));
    assert_eq!(first["fabrikam-tx-0"].1, url(rpc + 2, "http"));
    assert_eq!(first["fabrikam-tx-0"].2, url(rpc + 3, "ws"));

    // Destroy + apply: the same ports.
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
    consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert_eq!(ports(&dir), first, "ports changed across destroy + apply");

    // Something else takes contoso-tx-0's HTTP port: only that node moves, and says so.
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
    let squatter = TcpListener::bind(("127.0.0.1", rpc)).expect("the port is free again");
    let out = consort(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert!(out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.lines()
            .any(|l| l.contains("warning: node.contoso-tx-0") && l.contains(&format!("{rpc}"))),
        "no warning naming the moved node: {said}"
    );
    let third = ports(&dir);
    for (name, p) in &first {
        if name != "contoso-tx-0" {
            assert_eq!(&third[name], p, "{name} moved too");
        }
    }
    let moved = &third["contoso-tx-0"];
    assert_eq!(moved.0, first["contoso-tx-0"].0, "its p2p port was free");
    assert_ne!(moved.1, first["contoso-tx-0"].1);
    let h: u16 = moved
        .1
        .as_ref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(moved.2, url(h + 1, "ws"), "WebSocket beside HTTP");
    drop(squatter);
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
}
