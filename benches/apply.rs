//! apply-to-healthy, measured: `consort apply --yes` (the real binary, fresh state each run)
//! until it returns with the network healthy, for `topologies/three-members.yaml` (5 nodes,
//! 3 members), `topologies/four-members.yaml` (7 nodes, 4 members) and generated
//! consortia of 10 and 20 members × (2 validators + 1 tx node) = 30 and 60 nodes, beside
//! the floor it is measured against: ONE geth node's `geth init` + start + first sealed
//! block (its signer keystore made beforehand, as the floor has no key work to do). For the
//! 60-node network, `consort status` is timed too (on the last run's network).
//!
//! `cargo bench --no-default-features --bench apply` (release build). Median of 5 runs;
//! `CONSORT_BENCH_RUNS=N` changes that; `CONSORT_BENCH_SIZES=7,60,120,252` picks sizes (5,
//! 7, and any multiple of 3: members × (2 validators + 1 tx node)). From 60 nodes on,
//! `destroy` is timed too. geth is found or built like consort does. Only 127.0.0.1 is used; every network is
//! destroyed after its run.

use consort::chain::genesis::genesis_json;
use consort::chain::geth::{ensure_geth, GethBinary};
use consort::crypto::keystore::{self, ScryptParams};
use consort::crypto::SecretKey;
use consort::events::null_sink;
use consort::provider::local::process::{self, PortAllocator};
use consort::render::{self, NodeLaunch, SignerLaunch};
use consort::rpc::RpcClient;
use consort::topology::Clique;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GETH_VERSION: &str = "1.13.15";
/// The shipped topologies' Clique period (the floor seals with the same).
const PERIOD: u64 = 2;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Stops every geth whose data dir is under the path when dropped, also when a run panics,
/// so a failed measurement never leaves nodes running.
struct Reaper(std::path::PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        for (id, dir) in process::find_by_datadir(|d| d.starts_with(&self.0)) {
            let _ = process::stop(id, &dir, Duration::from_secs(15));
        }
    }
}

/// One node: init + start + first sealed block.
fn floor_once(geth: &GethBinary, ports: &mut PortAllocator) -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let _reaper = Reaper(dir.clone());
    let datadir = dir.join("node");
    let ks_dir = datadir.join("keystore");
    std::fs::create_dir_all(&ks_dir).unwrap();
    let key = SecretKey::random();
    let password = keystore::random_password();
    let pw = datadir.join("password");
    std::fs::write(&pw, &password).unwrap();
    let ks = keystore::encrypt(&key, &password, ScryptParams::LIGHT);
    std::fs::write(
        ks_dir.join(keystore::file_name(
            &key.address(),
            time::OffsetDateTime::now_utc(),
        )),
        ks.to_string(),
    )
    .unwrap();
    let nodekey = SecretKey::random();
    std::fs::write(datadir.join("nodekey"), nodekey.to_hex()).unwrap();
    let g = genesis_json(
        787878,
        Clique {
            period: PERIOD,
            epoch: 30000,
        },
        30_000_000,
        &[key.address()],
        &[],
    );
    let genesis = dir.join("genesis.json");
    std::fs::write(&genesis, g.to_string()).unwrap();
    let p = ports.node().unwrap();
    let launch = NodeLaunch {
        network: "floor".into(),
        node_name: "floor".into(),
        geth_version: geth.version.clone(),
        chain_id: 787878,
        datadir: datadir.to_string_lossy().into(),
        config_path: datadir.join("config.toml").to_string_lossy().into(),
        nodekey_path: datadir.join("nodekey").to_string_lossy().into(),
        listen_addr: "127.0.0.1".into(),
        p2p_port: p.p2p,
        nat: "none".into(),
        http_addr: "127.0.0.1".into(),
        // Like every validator: no TCP RPC, controlled over IPC.
        http_port: None,
        ws_port: None,
        cors_origins: vec![],
        metrics_port: None,
        authrpc_port: 0,
        ipc_path: datadir.join("geth.ipc").to_string_lossy().into(),
        netrestrict: None,
        cache_mb: 64,
        verbosity: 3,
        max_peers: 1,
        static_nodes: vec![],
        trusted_nodes: vec![],
        signer: Some(SignerLaunch {
            address: key.address().to_checksum(),
            keystore_dir: ks_dir.to_string_lossy().into(),
            password_file: pw.to_string_lossy().into(),
            // A lone node has nobody to fork with: seal from the start.
            mine: true,
        }),
    };
    std::fs::write(
        &launch.config_path,
        render::geth_config_toml(&launch).unwrap(),
    )
    .unwrap();
    let args = render::geth_args(&launch).unwrap();

    let t0 = Instant::now();
    let init = Command::new(&geth.path)
        .arg("init")
        .arg("--datadir")
        .arg(&datadir)
        .arg(&genesis)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(init.success(), "geth init failed");
    let id = process::start(&geth.path, &args, &datadir).unwrap();
    let rpc = RpcClient::ipc(&launch.ipc_path).with_timeout(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if rpc.block_number().map(|n| n >= 1).unwrap_or(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "floor node sealed no block:\n{}",
            process::log_tail(&datadir, 20)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    process::stop(id, &datadir, Duration::from_secs(15)).unwrap();
    took
}

/// A consortium of `members` members, each with 2 validators and 1 tx node.
fn generated(members: usize, base_port: u16) -> String {
    let mut t = format!(
        "network:\n  name: wide{members}\n  chain_id: {}\n  consensus:\n    clique: {{ period: {PERIOD}, epoch: 30000 }}\nmembers:\n",
        800000 + members
    );
    for i in 0..members {
        t += &format!("  - name: org{i}\n    validators: 2\n    tx_nodes: 1\n");
    }
    t + &format!("provider:\n  local: {{ base_port: {base_port} }}\n")
}

/// A shipped topology's text with the base port set.
fn shipped(topology: &str, base_port: u16) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(topology);
    std::fs::read_to_string(src)
        .unwrap()
        .replace("local: {}", &format!("local: {{ base_port: {base_port} }}"))
}

/// `consort apply` of a topology in a fresh folder, then `status` `status_runs` times and
/// `destroy`. Returns the apply time, the status times and the destroy time.
fn apply_once(text: &str, status_runs: usize) -> (Duration, Vec<Duration>, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _reaper = Reaper(dir.canonicalize().unwrap());
    let file = "consort.yaml";
    std::fs::write(dir.join(file), text).unwrap();
    let consort = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_consort"))
            .arg("-f")
            .arg(file)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let t0 = Instant::now();
    let out = consort(&["apply", "--yes"]);
    let took = t0.elapsed();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("is healthy"),
        "apply failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Vec<Duration> = (0..status_runs)
        .map(|_| {
            let t0 = Instant::now();
            let out = consort(&["status"]);
            let took = t0.elapsed();
            assert!(out.status.success(), "status failed");
            took
        })
        .collect();
    let t0 = Instant::now();
    let out = consort(&["destroy", "--yes"]);
    let destroy = t0.elapsed();
    assert!(out.status.success(), "destroy failed");
    (took, status, destroy)
}

fn list(v: &[Duration]) -> String {
    v.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let runs: usize = std::env::var("CONSORT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let sizes: Vec<usize> = std::env::var("CONSORT_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![5, 7, 30, 60]);
    let geth = ensure_geth(None, GETH_VERSION, &null_sink()).unwrap_or_else(|e| panic!("{e}"));
    std::env::set_var("CONSORT_GETH", &geth.path);
    let base = 22000 + (std::process::id() % 20) as u16 * 500;
    let mut ports = PortAllocator::new(Some(base), []);

    println!(
        "apply-to-healthy, median of {runs} (geth {} at {})",
        geth.version,
        geth.path.display()
    );
    let floor: Vec<Duration> = (0..runs).map(|_| floor_once(&geth, &mut ports)).collect();
    let f = median(floor.clone());
    println!(
        "  floor: 1 geth node init + start + first sealed block   median {}  (runs: {})",
        secs(f),
        list(&floor)
    );
    let mut medians = std::collections::BTreeMap::new();
    for nodes in sizes {
        let (name, text): (String, Box<dyn Fn(u16) -> String>) = match nodes {
            5 => (
                "three-members.yaml".into(),
                Box::new(|b| shipped("three-members.yaml", b)),
            ),
            7 => (
                "four-members.yaml".into(),
                Box::new(|b| shipped("four-members.yaml", b)),
            ),
            n if n % 3 == 0 => (
                format!("{} members x (2 val + 1 tx)", n / 3),
                Box::new(move |b| generated(n / 3, b)),
            ),
            n => panic!("no topology of {n} nodes"),
        };
        let (mut times, mut status, mut destroys) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let status_runs = if nodes >= 60 && i + 1 == runs { 7 } else { 0 };
            // Blocks far enough apart for 250 nodes' p2p, RPC and metrics ports.
            let (t, s, d) = apply_once(&text(base + 100 + (i as u16 % 2) * 1000), status_runs);
            times.push(t);
            status.extend(s);
            destroys.push(d);
        }
        let m = median(times.clone());
        medians.insert(nodes, m);
        let worst = times.iter().max().copied().unwrap_or_default();
        println!(
            "  {name:<28} ({nodes:>2} nodes) apply --yes to healthy   median {}  max {}  = {:.2}x floor  (runs: {})",
            secs(m),
            secs(worst),
            m.as_secs_f64() / f.as_secs_f64(),
            list(&times)
        );
        if nodes >= 60 {
            println!(
                "  {:<28} ({nodes:>2} nodes) destroy --yes            median {}  (runs: {})",
                "",
                secs(median(destroys.clone())),
                list(&destroys)
            );
        }
        if !status.is_empty() {
            println!(
                "  {:<28} ({nodes:>2} nodes) status                   median {:.0} ms  (runs: {})",
                "",
                median(status.clone()).as_secs_f64() * 1000.0,
                status
                    .iter()
                    .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let (Some(a), Some(b)) = (medians.get(&30), medians.get(&60)) {
        println!(
            "  60 nodes / 30 nodes: {:.2}x (goal ≤ 2.5x)",
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    if let (Some(a), Some(b)) = (medians.get(&120), medians.get(&252)) {
        println!(
            "  252 nodes / 120 nodes: {:.2}x (goal ≤ 2.3x)",
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
