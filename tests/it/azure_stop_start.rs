//! `consort stop` / `consort start` on Azure through the binary, on VMs booted from their
//! customData with real geth: stop halts geth on every VM by Run Command and every view
//! says so (status, status --json, plan --refresh); start brings geth back by Run Command
//! and waits for health like apply, on the same chain and signers.

use crate::azure_cli::{
    booting_checkout, cli, cli_ok, ipc, kill_tree, signer_address, sorted_signers, topology_with,
    vm_root, NET,
};
use crate::azure_health::text;
use crate::fake_arm::{vm_host, FakeArm};
use crate::support::poll;
use consort::state::StateDir;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const NODES: [&str; 3] = ["alpha-validator-0", "alpha-tx-0", "beta-validator-0"];

/// Whether the process in a VM's pid file still runs (a zombie does not).
fn pid_alive(root: &Path, file: &str) -> bool {
    let Ok(pid) = std::fs::read_to_string(root.join("var/lib/consort/geth").join(file)) else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|st| {
        st.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.split_whitespace().next() != Some("Z"))
    })
}

#[test]
fn stop_halts_geth_on_every_vm_every_view_says_so_and_start_brings_the_chain_back() {
    let _vnet = vm_host::loopback_vnet();
    // Before the stand-in, so dropped after it: its VMs are killed by their pid files
    // (geth started again by Run Command is outside the VM's process group).
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeArm::start();
    fake.configure(|c| {
        c.public_ip_prefix = "127.0.97.".into();
        c.public_ip_nat = true;
    });
    let dir = booting_checkout(
        &fake,
        tmp.path(),
        &topology_with(&fake, "127.0.0.0/16", "consort-stop", 1, "[127.0.0.0/8]"),
    );
    let sd = StateDir::new(&dir.join(".consort"), NET);
    let out = cli_ok(&fake, &dir, &["apply", "--yes", "--timeout", "240"]);
    assert!(out.contains(&format!("Network {NET} is healthy")), "{out}");
    let mut signers = vec![
        signer_address(&sd, "alpha-validator-0"),
        signer_address(&sd, "beta-validator-0"),
    ];
    signers.sort();
    let roots: Vec<_> = NODES.iter().map(|n| vm_root(&fake, n)).collect();
    let head = ipc(&roots[0]).block_number().unwrap();

    // stop: geth (and the sealers) down on every VM, by Run Command.
    let out = cli_ok(&fake, &dir, &["stop"]);
    assert!(out.contains("Stopped 3 node(s)"), "{out}");
    for root in &roots {
        assert!(ipc(root).block_number().is_err(), "{}", root.display());
        assert!(!pid_alive(root, "geth.pid"), "{}", root.display());
        assert!(!pid_alive(root, "seal.pid"), "{}", root.display());
        assert!(root.join("var/lib/consort/stopped-by-consort").exists());
        // All data is kept.
        assert!(root.join("var/lib/consort/geth/geth/chaindata").is_dir());
    }
    // Every view says stopped, none healthy.
    let out = cli(&fake, &dir, &["status"]);
    let status = text(&out);
    assert!(
        status.contains(&format!("Network {NET}: stopped")),
        "{status}"
    );
    assert!(!status.contains("healthy —"), "{status}");
    let out = cli(&fake, &dir, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(v["healthy"], false, "{v}");
    assert_eq!(v["down"], "stopped", "{v}");
    let out = cli(&fake, &dir, &["plan", "--refresh"]);
    let plan = text(&out);
    assert!(!plan.contains("No changes"), "{plan}");
    for n in NODES {
        assert!(
            plan.lines().any(|l| l.contains(&format!("azure.vm.{n}"))
                && l.contains("geth not running on its VM: stopped by `consort stop`")),
            "{n}: {plan}"
        );
    }
    // A second stop finds nothing running and changes nothing.
    let out = cli_ok(&fake, &dir, &["stop"]);
    assert!(out.contains("nothing to stop"), "{out}");
    assert!(!out.contains(": stopped"), "no node was running: {out}");

    // start: geth back on every VM, the health wait passes, the chain continues with
    // the same signers.
    let out = cli_ok(&fake, &dir, &["start", "--timeout", "240"]);
    assert!(out.contains(&format!("Network {NET} is healthy")), "{out}");
    // Sealing started on the other validator first, and last on the signer in turn for
    // the next block (Clique: the sorted signers, block number modulo their count) — or,
    // when that one sealed the head (a chain whose blocks are out of turn), on the other.
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let (last_at, last, in_turn, next) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| {
            let (node, why) = l.split_once(": sealing (last: ")?;
            let block = why.split("block ").nth(1)?;
            let digits: String = block.chars().take_while(char::is_ascii_digit).collect();
            Some((
                i,
                node,
                why.starts_with("in turn"),
                digits.parse::<u64>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("no validator started sealing last: {out}"));
    let mut by_address = signers.clone();
    by_address.sort_by_key(|a| a.to_lowercase());
    assert_eq!(
        signer_address(&sd, last) == by_address[(next % 2) as usize],
        in_turn,
        "{out}"
    );
    let other = ["alpha-validator-0", "beta-validator-0"]
        .into_iter()
        .find(|n| *n != last)
        .unwrap();
    let other_at = lines
        .iter()
        .position(|l| *l == format!("{other}: sealing"))
        .unwrap_or_else(|| panic!("{other} did not start sealing: {out}"));
    assert!(other_at < last_at, "{out}");
    for root in &roots {
        assert!(!root.join("var/lib/consort/stopped-by-consort").exists());
        assert!(pid_alive(root, "geth.pid"), "{}", root.display());
    }
    for root in [&roots[0], &roots[2]] {
        assert_eq!(sorted_signers(&ipc(root)).unwrap(), signers);
        assert!(pid_alive(root, "seal.pid"), "{}", root.display());
    }
    let restarted = ipc(&roots[0]).block_number().unwrap();
    assert!(restarted >= head, "{restarted} < {head}");
    poll(
        "the head to advance after start",
        Duration::from_secs(60),
        || {
            let now = ipc(&roots[2]).block_number().map_err(|e| e.to_string())?;
            Ok((now > restarted).then_some(()))
        },
    );
    let status = cli_ok(&fake, &dir, &["status"]);
    assert!(
        status.contains(&format!("Network {NET}: healthy")),
        "{status}"
    );
    let out = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    assert!(out.contains("No changes"), "{out}");

    // A start interrupted after geth came back and before sealing started leaves geth
    // running, not sealing, without seal.sh (made here: both sealers killed, miner.stop):
    // the chain halts, a refresh names both, and `consort start` starts sealing in order.
    for root in [&roots[0], &roots[2]] {
        let pid = std::fs::read_to_string(root.join("var/lib/consort/geth/seal.pid")).unwrap();
        kill_tree(pid.trim().parse().unwrap());
        ipc(root).call_raw("miner_stop", json!([])).unwrap();
    }
    let plan = text(&cli(&fake, &dir, &["plan", "--refresh"]));
    for n in ["alpha-validator-0", "beta-validator-0"] {
        assert!(
            plan.lines().any(|l| l.contains(&format!("azure.vm.{n}"))
                && l.contains("restart sealing (its seal.sh not running on its VM, geth runs)")),
            "{n}: {plan}"
        );
    }
    assert!(!plan.contains("azure.vm.alpha-tx-0"), "{plan}");
    let out = cli_ok(&fake, &dir, &["start", "--timeout", "240"]);
    assert!(out.contains(&format!("Network {NET} is healthy")), "{out}");
    assert!(out.contains(": sealing (last: "), "{out}");
    assert!(!out.contains(": started"), "geth ran already: {out}");
    let halted = ipc(&roots[2]).block_number().unwrap();
    for root in [&roots[0], &roots[2]] {
        assert!(pid_alive(root, "seal.pid"), "{}", root.display());
        let mining = ipc(root).call_raw("eth_mining", json!([])).unwrap();
        assert_eq!(mining, json!(true), "{}", root.display());
    }
    poll(
        "the head to advance after sealing started again",
        Duration::from_secs(60),
        || {
            let now = ipc(&roots[0]).block_number().map_err(|e| e.to_string())?;
            Ok((now > halted).then_some(()))
        },
    );
    let out = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    assert!(out.contains("No changes"), "{out}");
}
