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
//! exists (`desired.rs`); `resources.rs` creates, updates and deletes them, `health.rs`
//! waits for the tx nodes to see blocks advance. Requests go through [`arm::Arm`] (our own long-running-operation polling) on a
//! private tokio runtime; the executor's threads `block_on` it.
//!
//! Destroy runs in reverse dependency order (VMs with their role assignments, then NICs,
//! public IPs, subnets, the NAT gateway, the VNet, NSGs and the vault) and finally the
//! resource group, which is deleted only when nothing else is left in it: otherwise the
//! destroy of `azure.rg` fails naming the foreign resources. A resource group that existed
//! before consort (not tagged by it) is never deleted; one of another deployment (another
//! `consort-lineage`) is never touched at all ([`lineage`]).
//!
//! Running VMs are controlled through VM Run Command ([`run_command`], `votes`): Clique
//! votes with the local provider's rules (`consensus::votes::vote`), and live peer changes when
//! the mesh changes (config rewritten, `admin_addPeer`/`removePeer`).

pub mod arm;
mod cost;
pub mod custom_data;
mod desired;
mod export;
mod health;
pub mod layout;
mod lifecycle;
pub mod lineage;
mod log_tail;
mod reconcile;
mod resources;
pub mod run_command;
mod sealing;
mod soft_delete;
pub mod vault;
mod votes;

pub use export::{export_arm_with_state, node_parameter, MAX_PARAMETERS};

use super::{ApplyCtx, Health, NodeHealth, Provider, ProviderError};
use crate::events::{Event, EventSink};
use crate::plan::build::PlanError;
use crate::plan::desired::node_attrs;
use crate::plan::peering::Peering;
use crate::plan::{mesh_digest, Change, Planning, Resource};
use crate::render::{self, vm_paths, CloudInit, NodeLaunch, SignerLaunch};
use crate::rpc::RpcClient;
use crate::state::{Action, Kind};
use crate::state::{ResourceState, State, StateDir};
use crate::topology::{AzureConfig, NodeSpec, Role, Topology};
use arm::{
    Arm, ArmError, CustomData, ImageRef, NicSpec, NsgSpec, PublicIpSpec, RuleSpec, SubnetSpec,
    VmSpec, VnetSpec,
};
use health::{assess, tx_endpoints};
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
    /// Validators the last refresh could not ask (`unread`): node → why.
    unread: Mutex<BTreeMap<String, String>>,
    /// Validators whose geth this apply started again, to start sealing on in order
    /// once all are up (`after_apply`, `sealing`).
    to_seal: Mutex<BTreeSet<String>>,
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
            unread: Mutex::default(),
            to_seal: Mutex::default(),
        })
    }

    /// With a ready ARM client (tests and benches against a stand-in endpoint).
    pub fn with_arm(config: AzureConfig, arm: Arm) -> AzureProvider {
        AzureProvider {
            config,
            arm: Mutex::new(Some(Arc::new(arm))),
            runtime: OnceLock::new(),
            signer_refusal: Mutex::new(None),
            unread: Mutex::default(),
            to_seal: Mutex::default(),
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

    /// Refuses when the caller lacks an action apply needs, at the resource group (or the
    /// subscription, before the group exists). Unknown (no credentials, the check itself
    /// failed): not refused here; the request that needs it says what is wrong.
    fn check_permissions(&self, destroy: bool) -> Result<(), String> {
        use arm::permissions::{missing, DESTROY_NEEDED, NEEDED, ROLE_ADVICE};
        let Ok(arm) = self.arm() else {
            return Ok(());
        };
        let rg_id = arm.resource_group_id(self.rg());
        let sub_id = format!("/subscriptions/{}", arm.subscription_id());
        let perms = self.block_on(async {
            match arm.permissions(&rg_id).await {
                Ok(None) => arm.permissions(&sub_id).await.map(|p| (sub_id.clone(), p)),
                r => r.map(|p| (rg_id.clone(), p)),
            }
        });
        let Ok((scope, Some(perms))) = perms else {
            return Ok(());
        };
        let (needed, untouched) = match destroy {
            true => (DESTROY_NEEDED, "nothing was deleted"),
            false => (NEEDED, "nothing was written"),
        };
        let lacking = missing(&perms, needed);
        if lacking.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the Azure identity consort runs as lacks permission for {} at {scope}; {untouched}. Grant it {ROLE_ADVICE}",
            lacking.join(", ")
        ))
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
            cors_origins: match spec.role {
                Role::Tx => topology.rpc.cors_origins.clone(),
                Role::Validator => vec![],
            },
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

impl Planning for AzureProvider {
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
    ) -> Result<Vec<Resource>, PlanError> {
        Ok(self.desired_resources(topology, state)?)
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
        self.refresh_geth(state, &mut drift);
        drift
    }

    fn held_names(
        &self,
        _topology: &Topology,
        state: Option<&State>,
        changes: &[Change],
    ) -> BTreeMap<String, String> {
        self.soft_deleted_names(state, changes)
    }

    fn preflight(&self, _topology: &Topology, destroy: bool) -> Result<(), String> {
        self.check_permissions(destroy)
    }

    fn unread(&self) -> Vec<String> {
        self.unread.lock().unwrap().values().cloned().collect()
    }

    fn check_live(&self, _topology: &Topology, _state: &State) -> Result<(), String> {
        self.signer_refusal
            .lock()
            .unwrap()
            .take()
            .map_or(Ok(()), Err)
    }
}

impl Provider for AzureProvider {
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

    fn after_apply(&self, ctx: &ApplyCtx) -> Result<(), ProviderError> {
        self.seal_in_order(ctx)
    }

    fn wait_healthy(&self, ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        self.wait_until_healthy(ctx)
    }

    fn stop_nodes(
        &self,
        _sd: &StateDir,
        state: &State,
        events: &EventSink,
    ) -> Result<Vec<String>, ProviderError> {
        self.stop_vms(state, events)
    }

    fn remote_logs(
        &self,
        state: &State,
        nodes: &[&str],
        lines: usize,
    ) -> Option<Vec<Result<String, String>>> {
        Some(self.geth_logs(state, nodes, lines))
    }

    fn health(&self, topology: &Topology, state: &State) -> Health {
        // An advancing head takes two looks: a block period or two apart, at most.
        let mut first_heads = BTreeMap::new();
        let mut h = assess(topology, state, &mut first_heads);
        let deadline =
            Instant::now() + Duration::from_secs((topology.network.clique.period * 2 + 3).min(30));
        let only_waiting = |h: &Health| {
            h.nodes
                .iter()
                .all(|n| n.problems.iter().all(|p| p.ends_with("not advancing yet")))
        };
        while !h.healthy && only_waiting(&h) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            h = assess(topology, state, &mut first_heads);
        }
        if !h.healthy {
            self.mark_stopped(state, &mut h);
        }
        h
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

impl AzureProvider {
    /// Funds an account added after genesis through a tx node's public RPC.
    fn apply_funding(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        super::funding::apply_funding(ctx, change, |f, st| {
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
