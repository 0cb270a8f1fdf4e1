//! Membership changes (issue 4) end to end: the real `consort` binary on real geth.
//!
//! Each test starts a three-member network (one validator each, a funded account on the
//! first member), changes its membership through the CLI and then asks the chain itself:
//! signers, sealed blocks, peers, balances, processes, files. Around every add and remove
//! the largest gap between consecutive block timestamps is measured and must stay within
//! 3 × the Clique period. Every network is destroyed on Drop (`consort destroy`, then any
//! process state or pid files still name is stopped).

use crate::support::{geth, poll, NetworkHandle};
use consort::crypto::Address;
use consort::provider::local::process::{self, ProcessId};
use consort::provider::local::NodeOutputs;
use consort::rpc::{self, BlockId, RpcClient};
use consort::state::{State, StateDir};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_consort");
/// Clique period of the test networks (seconds).
const PERIOD: u64 = 2;
/// The bound on the largest gap between consecutive blocks during a change.
const MAX_GAP: u64 = 3 * PERIOD;
/// `--timeout` of every apply (health wait, votes, transfers).
const APPLY_TIMEOUT: &str = "180";
/// Hard bound on one consort command: a hung command fails the test, never hangs it.
const CMD_DEADLINE: Duration = Duration::from_secs(300);
/// Bound on polling the chain for something that should follow shortly.
const WAIT: Duration = Duration::from_secs(120);
const ETHER: u128 = 1_000_000_000_000_000_000;
/// A new network counts as sealing steadily once every founder is past this block …
const STEADY_HEAD: u64 = 3;
/// … within this long after `apply` returned (geth's forced sync cycle is 10 s).
const STEADY_WAIT: Duration = Duration::from_secs(30);

const FOUNDERS: [&str; 3] = [
    "contoso-validator-0",
    "fabrikam-validator-0",
    "northwind-validator-0",
];

/// The member block `consort member add delta --validators 1 --tx-nodes 1 --account
/// ops="7 ether"` appends (the file's own indentation: two spaces, items under the key).
const DELTA_BLOCK: &str = "  - name: delta
    validators: 1
    tx_nodes: 1
    accounts:
      - name: ops
        balance: 7 ether
";
const DELTA_ADD: [&str; 9] = [
    "member",
    "add",
    "delta",
    "--validators",
    "1",
    "--tx-nodes",
    "1",
    "--account",
    "ops=7 ether",
];
const DELTA_NODES: [&str; 2] = ["delta-validator-0", "delta-tx-0"];
/// The last line of the last member block in [`topology`]: `member add` inserts after it.
const LAST_MEMBER_END: &str = "  - name: northwind   # last founder\n    validators: 1\n";
const FABRIKAM_BLOCK: &str = "  - name: fabrikam\n    validators: 1\n";

/// The test topology: comments, blank lines and a section after `members` that every edit
/// must keep byte for byte.
fn topology(name: &str, chain_id: u64, base_port: u16) -> String {
    format!(
        "\
# Membership test network. Comments, blank lines and layout must survive
# `consort member add` and `consort member remove` byte for byte.
network:
  name: {name}
  chain_id: {chain_id}   # private test chain
  consensus:
    clique:
      period: {PERIOD}

members:
  # The founders, one validator each.
  - name: contoso
    validators: 1
    accounts:
      - name: treasury
        balance: 1000 ether   # funds accounts added later

{FABRIKAM_BLOCK}{LAST_MEMBER_END}
provider:
  local:
    base_port: {base_port}   # spread per test
"
    )
}

/// A port range per network: spread by pid (concurrent runs) and by call (parallel tests).
/// A port found in use is skipped by consort anyway.
fn port_base() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    30000 + (std::process::id() % 25) as u16 * 400 + NEXT.fetch_add(50, Ordering::SeqCst)
}

/// Output of one finished consort command.
struct Run {
    args: String,
    status: ExitStatus,
    out: String,
    err: String,
}

impl Run {
    fn ok(self) -> Run {
        assert!(self.status.success(), "{}", self.describe("failed"));
        self
    }
    fn describe(&self, what: &str) -> String {
        format!(
            "`consort {}` {what} ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.status, self.out, self.err
        )
    }
}

/// Kills (SIGKILL) and reaps a consort command still running when the test ends.
struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test network in a temp dir, driven through the binary; destroyed on Drop.
struct Net {
    handle: NetworkHandle,
    /// `<dir>/consort.yaml`
    file: PathBuf,
    runs: AtomicUsize,
}

impl Net {
    /// Writes the three-founder topology, applies it and waits until every founder is past
    /// block [`STEADY_HEAD`], so that what a test measures is its membership change, not
    /// the network's birth. A network stuck at birth fails the test: validators seal only
    /// once peered (`start_sealing`), so the geth 1.13 block-1 fork cannot happen.
    fn start(name: &str, chain_id: u64) -> Net {
        let net = Net::create(name, chain_id);
        if let Err(heads) = net.wait_steady() {
            panic!("{name}: the new network did not get past its first blocks: {heads}");
        }
        net
    }

    fn create(name: &str, chain_id: u64) -> Net {
        let handle = NetworkHandle::new(name);
        let dir = handle.base.parent().unwrap().to_path_buf();
        let file = dir.join("consort.yaml");
        std::fs::write(&file, topology(name, chain_id, port_base())).unwrap();
        let net = Net {
            handle,
            file,
            runs: AtomicUsize::new(0),
        };
        net.run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
            .ok();
        net
    }

    /// Every founder past block [`STEADY_HEAD`] within [`STEADY_WAIT`]; else their heads.
    fn wait_steady(&self) -> Result<(), String> {
        let rpcs: Vec<(&str, RpcClient)> = FOUNDERS.iter().map(|n| (*n, self.rpc(n))).collect();
        let deadline = Instant::now() + STEADY_WAIT;
        loop {
            let heads: Vec<(&str, u64)> = rpcs
                .iter()
                .map(|(n, r)| (*n, r.block_number().unwrap_or(0)))
                .collect();
            if heads.iter().all(|(_, h)| *h >= STEADY_HEAD) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "heads after {STEADY_WAIT:?}: {}",
                    heads
                        .iter()
                        .map(|(n, h)| format!("{n} #{h}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn dir(&self) -> &Path {
        self.handle.base.parent().unwrap()
    }

    fn sd(&self) -> StateDir {
        self.handle.state_dir()
    }

    fn command(&self, args: &[&str]) -> (Command, PathBuf, PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let out = self.dir().join(format!("run-{n}.out"));
        let err = self.dir().join(format!("run-{n}.err"));
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir())
            .env_remove("CONSORT_STATE_DIR")
            .env("CONSORT_GETH", &geth().path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        (c, out, err)
    }

    /// Starts `consort args…` without waiting.
    fn spawn(&self, args: &[&str]) -> (ChildGuard, PathBuf, PathBuf) {
        let (mut c, out, err) = self.command(args);
        (ChildGuard(c.spawn().expect("consort starts")), out, err)
    }

    /// Runs `consort args…` to completion (failing the test past [`CMD_DEADLINE`]).
    fn run(&self, args: &[&str]) -> Run {
        let (mut child, out, err) = self.spawn(args);
        let deadline = Instant::now() + CMD_DEADLINE;
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                drop(child);
                panic!(
                    "`consort {}` still running after {CMD_DEADLINE:?}:\n--- stdout\n{}\n--- stderr\n{}",
                    args.join(" "),
                    std::fs::read_to_string(&out).unwrap_or_default(),
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Run {
            args: args.join(" "),
            status,
            out: std::fs::read_to_string(&out).unwrap(),
            err: std::fs::read_to_string(&err).unwrap(),
        }
    }

    fn state(&self) -> State {
        self.sd().load().unwrap().expect("the network has state")
    }

    fn node(&self, node: &str) -> NodeOutputs {
        NodeOutputs::from_state(&self.state(), node)
            .unwrap_or_else(|| panic!("node.{node} is not in state"))
    }

    fn rpc(&self, node: &str) -> RpcClient {
        // consort's own control channel: the node's IPC socket.
        self.node(node)
            .control()
            .with_timeout(Duration::from_secs(5))
    }

    /// `outputs.address` of a key or account resource.
    fn address(&self, resource: &str) -> Address {
        let st = self.state();
        let a = st
            .output_str(resource, "address")
            .unwrap_or_else(|| panic!("{resource} has no address in state"));
        rpc::parse_address(a).unwrap()
    }

    fn enode_id(&self, node: &str) -> String {
        self.state()
            .output_str(&format!("key.node.{node}"), "enode_id")
            .unwrap_or_else(|| panic!("key.node.{node} has no enode id in state"))
            .to_string()
    }

    fn head(&self, node: &str) -> u64 {
        self.rpc(node).block_number().unwrap()
    }

    /// Waits until `node`'s head is at least `n`; returns it.
    fn wait_head(&self, node: &str, n: u64) -> u64 {
        let rpc = self.rpc(node);
        poll(&format!("{node} to reach block {n}"), WAIT, || {
            let h = rpc.block_number().map_err(|e| e.to_string())?;
            Ok((h >= n).then_some(h))
        })
    }

    /// Nodes recorded in state.
    fn node_names(&self) -> BTreeSet<String> {
        self.state()
            .resources
            .keys()
            .filter_map(|k| k.strip_prefix("node."))
            .map(String::from)
            .collect()
    }

    fn balance(&self, node: &str, who: &Address) -> u128 {
        self.rpc(node)
            .eth_get_balance(who, BlockId::Latest)
            .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Best effort; the NetworkHandle then stops anything state or pid files still name.
        if let Ok(mut c) = self.command(&["destroy", "--yes"]).0.spawn() {
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The address that sealed `hash` (`clique_getSigner`).
fn sealer(rpc: &RpcClient, hash: &str) -> Address {
    let a: String = rpc
        .call("clique_getSigner", json!([hash]))
        .unwrap_or_else(|e| panic!("clique_getSigner({hash}): {e}"));
    rpc::parse_address(&a).unwrap()
}

/// Fails unless every gap between consecutive block timestamps in `from..=to` (as `rpc`
/// sees the chain) is at most [`MAX_GAP`]; returns the largest gap.
fn assert_no_stall(rpc: &RpcClient, from: u64, to: u64, during: &str) -> u64 {
    let from = from.max(1); // the genesis timestamp is when the file was written
    assert!(
        to > from,
        "{during}: the chain did not advance ({from} → {to})"
    );
    let mut prev: Option<(u64, u64)> = None;
    let mut worst = (0, 0);
    for n in from..=to {
        let b = rpc
            .block_by_number(BlockId::Number(n))
            .unwrap()
            .unwrap_or_else(|| panic!("block {n} missing"));
        if let Some((_, t)) = prev {
            let gap = b.timestamp.saturating_sub(t);
            if gap > worst.0 {
                worst = (gap, n);
            }
        }
        prev = Some((n, b.timestamp));
    }
    eprintln!(
        "[membership] {during}: blocks {from}..={to}, largest gap {}s (before block {})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= MAX_GAP,
        "{during}: the chain stalled: {}s between blocks {} and {} (limit 3 × period = {MAX_GAP}s)",
        worst.0,
        worst.1 - 1,
        worst.1
    );
    worst.0
}

/// The process is gone: no /proc entry, a recycled pid, or a zombie not yet reaped.
fn process_gone(id: ProcessId) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)) else {
        return true;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: field 3 (state) is first, field 22 (start time) is 20th.
    let state = fields.first().copied().unwrap_or("");
    let start: Option<u64> = fields.get(19).and_then(|s| s.parse().ok());
    state == "Z" || start != Some(id.start_time)
}

fn peer_ids(rpc: &RpcClient) -> BTreeSet<String> {
    rpc.admin_peers()
        .unwrap()
        .iter()
        .filter_map(|p| p.pubkey().map(String::from))
        .collect()
}

fn signers(rpc: &RpcClient) -> BTreeSet<Address> {
    rpc.clique_get_signers().unwrap().into_iter().collect()
}

/// Checks, after `delta` was added one way or another: the new validator is a signer on
/// every node, seals a block, the tx node catches up and is peered with everyone (and
/// everyone with it, live and in config.toml), the account holds exactly 7 ether.
fn assert_delta_joined(net: &Net, head_before: u64) {
    let st = net.state();
    let new_signer = net.address("key.signer.delta-validator-0");
    let founders: BTreeSet<Address> = FOUNDERS
        .iter()
        .map(|n| net.address(&format!("key.signer.{n}")))
        .collect();
    let mut want = founders.clone();
    want.insert(new_signer);
    let all: Vec<&str> = FOUNDERS.iter().chain(DELTA_NODES.iter()).copied().collect();
    assert_eq!(
        net.node_names(),
        all.iter().map(|s| s.to_string()).collect(),
        "nodes in state"
    );
    assert_eq!(
        st.resources["signer.delta-validator-0"].outputs["via"],
        "vote"
    );
    // Right after apply reports healthy: every node agrees on the new signer set.
    for n in &all {
        assert_eq!(signers(&net.rpc(n)), want, "clique_getSigners on {n}");
    }
    // No proposal about it is left behind (the proposers discarded theirs).
    for n in FOUNDERS {
        let props = net.rpc(n).clique_proposals().unwrap();
        assert!(
            props.iter().all(|p| p.address != new_signer),
            "{n} still proposes {new_signer}: {props:?}"
        );
    }

    // It seals: a block after the change whose Clique signer is the newcomer.
    let founder = net.rpc(FOUNDERS[0]);
    let sealed = poll("a block sealed by delta-validator-0", WAIT, || {
        let head = founder.block_number().map_err(|e| e.to_string())?;
        for n in (head_before + 1)..=head {
            let b = founder
                .block_by_number(BlockId::Number(n))
                .map_err(|e| e.to_string())?
                .ok_or("block missing")?;
            if sealer(&founder, &b.hash) == new_signer {
                return Ok(Some(n));
            }
        }
        Ok(None)
    });
    eprintln!("[membership] delta-validator-0 sealed block {sealed}");

    // The tx node catches up with the chain and is peered both ways.
    let target = founder.block_number().unwrap();
    net.wait_head("delta-tx-0", target);
    let ids: BTreeMap<&str, String> = all.iter().map(|n| (*n, net.enode_id(n))).collect();
    for n in &all {
        let rpc = net.rpc(n);
        let others: BTreeSet<String> = ids
            .iter()
            .filter(|(m, _)| *m != n)
            .map(|(_, id)| id.clone())
            .collect();
        poll(&format!("{n} peered with every other node"), WAIT, || {
            let have = rpc.admin_peers().map_err(|e| e.to_string())?;
            let have: BTreeSet<String> = have
                .iter()
                .filter_map(|p| p.pubkey().map(String::from))
                .collect();
            Ok(others.is_subset(&have).then_some(()))
        });
    }
    // Founders keep the newcomers across a restart: their config.toml lists them.
    for n in FOUNDERS {
        let config =
            std::fs::read_to_string(Path::new(&net.node(n).datadir).join("config.toml")).unwrap();
        for d in DELTA_NODES {
            let enode = net.node(d).enode;
            assert!(
                config.contains(&enode),
                "{n}/config.toml lacks {d} ({enode}):\n{config}"
            );
        }
    }

    // The account added after genesis holds exactly what the topology says.
    let ops = net.address("account.delta.ops");
    assert_eq!(
        net.balance("delta-tx-0", &ops),
        7 * ETHER,
        "delta/ops balance"
    );
    assert_eq!(
        net.balance(FOUNDERS[0], &ops),
        7 * ETHER,
        "delta/ops balance"
    );
    assert!(st.resources.contains_key("fund.delta.ops"));
}

/// Resources in state without their outputs (keys, ports, pids differ between networks).
fn shape(st: &State) -> BTreeMap<String, (String, serde_json::Value, Vec<String>)> {
    st.resources
        .iter()
        .map(|(a, r)| {
            (
                a.clone(),
                (format!("{:?}", r.kind), r.attrs.clone(), r.deps.clone()),
            )
        })
        .collect()
}

#[test]
fn member_add_makes_a_sealing_signer_a_synced_tx_node_and_a_funded_account() {
    let net = Net::start("addnet", 717_401);
    let before = std::fs::read_to_string(&net.file).unwrap();
    let head_before = net.head(FOUNDERS[0]);

    let mut args = DELTA_ADD.to_vec();
    args.extend(["--yes", "--timeout", APPLY_TIMEOUT]);
    let r = net.run(&args).ok();
    // The plan spelled out the governance steps before doing them.
    for line in [
        "~ node.contoso-validator-0",
        "peer add delta-tx-0, delta-validator-0",
        "+ signer.delta-validator-0",
        "vote in signer of delta by a majority of contoso-validator-0, fabrikam-validator-0, northwind-validator-0",
        "+ fund.delta.ops",
        "transfer 7 ether to delta/ops from contoso/treasury",
        "Plan: 8 to add, 3 to change, 0 to destroy.",
    ] {
        assert!(r.out.contains(line), "plan lacks {line:?}:\n{}", r.out);
    }

    // The file gained exactly the member block; every other byte is as it was.
    let after = std::fs::read_to_string(&net.file).unwrap();
    let expected = before.replacen(
        LAST_MEMBER_END,
        &format!("{LAST_MEMBER_END}{DELTA_BLOCK}"),
        1,
    );
    assert_ne!(expected, before);
    assert_eq!(after, expected, "topology after member add");

    assert_delta_joined(&net, head_before);
    let head_after = net.wait_head(FOUNDERS[0], net.head(FOUNDERS[0]) + 1);
    assert_no_stall(&net.rpc(FOUNDERS[0]), head_before, head_after, "member add");

    // Converged: nothing left to do.
    let r = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        r.describe("planned changes")
    );
}

#[test]
fn member_remove_votes_out_stops_deletes_and_unpeers_a_founder() {
    let net = Net::start("rmnet", 717_402);
    let gone = "fabrikam-validator-0";
    let stay = ["contoso-validator-0", "northwind-validator-0"];
    let before = std::fs::read_to_string(&net.file).unwrap();
    let out = net.node(gone);
    let signer = net.address(&format!("key.signer.{gone}"));
    let enode_id = net.enode_id(gone);
    let sd = net.sd();
    let dirs = [
        PathBuf::from(&out.datadir),
        sd.keys_dir().join("nodes").join(gone),
        sd.keys_dir().join("signers").join(gone),
    ];
    for d in &dirs {
        assert!(d.is_dir(), "{} exists before the removal", d.display());
    }
    assert!(!process_gone(out.process()));
    let head_before = net.head(stay[0]);
    let vote_out = format!(
        "vote out {} (signer of fabrikam) by a majority of \
         contoso-validator-0, fabrikam-validator-0, northwind-validator-0",
        net.state()
            .output_str(&format!("key.signer.{gone}"), "address")
            .unwrap()
    );

    let r = net
        .run(&[
            "member",
            "remove",
            "fabrikam",
            "--yes",
            "--timeout",
            APPLY_TIMEOUT,
        ])
        .ok();
    let line = r
        .out
        .lines()
        .find(|l| l.trim_start().starts_with("- signer.fabrikam-validator-0 "))
        .unwrap_or_else(|| panic!("no vote-out in the plan:\n{}", r.out));
    assert!(line.ends_with(&vote_out), "{line:?} is not {vote_out:?}");
    assert!(
        r.out.contains("peer remove fabrikam-validator-0"),
        "{}",
        r.out
    );
    // Two signers left: said out loud.
    assert!(
        r.err
            .contains("2 validators: if either one is down, the chain halts"),
        "{}",
        r.err
    );

    // The file lost exactly the member block.
    let after = std::fs::read_to_string(&net.file).unwrap();
    assert_eq!(after, before.replacen(FABRIKAM_BLOCK, "", 1));

    // Its signer is gone, on every remaining node.
    let want: BTreeSet<Address> = stay
        .iter()
        .map(|n| net.address(&format!("key.signer.{n}")))
        .collect();
    assert!(!want.contains(&signer));
    for n in stay {
        assert_eq!(signers(&net.rpc(n)), want, "clique_getSigners on {n}");
    }
    // Its process and its files are gone; state forgot it.
    assert!(process_gone(out.process()), "pid {} still running", out.pid);
    for d in &dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    let st = net.state();
    let left: Vec<&String> = st
        .resources
        .keys()
        .filter(|k| k.contains("fabrikam"))
        .collect();
    assert!(left.is_empty(), "state still has {left:?}");
    // Nobody lists it as a peer, live or in config.toml.
    for n in stay {
        let peers = peer_ids(&net.rpc(n));
        assert!(!peers.contains(&enode_id), "{n} still peers with {gone}");
        let config =
            std::fs::read_to_string(Path::new(&net.node(n).datadir).join("config.toml")).unwrap();
        assert!(
            !config.contains(&enode_id),
            "{n}/config.toml still lists {gone}:\n{config}"
        );
    }
    // The two remaining signers keep sealing, and did throughout.
    let h = net.head(stay[0]);
    let head_after = net.wait_head(stay[0], h + 2);
    let rpc = net.rpc(stay[0]);
    assert_no_stall(&rpc, head_before, head_after, "member remove");
    let last = rpc
        .block_by_number(BlockId::Number(head_after))
        .unwrap()
        .unwrap();
    assert!(want.contains(&sealer(&rpc, &last.hash)));
}

#[test]
fn hand_edited_topology_gives_the_same_result_as_member_add() {
    // Two networks side by side, identical but for their ports: one grows with
    // `member add`, the other by appending the same block by hand and `apply`.
    let (by_command, by_hand) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let net = Net::start("twin", 717_403);
            let h = net.head(FOUNDERS[0]);
            let mut args = DELTA_ADD.to_vec();
            args.extend(["--yes", "--timeout", APPLY_TIMEOUT]);
            net.run(&args).ok();
            (net, h)
        });
        let b = s.spawn(|| {
            let net = Net::start("twin", 717_403);
            let h = net.head(FOUNDERS[0]);
            let src = std::fs::read_to_string(&net.file).unwrap();
            let edited = src.replacen(
                LAST_MEMBER_END,
                &format!("{LAST_MEMBER_END}{DELTA_BLOCK}"),
                1,
            );
            std::fs::write(&net.file, edited).unwrap();
            let r = net
                .run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
                .ok();
            assert!(r.out.contains("+ signer.delta-validator-0"), "{}", r.out);
            (net, h)
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let ((a, _), (b, b_head)) = (by_command, by_hand);
    // Same files but for the port line …
    let strip_ports = |t: String| -> String {
        t.lines()
            .filter(|l| !l.contains("base_port"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_ports(std::fs::read_to_string(&a.file).unwrap()),
        strip_ports(std::fs::read_to_string(&b.file).unwrap())
    );
    // … the same resources with the same attributes and dependencies …
    let (sa, sb) = (a.state(), b.state());
    assert_eq!(
        shape(&sa),
        shape(&sb),
        "state after member add vs hand edit + apply"
    );
    for st in [&sa, &sb] {
        assert_eq!(
            st.resources["signer.delta-validator-0"].outputs["via"],
            "vote"
        );
    }
    // … and the hand-edited network really has the newcomer signing, synced and funded.
    assert_delta_joined(&b, b_head);
}

#[test]
fn an_add_killed_mid_change_resumes_with_apply_and_funds_once() {
    let net = Net::start("resumenet", 717_404);
    let head_before = net.head(FOUNDERS[0]);
    let founder = net.rpc(FOUNDERS[0]);
    let funder = net.address("account.contoso.treasury");
    let nonce_before = founder.eth_get_pending_nonce(&funder).unwrap();

    let mut args = DELTA_ADD.to_vec();
    args.extend(["--yes", "--timeout", APPLY_TIMEOUT]);
    let (mut child, out, err) = net.spawn(&args);
    // Wait for the worst moment: the new validator runs, its vote is under way and the
    // funding transfer has been sent (it is in the pool) but nothing of that is recorded.
    let sd = net.sd();
    let at_kill = poll(
        "member add to start delta-validator-0 and send the funding transfer",
        WAIT,
        || {
            if let Some(s) = child.0.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "consort exited ({s}) before it could be interrupted:\n{}\n{}",
                    std::fs::read_to_string(&out).unwrap_or_default(),
                    std::fs::read_to_string(&err).unwrap_or_default()
                ));
            }
            let Some(st) = sd.load().map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            if !st.resources.contains_key("node.delta-validator-0") {
                return Ok(None);
            }
            let nonce = founder
                .eth_get_pending_nonce(&funder)
                .map_err(|e| e.to_string())?;
            Ok((nonce > nonce_before).then_some(st))
        },
    );
    child.0.kill().unwrap(); // SIGKILL: no chance to record anything more
    child.0.wait().unwrap();
    let st = net.state();
    eprintln!(
        "[membership] killed member add with {} resources recorded (signer {} , funding {})",
        at_kill.resources.len(),
        st.resources.contains_key("signer.delta-validator-0"),
        st.resources.contains_key("fund.delta.ops"),
    );
    assert!(
        !st.resources.contains_key("signer.delta-validator-0"),
        "the vote completed before the kill: this test must interrupt it"
    );
    assert!(!st.resources.contains_key("fund.delta.ops"));

    // Again, as a user would: apply converges on what the file says.
    let r = net
        .run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
        .ok();
    assert!(r.out.contains("+ signer.delta-validator-0"), "{}", r.out);
    // Sent before the kill: by now it may be mined (only recorded: `=`) or still pending.
    assert!(
        r.out.contains("+ fund.delta.ops") || r.out.contains("= fund.delta.ops"),
        "{}",
        r.out
    );

    assert_delta_joined(&net, head_before);
    // Funded once: the treasury sent exactly one transfer.
    assert_eq!(
        founder
            .eth_get_transaction_count(&funder, BlockId::Latest)
            .unwrap(),
        nonce_before + 1,
        "transfers sent by the funding account"
    );
    let head_after = net.wait_head(FOUNDERS[0], net.head(FOUNDERS[0]) + 1);
    assert_no_stall(
        &founder,
        head_before,
        head_after,
        "interrupted member add + apply",
    );

    // ---- The transfer mined but not in state (issue 21: plan said `+ fund` for it).
    let ops = net.address("account.delta.ops");
    let ops_balance = founder.eth_get_balance(&ops, BlockId::Latest).unwrap();
    assert_eq!(
        ops_balance,
        7 * 10u128.pow(18),
        "delta/ops funded with 7 ether"
    );
    let sd = net.sd();
    let mut st = net.state();
    assert!(st.resources.remove("fund.delta.ops").is_some());
    sd.save(&mut st).unwrap();
    let (code, plan) = plan_exit(&net);
    assert_eq!(code, 0, "the mined transfer counted as a change:\n{plan}");
    assert!(!plan.contains("+ fund"), "{plan}");
    assert!(
        plan.contains("= fund.delta.ops"),
        "not shown as recorded only: {plan}"
    );
    assert!(plan.contains("already on the chain"), "{plan}");
    let r = net
        .run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
        .ok();
    assert!(!r.out.contains("+ fund"), "{}", r.out);
    assert!(
        net.state().resources.contains_key("fund.delta.ops"),
        "apply did not record the mined transfer"
    );
    assert_eq!(
        founder
            .eth_get_transaction_count(&funder, BlockId::Latest)
            .unwrap(),
        nonce_before + 1,
        "apply sent the funding again"
    );
    assert_eq!(
        founder.eth_get_balance(&ops, BlockId::Latest).unwrap(),
        ops_balance,
        "delta/ops paid twice"
    );
    let (code, plan) = plan_exit(&net);
    assert_eq!(code, 0, "{plan}");
    assert!(
        !plan.contains("fund.delta.ops"),
        "recorded, yet still shown: {plan}"
    );
}

#[test]
fn a_removal_that_breaks_liveness_is_refused_and_changes_nothing() {
    let net = Net::start("livenet", 717_405);
    // One validator of three dies.
    let dead = net.node("northwind-validator-0");
    assert!(process::is_ours(dead.process(), Path::new(&dead.datadir)));
    // SAFETY: signalling a pid /proc just proved is that geth.
    assert_eq!(unsafe { libc::kill(dead.pid as i32, libc::SIGKILL) }, 0);
    poll("northwind-validator-0 to die", WAIT, || {
        Ok(process_gone(dead.process()).then_some(()))
    });
    let before = std::fs::read_to_string(&net.file).unwrap();
    let state_before = net.state();

    let r = net.run(&[
        "member",
        "remove",
        "fabrikam",
        "--yes",
        "--timeout",
        APPLY_TIMEOUT,
    ]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        r.describe("was not refused")
    );
    for part in [
        "removing fabrikam-validator-0 would leave 2 signer(s), of which only 1 running",
        "northwind-validator-0",
        "Clique needs 2 of 2 to seal",
        "Bring the stopped nodes back first",
        "consort.yaml is unchanged.",
    ] {
        assert!(r.err.contains(part), "refusal lacks {part:?}:\n{}", r.err);
    }
    // Refused means untouched: the file, state and the member's node.
    assert_eq!(
        std::fs::read_to_string(&net.file).unwrap(),
        before,
        "the topology file changed although the removal was refused"
    );
    assert_eq!(net.state(), state_before);
    let fab = net.node("fabrikam-validator-0");
    assert!(!process_gone(fab.process()));
    let rpc = net.rpc("contoso-validator-0");
    assert!(signers(&rpc).contains(&net.address("key.signer.fabrikam-validator-0")));
}

#[test]
fn a_removal_allowed_with_a_signer_down_completes_without_stalling() {
    // Four signers (the founders + delta), northwind dies, fabrikam leaves: 3 of the 4
    // current signers (fabrikam voting itself out) can vote, and 2 of the 3 remaining run.
    let net = Net::start("downnet", 717_406);
    let mut args = vec!["member", "add", "delta", "--validators", "1"];
    args.extend(["--yes", "--timeout", APPLY_TIMEOUT]);
    net.run(&args).ok();
    let h = net.head(FOUNDERS[0]);
    net.wait_head(FOUNDERS[0], h + 2);
    let dead = net.node("northwind-validator-0");
    assert!(process::is_ours(dead.process(), Path::new(&dead.datadir)));
    // SAFETY: signalling a pid /proc just proved is that geth.
    assert_eq!(unsafe { libc::kill(dead.pid as i32, libc::SIGKILL) }, 0);
    poll("northwind-validator-0 to die", WAIT, || {
        Ok(process_gone(dead.process()).then_some(()))
    });
    let gone = net.node("fabrikam-validator-0");
    let gone_id = net.enode_id("fabrikam-validator-0");
    let head_before = net.head(FOUNDERS[0]);

    let r = net
        .run(&[
            "member",
            "remove",
            "fabrikam",
            "--yes",
            "--timeout",
            APPLY_TIMEOUT,
        ])
        .ok();
    // The dead node is restarted by the same apply, and every peer list drops fabrikam
    // only after it was voted out and stopped (the executor's order, as printed).
    assert!(r.out.contains("~ node.northwind-validator-0"), "{}", r.out);
    let at = |needle: &str| {
        r.out
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{}", r.out))
    };
    let voted_out = at("  - signer.fabrikam-validator-0 (");
    let stopped = at("  - node.fabrikam-validator-0 (");
    assert!(voted_out < stopped, "{}", r.out);
    for n in [
        "contoso-validator-0",
        "delta-validator-0",
        "northwind-validator-0",
    ] {
        assert!(stopped < at(&format!("  ~ node.{n} (")), "{n}:\n{}", r.out);
    }

    let want: BTreeSet<Address> = [
        "contoso-validator-0",
        "northwind-validator-0",
        "delta-validator-0",
    ]
    .iter()
    .map(|n| net.address(&format!("key.signer.{n}")))
    .collect();
    for n in [
        "contoso-validator-0",
        "northwind-validator-0",
        "delta-validator-0",
    ] {
        assert_eq!(signers(&net.rpc(n)), want, "clique_getSigners on {n}");
        assert!(
            !peer_ids(&net.rpc(n)).contains(&gone_id),
            "{n} still peers with fabrikam"
        );
    }
    assert!(process_gone(gone.process()));
    let rpc = net.rpc(FOUNDERS[0]);
    let head_after = net.wait_head(FOUNDERS[0], net.head(FOUNDERS[0]) + 2);
    assert_no_stall(
        &rpc,
        head_before,
        head_after,
        "member remove with a signer down",
    );
}

// ---- Issue 8: convergence to the live chain ----

/// Pending Clique proposals on the founders, by node.
fn pending(net: &Net) -> BTreeMap<String, Vec<rpc::CliqueProposal>> {
    FOUNDERS
        .iter()
        .map(|n| (n.to_string(), net.rpc(n).clique_proposals().unwrap()))
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// `plan --detailed-exitcode`: 0 = the live network matches the topology and is healthy.
fn plan_exit(net: &Net) -> (i32, String) {
    let r = net.run(&["plan", "--detailed-exitcode"]);
    (r.status.code().unwrap_or(-1), r.describe("planned"))
}

/// Waits 3 blocks (long enough for any proposal left behind to take effect), asserts no
/// proposal is pending and `plan --detailed-exitcode` is 0; returns the live signers.
fn settled(net: &Net) -> BTreeSet<Address> {
    let settle = net.head(FOUNDERS[0]) + 3;
    net.wait_head(FOUNDERS[0], settle);
    assert!(
        pending(net).is_empty(),
        "proposals left: {:?}",
        pending(net)
    );
    let (code, text) = plan_exit(net);
    assert_eq!(code, 0, "{text}");
    signers(&net.rpc(FOUNDERS[0]))
}

/// Starts `args` and SIGKILLs it right after it printed a line containing all of `needles`
/// (before it can record the change in progress).
fn kill_after_line(net: &Net, args: &[&str], needles: &[&str]) {
    let (mut child, out, err) = net.spawn(args);
    poll(
        &format!("`{}` to print {needles:?}", args.join(" ")),
        WAIT,
        || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
                return Ok(Some(()));
            }
            if let Some(s) = child.0.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "consort exited ({s}) before it could be interrupted:\n{text}\n{}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                ));
            }
            Ok(None)
        },
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

/// The reproduction: `member add delta --validators 2` killed right after its first
/// vote went out, then `member remove delta`. The proposals left on the founders must not
/// vote delta in after its keys are gone: plan and apply read the live chain.
#[test]
fn stray_proposals_of_a_killed_add_are_discarded_and_voted_back() {
    let net = Net::start("straynet", 717_406);
    let add = [
        "member",
        "add",
        "delta",
        "--validators",
        "2",
        "--yes",
        "--timeout",
        APPLY_TIMEOUT,
    ];
    kill_after_line(&net, &add, &["vote in", "proposed"]);
    assert!(!net
        .state()
        .resources
        .contains_key("signer.delta-validator-0"));

    // Plan sees the chain: the stray proposals (and delta's signer if it got in meanwhile).
    let plan = net.run(&["plan"]).ok();
    assert!(plan.out.contains("~ clique"), "{}", plan.out);
    assert!(
        plan.out.contains("discard stray proposals") || plan.out.contains("vote out"),
        "{}",
        plan.out
    );

    let r = net
        .run(&[
            "member",
            "remove",
            "delta",
            "--yes",
            "--timeout",
            APPLY_TIMEOUT,
        ])
        .ok();
    assert!(r.out.contains("is healthy"), "{}", r.out);
    let founders: BTreeSet<Address> = FOUNDERS
        .iter()
        .map(|n| net.address(&format!("key.signer.{n}")))
        .collect();
    assert_eq!(settled(&net), founders, "live signers");
}

/// Interrupted membership changes resume: the same `member add` finishes the addition,
/// the same `member remove` finishes the removal, and neither leaves a proposal behind.
#[test]
fn interrupted_member_add_and_remove_resume_when_run_again() {
    let net = Net::start("againnet", 717_407);
    let add = [
        "member",
        "add",
        "delta",
        "--validators",
        "1",
        "--yes",
        "--timeout",
        APPLY_TIMEOUT,
    ];
    kill_after_line(&net, &add, &["vote in", "proposed"]);
    let r = net.run(&add).ok();
    assert!(
        r.out.contains("finishing its addition"),
        "{}",
        r.describe("ran")
    );
    assert!(r.out.contains("is healthy"), "{}", r.out);
    let delta = net.address("key.signer.delta-validator-0");
    assert!(signers(&net.rpc(FOUNDERS[0])).contains(&delta));
    assert_eq!(signers(&net.rpc(FOUNDERS[0])).len(), 4);

    let remove = [
        "member",
        "remove",
        "delta",
        "--yes",
        "--timeout",
        APPLY_TIMEOUT,
    ];
    kill_after_line(&net, &remove, &["vote out", "proposed"]);
    let r = net.run(&remove).ok();
    assert!(
        r.out.contains("finishing its removal"),
        "{}",
        r.describe("ran")
    );
    let live = settled(&net);
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(!live.contains(&delta));
}

/// A chain with too few signers says so plainly; a stopped (SIGSTOP) node is restarted;
/// a stranger voted in behind consort's back is voted out; every successful apply leaves
/// `plan --detailed-exitcode` at 0.
#[test]
fn halted_stopped_and_stranger_signers_are_reported_and_repaired() {
    let net = Net::start("repairnet", 717_408);
    // 2 of 3 signers down: the chain halts.
    for n in &FOUNDERS[1..] {
        let o = net.node(n);
        unsafe { libc::kill(o.pid as i32, libc::SIGKILL) };
        poll(&format!("{n} to die"), WAIT, || {
            Ok(process_gone(o.process()).then_some(()))
        });
    }
    let st = net.run(&["status"]);
    assert_eq!(st.status.code(), Some(1), "{}", st.describe("ran"));
    assert!(
        st.out
            .contains("chain halted: 1 of 3 signers online, Clique needs 2"),
        "{}",
        st.out
    );
    let js: serde_json::Value = serde_json::from_str(&net.run(&["status", "--json"]).out).unwrap();
    assert_eq!(
        js["chain_halted"],
        json!({"online": 1, "signers": 3, "needed": 2})
    );
    assert_eq!(plan_exit(&net).0, 2);
    net.run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
        .ok();
    let (code, text) = plan_exit(&net);
    assert_eq!(code, 0, "{text}");

    // A validator stopped with SIGSTOP: alive but silent. Plan restarts it.
    let victim = net.node(FOUNDERS[2]);
    unsafe { libc::kill(victim.pid as i32, libc::SIGSTOP) };
    let plan = net.run(&["plan"]).ok();
    assert!(
        plan.out.contains(&format!("~ node.{}", FOUNDERS[2])) && plan.out.contains("not answering"),
        "{}",
        plan.out
    );
    net.run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
        .ok();
    assert_ne!(net.node(FOUNDERS[2]).pid, victim.pid, "restarted");
    let (code, text) = plan_exit(&net);
    assert_eq!(code, 0, "{text}");

    // Two founders propose a stranger: with 3 signers that is a majority, so it gets in.
    let stranger = consort::crypto::SecretKey::random().address();
    for n in &FOUNDERS[..2] {
        net.rpc(n).clique_propose(&stranger, true).unwrap();
    }
    poll("the stranger to be voted in", WAIT, || {
        Ok(signers(&net.rpc(FOUNDERS[0]))
            .contains(&stranger)
            .then_some(()))
    });
    let st = net.run(&["status"]);
    assert_eq!(st.status.code(), Some(1), "{}", st.describe("ran"));
    let plan = net.run(&["plan"]).ok();
    assert!(
        plan.out.contains("~ clique")
            && plan
                .out
                .contains(&format!("vote out {}", stranger.to_checksum())),
        "{}",
        plan.out
    );
    net.run(&["apply", "--yes", "--timeout", APPLY_TIMEOUT])
        .ok();
    let live = signers(&net.rpc(FOUNDERS[0]));
    assert!(!live.contains(&stranger) && live.len() == 3, "{live:?}");
    assert!(
        pending(&net).is_empty(),
        "proposals left: {:?}",
        pending(&net)
    );
    let (code, text) = plan_exit(&net);
    assert_eq!(code, 0, "{text}");
}
