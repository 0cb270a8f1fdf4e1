//! The LocalProvider against real geth, driven through the core's plan + executor. The core
//! key material is seeded by hand here (node keys with k256, signer keystores with
//! `geth account new`), so these tests exercise the provider on its own.

use crate::support::{geth, poll, port_base, NetworkHandle};
use consort::chain::genesis::genesis_json;
use consort::events::{Event, EventSink};
use consort::plan::build::{build, PlanInput};
use consort::plan::Plan;
use consort::provider::local::{LocalProvider, NodeOutputs};
use consort::provider::{execute, ApplyCtx, ExecReport, Health, Provider, ProviderError};
use consort::rpc::parse_address;
use consort::state::Action;
use consort::state::{GenesisRecord, ResourceState, State};
use consort::topology::{
    Client, Clique, LocalConfig, Member, Network, ProviderConfig, Role, Topology,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);

fn topology(
    name: &str,
    chain_id: u64,
    members: &[(&str, u32, u32)],
    base_port: Option<u16>,
) -> Topology {
    Topology {
        network: Network {
            name: name.into(),
            chain_id,
            clique: Clique {
                period: 1,
                epoch: 30000,
            },
            gas_limit: 30_000_000,
            funding_account: None,
        },
        client: Client {
            geth: "1.13.15".into(),
        },
        members: members
            .iter()
            .map(|(m, v, t)| Member {
                name: m.to_string(),
                validators: *v,
                tx_nodes: *t,
                accounts: vec![],
                external: None,
            })
            .collect(),
        provider: ProviderConfig::Local(LocalConfig {
            address: None,
            base_port,
        }),
        rpc: Default::default(),
    }
}

fn res(
    kind: consort::state::Kind,
    attrs: serde_json::Value,
    outputs: serde_json::Value,
) -> ResourceState {
    ResourceState {
        kind,
        attrs,
        outputs,
        deps: vec![],
    }
}

/// What the core would have produced: node keys, signer keystores, genesis — in state.
fn seed_core(net: &NetworkHandle, topo: &Topology) {
    use consort::state::Kind;
    let sd = net.state_dir();
    let root = &sd.root;
    let mut st = State::new(&topo.network.name, "local");
    let mut signers = Vec::new();
    let mut signer_names = Vec::new();
    for n in topo.nodes() {
        let key = k256::SecretKey::random(&mut rand::thread_rng());
        let public = key.public_key();
        let point = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&public, false);
        let enode_id = hex::encode(&point.as_bytes()[1..]);
        let dir = root.join("keys/nodes").join(&n.name);
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("nodekey");
        std::fs::write(&key_file, hex::encode(key.to_bytes())).unwrap();
        st.resources.insert(
            format!("key.node.{}", n.name),
            res(
                Kind::NodeKey,
                json!({"node": n.name}),
                json!({"enode_id": enode_id, "key_file": key_file}),
            ),
        );
        if n.role == Role::Validator {
            let dir = root.join("keys/signers").join(&n.name);
            let ks = dir.join("keystore");
            std::fs::create_dir_all(&ks).unwrap();
            let pw = dir.join("password");
            std::fs::write(&pw, format!("pw-{}", n.name)).unwrap();
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
            let out = Command::new(&geth().path)
                .args(["account", "new", "--lightkdf", "--keystore"])
                .arg(&ks)
                .arg("--password")
                .arg(&pw)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let address = text
                .lines()
                .find_map(|l| l.split("Public address of the key:").nth(1))
                .unwrap()
                .trim()
                .to_string();
            let keystore = std::fs::read_dir(&ks)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            signers.push(parse_address(&address).unwrap());
            signer_names.push(n.name.clone());
            st.resources.insert(
                format!("key.signer.{}", n.name),
                res(
                    Kind::SignerKey,
                    json!({"node": n.name}),
                    json!({"address": address, "keystore": keystore, "keystore_dir": ks, "password_file": pw}),
                ),
            );
        }
    }
    let g = genesis_json(
        topo.network.chain_id,
        topo.network.clique,
        topo.network.gas_limit,
        &signers,
        &[],
    );
    let file = root.join("genesis.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&g).unwrap()).unwrap();
    st.genesis = Some(GenesisRecord {
        json: g,
        hash: String::new(),
    });
    st.resources.insert(
        "genesis".into(),
        res(
            Kind::Genesis,
            json!({"chain_id": topo.network.chain_id, "period": topo.network.clique.period,
                   "epoch": topo.network.clique.epoch, "gas_limit": topo.network.gas_limit}),
            json!({"file": file, "signers": signer_names, "accounts": {}, "funding_account": null}),
        ),
    );
    sd.save(&mut st).unwrap();
}

fn plan(net: &NetworkHandle, topo: &Topology, destroy: bool) -> Plan {
    let provider = LocalProvider::new(LocalConfig::default());
    let st = net.state_dir().load().unwrap();
    build(
        PlanInput {
            topology: topo,
            topology_sha256: String::new(),
            state: st.as_ref(),
            destroy,
            refresh: true,
        },
        &provider,
    )
    .unwrap()
}

struct Applied {
    report: ExecReport,
    health: Result<Health, ProviderError>,
    events: Vec<Event>,
}

/// plan + execute (+ wait_healthy, or cleanup for a destroy), as `consort apply` does.
fn apply(net: &NetworkHandle, topo: &Topology, destroy: bool) -> Applied {
    let ProviderConfig::Local(cfg) = &topo.provider else {
        unreachable!()
    };
    let provider = LocalProvider::new(cfg.clone());
    let p = plan(net, topo, destroy);
    let sd = net.state_dir();
    let st = sd.load().unwrap().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let sink: EventSink = Arc::new(move |e| ev.lock().unwrap().push(e));
    let interrupted = AtomicBool::new(false);
    let ctx = ApplyCtx {
        topology: topo,
        state: Mutex::new(st),
        state_dir: &sd,
        events: sink,
        interrupted: &interrupted,
        health_timeout: HEALTH_TIMEOUT,
        failed: Default::default(),
        peering: Default::default(),
    };
    let report = execute(&provider, &ctx, &p.changes).unwrap();
    assert!(
        report.failed.is_empty(),
        "changes failed: {:#?}",
        report.failed
    );
    let health = if destroy {
        // As `consort destroy` does: the provider's cleanup, then the core's key dirs.
        let r = provider.cleanup(&sd).map(|_| Health::default());
        consort::provider::core::cleanup_key_dirs(&sd);
        r
    } else {
        provider.wait_healthy(&ctx)
    };
    let events = events.lock().unwrap().clone();
    Applied {
        report,
        health,
        events,
    }
}

fn outputs(net: &NetworkHandle) -> Vec<(String, NodeOutputs)> {
    let st = net.state_dir().load().unwrap().unwrap();
    st.resources
        .iter()
        .filter(|(a, _)| a.starts_with("node."))
        .map(|(a, r)| {
            (
                a.clone(),
                serde_json::from_value(r.outputs.clone()).unwrap(),
            )
        })
        .collect()
}

/// Local ports of TCP sockets listening on anything but 127.0.0.1 (from /proc/net/tcp*).
fn non_loopback_listeners(ports: &BTreeSet<u16>) -> Vec<String> {
    let mut bad = Vec::new();
    for f in [
        "/proc/net/tcp",
        "/proc/net/tcp6",
        "/proc/net/udp",
        "/proc/net/udp6",
    ] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some((ip, port)) = cols.get(1).and_then(|a| a.split_once(':')) else {
                continue;
            };
            let port = u16::from_str_radix(port, 16).unwrap_or(0);
            if ports.contains(&port) && ip != "0100007F" {
                bad.push(format!("{f}: {ip}:{port}"));
            }
        }
    }
    bad
}

#[test]
fn provider_deploys_restarts_and_destroys_a_real_mesh() {
    let net = NetworkHandle::new("meshnet");
    let topo = topology(
        "meshnet",
        91001,
        &[("alpha", 2, 1), ("beta", 1, 0)],
        Some(port_base()),
    );
    seed_core(&net, &topo);

    // ---- first apply: 4 nodes, 3 signers.
    let first = plan(&net, &topo, false);
    let creates: Vec<&str> = first
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .map(|c| c.addr.as_str())
        .collect();
    assert_eq!(
        creates,
        [
            "node.alpha-tx-0",
            "node.alpha-validator-0",
            "node.alpha-validator-1",
            "node.beta-validator-0",
            "signer.alpha-validator-0",
            "signer.alpha-validator-1",
            "signer.beta-validator-0",
            "clique",
        ]
    );
    let a = apply(&net, &topo, false);
    let h = a.health.unwrap_or_else(|e| panic!("not healthy: {e}"));
    assert!(h.healthy);
    assert_eq!(h.nodes.len(), 4);
    for n in &h.nodes {
        assert!(n.running && n.problems.is_empty(), "{n:?}");
        assert_eq!(n.peers, 3, "{n:?}");
        match n.role.as_str() {
            "tx" => assert!(
                n.rpc_url
                    .as_deref()
                    .unwrap()
                    .starts_with("http://127.0.0.1:"),
                "{n:?}"
            ),
            _ => assert_eq!(n.rpc_url, None, "{n:?}"),
        }
    }
    assert!(h.head >= 1);
    for node in ["alpha-validator-0", "alpha-tx-0"] {
        let steps: Vec<&str> = a
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Step { subject, step } if subject == node => Some(step.as_str()),
                _ => None,
            })
            .collect();
        let last = if node.contains("validator") {
            "sealing"
        } else {
            "synced"
        };
        assert_eq!(steps, ["init", "start", "peered", last], "{node}");
    }

    // State: distinct loopback ports, genesis hash recorded and served by every node,
    // secrets 0600 in the validators' dirs, config.toml lists the 3 others.
    let st = net.state_dir().load().unwrap().unwrap();
    let genesis_hash = st.genesis.as_ref().unwrap().hash.clone();
    assert_eq!(genesis_hash.len(), 66, "{genesis_hash}");
    let outs = outputs(&net);
    let mut ports = BTreeSet::new();
    for (addr, o) in &outs {
        for p in o.ports.all() {
            assert!(ports.insert(p), "port {p} used twice ({addr})");
        }
        assert_eq!(o.control().genesis_hash().unwrap(), genesis_hash);
        let dir = Path::new(&o.datadir);
        assert!(dir.starts_with(net.state_dir().nodes_dir()), "{dir:?}");
        let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert_eq!(o.static_nodes.len(), 3, "{addr}");
        for e in &o.static_nodes {
            assert!(cfg.contains(e.as_str()), "{addr}: {e} not in config.toml");
        }
        assert!(!cfg.contains(&o.enode), "{addr} lists itself");
        if addr.contains("validator") {
            let mode = std::fs::metadata(dir.join("password"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", o.pid)).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains("pprof"));
    }
    assert_eq!(non_loopback_listeners(&ports), Vec::<String>::new());

    // ---- unchanged: nothing to do.
    let again = plan(&net, &topo, false);
    assert!(again.is_empty(), "{:#?}", again.changes);

    // ---- kill -9 a validator: refresh says restart, health says so, apply brings it back.
    let (_, victim) = outs
        .iter()
        .find(|(a, _)| a == "node.alpha-validator-1")
        .unwrap()
        .clone();
    unsafe { libc::kill(victim.pid as i32, libc::SIGKILL) };
    poll(
        "the killed node to be gone",
        Duration::from_secs(10),
        || {
            consort::provider::local::process::reap(victim.pid);
            Ok((!victim.is_running()).then_some(()))
        },
    );
    let provider = LocalProvider::new(LocalConfig::default());
    let h = provider.health(&topo, &st);
    assert!(!h.healthy);
    let dead = h
        .nodes
        .iter()
        .find(|n| n.name == "alpha-validator-1")
        .unwrap();
    assert!(!dead.running);
    let p = plan(&net, &topo, false);
    assert_eq!(p.changes.len(), 1, "{:#?}", p.changes);
    assert_eq!(p.changes[0].addr, "node.alpha-validator-1");
    assert_eq!(p.changes[0].action, Action::Update);
    assert_eq!(p.changes[0].reason, "restart (process not running)");
    let a = apply(&net, &topo, false);
    let h = a
        .health
        .unwrap_or_else(|e| panic!("not healthy after restart: {e}"));
    assert!(h.nodes.iter().all(|n| n.running && n.peers == 3), "{h:?}");
    let back = outputs(&net)
        .into_iter()
        .find(|(a, _)| a == "node.alpha-validator-1")
        .unwrap()
        .1;
    assert_ne!(back.pid, victim.pid);
    assert_eq!(back.ports, victim.ports, "free ports are kept on restart");
    assert!(plan(&net, &topo, false).is_empty());

    // ---- destroy: no process, no node dir left.
    let running_before: Vec<_> = net.running();
    assert_eq!(running_before.len(), 4);
    let d = apply(&net, &topo, true);
    d.health.unwrap();
    // 4 nodes + 3 signers + clique + the core's 4 node keys, 3 signer keys and genesis.
    assert_eq!(d.report.done.len(), 4 + 3 + 1 + 4 + 3 + 1);
    for (id, dir) in &running_before {
        assert!(!consort::provider::local::process::is_ours(*id, dir));
        assert!(
            consort::provider::local::process::start_time_of(id.pid).is_none(),
            "pid {} still alive",
            id.pid
        );
    }
    assert!(!net.state_dir().nodes_dir().exists());
    let st = net.state_dir().load().unwrap().unwrap();
    assert!(st.resources.is_empty(), "{:?}", st.resources.keys());
    assert!(
        !net.state_dir().keys_dir().exists(),
        "cleanup removes the emptied key dirs"
    );
}

#[test]
fn two_networks_with_the_same_base_port_run_side_by_side() {
    let base = port_base();
    let one = NetworkHandle::new("left");
    // Both networks under the same .consort dir, as two topologies in one folder would be.
    let two = NetworkHandle {
        dir: tempfile::tempdir().unwrap(),
        base: one.base.clone(),
        network: "right".into(),
    };
    let t1 = topology("left", 91002, &[("a", 1, 0), ("b", 1, 0)], Some(base));
    let t2 = topology("right", 91003, &[("c", 1, 1)], Some(base));
    seed_core(&one, &t1);
    seed_core(&two, &t2);
    let h1 = apply(&one, &t1, false)
        .health
        .unwrap_or_else(|e| panic!("{e}"));
    // Stop one node of the first network: its ports are free now, but recorded in state,
    // so the second network must still not take them.
    let o1 = outputs(&one);
    let stopped = &o1[0].1;
    consort::provider::local::process::stop(
        stopped.process(),
        Path::new(&stopped.datadir),
        Duration::from_secs(10),
    )
    .unwrap();
    let h2 = apply(&two, &t2, false)
        .health
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(h1.healthy && h2.healthy);
    let p1: BTreeSet<u16> = o1.iter().flat_map(|(_, o)| o.ports.all()).collect();
    let p2: BTreeSet<u16> = outputs(&two)
        .iter()
        .flat_map(|(_, o)| o.ports.all())
        .collect();
    assert!(p1.is_disjoint(&p2), "{p1:?} {p2:?}");
    assert!(p1.iter().chain(&p2).all(|p| *p >= base));
    // Different chains: different genesis.
    let g = |n: &NetworkHandle| n.state_dir().load().unwrap().unwrap().genesis.unwrap().hash;
    assert_ne!(g(&one), g(&two));
    // The first network's stopped node comes back on its own ports.
    let a = apply(&one, &t1, false);
    a.health.unwrap_or_else(|e| panic!("{e}"));
    let back = outputs(&one)
        .into_iter()
        .find(|(a, _)| *a == o1[0].0)
        .unwrap()
        .1;
    assert_eq!(back.ports, stopped.ports);
}
