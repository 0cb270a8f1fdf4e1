//! Fault injection (issue 8): `consort apply` of the shipped 7-node topology is killed at a
//! seeded random moment — SIGKILL, one SIGINT or two SIGINTs, the SIGINTs sent to its
//! process group as a terminal's Ctrl-C is — then `apply` runs again. Every time: state.json
//! is valid, the network is healthy, `plan --detailed-exitcode` exits 0, no geth runs that
//! state does not list; then `destroy` is killed the same way and run again, and leaves
//! nothing.
//!
//! A second test does the same to `member add` / `member remove` (mid-vote included) of a
//! running 3-signer network, re-running `apply`, and also asserts the live Clique signers
//! equal the topology's validators with no proposal left pending.
//!
//! `CONSORT_FAULT_RUNS` (default 2, for CI) sets the number of runs, `CONSORT_FAULT_SEED`
//! (default 8) the seed; a failure names the run's seed, kill and delay to replay it.

use crate::support::{
    consort, consort_cmd, poll, port_base, processes_under, topology_copy, NetworkHandle,
};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill9,
    Interrupt,
    InterruptTwice,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn apply_killed_at_random_moments_converges_on_rerun() {
    let runs = env_u64("CONSORT_FAULT_RUNS", 2);
    let seed = env_u64("CONSORT_FAULT_SEED", 8);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut summary = Vec::new();
    for run in 0..runs {
        let mut fault = || match rng.gen_range(0..3) {
            0 => Fault::Kill9,
            1 => Fault::Interrupt,
            _ => Fault::InterruptTwice,
        };
        let (kill, destroy_kill) = (fault(), fault());
        // Apply of 7 nodes takes ~1-2 s here, destroy well under 1 s: kill anywhere in
        // them (or just after).
        let delay = Duration::from_millis(rng.gen_range(0..1500));
        let destroy_delay = Duration::from_millis(rng.gen_range(0..700));
        let what = format!("run {run} (seed {seed}): {kill:?} after {delay:?}");
        eprintln!("[faults] {what}");
        let code = one_run(run, (kill, delay), (destroy_kill, destroy_delay), &what);
        summary.push(format!("{what}: first apply exit {code:?}"));
    }
    eprintln!(
        "[faults] {} run(s) passed:\n  {}",
        runs,
        summary.join("\n  ")
    );
}

/// One kill and recovery; returns the killed apply's exit code.
fn one_run(
    run: u64,
    (kill, delay): (Fault, Duration),
    (destroy_kill, destroy_delay): (Fault, Duration),
    what: &str,
) -> Option<i32> {
    let name = format!("faults{run}");
    let net = NetworkHandle::new(&name);
    let dir = net.dir.path().canonicalize().unwrap();
    let file = topology_copy(
        &dir,
        "four-members.yaml",
        port_base(),
        Some((&name, 780_000 + run)),
    );
    let f = file.to_string_lossy().into_owned();
    let mut cmd = consort_cmd(&dir, &["-f", &f, "apply", "--yes"]);
    cmd.stdout(std::fs::File::create(dir.join("killed.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("killed.err")).unwrap())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    std::thread::sleep(delay);
    signal(pid, kill);
    let t0 = Instant::now();
    let status = poll(
        &format!("{what}: the killed apply to exit"),
        Duration::from_secs(90),
        || Ok(child.try_wait().unwrap()),
    );
    let code = status.code();
    let log = || {
        format!(
            "{what}\n--- killed apply stdout\n{}\n--- stderr\n{}",
            std::fs::read_to_string(dir.join("killed.out")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("killed.err")).unwrap_or_default()
        )
    };
    match kill {
        Fault::Kill9 => {}
        // Finished before the signal (0), or interrupted (130); never 1.
        Fault::Interrupt | Fault::InterruptTwice => assert!(
            matches!(code, Some(0) | Some(130)),
            "exit {code:?}\n{}",
            log()
        ),
    }
    if matches!(kill, Fault::InterruptTwice) && code == Some(130) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{:?}\n{}",
            t0.elapsed(),
            log()
        );
    }

    // State is valid (or absent: killed before the first change finished).
    let sd = net.state_dir();
    sd.load()
        .unwrap_or_else(|e| panic!("state after the kill: {e}\n{}", log()));

    // Run again: it converges.
    let out = consort(&dir, &["-f", &f, "apply", "--yes"]);
    assert!(
        out.status.success(),
        "re-run apply failed\n{}\n--- re-run stderr\n{}",
        log(),
        String::from_utf8_lossy(&out.stderr)
    );
    let st = sd
        .load()
        .unwrap()
        .unwrap_or_else(|| panic!("no state after the re-run\n{}", log()));
    let status = consort(&dir, &["-f", &f, "status", "--json"]);
    let health: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(health["healthy"], true, "{health}\n{}", log());
    assert_eq!(health["nodes"].as_array().unwrap().len(), 7, "{health}");
    let plan = consort(&dir, &["-f", &f, "plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&plan.stdout),
        log()
    );
    // No geth that state does not list.
    let recorded: BTreeSet<u32> = st
        .resources
        .iter()
        .filter(|(a, _)| a.starts_with("node."))
        .filter_map(|(_, r)| r.outputs.get("pid")?.as_u64())
        .map(|p| p as u32)
        .collect();
    let live: BTreeSet<u32> = processes_under(&net.base).into_iter().collect();
    assert_eq!(live, recorded, "geth not in state\n{}", log());

    // destroy, killed too, then again: leaves nothing.
    let mut cmd = consort_cmd(&dir, &["-f", &f, "destroy", "--yes"]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(destroy_delay);
    signal(child.id() as i32, destroy_kill);
    let first = poll(
        &format!("{what}: the killed destroy to exit"),
        Duration::from_secs(90),
        || Ok(child.try_wait().unwrap()),
    );
    let what = format!(
        "{what}, destroy: {destroy_kill:?} after {destroy_delay:?} (exit {:?})",
        first.code()
    );
    eprintln!("[faults] {what}");
    let out = consort(&dir, &["-f", &f, "destroy", "--yes"]);
    assert!(
        out.status.success(),
        "destroy failed: {what}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(processes_under(&net.base).is_empty(), "{what}\n{}", log());
    assert!(
        !net.base.exists(),
        "{} left: {what}\n{}",
        net.base.display(),
        log()
    );
    code
}

fn signal(pid: i32, kill: Fault) {
    // SAFETY: signalling the child we spawned, or its own process group.
    unsafe {
        match kill {
            Fault::Kill9 => {
                libc::kill(pid, libc::SIGKILL);
            }
            Fault::Interrupt => {
                libc::kill(-pid, libc::SIGINT);
            }
            Fault::InterruptTwice => {
                libc::kill(-pid, libc::SIGINT);
                std::thread::sleep(Duration::from_millis(30));
                libc::kill(-pid, libc::SIGINT);
            }
        }
    }
}

/// `member add` / `member remove` of a running 3-signer network killed at a seeded random
/// moment (mid-vote included), then `apply` again: valid state, healthy, live Clique
/// signers equal to the topology's validators with no proposal left pending, plan clean,
/// no geth outside state. `CONSORT_FAULT_RUNS` / `CONSORT_FAULT_SEED` as above.
#[test]
fn member_changes_killed_at_random_moments_converge_on_rerun() {
    use consort::rpc::RpcClient;
    let runs = env_u64("CONSORT_FAULT_RUNS", 2);
    let seed = env_u64("CONSORT_FAULT_SEED", 8);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6d656d62);
    let net = NetworkHandle::new("memfaults");
    let dir = net.dir.path().canonicalize().unwrap();
    let file = topology_copy(
        &dir,
        "three-members.yaml",
        port_base(),
        Some(("memfaults", 790_001)),
    );
    let f = file.to_string_lossy().into_owned();
    let ok = |args: &[&str]| {
        let out = consort(&dir, &[&["-f", f.as_str()][..], args].concat());
        assert!(
            out.status.success(),
            "consort {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["apply", "--yes"]);
    let mut delta = false;
    for run in 0..runs {
        let kill = match rng.gen_range(0..3) {
            0 => Fault::Kill9,
            1 => Fault::Interrupt,
            _ => Fault::InterruptTwice,
        };
        let delay = Duration::from_millis(rng.gen_range(0..5000));
        let args: Vec<&str> = if delta {
            vec!["member", "remove", "delta", "--yes", "--allow-data-loss"]
        } else {
            vec![
                "member",
                "add",
                "delta",
                "--validators",
                "1",
                "--account",
                "ops=1 ether",
                "--yes",
            ]
        };
        let what = format!(
            "member run {run} (seed {seed}): `{}` {kill:?} after {delay:?}",
            args.join(" ")
        );
        eprintln!("[faults] {what}");
        let mut cmd = consort_cmd(&dir, &[&["-f", f.as_str()][..], &args].concat());
        cmd.stdout(std::fs::File::create(dir.join("m.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("m.err")).unwrap())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        signal(child.id() as i32, kill);
        let st = poll(&format!("{what}: exit"), Duration::from_secs(120), || {
            Ok(child.try_wait().unwrap())
        });
        let log = format!(
            "{what} (exit {:?})\n--- stdout\n{}\n--- stderr\n{}",
            st.code(),
            std::fs::read_to_string(dir.join("m.out")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("m.err")).unwrap_or_default()
        );
        eprintln!("[faults] {what}: exit {:?}", st.code());
        // The file says whether delta is in the topology now (an accepted edit is written
        // before any change starts).
        delta = std::fs::read_to_string(&file)
            .unwrap()
            .contains("name: delta");
        let out = consort(&dir, &["-f", &f, "apply", "--yes"]);
        assert!(
            out.status.success(),
            "re-run apply failed\n{log}\n--- re-run\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sd = net.state_dir();
        let state = sd.load().unwrap().unwrap();
        let plan = consort(&dir, &["-f", &f, "plan", "--detailed-exitcode"]);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "{}\n{log}",
            String::from_utf8_lossy(&plan.stdout)
        );
        // Live signers == the topology's validators; no proposal pending anywhere.
        let want: BTreeSet<String> = state
            .resources
            .iter()
            .filter(|(a, _)| a.starts_with("signer."))
            .filter_map(|(a, _)| {
                state.output_str(&format!("key.signer.{}", &a["signer.".len()..]), "address")
            })
            .map(|a| a.to_lowercase())
            .collect();
        let topo_validators = consort::topology::load(&file)
            .unwrap()
            .topology
            .validator_count() as usize;
        assert_eq!(want.len(), topo_validators, "{log}");
        for (addr, r) in state
            .resources
            .iter()
            .filter(|(a, _)| a.starts_with("node."))
        {
            let rpc = RpcClient::new(r.outputs["rpc_url"].as_str().unwrap())
                .with_timeout(Duration::from_secs(5));
            let live: BTreeSet<String> = rpc
                .clique_get_signers()
                .unwrap()
                .iter()
                .map(consort::rpc::hex_address)
                .collect();
            assert_eq!(live, want, "{addr}: live signers\n{log}");
            let props = rpc.clique_proposals().unwrap();
            assert!(
                props.is_empty(),
                "{addr}: pending proposals {props:?}\n{log}"
            );
        }
        let recorded: BTreeSet<u32> = state
            .resources
            .iter()
            .filter(|(a, _)| a.starts_with("node."))
            .filter_map(|(_, r)| r.outputs.get("pid")?.as_u64())
            .map(|p| p as u32)
            .collect();
        let live: BTreeSet<u32> = processes_under(&net.base).into_iter().collect();
        assert_eq!(live, recorded, "geth not in state\n{log}");
    }
    ok(&["destroy", "--yes"]);
    assert!(processes_under(&net.base).is_empty());
    assert!(!net.base.exists());
}
