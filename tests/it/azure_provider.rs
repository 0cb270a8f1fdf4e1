//! The Azure provider through the core's plan + executor against the stand-in ARM server:
//! offline plan, full apply (parallel), no-op re-apply, interrupted apply then resume,
//! drift, ARM errors, destroy with the resource-group rule.

use crate::fake_arm::{FakeArm, FakeArmConfig, Throttle};
use consort::events::{Event, EventSink};
use consort::plan::build::{build, PlanInput};
use consort::plan::Plan;
use consort::plan::Planning;
use consort::provider::azure::arm::{Arm, ArmSettings, StaticTokenCredential};
use consort::provider::azure::AzureProvider;
use consort::provider::{execute, ApplyCtx, ExecReport, Provider};
use consort::state::{Action, Kind};
use consort::state::{State, StateDir};
use consort::topology::{AzureConfig, Client, Clique, Member, Network, ProviderConfig, Topology};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RG: &str = "consort-tradelane";

fn azure_config(sub: Option<&str>) -> AzureConfig {
    AzureConfig {
        subscription_id: sub.map(str::to_string),
        location: "westeurope".into(),
        resource_group: RG.into(),
        address_space: "10.42.0.0/16".into(),
        vm_size: "Standard_B2s".into(),
        validator_vm_size: None,
        tx_vm_size: Some("Standard_B2ms".into()),
        admin_username: "consort".into(),
        ssh_public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest you@example".into(),
        allowed_rpc_cidrs: vec!["203.0.113.0/24".into()],
        allowed_ssh_cidrs: vec![],
    }
}

/// `members`: (name, validators, tx nodes).
fn topology(members: &[(&str, u32, u32)], sub: Option<&str>) -> Topology {
    Topology {
        network: Network {
            name: "tradelane".into(),
            chain_id: 707070,
            clique: Clique {
                period: 5,
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
        provider: ProviderConfig::Azure(azure_config(sub)),
        rpc: Default::default(),
    }
}

fn provider(fake: &FakeArm, topo: &Topology) -> AzureProvider {
    let ProviderConfig::Azure(cfg) = &topo.provider else {
        unreachable!()
    };
    let mut s = ArmSettings::new(fake.url().parse().unwrap(), fake.subscription_id());
    s.poll_interval = Duration::from_millis(10);
    s.retry_initial_delay = Duration::from_millis(10);
    s.operation_timeout = Duration::from_secs(30);
    let arm = Arm::new(
        s,
        Arc::new(StaticTokenCredential::new(fake.token()).with_vault(fake.vault_token())),
    )
    .unwrap();
    AzureProvider::with_arm(cfg.clone(), arm)
}

struct Env {
    _dir: tempfile::TempDir,
    sd: StateDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sd = StateDir::new(&dir.path().join(".consort"), "tradelane");
    Env { _dir: dir, sd }
}

fn plan(p: &dyn Provider, topo: &Topology, sd: &StateDir, destroy: bool, refresh: bool) -> Plan {
    let st = sd.load().unwrap();
    build(
        PlanInput {
            topology: topo,
            topology_sha256: String::new(),
            state: st.as_ref(),
            destroy,
            refresh,
        },
        p,
    )
    .unwrap()
}

struct Run {
    report: ExecReport,
    events: Vec<Event>,
    took: Duration,
}

/// plan + execute, as `consort apply --skip-health-check` / `consort destroy` do.
/// `interrupt_after`: raise the Ctrl-C flag after that many Azure changes finished.
fn run(
    p: &AzureProvider,
    topo: &Topology,
    sd: &StateDir,
    destroy: bool,
    interrupt_after: Option<usize>,
) -> Run {
    let pl = plan(p, topo, sd, destroy, false);
    let st = sd
        .load()
        .unwrap()
        .unwrap_or_else(|| State::new(&topo.network.name, "azure"));
    let events = Arc::new(Mutex::new(Vec::new()));
    let interrupted = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let (ev, flag, n) = (events.clone(), interrupted.clone(), done.clone());
    let sink: EventSink = Arc::new(move |e: Event| {
        if let Event::ChangeDone { addr, .. } = &e {
            if addr.starts_with("azure.") {
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                if Some(k) == interrupt_after {
                    flag.store(true, Ordering::SeqCst);
                }
            }
        }
        ev.lock().unwrap().push(e);
    });
    let ctx = ApplyCtx {
        topology: topo,
        state: Mutex::new(st),
        state_dir: sd,
        events: sink,
        interrupted: &interrupted,
        health_timeout: Duration::from_secs(30),
        failed: Default::default(),
        peering: Default::default(),
    };
    let t0 = Instant::now();
    let report = execute(p, &ctx, &pl.changes).unwrap();
    let took = t0.elapsed();
    if destroy && report.failed.is_empty() && !report.interrupted {
        p.cleanup(sd).unwrap();
    }
    let events = events.lock().unwrap().clone();
    Run {
        report,
        events,
        took,
    }
}

fn state(sd: &StateDir) -> State {
    sd.load().unwrap().unwrap()
}

fn azure_addrs(st: &State) -> Vec<String> {
    st.resources
        .keys()
        .filter(|a| a.starts_with("azure."))
        .cloned()
        .collect()
}

/// PUTs per lowercase ARM path (query dropped).
fn puts(fake: &FakeArm) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in fake.requests().into_iter().filter(|l| l.method == "PUT") {
        *m.entry(l.path.to_ascii_lowercase()).or_insert(0) += 1;
    }
    m
}

#[test]
fn plan_is_offline_and_shows_every_resource() {
    // No stand-in, no credentials, no subscription: plan still works.
    let topo = topology(&[("contoso", 1, 1), ("fabrikam", 1, 0)], None);
    let ProviderConfig::Azure(cfg) = &topo.provider else {
        unreachable!()
    };
    let p = AzureProvider::new(cfg.clone()).unwrap();
    let e = env();
    let pl = plan(&p, &topo, &e.sd, false, false);
    let azure: Vec<(&str, Action)> = pl
        .changes
        .iter()
        .filter(|c| c.addr.starts_with("azure."))
        .map(|c| (c.addr.as_str(), c.action))
        .collect();
    let mut addrs: Vec<&str> = azure.iter().map(|(a, _)| *a).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        [
            "azure.nat",
            "azure.natpip",
            "azure.nic.contoso-tx-0",
            "azure.nic.contoso-validator-0",
            "azure.nic.fabrikam-validator-0",
            "azure.nsg.contoso",
            "azure.nsg.fabrikam",
            "azure.pip.contoso-tx-0",
            "azure.rg",
            "azure.secrets.contoso-tx-0",
            "azure.secrets.contoso-validator-0",
            "azure.secrets.fabrikam-validator-0",
            "azure.subnet.contoso",
            "azure.subnet.fabrikam",
            "azure.vault",
            "azure.vm.contoso-tx-0",
            "azure.vm.contoso-validator-0",
            "azure.vm.fabrikam-validator-0",
            "azure.vnet",
        ],
        "validators get no public IP"
    );
    assert!(azure.iter().all(|(_, a)| *a == Action::Create));
    let get = |addr: &str| pl.changes.iter().find(|c| c.addr == addr).unwrap();
    let nic = get("azure.nic.fabrikam-validator-0").after.clone().unwrap();
    assert_eq!(nic["private_ip"], "10.42.1.4");
    assert_eq!(nic["public_ip"], Value::Null);
    assert_eq!(
        get("azure.subnet.fabrikam").after.as_ref().unwrap()["address_prefix"],
        "10.42.1.0/24"
    );
    // Explicit outbound: every subnet goes through the NAT gateway.
    let subnet = get("azure.subnet.fabrikam");
    assert_eq!(
        subnet.after.as_ref().unwrap()["nat_gateway"],
        "tradelane-nat"
    );
    assert!(
        subnet.deps.iter().any(|d| d == "azure.nat"),
        "{:?}",
        subnet.deps
    );
    let vault = get("azure.vault").after.clone().unwrap();
    let name = vault["name"].as_str().unwrap();
    assert!(
        name.starts_with("tradelane-") && (3..=24).contains(&name.len()),
        "{name}"
    );
    assert_eq!(
        get("azure.vm.contoso-tx-0").after.as_ref().unwrap()["size"],
        "Standard_B2ms"
    );
    assert_eq!(
        get("azure.vm.contoso-validator-0").after.as_ref().unwrap()["name"],
        "contoso-validator-0-vm"
    );
    let vm = get("azure.vm.contoso-validator-0");
    for d in [
        "azure.nic.contoso-validator-0",
        "azure.secrets.contoso-validator-0",
        "key.node.contoso-validator-0",
        "key.signer.contoso-validator-0",
        "genesis",
        "key.node.*",
    ] {
        assert!(
            vm.deps.iter().any(|x| x == d),
            "vm lacks dep {d}: {:?}",
            vm.deps
        );
    }
    // Only the tx member's NSG opens RPC, and only to the tx node.
    let rules = |m: &str| get(&format!("azure.nsg.{m}")).after.clone().unwrap()["rules"].clone();
    let rpc = rules("contoso")
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "allow-rpc")
        .cloned()
        .unwrap();
    assert_eq!(rpc["destinations"], serde_json::json!(["10.42.0.5"]));
    assert!(rules("fabrikam")
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] != "allow-rpc"));
}

#[test]
fn apply_is_parallel_then_reapply_sends_no_put() {
    let latency = Duration::from_millis(400);
    let fake = FakeArm::with_config(FakeArmConfig {
        latency,
        polls_in_progress: 1,
        ..Default::default()
    });
    // 7 VMs.
    let topo = topology(
        &[("contoso", 2, 1), ("fabrikam", 1, 1), ("northwind", 2, 0)],
        Some(&fake.subscription_id()),
    );
    let p = provider(&fake, &topo);
    let e = env();
    let r = run(&p, &topo, &e.sd, false, None);
    assert!(r.report.failed.is_empty(), "{:#?}", r.report.failed);
    let st = state(&e.sd);
    // The RG PUT is synchronous, secrets go to the vault's data plane.
    let arm_resources = azure_addrs(&st)
        .iter()
        .filter(|a| *a != "azure.rg" && !a.starts_with("azure.secrets."))
        .count();
    // vnet, vault, NAT IP + gateway, 3 NSGs, 3 subnets, 2 public IPs, 7 NICs, 7 VMs.
    assert_eq!(arm_resources, 26);

    // Dependency chain: rg → NAT public IP → NAT gateway → subnet → nic → vm, five
    // long-running operations (before the NAT gateway: four); the vault, secrets and
    // role assignments are off it or synchronous.
    let chain = latency * 5;
    let sum = latency * arm_resources as u32;
    eprintln!(
        "azure apply parallelism: {} ARM operations of >= {:?} each; apply took {:?}; chain {:?}; sum {:?}; peak concurrent operations {}",
        arm_resources,
        latency,
        r.took,
        chain,
        sum,
        fake.peak_concurrent_operations()
    );
    assert!(r.took >= chain, "faster than the chain? {:?}", r.took);
    // Parallel, counted by the stand-in rather than timed (serially the peak would be 1);
    // the time is measured by `cargo bench --bench azure_apply`.
    assert!(fake.peak_concurrent_operations() >= 4);

    // What ARM now holds.
    let rg = fake
        .resource(&format!(
            "/subscriptions/{}/resourceGroups/{RG}",
            fake.subscription_id()
        ))
        .unwrap();
    assert_eq!(rg["tags"]["managed-by"], "consort");
    assert_eq!(rg["tags"]["consort-network"], "tradelane");
    let vm_id = |n: &str| {
        format!("/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{n}-vm", fake.subscription_id())
    };
    let nic_id = |n: &str| {
        format!("/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Network/networkInterfaces/{n}-nic", fake.subscription_id())
    };
    let vnic = fake.resource(&nic_id("contoso-validator-0")).unwrap();
    assert!(vnic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"].is_null());
    assert_eq!(
        vnic["properties"]["ipConfigurations"][0]["properties"]["privateIPAllocationMethod"],
        "Static"
    );
    let tnic = fake.resource(&nic_id("contoso-tx-0")).unwrap();
    assert!(
        tnic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/contoso-tx-0-pip")
    );
    // Each VM gets only its own secrets.
    let own_key = |n: &str| {
        let f = st.output_str(&format!("key.node.{n}"), "key_file").unwrap();
        std::fs::read_to_string(f).unwrap().trim().to_string()
    };
    // No secret in any customData: the vault holds them, each readable by its VM only.
    let cd = fake.custom_data(&vm_id("contoso-validator-0")).unwrap();
    assert!(cd.starts_with("#cloud-config"));
    let vault = st.resources["azure.vault"].attrs["name"]
        .as_str()
        .unwrap()
        .to_string();
    for n in [
        "contoso-validator-0",
        "contoso-tx-0",
        "fabrikam-validator-0",
    ] {
        let data = fake.custom_data(&vm_id(n)).unwrap();
        for m in [
            "contoso-validator-0",
            "contoso-tx-0",
            "fabrikam-validator-0",
        ] {
            assert!(
                !data.contains(&own_key(m)),
                "{n}'s customData holds {m}'s node key"
            );
        }
        assert_eq!(
            fake.vault_secret(&vault, &format!("{n}-nodekey"))
                .as_deref(),
            Some(own_key(n).as_str())
        );
        let principal = fake.principal_of(&vm_id(n)).unwrap();
        let scopes: Vec<String> = fake
            .role_assignments()
            .into_iter()
            .filter(|(_, _, p)| *p == principal)
            .map(|(s, _, _)| s)
            .collect();
        let want = if n.contains("validator") { 3 } else { 1 };
        assert_eq!(scopes.len(), want, "{n}: {scopes:?}");
        assert!(
            scopes.iter().all(|s| s.contains(&format!("/secrets/{n}-"))),
            "{scopes:?}"
        );
    }
    // The VM PUT sends no read-only field as null (timeCreated: null went out before).
    assert!(!fake.requests().is_empty());
    let vm = fake.resource(&vm_id("contoso-validator-0")).unwrap();
    assert!(vm["properties"].get("timeCreated").is_none(), "{vm}");
    assert_eq!(vm["identity"]["type"], "SystemAssigned");
    assert_eq!(vm["tags"]["consort-lineage"], st.lineage.as_str());
    assert!(
        cd.contains("10.42.1.4:30303"),
        "static nodes at private IPs"
    );
    let tx_cd = fake.custom_data(&vm_id("contoso-tx-0")).unwrap();
    assert!(
        !tx_cd.contains("/var/lib/consort/password"),
        "tx nodes get no signer secrets"
    );
    // Outputs: enode on the private IP, RPC on the public IP for tx nodes only.
    let out = |n: &str| st.resources[&format!("azure.vm.{n}")].outputs.clone();
    assert!(out("contoso-tx-0")["rpc_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0."));
    assert!(out("contoso-validator-0")["rpc_url"].is_null());
    // Least privilege in what the VMs run: validators serve no TCP RPC, tx nodes only the
    // application namespaces, p2p restricted to the VNet, geth as its own user.
    let run_geth = |cd: &str| -> String {
        let doc: serde_yaml::Value = serde_yaml::from_str(cd).unwrap();
        doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str() == Some("/var/lib/consort/run-geth.sh"))
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let v = run_geth(&cd);
    let t = run_geth(&tx_cd);
    assert!(!v.contains("\"--http") && !v.contains("\"--ws"), "{v}");
    assert!(!v.contains("insecure"), "{v}");
    assert!(t.contains("\"--http.api=eth,net,web3,txpool\""), "{t}");
    assert!(
        !t.contains("clique\""),
        "tx nodes serve no clique namespace: {t}"
    );
    for (s, role) in [(&v, "validator"), (&t, "tx")] {
        assert!(s.contains("\"--netrestrict=10.42.0.0/16\""), "{role}: {s}");
        assert!(
            s.contains("\"--ipcpath=$ROOT/var/lib/consort/geth/geth.ipc\""),
            "{role}"
        );
        for ns in ["admin", "miner", "personal", "debug"] {
            assert!(
                !s.lines().any(|l| l.contains(".api=") && l.contains(ns)),
                "{role}: {s}"
            );
        }
    }
    for cd in [&cd, &tx_cd] {
        assert!(
            cd.contains("User=geth"),
            "geth's unit runs as the geth user"
        );
        assert!(!cd.contains("User=consort") && !cd.contains("User=root"));
    }
    assert!(out("contoso-validator-0")["enode"]
        .as_str()
        .unwrap()
        .ends_with("@10.42.0.4:30303"));
    // No secret reached state.
    let text = std::fs::read_to_string(e.sd.state_file()).unwrap();
    assert!(!text.contains(&own_key("contoso-validator-0")));

    // Re-apply of the unchanged topology: empty plan, no request at all.
    fake.clear_log();
    let pl = plan(&p, &topo, &e.sd, false, false);
    assert!(pl.changes.is_empty(), "{:#?}", pl.changes);
    let r = run(&p, &topo, &e.sd, false, None);
    assert!(r.report.done.is_empty());
    assert_eq!(fake.count("PUT", "/"), 0, "{:#?}", fake.requests());
}

#[test]
fn interrupted_apply_resumes_without_redoing_work() {
    let fake = FakeArm::with_config(FakeArmConfig {
        latency: Duration::from_millis(150),
        ..Default::default()
    });
    let topo = topology(
        &[("contoso", 1, 1), ("fabrikam", 1, 0)],
        Some(&fake.subscription_id()),
    );
    let p = provider(&fake, &topo);
    let e = env();
    let first = run(&p, &topo, &e.sd, false, Some(3));
    assert!(first.report.interrupted, "{:?}", first.report);
    assert!(!first.report.skipped.is_empty());
    let saved = azure_addrs(&state(&e.sd));
    assert!(saved.len() >= 3 && saved.len() < 19, "{saved:?}");
    // Every change that started also finished and was saved.
    let started = first
        .events
        .iter()
        .filter(|e| matches!(e, Event::ChangeStarted { addr, .. } if addr.starts_with("azure.")))
        .count();
    assert_eq!(started, saved.len());

    let second = run(&p, &topo, &e.sd, false, None);
    assert!(
        second.report.failed.is_empty() && !second.report.interrupted,
        "{:?}",
        second.report
    );
    assert_eq!(azure_addrs(&state(&e.sd)).len(), 19);
    for a in &saved {
        assert!(!second.report.done.contains(a), "{a} was redone");
    }
    // Across both runs, every ARM resource, secret and role assignment was PUT exactly
    // once: 16 ARM resources, 7 secrets, 7 role assignments.
    let p = puts(&fake);
    assert_eq!(p.len(), 30, "{p:#?}");
    assert!(p.values().all(|&n| n == 1), "{p:#?}");
}

#[test]
fn vm_created_but_not_saved_is_adopted_not_duplicated() {
    let fake = FakeArm::start();
    let topo = topology(&[("contoso", 1, 0)], Some(&fake.subscription_id()));
    let p = provider(&fake, &topo);
    let e = env();
    assert!(run(&p, &topo, &e.sd, false, None).report.failed.is_empty());
    // As if consort was killed after the VM's PUT, before state was saved.
    let mut st = state(&e.sd);
    st.resources.remove("azure.vm.contoso-validator-0");
    e.sd.save(&mut st).unwrap();
    fake.clear_log();
    let r = run(&p, &topo, &e.sd, false, None);
    assert_eq!(r.report.done, ["azure.vm.contoso-validator-0"]);
    assert_eq!(
        fake.count("DELETE", "/"),
        0,
        "same customData: adopted, not recreated"
    );
    assert!(state(&e.sd)
        .resources
        .contains_key("azure.vm.contoso-validator-0"));
}

#[test]
fn arm_error_fails_the_change_naming_it_and_a_rerun_converges() {
    let fake = FakeArm::start();
    let topo = topology(
        &[("contoso", 1, 1), ("fabrikam", 1, 0)],
        Some(&fake.subscription_id()),
    );
    let p = provider(&fake, &topo);
    let e = env();
    fake.fail_put(
        "fabrikam-validator-0-vm",
        409,
        "QuotaExceeded",
        "Operation could not be completed as it results in exceeding approved Total Regional Cores quota.",
        Some(1),
    );
    let r = run(&p, &topo, &e.sd, false, None);
    assert_eq!(r.report.failed.len(), 1, "{:?}", r.report.failed);
    let (addr, msg) = &r.report.failed[0];
    assert_eq!(addr, "azure.vm.fabrikam-validator-0");
    assert!(
        msg.contains("QuotaExceeded") && msg.contains("Total Regional Cores"),
        "{msg}"
    );
    assert!(
        msg.contains("virtualMachines/fabrikam-validator-0-vm"),
        "{msg}"
    );
    assert!(msg.contains("quota increase"), "{msg}");
    let r = run(&p, &topo, &e.sd, false, None);
    assert!(r.report.failed.is_empty(), "{:?}", r.report.failed);
    assert_eq!(azure_addrs(&state(&e.sd)).len(), 19);
}

#[test]
fn refresh_shows_drift_and_apply_repairs_it() {
    let fake = FakeArm::start();
    let topo = topology(&[("contoso", 1, 1)], Some(&fake.subscription_id()));
    let p = provider(&fake, &topo);
    let e = env();
    assert!(run(&p, &topo, &e.sd, false, None).report.failed.is_empty());
    let pip = format!(
        "/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Network/publicIPAddresses/contoso-tx-0-pip",
        fake.subscription_id()
    );
    assert!(fake.remove(&pip));
    let drift = p.refresh(&topo, &state(&e.sd));
    assert_eq!(
        drift,
        BTreeMap::from([(
            "azure.pip.contoso-tx-0".to_string(),
            "recreate (deleted outside consort)".to_string()
        )])
    );
    let pl = plan(&p, &topo, &e.sd, false, true);
    let changed: Vec<(&str, Action)> = pl
        .changes
        .iter()
        .map(|c| (c.addr.as_str(), c.action))
        .collect();
    assert_eq!(changed, [("azure.pip.contoso-tx-0", Action::Update)]);
    fake.clear_log();
    let r = {
        // apply with the refreshed plan
        let st = state(&e.sd);
        let interrupted = AtomicBool::new(false);
        let ctx = ApplyCtx {
            topology: &topo,
            state: Mutex::new(st),
            state_dir: &e.sd,
            events: consort::events::null_sink(),
            interrupted: &interrupted,
            health_timeout: Duration::from_secs(10),
            failed: Default::default(),
            peering: Default::default(),
        };
        execute(&p, &ctx, &pl.changes).unwrap()
    };
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(fake.resource(&pip).is_some());
    assert_eq!(fake.count("PUT", "/"), 1);
    assert!(p.refresh(&topo, &state(&e.sd)).is_empty());
}

#[test]
fn destroy_goes_in_reverse_order_and_keeps_a_group_with_foreign_resources() {
    let fake = FakeArm::start();
    let topo = topology(
        &[("contoso", 1, 1), ("fabrikam", 1, 0)],
        Some(&fake.subscription_id()),
    );
    let p = provider(&fake, &topo);
    let e = env();
    assert!(run(&p, &topo, &e.sd, false, None).report.failed.is_empty());
    let foreign = fake.add_foreign(RG, "Microsoft.Storage/storageAccounts", "someonesdata");
    fake.clear_log();

    let r = run(&p, &topo, &e.sd, true, None);
    assert_eq!(r.report.failed.len(), 1, "{:?}", r.report.failed);
    let (addr, msg) = &r.report.failed[0];
    assert_eq!(addr, "azure.rg");
    assert!(
        msg.contains("refusing to delete resource group consort-tradelane"),
        "{msg}"
    );
    assert!(
        msg.contains("someonesdata (Microsoft.Storage/storageAccounts)"),
        "{msg}"
    );
    // Only the group and the foreign resource are left; state keeps just the group.
    let mut left = fake.ids();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&foreign));
    assert_eq!(azure_addrs(&state(&e.sd)), ["azure.rg"]);

    // Reverse dependency order, from the DELETE log.
    let deletes: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|l| l.method == "DELETE")
        .map(|l| l.path.rsplit('/').next().unwrap().to_string())
        .collect();
    let pos = |name: &str| {
        deletes
            .iter()
            .position(|d| d == name)
            .unwrap_or_else(|| panic!("{name} not deleted: {deletes:?}"))
    };
    for n in [
        "contoso-validator-0",
        "contoso-tx-0",
        "fabrikam-validator-0",
    ] {
        assert!(
            pos(&format!("{n}-vm")) < pos(&format!("{n}-nic")),
            "{deletes:?}"
        );
    }
    assert!(pos("contoso-tx-0-nic") < pos("contoso-tx-0-pip"));
    assert!(pos("contoso-tx-0-nic") < pos("contoso-subnet"));
    assert!(pos("contoso-subnet") < pos("contoso-nsg"));
    assert!(pos("contoso-subnet") < pos("tradelane-vnet"));
    assert!(pos("fabrikam-subnet") < pos("tradelane-vnet"));
    assert!(
        !deletes.iter().any(|d| d == RG),
        "group must not be deleted"
    );

    // Once the foreign resource is gone, destroy finishes and takes the group.
    assert!(fake.remove(&foreign));
    let r = run(&p, &topo, &e.sd, true, None);
    assert!(r.report.failed.is_empty(), "{:?}", r.report.failed);
    assert!(fake.ids().is_empty(), "{:?}", fake.ids());
    assert!(e
        .sd
        .load()
        .unwrap()
        .map(|s| azure_addrs(&s).is_empty())
        .unwrap_or(true));
}

/// The real binary: offline plan without credentials, then apply / re-plan / destroy
/// against the stand-in through CONSORT_ARM_ENDPOINT + CONSORT_ARM_TOKEN.
#[test]
fn cli_plans_offline_and_applies_through_the_endpoint_override() {
    let fake = FakeArm::start();
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/azure.yaml");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(text.contains(&fake.subscription_id()));
    std::fs::write(dir.path().join("consort.yaml"), text).unwrap();
    let cmd = |args: &[&str], endpoint: bool| {
        let mut c = crate::support::consort_cmd(dir.path(), args);
        c.env_remove("CONSORT_ARM_ENDPOINT")
            .env_remove("CONSORT_ARM_TOKEN")
            .env_remove("CONSORT_VAULT_TOKEN")
            .env_remove("AZURE_SUBSCRIPTION_ID");
        if endpoint {
            c.env("CONSORT_ARM_ENDPOINT", fake.url())
                .env("CONSORT_ARM_TOKEN", fake.token())
                .env("CONSORT_VAULT_TOKEN", fake.vault_token());
        }
        let out = c.output().unwrap();
        let (so, se) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "consort {args:?} failed:\n{so}\n{se}");
        so
    };
    let plan = cmd(&["plan"], false);
    assert!(plan.contains("azure.vm.contoso-tx-0"), "{plan}");
    assert!(plan.contains("azure.pip.contoso-tx-0"), "{plan}");
    assert!(!plan.contains("azure.pip.fabrikam"), "{plan}");
    assert!(fake.requests().is_empty(), "plan must be offline");

    cmd(&["apply", "--yes", "--skip-health-check"], true);
    assert_eq!(
        fake.count("PUT", "/virtualMachines/"),
        4,
        "{:#?}",
        fake.requests()
    );
    fake.clear_log();
    let again = cmd(&["plan"], false);
    assert!(again.contains("No changes"), "{again}");
    let refreshed = cmd(&["plan", "--refresh"], true);
    assert!(refreshed.contains("No changes"), "{refreshed}");
    assert_eq!(fake.count("PUT", "/"), 0);

    cmd(&["destroy", "--yes"], true);
    assert!(fake.ids().is_empty(), "{:?}", fake.ids());
}

#[test]
fn export_arm_template_matches_what_apply_sends() {
    use consort::provider::azure::{export_arm, export_arm_with_state, node_parameter};
    use std::os::unix::fs::PermissionsExt;
    let fake = FakeArm::start();
    let topo = topology(
        &[("contoso", 1, 1), ("fabrikam", 1, 0)],
        Some(&fake.subscription_id()),
    );
    let out = tempfile::tempdir().unwrap();

    // Before any apply: the template is complete, customData is left as parameters.
    let files = export_arm(&topo, out.path()).unwrap();
    assert_eq!(files.len(), 2);
    let t: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let res = t["resources"].as_array().unwrap();
    let of = |ty: &str| res.iter().filter(|r| r["type"] == ty).collect::<Vec<_>>();
    assert_eq!(of("Microsoft.Network/networkSecurityGroups").len(), 2);
    assert_eq!(of("Microsoft.Network/virtualNetworks").len(), 1);
    // The tx node's and the NAT gateway's.
    assert_eq!(of("Microsoft.Network/publicIPAddresses").len(), 2);
    assert_eq!(of("Microsoft.Network/networkInterfaces").len(), 3);
    assert_eq!(of("Microsoft.Compute/virtualMachines").len(), 3);
    let vnet = of("Microsoft.Network/virtualNetworks")[0];
    assert_eq!(vnet["properties"]["subnets"].as_array().unwrap().len(), 2);
    assert_eq!(
        vnet["properties"]["subnets"][0]["properties"]["networkSecurityGroup"]["id"],
        "[resourceId('Microsoft.Network/networkSecurityGroups', 'contoso-nsg')]"
    );
    let vnic = res
        .iter()
        .find(|r| r["name"] == "fabrikam-validator-0-nic")
        .unwrap();
    assert!(vnic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"].is_null());
    let vm = res.iter().find(|r| r["name"] == "contoso-tx-0-vm").unwrap();
    assert_eq!(
        vm["properties"]["osProfile"]["customData"],
        "[parameters('node_contoso_tx_0').customData]"
    );
    assert_eq!(
        vm["properties"]["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"],
        true
    );
    assert_eq!(
        vm["dependsOn"][0],
        "[resourceId('Microsoft.Network/networkInterfaces', 'contoso-tx-0-nic')]"
    );
    assert_eq!(vm["identity"]["type"], "SystemAssigned");
    assert!(vm["properties"].get("timeCreated").is_none());
    // customData holds no secret; it and the node's secrets are one secureObject per node.
    assert_eq!(t["parameters"]["node_contoso_tx_0"]["type"], "secureObject");
    assert_eq!(t["parameters"].as_object().unwrap().len(), 1 + 3);
    let password = res
        .iter()
        .find(|r| {
            r["name"]
                == format!(
                    "{}/contoso-validator-0-password",
                    of("Microsoft.KeyVault/vaults")[0]["name"].as_str().unwrap()
                )
        })
        .unwrap();
    assert_eq!(
        password["properties"]["value"],
        "[parameters('node_contoso_validator_0').secrets['contoso-validator-0-password']]"
    );
    assert_eq!(of("Microsoft.KeyVault/vaults").len(), 1);
    assert_eq!(of("Microsoft.KeyVault/vaults/secrets").len(), 7);
    assert_eq!(of("Microsoft.Network/natGateways").len(), 1);
    let grants = of("Microsoft.Authorization/roleAssignments");
    assert_eq!(grants.len(), 7, "one per VM secret");
    assert!(grants.iter().all(|g| g["properties"]["roleDefinitionId"]
        .as_str()
        .unwrap()
        .contains("4633458b-17de-408a-b874-0445c86b69e6")));
    template_resolves(&t);
    use crate::arm_schema::{parameters_schema, template_schema, violations};
    assert_eq!(violations(&template_schema(), &t), Vec::<String>::new());
    let p: Value = serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
    assert_eq!(violations(&parameters_schema(), &p), Vec::<String>::new());
    assert!(p["parameters"].get("node_contoso_tx_0").is_none());
    assert!(
        p.get("metadata").is_none(),
        "not allowed by the parameters schema"
    );
    assert!(t["metadata"]["parameters"]
        .as_str()
        .unwrap()
        .contains("consort apply"));

    // After apply: the parameters file holds the very customData apply sent (0600).
    let p_ = provider(&fake, &topo);
    let e = env();
    assert!(run(&p_, &topo, &e.sd, false, None).report.failed.is_empty());
    let files = export_arm_with_state(&topo, Some(&state(&e.sd)), out.path()).unwrap();
    let mode = std::fs::metadata(&files[1]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let p: Value = serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
    crate::azure_behaviours::parameters_file_is_valid(&p);
    assert_eq!(violations(&parameters_schema(), &p), Vec::<String>::new());
    for n in [
        "contoso-validator-0",
        "contoso-tx-0",
        "fabrikam-validator-0",
    ] {
        let b64 = p["parameters"][node_parameter(n)]["value"]["customData"]
            .as_str()
            .unwrap();
        let sent = fake
            .custom_data(&format!(
                "/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{n}-vm",
                fake.subscription_id()
            ))
            .unwrap();
        let exported = String::from_utf8(azure_core::base64::decode(b64).unwrap()).unwrap();
        assert_eq!(exported, sent, "{n}");
    }
    // The secrets are parameter values (the 0600 file), never in the template.
    let st = state(&e.sd);
    let template = std::fs::read_to_string(&files[0]).unwrap();
    for n in [
        "contoso-validator-0",
        "contoso-tx-0",
        "fabrikam-validator-0",
    ] {
        let key =
            std::fs::read_to_string(st.output_str(&format!("key.node.{n}"), "key_file").unwrap())
                .unwrap();
        assert!(
            !template.contains(key.trim()),
            "{n}'s node key in the template"
        );
        assert_eq!(
            p["parameters"][node_parameter(n)]["value"]["secrets"][format!("{n}-nodekey")].as_str(),
            Some(key.trim())
        );
    }
}

/// Every `parameters('x')` names a declared parameter, and every `resourceId(...)` in a
/// `dependsOn` names a resource of the template.
fn template_resolves(t: &Value) {
    let text = t["resources"].to_string();
    let declared = t["parameters"].as_object().unwrap();
    for part in text.split("parameters('").skip(1) {
        let name = part.split('\'').next().unwrap();
        assert!(
            declared.contains_key(name),
            "parameters('{name}') is not declared"
        );
    }
    let resources = t["resources"].as_array().unwrap();
    let ids: Vec<String> = resources
        .iter()
        .map(|r| {
            let ty = r["type"].as_str().unwrap();
            let name = r["name"].as_str().unwrap();
            let parts: Vec<String> = name.split('/').map(|p| format!("'{p}'")).collect();
            format!("[resourceId('{ty}', {})]", parts.join(", "))
        })
        .collect();
    for r in resources {
        for d in r["dependsOn"].as_array().into_iter().flatten() {
            let d = d.as_str().unwrap();
            assert!(
                ids.iter().any(|i| i == d),
                "{} depends on {d}, which is not in the template",
                r["name"]
            );
        }
    }
}

/// Long-running ARM operations on the plan's longest dependency chain (every Azure change
/// but the synchronous resource group PUT).
fn critical_path_ops(pl: &Plan) -> usize {
    pl.longest_chain(|c| {
        u32::from(c.addr.starts_with("azure.") && c.kind != Kind::AzureResourceGroup)
    }) as usize
}

/// Issue 12: a 100-VM network goes out in parallel waves, and a throttled request waits for
/// its own Retry-After without holding the others back. (The time against the critical path
/// is measured, with medians, by `cargo bench --bench azure_apply`; here it is only printed,
/// and the waves are checked by the peak number of operations the stand-in saw at once.)
#[test]
fn a_hundred_vms_apply_in_waves_and_throttling_delays_only_the_throttled() {
    // Long enough that key generation (CPU, beside the first ARM waves) is off the
    // critical path, as it is on Azure where a VM takes a minute.
    let latency = Duration::from_millis(800);
    let fake = FakeArm::with_config(FakeArmConfig {
        latency,
        polls_in_progress: 1,
        // As ARM: come back after about a tenth of an operation.
        poll_retry_after_ms: Some(80),
        ..Default::default()
    });
    // Five VM PUTs are throttled once for a second.
    fake.throttle(Throttle {
        method: Some("PUT".into()),
        path_contains: Some("/virtualMachines/".into()),
        times: 5,
        retry_after_secs: 1,
        status: 429,
    });
    let names: Vec<String> = (0..50).map(|i| format!("org{i}")).collect();
    let members: Vec<(&str, u32, u32)> = names.iter().map(|n| (n.as_str(), 1, 1)).collect();
    let topo = topology(&members, Some(&fake.subscription_id()));
    let p = provider(&fake, &topo);
    let e = env();
    let pl = plan(&p, &topo, &e.sd, false, false);
    let vms = pl
        .changes
        .iter()
        .filter(|c| c.kind == Kind::AzureVm)
        .count();
    assert_eq!(vms, 100);
    let chain = critical_path_ops(&pl);
    let r = run(&p, &topo, &e.sd, false, None);
    assert!(r.report.failed.is_empty(), "{:#?}", r.report.failed);
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|l| l.method == "PUT" && l.path.contains("/virtualMachines/"))
            .count(),
        105,
        "each VM PUT once, the 5 throttled ones twice"
    );
    let critical = latency * chain as u32;
    eprintln!(
        "azure 100 VMs: {} changes, critical path {chain} ARM operations x {latency:?} = {critical:?} (+1 s Retry-After on the throttled VMs); apply took {:?} = {:.2}x; peak concurrent operations {}",
        pl.changes.len(),
        r.took,
        r.took.as_secs_f64() / (critical + Duration::from_secs(1)).as_secs_f64(),
        fake.peak_concurrent_operations()
    );
    // A wave of 100 NICs / VMs runs at once, not 16 at a time.
    assert!(
        fake.peak_concurrent_operations() >= 90,
        "peak {}",
        fake.peak_concurrent_operations()
    );
    // (Its time against the critical path: `cargo bench --bench azure_apply`.)
}

/// `rpc.cors_origins` reaches the tx VMs' geth through their customData (the same geth
/// flags the local test preflights), never a validator's; changing the list replaces the tx
/// VM only (its flags live in customData), keeping every validator.
#[test]
fn cors_origins_are_in_the_tx_vms_bootstrap_only_and_a_change_replaces_only_tx_vms() {
    let fake = FakeArm::start();
    let mut topo = topology(&[("contoso", 1, 1)], Some(&fake.subscription_id()));
    topo.rpc.cors_origins = vec!["http://localhost:5173".into()];
    let p = provider(&fake, &topo);
    let e = env();
    let r = run(&p, &topo, &e.sd, false, None);
    assert!(r.report.failed.is_empty(), "{:#?}", r.report.failed);
    let vm_id = |n: &str| {
        format!("/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{n}-vm", fake.subscription_id())
    };
    let tx = fake.custom_data(&vm_id("contoso-tx-0")).unwrap();
    assert!(
        tx.contains("--http.corsdomain=http://localhost:5173"),
        "{tx}"
    );
    let v = fake.custom_data(&vm_id("contoso-validator-0")).unwrap();
    assert!(
        !v.contains("corsdomain") && !v.contains("ws.origins"),
        "{v}"
    );

    topo.rpc.cors_origins.push("https://app.example.com".into());
    let p = provider(&fake, &topo);
    let pl = plan(&p, &topo, &e.sd, false, false);
    let vms: Vec<(&str, Action)> = pl
        .changes
        .iter()
        .filter(|c| c.kind == Kind::AzureVm)
        .map(|c| (c.addr.as_str(), c.action))
        .collect();
    assert_eq!(vms, [("azure.vm.contoso-tx-0", Action::Replace)], "{pl:#?}");
}
