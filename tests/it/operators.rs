//! A consortium of separate operators on one machine (issue 14): founder A (state dir of
//! its own, three members, 127.0.0.1), joiner B (127.0.0.2) and later C (127.0.0.3), each
//! with its own directory, keys and geth processes, exchanging only `invite.json` and
//! `join-request.json`. Real `consort` binary, real geth 1.13.15.

use crate::support::*;
use consort::crypto::tx::LegacyTx;
use consort::crypto::{keystore, Address, SecretKey};
use consort::provider::local::NodeOutputs;
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
