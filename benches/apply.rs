//! apply-to-healthy, measured: `consort apply --yes` (the real binary, fresh state each run)
//! until it returns with the network healthy, for `topologies/three-members.yaml` (5 nodes,
//! 3 members) and `topologies/four-members.yaml` (7 nodes, 4 members), beside the floor it
//! is measured against: ONE geth node's `geth init` + start + first sealed block (its
//! signer keystore made beforehand, as the floor has no key work to do).
//!
//! `cargo bench --no-default-features --bench apply` (release build). Median of 5 runs;
//! `CONSORT_BENCH_RUNS=N` changes that. geth is found or built like consort does.
//! Only 127.0.0.1 is used; every network is destroyed after its run.

use consort::chain::genesis::genesis_json;
use consort::chain::geth::{ensure_geth, GethBinary};
use consort::crypto::keystore::{self, ScryptParams};
use consort::crypto::SecretKey;
use consort::provider::events::null_sink;
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

/// `consort apply` of a shipped topology in a fresh folder, then destroy (not timed).
fn apply_once(topology: &str, base_port: u16) -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _reaper = Reaper(dir.canonicalize().unwrap());
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(topology);
    let text = std::fs::read_to_string(src)
        .unwrap()
        .replace("local: {}", &format!("local: {{ base_port: {base_port} }}"));
    std::fs::write(dir.join(topology), text).unwrap();
    let consort = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_consort"))
            .arg("-f")
            .arg(topology)
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
        "apply of {topology} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = consort(&["destroy", "--yes"]);
    assert!(out.status.success(), "destroy of {topology} failed");
    took
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let runs: usize = std::env::var("CONSORT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let geth = ensure_geth(None, GETH_VERSION, &null_sink()).unwrap_or_else(|e| panic!("{e}"));
    std::env::set_var("CONSORT_GETH", &geth.path);
    let base = 42000 + (std::process::id() % 40) as u16 * 200;
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
        floor
            .iter()
            .map(|d| secs(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (topology, nodes) in [("three-members.yaml", 5), ("four-members.yaml", 7)] {
        let times: Vec<Duration> = (0..runs)
            .map(|i| apply_once(topology, base + 100 + (i as u16 % 2) * 50))
            .collect();
        let m = median(times.clone());
        println!(
            "  {topology:<19} ({nodes} nodes) apply --yes to healthy   median {}  = {:.2}x floor  (runs: {})",
            secs(m),
            m.as_secs_f64() / f.as_secs_f64(),
            times.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
        );
    }
}
