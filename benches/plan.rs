//! `consort plan` on generated topologies of 10, 300 and 3,000 members (each with one
//! validator, one tx node and one funded account), for the local provider and for Azure:
//! loading the YAML and building the plan against empty state (a first apply), and, locally,
//! against state that already holds everything (the no-op re-plan users run most). Reports
//! the median of each and the 3,000 / 300 ratio, which stays near 10 while planning is
//! linear (goal: 3,000 members ≤ 1 s and ≤ 12× the 300-member time).
//!
//! `cargo bench --bench plan` (release build; `--no-default-features` leaves Azure out).
//! Knobs (env): `CONSORT_BENCH_SIZES=300,3000` picks member counts, `CONSORT_BENCH_RUNS=N`
//! the runs per measurement (default 15, and 5 at 1,000 members or more).
//!
//! Also `deep-nesting`: refusing a hostile file nested 100,000 levels deep (flow brackets
//! and block lists), which must stay about as fast as loading a small topology (the unit
//! test `very_deep_nesting_is_refused_quickly_without_overflowing_the_stack` checks where it
//! is refused; the time is measured here, not asserted in a debug build).

use consort::plan::build::{build, PlanInput};
use consort::provider::Provider;
use consort::state::{ResourceState, State};
use consort::topology::{self, Loaded};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Cloud {
    Local,
    #[cfg(feature = "azure")]
    Azure,
}

impl Cloud {
    fn all() -> Vec<Cloud> {
        vec![
            Cloud::Local,
            #[cfg(feature = "azure")]
            Cloud::Azure,
        ]
    }

    fn name(self) -> &'static str {
        match self {
            Cloud::Local => "local",
            #[cfg(feature = "azure")]
            Cloud::Azure => "azure",
        }
    }

    fn provider_yaml(self) -> &'static str {
        match self {
            Cloud::Local => "provider:\n  local: {}\n",
            #[cfg(feature = "azure")]
            Cloud::Azure => "provider:\n  azure:\n    subscription_id: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resource_group: bench\n    address_space: 10.0.0.0/8\n    admin_username: consort\n    ssh_public_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest you@example\"\n",
        }
    }
}

fn topology_yaml(members: usize, cloud: Cloud) -> String {
    let mut s = String::from("network:\n  name: bench\n  chain_id: 707070\nmembers:\n");
    for i in 0..members {
        s.push_str(&format!(
            "  - name: m{i}\n    validators: 1\n    tx_nodes: 1\n    accounts:\n      - name: ops\n        balance: 1000 ether\n"
        ));
    }
    s + cloud.provider_yaml()
}

fn load(yaml: &str) -> Loaded {
    topology::parse(Path::new("bench.yaml"), yaml.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn plan(loaded: &Loaded, provider: &dyn Provider, state: Option<&State>) -> consort::plan::Plan {
    build(
        PlanInput {
            topology: &loaded.topology,
            topology_sha256: String::new(),
            state,
            destroy: false,
            refresh: false,
        },
        provider,
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

/// Local state as if everything in the plan had been applied.
fn applied_state(loaded: &Loaded, provider: &dyn Provider) -> State {
    let mut st = State::new("bench", "local");
    for c in plan(loaded, provider, None).changes {
        let outputs = if c.addr == "genesis" {
            let signers: Vec<String> = loaded
                .topology
                .nodes()
                .into_iter()
                .filter(|n| n.role == topology::Role::Validator)
                .map(|n| n.name)
                .collect();
            let accounts: serde_json::Map<String, serde_json::Value> = loaded
                .topology
                .members
                .iter()
                .map(|m| {
                    (
                        format!("{}/ops", m.name),
                        serde_json::json!("1000000000000000000000"),
                    )
                })
                .collect();
            serde_json::json!({ "signers": signers, "accounts": accounts })
        } else {
            serde_json::json!({})
        };
        st.resources.insert(
            c.addr,
            ResourceState {
                kind: c.kind,
                attrs: c.after.unwrap_or_default(),
                outputs,
                deps: c.deps,
            },
        );
    }
    st
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn measure(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed()
            })
            .collect(),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let runs_env: Option<usize> = std::env::var("CONSORT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok());
    let sizes: Vec<usize> = std::env::var("CONSORT_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 300, 3000]);
    println!("plan: topology load + plan build, median of the runs shown");
    // (cloud, phase, members) → median
    let mut medians: BTreeMap<(&str, &str, usize), Duration> = BTreeMap::new();
    for cloud in Cloud::all() {
        for &members in &sizes {
            let runs = runs_env
                .unwrap_or(if members >= 1000 { 5 } else { 15 })
                .max(1);
            let yaml = topology_yaml(members, cloud);
            let loaded = load(&yaml);
            let provider =
                consort::provider::for_topology(&loaded.topology).expect("provider for bench");
            let nodes = loaded.topology.nodes().len();
            let mut row = |phase: &'static str, d: Duration| {
                println!(
                    "  {:<5} {members:>5} members ({nodes:>5} nodes)  {phase:<26} median {:>10}  ({runs} runs)",
                    cloud.name(),
                    ms(d)
                );
                medians.insert((cloud.name(), phase, members), d);
            };
            let d = measure(runs, || {
                load(&yaml);
            });
            row("load only", d);
            let d = measure(runs, || {
                let loaded = load(&yaml);
                let p = plan(&loaded, provider.as_ref(), None);
                assert!(p.changes.len() >= members * 2);
            });
            row("load + plan, empty state", d);
            if cloud == Cloud::Local {
                let st = applied_state(&loaded, provider.as_ref());
                let d = measure(runs, || {
                    let loaded = load(&yaml);
                    let p = plan(&loaded, provider.as_ref(), Some(&st));
                    assert!(p.changes.is_empty(), "{:?}", p.changes.first());
                });
                row("load + plan, no-op", d);
            }
        }
    }
    for (form, prefix, open, close) in [("flow", "network: ", "[", "]"), ("block", "", "- ", "")] {
        let depth = 100_000;
        let src = format!("{prefix}{}1{}\n", open.repeat(depth), close.repeat(depth));
        let d = measure(runs_env.unwrap_or(10).max(1), || {
            topology::parse(Path::new("deep.yaml"), src.as_bytes()).unwrap_err();
        });
        println!(
            "  deep-nesting {form:<5} {depth} levels refused          median {:>10}",
            ms(d)
        );
    }
    for ((cloud, phase, members), big) in &medians {
        if *members != 3000 || *phase == "load only" {
            continue;
        }
        if let Some(small) = medians.get(&(cloud, phase, 300)) {
            println!(
                "  {cloud:<5} {phase:<26} 3,000 / 300 members: {:.1}x (goal ≤ 12x, 3,000 ≤ 1 s: {})",
                big.as_secs_f64() / small.as_secs_f64(),
                ms(*big)
            );
        }
    }
}
