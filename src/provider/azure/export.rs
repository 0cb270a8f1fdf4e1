//! `consort export arm`: an ARM template equivalent to what apply creates, for
//! `az deployment group create -g <resource_group> --template-file azuredeploy.json
//! --parameters @azuredeploy.parameters.json`.
//!
//! The template is built from the same desired resources and the same request bodies as
//! apply (VNet with its subnets inline, NSGs, NAT gateway and its public IP, public IPs,
//! NICs, the key vault with every node's secrets, VMs with their managed identities, and
//! one "Key Vault Secrets User" role assignment per VM secret), with references as
//! `resourceId(...)` and `dependsOn` mirroring the apply graph. The resource group itself
//! is the deployment's target, so it is not in the template.
//!
//! Each node has one `secureObject` parameter `node_<node>`: `customData` (its base64
//! cloud-init, which holds no secret) and `secrets` (its key vault secrets' values by
//! name). One parameter per node keeps any network within ARM's 256 parameters (up to 255
//! nodes). When state already holds the keys and genesis (after `consort apply` generated
//! them), the parameters file is written with every value — it then contains secrets and
//! is written 0600. Without them, the parameters file leaves them out and the template's
//! metadata says so (the parameters file schema, 2019-04-01, allows no other top-level key).

use super::arm::identity::KEY_VAULT_SECRETS_USER;
use super::arm::{
    self, CustomData, ImageRef, NicSpec, NsgSpec, PublicIpSpec, RuleSpec, SubnetSpec, VmSpec,
    VnetSpec,
};
use super::layout::{nat_gateway_name, nat_pip_name, vnet_name};
use super::vault::{node_secrets, vault_name};
use super::{AzureProvider, OS_DISK_TYPE};
use crate::plan::Resource;
use crate::provider::ProviderError;
use crate::state::fsutil::{write_atomic, write_secret};
use crate::state::Kind;
use crate::state::State;
use crate::topology::Role;
use crate::topology::{ProviderConfig, Topology};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TEMPLATE_SCHEMA: &str =
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";
const PARAMETERS_SCHEMA: &str =
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#";
const LOCATION: &str = "[parameters('location')]";

fn rid(rtype: &str, name: &str) -> String {
    format!("[resourceId('{rtype}', '{name}')]")
}

fn subnet_rid(vnet: &str, subnet: &str) -> String {
    format!("[resourceId('Microsoft.Network/virtualNetworks/subnets', '{vnet}', '{subnet}')]")
}

/// ARM's limit on a template's parameters.
pub const MAX_PARAMETERS: usize = 256;

/// `node_<node>` (ARM parameter names: letters, digits, underscores): the node's
/// `secureObject` of `customData` and `secrets`.
pub fn node_parameter(node: &str) -> String {
    format!("node_{}", node.replace('-', "_"))
}

/// The expression of a vault secret's value: `[parameters('node_<node>').secrets['<name>']]`.
fn secret_value(node: &str, secret: &str) -> String {
    format!(
        "[parameters('{}').secrets['{secret}']]",
        node_parameter(node)
    )
}

fn attr(r: &Resource, k: &str) -> String {
    r.attrs
        .get(k)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A template resource: the request body plus type, apiVersion, name and dependsOn.
fn template_resource(
    rtype: &str,
    api: &str,
    name: &str,
    body: Value,
    depends: Vec<String>,
) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(rtype));
    m.insert("apiVersion".into(), json!(api));
    m.insert("name".into(), json!(name));
    if let Value::Object(b) = body {
        for (k, v) in b {
            m.insert(k, v);
        }
    }
    if !depends.is_empty() {
        m.insert("dependsOn".into(), json!(depends));
    }
    Value::Object(m)
}

/// Writes `azuredeploy.json` and `azuredeploy.parameters.json` into `out_dir`; `state`
/// (if it holds keys and genesis) fills in each VM's customData.
pub fn export_arm_with_state(
    topology: &Topology,
    state: Option<&State>,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, ProviderError> {
    let ProviderConfig::Azure(cfg) = &topology.provider else {
        return Err(ProviderError::Other(format!(
            "`export arm` needs `provider: azure` in the topology (network {} uses the {} provider)",
            topology.network.name,
            topology.provider.kind()
        )));
    };
    let provider = AzureProvider::new(cfg.clone())?;
    let desired = provider.desired_resources(topology, state)?;
    let tags: BTreeMap<String, String> = provider.tags(&topology.network.name);
    let vnet = vnet_name(&topology.network.name);
    let by_kind = |k: Kind| desired.iter().filter(move |r| r.kind == k);

    let mut resources = Vec::new();
    let mut nsg_ids = Vec::new();
    for r in by_kind(Kind::AzureNsg) {
        let name = attr(r, "name");
        let rules: Vec<RuleSpec> =
            serde_json::from_value(r.attrs["rules"].clone()).unwrap_or_default();
        let body = arm::nsg_body(&NsgSpec {
            name: name.clone(),
            location: LOCATION.into(),
            rules,
            tags: tags.clone(),
        });
        nsg_ids.push(rid("Microsoft.Network/networkSecurityGroups", &name));
        resources.push(template_resource(
            "Microsoft.Network/networkSecurityGroups",
            arm::NETWORK_API,
            &name,
            serde_json::to_value(body).expect("body serialises"),
            vec![],
        ));
    }
    let subnets: Vec<_> = by_kind(Kind::AzureSubnet)
        .map(|r| {
            arm::subnet_body(&SubnetSpec {
                vnet: vnet.clone(),
                name: attr(r, "name"),
                address_prefix: attr(r, "address_prefix"),
                nsg_id: Some(rid(
                    "Microsoft.Network/networkSecurityGroups",
                    &attr(r, "nsg"),
                )),
                nat_gateway_id: Some(rid(
                    "Microsoft.Network/natGateways",
                    &attr(r, "nat_gateway"),
                )),
            })
        })
        .collect();
    if let Some(v) = by_kind(Kind::AzureVnet).next() {
        let body = arm::vnet_body(
            &VnetSpec {
                name: vnet.clone(),
                location: LOCATION.into(),
                address_space: attr(v, "address_space"),
                tags: tags.clone(),
            },
            subnets,
        );
        resources.push(template_resource(
            "Microsoft.Network/virtualNetworks",
            arm::NETWORK_API,
            &vnet,
            serde_json::to_value(body).expect("body serialises"),
            nsg_ids
                .iter()
                .cloned()
                .chain([rid(
                    "Microsoft.Network/natGateways",
                    &nat_gateway_name(&topology.network.name),
                )])
                .collect(),
        ));
    }
    // The NAT gateway: the subnets' outbound internet.
    let nat = nat_gateway_name(&topology.network.name);
    let nat_pip = rid(
        "Microsoft.Network/publicIPAddresses",
        &nat_pip_name(&topology.network.name),
    );
    resources.push(template_resource(
        "Microsoft.Network/natGateways",
        arm::NETWORK_API,
        &nat,
        arm::nat::nat_gateway_body(LOCATION, &nat_pip, &tags),
        vec![nat_pip],
    ));
    // The key vault and every node's secrets (values: securestring parameters).
    let vault = vault_name(&topology.network.name, &cfg.resource_group, &cfg.location);
    let vault_rid = rid("Microsoft.KeyVault/vaults", &vault);
    resources.push(template_resource(
        "Microsoft.KeyVault/vaults",
        arm::vault::KEYVAULT_API,
        &vault,
        arm::vault::vault_body(LOCATION, "[subscription().tenantId]", &tags),
        vec![],
    ));
    if topology.nodes().len() + 1 > MAX_PARAMETERS {
        return Err(ProviderError::Other(format!(
            "an ARM template holds at most {MAX_PARAMETERS} parameters: one per node plus the location allows {} nodes, and the topology has {}",
            MAX_PARAMETERS - 1,
            topology.nodes().len()
        )));
    }
    for n in topology.nodes() {
        for sec in node_secrets(&n.name, n.role) {
            resources.push(template_resource(
                "Microsoft.KeyVault/vaults/secrets",
                arm::vault::KEYVAULT_API,
                &format!("{vault}/{}", sec.name),
                json!({"properties": {"value": secret_value(&n.name, &sec.name)}}),
                vec![vault_rid.clone()],
            ));
        }
    }
    let mut outputs = Map::new();
    for r in by_kind(Kind::AzurePublicIp) {
        let name = attr(r, "name");
        let body = arm::public_ip_body(&PublicIpSpec {
            name: name.clone(),
            location: LOCATION.into(),
            tags: tags.clone(),
        });
        resources.push(template_resource(
            "Microsoft.Network/publicIPAddresses",
            arm::NETWORK_API,
            &name,
            serde_json::to_value(body).expect("body serialises"),
            vec![],
        ));
        outputs.insert(
            format!("{}_ip", name.replace('-', "_")),
            json!({
                "type": "string",
                "value": format!("[reference(resourceId('Microsoft.Network/publicIPAddresses', '{name}')).ipAddress]"),
            }),
        );
    }
    for r in by_kind(Kind::AzureNic) {
        let name = attr(r, "name");
        let nsg = rid("Microsoft.Network/networkSecurityGroups", &attr(r, "nsg"));
        let pip = r
            .attrs
            .get("public_ip")
            .and_then(Value::as_str)
            .map(|p| rid("Microsoft.Network/publicIPAddresses", p));
        let body = arm::nic_body(&NicSpec {
            name: name.clone(),
            location: LOCATION.into(),
            subnet_id: subnet_rid(&vnet, &attr(r, "subnet")),
            private_ip: attr(r, "private_ip"),
            nsg_id: Some(nsg.clone()),
            public_ip_id: pip.clone(),
            tags: tags.clone(),
        });
        let mut deps = vec![rid("Microsoft.Network/virtualNetworks", &vnet), nsg];
        deps.extend(pip);
        resources.push(template_resource(
            "Microsoft.Network/networkInterfaces",
            arm::NETWORK_API,
            &name,
            serde_json::to_value(body).expect("body serialises"),
            deps,
        ));
    }

    // customData: rendered from state when every node's material is there.
    let mut custom: BTreeMap<String, String> = BTreeMap::new();
    let mut missing = None;
    if let Some(st) = state {
        for n in topology.nodes() {
            match provider
                .vm_cloud_init(topology, st, &n.name)
                .and_then(|ci| {
                    crate::render::cloud_init(&ci).map_err(|e| ProviderError::Other(e.to_string()))
                }) {
                Ok(text) => match super::custom_data::fit(&text) {
                    Ok(bytes) => {
                        custom.insert(n.name.clone(), CustomData::from_bytes(bytes).base64());
                    }
                    Err((plain, gz)) => {
                        return Err(ProviderError::Other(format!(
                            "the cloud-init of {} is {plain} bytes ({gz} gzip-compressed); Azure's customData holds at most {} bytes",
                            n.name,
                            super::custom_data::LIMIT
                        )));
                    }
                },
                Err(e) => {
                    missing = Some(e.to_string());
                    break;
                }
            }
        }
    } else {
        missing = Some("no state yet".into());
    }
    if missing.is_some() {
        custom.clear();
    }

    let mut parameters = Map::new();
    parameters.insert(
        "location".into(),
        json!({"type": "string", "defaultValue": cfg.location}),
    );
    for r in by_kind(Kind::AzureVm) {
        let name = attr(r, "name");
        let node = attr(r, "node");
        let param = node_parameter(&node);
        parameters.insert(
            param.clone(),
            json!({
                "type": "secureObject",
                "metadata": {"description": format!("{node}: customData, its base64 cloud-init (no secret: the VM reads its secrets from key vault {vault} at boot), and secrets, the values of its key vault secrets by name; consort fills it in azuredeploy.parameters.json once `consort apply` has generated the keys and genesis")},
            }),
        );
        let body = arm::vm_json(
            &VmSpec {
                name: name.clone(),
                location: LOCATION.into(),
                size: attr(r, "size"),
                admin_username: attr(r, "admin_username"),
                ssh_public_key: attr(r, "ssh_public_key"),
                nic_id: rid("Microsoft.Network/networkInterfaces", &attr(r, "nic")),
                image: ImageRef::ubuntu_lts(),
                os_disk_type: OS_DISK_TYPE.into(),
                custom_data: CustomData::new(""),
                tags: tags.clone(),
            },
            format!("[parameters('{param}').customData]"),
        );
        let vm_rid = rid("Microsoft.Compute/virtualMachines", &name);
        let role = if r.attrs["role"] == "validator" {
            Role::Validator
        } else {
            Role::Tx
        };
        let secret_rids: Vec<String> = node_secrets(&node, role)
            .iter()
            .map(|s| {
                format!(
                    "[resourceId('Microsoft.KeyVault/vaults/secrets', '{vault}', '{}')]",
                    s.name
                )
            })
            .collect();
        resources.push(template_resource(
            "Microsoft.Compute/virtualMachines",
            arm::COMPUTE_API,
            &name,
            body,
            std::iter::once(rid("Microsoft.Network/networkInterfaces", &attr(r, "nic")))
                .chain(secret_rids.iter().cloned())
                .collect(),
        ));
        // Its identity reads exactly its own secrets.
        for s in node_secrets(&node, role) {
            let secret_rid = format!(
                "resourceId('Microsoft.KeyVault/vaults/secrets', '{vault}', '{}')",
                s.name
            );
            let mut ra = template_resource(
                "Microsoft.Authorization/roleAssignments",
                super::arm::identity::AUTHORIZATION_API,
                &format!("[guid({secret_rid}, resourceId('Microsoft.Compute/virtualMachines', '{name}'), '{KEY_VAULT_SECRETS_USER}')]"),
                json!({"properties": {
                    "roleDefinitionId": format!("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{KEY_VAULT_SECRETS_USER}')]"),
                    "principalId": format!("[reference(resourceId('Microsoft.Compute/virtualMachines', '{name}'), '{}', 'Full').identity.principalId]", arm::COMPUTE_API),
                    "principalType": "ServicePrincipal",
                }}),
                vec![vm_rid.clone(), format!("[{secret_rid}]")],
            );
            ra["scope"] = json!(format!(
                "Microsoft.KeyVault/vaults/{vault}/secrets/{}",
                s.name
            ));
            resources.push(ra);
        }
    }
    let mut metadata = json!({
        "generator": format!("consort {}", env!("CARGO_PKG_VERSION")),
        "network": topology.network.name,
        "resourceGroup": cfg.resource_group,
        "usage": format!("az group create -n {rg} -l {loc} --tags managed-by=consort consort-network={net} && az deployment group create -g {rg} --template-file azuredeploy.json --parameters @azuredeploy.parameters.json", rg = cfg.resource_group, loc = cfg.location, net = topology.network.name),
    });
    if let Some(why) = &missing {
        metadata["parameters"] = json!(format!(
            "azuredeploy.parameters.json leaves out every node_<node> value ({why}): run `consort apply` once to generate the keys and genesis and export again, or supply each node_<node> object (customData, secrets) yourself"
        ));
    }

    let template = json!({
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": metadata,
        "parameters": parameters,
        "resources": resources,
        "outputs": outputs,
    });
    let mut param_values = Map::new();
    param_values.insert("location".into(), json!({"value": cfg.location}));
    if let (Some(st), None) = (state, &missing) {
        for n in topology.nodes() {
            let Some(b64) = custom.get(&n.name) else {
                continue;
            };
            let mut secrets = Map::new();
            if let Ok(values) = provider.secret_values(st, &n.name, n.role) {
                for (sec, v) in values {
                    secrets.insert(sec.name.clone(), json!(v));
                }
            }
            param_values.insert(
                node_parameter(&n.name),
                json!({"value": {"customData": b64, "secrets": secrets}}),
            );
        }
    }
    // The 2019-04-01 parameters schema allows `$schema`, `contentVersion` and `parameters`
    // only.
    let params = json!({
        "$schema": PARAMETERS_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": param_values,
    });

    std::fs::create_dir_all(out_dir)
        .map_err(|e| ProviderError::Other(format!("cannot create {}: {e}", out_dir.display())))?;
    let tpath = out_dir.join("azuredeploy.json");
    let ppath = out_dir.join("azuredeploy.parameters.json");
    let mut t = serde_json::to_vec_pretty(&template).expect("template serialises");
    t.push(b'\n');
    write_atomic(&tpath, &t, 0o644)
        .map_err(|e| ProviderError::Other(format!("cannot write {}: {e}", tpath.display())))?;
    let mut p = serde_json::to_vec_pretty(&params).expect("parameters serialise");
    p.push(b'\n');
    // With the secret parameters it holds every node's keys.
    let written = if custom.is_empty() {
        write_atomic(&ppath, &p, 0o644)
    } else {
        write_secret(&ppath, &p)
    };
    written.map_err(|e| ProviderError::Other(format!("cannot write {}: {e}", ppath.display())))?;
    Ok(vec![tpath, ppath])
}
