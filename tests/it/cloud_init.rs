//! The Azure VM bootstrap is proven, not just snapshotted: what the Azure provider renders
//! is carried out here — each VM in its own temp root, write_files written under it, the
//! runcmd run with CONSORT_ROOT, the geth download pointed at a tarball of the locally
//! built geth (SHA-256 checked like the real archive). The whole flow (secrets fetched
//! from the stand-in IMDS + Key Vault, peering, sealing started by the on-VM step, votes
//! by Run Command) runs in `azure_cli`, whose VMs boot through
//! [`crate::fake_arm::vm_host`]; this module holds what that needs and the failure paths.

use crate::fake_arm::vm_host;
use crate::support;
use consort::crypto::SecretKey;
use consort::render::{self, vm_paths, CloudInit, CloudSecret, NodeLaunch};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A release-style archive (`geth-linux-amd64-…/geth`) of the local geth, and its SHA-256.
pub fn geth_tarball(dir: &Path) -> (PathBuf, String) {
    let inner = dir.join("geth-linux-amd64-1.13.15-local");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::copy(&support::geth().path, inner.join("geth")).unwrap();
    let tar = release_archive(dir);
    let sha = hex::encode(Sha256::digest(std::fs::read(&tar).unwrap()));
    (tar, sha)
}

/// `dir/geth.tar.gz` of `dir/geth-linux-amd64-1.13.15-local`, laid out as geth's release
/// archive.
pub fn release_archive(dir: &Path) -> PathBuf {
    let tar = dir.join("geth.tar.gz");
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .arg("geth-linux-amd64-1.13.15-local")
        .status()
        .unwrap();
    assert!(ok.success());
    tar
}

fn tx_cloud_init(p2p: u16) -> String {
    let key = SecretKey::random();
    render::cloud_init(&CloudInit {
        node: NodeLaunch {
            network: "cloudtest".into(),
            node_name: "alpha-tx-0".into(),
            geth_version: "1.13.15".into(),
            chain_id: 424_243,
            datadir: vm_paths::DATADIR.into(),
            config_path: vm_paths::CONFIG.into(),
            nodekey_path: vm_paths::NODEKEY.into(),
            listen_addr: "127.0.0.1".into(),
            p2p_port: p2p,
            nat: "none".into(),
            http_addr: "127.0.0.1".into(),
            http_port: None,
            ws_port: None,
            cors_origins: vec![],
            metrics_port: None,
            authrpc_port: 8551,
            ipc_path: vm_paths::IPC.into(),
            netrestrict: None,
            cache_mb: 64,
            verbosity: 3,
            max_peers: 50,
            static_nodes: vec![],
            trusted_nodes: vec![],
            signer: None,
        },
        member: "alpha".into(),
        role: "tx".into(),
        geth_version: "1.13.15".into(),
        geth_url: render::GETH_RELEASE_URL.into(),
        geth_sha256: render::GETH_RELEASE_SHA256.into(),
        genesis_json: "{}".into(),
        // Never reached: the archive check comes first.
        vault_uri: "http://127.0.0.1:9/kv/none/".into(),
        secrets: vec![CloudSecret {
            name: format!("alpha-tx-0-nodekey-{}", &key.to_hex()[..4]),
            path: vm_paths::NODEKEY.into(),
        }],
        seal_after_peers: vec![],
    })
    .unwrap()
}

#[test]
fn bootstrap_refuses_a_bad_archive_and_retries_with_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let (tar, _sha) = geth_tarball(tmp.path());
    let text = tx_cloud_init(support::node_ports().p2p);
    let root = tmp.path().join("node");
    let doc = vm_host::write_files(&root, &text);
    let out = vm_host::runcmd(&root, &doc)
        .env("CONSORT_GETH_URL", format!("file://{}", tar.display()))
        .env("CONSORT_GETH_SHA256", "0".repeat(64))
        .env("CONSORT_BOOTSTRAP_ATTEMPTS", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a wrong checksum must stop the bootstrap"
    );
    // The oneshot-equivalent: a failed attempt is retried after a backoff, then gives up
    // (on a VM, systemd retries without limit and again at every boot).
    assert_eq!(err.matches("checksum mismatch").count(), 2, "{err}");
    assert!(
        err.contains("bootstrap attempt 1 failed; again in 1s"),
        "{err}"
    );
    assert!(err.contains("bootstrap failed 2 times; giving up"), "{err}");
    assert!(
        !root.join("usr/local/bin/geth").exists(),
        "nothing installed"
    );
    assert!(
        !root.join("var/lib/consort/nodekey").exists(),
        "no secret fetched"
    );
    assert!(
        !root
            .join(vm_paths::BOOTSTRAPPED.trim_start_matches('/'))
            .exists(),
        "not marked done: the next boot tries again"
    );
}

#[test]
fn bootstrap_without_a_managed_identity_token_fails_and_writes_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (tar, sha) = geth_tarball(tmp.path());
    let text = tx_cloud_init(support::node_ports().p2p);
    let root = tmp.path().join("node");
    let doc = vm_host::write_files(&root, &text);
    // An IMDS address where nothing answers: the attempt fails after installing geth.
    let out = vm_host::runcmd(&root, &doc)
        .env("CONSORT_GETH_URL", format!("file://{}", tar.display()))
        .env("CONSORT_GETH_SHA256", &sha)
        .env("CONSORT_IMDS_ENDPOINT", "http://127.0.0.1:9")
        .env("CONSORT_BOOTSTRAP_ATTEMPTS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no managed-identity token from IMDS yet"),
        "{err}"
    );
    assert!(
        root.join("usr/local/bin/geth").exists(),
        "geth was installed"
    );
    assert!(!root.join("var/lib/consort/nodekey").exists());
    assert!(
        !root.join("var/lib/consort/geth/geth.pid").exists(),
        "geth not started"
    );
}
