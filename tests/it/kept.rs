//! Issue 20, data that must not be lost: an interrupted destroy followed by apply keeps a
//! funded account's address and pays nothing twice; a joined operator's destroy is guarded
//! and archives; damaged state and chain data have a way back. Real geth 1.13.15.

use crate::support::*;
use consort::rpc::{self, BlockId, RpcClient};
use consort::state::{State, StateDir};
use consort::topology::Wei;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

struct Net {
    handle: NetworkHandle,
    dir: PathBuf,
}

impl Net {
    fn new(name: &str, chain_id: u64, extra_members: &str) -> Net {
        let handle = NetworkHandle::new(name);
        let dir = handle.dir.path().canonicalize().unwrap();
        let text = format!(
            "network:
  name: {name}
  chain_id: {chain_id}
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
  funding_account: contoso/treasury
members:
  - name: contoso
    validators: 2
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 5000 ether
  - name: fabrikam
    validators: 1
{extra_members}provider:
  local:
    base_port: {}
",
            port_base()
        );
        std::fs::write(dir.join("consort.yaml"), text).unwrap();
        Net { handle, dir }
    }
    fn file(&self) -> PathBuf {
        self.dir.join("consort.yaml")
    }
    fn sd(&self) -> StateDir {
        self.handle.state_dir()
    }
    fn state(&self) -> State {
        self.sd().load().unwrap().expect("state")
    }
    fn ok(&self, args: &[&str]) -> String {
        consort_ok(&self.dir, args)
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        consort(&self.dir, args)
    }
    fn address(&self, resource: &str) -> String {
        self.state()
            .output_str(resource, "address")
            .unwrap_or_else(|| panic!("{resource} has no address in state"))
            .to_string()
    }
    /// The IPC of a running node of state.
    fn ipc(&self, node: &str) -> RpcClient {
        consort::provider::local::NodeOutputs::from_state(&self.state(), node)
            .unwrap_or_else(|| panic!("{node} not in state"))
            .control()
            .with_timeout(Duration::from_secs(5))
    }
    fn balance(&self, node: &str, address: &str) -> u128 {
        let a = rpc::parse_address(address).unwrap();
        self.ipc(node).eth_get_balance(&a, BlockId::Latest).unwrap()
    }
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Every key file under `dir` (archived or not) of the account or signer at `rel`.
fn archived(sd: &StateDir, rel: &str) -> Vec<PathBuf> {
    std::fs::read_dir(sd.archive_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(rel))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Item 1: `destroy` killed right after it archived a post-genesis funded account, then
/// `apply`: plan restores the account's key (no new address), apply pays nothing twice
/// and the funding account's balance is what it was.
#[test]
fn a_killed_destroy_then_apply_keeps_the_funded_accounts_address_and_pays_once() {
    let net = Net::new("rekeyed", 747401, "");
    net.ok(&["apply", "--yes"]);
    // delta/pay joins after genesis: funded by a transfer.
    let yaml = std::fs::read_to_string(net.file()).unwrap();
    std::fs::write(
        net.file(),
        yaml.replace(
            "provider:",
            "  - name: delta\n    accounts:\n      - name: pay\n        balance: 5 ether\nprovider:",
        ),
    )
    .unwrap();
    net.ok(&["apply", "--yes"]);
    assert!(net.state().resources.contains_key("fund.delta.pay"));
    let pay = net.address("account.delta.pay");
    let treasury = net.address("account.contoso.treasury");
    poll("delta/pay funded", WAIT, || {
        Ok((net.balance("contoso-validator-0", &pay) == 5 * Wei::ETHER).then_some(()))
    });
    let treasury_before = net.balance("contoso-validator-0", &treasury);

    let landed = signal_at_event(
        &net.dir,
        &["destroy", "--yes"],
        "  - account.delta.pay (",
        libc::SIGKILL,
    );
    assert!(landed.stdout.contains("- account.delta.pay ("));
    // The fault landed where it claims: the account is out of state, its key archived, and
    // a validator still holds the chain.
    let st = net.state();
    assert!(!st.resources.contains_key("account.delta.pay"));
    assert!(!archived(&net.sd(), "keys/accounts/delta/pay").is_empty());
    assert!(
        st.resources.contains_key("node.contoso-validator-0")
            || st.resources.contains_key("node.contoso-validator-1"),
        "the destroy went past every validator before the kill: {:?}",
        st.resources.keys().collect::<Vec<_>>()
    );

    let plan = net.ok(&["plan"]);
    let line = plan
        .lines()
        .find(|l| l.contains("+ account.delta.pay"))
        .unwrap_or_else(|| panic!("no account.delta.pay line:\n{plan}"));
    assert!(
        line.contains(&format!("restores its earlier key {pay}")),
        "{line}"
    );

    let out = net.ok(&["apply", "--yes"]);
    assert!(out.contains("is healthy"), "{out}");
    assert_eq!(
        net.address("account.delta.pay"),
        pay,
        "the account was re-keyed"
    );
    let node = "contoso-validator-0";
    assert_eq!(net.balance(node, &pay), 5 * Wei::ETHER);
    assert_eq!(
        net.balance(node, &treasury),
        treasury_before,
        "the funding account paid again"
    );
    let again = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    // A finished destroy deletes the archive with everything else.
    net.ok(&["destroy", "--yes"]);
    assert!(
        !net.handle.base.exists(),
        "destroy left {}",
        net.handle.base.display()
    );
}

/// Item 2: after invite → join → admit, the joiner's validator is one of the chain's
/// signers and its account holds ether. The joiner's `destroy` is refused without
/// `--allow-data-loss`, saying what the consortium is left with and that `member remove`
/// comes first; with it, the keys are archived and kept.
#[test]
fn a_joined_operators_destroy_is_guarded_and_archives_its_keys() {
    let a = Net::new("shared", 747402, "");
    a.ok(&["apply", "--yes"]);
    let shared = tempfile::tempdir().unwrap();
    let invite = shared.path().join("invite.json");
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    a.ok(&[
        "invite",
        "delta",
        "--validators",
        "1",
        "--account",
        "ops=10ether",
        "-o",
        &s(&invite),
    ]);
    let b_handle = NetworkHandle::new("shared");
    let b = Net {
        dir: b_handle.dir.path().canonicalize().unwrap(),
        handle: b_handle,
    };
    b.ok(&[
        "join",
        &s(&invite),
        "--address",
        "127.0.0.2",
        "--base-port",
        &port_base().to_string(),
        "--yes",
    ]);
    a.ok(&["admit", &s(&b.dir.join("join-request.json")), "--yes"]);
    let signer = b.address("key.signer.delta-validator-0");
    let ops = b.address("account.delta.ops");
    let founder = a.ipc("contoso-validator-0");
    poll("delta's validator voted in", WAIT, || {
        let live = founder.clique_get_signers().map_err(|e| e.to_string())?;
        Ok((live.len() == 4
            && live
                .iter()
                .any(|x| x.to_checksum().eq_ignore_ascii_case(&signer)))
        .then_some(()))
    });
    // The joiner's own node has seen the vote too (plan asks it).
    let joiner = b.ipc("delta-validator-0");
    poll("the joiner to see its validator voted in", WAIT, || {
        let live = joiner.clique_get_signers().map_err(|e| e.to_string())?;
        Ok((live.len() == 4).then_some(()))
    });
    poll("delta/ops funded", WAIT, || {
        Ok((a.balance("contoso-validator-0", &ops) == 10 * Wei::ETHER).then_some(()))
    });
    let pids = processes_under(&b.dir);
    assert!(!pids.is_empty());

    let plan = b.ok(&["plan", "--destroy"]);
    let bang = |needle: &str| {
        plan.lines()
            .find(|l| l.trim_start().starts_with("! ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no ! line with {needle}:\n{plan}"))
            .to_string()
    };
    let l = bang(&signer);
    assert!(
        l.contains("keeps 4 signers, 1 of them gone for good: Clique needs 3"),
        "{l}"
    );
    assert!(l.contains("consort member remove delta"), "{l}");
    assert!(bang(&ops).contains("holds 10 ether"));

    let out = b.run(&["destroy", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--allow-data-loss"), "{}", text(&out));
    assert_eq!(
        processes_under(&b.dir),
        pids,
        "a refused destroy stopped nodes"
    );
    assert!(b.sd().keys_dir().join("accounts/delta/ops/key").is_file());

    let out = b.ok(&["destroy", "--yes", "--allow-data-loss"]);
    assert!(out.contains("stay archived"), "{out}");
    assert!(processes_under(&b.dir).is_empty());
    assert!(!b.sd().state_file().exists());
    let key = archived(&b.sd(), "keys/accounts/delta/ops");
    assert_eq!(key.len(), 1, "{key:?}");
    assert!(key[0].join("key").is_file());
    assert_eq!(archived(&b.sd(), "keys/signers/delta-validator-0").len(), 1);

    // The founders' chain goes on with 3 of its 4 signers.
    let head = founder.block_number().unwrap();
    poll("the founders' chain to go on", WAIT, || {
        Ok((founder.block_number().map_err(|e| e.to_string())? > head + 2).then_some(()))
    });
}

/// Item 5: a state file of random bytes (seeded) is reported like broken JSON — once, with
/// the newest backup and the command that restores it — by plan, status, apply and
/// destroy, none of which changes anything; `state recover` rebuilds it and the network
/// plans nothing.
#[test]
fn a_state_file_of_random_bytes_names_the_backup_and_recovers() {
    use rand::{RngCore, SeedableRng};
    let net = Net::new("garbled", 747403, "");
    net.ok(&["apply", "--yes"]);
    let sd = net.sd();
    let backup = sd.newest_backup().expect("a backup");
    let mut bytes = vec![0u8; 4096];
    rand::rngs::StdRng::seed_from_u64(20).fill_bytes(&mut bytes);
    assert!(std::str::from_utf8(&bytes).is_err());
    std::fs::write(sd.state_file(), &bytes).unwrap();
    let pids = processes_under(&net.dir);
    for args in [&["plan"][..], &["status"], &["apply", "--yes"]] {
        let out = net.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(err.contains("not UTF-8"), "{args:?}: {err}");
        assert_eq!(
            err.matches("not UTF-8").count(),
            1,
            "{args:?}: said twice: {err}"
        );
        assert!(
            err.contains(&format!(
                "cp {} {}",
                backup.display(),
                sd.state_file().display()
            )),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(sd.state_file()).unwrap(), bytes, "{args:?}");
        assert_eq!(processes_under(&net.dir), pids, "{args:?}");
    }
    let out = net.ok(&["state", "recover"]);
    assert!(out.contains("not UTF-8"), "{out}");
    let plan = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    // destroy, asked to, goes on from what is on disk, saying why and where the backup is.
    std::fs::write(sd.state_file(), &bytes).unwrap();
    let out = net.ok(&["destroy", "--yes"]);
    assert!(
        out.contains("not UTF-8") && out.contains("The newest backup is"),
        "{out}"
    );
    assert!(processes_under(&net.dir).is_empty());
    assert!(!net.handle.base.exists());
}

/// Item 7: a caller's open descriptors (a `flock` lock, a shell pipe) reach no child. A
/// pipe's write end is handed to `consort apply` as descriptor 10 and its stdout is a
/// pipe, as in `flock LOCK consort apply | cat`: both read to their end once consort
/// exits, while geth runs on, and no geth holds either.
#[test]
fn geth_inherits_no_descriptor_of_the_caller() {
    use std::io::Read;
    use std::os::unix::process::CommandExt as _;
    let net = Net::new("fdless", 747404, "");
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 into a two-int array; both ends close-on-exec in this (threaded) test.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = (fds[0], fds[1]);
    let pipe_id = std::fs::read_link(format!("/proc/self/fd/{r}")).unwrap();
    let mut cmd = consort_cmd(&net.dir, &["apply", "--yes"]);
    cmd.stdout(std::process::Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; the copy at 10 is inherited (dup2 clears
    // close-on-exec) by this child only.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, 10) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // SAFETY: our own copy of the write end; consort holds its own.
    unsafe { libc::close(w) };
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        let _ = tx.send(("stdout", s));
    });
    std::thread::spawn(move || {
        // SAFETY: the read end is ours; read until every write end is closed.
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(r) };
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        let _ = tx2.send(("fd 10", s));
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "apply failed");
    let mut ended = Vec::new();
    for _ in 0..2 {
        let (what, text) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("after consort exited, {ended:?} reached their end but not the other: a geth holds it"));
        if what == "stdout" {
            assert!(text.contains("is healthy"), "{text}");
        }
        ended.push(what);
    }
    let geths = processes_under(&net.dir);
    assert!(!geths.is_empty(), "geth runs on");
    for pid in geths {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            assert_ne!(target, pipe_id, "geth {pid} holds the caller's descriptor");
        }
    }
    net.ok(&["destroy", "--yes"]);
}

/// Item 3: a stopped validator whose `geth/chaindata` was deleted is planned as "chain data
/// missing: re-initialise from genesis and resync from peers", and apply does that: it
/// rejoins the chain the others kept (not mainnet's), and the next plan is empty.
#[test]
fn deleted_chain_data_is_reinitialised_and_resynced() {
    let net = Net::new("dataless", 747405, "");
    net.ok(&["apply", "--yes"]);
    let node = "fabrikam-validator-0";
    let o = consort::provider::local::NodeOutputs::from_state(&net.state(), node).unwrap();
    // SAFETY: a geth this test's network started.
    unsafe { libc::kill(o.pid as i32, libc::SIGKILL) };
    poll("the validator to die", WAIT, || {
        Ok((!o.is_running()).then_some(()))
    });
    let chaindata = std::path::Path::new(&o.datadir).join("geth/chaindata");
    assert!(chaindata.is_dir());
    std::fs::remove_dir_all(&chaindata).unwrap();
    let head = net.ipc("contoso-validator-0").block_number().unwrap();

    let plan = net.ok(&["plan"]);
    let line = plan
        .lines()
        .find(|l| l.contains(&format!("~ node.{node}")))
        .unwrap_or_else(|| panic!("no line for {node}:\n{plan}"));
    assert!(
        line.contains("chain data missing: re-initialise from genesis and resync from peers"),
        "{line}"
    );
    assert!(!plan.contains("  ! "), "{plan}");
    let out = net.ok(&["apply", "--yes"]);
    assert!(out.contains("is healthy"), "{out}");
    let rpc = net.ipc(node);
    assert_eq!(rpc.chain_id().unwrap(), 747405);
    poll("the re-initialised validator to resync", WAIT, || {
        Ok((rpc.block_number().map_err(|e| e.to_string())? > head).then_some(()))
    });
    let again = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    net.ok(&["destroy", "--yes"]);
}

/// Damages a stopped node's pebble database the way a torn disk write would, picking by
/// `seed` between its live MANIFEST (cut inside its first record, which pebble cannot read
/// past: a cut later on is a torn tail it tolerates) and one of its `.sst` tables (any cut:
/// the MANIFEST records each table's size). Returns the damaged file and its new length.
fn damage_chaindata(datadir: &std::path::Path, seed: u64) -> (PathBuf, u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let chaindata = datadir.join("geth/chaindata");
    let manifest = chaindata.join(
        std::fs::read_to_string(chaindata.join("CURRENT"))
            .unwrap()
            .trim(),
    );
    let mut tables: Vec<PathBuf> = std::fs::read_dir(&chaindata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 1)
        .collect();
    tables.sort();
    let (file, len) = if tables.is_empty() || rng.gen_bool(0.5) {
        // A record chunk: checksum (4), length (2, little-endian), type (1), data.
        let bytes = std::fs::read(&manifest).unwrap();
        let first = 7 + u16::from_le_bytes([bytes[4], bytes[5]]) as u64;
        (manifest, rng.gen_range(8..first))
    } else {
        let t = tables[rng.gen_range(0..tables.len())].clone();
        let size = std::fs::metadata(&t).unwrap().len();
        (t, rng.gen_range(1..size))
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len)
        .unwrap();
    (file, len)
}

/// Names, sizes and contents of the files directly in a node's `geth/chaindata`.
fn chaindata_files(datadir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(datadir.join("geth/chaindata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// The address that sealed block `hash` (`clique_getSigner`).
fn sealer(rpc: &RpcClient, hash: &str) -> String {
    rpc.call::<String>("clique_getSigner", serde_json::json!([hash]))
        .unwrap_or_else(|e| panic!("clique_getSigner({hash}): {e}"))
        .to_ascii_lowercase()
}

/// Item 4: a killed validator whose pebble database is damaged (a truncated MANIFEST or
/// `.sst`, chosen by seed) is planned as "chain data corrupt: <geth's error>; delete it and
/// resync from peers" behind `!`; apply refuses it without `--allow-data-loss` and changes
/// nothing; with it the node is re-initialised, keeps its keys, catches up and seals again.
#[test]
fn corrupt_chain_data_is_resynced_from_peers_only_when_allowed() {
    let net = Net::new("corrupt", 747406, "");
    net.ok(&["apply", "--yes"]);
    let node = "fabrikam-validator-0";
    let signer = net
        .address(&format!("key.signer.{node}"))
        .to_ascii_lowercase();
    let enode_before = net.state().resources[&format!("node.{node}")].outputs["enode"].clone();
    let o = consort::provider::local::NodeOutputs::from_state(&net.state(), node).unwrap();
    // SAFETY: a geth this test's network started.
    unsafe { libc::kill(o.pid as i32, libc::SIGKILL) };
    poll("the validator to die", WAIT, || {
        Ok((!o.is_running()).then_some(()))
    });
    let datadir = std::path::Path::new(&o.datadir);
    let seed = std::env::var("CONSORT_CORRUPT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x20_04);
    let (file, len) = damage_chaindata(datadir, seed);
    eprintln!("seed {seed:#x}: cut {} to {len} bytes", file.display());
    let damaged = chaindata_files(datadir);

    // Every view of the plan says what apply would do and that it loses data.
    let plan = net.ok(&["plan"]);
    let line = plan
        .lines()
        .find(|l| l.contains(&format!("~ node.{node}")))
        .unwrap_or_else(|| panic!("no line for {node}:\n{plan}"));
    assert!(line.contains("chain data corrupt: "), "{line}");
    assert!(
        line.ends_with("; delete it and resync from peers"),
        "{line}"
    );
    let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
    let number = file_name
        .trim_end_matches(".sst")
        .trim_start_matches("MANIFEST-");
    assert!(
        line.contains(number),
        "geth's error names {file_name}: {line}"
    );
    let bang = plan
        .lines()
        .skip_while(|l| *l != line)
        .nth(1)
        .unwrap_or_default();
    assert!(
        bang.trim_start().starts_with("! its chain data is deleted"),
        "{plan}"
    );
    assert!(
        bang.contains("keys (node key, signer keystore) are kept"),
        "{bang}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&net.ok(&["plan", "--json"])).expect("plan --json");
    assert_eq!(
        json["data_loss"][0]["addr"],
        format!("node.{node}"),
        "{json}"
    );
    assert_eq!(json["data_loss"].as_array().unwrap().len(), 1, "{json}");

    // Without the flag: refused, naming it, and nothing changes.
    let serial = net.state().serial;
    let out = net.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--allow-data-loss"), "{}", text(&out));
    assert_eq!(
        chaindata_files(datadir),
        damaged,
        "a refused apply changed the data"
    );
    assert_eq!(net.state().serial, serial);
    assert!(!o.is_running());

    // With it: re-initialised, same keys, caught up, sealing again, healthy.
    let head = net.ipc("contoso-validator-0").block_number().unwrap();
    let out = net.ok(&["apply", "--yes", "--allow-data-loss"]);
    assert!(out.contains("is healthy"), "{out}");
    let st = net.state();
    assert_eq!(
        st.resources[&format!("node.{node}")].outputs["enode"],
        enode_before,
        "the node key changed"
    );
    assert_eq!(
        net.address(&format!("key.signer.{node}"))
            .to_ascii_lowercase(),
        signer
    );
    let rpc = net.ipc(node);
    assert_eq!(rpc.chain_id().unwrap(), 747406);
    poll("the resynced validator to catch up", WAIT, || {
        Ok((rpc.block_number().map_err(|e| e.to_string())? > head).then_some(()))
    });
    let from = rpc.block_number().unwrap();
    poll("the resynced validator to seal a block", WAIT, || {
        let now = rpc.block_number().map_err(|e| e.to_string())?;
        for n in from + 1..=now {
            let b = rpc
                .block_by_number(BlockId::Number(n))
                .map_err(|e| e.to_string())?
                .ok_or("no block")?;
            if sealer(&rpc, &b.hash) == signer {
                return Ok(Some(()));
            }
        }
        Ok(None)
    });
    let status: serde_json::Value =
        serde_json::from_str(&net.ok(&["status", "--json"])).expect("status --json");
    assert_eq!(status["healthy"], true, "{status}");
    let again = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    net.ok(&["destroy", "--yes"]);
}

/// Item 4, refused: a single-node network's only copy of the chain is never deleted to
/// "resync" (from no one): plan and apply refuse, say why and what to do, and change
/// nothing, `--allow-data-loss` or not.
#[test]
fn corrupt_chain_data_of_the_only_node_is_refused() {
    let handle = NetworkHandle::new("lonely");
    let dir = handle.dir.path().canonicalize().unwrap();
    std::fs::write(
        dir.join("consort.yaml"),
        format!(
            "network:
  name: lonely
  chain_id: 747407
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
members:
  - name: contoso
    validators: 1
provider:
  local:
    base_port: {}
",
            port_base()
        ),
    )
    .unwrap();
    consort_ok(&dir, &["apply", "--yes"]);
    let st = handle.state_dir().load().unwrap().unwrap();
    let node = "contoso-validator-0";
    let o = consort::provider::local::NodeOutputs::from_state(&st, node).unwrap();
    // SAFETY: a geth this test's network started.
    unsafe { libc::kill(o.pid as i32, libc::SIGKILL) };
    poll("the validator to die", WAIT, || {
        Ok((!o.is_running()).then_some(()))
    });
    let datadir = std::path::Path::new(&o.datadir);
    damage_chaindata(datadir, 0x20_04_01);
    let damaged = chaindata_files(datadir);
    for args in [
        &["plan"][..],
        &["apply", "--yes"],
        &["apply", "--yes", "--allow-data-loss"],
    ] {
        let out = consort(&dir, args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains(&format!("node.{node}: chain data corrupt: ")),
            "{args:?}: {t}"
        );
        assert!(
            t.contains(
                "No other node holds the chain of network lonely (it is the network's only node)"
            ),
            "{args:?}: {t}"
        );
        assert!(t.contains("from a backup"), "{args:?}: {t}");
        assert_eq!(
            t.matches("chain data corrupt").count(),
            1,
            "{args:?}: said twice: {t}"
        );
        assert_eq!(
            chaindata_files(datadir),
            damaged,
            "{args:?} changed the data"
        );
        assert!(!o.is_running(), "{args:?} started the node");
    }
    consort_ok(&dir, &["destroy", "--yes"]);
}

/// Unmounts the tmpfs a test mounted over its network's directory (before the directory
/// itself goes).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Item 6: a disk that fills up while apply writes keys. Every key directory left is a
/// whole key (one plan then picks up again, saying so), never a half-written one; each
/// failure says "No space left on device" once, names its resource once, and says what to
/// do; after space is freed, apply converges. The network's directory is a small tmpfs
/// (mounting one needs root: this test fails rather than skips without it).
#[test]
fn a_full_disk_leaves_no_half_written_key_and_says_so_once() {
    let handle = NetworkHandle::new("full");
    let dir = handle.dir.path().canonicalize().unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96k,mode=0755", "tmpfs"])
        .arg(&dir)
        .output()
        .expect("run mount");
    assert!(
        mount.status.success(),
        "mounting a tmpfs needs root: {}",
        text(&mount)
    );
    let _mounted = Mounted(dir.clone());
    let accounts: String = (0..20)
        .map(|i| format!("      - name: a{i}\n        balance: 1 ether\n"))
        .collect();
    std::fs::write(
        dir.join("consort.yaml"),
        format!(
            "network:
  name: full
  chain_id: 747408
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
members:
  - name: contoso
    validators: 1
    accounts:
{accounts}provider:
  local:
    base_port: {}
",
            port_base()
        ),
    )
    .unwrap();
    let out = consort(&dir, &["apply", "--yes"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("No space left on device"), "{t}");
    for line in t.lines().filter(|l| l.contains("No space left")) {
        assert_eq!(
            line.matches("No space left on device").count(),
            1,
            "said twice: {line}"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            !words
                .windows(2)
                .any(|w| w[0] == w[1] && w[0].ends_with(':')),
            "names its resource twice: {line}"
        );
    }
    assert!(t.contains("free space"), "no way out said: {t}");

    // What is left under keys/: whole keys only, each one the next plan picks up.
    let sd = handle.state_dir();
    let st = sd.load().unwrap();
    let plan = consort_ok(&dir, &["plan"]);
    let accounts_dir = sd.root.join("keys/accounts/contoso");
    let mut promised = Vec::new();
    for e in std::fs::read_dir(&accounts_dir).into_iter().flatten() {
        let d = e.unwrap().path();
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        let keystores: Vec<_> = std::fs::read_dir(d.join("keystore"))
            .map(|r| r.flatten().collect())
            .unwrap_or_default();
        assert!(
            d.join("key").is_file() && d.join("password").is_file() && keystores.len() == 1,
            "half-written key directory left: {}",
            d.display()
        );
        let addr = format!("account.contoso.{name}");
        let in_state = st.as_ref().is_some_and(|s| s.resources.contains_key(&addr));
        if !in_state {
            let line = plan
                .lines()
                .find(|l| l.contains(&format!("+ {addr} ")))
                .unwrap_or_else(|| panic!("no line for {addr}:\n{plan}"));
            assert!(line.contains("restores its earlier key 0x"), "{line}");
            let key = std::fs::read_to_string(d.join("key")).unwrap();
            let address = consort::crypto::SecretKey::from_hex(key.trim())
                .unwrap()
                .address()
                .to_checksum();
            assert!(line.contains(&address), "{line} is not {address}");
            promised.push((addr, address));
        }
    }

    // Space freed: apply converges, keeping the addresses plan promised.
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,size=512m"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(remount.status.success(), "{}", text(&remount));
    let out = consort_ok(&dir, &["apply", "--yes"]);
    assert!(out.contains("is healthy"), "{out}");
    let st = sd.load().unwrap().unwrap();
    for (addr, address) in &promised {
        assert_eq!(
            st.output_str(addr, "address"),
            Some(address.as_str()),
            "{addr}"
        );
    }
    let again = consort(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    consort_ok(&dir, &["destroy", "--yes"]);
}
