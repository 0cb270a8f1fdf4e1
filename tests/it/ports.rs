//! Issue 10, item 2: conventional, stable ports. With `base_port: B` every node gets p2p
//! port B + i (topology order), tx nodes HTTP and WebSocket from B + node count, pairwise;
//! the same topology gets the same ports after destroy + apply, and a port taken by
//! something else moves only that node, as the plan shows under it.

use crate::support::{
    consort, consort_cmd, consort_ok, port_base, run_with_deadline, topology_copy, NetworkHandle,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;

/// node → (p2p port from its enode, HTTP URL, WS URL).
fn ports(
    dir: &std::path::Path,
    file: &str,
) -> BTreeMap<String, (u16, Option<String>, Option<String>)> {
    let out: Value =
        serde_json::from_str(&consort_ok(dir, &["-f", file, "output", "--json"])).unwrap();
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
    let first = ports(&dir, "three-members.yaml");

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
    assert_eq!(
        ports(&dir, "three-members.yaml"),
        first,
        "ports changed across destroy + apply"
    );

    // Something else takes contoso-tx-0's HTTP port: only that node moves, and says so.
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
    let squatter = TcpListener::bind(("127.0.0.1", rpc)).expect("the port is free again");
    let out = consort(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert!(out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // The plan apply prints shows it under that node (and only there). (Its new pair
    // comes from past the RPC block, so metrics ports after it shift too: shown as well.)
    let lines: Vec<&str> = said.lines().collect();
    let busy: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("busy: http/ws"))
        .collect();
    assert_eq!(busy.len(), 1, "one node skips a busy RPC port: {said}");
    let i = busy[0];
    assert!(
        i > 0
            && lines[i - 1].contains("+ node.contoso-tx-0")
            && lines[i].contains(&format!("(busy: http/ws {rpc}/{}", rpc + 1)),
        "the busy port is not shown under the moved node: {said}"
    );
    let third = ports(&dir, "three-members.yaml");
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

/// Issue 22 item 8: `plan` shows the ports each new node will get (`--json` too); a planned
/// port taken between plan and apply moves only its node, apply says so in one line, and
/// `output` and `status` show the port the node really got. With a non-default file, the
/// hints printed (the saved plan's, `stop`'s) name it.
#[test]
fn planned_ports_are_shown_and_a_port_taken_before_apply_is_reported_in_one_line() {
    let net = NetworkHandle::new("devnet");
    let dir = net.dir.path().canonicalize().unwrap();
    let b = port_base();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dev-single.yaml");
    let text = std::fs::read_to_string(src)
        .unwrap()
        .replace("base_port: 30303", &format!("base_port: {b}"));
    std::fs::write(dir.join("two.yaml"), text).unwrap();
    let f = ["-f", "two.yaml"];

    let plan = consort_ok(&dir, &[&f[..], &["plan", "--out", "plan.json"]].concat());
    assert!(
        plan.contains("Apply exactly it with `consort -f two.yaml apply plan.json`."),
        "{plan}"
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    let planned = &saved["ports"];
    let port = |node: &str, kind: &str| planned[node][kind].as_u64().unwrap() as u16;
    // Every new node's ports, in the text as in the saved plan (what `plan --json` prints).
    for node in ["contoso-validator-0", "contoso-tx-0"] {
        let mut want = format!("ports: p2p {}", port(node, "p2p"));
        if node.contains("tx") {
            want += &format!(", http {}, ws {}", port(node, "http"), port(node, "ws"));
        }
        want += &format!(", metrics {}", port(node, "metrics"));
        assert!(plan.contains(&want), "{node}: {want} not in\n{plan}");
    }
    let http = port("contoso-tx-0", "http");
    let ws = port("contoso-tx-0", "ws");
    assert_eq!(ws, http + 1);

    // Something takes the tx node's planned HTTP port before apply.
    let squatter = TcpListener::bind(("127.0.0.1", http)).expect("the planned port is free");
    let out = consort(&dir, &[&f[..], &["apply", "plan.json", "--yes"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("got other ports than planned"))
        .collect();
    assert_eq!(summary.len(), 1, "one summary line: {stdout}");

    let now = ports(&dir, "two.yaml");
    let url = now["contoso-tx-0"].1.clone().unwrap();
    let got: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(got, http, "output shows the planned port: {url}");
    assert_eq!(
        now["contoso-tx-0"].2,
        Some(format!("ws://127.0.0.1:{}", got + 1))
    );
    let expected = format!(
        "1 node got other ports than planned (busy): contoso-tx-0 http {http}→{got} ws {ws}→{}",
        got + 1
    );
    assert!(
        summary[0].starts_with(&expected),
        "{:?} does not start with {expected:?}",
        summary[0]
    );
    assert!(!summary[0].contains("validator"), "{}", summary[0]);
    assert_eq!(
        now["contoso-validator-0"].0,
        port("contoso-validator-0", "p2p")
    );
    let status = consort_ok(&dir, &[&f[..], &["status"]].concat());
    assert!(
        status.contains(&url),
        "status does not show {url}:\n{status}"
    );
    drop(squatter);

    let stop = consort_ok(&dir, &[&f[..], &["stop"]].concat());
    assert!(
        stop.contains("`consort -f two.yaml start` continues"),
        "{stop}"
    );
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
}

/// metrics URL → port.
fn metrics_port(dir: &std::path::Path, node: &str) -> u16 {
    let out: Value = serde_json::from_str(&consort_ok(
        dir,
        &["-f", "three-members.yaml", "output", "--json"],
    ))
    .unwrap();
    let n = out["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no {node} in {out}"));
    let url = n["metrics_url"].as_str().expect("a metrics URL");
    url.trim_start_matches("http://")
        .split(['/', ':'])
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Issue 23: a port taken between consort's check and geth's bind. geth's metrics server
/// only logs the bind error and geth runs on without metrics (metrics/exp/exp.go `Setup`),
/// so such a node used to count as started. It is a failed start: consort stops it and
/// starts it again on fresh ports, saying so, and the metrics URL it records answers.
#[test]
fn a_metrics_port_taken_while_geth_starts_is_a_failed_start_retried_on_fresh_ports() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let net = NetworkHandle::new("three-members");
    let dir = net.dir.path().canonicalize().unwrap();
    topology_copy(&dir, "three-members.yaml", port_base(), None);
    let f = ["-f", "three-members.yaml"];
    consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    let victim = "fabrikam-tx-0";
    let taken = metrics_port(&dir, victim);
    let mark = net
        .state_dir()
        .nodes_dir()
        .join(victim)
        .join("stopped-by-consort");

    // `start` checks the node's recorded ports, then removes its stop mark and starts
    // geth: the port is taken right after the mark goes, before geth binds it (geth
    // reads its config and opens nothing for tens of ms first). Should geth win the race
    // anyway, stop and try again.
    let mut squatter = None;
    let mut said = String::new();
    for _ in 0..3 {
        consort_ok(&dir, &[&f[..], &["stop"]].concat());
        assert!(mark.exists(), "consort stop leaves {}", mark.display());
        let done = AtomicBool::new(false);
        let (bound, out) = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(120);
                while mark.exists() && !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::net::TcpListener::bind(("127.0.0.1", taken)).ok()
            });
            let out = run_with_deadline(
                consort_cmd(&dir, &[&f[..], &["start"]].concat()),
                Duration::from_secs(180),
            );
            done.store(true, Ordering::SeqCst);
            (watcher.join().unwrap(), out)
        });
        assert!(out.status.success(), "consort start failed");
        said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if bound.is_some() {
            squatter = bound;
            break;
        }
    }
    let _squatter =
        squatter.expect("the metrics port was taken before geth bound it once in 3 tries");
    assert!(
        said.lines().any(|l| l.contains(&format!("node.{victim}"))
            && l.contains("started only in part")
            && l.contains(&taken.to_string())),
        "no warning naming the node and its taken metrics port:\n{said}"
    );
    let now = metrics_port(&dir, victim);
    assert_ne!(now, taken, "still recorded on the taken metrics port");
    // The recorded metrics URL is geth's (it answers with Prometheus text).
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", now)).expect("metrics answers");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /debug/metrics/prometheus HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    assert!(body.starts_with("HTTP/1.0 200"), "{body:.200}");
    assert!(
        body.contains("chain_head_block"),
        "not geth's metrics: {body:.300}"
    );
    let status: Value =
        serde_json::from_str(&consort_ok(&dir, &[&f[..], &["status", "--json"]].concat())).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
}
