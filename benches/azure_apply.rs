//! Azure apply of a network of `CONSORT_BENCH_MEMBERS` members (default 50), each with one
//! validator and `CONSORT_BENCH_TX_NODES` tx nodes (default 1: 100 VMs), against the
//! stand-in ARM server (`tests/it/fake_arm.rs`, every long-running operation taking
//! `CONSORT_BENCH_ARM_LATENCY_MS`, default 1000 ms), beside the critical path the plan's
//! dependency chain implies (the longest chain of long-running ARM operations × that
//! latency). Reports the median apply time and its ratio to the critical path.
//!
//! `cargo bench --bench azure_apply` (needs the default `azure` feature). Median of 5 runs;
//! `CONSORT_BENCH_RUNS=N` changes that. `CONSORT_BENCH_TRACE=1` prints when each kind of
//! change started and ended, `CONSORT_BENCH_TRACE_PATH=<text>` every request whose path
//! holds it (e.g. `org7-tx-0`). Only 127.0.0.1 is used.

#[path = "../tests/it/fake_arm.rs"]
mod fake_arm;

use consort::events::{null_sink, Event, EventSink};
use consort::plan::build::{build, PlanInput};
use consort::plan::Plan;
use consort::provider::azure::arm::{Arm, ArmSettings, StaticTokenCredential};
use consort::provider::azure::AzureProvider;
use consort::provider::{execute, ApplyCtx};
use consort::state::Kind;
use consort::state::{State, StateDir};
use consort::topology::{ProviderConfig, Topology};
use fake_arm::{FakeArm, FakeArmConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn topology(sub: String) -> Topology {
    let (members, tx) = (
        env_usize("CONSORT_BENCH_MEMBERS", 50),
        env_usize("CONSORT_BENCH_TX_NODES", 1),
    );
    let mut yaml = String::from(
        "network:\n  name: wide\n  chain_id: 707070\n  consensus:\n    clique: { period: 5 }\nmembers:\n",
    );
    for i in 0..members {
        yaml += &format!("  - name: org{i}\n    validators: 1\n    tx_nodes: {tx}\n");
    }
    yaml += &format!(
        "provider:\n  azure:\n    subscription_id: {sub}\n    location: westeurope\n    resource_group: consort-wide\n    address_space: 10.42.0.0/16\n    admin_username: consort\n    ssh_public_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest you@example\"\n    allowed_rpc_cidrs: [\"203.0.113.0/24\"]\n"
    );
    consort::topology::parse(Path::new("wide.yaml"), yaml.as_bytes())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .topology
}

/// Long-running ARM operations on the plan's longest dependency chain (every Azure change
/// but the synchronous resource group PUT and the Key Vault data-plane secret writes).
fn critical_path_ops(pl: &Plan) -> usize {
    pl.longest_chain(|c| {
        u32::from(
            c.addr.starts_with("azure.")
                && !matches!(c.kind, Kind::AzureResourceGroup | Kind::AzureSecrets),
        )
    }) as usize
}

fn once(latency: Duration) -> (Duration, usize, usize) {
    // ARM asks pollers to come back after a Retry-After of about a tenth of a typical
    // operation (15 s for a VM); the stand-in does the same at its scale.
    let fake = FakeArm::with_config(FakeArmConfig {
        latency,
        polls_in_progress: 1,
        poll_retry_after_ms: Some(latency.as_millis() as u64 / 10),
        ..Default::default()
    });
    let topo = topology(fake.subscription_id());
    let ProviderConfig::Azure(cfg) = &topo.provider else {
        unreachable!()
    };
    let mut s = ArmSettings::new(fake.url().parse().unwrap(), fake.subscription_id());
    s.poll_interval = latency / 10;
    s.retry_initial_delay = Duration::from_millis(20);
    let arm = Arm::new(s, Arc::new(StaticTokenCredential::new(fake.token()))).unwrap();
    let p = AzureProvider::with_arm(cfg.clone(), arm);
    let dir = tempfile::tempdir().unwrap();
    let sd = StateDir::new(&dir.path().join(".consort"), "wide");
    let pl = build(
        PlanInput {
            topology: &topo,
            topology_sha256: String::new(),
            state: None,
            destroy: false,
            refresh: false,
        },
        &p,
    )
    .unwrap();
    let vms = pl
        .changes
        .iter()
        .filter(|c| c.kind == Kind::AzureVm)
        .count();
    let interrupted = AtomicBool::new(false);
    // With CONSORT_BENCH_TRACE set: when each kind of change started first and finished last.
    let t0 = Instant::now();
    let spans: Arc<Mutex<BTreeMap<String, (Duration, Duration)>>> = Default::default();
    let events: EventSink = if std::env::var_os("CONSORT_BENCH_TRACE").is_some() {
        let spans = spans.clone();
        Arc::new(move |e: Event| {
            let (addr, done) = match &e {
                Event::ChangeStarted { addr, .. } => (addr, false),
                Event::ChangeDone { addr, .. } => (addr, true),
                _ => return,
            };
            let kind: String = addr.split('.').take(2).collect::<Vec<_>>().join(".");
            let now = t0.elapsed();
            let mut s = spans.lock().unwrap();
            let span = s.entry(kind).or_insert((now, now));
            if done {
                span.1 = now;
            }
        })
    } else {
        null_sink()
    };
    let ctx = ApplyCtx {
        topology: &topo,
        state: Mutex::new(State::new("wide", "azure")),
        state_dir: &sd,
        events,
        interrupted: &interrupted,
        health_timeout: Duration::from_secs(30),
        failed: Default::default(),
        peering: Default::default(),
    };
    let t0 = Instant::now();
    let report = execute(&p, &ctx, &pl.changes).unwrap();
    let took = t0.elapsed();
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let mut spans: Vec<(String, (Duration, Duration))> =
        spans.lock().unwrap().clone().into_iter().collect();
    spans.sort_by_key(|(_, (a, _))| *a);
    if let Ok(path) = std::env::var("CONSORT_BENCH_TRACE_PATH") {
        for l in fake.requests().iter().filter(|l| l.path.contains(&path)) {
            println!("    {:>6} ms {} {}", l.at.as_millis(), l.method, l.path);
        }
    }
    for (kind, (a, b)) in spans.iter().filter(|(k, _)| !k.starts_with("signer.")) {
        println!(
            "    {kind:<16} {:>6} ms .. {:>6} ms",
            a.as_millis(),
            b.as_millis()
        );
    }
    (took, critical_path_ops(&pl), vms)
}

fn main() {
    let runs = env_usize("CONSORT_BENCH_RUNS", 5).max(1);
    let latency = Duration::from_millis(
        std::env::var("CONSORT_BENCH_ARM_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let mut times = Vec::new();
    let (mut ops, mut vms) = (0, 0);
    for _ in 0..runs {
        let (t, c, n) = once(latency);
        times.push(t);
        (ops, vms) = (c, n);
    }
    let critical = latency * ops as u32;
    times.sort();
    let m = times[times.len() / 2];
    println!(
        "azure apply against the stand-in ARM ({vms} VMs, {latency:?} per operation), median of {runs}: {:.2} s; critical path {ops} operations = {:.2} s; ratio {:.2}x (goal <= 1.5x)  (runs: {})",
        m.as_secs_f64(),
        critical.as_secs_f64(),
        m.as_secs_f64() / critical.as_secs_f64(),
        times
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
