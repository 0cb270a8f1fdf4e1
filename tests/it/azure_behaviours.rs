//! Azure's documented runtime behaviours, modelled by the stand-in (each cited there), and
//! consort handling them through the binary: a VM runs one Run Command at a time (409
//! `Conflict`), a NIC stays reserved for its deleted VM (400 `NicReservedForAnotherVm`).

use crate::arm_schema;
use crate::fake_arm::{FakeArm, FakeArmConfig};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn checkout(fake: &FakeArm) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/azure.yaml");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(text.contains(&fake.subscription_id()));
    std::fs::write(dir.path().join("consort.yaml"), text).unwrap();
    dir
}

/// `consort args` against the stand-in; `wait`: `CONSORT_RUN_COMMAND_WAIT` seconds.
fn cli(fake: &FakeArm, dir: &Path, args: &[&str], wait: Option<u64>) -> (Output, String, String) {
    let w = wait.map(|w| w.to_string());
    cli_env(
        fake,
        dir,
        args,
        &[("CONSORT_RUN_COMMAND_WAIT", w.as_deref())],
    )
}

/// `consort args` against the stand-in, with both tokens, then `env` (None: unset).
fn cli_env(
    fake: &FakeArm,
    dir: &Path,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> (Output, String, String) {
    let mut c = crate::support::consort_cmd(dir, args);
    c.env("CONSORT_ARM_ENDPOINT", fake.url())
        .env("CONSORT_ARM_TOKEN", fake.token())
        .env("CONSORT_VAULT_TOKEN", fake.vault_token())
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .env_remove("CONSORT_RUN_COMMAND_WAIT")
        .env_remove("CONSORT_RBAC_WAIT");
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, so, se)
}

const VALIDATORS: [&str; 3] = [
    "contoso-validator-0",
    "fabrikam-validator-0",
    "northwind-validator-0",
];

#[test]
fn a_refresh_that_cannot_read_busy_validators_never_says_no_changes() {
    let fake = FakeArm::start();
    let dir = checkout(&fake);
    let d = dir.path();
    let (out, so, se) = cli(&fake, d, &["apply", "--yes", "--skip-health-check"], None);
    assert!(out.status.success(), "{so}\n{se}");
    // The VMs did not boot: their Run Command answers that geth is not running. That is
    // an answer (the VM was read), so the plan may say there is nothing to change.
    let (out, so, se) = cli(&fake, d, &["plan", "--refresh"], Some(5));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("No changes"), "{so}");

    // Someone else's Run Command keeps every VM busy: Azure answers 409 Conflict.
    fake.hold_run_commands(None, None);
    let before = fake.run_command_conflicts();
    for args in [
        &["plan", "--refresh"][..],
        &["plan", "--refresh", "--detailed-exitcode"][..],
    ] {
        let (out, so, se) = cli(&fake, d, args, Some(2));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {so}\n{se}");
        assert!(!so.contains("No changes"), "{so}");
        for v in VALIDATORS {
            assert!(
                so.contains(&format!("validator {v}:")) && se.contains(&format!("{v}:")),
                "{v} not named:\n{so}\n{se}"
            );
        }
        assert!(
            se.contains("Conflict") && se.contains("stayed busy"),
            "{se}"
        );
    }
    // It retried (with backoff) rather than giving up at the first 409.
    assert!(
        fake.run_command_conflicts() >= before + 2 * 2 * VALIDATORS.len(),
        "{} conflicts",
        fake.run_command_conflicts() - before
    );
    let (out, so, _) = cli(&fake, d, &["plan", "--refresh", "--json"], Some(1));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v["unread"].as_array().map(Vec::len), Some(3), "{so}");
    fake.clear_log();
    let (out, so, se) = cli(&fake, d, &["apply", "--yes"], Some(1));
    assert!(!out.status.success(), "{so}\n{se}");
    assert!(se.contains("Nothing was changed"), "{se}");
    assert_eq!(fake.count("PUT", "/"), 0);

    // Busy for a while only: the refresh waits for the VMs and reads them.
    fake.release_run_commands();
    fake.hold_run_commands(None, Some(Duration::from_secs(2)));
    let before = fake.run_command_conflicts();
    let (out, so, se) = cli(&fake, d, &["plan", "--refresh"], Some(120));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("No changes"), "{so}");
    assert!(fake.run_command_conflicts() > before);
}

#[test]
fn destroy_waits_out_the_nic_reservation_azure_states_and_finishes_in_one_run() {
    let fake = FakeArm::with_config(FakeArmConfig {
        nic_reservation: Duration::from_secs(3),
        ..Default::default()
    });
    let dir = checkout(&fake);
    let d = dir.path();
    let (out, so, se) = cli(&fake, d, &["apply", "--yes", "--skip-health-check"], None);
    assert!(out.status.success(), "{so}\n{se}");
    let t0 = std::time::Instant::now();
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(fake.ids().is_empty(), "{:?}", fake.ids());
    // Every NIC was refused once (its VM had just gone), then deleted after the stated time.
    let nics = 4;
    assert!(
        fake.count("DELETE", "/networkInterfaces/") >= 2 * nics,
        "{:#?}",
        fake.requests()
    );
    assert!(
        so.contains("NicReservedForAnotherVm") && so.contains("waiting the 3s it states"),
        "{so}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(3));
}

/// examples/azure.yaml with `n` extra accounts funded at genesis (addresses the user holds,
/// so no key is generated for them).
fn with_funded_accounts(fake: &FakeArm, dir: &Path, n: usize) {
    use sha2::{Digest, Sha256};
    let mut accounts = String::new();
    for i in 0..n {
        let h = Sha256::digest((i as u64).to_be_bytes());
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[..20]);
        let address = consort::crypto::Address(a).to_checksum();
        accounts.push_str(&format!(
            "      - name: acct{i}\n        balance: 1000 ether\n        address: \"{address}\"\n"
        ));
    }
    let text = std::fs::read_to_string(dir.join("consort.yaml")).unwrap();
    let text = text.replace(
        "        balance: 1000000 ether\n",
        &format!("        balance: 1000000 ether\n{accounts}"),
    );
    assert!(text.contains("acct0"));
    std::fs::write(dir.join("consort.yaml"), text).unwrap();
    let _ = fake;
}

#[test]
fn six_hundred_funded_accounts_deploy_within_the_custom_data_limit_and_more_are_refused_by_plan() {
    let fake = FakeArm::start();
    let dir = checkout(&fake);
    let d = dir.path();
    with_funded_accounts(&fake, d, 600);
    let (out, so, se) = cli(&fake, d, &["apply", "--yes", "--skip-health-check"], None);
    assert!(out.status.success(), "{so}\n{se}");
    let vms: Vec<String> = fake
        .ids()
        .into_iter()
        .filter(|i| i.contains("/virtualMachines/"))
        .collect();
    assert_eq!(vms.len(), 4);
    for vm in &vms {
        let sent = fake.custom_data_bytes(vm).unwrap();
        assert!(sent.len() <= 65_535, "{vm}: {} bytes", sent.len());
        // Too big as text: sent gzip-compressed, which cloud-init reads natively.
        assert!(sent.starts_with(&[0x1f, 0x8b]), "{vm} not gzipped");
        let text = fake.custom_data(vm).unwrap();
        assert!(text.len() > 65_535, "{}", text.len());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let genesis = doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str() == Some("/etc/consort/genesis.json"))
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        let g: serde_json::Value = serde_json::from_str(&genesis).unwrap();
        assert_eq!(g["alloc"].as_object().unwrap().len(), 601);
    }
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");

    // Far more than fits even compressed: plan refuses with the numbers, nothing is sent.
    let fake = FakeArm::start();
    let dir = checkout(&fake);
    let d = dir.path();
    with_funded_accounts(&fake, d, 3000);
    for args in [
        &["plan"][..],
        &["apply", "--yes", "--skip-health-check"][..],
    ] {
        let (out, so, se) = cli(&fake, d, args, None);
        assert!(!out.status.success(), "{args:?}: {so}\n{se}");
        assert!(
            se.contains("customData limit of 65535 bytes") && se.contains("3001 funded accounts"),
            "{se}"
        );
    }
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
}

/// A parameters file as the 2019-04-01 schema
/// (schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json) allows it:
/// `$schema`, `contentVersion` (four numbers) and `parameters` required, no other top-level
/// key; each parameter an object of `value` or `reference` (exactly one) and optional
/// `metadata`, nothing else.
pub fn parameters_file_is_valid(p: &serde_json::Value) {
    let top = p.as_object().expect("an object");
    for k in top.keys() {
        assert!(
            ["$schema", "contentVersion", "parameters"].contains(&k.as_str()),
            "top-level {k:?} is not allowed"
        );
    }
    assert!(p["$schema"]
        .as_str()
        .unwrap()
        .contains("2019-04-01/deploymentParameters.json"));
    let v = p["contentVersion"].as_str().expect("contentVersion");
    let parts: Vec<&str> = v.split('.').collect();
    assert!(
        parts.len() == 4
            && parts
                .iter()
                .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit())),
        "contentVersion {v}"
    );
    for (name, param) in p["parameters"].as_object().expect("parameters") {
        let o = param
            .as_object()
            .unwrap_or_else(|| panic!("{name} is not an object"));
        for k in o.keys() {
            assert!(
                ["value", "reference", "metadata"].contains(&k.as_str()),
                "{name}: {k:?} is not allowed"
            );
        }
        assert!(
            o.contains_key("value") != o.contains_key("reference"),
            "{name}: exactly one of value / reference"
        );
    }
}

#[test]
fn a_seventy_node_export_stays_within_arms_parameter_limit_with_a_valid_parameters_file() {
    let fake = FakeArm::start();
    let dir = checkout(&fake);
    let d = dir.path();
    let text = std::fs::read_to_string(d.join("consort.yaml")).unwrap();
    // 40 + 28 + 1 + 1 = 70 nodes.
    let text = text.replacen(
        "    validators: 1\n    tx_nodes: 1\n",
        "    validators: 40\n    tx_nodes: 28\n",
        1,
    );
    std::fs::write(d.join("consort.yaml"), text).unwrap();
    let (out, so, se) = cli(&fake, d, &["export", "arm", "-o", "arm"], None);
    assert!(out.status.success(), "{so}\n{se}");
    let t_bytes = std::fs::read(d.join("arm/azuredeploy.json")).unwrap();
    let t: serde_json::Value = serde_json::from_slice(&t_bytes).unwrap();
    // Checked against ARM's own 2019-04-01 schemas and documented limits (arm_schema).
    let bad = arm_schema::violations(&arm_schema::template_schema(), &t);
    assert!(
        bad.is_empty(),
        "the template breaks deploymentTemplate.json: {bad:#?}"
    );
    let bad = arm_schema::template_limit_violations(&t_bytes, &t);
    assert!(bad.is_empty(), "the template breaks ARM's limits: {bad:#?}");
    let vms = t["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "Microsoft.Compute/virtualMachines")
        .count();
    assert_eq!(vms, 70);
    let n = t["parameters"].as_object().unwrap().len();
    assert!(n <= 256, "{n} parameters");
    assert_eq!(n, 71, "location and one per node");
    let p_bytes = std::fs::read(d.join("arm/azuredeploy.parameters.json")).unwrap();
    let p: serde_json::Value = serde_json::from_slice(&p_bytes).unwrap();
    parameters_file_is_valid(&p);
    let bad = arm_schema::violations(&arm_schema::parameters_schema(), &p);
    assert!(
        bad.is_empty(),
        "the parameters file breaks deploymentParameters.json: {bad:#?}"
    );
    assert_eq!(
        arm_schema::parameters_file_limit_violations(&p_bytes),
        Vec::<String>::new()
    );
    assert!(fake.requests().is_empty(), "export is offline");
}

#[test]
fn a_contributor_only_caller_is_told_the_roles_it_needs_before_anything_is_written() {
    let fake = FakeArm::with_config(FakeArmConfig {
        caller_permissions: crate::fake_arm::contributor(),
        ..Default::default()
    });
    let dir = checkout(&fake);
    let d = dir.path();
    for args in [
        &["plan", "--refresh"][..],
        &["apply", "--yes", "--skip-health-check"][..],
    ] {
        let (out, so, se) = cli(&fake, d, args, None);
        assert!(!out.status.success(), "{args:?}: {so}\n{se}");
        assert!(
            se.contains("Microsoft.Authorization/roleAssignments/write")
                && se.contains("User Access Administrator")
                && se.contains("Owner")
                && se.contains("nothing was written"),
            "{se}"
        );
        assert!(!se.contains("grant it Contributor on"), "{se}");
    }
    let writes = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(writes, 0, "{:#?}", fake.requests());
    // With User Access Administrator too, the same apply goes through.
    let with_uaa = || {
        let mut p = crate::fake_arm::contributor();
        p.as_array_mut().unwrap().push(serde_json::json!({
            "actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
            "notActions": [], "dataActions": [], "notDataActions": []
        }));
        p
    };
    fake.configure(|c| c.caller_permissions = with_uaa());
    let (out, so, se) = cli(&fake, d, &["apply", "--yes", "--skip-health-check"], None);
    assert!(out.status.success(), "{so}\n{se}");

    // Destroy as Contributor only: it could delete the VMs but not their role
    // assignments, so it refuses before deleting anything.
    fake.configure(|c| c.caller_permissions = crate::fake_arm::contributor());
    let deletes = |fake: &FakeArm| {
        fake.requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .count()
    };
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(!out.status.success(), "{so}\n{se}");
    assert!(
        se.contains("Microsoft.Authorization/roleAssignments/delete")
            && se.contains("nothing was deleted")
            && se.contains("User Access Administrator"),
        "{se}"
    );
    assert_eq!(deletes(&fake), 0, "{:#?}", fake.requests());
    fake.configure(|c| c.caller_permissions = with_uaa());
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(deletes(&fake) > 0);
}

/// A caller whose tokens carry an object id: consort grants itself "Key Vault Secrets
/// Officer" on the vault, and the stand-in lets that grant take effect only after
/// `role_propagation`, as Azure does.
fn propagating(propagation: Duration) -> FakeArm {
    let oid = "0c0c0c0c-1111-2222-3333-444444444444";
    FakeArm::with_config(FakeArmConfig {
        token: crate::fake_arm::jwt_with_oid(oid),
        caller_oid: Some(oid.into()),
        role_propagation: propagation,
        ..Default::default()
    })
}

#[test]
fn key_vault_never_gets_the_arm_token() {
    let fake = FakeArm::start();
    let dir = checkout(&fake);
    let d = dir.path();
    // Only an ARM token: consort refuses to send it to Key Vault and says what to set.
    let (out, so, se) = cli_env(
        &fake,
        d,
        &["apply", "--yes", "--skip-health-check"],
        &[("CONSORT_VAULT_TOKEN", None)],
    );
    assert!(!out.status.success(), "{so}\n{se}");
    assert!(
        se.contains("CONSORT_VAULT_TOKEN") && se.contains("https://vault.azure.net"),
        "{se}"
    );
    assert!(
        !fake.requests().iter().any(|r| r.path.starts_with("/kv/")),
        "{:#?}",
        fake.requests()
    );
    // With both, the same state converges; Key Vault never saw the ARM token.
    let (out, so, se) = cli(&fake, d, &["apply", "--yes", "--skip-health-check"], None);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.method == "PUT" && r.path.contains("/secrets/")));
    assert_eq!(
        fake.key_vault_refusals().0,
        0,
        "the ARM token reached Key Vault"
    );
    // The stand-in does refuse it, as Key Vault does (so the count above could fail).
    let kv = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.contains("/secrets/"))
        .unwrap();
    let refused = reqwest::blocking::Client::new()
        .get(format!("{}{}?api-version=7.4", fake.url(), kv.path))
        .bearer_auth(fake.token())
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_eq!(fake.key_vault_refusals().0, 1);
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");
}

#[test]
fn secret_writes_wait_out_role_propagation_with_progress_for_as_long_as_configured() {
    let fake = propagating(Duration::from_secs(3));
    let dir = checkout(&fake);
    let d = dir.path();
    let (out, so, se) = cli_env(
        &fake,
        d,
        &["apply", "--yes", "--skip-health-check"],
        &[("CONSORT_RBAC_WAIT", Some("120"))],
    );
    assert!(out.status.success(), "{so}\n{se}");
    let all = format!("{so}\n{se}");
    assert!(
        all.contains("the role assignment may not have taken effect yet")
            && all.contains("of at most 120s (CONSORT_RBAC_WAIT)"),
        "{all}"
    );
    assert!(fake.key_vault_refusals().1 > 0, "no write met propagation");
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");

    // A grant that takes longer than the configured wait: the error says so and what to do.
    let fake = propagating(Duration::from_secs(600));
    let dir = checkout(&fake);
    let d = dir.path();
    let (out, so, se) = cli_env(
        &fake,
        d,
        &["apply", "--yes", "--skip-health-check"],
        &[("CONSORT_RBAC_WAIT", Some("2"))],
    );
    assert!(!out.status.success(), "{so}\n{se}");
    assert!(
        se.contains("still refused after waiting 2s") && se.contains("CONSORT_RBAC_WAIT"),
        "{se}"
    );
}

#[test]
fn a_throttled_key_vault_is_waited_out_for_the_retry_after_it_states() {
    let fake = FakeArm::start();
    // The first secret write is throttled: 429 `Throttled`, Retry-After: 2.
    fake.throttle(crate::fake_arm::Throttle {
        method: Some("PUT".into()),
        path_contains: Some("/secrets/".into()),
        times: 1,
        retry_after_secs: 2,
        status: 429,
    });
    let dir = checkout(&fake);
    let d = dir.path();
    let (out, so, se) = cli(&fake, d, &["apply", "--yes", "--skip-health-check"], None);
    assert!(out.status.success(), "{so}\n{se}");
    let log = fake.requests();
    let first = log
        .iter()
        .position(|r| r.method == "PUT" && r.path.contains("/secrets/"))
        .expect("a secret was written");
    let again = log[first + 1..]
        .iter()
        .find(|r| r.method == "PUT" && r.path == log[first].path)
        .expect("the throttled write was retried");
    assert!(
        again.at - log[first].at >= Duration::from_secs(2),
        "retried after {:?}, before the Retry-After",
        again.at - log[first].at
    );
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");
}

/// Destroy soft-deletes the vault, holding its name (Key Vault soft delete): applying the
/// same network again recovers it in one run, and `plan --refresh` said so beforehand,
/// having read the deleted vault (Vaults_GetDeleted) without writing anything.
#[test]
fn apply_after_destroy_recovers_the_soft_deleted_vault_and_plan_says_so_first() {
    let fake = FakeArm::start();
    let dir = checkout(&fake);
    let d = dir.path();
    let apply = ["apply", "--yes", "--skip-health-check"];
    let (out, so, se) = cli(&fake, d, &apply, None);
    assert!(out.status.success(), "{so}\n{se}");
    let (out, so, se) = cli(&fake, d, &["destroy", "--yes"], None);
    assert!(out.status.success(), "{so}\n{se}");
    let deleted = fake.soft_deleted_vaults();
    assert_eq!(deleted.len(), 1, "destroy soft-deletes the vault");
    let vault = deleted[0].clone();

    // A plan that does not read Azure cannot know; one that refreshes does.
    fake.clear_log();
    let (out, so, se) = cli(&fake, d, &["plan", "--refresh"], None);
    assert!(out.status.success(), "{so}\n{se}");
    let line = so
        .lines()
        .find(|l| l.contains("+ azure.vault"))
        .unwrap_or_else(|| panic!("{so}"));
    assert!(
        line.contains(&format!("~ recover: key vault {vault} is soft-deleted"))
            && line.contains("createMode: recover")
            && line.contains(&format!("az keyvault purge --name {vault}")),
        "{line}"
    );
    assert_eq!(fake.count("GET", "/deletedVaults/"), 1);
    let writes = fake.requests().iter().filter(|r| r.method != "GET").count();
    assert_eq!(writes, 0, "plan writes nothing: {:#?}", fake.requests());
    let (_, so, _) = cli(&fake, d, &["plan", "--refresh", "--json"], None);
    let plan: serde_json::Value = serde_json::from_str(&so).unwrap();
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["addr"] == "azure.vault")
        .unwrap();
    assert!(
        change["summary"].as_str().unwrap().contains("~ recover"),
        "{change}"
    );

    // Apply recovers it (createMode: recover) and converges in one run.
    let (out, so, se) = cli(&fake, d, &apply, None);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(
        format!("{so}{se}").contains(&format!("recovering soft-deleted key vault {vault}")),
        "{so}\n{se}"
    );
    assert!(fake.soft_deleted_vaults().is_empty());
    // Nothing is soft-deleted any more: the next refreshing plan has nothing to recover.
    let (out, so, se) = cli(&fake, d, &["plan", "--refresh"], None);
    assert!(!so.contains("~ recover"), "{so}\n{se}");
    let _ = out;
}
