//! `consort plan` on generated topologies of 10, 100 and 300 members (3 nodes each: two
//! validators and a tx node), against empty state (first apply) and against state that
//! already holds everything (the no-op re-plan users run most). Includes loading the YAML.
//!
//! Also `deep-nesting/<depth>`: refusing a hostile file nested 100,000 levels deep (flow
//! brackets and block lists), which must stay about as fast as loading a small topology
//! (the unit test `very_deep_nesting_is_refused_quickly_without_overflowing_the_stack`
//! checks where it is refused; the time is measured here, not asserted in a debug build).

use consort::plan::desired::{build, PlanInput};
use consort::provider::local::LocalProvider;
use consort::state::{ResourceState, State};
use consort::topology::{self, LocalConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::path::Path;

fn topology_yaml(members: usize) -> String {
    let mut s = String::from("network:\n  name: bench\n  chain_id: 707070\nmembers:\n");
    for i in 0..members {
        s.push_str(&format!(
            "  - name: m{i}\n    validators: 2\n    tx_nodes: 1\n    accounts:\n      - name: ops\n        balance: 1000 ether\n"
        ));
    }
    s.push_str("provider:\n  local: {}\n");
    s
}

/// State as if everything in the plan had been applied.
fn applied_state(yaml: &str) -> State {
    let loaded = topology::parse(Path::new("bench.yaml"), yaml.as_bytes()).expect("loads");
    let provider = LocalProvider::new(LocalConfig::default());
    let plan = build(
        PlanInput {
            topology: &loaded.topology,
            topology_sha256: String::new(),
            state: None,
            destroy: false,
            refresh: false,
        },
        &provider,
    )
    .expect("plans");
    let mut st = State::new("bench", "local");
    for c in plan.changes {
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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    g.sample_size(20);
    for members in [10usize, 100, 300] {
        let yaml = topology_yaml(members);
        let provider = LocalProvider::new(LocalConfig::default());
        g.bench_with_input(BenchmarkId::new("load-only", members), &yaml, |b, yaml| {
            b.iter(|| topology::parse(Path::new("bench.yaml"), yaml.as_bytes()).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("fresh", members), &yaml, |b, yaml| {
            b.iter(|| {
                let loaded = topology::parse(Path::new("bench.yaml"), yaml.as_bytes()).unwrap();
                let plan = build(
                    PlanInput {
                        topology: &loaded.topology,
                        topology_sha256: String::new(),
                        state: None,
                        destroy: false,
                        refresh: false,
                    },
                    &provider,
                )
                .unwrap();
                assert!(plan.changes.len() >= members * 3);
                plan
            })
        });
        let parsed = topology::parse(Path::new("bench.yaml"), yaml.as_bytes()).unwrap();
        g.bench_with_input(
            BenchmarkId::new("build-only", members),
            &parsed,
            |b, loaded| {
                b.iter(|| {
                    build(
                        PlanInput {
                            topology: &loaded.topology,
                            topology_sha256: String::new(),
                            state: None,
                            destroy: false,
                            refresh: false,
                        },
                        &provider,
                    )
                    .unwrap()
                })
            },
        );
        let st = applied_state(&yaml);
        g.bench_with_input(BenchmarkId::new("no-op", members), &yaml, |b, yaml| {
            b.iter(|| {
                let loaded = topology::parse(Path::new("bench.yaml"), yaml.as_bytes()).unwrap();
                let plan = build(
                    PlanInput {
                        topology: &loaded.topology,
                        topology_sha256: String::new(),
                        state: Some(&st),
                        destroy: false,
                        refresh: false,
                    },
                    &provider,
                )
                .unwrap();
                assert!(plan.changes.is_empty(), "{:?}", plan.changes.first());
                plan
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("deep-nesting");
    g.sample_size(10);
    for (form, prefix, open, close) in [("flow", "network: ", "[", "]"), ("block", "", "- ", "")] {
        let depth = 100_000;
        let src = format!("{prefix}{}1{}\n", open.repeat(depth), close.repeat(depth));
        g.bench_with_input(BenchmarkId::new(form, depth), &src, |b, src| {
            b.iter(|| topology::parse(Path::new("deep.yaml"), src.as_bytes()).unwrap_err())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
