//! The Azure provider: the consortium on Azure VMs, through ARM.
//!
//! Resources (state address → ARM resource), with the dependencies the executor uses to
//! create independent resources in parallel, in waves:
//!
//! ```text
//! azure.rg                  resource group, tagged managed-by, consort-network, consort-lineage
//! ├─ azure.vnet             <net>-vnet with the whole address_space
//! ├─ azure.vault            <net>-<hex> key vault (RBAC, soft delete)          (vault.rs)
//! │  └─ azure.secrets.<n>   the node's secrets, written through the data plane
//! ├─ azure.natpip           <net>-nat-pip, the NAT gateway's static public IP
//! │  └─ azure.nat           <net>-nat NAT gateway: the subnets' outbound internet
//! ├─ azure.nsg.<m>          <m>-nsg (rules: see arm::rules)
//! │  └─ azure.subnet.<m>    <m>-subnet, a /24 of address_space, NSG + NAT gateway (+ vnet, nat)
//! │     └─ azure.nic.<n>    <n>-nic, static private IP, NSG                    (+ pip)
//! │        └─ azure.vm.<n>  <n>-vm, Ubuntu LTS, SSH key only, system-assigned identity,
//! │                         secret-free cloud-init customData; then one "Key Vault Secrets
//! │                         User" role assignment per secret of its own     (+ secrets)
//! └─ azure.pip.<n>          <n>-pip, Standard static public IP, tx nodes only
//! ```
//!
//! `desired` is offline (no credentials): plan shows every resource before anything
//! exists. Requests go through [`arm::Arm`] (our own long-running-operation polling) on a
//! private tokio runtime; the executor's threads `block_on` it.
//!
//! Destroy runs in reverse dependency order (VMs with their role assignments, then NICs,
//! public IPs, subnets, the NAT gateway, the VNet, NSGs and the vault) and finally the
//! resource group, which is deleted only when nothing else is left in it: otherwise the
//! destroy of `azure.rg` fails naming the foreign resources. A resource group that existed
//! before consort (not tagged by it) is never deleted; one of another deployment (another
//! `consort-lineage`) is never touched at all ([`lineage`]).
//!
//! Running VMs are controlled through VM Run Command ([`run_command`], [`votes`]): Clique
//! votes with the local provider's rules (`governance::vote`), and live peer changes when
//! the mesh changes (config rewritten, `admin_addPeer`/`removePeer`).

pub mod arm;
mod cost;
mod export;
pub mod layout;
pub mod lineage;
mod log_tail;
mod reconcile;
pub mod run_command;
pub mod vault;
mod votes;

pub use export::{custom_data_parameter, export_arm_with_state};

use super::events::Event;
use super::{ApplyCtx, Health, NodeHealth, Provider, ProviderError};
use crate::plan::peering::Peering;
use crate::plan::{mesh_digest, Action, Change, Kind, Resource};
use crate::render::{self, vm_paths, CloudInit, NodeLaunch, SignerLaunch};
use crate::rpc::RpcClient;
use crate::state::{ResourceState, State};
use crate::topology::{AzureConfig, NodeSpec, Role, Topology};
use arm::{
    Arm, ArmError, CustomData, ImageRef, NicSpec, NsgSpec, PublicIpSpec, RuleSpec, SubnetSpec,
    VmSpec, VnetSpec,
};
use layout::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use vault::vault_name;

/// The only geth whose official release archive (and SHA-256) the bootstrap pins.
pub const PINNED_GETH: &str = "1.13.15";
pub const P2P_PORT: u16 = 30303;
pub const RPC_PORT: u16 = 8545;
pub const AUTHRPC_PORT: u16 = 8551;
/// Managed OS disk type of every VM.
pub const OS_DISK_TYPE: &str = "StandardSSD_LRS";
/// VM tag holding the SHA-256 of its customData (lets an interrupted create be adopted or
/// redone: customData cannot be read back or changed).
pub const CUSTOM_DATA_TAG: &str = "consort-custom-data-sha256";
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct AzureProvider {
    pub config: AzureConfig,
    arm: Mutex<Option<Arc<Arm>>>,
    runtime: OnceLock<tokio::runtime::Runtime>,
    /// Why the last refresh found live signers apply cannot fix (`check_live`).
    signer_refusal: Mutex<Option<String>>,
}

impl AzureProvider {
    /// No credentials or network needed (plan is offline); the ARM client is made on the
    /// first request, from `CONSORT_ARM_ENDPOINT` / `CONSORT_ARM_TOKEN` / azure_identity.
    pub fn new(config: AzureConfig) -> Result<AzureProvider, ProviderError> {
        Ok(AzureProvider {
            config,
            arm: Mutex::new(None),
            runtime: OnceLock::new(),
            signer_refusal: Mutex::new(None),
        })
    }

    /// With a ready ARM client (tests and benches against a stand-in endpoint).
    pub fn with_arm(config: AzureConfig, arm: Arm) -> AzureProvider {
        AzureProvider {
            config,
            arm: Mutex::new(Some(Arc::new(arm))),
            runtime: OnceLock::new(),
            signer_refusal: Mutex::new(None),
        }
    }

    fn arm(&self) -> Result<Arc<Arm>, ProviderError> {
        let mut g = self.arm.lock().unwrap();
        if let Some(a) = &*g {
            return Ok(a.clone());
        }
        let sub = self
            .config
            .subscription_id
            .clone()
            .or_else(|| std::env::var("AZURE_SUBSCRIPTION_ID").ok())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ProviderError::Other(
                    "provider.azure.subscription_id is not set (nor AZURE_SUBSCRIPTION_ID): \
                     apply, destroy and plan --refresh need the subscription to work in"
                        .into(),
                )
            })?;
        let a = Arc::new(Arm::from_env(&sub).map_err(|e| ProviderError::Other(e.to_string()))?);
        *g = Some(a.clone());
        Ok(a)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("consort-arm")
                    .enable_all()
                    .build()
                    .expect("tokio runtime for ARM requests")
            })
            .block_on(f)
    }

    /// A handle on the ARM runtime, for code that blocks on it from other threads.
    fn handle(&self) -> tokio::runtime::Handle {
        self.block_on(async { tokio::runtime::Handle::current() })
    }

    fn rg(&self) -> &str {
        &self.config.resource_group
    }

    /// The tags of everything apply creates: [`Self::tags`] plus this state's lineage.
    fn apply_tags(&self, ctx: &ApplyCtx) -> BTreeMap<String, String> {
        let mut t = self.tags(&ctx.topology.network.name);
        t.insert(
            lineage::LINEAGE_TAG.into(),
            ctx.state.lock().unwrap().lineage.clone(),
        );
        t
    }

    /// Refuses to touch `id` when it exists and is not this deployment's (see [`lineage`]);
    /// returns whether it exists.
    fn guard(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        addr: &str,
        id: &str,
        api: &str,
    ) -> Result<bool, ProviderError> {
        let l = ctx.state.lock().unwrap().lineage.clone();
        self.block_on(lineage::guard(
            arm,
            addr,
            id,
            api,
            &l,
            &ctx.topology.network.name,
            false,
        ))
    }

    /// [`Self::guard`] for the resource `change` is about (`attrs`: its attributes).
    fn guard_change(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
        attrs: &Value,
    ) -> Result<bool, ProviderError> {
        let id = self.arm_id(arm, change.kind, &change.addr, attrs);
        self.guard(ctx, arm, &change.addr, &id, api_of(change.kind))
    }

    fn tags(&self, network: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("managed-by".to_string(), "consort".to_string()),
            ("consort-network".to_string(), network.to_string()),
        ])
    }

    fn vm_size(&self, role: Role) -> String {
        match role {
            Role::Validator => self.config.validator_vm_size.clone(),
            Role::Tx => self.config.tx_vm_size.clone(),
        }
        .unwrap_or_else(|| self.config.vm_size.clone())
    }

    /// The cloud-init of one node's VM, exactly as apply renders it into customData: this
    /// node's key (and signer keystore + password for validators) read from the state
    /// directory, the genesis from state, StaticNodes = every other node at its private IP.
    pub fn vm_cloud_init(
        &self,
        topology: &Topology,
        state: &State,
        node: &str,
    ) -> Result<CloudInit, ProviderError> {
        let addr = vm_addr(node);
        let spec = topology
            .nodes()
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| {
                ProviderError::at(&addr, format!("node {node} is not in the topology"))
            })?;
        let l = layout::layout(topology, &self.config.address_space, Some(state))
            .map_err(|e| ProviderError::at(&addr, e))?;
        let missing = |what: &str| {
            ProviderError::at(&addr, format!("{what} is not in state; run apply again"))
        };
        let genesis = state.genesis.as_ref().ok_or_else(|| missing("genesis"))?;
        let genesis_json = serde_json::to_string_pretty(&genesis.json).expect("genesis serialises");
        let mut static_nodes = Vec::new();
        // Sealing waits for the validators among its planned peers.
        let mut validator_peers = Vec::new();
        let peering = Peering::plan(&topology.nodes());
        for other in topology
            .nodes()
            .iter()
            .filter(|o| peering.are_peers(node, &o.name))
        {
            let id = state
                .output_str(&format!("key.node.{}", other.name), "enode_id")
                .ok_or_else(|| missing(&format!("key.node.{}", other.name)))?;
            static_nodes.push(render::enode_url(id, &l.ip(&other.name), P2P_PORT));
            if other.role == Role::Validator {
                validator_peers.push(id.to_string());
            }
        }
        let ip = l.ip(node);
        let secrets = self.cloud_secrets(state, node, spec.role)?;
        let signer = if spec.role == Role::Validator {
            let sk = format!("key.signer.{node}");
            let address = state
                .output_str(&sk, "address")
                .ok_or_else(|| missing(&sk))?;
            Some(SignerLaunch {
                address: address.to_string(),
                keystore_dir: vm_paths::KEYSTORE_DIR.into(),
                password_file: vm_paths::PASSWORD.into(),
                // The VM's seal.sh starts sealing once peered with its validators.
                mine: false,
            })
        } else {
            None
        };
        let launch = NodeLaunch {
            network: topology.network.name.clone(),
            node_name: node.to_string(),
            geth_version: topology.client.geth.clone(),
            chain_id: topology.network.chain_id,
            datadir: vm_paths::DATADIR.into(),
            config_path: vm_paths::CONFIG.into(),
            nodekey_path: vm_paths::NODEKEY.into(),
            listen_addr: ip.clone(),
            p2p_port: P2P_PORT,
            nat: format!("extip:{ip}"),
            // Validators serve no TCP RPC (their signer key is unlocked); tx nodes serve the
            // application namespaces on the private IP, which their public IP maps to (the
            // NSG decides who gets there). consort itself uses IPC through Run Command.
            http_addr: ip.clone(),
            http_port: (spec.role == Role::Tx).then_some(RPC_PORT),
            ws_port: None,
            // Prometheus metrics: local networks only so far.
            metrics_port: None,
            authrpc_port: AUTHRPC_PORT,
            ipc_path: vm_paths::IPC.into(),
            // p2p only with the consortium's own VNet.
            netrestrict: Some(l.address_space.to_string()),
            cache_mb: 512,
            verbosity: 3,
            // Room for nodes that join later: existing VMs keep their boot-time StaticNodes
            // and accept the newcomers' inbound connections.
            max_peers: (peering.degree(node) as u32).max(25),
            trusted_nodes: static_nodes.clone(),
            static_nodes,
            signer,
        };
        Ok(CloudInit {
            node: launch,
            member: spec.member.clone(),
            role: spec.role.to_string(),
            geth_version: topology.client.geth.clone(),
            geth_url: render::GETH_RELEASE_URL.into(),
            geth_sha256: render::GETH_RELEASE_SHA256.into(),
            genesis_json,
            vault_uri: self.vault_uri(state, topology),
            secrets,
            seal_after_peers: if spec.role == Role::Validator {
                validator_peers
            } else {
                vec![]
            },
        })
    }
}

fn attrs_of(change: &Change) -> Value {
    change
        .after
        .as_ref()
        .or(change.before.as_ref())
        .cloned()
        .unwrap_or(json!({}))
}

fn attr(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// What an ARM change works from: its address (every error names it), its attributes
/// (as they were, for a destroy) and the resource's name.
fn target(change: &Change, destroy: bool) -> (&str, Value, String) {
    let attrs = match (&change.before, destroy) {
        (Some(b), true) => b.clone(),
        _ => attrs_of(change),
    };
    let name = attr(&attrs, "name");
    (&change.addr, attrs, name)
}

/// An ARM error as the failure of the change at `addr`.
fn arm_err(addr: &str) -> impl Fn(ArmError) -> ProviderError + Copy + '_ {
    move |e| ProviderError::at(addr, e.to_string())
}

fn node_of(change: &Change) -> String {
    let a = attrs_of(change);
    let n = attr(&a, "node");
    if n.is_empty() {
        change
            .addr
            .rsplit_once('.')
            .map(|(_, n)| n.to_string())
            .unwrap_or_default()
    } else {
        n
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn record(change: &Change, kind: Kind, outputs: Value) -> ResourceState {
    ResourceState {
        kind,
        attrs: change.after.clone().unwrap_or(json!({})),
        outputs,
        deps: change.deps.clone(),
    }
}

fn is_azure_kind(k: Kind) -> bool {
    matches!(
        k,
        Kind::AzureVault
            | Kind::AzureSecrets
            | Kind::AzureNatGateway
            | Kind::AzureResourceGroup
            | Kind::AzureVnet
            | Kind::AzureNsg
            | Kind::AzureSubnet
            | Kind::AzurePublicIp
            | Kind::AzureNic
            | Kind::AzureVm
    )
}

impl Provider for AzureProvider {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn node_addr(&self, name: &str) -> String {
        vm_addr(name)
    }

    fn desired(
        &self,
        topology: &Topology,
        state: Option<&State>,
        _core: &[Resource],
    ) -> Result<Vec<Resource>, ProviderError> {
        let cfg = &self.config;
        if topology.client.geth != PINNED_GETH {
            return Err(ProviderError::Other(format!(
                "client.geth {:?}: Azure VMs install geth {PINNED_GETH} from its official release archive (verified by SHA-256); set client.geth: {PINNED_GETH}",
                topology.client.geth
            )));
        }
        let l =
            layout::layout(topology, &cfg.address_space, state).map_err(ProviderError::Other)?;
        let net = &topology.network.name;
        let tags = self.tags(net);
        let space = l.address_space.to_string();
        let nodes = topology.nodes();
        let peering = Peering::plan(&nodes);
        let mut out = vec![
            Resource {
                addr: RG_ADDR.into(),
                kind: Kind::AzureResourceGroup,
                attrs: json!({"name": cfg.resource_group, "location": cfg.location, "tags": tags}),
                deps: vec![],
                summary: format!(
                    "resource group {} in {}, tagged managed-by=consort",
                    cfg.resource_group, cfg.location
                ),
            },
            Resource {
                addr: VNET_ADDR.into(),
                kind: Kind::AzureVnet,
                attrs: json!({"name": vnet_name(net), "location": cfg.location, "address_space": space}),
                deps: vec![RG_ADDR.into()],
                summary: format!("virtual network {} {space}", vnet_name(net)),
            },
            Resource {
                addr: VAULT_ADDR.into(),
                kind: Kind::AzureVault,
                attrs: json!({"name": vault_name(net, &cfg.resource_group, &cfg.location), "location": cfg.location}),
                deps: vec![RG_ADDR.into()],
                summary: format!(
                    "key vault {} (RBAC, soft delete {} days): every node's secrets, each readable only by its own VM",
                    vault_name(net, &cfg.resource_group, &cfg.location),
                    arm::vault::SOFT_DELETE_DAYS
                ),
            },
            Resource {
                addr: NAT_PIP_ADDR.into(),
                kind: Kind::AzurePublicIp,
                attrs: json!({"name": nat_pip_name(net), "location": cfg.location, "sku": "Standard", "allocation": "Static"}),
                deps: vec![RG_ADDR.into()],
                summary: format!("public IP {} (Standard, static) for outbound traffic", nat_pip_name(net)),
            },
            Resource {
                addr: NAT_ADDR.into(),
                kind: Kind::AzureNatGateway,
                attrs: json!({"name": nat_gateway_name(net), "location": cfg.location, "public_ip": nat_pip_name(net)}),
                deps: vec![NAT_PIP_ADDR.into()],
                summary: format!(
                    "NAT gateway {}: the subnets' outbound internet (geth download), no inbound",
                    nat_gateway_name(net)
                ),
            },
        ];
        for m in &topology.members {
            let tx_ips: Vec<String> = nodes
                .iter()
                .filter(|n| n.member == m.name && n.role == Role::Tx)
                .map(|n| l.ip(&n.name))
                .collect();
            let rules = arm::rules::member_rules(
                &space,
                &tx_ips,
                &cfg.allowed_rpc_cidrs,
                &cfg.allowed_ssh_cidrs,
            );
            let rpc = if rules.iter().any(|r| r.name == "allow-rpc") {
                format!(
                    "RPC 8545 on tx nodes from {}",
                    cfg.allowed_rpc_cidrs.join(", ")
                )
            } else {
                "no RPC".into()
            };
            let ssh = if cfg.allowed_ssh_cidrs.is_empty() {
                "no SSH".to_string()
            } else {
                format!("SSH from {}", cfg.allowed_ssh_cidrs.join(", "))
            };
            out.push(Resource {
                addr: nsg_addr(&m.name),
                kind: Kind::AzureNsg,
                attrs: json!({"name": nsg_name(&m.name), "location": cfg.location, "rules": rules}),
                deps: vec![RG_ADDR.into()],
                summary: format!(
                    "network security group {}: p2p 30303 from {space}, {rpc}, {ssh}, deny the rest",
                    nsg_name(&m.name)
                ),
            });
            out.push(Resource {
                addr: subnet_addr(&m.name),
                kind: Kind::AzureSubnet,
                attrs: json!({
                    "name": subnet_name(&m.name),
                    "vnet": vnet_name(net),
                    "address_prefix": l.subnets[&m.name].to_string(),
                    "nsg": nsg_name(&m.name),
                    "nat_gateway": nat_gateway_name(net),
                }),
                deps: vec![VNET_ADDR.into(), nsg_addr(&m.name), NAT_ADDR.into()],
                summary: format!(
                    "subnet {} {} of {}",
                    subnet_name(&m.name),
                    l.subnets[&m.name],
                    m.name
                ),
            });
        }
        for n in &nodes {
            let tx = n.role == Role::Tx;
            if tx {
                out.push(Resource {
                    addr: pip_addr(&n.name),
                    kind: Kind::AzurePublicIp,
                    attrs: json!({"name": pip_name(&n.name), "location": cfg.location, "sku": "Standard", "allocation": "Static"}),
                    deps: vec![RG_ADDR.into()],
                    summary: format!("public IP {} (Standard, static) for {}", pip_name(&n.name), n.name),
                });
            }
            let mut nic_deps = vec![subnet_addr(&n.member), nsg_addr(&n.member)];
            if tx {
                nic_deps.push(pip_addr(&n.name));
            }
            out.push(Resource {
                addr: nic_addr(&n.name),
                kind: Kind::AzureNic,
                attrs: json!({
                    "name": nic_name(&n.name),
                    "location": cfg.location,
                    "subnet": subnet_name(&n.member),
                    "private_ip": l.ip(&n.name),
                    "public_ip": if tx { json!(pip_name(&n.name)) } else { Value::Null },
                    "nsg": nsg_name(&n.member),
                }),
                deps: nic_deps,
                summary: format!(
                    "network interface {} with static private IP {}{}",
                    nic_name(&n.name),
                    l.ip(&n.name),
                    if tx { ", public IP" } else { ", no public IP" }
                ),
            });
            let mut secret_deps = vec![VAULT_ADDR.to_string(), format!("key.node.{}", n.name)];
            if n.role == Role::Validator {
                secret_deps.push(format!("key.signer.{}", n.name));
            }
            let secrets = vault::node_secrets(&n.name, n.role);
            out.push(Resource {
                addr: secrets_addr(&n.name),
                kind: Kind::AzureSecrets,
                attrs: json!({
                    "node": n.name,
                    "names": secrets.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                }),
                deps: secret_deps,
                summary: format!(
                    "{} in the key vault ({})",
                    secrets
                        .iter()
                        .map(|s| s.what)
                        .collect::<Vec<_>>()
                        .join(", "),
                    secrets
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            let mut deps = vec![
                nic_addr(&n.name),
                secrets_addr(&n.name),
                format!("key.node.{}", n.name),
            ];
            if n.role == Role::Validator {
                deps.push(format!("key.signer.{}", n.name));
            }
            deps.push("genesis".into());
            deps.push("key.node.*".into());
            let size = self.vm_size(n.role);
            // Its planned peers (and itself: a full mesh digests all names).
            let mesh = mesh_digest(
                peering
                    .peers_of(&n.name)
                    .chain(std::iter::once(n.name.as_str())),
            );
            out.push(Resource {
                addr: vm_addr(&n.name),
                kind: Kind::AzureVm,
                attrs: json!({
                    "node": n.name,
                    "member": n.member,
                    "role": n.role.to_string(),
                    "geth": topology.client.geth,
                    "mesh": mesh,
                    "name": vm_name(&n.name),
                    "location": cfg.location,
                    "size": size,
                    "image": ImageRef::ubuntu_lts().urn(),
                    "admin_username": cfg.admin_username,
                    "ssh_public_key": cfg.ssh_public_key,
                    "nic": nic_name(&n.name),
                }),
                deps,
                summary: format!(
                    "VM {} ({size}, Ubuntu LTS, managed identity reading its own secrets): geth {} {} of {}, peered with {} other node(s)",
                    vm_name(&n.name),
                    topology.client.geth,
                    n.role,
                    n.member,
                    nodes.len() - 1
                ),
            });
        }
        out.push(super::clique_drift::resource("azure.vm.*"));
        Ok(out)
    }

    fn plan_notes(&self, _topology: &Topology, desired: &[Resource]) -> Vec<String> {
        let sizes: Vec<String> = desired
            .iter()
            .filter(|r| r.kind == Kind::AzureVm)
            .map(|r| attr(&r.attrs, "size"))
            .collect();
        if sizes.is_empty() {
            return vec![];
        }
        let pips = desired
            .iter()
            .filter(|r| r.kind == Kind::AzurePublicIp)
            .count();
        vec![cost::summary(&sizes, pips)]
    }

    fn refresh(&self, topology: &Topology, state: &State) -> BTreeMap<String, String> {
        let Ok(arm) = self.arm() else {
            return BTreeMap::new();
        };
        let checks: Vec<(String, String, &'static str)> = state
            .resources
            .iter()
            .filter(|(_, r)| is_azure_kind(r.kind) && r.kind != Kind::AzureSecrets)
            .map(|(addr, r)| {
                let id = r
                    .outputs
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| self.arm_id(&arm, r.kind, addr, &r.attrs));
                (addr.clone(), id, api_of(r.kind))
            })
            .collect();
        let arm = &arm;
        let results = self.block_on(futures::future::join_all(
            checks.iter().map(|(addr, id, api)| async move {
                (addr.clone(), arm.provisioning_state_of(id, api).await)
            }),
        ));
        let mut drift = results
            .into_iter()
            .filter_map(|(addr, r)| match r {
                Ok(None) => Some((addr, "recreate (deleted outside consort)".to_string())),
                Ok(Some(s)) if s.eq_ignore_ascii_case("Failed") => {
                    Some((addr, "repair (provisioningState Failed)".to_string()))
                }
                // Errors cannot be reported through refresh; apply will surface them.
                _ => None,
            })
            .collect();
        self.refresh_clique(topology, state, &mut drift);
        drift
    }

    fn check_live(&self, _topology: &Topology, _state: &State) -> Result<(), String> {
        self.signer_refusal
            .lock()
            .unwrap()
            .take()
            .map_or(Ok(()), Err)
    }

    fn refresh_on_apply(&self) -> bool {
        // apply needs credentials anyway; it reads the live network like a plan --refresh.
        true
    }

    fn starts_first(&self, change: &Change) -> bool {
        change.addr.starts_with("azure.")
    }

    fn parallelism(&self) -> usize {
        // ARM operations are long waits on Azure, not work here: two waves of a 100-VM network
        // (NICs, VMs) run at once. ARM's write limits are per subscription; a 429 is retried after its
        // Retry-After by that request alone (arm.rs), so throttling never serialises a wave.
        256
    }

    fn apply_change(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        match change.kind {
            k if is_azure_kind(k) => self.apply_azure(ctx, change),
            Kind::Signer => self.apply_signer(ctx, change),
            Kind::CliqueSigners => self.reconcile_signers(ctx, change),
            Kind::Funding => self.apply_funding(ctx, change),
            _ => Err(super::unsupported("azure", change)),
        }
    }

    fn wait_healthy(&self, ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        let st = ctx.snapshot();
        let endpoints = tx_endpoints(&st);
        if endpoints.is_empty() {
            return Err(ProviderError::Other(
                "cannot check health: the network has no tx node with a public RPC (validators \
                 have none); add a tx node, or apply with --skip-health-check"
                    .into(),
            ));
        }
        if self.config.allowed_rpc_cidrs.is_empty() {
            return Err(ProviderError::Other(
                "cannot check health: the tx nodes' RPC is closed (provider.azure.allowed_rpc_cidrs \
                 is empty); add this machine's address, or apply with --skip-health-check"
                    .into(),
            ));
        }
        let deadline = Instant::now() + ctx.health_timeout;
        let mut first_heads: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let h = assess(ctx.topology, &ctx.snapshot(), &mut first_heads);
            if h.healthy {
                if let Some(g) = ctx.state.lock().unwrap().genesis.as_mut() {
                    if g.hash.is_empty() {
                        if let Some((_, url)) = endpoints.first() {
                            if let Ok(hash) = RpcClient::new(url.clone())
                                .with_timeout(PROBE_TIMEOUT)
                                .genesis_hash()
                            {
                                g.hash = hash;
                            }
                        }
                    }
                }
                return Ok(h);
            }
            if ctx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(ProviderError::Other(
                    "interrupted while waiting for the network to become healthy; the VMs keep running — `consort status` shows them".into(),
                ));
            }
            if Instant::now() >= deadline {
                let detail: Vec<String> = h
                    .nodes
                    .iter()
                    .filter(|n| !n.problems.is_empty())
                    .map(|n| {
                        format!(
                            "{} ({}): {}",
                            n.name,
                            n.rpc_url.as_deref().unwrap_or("-"),
                            n.problems.join("; ")
                        )
                    })
                    .collect();
                return Err(ProviderError::Other(format!(
                    "the network did not become healthy within {}s (VMs can take several minutes to boot and install geth):\n  {}\n{}\nRun `consort status` to look again.",
                    ctx.health_timeout.as_secs(),
                    detail.join("\n  "),
                    self.unhealthy_logs(&ctx.snapshot(), &h)
                )));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn health(&self, topology: &Topology, state: &State) -> Health {
        assess(topology, state, &mut BTreeMap::new())
    }
}

fn api_of(kind: Kind) -> &'static str {
    match kind {
        Kind::AzureResourceGroup => arm::RESOURCES_API,
        Kind::AzureVm => arm::COMPUTE_API,
        Kind::AzureVault => arm::vault::KEYVAULT_API,
        _ => arm::NETWORK_API,
    }
}

/// Tx nodes with a public RPC, from state: (node, rpc_url).
fn tx_endpoints(st: &State) -> Vec<(String, String)> {
    st.resources
        .iter()
        .filter(|(a, r)| r.kind == Kind::AzureVm && a.starts_with("azure.vm."))
        .filter_map(|(a, r)| {
            let url = r.outputs.get("rpc_url")?.as_str()?;
            (!url.is_empty()).then(|| (a["azure.vm.".len()..].to_string(), url.to_string()))
        })
        .collect()
}

/// One look at a tx node: (head, peers, genesis hash).
type Probe = (u64, u64, String);

/// Health as the tx nodes' public RPC shows it: every tx node answers, has peers, all
/// report the same genesis, and the head advanced since the first look (which proves
/// enough validators are sealing). Validators have no public RPC and are not listed.
fn assess(topology: &Topology, st: &State, first_heads: &mut BTreeMap<String, u64>) -> Health {
    let specs: BTreeMap<String, NodeSpec> = topology
        .nodes()
        .into_iter()
        .map(|n| (n.name.clone(), n))
        .collect();
    let endpoints = tx_endpoints(st);
    let probes: Vec<(String, String, Result<Probe, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = endpoints
            .iter()
            .map(|(n, url)| {
                s.spawn(move || {
                    let rpc = RpcClient::new(url.clone()).with_timeout(PROBE_TIMEOUT);
                    let r = (|| {
                        Ok::<_, crate::rpc::RpcError>((
                            rpc.block_number()?,
                            rpc.net_peer_count()?,
                            rpc.genesis_hash()?,
                        ))
                    })()
                    .map_err(|e| e.to_string());
                    (n.clone(), url.clone(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    });
    let genesis: BTreeSet<&String> = probes
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok().map(|x| &x.2))
        .collect();
    let mut h = Health::default();
    for (name, url, r) in &probes {
        let spec = specs.get(name);
        let mut n = NodeHealth {
            name: name.clone(),
            member: spec.map(|s| s.member.clone()).unwrap_or_default(),
            role: "tx".into(),
            rpc_url: Some(url.clone()),
            ..Default::default()
        };
        match r {
            Err(e) => n.problems.push(format!("RPC not answering ({e})")),
            Ok((block, peers, _)) => {
                n.running = true;
                n.block = *block;
                n.peers = *peers as u32;
                h.head = h.head.max(*block);
                let first = *first_heads.entry(name.clone()).or_insert(*block);
                if *peers == 0 {
                    n.problems.push("not peered".into());
                }
                if *block <= first {
                    n.problems.push(format!("head #{block} not advancing yet"));
                }
                if genesis.len() > 1 {
                    n.problems.push("genesis differs between nodes".into());
                }
            }
        }
        h.nodes.push(n);
    }
    h.healthy = !h.nodes.is_empty() && h.nodes.iter().all(|n| n.problems.is_empty());
    h
}

impl AzureProvider {
    /// The ARM id of a resource from its kind and attributes (when outputs lack it).
    fn arm_id(&self, arm: &Arm, kind: Kind, addr: &str, attrs: &Value) -> String {
        let rg = self.rg();
        let name = attr(attrs, "name");
        match kind {
            Kind::AzureResourceGroup => arm.resource_group_id(rg),
            Kind::AzureVnet => arm.vnet_id(rg, &name),
            Kind::AzureNsg => arm.nsg_id(rg, &name),
            Kind::AzureSubnet => arm.subnet_id(rg, &attr(attrs, "vnet"), &name),
            Kind::AzurePublicIp => arm.public_ip_id(rg, &name),
            Kind::AzureNic => arm.nic_id(rg, &name),
            Kind::AzureVm => arm.vm_id(rg, &name),
            Kind::AzureVault => arm.vault_id(rg, &name),
            Kind::AzureNatGateway => arm.nat_gateway_id(rg, &name),
            _ => addr.to_string(),
        }
    }

    fn apply_azure(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let arm = self.arm()?;
        match change.action {
            Action::Destroy => {
                self.destroy(ctx, &arm, change)?;
                Ok(None)
            }
            Action::Replace => {
                self.destroy(ctx, &arm, change)?;
                self.create(ctx, &arm, change).map(Some)
            }
            Action::Create => self.create(ctx, &arm, change).map(Some),
            Action::Update if change.kind == Kind::AzureVm => {
                self.update_vm(ctx, &arm, change).map(Some)
            }
            // Network resources: a PUT converges them (also after drift).
            Action::Update => self.create(ctx, &arm, change).map(Some),
        }
    }

    fn create(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let (addr, a, name) = target(change, false);
        let at = arm_err(addr);
        let rg = self.rg();
        let loc = self.config.location.clone();
        let tags = self.apply_tags(ctx);
        // Another deployment's resource of the same name is never adopted or changed.
        if !matches!(
            change.kind,
            Kind::AzureResourceGroup | Kind::AzureSubnet | Kind::AzureSecrets | Kind::AzureVault
        ) {
            self.guard_change(ctx, arm, change, &a)?;
        }
        let outputs = match change.kind {
            Kind::AzureResourceGroup => return self.create_rg(ctx, arm, change),
            Kind::AzureVault => return self.create_vault(ctx, arm, change),
            Kind::AzureSecrets => {
                return self
                    .apply_secrets(ctx, arm, change)?
                    .ok_or_else(|| ProviderError::at(addr, "secrets were not written"))
            }
            Kind::AzureNatGateway => {
                let body = arm::nat::nat_gateway_body(
                    &loc,
                    &arm.public_ip_id(rg, &attr(&a, "public_ip")),
                    &tags,
                );
                let v = self
                    .block_on(arm.put_nat_gateway(rg, &name, &body))
                    .map_err(at)?;
                json!({"id": v["id"].as_str().map(str::to_string).unwrap_or_else(|| arm.nat_gateway_id(rg, &name))})
            }
            Kind::AzureVnet => {
                let v = self
                    .block_on(arm.put_vnet(
                        rg,
                        &VnetSpec {
                            name: name.clone(),
                            location: loc,
                            address_space: attr(&a, "address_space"),
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({"id": v.resource.id.unwrap_or_else(|| arm.vnet_id(rg, &name))})
            }
            Kind::AzureNsg => {
                let rules: Vec<RuleSpec> = serde_json::from_value(
                    a.get("rules").cloned().unwrap_or(json!([])),
                )
                .map_err(|e| ProviderError::at(addr, format!("bad rules in the plan: {e}")))?;
                let n = self
                    .block_on(arm.put_nsg(
                        rg,
                        &NsgSpec {
                            name: name.clone(),
                            location: loc,
                            rules,
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({"id": n.resource.id.unwrap_or_else(|| arm.nsg_id(rg, &name))})
            }
            Kind::AzureSubnet => {
                let vnet = attr(&a, "vnet");
                let s = self
                    .block_on(
                        arm.put_subnet(
                            rg,
                            &SubnetSpec {
                                vnet: vnet.clone(),
                                name: name.clone(),
                                address_prefix: attr(&a, "address_prefix"),
                                nsg_id: Some(arm.nsg_id(rg, &attr(&a, "nsg"))),
                                nat_gateway_id: a
                                    .get("nat_gateway")
                                    .and_then(Value::as_str)
                                    .map(|n| arm.nat_gateway_id(rg, n)),
                            },
                        ),
                    )
                    .map_err(at)?;
                json!({"id": s.sub_resource.id.unwrap_or_else(|| arm.subnet_id(rg, &vnet, &name))})
            }
            Kind::AzurePublicIp => {
                let p = self
                    .block_on(arm.put_public_ip(
                        rg,
                        &PublicIpSpec {
                            name: name.clone(),
                            location: loc,
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({
                    "id": p.resource.id.clone().unwrap_or_else(|| arm.public_ip_id(rg, &name)),
                    "ip_address": arm::public_ip_address(&p),
                })
            }
            Kind::AzureNic => {
                let vnet = vnet_name(&ctx.topology.network.name);
                let pip = a
                    .get("public_ip")
                    .and_then(Value::as_str)
                    .map(|p| arm.public_ip_id(rg, p));
                let n = self
                    .block_on(arm.put_nic(
                        rg,
                        &NicSpec {
                            name: name.clone(),
                            location: loc,
                            subnet_id: arm.subnet_id(rg, &vnet, &attr(&a, "subnet")),
                            private_ip: attr(&a, "private_ip"),
                            nsg_id: Some(arm.nsg_id(rg, &attr(&a, "nsg"))),
                            public_ip_id: pip,
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({
                    "id": n.resource.id.clone().unwrap_or_else(|| arm.nic_id(rg, &name)),
                    "private_ip": arm::nic_private_ip(&n),
                })
            }
            Kind::AzureVm => return self.create_vm(ctx, arm, change),
            _ => return Err(super::unsupported("azure", change)),
        };
        Ok(record(change, change.kind, outputs))
    }

    fn create_rg(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let at = arm_err(addr);
        let rg = self.rg();
        let net = &ctx.topology.network.name;
        let mut tags = self.apply_tags(ctx);
        let ours = ctx.state.lock().unwrap().lineage.clone();
        // Recorded earlier (update): keep what we knew about its origin.
        let recorded_pre = ctx
            .snapshot()
            .resources
            .get(addr)
            .and_then(|r| r.outputs.get("preexisting"))
            .and_then(Value::as_bool);
        let existing = self.block_on(arm.get_resource_group(rg)).map_err(at)?;
        let owner = existing
            .as_ref()
            .map(|g| lineage::owner(&g.tags, &ours, net));
        if let Some(lineage::Owner::Other {
            lineage: l,
            network: n,
        }) = &owner
        {
            return Err(lineage::refusal(
                addr,
                &format!("resource group {rg}"),
                &ours,
                l,
                n,
            ));
        }
        let preexisting = match (owner, recorded_pre) {
            (_, Some(p)) => p,
            (None, None) => false,
            (Some(lineage::Owner::Foreign), None) => true,
            (Some(_), None) => false,
        };
        if let Some(g) = &existing {
            // A PUT replaces the tags: keep the ones others set.
            for (k, v) in &g.tags {
                tags.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let g = self
            .block_on(arm.create_resource_group(rg, &self.config.location, &tags))
            .map_err(at)?;
        if preexisting {
            ctx.emit(Event::Warning {
                message: format!(
                    "{addr}: resource group {rg} existed before consort; it is used (and tagged) but never deleted by `consort destroy`"
                ),
            });
        }
        Ok(record(
            change,
            Kind::AzureResourceGroup,
            json!({"id": g.id, "preexisting": preexisting}),
        ))
    }

    fn create_vm(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let (addr, a, name) = target(change, false);
        let at = arm_err(addr);
        let node = node_of(change);
        let rg = self.rg();
        let st = ctx.snapshot();
        let ci = self.vm_cloud_init(ctx.topology, &st, &node)?;
        let text = render::cloud_init(&ci).map_err(|e| ProviderError::at(addr, e.to_string()))?;
        let digest = sha256_hex(text.as_bytes());
        let mut tags = self.apply_tags(ctx);
        tags.insert(CUSTOM_DATA_TAG.into(), digest.clone());
        // A VM left by an interrupted apply: its customData cannot be changed, so adopt it
        // if it is the same, else delete it and start afresh.
        if let Some(vm) = self.block_on(arm.get_vm(rg, &name)).map_err(at)? {
            let same = vm
                .resource
                .tags
                .as_ref()
                .and_then(|t| t.get(CUSTOM_DATA_TAG))
                .and_then(Value::as_str)
                == Some(digest.as_str());
            if !same {
                ctx.emit(Event::Step {
                    subject: node.clone(),
                    step: "replacing a VM left by an interrupted apply".into(),
                });
                self.block_on(arm.delete_vm(rg, &name)).map_err(at)?;
            }
        }
        let spec = VmSpec {
            name: name.clone(),
            location: self.config.location.clone(),
            size: attr(&a, "size"),
            admin_username: attr(&a, "admin_username"),
            ssh_public_key: attr(&a, "ssh_public_key"),
            nic_id: arm.nic_id(rg, &attr(&a, "nic")),
            image: ImageRef::ubuntu_lts(),
            os_disk_type: OS_DISK_TYPE.into(),
            custom_data: CustomData::new(text),
            tags,
        };
        let vm = self.block_on(arm.put_vm(rg, &spec)).map_err(at)?;
        let principal = vm
            .identity
            .as_ref()
            .and_then(|i| i.principal_id.clone())
            .ok_or_else(|| {
                ProviderError::at(
                    addr,
                    "the VM has no system-assigned identity (no identity.principalId)",
                )
            })?;
        let grants = self.grant_secrets(ctx, arm, addr, &node, &principal)?;
        let pip = st
            .resources
            .get(&pip_addr(&node))
            .and_then(|r| r.outputs.get("ip_address"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let private_ip = ci.node.listen_addr.clone();
        let enode_id = st
            .output_str(&format!("key.node.{node}"), "enode_id")
            .unwrap_or_default();
        Ok(record(
            change,
            Kind::AzureVm,
            json!({
                "id": vm.resource.id.clone().unwrap_or_else(|| arm.vm_id(rg, &name)),
                "private_ip": private_ip,
                "public_ip": pip,
                // Applications' RPC: tx nodes only (validators serve no TCP RPC).
                "rpc_url": pip.as_ref().map(|p| format!("http://{p}:{RPC_PORT}")),
                "enode": render::enode_url(enode_id, &private_ip, P2P_PORT),
                "static_nodes": ci.node.static_nodes,
                "geth_version": ci.geth_version,
                "custom_data_sha256": digest,
                "principal_id": principal,
                "role_assignments": grants,
            }),
        ))
    }

    /// An update of a VM: recreate it if it vanished; a mesh change is recorded (see the
    /// module doc); anything else cannot be changed on a running VM.
    fn update_vm(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let a = attrs_of(change);
        let exists = self
            .block_on(arm.get_vm(self.rg(), &attr(&a, "name")))
            .map_err(|e| ProviderError::at(addr, e.to_string()))?
            .is_some();
        if !exists {
            return self.create_vm(ctx, arm, change);
        }
        let before = change.before.clone().unwrap_or(json!({}));
        let changed: Vec<String> = a
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| before.get(*k) != a.get(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let others: Vec<&String> = changed.iter().filter(|k| *k != "mesh").collect();
        if !others.is_empty() {
            return Err(ProviderError::at(
                addr,
                format!(
                    "changing {} of a running Azure VM is not supported in place; remove the node from the topology, apply, then add it back (its chain data is resynced)",
                    others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let node = node_of(change);
        let statics = self.update_peers(ctx, addr, &node)?;
        let mut outputs = ctx
            .snapshot()
            .resources
            .get(addr)
            .map(|r| r.outputs.clone())
            .unwrap_or(json!({}));
        outputs["static_nodes"] = json!(statics);
        Ok(record(change, Kind::AzureVm, outputs))
    }

    fn destroy(&self, ctx: &ApplyCtx, arm: &Arm, change: &Change) -> Result<(), ProviderError> {
        let (addr, a, name) = target(change, true);
        let at = arm_err(addr);
        let rg = self.rg();
        match change.kind {
            Kind::AzureResourceGroup => return self.destroy_rg(ctx, arm, change),
            Kind::AzureVault => return self.destroy_vault(ctx, arm, change),
            Kind::AzureSecrets => return self.apply_secrets(ctx, arm, change).map(drop),
            _ => {}
        }
        // Another deployment's resource of the same name is never deleted.
        if !matches!(change.kind, Kind::AzureSubnet) && !self.guard_change(ctx, arm, change, &a)? {
            return Ok(());
        }
        match change.kind {
            Kind::AzureVm => {
                let grants: Vec<String> = ctx
                    .snapshot()
                    .resources
                    .get(addr)
                    .and_then(|r| r.outputs.get("role_assignments"))
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                for g in grants {
                    self.block_on(arm.delete_role_assignment(&g)).map_err(at)?;
                }
                self.block_on(arm.delete_vm(rg, &name))
            }
            Kind::AzureNatGateway => self.block_on(arm.delete_nat_gateway(rg, &name)),
            Kind::AzureNic => self.block_on(arm.delete_nic(rg, &name)),
            Kind::AzurePublicIp => self.block_on(arm.delete_public_ip(rg, &name)),
            Kind::AzureSubnet => self.block_on(arm.delete_subnet(rg, &attr(&a, "vnet"), &name)),
            Kind::AzureNsg => self.block_on(arm.delete_nsg(rg, &name)),
            Kind::AzureVnet => self.block_on(arm.delete_vnet(rg, &name)),
            _ => return Err(super::unsupported("azure", change)),
        }
        .map_err(at)
    }

    fn destroy_rg(&self, ctx: &ApplyCtx, arm: &Arm, change: &Change) -> Result<(), ProviderError> {
        let addr = change.addr.as_str();
        let at = arm_err(addr);
        let rg = self.rg();
        let st = ctx.snapshot();
        let preexisting = st
            .resources
            .get(addr)
            .and_then(|r| r.outputs.get("preexisting"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if preexisting {
            ctx.emit(Event::Warning {
                message: format!(
                    "{addr}: resource group {rg} existed before consort and is left in place"
                ),
            });
            return Ok(());
        }
        let left = match self.block_on(arm.list_resources(rg)) {
            Ok(l) => l,
            Err(e) if e.code() == Some("ResourceGroupNotFound") => return Ok(()),
            Err(e) => return Err(at(e)),
        };
        if !left.is_empty() {
            let names: Vec<String> = left
                .iter()
                .map(|r| format!("{} ({})", r.name, r.rtype))
                .collect();
            return Err(ProviderError::at(
                addr,
                format!(
                    "refusing to delete resource group {rg}: it still holds {} resource(s) consort did not create: {}. Delete or move them (or delete the group yourself), then run `consort destroy` again",
                    left.len(),
                    names.join(", ")
                ),
            ));
        }
        self.block_on(arm.delete_resource_group(rg)).map_err(at)
    }

    /// Funds an account added after genesis through a tx node's public RPC.
    fn apply_funding(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        super::governance::apply_funding(ctx, change, |f, st| {
            tx_endpoints(st)
                .into_iter()
                .min_by_key(|(n, _)| !n.starts_with(&format!("{}-", f.member)))
                .map(|(_, url)| RpcClient::new(url))
                .ok_or_else(|| {
                    ProviderError::at(
                        &change.addr,
                        "funding an account after genesis sends a transfer through a tx node's public RPC, and the network has no tx node",
                    )
                })
        })
    }
}

/// Writes `azuredeploy.json` + `azuredeploy.parameters.json` into `out_dir` (customData
/// parameters left for the user; see [`export_arm_with_state`]).
pub fn export_arm(
    topology: &Topology,
    out_dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, ProviderError> {
    export::export_arm_with_state(topology, None, out_dir)
}
