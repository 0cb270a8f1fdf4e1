//! The ARM client against the stand-in ARM server: long-running operations (via
//! Azure-AsyncOperation, Location, provisioningState), Retry-After, error bodies, auth.

use crate::fake_arm::{DeleteStyle, FakeArm, FakeArmConfig, PutStyle, Throttle};
use consort::provider::azure::arm::{
    rules, Arm, ArmError, ArmSettings, CustomData, ImageRef, NicSpec, NsgSpec, PublicIpSpec,
    StaticTokenCredential, SubnetSpec, VmSpec, VnetSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RG: &str = "consort-test";
const LOC: &str = "westeurope";

fn settings(fake: &FakeArm) -> ArmSettings {
    let mut s = ArmSettings::new(fake.url().parse().unwrap(), fake.subscription_id());
    s.poll_interval = Duration::from_millis(10);
    s.retry_initial_delay = Duration::from_millis(10);
    s.retry_max_delay = Duration::from_secs(1);
    s.max_retries = 4;
    s.operation_timeout = Duration::from_secs(20);
    s
}

fn arm_with(fake: &FakeArm, s: ArmSettings) -> Arm {
    Arm::new(
        s,
        Arc::new(StaticTokenCredential::new(fake.token()).with_vault(fake.vault_token())),
    )
    .unwrap()
}

fn arm(fake: &FakeArm) -> Arm {
    arm_with(fake, settings(fake))
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("managed-by".to_string(), "consort".to_string()),
        ("consort-network".to_string(), "tradelane".to_string()),
    ])
}

fn vnet() -> VnetSpec {
    VnetSpec {
        name: "tradelane-vnet".into(),
        location: LOC.into(),
        address_space: "10.42.0.0/16".into(),
        tags: tags(),
    }
}

/// RG, VNet, NSG, subnet, public IP and NIC for one tx node; returns the NIC id.
async fn network(arm: &Arm) -> String {
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    arm.put_vnet(RG, &vnet()).await.unwrap();
    let nsg = arm
        .put_nsg(
            RG,
            &NsgSpec {
                name: "acme-nsg".into(),
                location: LOC.into(),
                rules: rules::member_rules(
                    "10.42.0.0/16",
                    &["10.42.0.5".into()],
                    &["203.0.113.0/24".into()],
                    &[],
                ),
                tags: tags(),
            },
        )
        .await
        .unwrap();
    let nsg_id = nsg.resource.id.clone().unwrap();
    let subnet = arm
        .put_subnet(
            RG,
            &SubnetSpec {
                vnet: "tradelane-vnet".into(),
                name: "acme-subnet".into(),
                address_prefix: "10.42.0.0/24".into(),
                nsg_id: Some(nsg_id.clone()),
                nat_gateway_id: None,
            },
        )
        .await
        .unwrap();
    let pip = arm
        .put_public_ip(
            RG,
            &PublicIpSpec {
                name: "acme-tx-0-pip".into(),
                location: LOC.into(),
                tags: tags(),
            },
        )
        .await
        .unwrap();
    let nic = arm
        .put_nic(
            RG,
            &NicSpec {
                name: "acme-tx-0-nic".into(),
                location: LOC.into(),
                subnet_id: subnet.sub_resource.id.clone().unwrap(),
                private_ip: "10.42.0.5".into(),
                nsg_id: Some(nsg_id),
                public_ip_id: pip.resource.id.clone(),
                tags: tags(),
            },
        )
        .await
        .unwrap();
    nic.resource.id.unwrap()
}

fn vm(nic_id: &str, name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        location: LOC.into(),
        size: "Standard_B2s".into(),
        admin_username: "consort".into(),
        ssh_public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest consort@test".into(),
        nic_id: nic_id.into(),
        image: ImageRef::ubuntu_lts(),
        os_disk_type: "StandardSSD_LRS".into(),
        custom_data: CustomData::new("#cloud-config\nwrite_files: []\n"),
        tags: tags(),
    }
}

fn state_of(v: &serde_json::Value) -> &str {
    v["properties"]["provisioningState"].as_str().unwrap_or("")
}

#[tokio::test]
async fn put_polls_azure_async_operation_until_succeeded() {
    let fake = FakeArm::with_config(FakeArmConfig {
        polls_in_progress: 3,
        ..Default::default()
    });
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    let v = arm.put_vnet(RG, &vnet()).await.unwrap();
    let state = v
        .properties
        .as_ref()
        .unwrap()
        .provisioning_state
        .as_ref()
        .map(|s| format!("{s:?}"));
    assert_eq!(
        state.as_deref(),
        Some("Succeeded"),
        "returned before the operation finished"
    );
    // 3 answers InProgress, the 4th Succeeded: we polled exactly until done.
    assert_eq!(
        fake.count("GET", "/operations/"),
        4,
        "{:#?}",
        fake.requests()
    );
    assert_eq!(fake.count("PUT", "/virtualNetworks/tradelane-vnet"), 1);
    let stored = fake.resource(&arm.vnet_id(RG, "tradelane-vnet")).unwrap();
    assert_eq!(state_of(&stored), "Succeeded");
    assert_eq!(stored["tags"]["managed-by"], "consort");
    assert_eq!(
        stored["properties"]["addressSpace"]["addressPrefixes"][0],
        "10.42.0.0/16"
    );
}

#[tokio::test]
async fn delete_polls_location_until_gone() {
    let fake = FakeArm::with_config(FakeArmConfig {
        polls_in_progress: 2,
        delete_style: DeleteStyle::Location,
        ..Default::default()
    });
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    arm.put_vnet(RG, &vnet()).await.unwrap();
    fake.clear_log();
    arm.delete_vnet(RG, "tradelane-vnet").await.unwrap();
    assert_eq!(fake.count("DELETE", "/virtualNetworks/tradelane-vnet"), 1);
    // Two 202s, then 204.
    assert_eq!(
        fake.count("GET", "/operationResults/"),
        3,
        "{:#?}",
        fake.requests()
    );
    assert!(fake.resource(&arm.vnet_id(RG, "tradelane-vnet")).is_none());
    assert!(arm.get_vnet(RG, "tradelane-vnet").await.unwrap().is_none());
    // Deleting what is already gone is fine (ARM answers 204).
    arm.delete_vnet(RG, "tradelane-vnet").await.unwrap();
}

#[tokio::test]
async fn delete_also_follows_azure_async_operation() {
    let fake = FakeArm::with_config(FakeArmConfig {
        delete_style: DeleteStyle::AsyncOperation,
        ..Default::default()
    });
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    arm.put_vnet(RG, &vnet()).await.unwrap();
    fake.clear_log();
    arm.delete_vnet(RG, "tradelane-vnet").await.unwrap();
    assert_eq!(fake.count("GET", "/operations/"), 3);
    assert!(fake.resource(&arm.vnet_id(RG, "tradelane-vnet")).is_none());
}

#[tokio::test]
async fn without_operation_headers_polls_provisioning_state() {
    let fake = FakeArm::with_config(FakeArmConfig {
        put_style: PutStyle::ProvisioningState,
        polls_in_progress: 3,
        ..Default::default()
    });
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    let pip = arm
        .put_public_ip(
            RG,
            &PublicIpSpec {
                name: "acme-tx-0-pip".into(),
                location: LOC.into(),
                tags: tags(),
            },
        )
        .await
        .unwrap();
    assert_eq!(fake.count("GET", "/operations/"), 0);
    // 3 GETs see "Creating", the 4th "Succeeded", then the final GET we return.
    assert_eq!(
        fake.count("GET", "/publicIPAddresses/acme-tx-0-pip"),
        5,
        "{:#?}",
        fake.requests()
    );
    let ip = consort::provider::azure::arm::public_ip_address(&pip);
    assert_eq!(ip.as_deref(), Some("127.0.0.10"));
    let stored = fake
        .resource(&arm.public_ip_id(RG, "acme-tx-0-pip"))
        .unwrap();
    assert_eq!(stored["sku"]["name"], "Standard");
    assert_eq!(stored["properties"]["publicIPAllocationMethod"], "Static");
}

#[tokio::test]
async fn throttling_waits_retry_after_seconds() {
    let fake = FakeArm::start();
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    fake.throttle(Throttle {
        method: Some("PUT".into()),
        path_contains: Some("/virtualNetworks/".into()),
        times: 2,
        retry_after_secs: 1,
        status: 429,
    });
    arm.put_vnet(RG, &vnet()).await.unwrap();
    // Three attempts (two 429s, then accepted): no attempt more, none lost.
    assert_eq!(fake.count("PUT", "/virtualNetworks/"), 3);
    // Each retry came at least its Retry-After (1 s) after the 429 it answers; backoff
    // alone (10 ms initial) would be far below that. As the stand-in logged them.
    let at: Vec<Duration> = fake
        .requests()
        .iter()
        .filter(|l| l.method == "PUT" && l.path.contains("/virtualNetworks/"))
        .map(|l| l.at)
        .collect();
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "retried after {:?}",
            pair[1] - pair[0]
        );
    }

    fake.throttle(Throttle {
        method: Some("GET".into()),
        path_contains: Some("/operations/".into()),
        times: 1,
        retry_after_secs: 1,
        status: 503,
    });
    let t0 = Instant::now();
    arm.put_nsg(
        RG,
        &NsgSpec {
            name: "acme-nsg".into(),
            location: LOC.into(),
            rules: vec![],
            tags: tags(),
        },
    )
    .await
    .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "503 Retry-After ignored: {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn endless_throttling_gives_up_after_bounded_attempts() {
    let fake = FakeArm::start();
    let mut s = settings(&fake);
    s.max_retries = 2;
    let arm = arm_with(&fake, s);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    fake.throttle(Throttle {
        method: Some("PUT".into()),
        path_contains: None,
        times: 1000,
        retry_after_secs: 0,
        status: 429,
    });
    let e = arm.put_vnet(RG, &vnet()).await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e}");
    assert_eq!(e.code(), Some("TooManyRequests"));
    assert!(
        e.to_string().contains(&arm.vnet_id(RG, "tradelane-vnet")),
        "{e}"
    );
    assert_eq!(
        fake.count("PUT", "/virtualNetworks/"),
        3,
        "1 attempt + 2 retries"
    );
}

#[tokio::test]
async fn arm_error_bodies_surface_code_message_and_resource() {
    let fake = FakeArm::start();
    let arm = arm(&fake);
    let nic = network(&arm).await;
    fake.fail_put(
        "acme-tx-0-vm",
        409,
        "SkuNotAvailable",
        "The requested VM size Standard_B2s is currently not available in location 'westeurope'.",
        None,
    );
    let e = arm.put_vm(RG, &vm(&nic, "acme-tx-0-vm")).await.unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, ArmError::Api { status: 409, .. }), "{e:?}");
    assert!(s.contains("SkuNotAvailable"), "{s}");
    assert!(s.contains("is currently not available in location"), "{s}");
    assert!(s.contains(&arm.vm_id(RG, "acme-tx-0-vm")), "{s}");
    assert!(s.contains("pick another vm_size"), "{s}");

    // Accepted, but the operation fails: the operation's error is surfaced.
    fake.fail_operation("acme-tx-1-vm", "QuotaExceeded", "Operation could not be completed as it results in exceeding approved standardBSFamily Cores quota.");
    let e = arm.put_vm(RG, &vm(&nic, "acme-tx-1-vm")).await.unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, ArmError::OperationFailed { .. }), "{e:?}");
    assert!(
        s.contains("QuotaExceeded") && s.contains("standardBSFamily Cores quota"),
        "{s}"
    );
    assert!(s.contains(&arm.vm_id(RG, "acme-tx-1-vm")), "{s}");
    assert!(s.contains("request a quota increase"), "{s}");
}

#[tokio::test]
async fn bearer_token_is_required_and_sent() {
    let fake = FakeArm::start();
    let wrong = Arm::new(
        settings(&fake),
        Arc::new(StaticTokenCredential::new("not-the-token")),
    )
    .unwrap();
    let e = wrong.get_resource_group(RG).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(e.code(), Some("InvalidAuthenticationToken"));
    assert!(e.to_string().contains("refresh CONSORT_ARM_TOKEN"), "{e}");
    // Every request of the right client carries it (the fake answers 401 otherwise).
    let arm = arm(&fake);
    assert!(arm.get_resource_group(RG).await.unwrap().is_none());
    let g = arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    assert_eq!(
        g.tags.get("consort-network").map(String::as_str),
        Some("tradelane")
    );
    assert_eq!(g.provisioning_state.as_deref(), Some("Succeeded"));
}

#[tokio::test]
async fn references_must_exist_and_in_use_resources_are_not_deleted() {
    let fake = FakeArm::start();
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    let e = arm
        .put_nic(
            RG,
            &NicSpec {
                name: "early-nic".into(),
                location: LOC.into(),
                subnet_id: arm.subnet_id(RG, "tradelane-vnet", "acme-subnet"),
                private_ip: "10.42.0.9".into(),
                nsg_id: None,
                public_ip_id: None,
                tags: tags(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidResourceReference"), "{e}");
    assert!(e.to_string().contains("early-nic"), "{e}");

    let nic = network(&arm).await;
    let e = arm
        .delete_subnet(RG, "tradelane-vnet", "acme-subnet")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InUseSubnetCannotBeDeleted"), "{e}");
    let e = arm.delete_nsg(RG, "acme-nsg").await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("InUseNetworkSecurityGroupCannotBeDeleted"),
        "{e}"
    );
    arm.put_vm(RG, &vm(&nic, "acme-tx-0-vm")).await.unwrap();
    let e = arm.delete_nic(RG, "acme-tx-0-nic").await.unwrap_err();
    assert_eq!(e.code(), Some("NicInUse"), "{e}");
    let e = arm.delete_public_ip(RG, "acme-tx-0-pip").await.unwrap_err();
    assert_eq!(e.code(), Some("PublicIPAddressInUse"), "{e}");
}

#[tokio::test]
async fn vnet_update_keeps_its_subnets() {
    let fake = FakeArm::start();
    let arm = arm(&fake);
    network(&arm).await;
    let mut v = vnet();
    v.tags.insert("extra".into(), "1".into());
    // Without carrying the subnets over, ARM would try to delete the in-use subnet.
    let got = arm.put_vnet(RG, &v).await.unwrap();
    let subnets = &got.properties.unwrap().subnets;
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].name.as_deref(), Some("acme-subnet"));
    assert!(fake
        .resource(&arm.subnet_id(RG, "tradelane-vnet", "acme-subnet"))
        .is_some());
}

#[tokio::test]
async fn full_chain_then_reverse_delete_and_group_listing() {
    let fake = FakeArm::with_config(FakeArmConfig {
        page_size: 2,
        ..Default::default()
    });
    let arm = arm(&fake);
    let nic_id = network(&arm).await;
    let nic = arm.get_nic(RG, "acme-tx-0-nic").await.unwrap().unwrap();
    assert_eq!(
        consort::provider::azure::arm::nic_private_ip(&nic).as_deref(),
        Some("10.42.0.5")
    );
    let mut spec = vm(&nic_id, "acme-tx-0-vm");
    spec.custom_data = CustomData::new("#cloud-config\n# node secrets would be here\n");
    let got = arm.put_vm(RG, &spec).await.unwrap();
    // ARM never returns customData; the server got it base64-encoded.
    let os = got
        .properties
        .as_ref()
        .unwrap()
        .os_profile
        .as_ref()
        .unwrap();
    assert!(os.custom_data.is_none());
    assert_eq!(
        fake.custom_data(&arm.vm_id(RG, "acme-tx-0-vm")).as_deref(),
        Some("#cloud-config\n# node secrets would be here\n")
    );
    let stored = fake.resource(&arm.vm_id(RG, "acme-tx-0-vm")).unwrap();
    assert_eq!(
        stored["properties"]["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"],
        true
    );

    // Listing follows nextLink (page size 2): vnet, nsg, pip, nic, vm, its OS disk.
    let mut types: Vec<String> = arm
        .list_resources(RG)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.rtype)
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "Microsoft.Compute/disks",
            "Microsoft.Compute/virtualMachines",
            "Microsoft.Network/networkInterfaces",
            "Microsoft.Network/networkSecurityGroups",
            "Microsoft.Network/publicIPAddresses",
            "Microsoft.Network/virtualNetworks",
        ]
    );
    assert!(fake.count("GET", "/resources") >= 3, "did not page");

    arm.delete_vm(RG, "acme-tx-0-vm").await.unwrap();
    // Azure keeps the NIC reserved for its deleted VM a while (the stand-in: 1 s).
    let e = arm.delete_nic(RG, "acme-tx-0-nic").await.unwrap_err();
    assert_eq!(e.code(), Some("NicReservedForAnotherVm"), "{e}");
    assert!(e.to_string().contains("retry after 1 seconds"), "{e}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Err(e) = arm.delete_nic(RG, "acme-tx-0-nic").await {
        assert_eq!(e.code(), Some("NicReservedForAnotherVm"), "{e}");
        assert!(std::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    arm.delete_public_ip(RG, "acme-tx-0-pip").await.unwrap();
    arm.delete_subnet(RG, "tradelane-vnet", "acme-subnet")
        .await
        .unwrap();
    arm.delete_nsg(RG, "acme-nsg").await.unwrap();
    arm.delete_vnet(RG, "tradelane-vnet").await.unwrap();
    // The OS disk went with the VM (deleteOption: Delete): nothing is left behind.
    assert!(arm.list_resources(RG).await.unwrap().is_empty());

    let foreign = fake.add_foreign(RG, "Microsoft.Storage/storageAccounts", "someonesdata");
    let left = arm.list_resources(RG).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, foreign);
    arm.delete_resource_group(RG).await.unwrap();
    assert!(arm.get_resource_group(RG).await.unwrap().is_none());
    let e = arm.list_resources(RG).await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceGroupNotFound"), "{e}");
}

#[tokio::test]
async fn slow_operation_times_out_naming_resource() {
    let fake = FakeArm::with_config(FakeArmConfig {
        latency: Duration::from_secs(30),
        unattended_completion: Duration::from_secs(30),
        ..Default::default()
    });
    let mut s = settings(&fake);
    s.operation_timeout = Duration::from_millis(300);
    let arm = arm_with(&fake, s);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    let e = arm.put_vnet(RG, &vnet()).await.unwrap_err();
    assert!(matches!(e, ArmError::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&arm.vnet_id(RG, "tradelane-vnet")),
        "{e}"
    );
}

#[tokio::test]
async fn independent_operations_overlap() {
    let fake = FakeArm::with_config(FakeArmConfig {
        latency: Duration::from_millis(400),
        ..Default::default()
    });
    let arm = arm(&fake);
    arm.create_resource_group(RG, LOC, &tags()).await.unwrap();
    let specs: Vec<PublicIpSpec> = (0..8)
        .map(|i| PublicIpSpec {
            name: format!("n{i}-pip"),
            location: LOC.into(),
            tags: tags(),
        })
        .collect();
    let all = futures::future::join_all(specs.iter().map(|s| arm.put_public_ip(RG, s))).await;
    assert!(all.iter().all(Result::is_ok));
    // All eight in flight at once, as the stand-in counted them (one after another the
    // peak would be 1).
    assert_eq!(fake.peak_concurrent_operations(), 8);
}

/// The stand-in itself: paths are case-insensitive, api-version and auth are required.
#[test]
fn stand_in_paths_are_case_insensitive_and_api_version_is_required() {
    let fake = FakeArm::start();
    let http = reqwest::blocking::Client::new();
    let sub = fake.subscription_id();
    let url = |path: &str| format!("{}{path}", fake.url());
    let put = http
        .put(url(&format!(
            "/subscriptions/{sub}/resourceGroups/MixedCase?api-version=2021-04-01"
        )))
        .bearer_auth(fake.token())
        .json(&serde_json::json!({"location": "westeurope"}))
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let get = http
        .get(url(&format!(
            "/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/mixedcase?api-version=2021-04-01"
        )))
        .bearer_auth(fake.token())
        .send()
        .unwrap();
    assert_eq!(get.status().as_u16(), 200);
    let body: serde_json::Value = get.json().unwrap();
    assert_eq!(body["name"], "MixedCase");
    let no_version = http
        .get(url(&format!(
            "/subscriptions/{sub}/resourceGroups/MixedCase"
        )))
        .bearer_auth(fake.token())
        .send()
        .unwrap();
    assert_eq!(no_version.status().as_u16(), 400);
    let body: serde_json::Value = no_version.json().unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let no_auth = http
        .get(url(&format!(
            "/subscriptions/{sub}/resourceGroups/MixedCase?api-version=2021-04-01"
        )))
        .send()
        .unwrap();
    assert_eq!(no_auth.status().as_u16(), 401);
}
