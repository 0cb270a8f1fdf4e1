//! Issue 8, item 9: changing `client.geth` is a rolling restart that keeps the chain. A
//! network deployed on geth 1.13.14 (built with `go install` like 1.13.15, cached) is
//! upgraded to 1.13.15: every node is updated in place (`~`, never `-/+`), one at a time;
//! the head never goes back, no gap between blocks exceeds 3 periods, balances and the
//! genesis are those of before.

use crate::support::{consort_cmd, geth, poll, port_base, topology_copy, NetworkHandle};
use consort::chain::geth::{ensure_geth_with, GethBinary, Lookup};
use consort::events::{Event, EventSink};
use consort::provider::local::NodeOutputs;
use consort::rpc::{BlockId, RpcClient};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const OLD: &str = "1.13.14";
const PERIOD: u64 = 2;

/// geth 1.13.14 from the cache, built there with Go if missing (never from PATH or
/// CONSORT_GETH, which hold 1.13.15).
fn old_geth() -> GethBinary {
    let sink: EventSink = Arc::new(|e| {
        if let Event::Phase { message } = e {
            eprintln!("[upgrade] {message} …");
        }
    });
    let lookup = Lookup {
        env_geth: None,
        path_var: std::env::var_os("PATH").map(|p| {
            // Go only: a geth on PATH would satisfy any 1.13.x.
            std::env::join_paths(std::env::split_paths(&p).filter(|d| !d.join("geth").exists()))
                .unwrap()
        }),
        ..Lookup::from_env()
    };
    let g = ensure_geth_with(&lookup, None, OLD, &sink)
        .unwrap_or_else(|e| panic!("the upgrade test needs geth {OLD}: {e}"));
    assert_eq!(g.version, OLD, "{}", g.path.display());
    g
}

fn run(dir: &Path, geth_path: &Path, args: &[&str]) -> (i32, String) {
    let out = consort_cmd(dir, args)
        .env("CONSORT_GETH", geth_path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("[consort {}]\n{text}", args.join(" "));
    (out.status.code().unwrap_or(-1), text)
}

fn nodes(net: &NetworkHandle) -> Vec<(String, NodeOutputs)> {
    let st = net.state_dir().load().unwrap().unwrap();
    st.resources
        .keys()
        .filter_map(|a| a.strip_prefix("node."))
        .map(|n| (n.to_string(), NodeOutputs::from_state(&st, n).unwrap()))
        .collect()
}

#[test]
fn changing_client_geth_is_a_rolling_restart_that_keeps_the_chain() {
    let old = old_geth();
    let new = geth();
    let net = NetworkHandle::new("three-members");
    let dir = net.dir.path().canonicalize().unwrap();
    let file = topology_copy(&dir, "three-members.yaml", port_base(), None);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("geth: 1.13.15"));
    std::fs::write(
        &file,
        text.replace("geth: 1.13.15", &format!("geth: {OLD}")),
    )
    .unwrap();
    let f = ["-f", "three-members.yaml"];
    let (code, out) = run(&dir, &old.path, &[&f[..], &["apply", "--yes"]].concat());
    assert_eq!(code, 0, "{out}");
    for (n, o) in nodes(&net) {
        assert_eq!(o.geth_version, OLD, "{n}");
    }
    let validator = |net: &NetworkHandle| -> RpcClient {
        let (_, o) = nodes(net)
            .into_iter()
            .find(|(n, _)| n == "contoso-validator-0")
            .unwrap();
        o.control()
    };
    let rpc = validator(&net);
    let head0 = poll(
        "a few blocks on the old geth",
        Duration::from_secs(60),
        || {
            let h = rpc.block_number().map_err(|e| e.to_string())?;
            Ok((h >= 3).then_some(h))
        },
    );
    let genesis = rpc.genesis_hash().unwrap();
    let output: Value =
        serde_json::from_str(&run(&dir, &old.path, &[&f[..], &["output", "--json"]].concat()).1)
            .unwrap();
    let treasury = output["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "treasury")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let treasury = consort::rpc::parse_address(&treasury).unwrap();
    let balance0 = rpc.eth_get_balance(&treasury, BlockId::Latest).unwrap();

    // Watch every node's head while the upgrade runs: none may ever go back.
    let stop = AtomicBool::new(false);
    let went_back: Mutex<Vec<String>> = Mutex::new(vec![]);
    let sockets: Vec<(String, String)> = nodes(&net)
        .into_iter()
        .map(|(n, o)| (n, o.ipc_path))
        .collect();
    std::fs::write(&file, text).unwrap(); // back to 1.13.15
    let (plan_code, plan) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut last: std::collections::BTreeMap<&str, u64> = Default::default();
            while !stop.load(Ordering::SeqCst) {
                for (n, ipc) in &sockets {
                    let c = RpcClient::ipc(ipc).with_timeout(Duration::from_millis(500));
                    if let Ok(h) = c.block_number() {
                        let prev = last.insert(n, h).unwrap_or(0);
                        if h < prev {
                            went_back.lock().unwrap().push(format!("{n}: {prev} → {h}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let plan = run(&dir, &new.path, &[&f[..], &["plan"]].concat());
        let (code, out) = run(&dir, &new.path, &[&f[..], &["apply", "--yes"]].concat());
        stop.store(true, Ordering::SeqCst);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("upgrade geth 1.13.14 → 1.13.15"), "{out}");
        plan
    });
    assert_eq!(plan_code, 0, "{plan}");
    assert!(
        !plan.contains("-/+"),
        "an upgrade must not replace nodes:\n{plan}"
    );
    assert!(
        plan.contains("~ node.contoso-validator-0") && plan.contains("1.13.14"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 0 to add, 5 to change, 0 to destroy."),
        "{plan}"
    );
    assert!(
        went_back.lock().unwrap().is_empty(),
        "{:?}",
        went_back.lock().unwrap()
    );

    for (n, o) in nodes(&net) {
        assert_eq!(o.geth_version, "1.13.15", "{n}");
        let exe = std::fs::read_link(format!("/proc/{}/exe", o.pid)).unwrap();
        assert_eq!(exe, std::fs::canonicalize(&new.path).unwrap(), "{n}");
    }
    let rpc = validator(&net);
    assert_eq!(rpc.genesis_hash().unwrap(), genesis, "same chain");
    let head1 = poll("blocks on the new geth", Duration::from_secs(60), || {
        let h = rpc.block_number().map_err(|e| e.to_string())?;
        Ok((h > head0 + 2).then_some(h))
    });
    assert_eq!(
        rpc.eth_get_balance(&treasury, BlockId::Latest).unwrap(),
        balance0
    );
    // No gap longer than 3 periods between consecutive blocks across the upgrade.
    let mut prev = rpc
        .block_by_number(BlockId::Number(head0))
        .unwrap()
        .unwrap();
    for b in head0 + 1..=head1 {
        let blk = rpc.block_by_number(BlockId::Number(b)).unwrap().unwrap();
        assert!(
            blk.timestamp - prev.timestamp <= 3 * PERIOD,
            "gap of {} s before block {b}",
            blk.timestamp - prev.timestamp
        );
        prev = blk;
    }
    let (code, out) = run(
        &dir,
        &new.path,
        &[&f[..], &["plan", "--detailed-exitcode"]].concat(),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&dir, &new.path, &[&f[..], &["destroy", "--yes"]].concat());
    assert_eq!(code, 0, "{out}");
}
