//! `consort member add` on a running three-member network (one validator each, real geth
//! 1.13.15 on 127.0.0.1): time from starting the command until the new validators are all
//! in `clique_getSigners`, median of 5 runs, for a member with 1 and with 3 validators,
//! beside the floor the issues set: one node start (`geth init` + start + RPC answering)
//! plus 3 Clique periods. Also shown: the Clique floor of the votes themselves. A block
//! carries one vote, and each new signer needs a majority of the signers at that moment,
//! so adding k validators to n signers takes at least Σ (⌊(n+i)/2⌋+1) blocks (i < k).
//!
//! `cargo bench --no-default-features --bench member_add`. Knobs (env): `CONSORT_BENCH_RUNS`
//! (default 5), `CONSORT_BENCH_PERIOD` (default 2 s), `CONSORT_BENCH_ADD=1,3` (validators
//! added per run). Needs geth 1.13.15 where consort finds it (PATH, `CONSORT_GETH`, or
//! consort's cache); it fails loudly otherwise.

use consort::chain::geth::{ensure_geth, GethBinary};
use consort::crypto::Address;
use consort::events::EventSink;
use consort::provider::local::process::{self, PortAllocator, ProcessId};
use consort::provider::local::NodeOutputs;
use consort::rpc::{self, RpcClient};
use consort::state::StateDir;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_consort");
const DEADLINE: Duration = Duration::from_secs(180);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn consort(dir: &Path, geth: &GethBinary, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CONSORT_STATE_DIR")
        .env("CONSORT_GETH", &geth.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("consort runs")
}

fn run_ok(dir: &Path, geth: &GethBinary, args: &[&str]) {
    let out = consort(dir, geth, args).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "consort {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A three-member network in a temp dir; destroyed on Drop.
struct Net {
    dir: tempfile::TempDir,
    name: String,
    geth: GethBinary,
}

impl Net {
    fn start(run: u64, period: u64, geth: &GethBinary) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let base_port = 45000 + (std::process::id() % 40) as u16 * 100;
        std::fs::write(
            dir.path().join("consort.yaml"),
            format!(
                "network:\n  name: bench{run}\n  chain_id: {}\n  consensus:\n    clique:\n      period: {period}\n\
                 members:\n  - name: contoso\n    validators: 1\n  - name: fabrikam\n    validators: 1\n\
                 \x20 - name: northwind\n    validators: 1\nprovider:\n  local:\n    base_port: {base_port}\n",
                718_000 + run
            ),
        )
        .unwrap();
        let net = Net {
            dir,
            name: format!("bench{run}"),
            geth: geth.clone(),
        };
        run_ok(net.dir.path(), geth, &["apply", "--yes"]);
        net
    }

    /// A network sealing steadily (every founder past block 3), so the measurement starts
    /// from a running chain, not from its birth.
    fn steady(run: u64, period: u64, geth: &GethBinary) -> Net {
        let net = Net::start(run, period, geth);
        let rpcs: Vec<RpcClient> = [
            "contoso-validator-0",
            "fabrikam-validator-0",
            "northwind-validator-0",
        ]
        .iter()
        .map(|n| net.rpc(n))
        .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if rpcs.iter().all(|r| r.block_number().is_ok_and(|h| h >= 3)) {
                return net;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("run {}: the new network did not get past block 3", run + 1);
    }

    fn sd(&self) -> StateDir {
        StateDir::new(&self.dir.path().join(".consort"), &self.name)
    }

    fn rpc(&self, node: &str) -> RpcClient {
        let st = self.sd().load().unwrap().unwrap();
        NodeOutputs::from_state(&st, node).unwrap().control()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = consort(self.dir.path(), &self.geth, &["destroy", "--yes"]).wait();
        // Anything destroy missed.
        if let Ok(Some(st)) = self.sd().load() {
            for (addr, r) in &st.resources {
                if addr.starts_with("node.") {
                    if let Ok(o) = serde_json::from_value::<NodeOutputs>(r.outputs.clone()) {
                        let _ = process::stop(
                            o.process(),
                            Path::new(&o.datadir),
                            Duration::from_secs(5),
                        );
                    }
                }
            }
        }
    }
}

/// `member add delta --validators <k>` until clique_getSigners on a founder lists them all.
fn member_add_until_signer(net: &Net, k: u64) -> (Duration, Duration) {
    let sd = net.sd();
    let founder = net.rpc("contoso-validator-0");
    let t0 = Instant::now();
    let count = k.to_string();
    let mut child = consort(
        net.dir.path(),
        &net.geth,
        &["member", "add", "delta", "--validators", &count, "--yes"],
    );
    let signers: Vec<Address> = (0..k)
        .map(|i| {
            poll("the new signer keys in state", || {
                let st = sd.load().ok()??;
                let key = format!("key.signer.delta-validator-{i}");
                rpc::parse_address(st.output_str(&key, "address")?)
            })
        })
        .collect();
    poll("the new validators in clique_getSigners", || {
        founder
            .clique_get_signers()
            .ok()
            .filter(|s| signers.iter().all(|a| s.contains(a)))
    });
    let to_signer = t0.elapsed();
    let status = child.wait().unwrap();
    let whole = t0.elapsed();
    assert!(status.success(), "member add failed");
    (to_signer, whole)
}

/// `geth init` with the network's genesis + start + first RPC answer, for one node.
fn one_node_start(net: &Net) -> Duration {
    let genesis = net.sd().root.join("genesis.json");
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().canonicalize().unwrap();
    let ports = PortAllocator::new(Some(46000 + (std::process::id() % 40) as u16 * 50), [])
        .node()
        .unwrap();
    let t0 = Instant::now();
    let ok = Command::new(&net.geth.path)
        .arg("init")
        .arg("--datadir")
        .arg(&datadir)
        .arg(&genesis)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "geth init");
    let args: Vec<String> = vec![
        format!("--datadir={}", datadir.display()),
        "--nodiscover".into(),
        format!("--ipcpath={}", datadir.join("geth.ipc").display()),
        "--syncmode=full".into(),
        format!("--port={}", ports.p2p),
        "--authrpc.addr=127.0.0.1".into(),
        "--authrpc.port=0".into(),
    ];
    let id: ProcessId = process::start(&net.geth.path, &args, &datadir).expect("geth starts");
    let rpc = RpcClient::ipc(datadir.join("geth.ipc")).with_timeout(Duration::from_secs(2));
    poll("geth to answer RPC", || rpc.chain_id().ok());
    let took = t0.elapsed();
    let _ = process::stop(id, &datadir, Duration::from_secs(10));
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name us skips the run.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "member_add".contains(a.as_str())) {
        return;
    }
    let runs = env_num("CONSORT_BENCH_RUNS", 5).max(1);
    let period = env_num("CONSORT_BENCH_PERIOD", 2).max(1);
    let sink: EventSink = Arc::new(|_| {});
    let geth = ensure_geth(None, "1.13.15", &sink)
        .unwrap_or_else(|e| panic!("the benchmark needs geth 1.13.15: {e}"));

    let adding: Vec<u64> = std::env::var("CONSORT_BENCH_ADD")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 3]);
    const FOUNDERS: u64 = 3;
    println!("member_add (clique period {period}s, {FOUNDERS} signers, median of {runs}):");
    for (set, &k) in adding.iter().enumerate() {
        let (mut adds, mut wholes, mut starts) = (vec![], vec![], vec![]);
        for run in 0..runs {
            let net = Net::steady(set as u64 * 100 + run, period, &geth);
            let start = one_node_start(&net);
            let (add, whole) = member_add_until_signer(&net, k);
            eprintln!(
                "adding {k}, run {}: member add → signers {:.2}s (command {:.2}s); one node start {:.2}s",
                run + 1,
                add.as_secs_f64(),
                whole.as_secs_f64(),
                start.as_secs_f64()
            );
            adds.push(add);
            wholes.push(whole);
            starts.push(start);
            drop(net);
        }
        let (add, whole, start) = (median(adds), median(wholes), median(starts));
        let floor = start + Duration::from_secs(3 * period);
        let blocks: u64 = (0..k).map(|i| (FOUNDERS + i) / 2 + 1).sum();
        println!("  adding {k} validator(s):");
        println!(
            "    member add until the new validators sign  {:>7.2}s",
            add.as_secs_f64()
        );
        println!(
            "    whole command (incl. health wait)          {:>7.2}s",
            whole.as_secs_f64()
        );
        println!(
            "    one node start (init + start + RPC)        {:>7.2}s",
            start.as_secs_f64()
        );
        println!(
            "    floor: one node start + 3 x period         {:>7.2}s  (ratio {:.2})",
            floor.as_secs_f64(),
            add.as_secs_f64() / floor.as_secs_f64()
        );
        println!(
            "    Clique floor: {blocks} vote block(s) + start   {:>7.2}s  (ratio {:.2})",
            (start + Duration::from_secs(blocks * period)).as_secs_f64(),
            add.as_secs_f64() / (start + Duration::from_secs(blocks * period)).as_secs_f64()
        );
    }
}
