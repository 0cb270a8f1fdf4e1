//! Issue 8, data safety: lost state never means a new chain, destructive changes are
//! guarded, keys are archived, paths work from any directory, signals are handled. Real
//! geth 1.13.15 on 127.0.0.1 throughout.

use crate::support::{
    consort, consort_cmd, consort_ok, poll, port_base, processes_under, NetworkHandle,
};
use consort::rpc::{BlockId, RpcClient};
use consort::state::State;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Two members: contoso with two validators, a tx node and the funding account; fabrikam
/// with one validator and an account of its own funded in genesis. Three signers, so
/// one going away leaves a live chain.
fn topology(name: &str, chain_id: u64, base_port: u16) -> String {
    format!(
        "network:
  name: {name}
  chain_id: {chain_id}
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
members:
  - name: contoso
    validators: 2
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 5000 ether
  - name: fabrikam
    validators: 1
    accounts:
      - name: ops
        balance: 1000 ether
provider:
  local:
    base_port: {base_port}
"
    )
}

struct Net {
    handle: NetworkHandle,
    dir: PathBuf,
    file: PathBuf,
}

impl Net {
    fn new(name: &str, chain_id: u64) -> Net {
        let handle = NetworkHandle::new(name);
        let dir = handle.base.parent().unwrap().to_path_buf();
        let file = dir.join("consort.yaml");
        std::fs::write(&file, topology(name, chain_id, port_base())).unwrap();
        Net { handle, dir, file }
    }
    fn f(&self) -> String {
        self.file.to_string_lossy().into_owned()
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        let f = self.f();
        consort(&self.dir, &[&["-f", f.as_str()][..], args].concat())
    }
    fn ok(&self, args: &[&str]) -> String {
        let f = self.f();
        consort_ok(&self.dir, &[&["-f", f.as_str()][..], args].concat())
    }
    fn state(&self) -> State {
        self.handle.state_dir().load().unwrap().expect("state")
    }
    fn output(&self) -> Value {
        serde_json::from_str(&self.ok(&["output", "--json"])).unwrap()
    }
    fn rpc(&self, node: &str) -> RpcClient {
        let o = self.output();
        let url = o["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .unwrap_or_else(|| panic!("no {node} in {o}"))["rpc_url"]
            .as_str()
            .unwrap()
            .to_string();
        RpcClient::new(url).with_timeout(Duration::from_secs(5))
    }
    fn wait_head_above(&self, node: &str, n: u64) -> u64 {
        let rpc = self.rpc(node);
        poll(&format!("{node} past block {n}"), WAIT, || {
            let h = rpc.block_number().map_err(|e| e.to_string())?;
            Ok((h > n).then_some(h))
        })
    }
    fn pids(&self) -> BTreeSet<u32> {
        processes_under(&self.handle.base).into_iter().collect()
    }
    /// (address of each key and account) from state.
    fn addresses(&self) -> Vec<(String, String)> {
        let st = self.state();
        st.resources
            .iter()
            .filter_map(|(a, r)| Some((a.clone(), r.outputs.get("address")?.as_str()?.to_string())))
            .collect()
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Issue 8 items 6, 7 and 11: `rm state.json` (or a state of another network) makes apply
/// refuse instead of starting a new chain; `state recover`, run from another directory,
/// brings the same network back; after the nodes are stopped too, recover + apply restart
/// them on their chain data; destroy without state leaves nothing.
#[test]
fn lost_state_is_refused_recovered_and_the_chain_carries_on() {
    let net = Net::new("lost", 717171);
    net.ok(&["apply", "--yes"]);
    // A member added later: a node after genesis and an account funded by transfer.
    net.ok(&[
        "member",
        "add",
        "delta",
        "--validators",
        "0",
        "--tx-nodes",
        "1",
        "--account",
        "ops=7 ether",
        "--yes",
    ]);
    let sd = net.handle.state_dir();
    let addresses = net.addresses();
    let before = net.state();
    let head0 = net.rpc("contoso-tx-0").block_number().unwrap();
    let pids = net.pids();
    assert_eq!(pids.len(), 5, "{pids:?}");

    // Backups: 0600, the newest equal to state.
    let newest = sd.newest_backup().expect("a backup");
    assert_eq!(
        std::fs::read(&newest).unwrap(),
        std::fs::read(sd.state_file()).unwrap()
    );

    // ---- state.json lost: apply and plan refuse, touching nothing.
    std::fs::remove_file(sd.state_file()).unwrap();
    let out = net.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for part in [
        "state cannot account for",
        "nodes/contoso-validator-0: chain data, geth pid",
        "keys/accounts/fabrikam/ops (0x",
        "genesis.json",
        "consort state recover",
        &newest.display().to_string(),
    ] {
        assert!(err.contains(part), "refusal lacks {part:?}:\n{err}");
    }
    assert_eq!(net.pids(), pids, "apply touched the processes");
    assert!(!sd.state_file().exists(), "apply wrote a new state");
    let out = net.run(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // ---- A state of another network in its place: refused, naming the newest backup.
    std::fs::write(sd.state_file(), br#"{"network":"other","resources":{}}"#).unwrap();
    let out = net.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&newest.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert_eq!(net.pids(), pids);

    // ---- recover, from another directory with an absolute -f.
    let elsewhere = tempfile::tempdir().unwrap();
    let f = net.f();
    let out = consort_ok(elsewhere.path(), &["-f", &f, "state", "recover"]);
    assert!(
        out.contains("node.contoso-validator-0 (running, pid"),
        "{out}"
    );
    let recovered = net.state();
    assert_eq!(net.addresses(), addresses, "addresses changed");
    assert_eq!(recovered.genesis, before.genesis);
    for (addr, r) in &before.resources {
        let got = recovered
            .resources
            .get(addr)
            .unwrap_or_else(|| panic!("{addr} not recovered"));
        assert_eq!(got.attrs, r.attrs, "{addr} attrs");
        if addr.starts_with("fund.") {
            // The transfer's hash is not on disk; who paid is.
            assert_eq!(got.outputs["from"], r.outputs["from"], "{addr} outputs");
        } else {
            assert_eq!(got.outputs, r.outputs, "{addr} outputs");
        }
    }
    let out = consort(elsewhere.path(), &["-f", &f, "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Paths from any directory: output's keystores exist.
    let o: Value = serde_json::from_str(&consort_ok(
        elsewhere.path(),
        &["-f", &f, "output", "--json"],
    ))
    .unwrap();
    for a in o["accounts"].as_array().unwrap() {
        for k in ["keystore", "password_file"] {
            let p = a[k].as_str().unwrap();
            assert!(Path::new(p).is_absolute() && Path::new(p).is_file(), "{p}");
        }
    }
    assert_eq!(net.pids(), pids, "recover touched the processes");
    let head1 = net.wait_head_above("contoso-tx-0", head0);

    // ---- Nodes stopped and state lost: recover, apply restarts them on their data.
    for (id, d) in net.handle.running() {
        consort::provider::local::process::stop(id, &d, Duration::from_secs(10)).unwrap();
    }
    assert!(net.pids().is_empty());
    std::fs::remove_file(sd.state_file()).unwrap();
    let out = net.ok(&["state", "recover"]);
    assert!(out.contains("not running: apply restarts it"), "{out}");
    let plan = net.ok(&["plan"]);
    assert!(plan.contains("restart (process not running)"), "{plan}");
    // Only restarts, and the later account's funding, which recover could not check with
    // no node running: apply sends it only if the account holds less (asserted below).
    assert!(
        plan.lines()
            .filter(|l| l.trim_start().starts_with("+ "))
            // (and the live-signer check, which no running node could answer)
            .all(|l| l.contains("fund.delta.ops") || l.contains("+ clique")),
        "only restarts: {plan}"
    );
    net.ok(&["apply", "--yes"]);
    let rpc = net.rpc("contoso-tx-0");
    let h = rpc.block_number().unwrap();
    assert!(h >= head1, "head went back: {h} < {head1}");
    net.wait_head_above("contoso-tx-0", head1);
    assert_eq!(net.addresses(), addresses);
    let treasury: consort::crypto::Address = addresses
        .iter()
        .find(|(a, _)| a == "account.contoso.treasury")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let ops: consort::crypto::Address = addresses
        .iter()
        .find(|(a, _)| a == "account.delta.ops")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(
        rpc.eth_get_balance(&ops, BlockId::Latest).unwrap(),
        7 * 1_000_000_000_000_000_000u128,
        "funded once, not again"
    );
    assert!(
        rpc.eth_get_balance(&treasury, BlockId::Latest).unwrap()
            < 4993 * 1_000_000_000_000_000_000u128
    );
    let out = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // ---- destroy with state lost: stops what it finds, leaves nothing.
    std::fs::remove_file(sd.state_file()).unwrap();
    let plan = net.ok(&["plan", "--destroy"]);
    assert!(
        plan.contains("`consort destroy` stops and deletes them"),
        "{plan}"
    );
    let out = net.ok(&["destroy", "--yes"]);
    assert!(out.contains("Stopped 5 geth process(es)"), "{out}");
    assert!(net.pids().is_empty(), "{:?}", net.pids());
    assert!(
        !net.handle.base.exists(),
        "{} left",
        net.handle.base.display()
    );
}

/// Issue 8 item 10: removing a member whose account holds ether is marked `!` and refused
/// without --allow-data-loss (the topology file untouched); with it, the member's keys are
/// archived, not deleted. Destroy plans say so.
#[test]
fn a_funded_key_is_guarded_and_archived_not_deleted() {
    let net = Net::new("guarded", 727272);
    net.ok(&["apply", "--yes"]);
    let before = std::fs::read_to_string(&net.file).unwrap();
    let ops = net
        .state()
        .output_str("account.fabrikam.ops", "address")
        .unwrap()
        .to_string();

    let out = net.run(&["member", "remove", "fabrikam", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let bang = text
        .lines()
        .find(|l| l.trim_start().starts_with("! ") && l.contains(&ops))
        .unwrap_or_else(|| panic!("no ! line for {ops}:\n{text}"));
    assert!(bang.contains("holds 1000 ether"), "{bang}");
    assert!(
        stderr(&out).contains("--allow-data-loss"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&net.file).unwrap(), before);
    assert!(net.state().resources.contains_key("account.fabrikam.ops"));

    let out = net.ok(&["member", "remove", "fabrikam", "--yes", "--allow-data-loss"]);
    assert!(out.contains("Removed member fabrikam"), "{out}");
    let sd = net.handle.state_dir();
    assert!(!sd.keys_dir().join("accounts/fabrikam/ops").exists());
    let archived: Vec<PathBuf> = std::fs::read_dir(sd.archive_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path().join("keys/accounts/fabrikam/ops/key"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(archived.len(), 1, "archived ops key: {archived:?}");
    assert!(sd.archive_dir().read_dir().unwrap().flatten().any(|e| e
        .path()
        .join("keys/signers/fabrikam-validator-0/password")
        .is_file()));

    // A client change is a rolling restart that keeps the chain: no `!`, no replacement.
    let text = std::fs::read_to_string(&net.file).unwrap();
    std::fs::write(
        &net.file,
        text.replace("network:\n", "client:\n  geth: 1.13.14\nnetwork:\n"),
    )
    .unwrap();
    let plan = net.ok(&["plan"]);
    assert!(plan.contains("~ node.contoso-validator-0"), "{plan}");
    assert!(!plan.contains("-/+") && !plan.contains("  ! "), "{plan}");
    std::fs::write(&net.file, text).unwrap();

    let plan = net.ok(&["plan", "--destroy"]);
    assert!(plan.contains("destroy (consort destroy)"), "{plan}");
    assert!(!plan.contains("no longer in the topology"), "{plan}");
    net.ok(&["destroy", "--yes"]);
    assert!(
        !net.handle.base.exists(),
        "destroy left {}",
        net.handle.base.display()
    );
}

/// Issue 8 item 5: a geth that a killed run started but never recorded is seen by plan and
/// status, and apply replaces it without leaving a stray process.
#[test]
fn a_process_state_does_not_record_is_seen_and_adopted() {
    let net = Net::new("unrecorded", 737373);
    net.ok(&["apply", "--yes"]);
    let sd = net.handle.state_dir();
    // What a kill between `geth` start (pid file written) and the state save leaves.
    let mut st = net.state();
    let gone = st.resources.remove("node.contoso-tx-0").unwrap();
    let pid = gone.outputs["pid"].as_u64().unwrap();
    sd.save(&mut st).unwrap();

    let status = stdout(&net.run(&["status"]));
    assert!(
        status.contains(&format!("geth pid {pid} is running")),
        "status does not see it:\n{status}"
    );
    let plan = net.ok(&["plan"]);
    assert!(
        plan.contains(&format!("geth pid {pid} is running")),
        "{plan}"
    );
    assert!(plan.contains("+ node.contoso-tx-0"), "{plan}");
    net.ok(&["apply", "--yes"]);
    let pids = net.pids();
    assert_eq!(pids.len(), 4, "{pids:?}");
    assert!(
        !pids.contains(&(pid as u32)),
        "the unrecorded geth still runs"
    );
    let out = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A leftover temp file of a killed state write is cleaned by the next locked command.
    let tmp = sd.root.join(".state.json.tmp.4242");
    std::fs::write(&tmp, b"{").unwrap();
    net.ok(&["apply", "--yes"]);
    assert!(!tmp.exists());
    // destroy works on a corrupt state too: it stops what it finds and leaves nothing.
    std::fs::write(sd.state_file(), b"{ torn").unwrap();
    let out = net.ok(&["destroy", "--yes"]);
    assert!(out.contains("state file is not valid"), "{out}");
    assert!(out.contains("Stopped 4 geth process(es)"), "{out}");
    assert!(net.pids().is_empty());
    assert!(!net.handle.base.exists());
}

/// Issue 8 item 13: a Ctrl-C sent to consort's whole process group (as a terminal does)
/// during apply lets the changes in flight finish (geth init is not killed with it), saves,
/// says so and exits 130; apply then converges. A second signal (SIGTERM then SIGHUP
/// here) exits 130 at once, during `member add` too.
#[test]
fn ctrl_c_finishes_in_flight_changes_saves_and_exits_130() {
    use std::os::unix::process::CommandExt;
    let net = Net::new("sigint", 747474);
    let f = net.f();
    let mut cmd = consort_cmd(&net.dir, &["-f", &f, "apply", "--yes"]);
    let err_path = net.dir.join("apply.err");
    cmd.stdout(std::fs::File::create(net.dir.join("apply.out")).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    // Interrupt once the first node is being initialised (its `geth init` runs then).
    poll("an init step", WAIT, || {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let out = std::fs::read_to_string(net.dir.join("apply.out")).unwrap_or_default();
        Ok((err.contains("init") || out.contains("init")).then_some(()))
    });
    // SAFETY: signalling the process group of the child we spawned.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let status = poll("consort to exit", WAIT, || Ok(child.try_wait().unwrap()));
    let err = std::fs::read_to_string(&err_path).unwrap();
    let out = std::fs::read_to_string(net.dir.join("apply.out")).unwrap();
    assert_eq!(status.code(), Some(130), "{out}\n{err}");
    assert!(err.contains("interrupting: finishing"), "{err}");
    assert!(err.contains("Ctrl-C again to stop now"), "{err}");
    assert!(!err.contains("geth init` of"), "geth init failed:\n{err}");
    // It finished what was in flight and stopped there: the rest was not started.
    let not_started = err
        .split("Interrupted: ")
        .nth(1)
        .and_then(|t| t.split(" not started").next())
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(
        not_started.is_some_and(|n| n > 0),
        "went on after the interrupt:\n{err}"
    );
    // State is valid and apply converges from it.
    let st = net.state();
    assert!(!st.resources.is_empty());
    net.ok(&["apply", "--yes"]);
    let out = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Twice: exits at once, 130.
    let mut cmd = consort_cmd(&net.dir, &["-f", &f, "member", "add", "delta", "--yes"]);
    let err2 = net.dir.join("add.err");
    let out2 = net.dir.join("add.out");
    cmd.stdout(std::fs::File::create(&out2).unwrap())
        .stderr(std::fs::File::create(&err2).unwrap())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    // Once the new node is being initialised: a change that takes a while is in flight,
    // so the second signal lands before the first could let consort finish and exit.
    poll("member add to initialise delta's node", WAIT, || {
        let out = std::fs::read_to_string(&out2).unwrap_or_default();
        Ok(out.contains("delta-validator-0: init").then_some(()))
    });
    // SIGTERM then SIGHUP: the same as two Ctrl-Cs.
    // SAFETY: signalling the process group of the child we spawned.
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-pgid, libc::SIGHUP);
    }
    let status = poll("consort to exit", WAIT, || Ok(child.try_wait().unwrap()));
    assert_eq!(status.code(), Some(130));
    let err = std::fs::read_to_string(&err2).unwrap();
    assert!(err.contains("interrupted again: stopping now"), "{err}");
    // At once: nothing in flight was waited for (the first signal's way out ends with
    // its "Interrupted: … done and saved" summary; the second exits before it).
    assert!(
        !err.contains("Interrupted: "),
        "waited for the changes in flight:\n{err}"
    );
    // And the interrupted member add is finished by apply.
    net.ok(&["apply", "--yes"]);
    let out = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    net.ok(&["destroy", "--yes"]);
    assert!(net.pids().is_empty());
}

/// Issue 8 item 14 at the CLI: a FIFO as -f fails at once instead of hanging.
#[test]
fn a_fifo_topology_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("consort.yaml");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut child = consort_cmd(dir.path(), &["validate"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = poll("validate to exit", Duration::from_secs(10), || {
        Ok(child.try_wait().unwrap())
    });
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("is a FIFO (named pipe), not a regular file"),
        "{err}"
    );
}
