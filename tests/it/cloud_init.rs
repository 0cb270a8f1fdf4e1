//! The Azure VM bootstrap is proven, not just snapshotted: render the cloud-init of a
//! two-member network exactly as the Azure provider does, then carry it out here — each
//! node in its own temp root, write_files written under it, runcmd run with CONSORT_ROOT,
//! the geth download pointed at a tarball of the locally built geth (SHA-256 checked like
//! the real archive), loopback addresses — and see the nodes peer and seal blocks.

use crate::support::{self, poll};
use consort::chain::genesis::genesis_json;
use consort::crypto::keystore::{self, ScryptParams};
use consort::crypto::SecretKey;
use consort::render::{self, vm_paths, CloudInit, CloudKeystore, NodeLaunch, SignerLaunch};
use consort::rpc::RpcClient;
use consort::topology::Clique;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Kills bootstrapped geth processes (from their pid files) even when the test fails.
struct Roots(Vec<PathBuf>);
impl Drop for Roots {
    fn drop(&mut self) {
        for root in &self.0 {
            let pidfile = root.join("var/lib/consort/geth/geth.pid");
            if let Ok(pid) = std::fs::read_to_string(&pidfile) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    // SAFETY: signalling a pid our bootstrap wrote for its own geth.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

/// A release-style archive (`geth-linux-amd64-…/geth`) of the local geth, and its SHA-256.
fn geth_tarball(dir: &Path) -> (PathBuf, String) {
    let inner = dir.join("geth-linux-amd64-1.13.15-local");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::copy(&support::geth().path, inner.join("geth")).unwrap();
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
    let sha = hex::encode(Sha256::digest(std::fs::read(&tar).unwrap()));
    (tar, sha)
}

/// Writes every write_files entry under `root` with its permissions.
fn write_files(root: &Path, cloud_init: &str) -> serde_yaml::Value {
    assert!(cloud_init.starts_with("#cloud-config\n"));
    let doc: serde_yaml::Value = serde_yaml::from_str(cloud_init).expect("cloud-init is YAML");
    for f in doc["write_files"].as_sequence().expect("write_files") {
        let path = root.join(f["path"].as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, f["content"].as_str().unwrap()).unwrap();
        let mode = u32::from_str_radix(f["permissions"].as_str().unwrap(), 8).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    doc
}

/// Runs runcmd the way cloud-init would, with the root prefix and the local download.
fn run_cmds(root: &Path, doc: &serde_yaml::Value, url: &str, sha: &str) -> std::process::Output {
    let cmds = doc["runcmd"].as_sequence().expect("runcmd");
    assert_eq!(cmds.len(), 1, "one bootstrap command");
    let argv: Vec<String> = cmds[0]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with('/') {
                root.join(a.trim_start_matches('/'))
                    .to_string_lossy()
                    .into_owned()
            } else {
                a.to_string()
            }
        })
        .collect();
    Command::new(&argv[0])
        .args(&argv[1..])
        .env("CONSORT_ROOT", root)
        .env("CONSORT_GETH_URL", url)
        .env("CONSORT_GETH_SHA256", sha)
        .env("CONSORT_NO_SYSTEMD", "1")
        .output()
        .unwrap()
}

#[test]
fn rendered_bootstrap_brings_up_two_members_that_peer_and_seal() {
    let tmp = tempfile::tempdir().unwrap();
    let (tar, sha) = geth_tarball(tmp.path());
    let url = format!("file://{}", tar.display());

    // Two members with one validator each: Clique with two signers needs both to seal.
    let names = ["alpha-validator-0", "beta-validator-0"];
    let node_keys: Vec<SecretKey> = names.iter().map(|_| SecretKey::random()).collect();
    let signers: Vec<SecretKey> = names.iter().map(|_| SecretKey::random()).collect();
    let ports: Vec<_> = names.iter().map(|_| support::node_ports()).collect();
    let addrs: Vec<_> = signers.iter().map(|k| k.address()).collect();
    let chain_id = 424_242;
    let genesis = genesis_json(
        chain_id,
        Clique {
            period: 1,
            epoch: 30000,
        },
        30_000_000,
        &addrs,
        &[],
    );

    let roots = Roots(names.iter().map(|n| tmp.path().join(n)).collect());
    for (i, name) in names.iter().enumerate() {
        let static_nodes: Vec<String> = (0..names.len())
            .filter(|&j| j != i)
            .map(|j| render::enode_url(&node_keys[j].enode_id(), "127.0.0.1", ports[j].p2p))
            .collect();
        let password = keystore::random_password();
        let ks = keystore::encrypt(&signers[i], &password, ScryptParams::LIGHT);
        let node = NodeLaunch {
            network: "cloudtest".into(),
            node_name: name.to_string(),
            geth_version: "1.13.15".into(),
            chain_id,
            datadir: vm_paths::DATADIR.into(),
            config_path: vm_paths::CONFIG.into(),
            nodekey_path: vm_paths::NODEKEY.into(),
            listen_addr: "127.0.0.1".into(),
            p2p_port: ports[i].p2p,
            nat: "none".into(),
            http_addr: "127.0.0.1".into(),
            // A validator VM serves no TCP RPC: the test, like Run Command, uses IPC.
            http_port: None,
            ws_port: None,
            metrics_port: None,
            authrpc_port: 0,
            ipc_path: vm_paths::IPC.into(),
            // What Azure renders with the VNet's range; here the loopback range.
            netrestrict: Some("127.0.0.0/8".into()),
            cache_mb: 64,
            verbosity: 3,
            max_peers: 50,
            trusted_nodes: static_nodes.clone(),
            static_nodes,
            signer: Some(SignerLaunch {
                address: addrs[i].to_checksum(),
                keystore_dir: vm_paths::KEYSTORE_DIR.into(),
                password_file: vm_paths::PASSWORD.into(),
                mine: true,
            }),
        };
        let text = render::cloud_init(&CloudInit {
            node,
            member: name.split('-').next().unwrap().into(),
            role: "validator".into(),
            geth_version: "1.13.15".into(),
            geth_url: render::GETH_RELEASE_URL.into(),
            geth_sha256: render::GETH_RELEASE_SHA256.into(),
            genesis_json: serde_json::to_string_pretty(&genesis).unwrap(),
            nodekey: node_keys[i].to_hex(),
            keystore: Some(CloudKeystore {
                file_name: keystore::file_name(&addrs[i], time::OffsetDateTime::now_utc()),
                json: ks.to_string(),
            }),
            password: Some(password.clone()),
        })
        .unwrap();
        // Only this node's secrets are in its customData.
        for (j, other) in signers.iter().enumerate().filter(|(j, _)| *j != i) {
            assert!(
                !text.contains(&node_keys[j].to_hex()),
                "node key of node {j} leaked"
            );
            assert!(!text.contains(&other.to_hex()));
        }
        let root = &roots.0[i];
        let doc = write_files(root, &text);
        let mode = std::fs::metadata(root.join("var/lib/consort/password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let out = run_cmds(root, &doc, &url, &sha);
        assert!(
            out.status.success(),
            "bootstrap of {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let rpcs: Vec<RpcClient> = roots
        .0
        .iter()
        .map(|r| RpcClient::ipc(r.join("var/lib/consort/geth/geth.ipc")))
        .collect();
    // The bootstrapped geth runs without HTTP/WS and with the VNet restriction.
    for r in &roots.0 {
        let pid: u32 = std::fs::read_to_string(r.join("var/lib/consort/geth/geth.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let args = poll("geth to exec", Duration::from_secs(10), || {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(|e| e.to_string())?;
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Ok(args
                .iter()
                .any(|a| a.starts_with("--datadir"))
                .then_some(args))
        });
        assert!(
            !args.iter().any(|a| a == "--http" || a == "--ws"),
            "{args:?}"
        );
        assert!(
            args.contains(&"--netrestrict=127.0.0.0/8".to_string()),
            "{args:?}"
        );
    }
    let log = |i: usize| {
        std::fs::read_to_string(roots.0[i].join("var/lib/consort/geth/geth.log"))
            .unwrap_or_default()
    };
    for (i, rpc) in rpcs.iter().enumerate() {
        poll(
            &format!("{} to peer", names[i]),
            Duration::from_secs(60),
            || match rpc.net_peer_count() {
                Ok(n) if n >= 1 => Ok(Some(())),
                Ok(n) => Ok(None).map_err(|_: ()| format!("{n} peers")),
                Err(e) => Err(format!("{e}\n{}", log(i))),
            },
        );
    }
    // Both signers must take turns for the head to pass 3 with N = 2.
    let head = poll(
        "blocks to be sealed",
        Duration::from_secs(60),
        || match rpcs[0].block_number() {
            Ok(n) if n >= 4 => Ok(Some(n)),
            Ok(n) => Err(format!("head {n}")),
            Err(e) => Err(e.to_string()),
        },
    );
    assert!(head >= 4);
    let mut signers_seen = rpcs[1].clique_get_signers().unwrap();
    signers_seen.sort();
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(signers_seen, want);
    assert_eq!(
        rpcs[0].genesis_hash().unwrap(),
        rpcs[1].genesis_hash().unwrap(),
        "same genesis on both nodes"
    );
    drop(roots);
}

#[test]
fn bootstrap_refuses_an_archive_with_the_wrong_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let (tar, _sha) = geth_tarball(tmp.path());
    let key = SecretKey::random();
    let p = support::node_ports();
    let text = render::cloud_init(&CloudInit {
        node: NodeLaunch {
            network: "cloudtest".into(),
            node_name: "alpha-tx-0".into(),
            geth_version: "1.13.15".into(),
            chain_id: 424_243,
            datadir: vm_paths::DATADIR.into(),
            config_path: vm_paths::CONFIG.into(),
            nodekey_path: vm_paths::NODEKEY.into(),
            listen_addr: "127.0.0.1".into(),
            p2p_port: p.p2p,
            nat: "none".into(),
            http_addr: "127.0.0.1".into(),
            http_port: p.http,
            ws_port: None,
            metrics_port: None,
            authrpc_port: 0,
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
        nodekey: key.to_hex(),
        keystore: None,
        password: None,
    })
    .unwrap();
    let root = tmp.path().join("node");
    let _guard = Roots(vec![root.clone()]);
    let doc = write_files(&root, &text);
    let out = run_cmds(
        &root,
        &doc,
        &format!("file://{}", tar.display()),
        &"0".repeat(64),
    );
    assert!(
        !out.status.success(),
        "a wrong checksum must stop the bootstrap"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !root.join("usr/local/bin/geth").exists(),
        "nothing installed"
    );
}
