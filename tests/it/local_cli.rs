//! Issue 3 end to end: the real `consort` binary deploys shipped topologies as real geth
//! 1.13.15 nodes on 127.0.0.1, and status / output / plan / apply / destroy behave.

use crate::support::{
    consort, consort_cmd, consort_ok, poll, port_base, processes_under, topology_copy,
    NetworkHandle,
};
use consort::crypto::keystore;
use consort::crypto::tx::LegacyTx;
use consort::rpc::{parse_address, BlockId, RpcClient};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const ETHER: u128 = 1_000_000_000_000_000_000;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn node<'a>(output: &'a Value, name: &str) -> &'a Value {
    output["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {output}"))
}

/// The operator's control channel to a node: its IPC socket.
fn rpc_of(output: &Value, name: &str) -> RpcClient {
    RpcClient::ipc(node(output, name)["ipc_path"].as_str().unwrap())
}

fn account<'a>(output: &'a Value, member: &str, name: &str) -> &'a Value {
    output["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["member"] == member && a["name"] == name)
        .unwrap_or_else(|| panic!("no account {member}/{name} in {output}"))
}

#[test]
fn three_members_deploy_transact_survive_kill_and_destroy() {
    let net = NetworkHandle::new("three-members");
    let dir = net.dir.path().canonicalize().unwrap();
    topology_copy(&dir, "three-members.yaml", port_base(), None);
    let f = ["-f", "three-members.yaml"];
    let mut printed = String::new();

    // ---- apply: healthy on return.
    let out = consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert!(
        out.contains("Network three-members is healthy: 5 node(s) peered"),
        "{out}"
    );
    printed += &out;

    // ---- status --json: every node running, peered with the 4 others, sealing.
    let out = consort_ok(&dir, &[&f[..], &["status", "--json"]].concat());
    printed += &out;
    let status = json(&out);
    assert_eq!(status["healthy"], true, "{status}");
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    for n in nodes {
        assert_eq!(n["running"], true, "{n}");
        assert_eq!(n["peers"], 4, "{n}");
        // Applications connect to tx nodes; validators serve no TCP RPC.
        match n["role"].as_str().unwrap() {
            "tx" => assert!(
                n["rpc_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("http://127.0.0.1:"),
                "{n}"
            ),
            _ => assert!(n["rpc_url"].is_null(), "{n}"),
        }
    }

    // ---- output --json: the documented shape, absolute paths, 0600 secrets.
    let out = consort_ok(&dir, &[&f[..], &["output", "--json"]].concat());
    printed += &out;
    let output = json(&out);
    assert_eq!(output["network"]["name"], "three-members");
    assert_eq!(output["network"]["chain_id"], 717171);
    let genesis_hash = output["network"]["genesis_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(genesis_hash.len(), 66);
    let mut validators = BTreeSet::new();
    for n in output["nodes"].as_array().unwrap() {
        let rpc = RpcClient::ipc(n["ipc_path"].as_str().unwrap());
        assert_eq!(rpc.genesis_hash().unwrap(), genesis_hash, "{n}");
        let enode = n["enode"].as_str().unwrap();
        assert_eq!(
            rpc.admin_node_info()
                .unwrap()
                .enode
                .split('?')
                .next()
                .unwrap(),
            enode,
            "{n}"
        );
        match n["role"].as_str().unwrap() {
            "validator" => {
                validators.insert(parse_address(n["address"].as_str().unwrap()).unwrap());
            }
            "tx" => assert!(n["address"].is_null(), "{n}"),
            r => panic!("role {r}"),
        }
    }
    assert_eq!(validators.len(), 3);
    let signers: BTreeSet<_> = rpc_of(&output, "fabrikam-tx-0")
        .clique_get_signers()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(signers, validators);
    let mut secrets = Vec::new();
    for a in output["accounts"].as_array().unwrap() {
        for k in ["keystore", "password_file"] {
            let p = Path::new(a[k].as_str().unwrap());
            assert!(p.is_absolute() && p.is_file(), "{a}");
            assert_eq!(
                std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{p:?}"
            );
        }
        secrets.push(std::fs::read_to_string(a["password_file"].as_str().unwrap()).unwrap());
    }

    // ---- a transaction signed by our code with a generated account's key, sent through
    // contoso's tx node, seen on fabrikam's validator.
    let treasury = account(&output, "contoso", "treasury");
    let ks: Value = json(&std::fs::read_to_string(treasury["keystore"].as_str().unwrap()).unwrap());
    let password = std::fs::read_to_string(treasury["password_file"].as_str().unwrap()).unwrap();
    let key = keystore::decrypt(&ks, password.trim()).unwrap();
    secrets.push(key.to_hex());
    assert_eq!(
        key.address(),
        parse_address(treasury["address"].as_str().unwrap()).unwrap()
    );
    let ops = parse_address(
        account(&output, "fabrikam", "ops")["address"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let via = rpc_of(&output, "contoso-tx-0");
    let seen = rpc_of(&output, "fabrikam-validator-0");
    let before = seen.eth_get_balance(&ops, BlockId::Latest).unwrap();
    assert_eq!(before, 1000 * ETHER);
    let tx = LegacyTx {
        chain_id: 717171,
        nonce: via.eth_get_pending_nonce(&key.address()).unwrap(),
        gas_price: via.eth_gas_price().unwrap() * 2,
        gas: 21_000,
        to: Some(ops),
        value: 7 * ETHER,
        data: vec![],
    }
    .sign(&key);
    assert_eq!(
        via.eth_send_raw_transaction(&tx.raw_hex()).unwrap(),
        tx.hash_hex()
    );
    let receipt = poll("the transfer to be mined", Duration::from_secs(60), || {
        via.eth_get_transaction_receipt(&tx.hash_hex())
            .map_err(|e| e.to_string())
    });
    assert!(receipt.success, "{receipt:?}");
    let after = poll(
        "fabrikam's node to see the balance",
        Duration::from_secs(30),
        || {
            let b = seen
                .eth_get_balance(&ops, BlockId::Latest)
                .map_err(|e| e.to_string())?;
            Ok((b != before).then_some(b))
        },
    );
    assert_eq!(after, before + 7 * ETHER);

    // ---- unchanged re-apply: "No changes." and nothing touched.
    let state_file = net.state_dir().state_file();
    let state_before = std::fs::read(&state_file).unwrap();
    let pids_before = processes_under(&net.state_dir().nodes_dir());
    let out = consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert!(out.contains("No changes."), "{out}");
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        state_before,
        "state was rewritten"
    );
    assert_eq!(processes_under(&net.state_dir().nodes_dir()), pids_before);

    // ---- kill -9 a node: status says so, plan says restart, apply brings it back.
    let victim = node(&output, "fabrikam-tx-0");
    let st = net.state_dir().load().unwrap().unwrap();
    let pid = st.resources["node.fabrikam-tx-0"].outputs["pid"]
        .as_u64()
        .unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    poll(
        "the killed geth to be gone",
        Duration::from_secs(10),
        || {
            Ok(consort::provider::local::process::start_time_of(pid as u32)
                .is_none()
                .then_some(()))
        },
    );
    let out = consort(&dir, &[&f[..], &["status", "--json"]].concat());
    assert_eq!(out.status.code(), Some(1), "unhealthy status exits 1");
    let status = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(status["healthy"], false);
    let dead = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "fabrikam-tx-0")
        .unwrap();
    assert_eq!(dead["running"], false, "{dead}");
    let plan = consort_ok(&dir, &[&f[..], &["plan"]].concat());
    printed += &plan;
    assert!(plan.contains("~ node.fabrikam-tx-0"), "{plan}");
    assert!(plan.contains("restart (process not running)"), "{plan}");
    assert!(
        plan.contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{plan}"
    );
    let out = consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert!(out.contains("is healthy"), "{out}");
    printed += &out;
    let output2 = json(&consort_ok(&dir, &[&f[..], &["output", "--json"]].concat()));
    assert_eq!(
        node(&output2, "fabrikam-tx-0")["rpc_url"],
        victim["rpc_url"],
        "same ports after restart"
    );
    // The restarted node is back in the mesh and has the chain, the transfer included.
    let back = rpc_of(&output2, "fabrikam-tx-0");
    poll(
        "the restarted node to have the transfer",
        Duration::from_secs(30),
        || {
            let b = back
                .eth_get_balance(&ops, BlockId::Latest)
                .map_err(|e| e.to_string())?;
            Ok((b == after).then_some(()))
        },
    );

    // Never a secret in what consort printed or stored as state.
    let state_text = std::fs::read_to_string(&state_file).unwrap();
    for s in &secrets {
        let s = s.trim();
        assert!(s.len() >= 16);
        assert!(!printed.contains(s), "a secret was printed");
        assert!(!state_text.contains(s), "a secret is in state.json");
    }

    // ---- destroy: no process, no data dir, no state.
    let pids = processes_under(&net.state_dir().nodes_dir());
    assert_eq!(pids.len(), 5, "{pids:?}");
    let out = consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
    assert!(out.contains("Destroy complete"), "{out}");
    for p in pids {
        assert!(
            consort::provider::local::process::start_time_of(p).is_none(),
            "geth {p} survived destroy"
        );
    }
    assert!(processes_under(&dir).is_empty());
    assert!(
        !net.state_dir().root.exists(),
        "{:?} left behind",
        net.state_dir().root
    );
    assert!(
        dir.join("three-members.yaml").is_file(),
        "the topology is not state's to remove"
    );
}

/// Sends `signal` to `consort apply` once its first geth has started, then checks a new
/// apply converges with no orphan process.
fn interrupt_mid_apply_then_converge(signal: i32, name: &str, chain_id: u64) {
    let net = NetworkHandle::new(name);
    let dir = net.dir.path().canonicalize().unwrap();
    topology_copy(
        &dir,
        "three-members.yaml",
        port_base(),
        Some((name, chain_id)),
    );
    let file = format!("{name}.yaml");
    let nodes_dir = net.state_dir().nodes_dir();
    let mut child = consort_cmd(&dir, &["-f", &file, "apply", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    poll(
        "a geth of the apply to start",
        Duration::from_secs(120),
        || {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                panic!("apply ended ({status}) before any node started");
            }
            Ok((!processes_under(&nodes_dir).is_empty()).then_some(()))
        },
    );
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    if signal == libc::SIGINT {
        assert_eq!(
            status.code(),
            Some(130),
            "Ctrl-C exits 130; stderr:\n{stderr}"
        );
        assert!(stderr.contains("Interrupted"), "{stderr}");
        // State was saved: it parses and the lock is free again.
        net.state_dir().load().unwrap().expect("state saved");
    } else {
        assert_eq!(status.code(), None, "killed by the signal");
    }
    // Whatever was left (state, pid files, half-made dirs), apply converges from it.
    let out = consort_ok(&dir, &["-f", &file, "apply", "--yes"]);
    assert!(
        out.contains(&format!("Network {name} is healthy: 5 node(s) peered")),
        "{out}"
    );
    let pids = processes_under(&nodes_dir);
    assert_eq!(
        pids.len(),
        5,
        "exactly one geth per node, no orphan: {pids:?}"
    );
    let st = net.state_dir().load().unwrap().unwrap();
    let recorded: BTreeSet<u32> = st
        .resources
        .iter()
        .filter(|(a, _)| a.starts_with("node."))
        .map(|(_, r)| r.outputs["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        recorded,
        pids.into_iter().collect::<BTreeSet<u32>>(),
        "state records the running processes"
    );
    consort_ok(&dir, &["-f", &file, "destroy", "--yes"]);
    assert!(processes_under(&dir).is_empty());
}

#[test]
fn ctrl_c_mid_apply_saves_state_exits_130_and_reapply_converges() {
    interrupt_mid_apply_then_converge(libc::SIGINT, "interrupted", 737373);
}

#[test]
fn kill_9_mid_apply_leaves_state_that_reapply_converges_from() {
    interrupt_mid_apply_then_converge(libc::SIGKILL, "killed", 747474);
}

#[test]
fn two_networks_run_side_by_side_from_one_folder() {
    let net1 = NetworkHandle::new("left");
    let dir = net1.dir.path().canonicalize().unwrap();
    let net2 = NetworkHandle {
        dir: tempfile::tempdir().unwrap(),
        base: net1.base.clone(),
        network: "right".into(),
    };
    // Same base port for both: the second must find other ports.
    let base = port_base();
    topology_copy(&dir, "three-members.yaml", base, Some(("left", 757575)));
    topology_copy(&dir, "three-members.yaml", base, Some(("right", 767676)));
    consort_ok(&dir, &["-f", "left.yaml", "apply", "--yes"]);
    consort_ok(&dir, &["-f", "right.yaml", "apply", "--yes"]);
    let o1 = json(&consort_ok(&dir, &["-f", "left.yaml", "output", "--json"]));
    let o2 = json(&consort_ok(&dir, &["-f", "right.yaml", "output", "--json"]));
    let urls = |o: &Value| -> BTreeSet<String> {
        o["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["rpc_url"].as_str().map(str::to_string))
            .collect()
    };
    assert!(urls(&o1).is_disjoint(&urls(&o2)));
    assert_ne!(o1["network"]["genesis_hash"], o2["network"]["genesis_hash"]);
    for f in ["left.yaml", "right.yaml"] {
        let s = json(&consort_ok(&dir, &["-f", f, "status", "--json"]));
        assert_eq!(s["healthy"], true, "{f}: {s}");
    }
    // Destroying one leaves the other untouched and healthy.
    consort_ok(&dir, &["-f", "left.yaml", "destroy", "--yes"]);
    assert!(processes_under(&net1.state_dir().root).is_empty());
    assert_eq!(processes_under(&net2.state_dir().root).len(), 5);
    let s = json(&consort_ok(&dir, &["-f", "right.yaml", "status", "--json"]));
    assert_eq!(s["healthy"], true, "{s}");
    consort_ok(&dir, &["-f", "right.yaml", "destroy", "--yes"]);
    assert!(processes_under(&dir).is_empty());
}
