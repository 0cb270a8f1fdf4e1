//! A consortium of separate operators on one machine (issue 14): founder A (state dir of
//! its own, three members, 127.0.0.1), joiner B (127.0.0.2) and later C (127.0.0.3), each
//! with its own directory, keys and geth processes, exchanging only `invite.json` and
//! `join-request.json`. Real `consort` binary, real geth 1.13.15.

use crate::support::*;
use consort::crypto::tx::LegacyTx;
use consort::crypto::{keystore, Address, SecretKey};
use consort::provider::local::{process, NodeOutputs};
use consort::rpc::{self, BlockId, RpcClient};
use consort::state::{State, StateDir};
use consort::topology::Wei;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NETWORK: &str = "federation";
const PERIOD: u64 = 2;
/// Longest gap between two blocks that still counts as "never stalls".
const MAX_GAP: u64 = 3 * PERIOD;
const WAIT: Duration = Duration::from_secs(120);

/// One operator: its own directory (topology + `.consort/`), its own geth processes.
struct Operator {
    net: NetworkHandle,
}

impl Operator {
    fn new() -> Operator {
        Operator {
            net: NetworkHandle::new(NETWORK),
        }
    }
    fn dir(&self) -> &Path {
        self.net.dir.path()
    }
    fn file(&self) -> PathBuf {
        self.dir().join("consort.yaml")
    }
    fn sd(&self) -> StateDir {
        self.net.state_dir()
    }
    fn state(&self) -> State {
        self.sd().load().unwrap().expect("state")
    }
    fn ok(&self, args: &[&str]) -> String {
        consort_ok(self.dir(), args)
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        consort(self.dir(), args)
    }
    /// This operator's plan sees the network as its topology says: nothing to change.
    fn assert_plan_empty(&self) {
        let out = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    fn rpc(&self, node: &str) -> RpcClient {
        NodeOutputs::from_state(&self.state(), node)
            .unwrap_or_else(|| panic!("{node} not in state"))
            .control()
            .with_timeout(Duration::from_secs(5))
    }
    fn address(&self, resource: &str) -> Address {
        rpc::parse_address(self.state().output_str(resource, "address").unwrap()).unwrap()
    }
    /// The topology file and the state's serial: what a refused command must not change.
    fn fingerprint(&self) -> (String, u64) {
        (
            std::fs::read_to_string(self.file()).unwrap(),
            self.state().serial,
        )
    }
}

/// A port range per operator, apart from the ranges of the other tests (support's
/// `port_base`, membership's, `node_ports`): a port clash between tests moves a node, which
/// the tests around it do not expect.
fn operator_ports() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    60000 + (std::process::id() % 25) as u16 * 200 + NEXT.fetch_add(50, Ordering::SeqCst)
}

fn founder_topology(base_port: u16) -> String {
    format!(
        "network:
  name: {NETWORK}
  chain_id: 41414
  consensus:
    clique: {{ period: {PERIOD} }}
members:
  - name: alpha
    validators: 1
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 1000 ether
  - name: beta
    validators: 1
  - name: gamma
    tx_nodes: 1
provider:
  local: {{ base_port: {base_port} }}
"
    )
}

fn signers(rpc: &RpcClient) -> BTreeSet<Address> {
    rpc.clique_get_signers().unwrap().into_iter().collect()
}

fn sealer(rpc: &RpcClient, n: u64) -> Address {
    let b = rpc.block_by_number(BlockId::Number(n)).unwrap().unwrap();
    let a: String = rpc.call("clique_getSigner", json!([b.hash])).unwrap();
    rpc::parse_address(&a).unwrap()
}

fn wait_signers(what: &str, rpc: &RpcClient, want: &BTreeSet<Address>) {
    poll(what, WAIT, || Ok((&signers(rpc) == want).then_some(())));
}

/// Every gap between consecutive blocks `from..=to` is at most [`MAX_GAP`].
fn assert_no_stall(rpc: &RpcClient, from: u64, to: u64) {
    let mut prev = None;
    for n in from.max(1)..=to {
        let t = rpc
            .block_by_number(BlockId::Number(n))
            .unwrap()
            .unwrap()
            .timestamp;
        if let Some(p) = prev {
            let gap: u64 = t - p;
            assert!(
                gap <= MAX_GAP,
                "the chain stalled: {gap}s before block {n} (limit {MAX_GAP}s)"
            );
        }
        prev = Some(t);
    }
}

/// Every secret B's (or C's) state holds: its signer and account keys (decrypted from the
/// keystores with their passwords), node keys, and the passwords themselves.
fn secrets_of(op: &Operator) -> Vec<String> {
    let st = op.state();
    let mut out = Vec::new();
    for (addr, r) in &st.resources {
        let o = &r.outputs;
        if let (Some(ks), Some(pw)) = (o["keystore"].as_str(), o["password_file"].as_str()) {
            let pw = std::fs::read_to_string(pw).unwrap();
            let json: Value = serde_json::from_str(&std::fs::read_to_string(ks).unwrap()).unwrap();
            let key = keystore::decrypt(&json, pw.trim_end()).unwrap();
            let address = rpc::parse_address(o["address"].as_str().unwrap()).unwrap();
            assert_eq!(
                key.address(),
                address,
                "{addr}: the keystore decrypts to its address"
            );
            out.push(key.to_hex());
            out.push(pw.trim_end().to_string());
        }
        if let Some(kf) = o["key_file"].as_str() {
            out.push(std::fs::read_to_string(kf).unwrap().trim().to_string());
        }
    }
    assert!(
        out.len() >= 3,
        "found its keys and passwords: {}",
        out.len()
    );
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            files_under(&p, out);
        } else if ft.is_file() {
            out.push(p);
        }
    }
}

/// No secret appears in `files` (hex keys also checked with 0x and upper case).
fn assert_no_secret(secrets: &[String], files: &[PathBuf]) {
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        for s in secrets {
            assert!(
                !text.contains(&s.to_lowercase()),
                "{} contains a secret of another operator",
                f.display()
            );
        }
    }
}

fn account_key(op: &Operator, resource: &str) -> SecretKey {
    let st = op.state();
    let kf = st.output_str(resource, "key_file").unwrap();
    SecretKey::from_hex(std::fs::read_to_string(kf).unwrap().trim()).unwrap()
}

fn modified(path: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    let out = path.with_extension(format!("{}.json", rand_suffix()));
    std::fs::write(&out, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    out
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("edited{}", N.fetch_add(1, Ordering::SeqCst))
}

fn refused(op: &Operator, args: &[&str], needle: &str) {
    let before = op.fingerprint();
    let out = op.run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} must be refused: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in:\n{err}"
    );
    assert_eq!(op.fingerprint(), before, "{args:?} changed something");
}

#[test]
fn three_operators_invite_join_admit_vote_and_remove_without_sharing_keys() {
    let a = Operator::new();
    std::fs::write(a.file(), founder_topology(operator_ports())).unwrap();
    a.ok(&["apply", "--yes"]);
    let shared = tempfile::tempdir().unwrap();
    let invite_b = shared.path().join("invite-b.json");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    a.ok(&[
        "invite",
        "delta",
        "--validators",
        "2",
        "--tx-nodes",
        "1",
        "--account",
        "ops=10ether",
        "-o",
        &s(&invite_b),
    ]);

    // ---- Bad invitations are refused and nothing is written.
    let b = Operator::new();
    let tampered = modified(&invite_b, |v| v["invited"]["validators"] = json!(5));
    let out = b.run(&["join", &s(&tampered), "--address", "127.0.0.2", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("changed after it was signed"), "{err}");
    assert!(
        !b.file().exists() && !b.sd().root.exists(),
        "a refused join wrote nothing"
    );
    let expired_invite = shared.path().join("invite-expired.json");
    a.ok(&[
        "invite",
        "zeta",
        "--valid-hours",
        "0",
        "-o",
        &s(&expired_invite),
    ]);
    let out = b.run(&[
        "join",
        &s(&expired_invite),
        "--address",
        "127.0.0.2",
        "--yes",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expired"), "{err}");
    assert!(!b.file().exists() && !b.sd().root.exists());

    // ---- B joins: its own topology, keys and nodes; a request signed by its keys.
    b.ok(&[
        "join",
        &s(&invite_b),
        "--address",
        "127.0.0.2",
        "--base-port",
        &operator_ports().to_string(),
        "--yes",
    ]);
    let request_b = b.dir().join("join-request.json");
    let req: Value = serde_json::from_str(&std::fs::read_to_string(&request_b).unwrap()).unwrap();
    let enodes = req["member"]["enodes"].as_array().unwrap();
    assert_eq!(enodes.len(), 3);
    assert!(
        enodes
            .iter()
            .all(|e| e.as_str().unwrap().contains("@127.0.0.2:")),
        "{enodes:?}"
    );
    assert_eq!(req["signatures"].as_array().unwrap().len(), 2);
    // The signatures are plain EIP-191 over keccak256 of the canonical request: standard
    // tools check them.
    let parsed: consort::join::JoinRequest = serde_json::from_value(req.clone()).unwrap();
    let digest = hex::encode(consort::crypto::keccak256(&parsed.signed_bytes()));
    for (signer, sig) in parsed.member.signers.iter().zip(&parsed.signatures) {
        let out = std::process::Command::new(npm_tool("cast"))
            .args([
                "wallet",
                "verify",
                "--address",
                signer,
                &format!("0x{digest}"),
                sig,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cast wallet verify {signer}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // ---- Bad requests are refused at admit and change nothing.
    let forged = modified(&request_b, |v| {
        v["member"]["signers"][1] = json!(SecretKey::random().address().to_checksum())
    });
    refused(&a, &["admit", &s(&forged), "--yes"], "was made by");
    let other_net = modified(&request_b, |v| v["network"]["chain_id"] = json!(1337));
    refused(
        &a,
        &["admit", &s(&other_net), "--yes"],
        "admit it on its own network",
    );
    let unknown = modified(&request_b, |v| v["invitation_id"] = json!("00".repeat(16)));
    refused(
        &a,
        &["admit", &s(&unknown), "--yes"],
        "issued no invitation",
    );

    // ---- A admits B: peering, A's votes, B's validators sign and seal.
    let head0 = a.rpc("alpha-tx-0").block_number().unwrap();
    a.ok(&["admit", &s(&request_b), "--yes"]);
    refused(&a, &["admit", &s(&request_b), "--yes"], "already");
    let a_signers: BTreeSet<Address> = ["alpha-validator-0", "beta-validator-0"]
        .iter()
        .map(|n| a.address(&format!("key.signer.{n}")))
        .collect();
    let b_signers: BTreeSet<Address> = ["delta-validator-0", "delta-validator-1"]
        .iter()
        .map(|n| b.address(&format!("key.signer.{n}")))
        .collect();
    let ab: BTreeSet<Address> = a_signers.union(&b_signers).copied().collect();
    wait_signers("A and B's signers", &a.rpc("alpha-tx-0"), &ab);
    let b_tx = b.rpc("delta-tx-0");
    wait_signers("B's own view of the signers", &b_tx, &ab);
    let from = b_tx.block_number().unwrap();
    poll("a block sealed by one of B's validators", WAIT, || {
        let head = b_tx.block_number().map_err(|e| e.to_string())?;
        Ok((from + 1..=head).find(|n| b_signers.contains(&sealer(&b_tx, *n))))
    });
    // B's account was funded by A's funding account; it pays an A account from B's node.
    let ops = b.address("account.delta.ops");
    let treasury = a.address("account.alpha.treasury");
    assert_eq!(
        b_tx.eth_get_balance(&ops, BlockId::Latest).unwrap(),
        10 * Wei::ETHER
    );
    let before = a
        .rpc("alpha-tx-0")
        .eth_get_balance(&treasury, BlockId::Latest)
        .unwrap();
    let key = account_key(&b, "account.delta.ops");
    let tx = LegacyTx {
        chain_id: 41414,
        nonce: b_tx.eth_get_pending_nonce(&ops).unwrap(),
        gas_price: b_tx
            .eth_gas_price()
            .unwrap()
            .saturating_mul(2)
            .max(1_000_000_000),
        gas: 21_000,
        to: Some(treasury),
        value: 3 * Wei::ETHER,
        data: vec![],
    }
    .sign(&key);
    let hash = b_tx.eth_send_raw_transaction(&tx.raw_hex()).unwrap();
    let receipt = poll("B's transfer to A confirms", WAIT, || {
        b_tx.eth_get_transaction_receipt(&hash)
            .map_err(|e| e.to_string())
    });
    assert!(receipt.success, "the transfer failed: {receipt:?}");
    poll("A sees B's transfer", WAIT, || {
        let now = a
            .rpc("alpha-tx-0")
            .eth_get_balance(&treasury, BlockId::Latest)
            .map_err(|e| e.to_string())?;
        if now == before + 3 * Wei::ETHER {
            Ok(Some(()))
        } else {
            Err(format!("treasury holds {now}, held {before} before"))
        }
    });
    // Both sides' plans see the network as their topologies say: nothing to change.
    a.assert_plan_empty();
    b.assert_plan_empty();
    let b_status = b.ok(&["status"]);
    assert!(b_status.contains("external"), "{b_status}");

    // ---- B loses its state file: `state recover` rebuilds it from B's own files, as a
    // joined operator's (the other operators' signers and accounts are theirs, not lost
    // keys), and B's plan is empty again.
    let joined = |st: &State| st.resources["genesis"].outputs["joined"].clone();
    let invitation = joined(&b.state());
    assert!(invitation.is_string(), "{invitation}");
    std::fs::remove_file(b.sd().state_file()).unwrap();
    let out = b.ok(&["state", "recover"]);
    assert!(!out.contains("has no key"), "{out}");
    assert_eq!(joined(&b.state()), invitation);
    b.assert_plan_empty();

    // ---- C joins while the signers belong to two operators: 2 of A + 2 of B, 3 needed.
    let invite_c = shared.path().join("invite-c.json");
    a.ok(&[
        "invite",
        "epsilon",
        "--validators",
        "1",
        "-o",
        &s(&invite_c),
    ]);
    let c = Operator::new();
    c.ok(&[
        "join",
        &s(&invite_c),
        "--address",
        "127.0.0.3",
        "--base-port",
        &operator_ports().to_string(),
        "--yes",
    ]);
    let request_c = c.dir().join("join-request.json");
    let c_signer = c.address("key.signer.epsilon-validator-0");
    let admit_a = a.ok(&["admit", &s(&request_c), "--yes"]);
    eprintln!("{admit_a}");
    let a_status = a.ok(&["status"]);
    assert!(
        a_status.contains("waiting for"),
        "A's status shows the pending vote:\n{a_status}"
    );
    // A's two votes are not enough: a few blocks later C is still no signer.
    let a_tx = a.rpc("alpha-tx-0");
    let h = a_tx.block_number().unwrap();
    poll("4 more blocks", WAIT, || {
        Ok((a_tx.block_number().map_err(|e| e.to_string())? >= h + 4).then_some(()))
    });
    assert!(
        !signers(&a_tx).contains(&c_signer),
        "admitted on A's votes alone"
    );
    // A has cast its votes: nothing more for A to do while B's are missing.
    a.assert_plan_empty();
    b.ok(&["admit", &s(&request_c), "--invite", &s(&invite_c), "--yes"]);
    let abc: BTreeSet<Address> = ab.iter().copied().chain([c_signer]).collect();
    wait_signers("C voted in by A and B", &a_tx, &abc);
    wait_signers("C's view", &c.rpc("epsilon-validator-0"), &abc);

    // ---- No key or password of B or C in anything exchanged, nor anywhere in A's dir.
    let mut secrets = secrets_of(&b);
    secrets.extend(secrets_of(&c));
    let mut files = vec![
        invite_b.clone(),
        invite_c.clone(),
        request_b.clone(),
        request_c.clone(),
    ];
    files_under(a.dir(), &mut files);
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| !f.to_string_lossy().contains("/nodes/") || f.ends_with("config.toml"))
        .collect();
    assert_no_secret(&secrets, &files);

    // ---- B is removed by the others' votes (A's 2 of 5 are not enough: C votes too).
    a.ok(&["member", "remove", "delta", "--yes"]);
    c.ok(&["member", "remove", "delta", "--yes"]);
    let ac: BTreeSet<Address> = a_signers.iter().copied().chain([c_signer]).collect();
    wait_signers("B voted out", &a_tx, &ac);
    // A's proposals to remove B's signers are left over once C's votes carried them:
    // status says so until apply discards them.
    let leftover = a.run(&["status"]);
    let text = String::from_utf8_lossy(&leftover.stdout);
    assert!(
        leftover.status.code() == Some(1) && text.contains("though the vote passed"),
        "{text}"
    );
    a.ok(&["apply", "--yes"]);
    let a_view = a.ok(&["status"]);
    assert!(!a_view.contains("delta"), "{a_view}");
    // B's signers are out, but its account still holds ether on the chain A and C run:
    // destroy says so and needs --allow-data-loss (issue 20), and keeps the key archived.
    let out = b.run(&["destroy", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("holds"));
    let out = b.ok(&["destroy", "--yes", "--allow-data-loss"]);
    assert!(out.contains("stay archived"), "{out}");
    assert!(b.net.running().is_empty(), "B's destroy stopped its nodes");
    let h = a_tx.block_number().unwrap();
    poll("blocks after B left", WAIT, || {
        Ok((a_tx.block_number().map_err(|e| e.to_string())? >= h + 3).then_some(()))
    });
    assert_no_stall(&a_tx, head0, a_tx.block_number().unwrap());
}

// ---- examples/separate-operators.md, run as written (issue 21 items 3 and 4).

/// The walkthrough's network (topologies/three-members.yaml).
const WALK_NET: &str = "three-members";
/// How long a view may take to report an injected fault (a loaded machine; the views
/// themselves answer from live probes, see the figures in the test's log).
const VIEW_DEADLINE: Duration = Duration::from_secs(20);

/// Every running node of these operators' states: (name, enode id, control socket).
fn all_nodes(ops: &[&NetworkHandle]) -> Vec<(String, String, RpcClient)> {
    let mut out = Vec::new();
    for op in ops {
        let Some(st) = op.state_dir().load().unwrap() else {
            continue;
        };
        for addr in st.resources.keys().filter(|a| a.starts_with("node.")) {
            let name = addr.strip_prefix("node.").unwrap();
            let o = NodeOutputs::from_state(&st, name).unwrap();
            let id = rpc::enode_pubkey(&o.enode).unwrap().to_string();
            let rpc = o.control().with_timeout(Duration::from_secs(5));
            out.push((name.to_string(), id, rpc));
        }
    }
    out
}

/// `admin_peers` on every node of every operator lists every other node.
fn assert_full_mesh(ops: &[&NetworkHandle], nodes: usize) {
    let all = all_nodes(ops);
    assert_eq!(all.len(), nodes, "nodes of the three operators");
    poll("a full mesh over all three operators", WAIT, || {
        for (name, _, rpc) in &all {
            let peers: BTreeSet<String> = rpc
                .admin_peers()
                .map_err(|e| format!("{name}: {e}"))?
                .iter()
                .filter_map(|p| p.pubkey().map(str::to_string))
                .collect();
            let missing: Vec<&str> = all
                .iter()
                .filter(|(other, id, _)| other != name && !peers.contains(id))
                .map(|(other, _, _)| other.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(format!("{name} is not peered with {missing:?}"));
            }
        }
        Ok(Some(()))
    });
}

/// What each view of an operator says right now.
struct Views {
    status: (i32, String),
    json: Value,
    plan: (i32, String),
    snapshot: Value,
}

fn views(dir: &Path, dashboard_url: &str) -> Views {
    let run = |args: &[&str]| {
        let out = consort(dir, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    };
    let status = run(&["status"]);
    let json = run(&["status", "--json"]);
    let json: Value = serde_json::from_str(
        json.1
            .split_once("\n! ")
            .map(|(j, _)| j)
            .unwrap_or(&json.1)
            .trim(),
    )
    .unwrap_or(Value::Null);
    let plan = run(&["plan", "--detailed-exitcode"]);
    let snapshot = crate::dashboard::http()
        .get(format!("{dashboard_url}api/snapshot"))
        .send()
        .and_then(|r| r.json::<Value>())
        .unwrap_or(Value::Null);
    Views {
        status,
        json,
        plan,
        snapshot,
    }
}

/// Polls until every view reports `what` (`check` says whether one does); returns how long
/// that took.
fn all_views_report(
    what: &str,
    dir: &Path,
    dashboard_url: &str,
    check: impl Fn(&Views) -> Result<(), String>,
) -> Duration {
    let t0 = std::time::Instant::now();
    poll(what, VIEW_DEADLINE, || {
        let v = views(dir, dashboard_url);
        check(&v).map(|()| Some(()))
    });
    let took = t0.elapsed();
    eprintln!("[views] {what}: every view reported it after {took:?}");
    took
}

fn reasons(snapshot: &Value) -> String {
    snapshot["health"]["reasons"].to_string()
}

/// The terminal a walkthrough block belongs to: "Terminal A: …" → "A".
fn terminal(heading: &str) -> String {
    heading
        .strip_prefix("Terminal ")
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("block under {heading:?} names no terminal"))
        .to_string()
}

#[test]
fn separate_operators_walkthrough_runs_as_written_and_every_view_tells_the_truth() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = repo.join("examples/separate-operators.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    // The walkthrough names only members that exist, and says who holds the majority.
    for gone in ["alpha", "beta", "gamma"] {
        assert!(!text.contains(gone), "the walkthrough still names {gone}");
    }
    assert!(text.contains("Neither operator holds a majority"), "{text}");
    let blocks = crate::doc_shell::shell_blocks(&text);
    assert!(blocks.len() >= 10, "{blocks:?}");

    let (a, b, c) = (
        NetworkHandle::new(WALK_NET),
        NetworkHandle::new(WALK_NET),
        NetworkHandle::new(WALK_NET),
    );
    let shared = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut sh = crate::doc_shell::DocShell::new(
        shared.path(),
        vec![
            ("/tmp/op-a".into(), s(a.dir.path())),
            ("/tmp/op-b".into(), s(b.dir.path())),
            ("/tmp/op-c".into(), s(c.dir.path())),
            ("/tmp/".into(), format!("{}/", s(shared.path()))),
            ("/path/to/consort".into(), s(repo)),
        ],
    );
    let mut outputs: Vec<(String, String, String)> = Vec::new();
    for block in &blocks {
        let term = terminal(&block.heading);
        if block.heading.starts_with("Terminal B: told it is out") {
            voted_out_is_told(&a, &b);
        }
        for cmd in &block.commands {
            // A reader looks at `status` after the other terminal's command returned; the
            // nodes may take a moment to sync: poll it with a deadline.
            let out = if cmd.starts_with("consort status") && !cmd.contains("||") {
                poll(&format!("`{cmd}` at {term} exits 0"), WAIT, || {
                    let out = sh.run(&term, cmd);
                    Ok(out.status.success().then_some(out))
                })
            } else {
                sh.run(&term, cmd)
            };
            assert!(
                out.status.success(),
                "{}:{} ({}) `{cmd}` failed:\n{}{}",
                doc.display(),
                block.line,
                block.heading,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            outputs.push((
                block.heading.clone(),
                cmd.clone(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ));
        }
        if block.heading.starts_with("Terminal C: a signer") {
            epsilon_signs_everywhere(&a, &b, &c);
        }
        if block.heading.starts_with("Terminal B: the vote passed") {
            full_mesh_and_another_operators_node_down(&a, &b, &c);
        }
    }
    // What the walkthrough promises its reader.
    let said = |heading: &str, cmd: &str| {
        outputs
            .iter()
            .filter(|(h, c, _)| h.starts_with(heading) && c.starts_with(cmd))
            .map(|(_, _, o)| o.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let a_vote = said("Terminal A: admit epsilon", "consort status");
    assert!(
        a_vote.contains("of 6 votes to add, needs 4 — waiting for operator of delta"),
        "{a_vote}"
    );
    let b_first = said("Terminal B: synced", "consort status");
    assert!(b_first.contains("member contoso (external"), "{b_first}");
    let b_out = said("Terminal B: synced", "consort output");
    assert!(b_out.contains("127.0.0.2"), "{b_out}");
    let told = said("Terminal B: told it is out", "consort status");
    assert!(
        told.contains("delta was removed from the consortium")
            || told.contains("delta is being voted out")
            || told.contains("did they remove delta from the consortium?"),
        "{told}"
    );
    assert!(told.contains("consort destroy"), "{told}");
    assert!(b.running().is_empty(), "B's destroy stopped its nodes");
    // A and C, after the walkthrough: nothing left to do, healthy, and a full mesh.
    for op in [&a, &c] {
        let out = consort(op.dir.path(), &["plan", "--detailed-exitcode"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_full_mesh(&[&a, &c], 6);
}

/// After the walkthrough's last admit: every node of the three operators peers with every
/// other (admin_peers on each); every operator's views say healthy. Then one of B's nodes
/// is killed: A's and C's status, status --json, plan --detailed-exitcode and dashboard
/// name it (not theirs to repair); once B restarts it, they are healthy again.
fn full_mesh_and_another_operators_node_down(
    a: &NetworkHandle,
    b: &NetworkHandle,
    c: &NetworkHandle,
) {
    // A: contoso 2, fabrikam 2, northwind 1; B: delta 3 + 1; C: epsilon 1.
    assert_full_mesh(&[a, b, c], 10);
    // Peer limits cover the whole planned mesh, other operators' nodes included.
    for op in [a, b, c] {
        for e in std::fs::read_dir(op.state_dir().nodes_dir())
            .unwrap()
            .flatten()
        {
            let toml = std::fs::read_to_string(e.path().join("config.toml")).unwrap();
            assert!(
                toml.contains("MaxPeers = 9"),
                "{}:\n{toml}",
                e.path().display()
            );
            let statics = toml
                .split("StaticNodes")
                .nth(1)
                .unwrap()
                .split(']')
                .next()
                .unwrap();
            assert_eq!(statics.matches("enode://").count(), 9, "{toml}");
        }
    }
    // B binds 127.0.0.2 only: its metrics too.
    let st_b = b.state_dir().load().unwrap().unwrap();
    let tx_b = NodeOutputs::from_state(&st_b, "delta-tx-0").unwrap();
    assert!(
        tx_b.metrics_url
            .as_deref()
            .unwrap()
            .starts_with("http://127.0.0.2:"),
        "{:?}",
        tx_b.metrics_url
    );
    let metrics = crate::dashboard::http()
        .get(tx_b.metrics_url.clone().unwrap())
        .send()
        .unwrap();
    assert!(metrics.status().is_success());

    let (_da, url_a) =
        crate::dashboard::dashboard(a.dir.path(), &a.dir.path().join("consort.yaml"));
    let (_dc, url_c) =
        crate::dashboard::dashboard(c.dir.path(), &c.dir.path().join("consort.yaml"));
    let healthy = |v: &Views| -> Result<(), String> {
        if v.status.0 != 0 || v.json["healthy"] != json!(true) {
            return Err(format!("status: {}\n{}", v.status.0, v.status.1));
        }
        if v.plan.0 != 0 {
            return Err(format!("plan: {}\n{}", v.plan.0, v.plan.1));
        }
        if v.snapshot["health"]["healthy"] != json!(true) {
            return Err(format!("dashboard: {}", reasons(&v.snapshot)));
        }
        Ok(())
    };
    all_views_report("A healthy", a.dir.path(), &url_a, healthy);
    all_views_report("C healthy", c.dir.path(), &url_c, healthy);

    // Another operator's node goes down (kill -9): ours cannot repair it, but say so.
    assert!(consort::provider::local::process::is_ours(
        tx_b.process(),
        Path::new(&tx_b.datadir)
    ));
    let killed = std::process::Command::new("kill")
        .args(["-9", &tx_b.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let names_it = |v: &Views| -> Result<(), String> {
        let node = "delta-tx-0";
        if v.status.0 == 0 || !v.status.1.contains(node) {
            return Err(format!("status: {}\n{}", v.status.0, v.status.1));
        }
        let unreached = v.json["external"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "delta")
            .map(|e| e["unreached"].clone());
        if v.json["healthy"] != json!(false) || unreached != Some(json!([node])) {
            return Err(format!("--json: {}", v.json));
        }
        if v.plan.0 != 2 || !v.plan.1.contains(node) {
            return Err(format!("plan: {}\n{}", v.plan.0, v.plan.1));
        }
        if v.snapshot["health"]["healthy"] != json!(false) || !reasons(&v.snapshot).contains(node) {
            return Err(format!("dashboard: {}", reasons(&v.snapshot)));
        }
        Ok(())
    };
    all_views_report("A names B's dead node", a.dir.path(), &url_a, names_it);
    all_views_report("C names B's dead node", c.dir.path(), &url_c, names_it);
    // B's own views: its node is down (ours to repair there).
    let b_status = consort(b.dir.path(), &["status"]);
    assert_eq!(b_status.status.code(), Some(1));
    // Repaired by its operator: everyone is healthy again.
    consort_ok(b.dir.path(), &["apply", "--yes"]);
    all_views_report("A healthy again", a.dir.path(), &url_a, healthy);
    all_views_report("C healthy again", c.dir.path(), &url_c, healthy);
    assert_full_mesh(&[a, b, c], 10);
}

/// Before the walkthrough's last block: A and C have voted delta out. B's views say so —
/// not healthy, delta removed (or being voted out), run `consort destroy` — and B's plan
/// refuses with the same words.
fn voted_out_is_told(a: &NetworkHandle, b: &NetworkHandle) {
    let (_db, url_b) =
        crate::dashboard::dashboard(b.dir.path(), &b.dir.path().join("consort.yaml"));
    // Removed (B's nodes saw the vote pass), being voted out (they saw votes against it),
    // or dropped before they saw either: the others' nodes stop peering with B's as they
    // vote, so which one B can tell depends on the blocks it got.
    let says_out = |t: &str| {
        (t.contains("delta was removed from the consortium at block")
            || t.contains("delta is being voted out")
            || t.contains("did they remove delta from the consortium?"))
            && t.contains("consort destroy")
    };
    all_views_report("B is told it was voted out", b.dir.path(), &url_b, |v| {
        if v.status.0 == 0 || !says_out(&v.status.1) {
            return Err(format!("status: {}\n{}", v.status.0, v.status.1));
        }
        let named =
            v.json["removed"][0]["name"] == "delta" || v.json["isolated"] == json!(["delta"]);
        if v.json["healthy"] != json!(false) || !named {
            return Err(format!("--json: {}", v.json));
        }
        // Voted out: plan refuses with those words; dropped: plan would dial them again.
        let plan_ok = match v.plan.0 {
            1 => says_out(&v.plan.1),
            2 => v.plan.1.contains("dial again (not peered with contoso"),
            _ => false,
        };
        if !plan_ok {
            return Err(format!("plan: {}\n{}", v.plan.0, v.plan.1));
        }
        if v.snapshot["health"]["healthy"] != json!(false) || !says_out(&reasons(&v.snapshot)) {
            return Err(format!("dashboard: {}", reasons(&v.snapshot)));
        }
        Ok(())
    });
    // Once B's nodes see the blocks that removed delta's signers (here: A's tx node lets
    // B's in again, as if A had kept peering until the vote passed), B is told exactly
    // when, and plan refuses.
    let st_a = a.state_dir().load().unwrap().unwrap();
    let a_tx = NodeOutputs::from_state(&st_a, "contoso-tx-0")
        .unwrap()
        .control()
        .with_timeout(Duration::from_secs(5));
    poll("delta's signers voted out", WAIT, || {
        Ok((a_tx.clique_get_signers().map_err(|e| e.to_string())?.len() == 4).then_some(()))
    });
    let st_b = b.state_dir().load().unwrap().unwrap();
    let b_enode = NodeOutputs::from_state(&st_b, "delta-tx-0").unwrap().enode;
    a_tx.admin_add_trusted_peer(&b_enode).unwrap();
    a_tx.admin_add_peer(&b_enode).unwrap();
    let removed = |t: &str| {
        t.contains("delta was removed from the consortium at block")
            && t.contains("consort destroy")
    };
    all_views_report("B is told when it was removed", b.dir.path(), &url_b, |v| {
        if v.status.0 == 0 || !removed(&v.status.1) || v.status.1.contains("votes to add") {
            return Err(format!("status: {}\n{}", v.status.0, v.status.1));
        }
        let block = v.json["removed"][0]["block"].as_u64().unwrap_or(0);
        if v.json["healthy"] != json!(false) || block == 0 {
            return Err(format!("--json: {}", v.json));
        }
        if v.plan.0 != 1 || !removed(&v.plan.1) {
            return Err(format!("plan: {}\n{}", v.plan.0, v.plan.1));
        }
        if v.snapshot["health"]["healthy"] != json!(false) || !removed(&reasons(&v.snapshot)) {
            return Err(format!("dashboard: {}", reasons(&v.snapshot)));
        }
        // The block named is the first without any of delta's signers.
        let signers_at = |n: u64| -> BTreeSet<Address> {
            let raw: Vec<String> = a_tx
                .call("clique_getSigners", json!([format!("0x{n:x}")]))
                .unwrap();
            raw.iter().filter_map(|s| rpc::parse_address(s)).collect()
        };
        let delta: BTreeSet<Address> = [
            "delta-validator-0",
            "delta-validator-1",
            "delta-validator-2",
        ]
        .iter()
        .map(|n| {
            rpc::parse_address(
                st_b.output_str(&format!("key.signer.{n}"), "address")
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
        assert!(signers_at(block).is_disjoint(&delta), "block {block}");
        assert!(
            !signers_at(block - 1).is_disjoint(&delta),
            "block {}",
            block - 1
        );
        Ok(())
    });
    // A no longer peers with anything of delta's.
    let a_view = String::from_utf8_lossy(&consort(a.dir.path(), &["status"]).stdout).into_owned();
    assert!(!a_view.contains("member delta"), "{a_view}");
}

/// The walkthrough's promise at C's status: with B's votes epsilon's validator signs (7
/// signers on every operator's nodes).
fn epsilon_signs_everywhere(a: &NetworkHandle, b: &NetworkHandle, c: &NetworkHandle) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let counts: Vec<(String, usize)> = all_nodes(&[a, b, c])
            .iter()
            .map(|(n, _, rpc)| (n.clone(), rpc.clique_get_signers().map_or(0, |s| s.len())))
            .collect();
        if counts.iter().all(|(_, k)| *k == 7) {
            break;
        }
        if std::time::Instant::now() > deadline {
            for op in [a, b, c] {
                for (_, dir) in op.processes() {
                    eprintln!("--- {}\n{}", dir.display(), process::log_tail(&dir, 30));
                }
            }
            panic!("epsilon is not a signer everywhere: {counts:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
