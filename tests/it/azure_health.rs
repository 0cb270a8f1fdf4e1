//! An Azure apply that waits for health on VMs booted from their customData (no
//! `--skip-health-check`), and what proves the wait is real: a VM served a tampered geth
//! archive refuses it (the bootstrap checks the pinned SHA-256), never runs it, and the
//! apply that added it fails within its --timeout naming that node — while the rest of the
//! chain seals on, so a check of the tx nodes alone would have called it healthy. Also the
//! read-only commands through the binary on that network, and a boot whose IMDS answers
//! 429 with Retry-After at first.

use crate::azure_cli::{
    boot_log, booting_checkout, cli, cli_ok, ipc, signer_address, sorted_signers, topology_with,
    vm_root, NET,
};
use crate::fake_arm::{vm_host, vm_host::BootConfig, FakeArm, Throttle};
use crate::support::poll;
use consort::state::StateDir;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// An archive laid out like geth's release whose `geth` is not geth: run, it leaves
/// `ran` behind.
fn tampered_archive(dir: &Path, ran: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let inner = dir.join("geth-linux-amd64-1.13.15-local");
    std::fs::create_dir_all(&inner).unwrap();
    let geth = inner.join("geth");
    std::fs::write(
        &geth,
        format!(
            "#!/bin/sh\ntouch '{}'\necho 'Version: 1.13.15'\n",
            ran.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&geth, std::fs::Permissions::from_mode(0o755)).unwrap();
    crate::cloud_init::release_archive(dir)
}

pub(crate) fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn apply_waits_for_health_on_booted_vms_and_a_vm_refusing_a_tampered_geth_fails_it_by_name() {
    let _vnet = vm_host::loopback_vnet();
    let fake = FakeArm::start();
    // Public IPs of their own, NATed to the VMs' private IPs as Azure does: the health
    // check reaches the tx node's RPC from here at its public address.
    fake.configure(|c| {
        c.public_ip_prefix = "127.0.98.".into();
        c.public_ip_nat = true;
    });
    // IMDS throttles the first two token requests of alpha's validator with Retry-After
    // 3 (longer than the bootstrap's own --retry-delay, so the gap shows whose it was).
    fake.throttle(Throttle {
        method: Some("GET".into()),
        path_contains: Some("/imds/alpha-validator-0-vm/".into()),
        times: 2,
        retry_after_secs: 3,
        status: 429,
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = booting_checkout(
        &fake,
        tmp.path(),
        &topology_with(&fake, "127.0.0.0/16", "consort-health", 1, "[127.0.0.0/8]"),
    );
    let sd = StateDir::new(&dir.join(".consort"), NET);

    // No --skip-health-check: apply returns once the network is healthy, and says so.
    let out = cli_ok(&fake, &dir, &["apply", "--yes", "--timeout", "240"]);
    assert!(out.contains(&format!("Network {NET} is healthy")), "{out}");
    // Which it is: every VM bootstrapped, both signers seal, the signer set is the plan's,
    // and the validators are peered.
    let (a, b) = (
        signer_address(&sd, "alpha-validator-0"),
        signer_address(&sd, "beta-validator-0"),
    );
    let mut two = vec![a, b];
    two.sort();
    let alpha = vm_root(&fake, "alpha-validator-0");
    let beta = vm_root(&fake, "beta-validator-0");
    for root in [&alpha, &beta, &vm_root(&fake, "alpha-tx-0")] {
        assert!(
            root.join("var/lib/consort/bootstrapped").exists(),
            "{}",
            boot_log(root)
        );
    }
    for root in [&alpha, &beta] {
        assert_eq!(sorted_signers(&ipc(root)).unwrap(), two);
        let peers = ipc(root).net_peer_count().unwrap();
        assert!(peers >= 1, "{}", boot_log(root));
    }
    let head = ipc(&alpha).block_number().unwrap();
    poll("the head to advance", Duration::from_secs(30), || {
        let now = ipc(&beta).block_number().map_err(|e| e.to_string())?;
        Ok((now > head).then_some(()))
    });

    // IMDS answered 429 twice; curl waited the Retry-After it stated (3 s, not its own
    // --retry-delay) and the bootstrap's first attempt got its token.
    let imds: Vec<Duration> = fake
        .requests()
        .iter()
        .filter(|l| l.path.contains("/imds/alpha-validator-0-vm/"))
        .map(|l| l.at)
        .collect();
    assert!(imds.len() >= 3, "{imds:?}");
    for w in imds[..3].windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(2900),
            "retried {:?} after a 429 with Retry-After 3: {imds:?}",
            w[1] - w[0]
        );
    }
    let log = std::fs::read_to_string(alpha.join("boot.log")).unwrap();
    assert!(!log.contains("bootstrap attempt"), "{log}");

    // status, status --json: healthy, the tx node at its public RPC.
    let status = cli_ok(&fake, &dir, &["status"]);
    assert!(
        status.contains(&format!("Network {NET}: healthy")),
        "{status}"
    );
    let out = cli(&fake, &dir, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["healthy"], true, "{json}");
    let tx = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "alpha-tx-0")
        .unwrap_or_else(|| panic!("{json}"));
    let st = sd.load().unwrap().unwrap();
    let public = st
        .output_str("azure.pip.alpha-tx-0", "ip_address")
        .unwrap_or_else(|| panic!("{:?}", st.resources["azure.pip.alpha-tx-0"]));
    assert!(public.starts_with("127.0.98."), "{public}");
    assert_eq!(tx["rpc_url"], format!("http://{public}:8545"), "{json}");
    assert!(tx["block"].as_u64().unwrap() > 0, "{json}");

    // output, in each format, names the endpoint that answers: the tx node's public RPC.
    let url = format!("http://{public}:8545");
    let chain_id = consort::rpc::RpcClient::new(url.clone())
        .call_raw("eth_chainId", serde_json::json!([]))
        .unwrap();
    assert_eq!(chain_id, serde_json::json!("0x7dc4f"), "{url}");
    for (format, want) in [
        ("text", format!("RPC URL {url}")),
        ("json", format!("\"rpc_url\": \"{url}\"")),
        ("env", format!("export ETH_RPC_URL={url}")),
        ("foundry", format!("eth_rpc_url = \"{url}\"")),
    ] {
        let out = cli(&fake, &dir, &["output", "--format", format]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&want),
            "{format}: {}",
            text(&out)
        );
        // Validators have no public RPC, and no view claims one.
        assert_eq!(
            stdout.matches(&url).count(),
            stdout.matches(&public).count(),
            "{stdout}"
        );
    }
    // Prometheus: Azure nodes serve no metrics, and it says so rather than "older consort".
    let out = cli(&fake, &dir, &["output", "--format", "prometheus"]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("run on Azure, where geth serves no metrics"),
        "{err}"
    );

    // logs: geth's log read on the VMs by Run Command; a node alone as it is, several
    // prefixed with their names; -F cannot follow a log on a VM.
    let out = cli(&fake, &dir, &["logs", "alpha-tx-0", "-n", "5"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    let on_vm =
        std::fs::read_to_string(vm_root(&fake, "alpha-tx-0").join("var/lib/consort/geth/geth.log"))
            .unwrap();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 5, "{shown}");
    for l in &lines {
        assert!(on_vm.contains(l), "{l:?} is not in the VM's geth.log");
    }
    let out = cli(&fake, &dir, &["logs", "-n", "3"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    for node in ["alpha-validator-0", "alpha-tx-0", "beta-validator-0"] {
        assert_eq!(
            shown
                .lines()
                .filter(|l| l.starts_with(&format!("{node} ")))
                .count(),
            3,
            "{shown}"
        );
    }
    let out = cli(&fake, &dir, &["logs", "alpha-tx-0", "-F"]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("-F follows log files on this machine"),
        "{err}"
    );

    // export arm: the template of what runs, one parameter per node, valid JSON.
    cli_ok(&fake, &dir, &["export", "arm", "-o", "arm"]);
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("arm/azuredeploy.json")).unwrap())
            .unwrap();
    let params = template["parameters"].as_object().unwrap();
    for node in ["alpha-validator-0", "alpha-tx-0", "beta-validator-0"] {
        assert!(
            params
                .keys()
                .any(|k| k.contains(&node.replace('-', "_")) || k.contains(node)),
            "{node}: {:?}",
            params.keys()
        );
    }
    let resources = template["resources"].to_string();
    assert!(resources.contains("alpha-tx-0-pip"), "{resources}");

    // gamma joins with a validator whose VM is served a tampered archive under the
    // official archive's pinned digest: the bootstrap refuses it, and the apply (with the
    // health check) fails within its --timeout, naming gamma's node.
    let genuine = std::fs::read(tmp.path().join("dl/geth.tar.gz")).unwrap();
    let ran = tmp.path().join("tampered-geth-ran");
    let evil = tampered_archive(&tmp.path().join("evil"), &ran);
    fake.boot_vms(BootConfig {
        dir: tmp.path().join("vms"),
        geth_url: format!("file://{}", evil.display()),
        geth_sha256: hex::encode(Sha256::digest(&genuine)),
    });
    let started = std::time::Instant::now();
    let out = cli(
        &fake,
        &dir,
        &[
            "member",
            "add",
            "gamma",
            "--validators",
            "1",
            "--tx-nodes",
            "0",
            "--yes",
            "--timeout",
            "30",
        ],
    );
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("did not become healthy within 30s"), "{err}");
    assert!(
        err.contains("gamma-validator-0 (VM gamma-validator-0-vm): geth is not running"),
        "{err}"
    );
    assert!(!err.contains(&format!("Network {NET} is healthy")), "{err}");
    // The VM refused the archive: nothing installed, no marker, the impostor never ran.
    let gamma = vm_root(&fake, "gamma-validator-0");
    let log = std::fs::read_to_string(gamma.join("boot.log")).unwrap();
    assert!(log.contains("geth archive checksum mismatch"), "{log}");
    assert!(!gamma.join("usr/local/bin/geth").exists());
    assert!(!gamma.join("var/lib/consort/bootstrapped").exists());
    assert!(!ran.exists(), "the tampered geth ran");
    // Meanwhile the others seal on (two of three signers suffice), which is all the tx
    // node's RPC shows.
    let head = ipc(&alpha).block_number().unwrap();
    poll("the chain to go on", Duration::from_secs(30), || {
        let now = ipc(&beta).block_number().map_err(|e| e.to_string())?;
        Ok((now > head).then_some(()))
    });
}
