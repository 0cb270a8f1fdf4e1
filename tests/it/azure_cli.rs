//! The Azure provider end to end through the CLI, against the stand-in ARM server whose
//! VMs really boot here from their customData (see `fake_arm::vm_host`): each VM's
//! bootstrap fetches its secrets from the stand-in IMDS + Key Vault, geth starts without
//! sealing and the on-VM step starts it once peered; `member add` / `member remove` vote
//! through Run Command scripts that run against those real geth nodes; `destroy` leaves
//! nothing, the vault included. And two checkouts of one network never touch each other.

use crate::cloud_init::geth_tarball;
use crate::fake_arm::{vm_host, vm_host::BootConfig, FakeArm};
use crate::support::{self, poll};
use consort::rpc::RpcClient;
use consort::state::StateDir;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub(crate) const NET: &str = "runcmd";

/// A two-member network on a loopback address space (each "VM" binds its private IP).
fn topology(fake: &FakeArm, space: &str, rg: &str) -> String {
    topology_with(fake, space, rg, 0, "[]")
}

/// [`topology`] with `alpha_tx` tx nodes in alpha and RPC open to `rpc_cidrs`.
pub(crate) fn topology_with(
    fake: &FakeArm,
    space: &str,
    rg: &str,
    alpha_tx: u32,
    rpc_cidrs: &str,
) -> String {
    format!(
        "network:
  name: {NET}
  chain_id: 515151
  consensus:
    clique:
      period: 1
members:
  - name: alpha
    validators: 1
    tx_nodes: {alpha_tx}
  - name: beta
    validators: 1
provider:
  azure:
    subscription_id: {sub}
    location: westeurope
    resource_group: {rg}
    address_space: {space}
    admin_username: consort
    ssh_public_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKmrDpj0cZuFTlWgkDTb4s8y1H3fL1yU1Ql9V4Jf1Wq2 you@example\"
    allowed_rpc_cidrs: {rpc_cidrs}
    allowed_ssh_cidrs: []
",
        sub = fake.subscription_id()
    )
}

pub(crate) fn cli(fake: &FakeArm, dir: &Path, args: &[&str]) -> Output {
    let mut c = support::consort_cmd(dir, args);
    c.env("CONSORT_ARM_ENDPOINT", fake.url())
        .env("CONSORT_ARM_TOKEN", fake.token())
        .env("CONSORT_VAULT_TOKEN", fake.vault_token())
        .env_remove("AZURE_SUBSCRIPTION_ID");
    support::run_logged(c, args)
}

pub(crate) fn cli_ok(fake: &FakeArm, dir: &Path, args: &[&str]) -> String {
    let out = cli(fake, dir, args);
    assert!(out.status.success(), "consort {args:?} failed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn ipc(root: &Path) -> RpcClient {
    RpcClient::ipc(root.join("var/lib/consort/geth/geth.ipc"))
}

pub(crate) fn vm_root(fake: &FakeArm, node: &str) -> PathBuf {
    fake.vm_root(&format!("{node}-vm"))
        .unwrap_or_else(|| panic!("{node} did not boot"))
}

pub(crate) fn boot_log(root: &Path) -> String {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    format!(
        "boot.log:\n{}\ngeth.log (tail):\n{}\nseal.log:\n{}",
        read("boot.log"),
        read("var/lib/consort/geth/geth.log")
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n"),
        read("var/lib/consort/geth/seal.log")
    )
}

pub(crate) fn sorted_signers(rpc: &RpcClient) -> Result<Vec<String>, String> {
    let mut s: Vec<String> = rpc
        .clique_get_signers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|a| a.to_checksum())
        .collect();
    s.sort();
    Ok(s)
}

pub(crate) fn signer_address(sd: &StateDir, node: &str) -> String {
    let st = sd.load().unwrap().unwrap();
    consort::rpc::parse_address(
        st.output_str(&format!("key.signer.{node}"), "address")
            .unwrap(),
    )
    .unwrap()
    .to_checksum()
}

/// Makes VMs the stand-in creates boot under `tmp` (installing geth from a local archive)
/// and writes a checkout with `topology`; returns the checkout.
pub(crate) fn booting_checkout(fake: &FakeArm, tmp: &Path, topology: &str) -> PathBuf {
    let (tar, sha) = geth_tarball(&tmp.join("dl"));
    fake.boot_vms(BootConfig {
        dir: tmp.join("vms"),
        geth_url: format!("file://{}", tar.display()),
        geth_sha256: sha,
    });
    let dir = tmp.join("checkout");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("consort.yaml"), topology).unwrap();
    dir
}

/// `member add gamma` with one validator and `tx_nodes` tx nodes.
fn add_gamma(fake: &FakeArm, dir: &Path, tx_nodes: &str) -> String {
    cli_ok(
        fake,
        dir,
        &[
            "member",
            "add",
            "gamma",
            "--validators",
            "1",
            "--tx-nodes",
            tx_nodes,
            "--yes",
            "--skip-health-check",
            "--timeout",
            "120",
        ],
    )
}

#[test]
fn cli_votes_members_in_and_out_by_run_command_and_destroy_leaves_nothing() {
    let _vnet = vm_host::loopback_vnet();
    let fake = FakeArm::start();
    let tmp = tempfile::tempdir().unwrap();
    // Loopback: every "VM" binds its own private IP. The /16 holds 127.0.0.1, the source
    // address of loopback connections, so geth's --netrestrict (the address space) admits
    // them as the VNet would.
    let dir = booting_checkout(
        &fake,
        tmp.path(),
        &topology(&fake, "127.0.0.0/16", "consort-runcmd"),
    );
    let sd = StateDir::new(&dir.join(".consort"), NET);

    // Plan states what it costs.
    let plan = cli_ok(&fake, &dir, &["plan"]);
    assert!(
        plan.contains("Azure cost: 2 VM(s) (2 × Standard_D2s_v5)"),
        "{plan}"
    );

    cli_ok(&fake, &dir, &["apply", "--yes", "--skip-health-check"]);
    let st = sd.load().unwrap().unwrap();
    // No VM's customData holds a secret: not its node key, keystore or password.
    for node in ["alpha-validator-0", "beta-validator-0"] {
        let id = st.resources[&format!("azure.vm.{node}")].outputs["id"]
            .as_str()
            .unwrap()
            .to_string();
        let cd = fake.custom_data(&id).unwrap();
        let file =
            |res: &str, k: &str| std::fs::read_to_string(st.output_str(res, k).unwrap()).unwrap();
        let nodekey = file(&format!("key.node.{node}"), "key_file");
        let keystore = file(&format!("key.signer.{node}"), "keystore");
        let password = file(&format!("key.signer.{node}"), "password_file");
        for (what, secret) in [
            ("node key", nodekey.trim()),
            ("keystore", keystore.trim()),
            ("password", password.trim()),
        ] {
            assert!(!cd.contains(secret), "{node}'s customData holds its {what}");
        }
        let ks: serde_json::Value = serde_json::from_str(&keystore).unwrap();
        assert!(
            !cd.contains(ks["crypto"]["ciphertext"].as_str().unwrap()),
            "keystore ciphertext in customData"
        );
        // ... the VM fetched them from the vault instead, 0600.
        let root = vm_root(&fake, node);
        poll(
            &format!("{node} to finish its bootstrap"),
            Duration::from_secs(60),
            || {
                Ok(root
                    .join("var/lib/consort/bootstrapped")
                    .exists()
                    .then_some(()))
            },
        );
        let fetched = std::fs::read_to_string(root.join("var/lib/consort/nodekey")).unwrap();
        assert_eq!(fetched.trim(), nodekey.trim(), "{}", boot_log(&root));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("var/lib/consort/password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Each identity may read exactly its own secrets (3 per validator).
    let assignments = fake.role_assignments();
    assert_eq!(assignments.len(), 6, "{assignments:?}");
    for (scope, role, _) in &assignments {
        assert!(scope.contains("/secrets/"), "{scope}");
        assert!(
            role.ends_with("4633458b-17de-408a-b874-0445c86b69e6"),
            "{role}"
        );
    }

    // The nodes peer and seal; sealing was started by the on-VM step (geth has no --mine).
    let alpha = vm_root(&fake, "alpha-validator-0");
    let beta = vm_root(&fake, "beta-validator-0");
    for root in [&alpha, &beta] {
        let rpc = ipc(root);
        poll("blocks sealed", Duration::from_secs(90), || {
            match rpc.block_number() {
                Ok(n) if n >= 3 => Ok(Some(())),
                Ok(n) => Err(format!("head {n}\n{}", boot_log(root))),
                Err(e) => Err(format!("{e}\n{}", boot_log(root))),
            }
        });
        let seal = std::fs::read_to_string(root.join("var/lib/consort/geth/seal.log")).unwrap();
        assert!(seal.contains("sealing started"), "{seal}");
        let pid: u32 = std::fs::read_to_string(root.join("var/lib/consort/geth/geth.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert!(!args.iter().any(|a| a == "--mine"), "{args:?}");
        assert!(args.iter().any(|a| a.starts_with("--unlock=")), "{args:?}");
    }
    let (a, b) = (
        signer_address(&sd, "alpha-validator-0"),
        signer_address(&sd, "beta-validator-0"),
    );
    let mut two = vec![a.clone(), b.clone()];
    two.sort();
    assert_eq!(sorted_signers(&ipc(&alpha)).unwrap(), two);

    // member add: a validator voted in by Run Command on both signers, and a tx node; the
    // running VMs learn the new nodes live.
    fake.clear_log();
    let out = add_gamma(&fake, &dir, "1");
    assert!(out.contains("vote in"), "{out}");
    assert!(
        fake.count("POST", "/runCommand") >= 2,
        "votes went by Run Command"
    );
    let c = signer_address(&sd, "gamma-validator-0");
    let mut three = vec![a.clone(), b.clone(), c.clone()];
    three.sort();
    assert_eq!(sorted_signers(&ipc(&alpha)).unwrap(), three);
    assert_eq!(sorted_signers(&ipc(&beta)).unwrap(), three);
    // No proposal left pending (discarded once confirmed).
    let pending = ipc(&alpha).clique_proposals().unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    // alpha's config now lists gamma's nodes, and it is peered with them.
    let config = std::fs::read_to_string(alpha.join("etc/consort/config.toml")).unwrap();
    let st = sd.load().unwrap().unwrap();
    let gamma_id = st
        .output_str("key.node.gamma-validator-0", "enode_id")
        .unwrap()
        .to_string();
    assert!(config.contains(&gamma_id), "{config}");
    poll("alpha to peer with gamma", Duration::from_secs(60), || {
        let peers = ipc(&alpha)
            .call_raw("admin_peers", serde_json::json!([]))
            .map_err(|e| format!("{e}\n{}", boot_log(&alpha)))?;
        Ok(peers.to_string().contains(&gamma_id).then_some(()))
    });
    let gamma_tx = vm_root(&fake, "gamma-tx-0");
    poll(
        "gamma's tx node to sync",
        Duration::from_secs(90),
        || match ipc(&gamma_tx).block_number() {
            Ok(n) if n >= 3 => Ok(Some(())),
            r => Err(format!("{r:?}\n{}", boot_log(&gamma_tx))),
        },
    );

    // member remove: voted out first, then its VMs are deleted.
    let out = cli_ok(
        &fake,
        &dir,
        &["member", "remove", "gamma", "--yes", "--skip-health-check"],
    );
    assert!(out.contains("vote out"), "{out}");
    assert_eq!(sorted_signers(&ipc(&alpha)).unwrap(), two);
    assert!(
        fake.ids().iter().all(|id| !id.contains("gamma-")),
        "{:?}",
        fake.ids()
    );
    assert_eq!(fake.role_assignments().len(), 6);
    // The two left keep sealing.
    let head = ipc(&alpha).block_number().unwrap();
    poll("the chain to go on", Duration::from_secs(30), || {
        let now = ipc(&beta).block_number().map_err(|e| e.to_string())?;
        if now > head + 1 {
            return Ok(Some(()));
        }
        // What each of the two says, should they stall.
        Err(format!(
            "beta at {now}, alpha was at {head}\nalpha: {}\nbeta: {}",
            boot_log(&alpha),
            boot_log(&beta)
        ))
    });

    // Its secrets are soft-deleted, their names reserved for 7 days: adding gamma back
    // recovers each and writes the new keys over it, in one run.
    let st = sd.load().unwrap().unwrap();
    let vault = st
        .output_str("azure.vault", "uri")
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .unwrap()
        .to_string();
    let deleted = fake.deleted_secrets(&vault);
    assert!(
        deleted.iter().any(|n| n == "gamma-validator-0-nodekey"),
        "{deleted:?}"
    );
    // A refreshing plan with gamma back in the topology reads the deleted names and says
    // apply will recover them (and writes nothing).
    let yaml = std::fs::read_to_string(dir.join("consort.yaml")).unwrap();
    assert!(!yaml.contains("gamma"), "{yaml}");
    let with_gamma = yaml.replacen(
        "provider:\n",
        "  - name: gamma\n    validators: 1\nprovider:\n",
        1,
    );
    std::fs::write(dir.join("consort.yaml"), &with_gamma).unwrap();
    fake.clear_log();
    let plan = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    std::fs::write(dir.join("consort.yaml"), &yaml).unwrap();
    let line = plan
        .lines()
        .find(|l| l.contains("+ azure.secrets.gamma-validator-0"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        line.contains("~ recover: soft-deleted secret(s) gamma-validator-0-nodekey, gamma-validator-0-keystore, gamma-validator-0-password"),
        "{line}"
    );
    assert_eq!(fake.count("GET", "/deletedsecrets/gamma-validator-0-"), 3);
    assert_eq!(fake.count("PUT", "/"), 0, "{:#?}", fake.requests());
    let out = add_gamma(&fake, &dir, "0");
    assert!(
        out.contains("gamma-validator-0-nodekey was soft-deleted") && out.contains("recovered it"),
        "{out}"
    );
    let deleted = fake.deleted_secrets(&vault);
    assert!(
        !deleted.iter().any(|n| n.starts_with("gamma-validator-0-")),
        "{deleted:?}"
    );
    // Its signer key is the one archived at the removal (a key the chain knew is never
    // made anew: issue 20); its node key is new, and the VM must read that one.
    let c2 = signer_address(&sd, "gamma-validator-0");
    assert_eq!(c2, c, "the re-added signer keeps its archived key");
    assert!(out.contains("restores its earlier key"), "{out}");
    let mut three = vec![a.clone(), b.clone(), c2];
    three.sort();
    assert_eq!(sorted_signers(&ipc(&alpha)).unwrap(), three);
    // The VM reads the new value, not the recovered one.
    let gamma = vm_root(&fake, "gamma-validator-0");
    let st = sd.load().unwrap().unwrap();
    let nodekey = std::fs::read_to_string(
        st.output_str("key.node.gamma-validator-0", "key_file")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        fake.vault_secret(&vault, "gamma-validator-0-nodekey")
            .unwrap()
            .trim(),
        nodekey.trim()
    );
    poll(
        "gamma to fetch its new nodekey",
        Duration::from_secs(60),
        || {
            let got =
                std::fs::read_to_string(gamma.join("var/lib/consort/nodekey")).unwrap_or_default();
            Ok((got.trim() == nodekey.trim()).then_some(()))
        },
    );

    // destroy right after: the NICs of the VMs it deletes are reserved by Azure for a while
    // (NicReservedForAnotherVm); it waits that out and leaves nothing, the vault included
    // (soft-deleted, and the output says so).
    let out = cli_ok(&fake, &dir, &["destroy", "--yes"]);
    assert!(out.contains("NicReservedForAnotherVm"), "{out}");
    assert!(fake.ids().is_empty(), "{:?}", fake.ids());
    assert!(fake.role_assignments().is_empty());
    assert_eq!(fake.soft_deleted_vaults().len(), 1);
    assert!(out.contains("soft-deleted for 7 days"), "{out}");
}

#[test]
fn a_second_checkout_of_the_same_network_is_refused_and_deletes_nothing() {
    let fake = FakeArm::start();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let second = tmp.path().join("second");
    for d in [&first, &second] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(
            d.join("consort.yaml"),
            topology(&fake, "10.77.0.0/16", "consort-shared"),
        )
        .unwrap();
    }
    cli_ok(&fake, &first, &["apply", "--yes", "--skip-health-check"]);
    let before = fake.ids();
    fake.clear_log();
    let out = cli(&fake, &second, &["apply", "--yes", "--skip-health-check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("resource group consort-shared belongs to another consort deployment"),
        "{err}"
    );
    assert!(
        err.contains("choose another network.name or provider.azure.resource_group"),
        "{err}"
    );
    assert_eq!(fake.count("DELETE", "/"), 0, "{:#?}", fake.requests());
    assert_eq!(fake.count("PUT", "/"), 0, "{:#?}", fake.requests());
    assert_eq!(fake.ids(), before);
    // The first checkout still owns and manages it.
    let plan = cli_ok(&fake, &first, &["plan", "--refresh"]);
    assert!(plan.contains("No changes"), "{plan}");
    cli_ok(&fake, &first, &["destroy", "--yes"]);
    assert!(fake.ids().is_empty(), "{:?}", fake.ids());
}

/// Moves a VM's geth IPC socket aside (`away`) or back: its geth runs and seals on, but
/// consort's Run Command scripts find no control socket, as on a VM whose geth does not
/// answer.
fn control_socket(root: &Path, away: bool) {
    let ipc = root.join("var/lib/consort/geth/geth.ipc");
    let aside = root.join("var/lib/consort/geth/geth.ipc.aside");
    let (from, to) = if away { (&ipc, &aside) } else { (&aside, &ipc) };
    std::fs::rename(from, to).unwrap();
}

/// SIGKILLs `pid` and every process below it, each stopped first so that none starts
/// another (the sealing step's `geth attach` in flight would start sealing again).
pub(crate) fn kill_tree(pid: i32) {
    let children = |parent: i32| -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
                    // pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
                    st.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
                        == Some(parent)
                })
            })
            .collect()
    };
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        // SAFETY: signalling processes this test's stand-in VM started (its sealing step).
        unsafe { libc::kill(tree[i], libc::SIGSTOP) };
        tree.extend(children(tree[i]));
        i += 1;
    }
    for p in tree {
        // SAFETY: as above.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
}

/// The lines an error quotes under `header` (indented by two spaces, up to the next
/// section).
fn quoted(text: &str, header: &str) -> Vec<String> {
    let Some(i) = text.find(header) else {
        return vec![];
    };
    text[i + header.len()..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("--- "))
        .map(|l| l[2..].to_string())
        .collect()
}

/// A fresh address every signer (`roots`) proposes, once the chain has voted it in.
fn voted_in_behind_consorts_back(roots: &[&PathBuf]) -> consort::crypto::Address {
    let stranger = consort::crypto::SecretKey::random().address();
    for root in roots {
        ipc(root).clique_propose(&stranger, true).unwrap();
    }
    poll(
        "the stranger to be voted in",
        Duration::from_secs(30),
        || {
            let s = ipc(roots[0])
                .clique_get_signers()
                .map_err(|e| e.to_string())?;
            Ok(s.contains(&stranger).then_some(()))
        },
    );
    stranger
}

/// Plan and apply read the live Clique state of the VMs through Run Command, as locally:
/// a stray proposal is shown and discarded, a signer voted in behind consort's back is
/// refused while too few signers answer and voted out once they do. And errors of a health
/// check and of a vote quote the VMs' log tails, labelled and redacted.
#[test]
fn cli_reconciles_live_signers_by_run_command_and_errors_quote_vm_logs() {
    let _vnet = vm_host::loopback_vnet();
    let fake = FakeArm::start();
    // Public IPs outside the loopback VNet: from here the tx node's RPC does not answer,
    // so the health check fails (honestly) while the VMs run.
    fake.configure(|c| c.public_ip_prefix = "127.0.99.".into());
    let tmp = tempfile::tempdir().unwrap();
    let dir = booting_checkout(
        &fake,
        tmp.path(),
        &topology_with(&fake, "127.0.0.0/16", "consort-live", 1, "[127.0.0.0/8]"),
    );
    let sd = StateDir::new(&dir.join(".consort"), NET);

    // A failed health check quotes each VM's log: the tx node that does not answer, and
    // the validators with their sealing step.
    let out = cli(&fake, &dir, &["apply", "--yes", "--timeout", "20"]);
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not become healthy"), "{err}");
    let alpha = vm_root(&fake, "alpha-validator-0");
    let beta = vm_root(&fake, "beta-validator-0");
    let header = |node: &str| {
        format!("last 20 lines of geth's log on VM {node}-vm (node {node}, by Run Command):")
    };
    for node in ["alpha-tx-0", "alpha-validator-0", "beta-validator-0"] {
        let lines = quoted(&err, &header(node));
        assert!(!lines.is_empty() && lines.len() <= 20, "{node}: {err}");
        let log =
            std::fs::read_to_string(vm_root(&fake, node).join("var/lib/consort/geth/geth.log"))
                .unwrap();
        for l in &lines {
            assert!(
                log.contains(l.as_str()),
                "{node} quoted {l:?}, not in its geth.log"
            );
        }
    }
    assert!(err.contains("--- sealing step (seal.log):"), "{err}");
    assert!(err.contains("consort-seal: "), "{err}");
    for root in [&alpha, &beta] {
        poll("blocks sealed", Duration::from_secs(90), || {
            match ipc(root).block_number() {
                Ok(n) if n >= 3 => Ok(Some(())),
                r => Err(format!("{r:?}\n{}", boot_log(root))),
            }
        });
    }
    let (a, b) = (
        signer_address(&sd, "alpha-validator-0"),
        signer_address(&sd, "beta-validator-0"),
    );
    let mut two = vec![a.clone(), b.clone()];
    two.sort();
    let skip = ["apply", "--yes", "--skip-health-check", "--timeout", "60"];

    // A stray proposal, out of band on alpha: plan names it, apply discards it.
    let stray = consort::crypto::SecretKey::random().address();
    ipc(&alpha).clique_propose(&stray, true).unwrap();
    fake.clear_log();
    let plan = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    assert!(
        plan.contains("~ clique")
            && plan.contains(&format!(
                "discard stray proposals on alpha-validator-0 (add {})",
                stray.to_checksum()
            )),
        "{plan}"
    );
    assert!(
        fake.count("POST", "/runCommand") >= 2,
        "read by Run Command"
    );
    cli_ok(&fake, &dir, &skip);
    assert!(ipc(&alpha).clique_proposals().unwrap().is_empty());
    assert_eq!(sorted_signers(&ipc(&alpha)).unwrap(), two);
    let plan = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    assert!(plan.contains("No changes"), "{plan}");

    // A signer voted in behind consort's back (both signers propose it).
    let stranger = voted_in_behind_consorts_back(&[&alpha, &beta]);
    // While only alpha answers, 1 of 3 signers cannot vote it out: plan and apply refuse.
    control_socket(&beta, true);
    for args in [&["plan", "--refresh"][..], &skip[..]] {
        let out = cli(&fake, &dir, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("only 1 of 3 signers are online")
                && err.contains("Clique needs 2 of 3")
                && err.contains(&format!(
                    "vote out {} (no validator of this network has that key)",
                    stranger.to_checksum()
                )),
            "{args:?}: {err}"
        );
    }
    // Once beta answers again, plan shows the vote and apply votes it out.
    control_socket(&beta, false);
    let plan = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    assert!(
        plan.contains(&format!("vote out {}", stranger.to_checksum())),
        "{plan}"
    );
    cli_ok(&fake, &dir, &skip);
    assert_eq!(sorted_signers(&ipc(&alpha)).unwrap(), two);
    assert_eq!(sorted_signers(&ipc(&beta)).unwrap(), two);
    for root in [&alpha, &beta] {
        let pending = ipc(root).clique_proposals().unwrap();
        assert!(pending.is_empty(), "{pending:?}");
    }
    let plan = cli_ok(&fake, &dir, &["plan", "--refresh"]);
    assert!(plan.contains("No changes"), "{plan}");

    // A vote that cannot pass (sealing stopped on both VMs: the on-VM step killed, then
    // miner.stop) fails after --timeout, quoting the logs of the VMs that proposed,
    // labelled, and no secret: not even one a log line would carry.
    let stranger = voted_in_behind_consorts_back(&[&alpha, &beta]);
    for root in [&alpha, &beta] {
        let pid: i32 = std::fs::read_to_string(root.join("var/lib/consort/geth/seal.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kill_tree(pid);
        ipc(root)
            .call_raw("miner_stop", serde_json::json!([]))
            .unwrap();
        let mining = ipc(root).call_raw("eth_mining", serde_json::json!([]));
        assert_eq!(mining.unwrap(), serde_json::json!(false));
    }
    let st = sd.load().unwrap().unwrap();
    let nodekey = std::fs::read_to_string(
        st.output_str("key.node.beta-validator-0", "key_file")
            .unwrap(),
    )
    .unwrap();
    {
        use std::io::Write;
        let mut seal_log = std::fs::OpenOptions::new()
            .append(true)
            .open(beta.join("var/lib/consort/geth/seal.log"))
            .unwrap();
        writeln!(seal_log, "leaked by a careless script: {}", nodekey.trim()).unwrap();
    }
    let out = cli(
        &fake,
        &dir,
        &["apply", "--yes", "--skip-health-check", "--timeout", "8"],
    );
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("vote out {}", stranger.to_checksum()))
            && err.contains("but clique_getSigners still lists it after"),
        "{err}"
    );
    for node in ["alpha-validator-0", "beta-validator-0"] {
        assert!(!quoted(&err, &header(node)).is_empty(), "{node}: {err}");
    }
    assert!(
        err.contains("leaked by a careless script: <redacted>"),
        "{err}"
    );
    assert!(!err.contains(nodekey.trim()), "the node key is in an error");
}
