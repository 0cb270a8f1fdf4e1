//! Typed operations: resource group, VNet, subnet, NSG, public IP, NIC, VM.
//!
//! Each `put_*` builds the generated model, sends it with the generated client's `.send()`,
//! follows the operation with our poller and returns the resource as a fresh GET shows it.
//! `get_*` returns `None` for 404; `delete_*` treats 404 as already gone.

use super::lro::Verb;
use super::rules::{Access, Protocol, RuleSpec};
use super::{Arm, ArmError, COMPUTE_API, NETWORK_API, RESOURCES_API};
use azure_mgmt_compute::package_2024_07_01::models as cm;
use azure_mgmt_network::package_2024_03::models as nm;
use azure_mgmt_resources::package_resources_2021_04::models as rm;
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;

pub type Tags = BTreeMap<String, String>;

fn tags_value(tags: &Tags) -> Option<Value> {
    if tags.is_empty() {
        None
    } else {
        Some(serde_json::to_value(tags).expect("string map serialises"))
    }
}

fn tags_from(v: &Option<Value>) -> Tags {
    v.as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Error codes ARM uses for "try again shortly" on a PUT/DELETE (e.g. two subnets of one
/// VNet written at once).
pub(crate) const RETRYABLE_CODES: &[&str] = &["AnotherOperationInProgress", "RetryableError"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGroupInfo {
    pub id: String,
    pub name: String,
    pub location: String,
    pub tags: Tags,
    pub provisioning_state: Option<String>,
}

/// One resource of a group listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub id: String,
    pub name: String,
    /// e.g. `Microsoft.Network/virtualNetworks`.
    pub rtype: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnetSpec {
    pub name: String,
    pub location: String,
    pub address_space: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    pub vnet: String,
    pub name: String,
    pub address_prefix: String,
    /// NSG (ARM id) associated with the subnet.
    pub nsg_id: Option<String>,
    /// NAT gateway (ARM id): the subnet's explicit outbound internet.
    pub nat_gateway_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsgSpec {
    pub name: String,
    pub location: String,
    pub rules: Vec<RuleSpec>,
    pub tags: Tags,
}

/// A Standard, static, IPv4 public IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIpSpec {
    pub name: String,
    pub location: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub name: String,
    pub location: String,
    pub subnet_id: String,
    /// Static private IP (so enodes are known before any VM boots).
    pub private_ip: String,
    pub nsg_id: Option<String>,
    pub public_ip_id: Option<String>,
    pub tags: Tags,
}

/// Marketplace image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub publisher: String,
    pub offer: String,
    pub sku: String,
    pub version: String,
}

impl ImageRef {
    /// Ubuntu 24.04 LTS (`Canonical:ubuntu-24_04-lts:server:latest`).
    pub fn ubuntu_lts() -> ImageRef {
        ImageRef {
            publisher: "Canonical".into(),
            offer: "ubuntu-24_04-lts".into(),
            sku: "server".into(),
            version: "latest".into(),
        }
    }

    pub fn urn(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.publisher, self.offer, self.sku, self.version
        )
    }
}

/// cloud-init text for a VM. It holds the node's secrets (node key, signer keystore and
/// password), so its Debug shows only the size; it is base64-encoded into the VM PUT and
/// nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomData(Vec<u8>);

impl CustomData {
    pub fn new(text: impl Into<String>) -> CustomData {
        CustomData(text.into().into_bytes())
    }
    /// Bytes as they are (e.g. a gzip-compressed cloud-init).
    pub fn from_bytes(bytes: Vec<u8>) -> CustomData {
        CustomData(bytes)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn base64(&self) -> String {
        azure_core::base64::encode(&self.0)
    }
}

impl std::fmt::Debug for CustomData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomData(<redacted, {} bytes>)", self.0.len())
    }
}

/// A Linux VM: SSH key only (password authentication disabled), managed OS disk deleted
/// with the VM (so no orphan disk is left in the group), one NIC kept on delete (consort
/// deletes NICs itself, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    pub location: String,
    pub size: String,
    pub admin_username: String,
    pub ssh_public_key: String,
    pub nic_id: String,
    pub image: ImageRef,
    /// e.g. `StandardSSD_LRS`.
    pub os_disk_type: String,
    pub custom_data: CustomData,
    pub tags: Tags,
}

/// The private IP of a NIC's first IP configuration.
pub fn nic_private_ip(nic: &nm::NetworkInterface) -> Option<String> {
    nic.properties
        .as_ref()?
        .ip_configurations
        .first()?
        .properties
        .as_ref()?
        .private_ip_address
        .clone()
}

/// The address a public IP got (known once it is provisioned).
pub fn public_ip_address(pip: &nm::PublicIpAddress) -> Option<String> {
    pip.properties.as_ref()?.ip_address.clone()
}

fn net_ref<T: Default>(id: &str, set: impl FnOnce(&mut T, Option<String>)) -> T {
    let mut t = T::default();
    set(&mut t, Some(id.to_string()));
    t
}

pub(crate) fn rule_model(r: &RuleSpec) -> nm::SecurityRule {
    use nm::security_rule_properties_format::Protocol as P;
    let protocol = match r.protocol {
        Protocol::Tcp => P::Tcp,
        Protocol::Udp => P::Udp,
        Protocol::Any => P::U2a, // the generator's name for "*"
    };
    let access = match r.access {
        Access::Allow => nm::SecurityRuleAccess::Allow,
        Access::Deny => nm::SecurityRuleAccess::Deny,
    };
    let mut p = nm::SecurityRulePropertiesFormat::new(
        protocol,
        access,
        r.priority,
        nm::SecurityRuleDirection::Inbound,
    );
    p.description = Some(r.description.clone());
    p.source_port_range = Some("*".into());
    p.destination_port_range = Some(r.port.clone());
    // ARM wants exactly one of the singular / plural forms.
    if r.sources.len() == 1 {
        p.source_address_prefix = Some(r.sources[0].clone());
    } else {
        p.source_address_prefixes = r.sources.clone();
    }
    if r.destinations.len() == 1 {
        p.destination_address_prefix = Some(r.destinations[0].clone());
    } else {
        p.destination_address_prefixes = r.destinations.clone();
    }
    nm::SecurityRule {
        name: Some(r.name.clone()),
        properties: Some(p),
        ..Default::default()
    }
}

fn vm_size(size: &str) -> cm::hardware_profile::VmSize {
    // The generated enum's Deserialize maps unknown sizes to UnknownValue, which
    // serialises back as the plain string.
    serde_json::from_value(Value::String(size.to_string()))
        .unwrap_or_else(|_| cm::hardware_profile::VmSize::UnknownValue(size.to_string()))
}

fn storage_type(t: &str) -> cm::StorageAccountType {
    serde_json::from_value(Value::String(t.to_string()))
        .unwrap_or_else(|_| cm::StorageAccountType::UnknownValue(t.to_string()))
}

/// The VM body as sent: the generated model, with its read-only fields that serialise
/// as `null` (e.g. `timeCreated`) removed. `custom_data` is the customData value as sent
/// (base64, or a template expression).
pub(crate) fn vm_json(spec: &VmSpec, custom_data: String) -> Value {
    let mut v = serde_json::to_value(vm_body(spec, custom_data)).expect("VM model serialises");
    super::raw::prune_nulls(&mut v);
    v
}

/// The VM model: with a system-assigned managed identity (it reads its own secrets from
/// Key Vault at boot).
pub(crate) fn vm_body(spec: &VmSpec, custom_data: String) -> cm::VirtualMachine {
    let mut resource = cm::Resource::new(spec.location.clone());
    resource.tags = tags_value(&spec.tags);
    let mut vm = cm::VirtualMachine::new(resource);
    vm.identity = Some(cm::VirtualMachineIdentity {
        type_: Some(cm::virtual_machine_identity::Type::SystemAssigned),
        ..Default::default()
    });

    let mut os_disk = cm::OsDisk::new(cm::CreateOption::FromImage);
    os_disk.name = Some(format!("{}-osdisk", spec.name));
    os_disk.delete_option = Some(cm::DeleteOption::Delete);
    os_disk.managed_disk = Some(cm::ManagedDiskParameters {
        storage_account_type: Some(storage_type(&spec.os_disk_type)),
        ..Default::default()
    });

    let ssh_key = cm::SshPublicKey {
        path: Some(format!(
            "/home/{}/.ssh/authorized_keys",
            spec.admin_username
        )),
        key_data: Some(spec.ssh_public_key.clone()),
    };
    let linux = cm::LinuxConfiguration {
        disable_password_authentication: Some(true),
        ssh: Some(cm::SshConfiguration {
            public_keys: vec![ssh_key],
        }),
        provision_vm_agent: Some(true),
        ..Default::default()
    };
    let os_profile = cm::OsProfile {
        computer_name: Some(spec.name.clone()),
        admin_username: Some(spec.admin_username.clone()),
        custom_data: Some(custom_data),
        linux_configuration: Some(linux),
        ..Default::default()
    };
    let nic = cm::NetworkInterfaceReference {
        sub_resource: cm::SubResource {
            id: Some(spec.nic_id.clone()),
        },
        properties: Some(cm::NetworkInterfaceReferenceProperties {
            primary: Some(true),
            delete_option: Some(cm::network_interface_reference_properties::DeleteOption::Detach),
        }),
    };
    vm.properties = Some(cm::VirtualMachineProperties {
        hardware_profile: Some(cm::HardwareProfile {
            vm_size: Some(vm_size(&spec.size)),
            vm_size_properties: None,
        }),
        storage_profile: Some(cm::StorageProfile {
            image_reference: Some(cm::ImageReference {
                publisher: Some(spec.image.publisher.clone()),
                offer: Some(spec.image.offer.clone()),
                sku: Some(spec.image.sku.clone()),
                version: Some(spec.image.version.clone()),
                ..Default::default()
            }),
            os_disk: Some(os_disk),
            ..Default::default()
        }),
        os_profile: Some(os_profile),
        network_profile: Some(cm::NetworkProfile {
            network_interfaces: vec![nic],
            ..Default::default()
        }),
        ..Default::default()
    });
    vm
}

pub(crate) fn vnet_body(spec: &VnetSpec, subnets: Vec<nm::Subnet>) -> nm::VirtualNetwork {
    nm::VirtualNetwork {
        resource: nm::Resource {
            location: Some(spec.location.clone()),
            tags: tags_value(&spec.tags),
            ..Default::default()
        },
        properties: Some(nm::VirtualNetworkPropertiesFormat {
            address_space: Some(nm::AddressSpace {
                address_prefixes: vec![spec.address_space.clone()],
            }),
            subnets,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn subnet_body(spec: &SubnetSpec) -> nm::Subnet {
    nm::Subnet {
        name: Some(spec.name.clone()),
        properties: Some(nm::SubnetPropertiesFormat {
            address_prefix: Some(spec.address_prefix.clone()),
            network_security_group: spec.nsg_id.as_deref().map(|nsg| {
                net_ref(nsg, |n: &mut nm::NetworkSecurityGroup, id| {
                    n.resource.id = id
                })
            }),
            nat_gateway: spec.nat_gateway_id.as_deref().map(|id| nm::SubResource {
                id: Some(id.to_string()),
            }),
            // Outbound goes through the NAT gateway, never Azure's implicit access.
            default_outbound_access: spec.nat_gateway_id.as_ref().map(|_| false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn nsg_body(spec: &NsgSpec) -> nm::NetworkSecurityGroup {
    nm::NetworkSecurityGroup {
        resource: nm::Resource {
            location: Some(spec.location.clone()),
            tags: tags_value(&spec.tags),
            ..Default::default()
        },
        properties: Some(nm::NetworkSecurityGroupPropertiesFormat {
            security_rules: spec.rules.iter().map(rule_model).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn public_ip_body(spec: &PublicIpSpec) -> nm::PublicIpAddress {
    nm::PublicIpAddress {
        resource: nm::Resource {
            location: Some(spec.location.clone()),
            tags: tags_value(&spec.tags),
            ..Default::default()
        },
        sku: Some(nm::PublicIpAddressSku {
            name: Some(nm::public_ip_address_sku::Name::Standard),
            tier: Some(nm::public_ip_address_sku::Tier::Regional),
        }),
        properties: Some(Box::new(nm::PublicIpAddressPropertiesFormat {
            public_ip_allocation_method: Some(nm::IpAllocationMethod::Static),
            public_ip_address_version: Some(nm::IpVersion::IPv4),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub(crate) fn nic_body(spec: &NicSpec) -> nm::NetworkInterface {
    let ipconfig = nm::NetworkInterfaceIpConfiguration {
        name: Some("ipconfig1".into()),
        properties: Some(nm::NetworkInterfaceIpConfigurationPropertiesFormat {
            private_ip_address: Some(spec.private_ip.clone()),
            private_ip_allocation_method: Some(nm::IpAllocationMethod::Static),
            private_ip_address_version: Some(nm::IpVersion::IPv4),
            subnet: Some(net_ref(&spec.subnet_id, |s: &mut nm::Subnet, id| {
                s.sub_resource.id = id
            })),
            public_ip_address: spec
                .public_ip_id
                .as_deref()
                .map(|p| net_ref(p, |x: &mut nm::PublicIpAddress, id| x.resource.id = id)),
            primary: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    nm::NetworkInterface {
        resource: nm::Resource {
            location: Some(spec.location.clone()),
            tags: tags_value(&spec.tags),
            ..Default::default()
        },
        properties: Some(nm::NetworkInterfacePropertiesFormat {
            ip_configurations: vec![ipconfig],
            network_security_group: spec.nsg_id.as_deref().map(|nsg| {
                net_ref(nsg, |n: &mut nm::NetworkSecurityGroup, id| {
                    n.resource.id = id
                })
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `Ok(None)` for a 404.
fn found<T>(r: Result<T, ArmError>) -> Result<Option<T>, ArmError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn vanished(id: &str) -> ArmError {
    ArmError::Protocol {
        resource: id.to_string(),
        message: "the operation succeeded but a GET then found no resource".into(),
    }
}

impl Arm {
    /// Sends the first request of an operation; a "try again shortly" conflict is retried
    /// with capped backoff (throttling is retried by the pipeline already).
    async fn send_first<F, Fut, R>(&self, id: &str, mut send: F) -> Result<R, ArmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = azure_core::Result<R>>,
    {
        self.retrying(|| {
            let sent = send();
            async move { sent.await.map_err(|e| self.core_err(id, e)) }
        })
        .await
    }

    /// DELETE whose 404 means "already gone".
    async fn delete_via<F, Fut, R>(&self, id: &str, api: &str, send: F) -> Result<(), ArmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = azure_core::Result<R>>,
        R: Into<azure_core::Response>,
    {
        match self.send_first(id, send).await {
            Ok(r) => self.follow(id, api, Verb::Delete, r.into()).await.map(drop),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ----- resource group -----

    /// Creates or updates the group (a synchronous PUT in ARM).
    pub async fn create_resource_group(
        &self,
        name: &str,
        location: &str,
        tags: &Tags,
    ) -> Result<ResourceGroupInfo, ArmError> {
        let id = self.resource_group_id(name);
        let mut body = rm::ResourceGroup::new(location.to_string());
        body.tags = tags_value(tags);
        let c = self.resources.resource_groups_client();
        let rsp = self
            .send_first(&id, || {
                c.create_or_update(name, body.clone(), self.sub()).send()
            })
            .await?;
        self.follow(&id, RESOURCES_API, Verb::Put, rsp.into())
            .await?;
        self.get_resource_group(name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_resource_group(
        &self,
        name: &str,
    ) -> Result<Option<ResourceGroupInfo>, ArmError> {
        let id = self.resource_group_id(name);
        let c = self.resources.resource_groups_client();
        let r = async {
            let rsp = c
                .get(name, self.sub())
                .send()
                .await
                .map_err(|e| self.core_err(&id, e))?;
            rsp.into_body().await.map_err(|e| self.core_err(&id, e))
        }
        .await;
        Ok(found(r)?.map(|g| ResourceGroupInfo {
            id: g.id.clone().unwrap_or_else(|| id.clone()),
            name: g.name.clone().unwrap_or_else(|| name.to_string()),
            location: g.location.clone(),
            tags: tags_from(&g.tags),
            provisioning_state: g.properties.and_then(|p| p.provisioning_state),
        }))
    }

    /// Deletes the group and everything in it (callers check for foreign resources first).
    pub async fn delete_resource_group(&self, name: &str) -> Result<(), ArmError> {
        let id = self.resource_group_id(name);
        let c = self.resources.resource_groups_client();
        self.delete_via(&id, RESOURCES_API, || c.delete(name, self.sub()).send())
            .await
    }

    /// Every top-level resource in the group (all pages).
    pub async fn list_resources(&self, rg: &str) -> Result<Vec<ResourceInfo>, ArmError> {
        let id = self.resource_group_id(rg);
        let mut pages = self
            .resources
            .resources_client()
            .list_by_resource_group(rg, self.sub())
            .into_stream();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.core_err(&format!("{id}/resources"), e))?;
            for r in page.value {
                let r = r.generic_resource.resource;
                out.push(ResourceInfo {
                    id: r.id.unwrap_or_default(),
                    name: r.name.unwrap_or_default(),
                    rtype: r.type_.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    // ----- virtual network -----

    /// Creates or updates the VNet. On update the existing subnets are carried over: a
    /// VNet PUT without them would try to delete them.
    pub async fn put_vnet(
        &self,
        rg: &str,
        spec: &VnetSpec,
    ) -> Result<nm::VirtualNetwork, ArmError> {
        let id = self.vnet_id(rg, &spec.name);
        let existing_subnets = self
            .get_vnet(rg, &spec.name)
            .await?
            .and_then(|v| v.properties)
            .map(|p| p.subnets)
            .unwrap_or_default();
        let body = vnet_body(spec, existing_subnets);
        let c = self.network.virtual_networks_client();
        let rsp = self
            .send_first(&id, || {
                c.create_or_update(rg, &spec.name, body.clone(), self.sub())
                    .send()
            })
            .await?;
        self.follow(&id, NETWORK_API, Verb::Put, rsp.into()).await?;
        self.get_vnet(rg, &spec.name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_vnet(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<nm::VirtualNetwork>, ArmError> {
        let id = self.vnet_id(rg, name);
        let c = self.network.virtual_networks_client();
        found(
            async {
                let rsp = c
                    .get(rg, name, self.sub())
                    .send()
                    .await
                    .map_err(|e| self.core_err(&id, e))?;
                rsp.into_body().await.map_err(|e| self.core_err(&id, e))
            }
            .await,
        )
    }

    pub async fn delete_vnet(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        let id = self.vnet_id(rg, name);
        let c = self.network.virtual_networks_client();
        self.delete_via(&id, NETWORK_API, || c.delete(rg, name, self.sub()).send())
            .await
    }

    // ----- subnet -----

    pub async fn put_subnet(&self, rg: &str, spec: &SubnetSpec) -> Result<nm::Subnet, ArmError> {
        let id = self.subnet_id(rg, &spec.vnet, &spec.name);
        let body = subnet_body(spec);
        let c = self.network.subnets_client();
        let rsp = self
            .send_first(&id, || {
                c.create_or_update(rg, &spec.vnet, &spec.name, body.clone(), self.sub())
                    .send()
            })
            .await?;
        self.follow(&id, NETWORK_API, Verb::Put, rsp.into()).await?;
        self.get_subnet(rg, &spec.vnet, &spec.name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_subnet(
        &self,
        rg: &str,
        vnet: &str,
        name: &str,
    ) -> Result<Option<nm::Subnet>, ArmError> {
        let id = self.subnet_id(rg, vnet, name);
        let c = self.network.subnets_client();
        found(
            async {
                let rsp = c
                    .get(rg, vnet, name, self.sub())
                    .send()
                    .await
                    .map_err(|e| self.core_err(&id, e))?;
                rsp.into_body().await.map_err(|e| self.core_err(&id, e))
            }
            .await,
        )
    }

    pub async fn delete_subnet(&self, rg: &str, vnet: &str, name: &str) -> Result<(), ArmError> {
        let id = self.subnet_id(rg, vnet, name);
        let c = self.network.subnets_client();
        self.delete_via(&id, NETWORK_API, || {
            c.delete(rg, vnet, name, self.sub()).send()
        })
        .await
    }

    // ----- network security group -----

    pub async fn put_nsg(
        &self,
        rg: &str,
        spec: &NsgSpec,
    ) -> Result<nm::NetworkSecurityGroup, ArmError> {
        let id = self.nsg_id(rg, &spec.name);
        let body = nsg_body(spec);
        let c = self.network.network_security_groups_client();
        let rsp = self
            .send_first(&id, || {
                c.create_or_update(rg, &spec.name, body.clone(), self.sub())
                    .send()
            })
            .await?;
        self.follow(&id, NETWORK_API, Verb::Put, rsp.into()).await?;
        self.get_nsg(rg, &spec.name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_nsg(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<nm::NetworkSecurityGroup>, ArmError> {
        let id = self.nsg_id(rg, name);
        let c = self.network.network_security_groups_client();
        found(
            async {
                let rsp = c
                    .get(rg, name, self.sub())
                    .send()
                    .await
                    .map_err(|e| self.core_err(&id, e))?;
                rsp.into_body().await.map_err(|e| self.core_err(&id, e))
            }
            .await,
        )
    }

    pub async fn delete_nsg(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        let id = self.nsg_id(rg, name);
        let c = self.network.network_security_groups_client();
        self.delete_via(&id, NETWORK_API, || c.delete(rg, name, self.sub()).send())
            .await
    }

    // ----- public IP -----

    pub async fn put_public_ip(
        &self,
        rg: &str,
        spec: &PublicIpSpec,
    ) -> Result<nm::PublicIpAddress, ArmError> {
        let id = self.public_ip_id(rg, &spec.name);
        let body = public_ip_body(spec);
        let c = self.network.public_ip_addresses_client();
        let rsp = self
            .send_first(&id, || {
                c.create_or_update(rg, &spec.name, body.clone(), self.sub())
                    .send()
            })
            .await?;
        self.follow(&id, NETWORK_API, Verb::Put, rsp.into()).await?;
        self.get_public_ip(rg, &spec.name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_public_ip(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<nm::PublicIpAddress>, ArmError> {
        let id = self.public_ip_id(rg, name);
        let c = self.network.public_ip_addresses_client();
        found(
            async {
                let rsp = c
                    .get(rg, name, self.sub())
                    .send()
                    .await
                    .map_err(|e| self.core_err(&id, e))?;
                rsp.into_body().await.map_err(|e| self.core_err(&id, e))
            }
            .await,
        )
    }

    pub async fn delete_public_ip(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        let id = self.public_ip_id(rg, name);
        let c = self.network.public_ip_addresses_client();
        self.delete_via(&id, NETWORK_API, || c.delete(rg, name, self.sub()).send())
            .await
    }

    // ----- network interface -----

    pub async fn put_nic(
        &self,
        rg: &str,
        spec: &NicSpec,
    ) -> Result<nm::NetworkInterface, ArmError> {
        let id = self.nic_id(rg, &spec.name);
        let body = nic_body(spec);
        let c = self.network.network_interfaces_client();
        let rsp = self
            .send_first(&id, || {
                c.create_or_update(rg, &spec.name, body.clone(), self.sub())
                    .send()
            })
            .await?;
        self.follow(&id, NETWORK_API, Verb::Put, rsp.into()).await?;
        self.get_nic(rg, &spec.name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_nic(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<nm::NetworkInterface>, ArmError> {
        let id = self.nic_id(rg, name);
        let c = self.network.network_interfaces_client();
        found(
            async {
                let rsp = c
                    .get(rg, name, self.sub())
                    .send()
                    .await
                    .map_err(|e| self.core_err(&id, e))?;
                rsp.into_body().await.map_err(|e| self.core_err(&id, e))
            }
            .await,
        )
    }

    pub async fn delete_nic(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        let id = self.nic_id(rg, name);
        let c = self.network.network_interfaces_client();
        self.delete_via(&id, NETWORK_API, || c.delete(rg, name, self.sub()).send())
            .await
    }

    // ----- virtual machine -----

    /// Sent as plain JSON (see `vm_json`); read back through the generated model.
    pub async fn put_vm(&self, rg: &str, spec: &VmSpec) -> Result<cm::VirtualMachine, ArmError> {
        let id = self.vm_id(rg, &spec.name);
        self.put_json(&id, COMPUTE_API, &vm_json(spec, spec.custom_data.base64()))
            .await?;
        self.get_vm(rg, &spec.name)
            .await?
            .ok_or_else(|| vanished(&id))
    }

    pub async fn get_vm(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<cm::VirtualMachine>, ArmError> {
        let id = self.vm_id(rg, name);
        let c = self.compute.virtual_machines_client();
        found(
            async {
                let rsp = c
                    .get(rg, name, self.sub())
                    .send()
                    .await
                    .map_err(|e| self.core_err(&id, e))?;
                rsp.into_body().await.map_err(|e| self.core_err(&id, e))
            }
            .await,
        )
    }

    pub async fn delete_vm(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        let id = self.vm_id(rg, name);
        let c = self.compute.virtual_machines_client();
        self.delete_via(&id, COMPUTE_API, || c.delete(rg, name, self.sub()).send())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            name: "acme-validator-0-vm".into(),
            location: "westeurope".into(),
            size: "Standard_B2s".into(),
            admin_username: "consort".into(),
            ssh_public_key: "ssh-ed25519 AAAAC3Nza test".into(),
            nic_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/acme-validator-0-nic".into(),
            image: ImageRef::ubuntu_lts(),
            os_disk_type: "StandardSSD_LRS".into(),
            custom_data: CustomData::new("#cloud-config\nsecret: hunter2\n"),
            tags: Tags::from([("managed-by".to_string(), "consort".to_string())]),
        }
    }

    #[test]
    fn vm_body_is_key_only_ubuntu_with_base64_custom_data() {
        let v = serde_json::to_value(vm_body(&spec(), spec().custom_data.base64())).unwrap();
        let p = &v["properties"];
        assert_eq!(p["hardwareProfile"]["vmSize"], "Standard_B2s");
        assert_eq!(
            p["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"],
            true
        );
        assert!(p["osProfile"].get("adminPassword").is_none());
        assert_eq!(
            p["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["path"],
            "/home/consort/.ssh/authorized_keys"
        );
        assert_eq!(
            p["osProfile"]["customData"],
            "I2Nsb3VkLWNvbmZpZwpzZWNyZXQ6IGh1bnRlcjIK"
        );
        assert_eq!(
            p["storageProfile"]["imageReference"]["offer"],
            "ubuntu-24_04-lts"
        );
        assert_eq!(p["storageProfile"]["osDisk"]["deleteOption"], "Delete");
        assert_eq!(
            p["storageProfile"]["osDisk"]["managedDisk"]["storageAccountType"],
            "StandardSSD_LRS"
        );
        assert_eq!(
            p["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"],
            "Detach"
        );
        assert_eq!(v["tags"]["managed-by"], "consort");
        // An unknown size still goes out verbatim.
        let mut s = spec();
        s.size = "Standard_Future_v9".into();
        let v = serde_json::to_value(vm_body(&s, s.custom_data.base64())).unwrap();
        assert_eq!(
            v["properties"]["hardwareProfile"]["vmSize"],
            "Standard_Future_v9"
        );
    }

    #[test]
    fn custom_data_debug_hides_secrets() {
        let s = format!("{:?}", spec());
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("redacted"), "{s}");
    }

    #[test]
    fn rules_serialise_in_arm_shape() {
        let rules = super::super::rules::member_rules(
            "10.42.0.0/16",
            &["10.42.1.4".into(), "10.42.1.5".into()],
            &["203.0.113.0/24".into()],
            &[],
        );
        let v: Vec<Value> = rules
            .iter()
            .map(|r| serde_json::to_value(rule_model(r)).unwrap())
            .collect();
        assert_eq!(v[0]["properties"]["protocol"], "Tcp");
        assert_eq!(v[0]["properties"]["sourceAddressPrefix"], "10.42.0.0/16");
        assert_eq!(v[0]["properties"]["direction"], "Inbound");
        let rpc = v.iter().find(|r| r["name"] == "allow-rpc").unwrap();
        assert_eq!(
            rpc["properties"]["destinationAddressPrefixes"],
            serde_json::json!(["10.42.1.4", "10.42.1.5"])
        );
        assert!(rpc["properties"].get("destinationAddressPrefix").is_none());
        let deny = v.last().unwrap();
        assert_eq!(deny["properties"]["protocol"], "*");
        assert_eq!(deny["properties"]["access"], "Deny");
        assert_eq!(deny["properties"]["priority"], 4096);
    }
}
