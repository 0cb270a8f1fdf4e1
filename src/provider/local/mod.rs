//! The local provider: real geth processes on `provider.local.address` (127.0.0.1).
//!
//! Each node `node.<name>` is a geth process with its data dir at
//! `.consort/<network>/nodes/<name>/`:
//!
//! ```text
//! geth/            chain data: `geth init` with the network's genesis, run once into
//!                  `.consort/<network>/genesis-db/` and copied from there
//! config.toml      rendered: [Node.P2P] ListenAddr, StaticNodes/TrustedNodes = full mesh
//! keystore/        validators: a copy of the signer keystore (0600)
//! password         validators: its password (0600)
//! consort.pid      {pid, start_time} written right after the start, before state is
//!                  saved, so a run killed in between still finds (and stops) its process
//! geth.log         stdout + stderr
//! ```
//!
//! Ports are chosen free at apply (from `provider.local.base_port`, skipping every port
//! recorded in this network's and sibling networks' state) and recorded in the node's
//! outputs. A process is only ever signalled after `/proc/<pid>` proves it is ours (see
//! [`process`]).

mod chaindata;
pub mod forks;
mod funding;
mod health;
pub mod lifecycle;
mod mesh;
mod node;
mod ports;
pub mod process;
mod reconcile;
pub mod recover;
mod sealing;
mod votes;

use health::{assess, unhealthy_report};
use mesh::{Peers, UpNode};
use node::*;
use ports::*;
use sealing::start_sealing;

use super::signer;
use super::{ApplyCtx, Down, Health, NodeHealth, Proposal, Provider, ProviderError};
use crate::chain::geth::{ensure_geth_recorded, GethBinary};
use crate::consensus;
use crate::consensus::control::GovError;
use crate::consensus::liveness;
use crate::consensus::votes::SignerNode;
use crate::crypto::Address;
use crate::events::Event;
use crate::parallel;
use crate::plan::build::PlanError;
use crate::plan::desired::node_attrs;
use crate::plan::peering::Peering;
use crate::plan::ports::{NodePorts, PlannedPorts};
use crate::plan::{mesh_digest, Change, Planning, Resource};
use crate::render::{self, NodeLaunch, SignerLaunch};
use crate::rpc::{self, BlockId, RpcClient};
use crate::state::fsutil::{create_private_dir, write_atomic, write_secret};
use crate::state::{Action, Kind};
use crate::state::{ResourceState, State, StateDir};
use crate::topology::{LocalConfig, NodeSpec, Role, Topology};
use process::ProcessId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// SIGTERM → SIGKILL grace for geth (it flushes its database on SIGTERM).
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long a started geth may take to answer RPC.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of geth.log quoted in errors.
const LOG_TAIL: usize = 12;
/// A node more than this many blocks behind the head is reported as behind (a block
/// sealed between two probes is not yet everywhere).
const BEHIND_TOLERANCE: u64 = 1;
/// RPC timeout for health probes (a hung node must not stall the others).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PID_FILE: &str = "consort.pid";
/// Interval of the loops that wait for nodes (start-up, sealing, health).
const POLL: Duration = Duration::from_millis(50);

/// What state records for a running node (`node.<name>` outputs). No secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeOutputs {
    pub datadir: String,
    pub pid: u32,
    pub start_time: u64,
    pub ports: NodePorts,
    /// geth's IPC socket: how consort controls the node (admin, clique votes, miner,
    /// health). Empty in state written before consort used IPC (such a node is restarted).
    #[serde(default)]
    pub ipc_path: String,
    /// HTTP JSON-RPC for applications: tx nodes only (`eth,net,web3,txpool`).
    #[serde(default, deserialize_with = "empty_is_none")]
    pub rpc_url: Option<String>,
    /// WebSocket JSON-RPC for applications: tx nodes only.
    #[serde(default)]
    pub ws_url: Option<String>,
    /// geth's Prometheus metrics (every node, on its own address; read-only counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    pub enode: String,
    /// The StaticNodes in config.toml (enode URLs of every other node).
    #[serde(default)]
    pub static_nodes: Vec<String>,
    pub geth: String,
    pub geth_version: String,
    /// SHA-256 of `geth` when the node was started: every later start checks the binary
    /// still has it. Empty in state written before consort recorded it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub geth_sha256: String,
    pub log: String,
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()))
}

impl NodeOutputs {
    pub fn process(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
    pub fn is_running(&self) -> bool {
        process::is_ours(self.process(), Path::new(&self.datadir))
    }
    /// consort's control channel to the node: its IPC socket.
    pub fn control(&self) -> RpcClient {
        if self.ipc_path.is_empty() {
            // State from before IPC control: HTTP with every namespace (replaced on apply).
            return RpcClient::new(self.rpc_url.clone().unwrap_or_default());
        }
        RpcClient::ipc(&self.ipc_path)
    }
    /// The geth this node runs, with the SHA-256 state recorded for it (state from before
    /// that: the file's hash now, recorded at this start).
    pub fn geth_binary(&self) -> GethBinary {
        let path = PathBuf::from(&self.geth);
        let sha256 = if self.geth_sha256.is_empty() {
            crate::chain::geth::sha256_file(&path).unwrap_or_default()
        } else {
            self.geth_sha256.clone()
        };
        GethBinary {
            path,
            version: self.geth_version.clone(),
            sha256,
        }
    }
    pub fn from_state(state: &State, node: &str) -> Option<NodeOutputs> {
        let r = state.resources.get(&format!("node.{node}"))?;
        serde_json::from_value(r.outputs.clone()).ok()
    }
}

pub struct LocalProvider {
    pub config: LocalConfig,
    geth: Mutex<Option<Result<GethBinary, String>>>,
    ports: Mutex<Option<PortTable>>,
    /// Validators `miner_start` was sent to while tx nodes wait for block 1; its lock
    /// makes one waiting tx node the one that watches for block 1 and starts sealing (see
    /// `await_first_block`).
    sealing_started: Mutex<BTreeSet<String>>,
    /// Set once a validator of this network answered with block 1 or later.
    first_block_seen: std::sync::atomic::AtomicBool,
    /// Every process with a `--datadir`, as /proc listed them when a destroy first asked.
    processes: Mutex<Option<Vec<(ProcessId, PathBuf)>>>,
    /// Nodes up, by name (see `join_mesh`).
    up: Mutex<Option<BTreeMap<String, UpNode>>>,
    /// Serialises building the genesis-db template (see `init_datadir`).
    genesis_db: Mutex<()>,
    /// Why the live signers cannot be reconciled, as the last `refresh` found.
    signer_refusal: Mutex<Option<String>>,
    /// Why a node's corrupt chain data cannot be resynced (no other node holds the chain),
    /// as the last `refresh` found.
    chain_refusal: Mutex<Option<String>>,
    /// Held by the node restarting during a rolling upgrade (one at a time).
    rolling: Mutex<()>,
}

impl LocalProvider {
    pub fn new(config: LocalConfig) -> LocalProvider {
        LocalProvider {
            config,
            geth: Mutex::new(None),
            ports: Mutex::new(None),
            up: Mutex::new(None),
            sealing_started: Mutex::new(BTreeSet::new()),
            first_block_seen: Default::default(),
            processes: Mutex::new(None),
            genesis_db: Mutex::new(()),
            signer_refusal: Mutex::new(None),
            chain_refusal: Mutex::new(None),
            rolling: Mutex::new(()),
        }
    }

    /// The geth binary for this command (found or built once).
    fn geth(&self, ctx: &ApplyCtx) -> Result<GethBinary, ProviderError> {
        let mut g = self.geth.lock().unwrap();
        if g.is_none() {
            // The outcome, failure included, is kept: a build that failed is not retried
            // by every node.
            // The binaries the nodes ran, by path, with the hash state recorded: an
            // explicit geth at one of those paths must still have it.
            let recorded = recorded_nodes(&ctx.snapshot())
                .into_iter()
                .filter(|(_, o)| !o.geth_sha256.is_empty())
                .map(|(name, o)| {
                    let by = format!("state for node.{name}");
                    (PathBuf::from(o.geth), (o.geth_sha256, by))
                })
                .collect();
            *g = Some(
                ensure_geth_recorded(None, &ctx.topology.client.geth, &ctx.events, &recorded)
                    .map_err(|e| e.to_string()),
            );
        }
        match g.as_ref().expect("just set") {
            Ok(b) => Ok(b.clone()),
            Err(e) => Err(ProviderError::Other(e.clone())),
        }
    }
}

/// Nodes recorded in state with their outputs.
fn recorded_nodes(st: &State) -> Vec<(String, NodeOutputs)> {
    st.resources
        .iter()
        .filter(|(_, r)| r.kind == Kind::LocalNode)
        .filter_map(|(addr, r)| {
            let name = addr.strip_prefix("node.")?.to_string();
            Some((name, serde_json::from_value(r.outputs.clone()).ok()?))
        })
        .collect()
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Where the genesis-initialised database that node data dirs are copied from lives.
fn genesis_db_dir(sd: &StateDir) -> PathBuf {
    sd.root.join("genesis-db")
}

/// The address a recorded node runs on (its enode's host).
fn running_address(o: &NodeOutputs) -> Option<&str> {
    o.enode.rsplit_once('@')?.1.rsplit_once(':').map(|(h, _)| h)
}

/// Why apply refuses: `provider.local.address` names another address than the one the
/// recorded nodes run on. Moving means a new enode for every node, in every peer's
/// config and every other operator's, all at once: consort does not do that in place.
fn address_moved(topology: &Topology, st: &State) -> Option<String> {
    let want = topology.local_address();
    let mut on: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let recorded = recorded_nodes(st);
    for (name, o) in &recorded {
        if let Some(host) = running_address(o).filter(|h| *h != want) {
            on.entry(host).or_default().push(name);
        }
    }
    let (old, nodes) = on.into_iter().next()?;
    Some(format!(
        "provider.local.address is {want}, but node(s) {} run on {old}: consort does not move a running network to another address (every node's enode would change, in every peer's config, at once). Set provider.local.address back to {old}{}, or `consort destroy` and apply again on {want}.",
        nodes.join(", "),
        if old == LocalConfig::DEFAULT_ADDRESS {
            " (or remove it: that is the default)"
        } else {
            ""
        }
    ))
}

fn node_dir(sd: &StateDir, node: &str) -> PathBuf {
    abs(&sd.nodes_dir().join(node))
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn node_name(change: &Change) -> String {
    change
        .after
        .as_ref()
        .or(change.before.as_ref())
        .and_then(|a| a.get("node"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            change
                .addr
                .split_once('.')
                .map(|x| x.1)
                .unwrap_or("")
                .to_string()
        })
}

fn step(ctx: &ApplyCtx, node: &str, step: &str) {
    ctx.emit(Event::Step {
        subject: node.to_string(),
        step: step.to_string(),
    });
}

impl Planning for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn desired(
        &self,
        topology: &Topology,
        _state: Option<&State>,
        _core: &[Resource],
    ) -> Result<Vec<Resource>, PlanError> {
        let nodes = topology.nodes();
        // Other operators' nodes are planned peers too: a change to them rewrites the
        // peers of ours.
        let peering = Peering::for_topology(topology);
        let own: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let host = topology.local_address();
        Ok(nodes
            .iter()
            .map(|n| {
                // The node's planned peers (and itself: a full mesh digests all names);
                // other operators' by enode URL.
                let externals = mesh::external_peers(topology, &peering, &n.name);
                let mesh = mesh_digest(
                    peering
                        .peers_of(&n.name)
                        .filter(|p| own.contains(p))
                        .chain(std::iter::once(n.name.as_str()))
                        .chain(externals.iter().map(String::as_str)),
                );
                let mut deps = vec![format!("key.node.{}", n.name)];
                if n.role == Role::Validator {
                    deps.push(format!("key.signer.{}", n.name));
                }
                deps.push("genesis".into());
                // Every peer's node key: its enode goes into our StaticNodes.
                deps.push("key.node.*".into());
                Resource {
                    addr: format!("node.{}", n.name),
                    kind: Kind::LocalNode,
                    // consort controls the node over IPC; only tx nodes serve RPC.
                    attrs: node_attrs(n, topology, mesh, json!({ "control": "ipc" })),
                    deps,
                    summary: format!(
                        "geth {} {} of {} on {host}, peered with {} other node(s), {}",
                        topology.client.geth,
                        n.role,
                        n.member,
                        peering.degree(&n.name),
                        match n.role {
                            Role::Validator => "no RPC (IPC only)",
                            Role::Tx => "HTTP + WebSocket RPC",
                        }
                    ),
                }
            })
            .chain(std::iter::once(super::clique::resource("node.*")))
            .collect())
    }

    fn refresh(&self, topology: &Topology, state: &State) -> BTreeMap<String, String> {
        let recorded = recorded_nodes(state);
        let peering = Peering::for_topology(topology);
        let ids = health::planned_ids(topology, state);
        // A process that exists but does not answer on its control socket (stopped,
        // hung) is restarted like a dead one; one missing planned peers is dialled again,
        // unless those peers are ours and restarted by this plan anyway (they dial back).
        let probed: Vec<(String, Result<String, Vec<String>>)> =
            parallel::map(&recorded, parallel::PROBE_CONCURRENCY, |(name, o)| {
                let why = if !o.is_running() {
                    let datadir = Path::new(&o.datadir);
                    match chaindata::missing(datadir) {
                        Some(why) => chaindata::reason(why),
                        None => match chaindata::corrupt(&o.geth_binary(), datadir) {
                            Some(why) => chaindata::corrupt_reason(&why),
                            None => "restart (process not running)".to_string(),
                        },
                    }
                } else if o.ipc_path.is_empty() {
                    return None;
                } else {
                    let rpc = o.control().with_timeout(PROBE_TIMEOUT);
                    match rpc.block_number() {
                        Ok(_) => {
                            let peers: BTreeSet<String> = rpc
                                .admin_peers()
                                .ok()?
                                .iter()
                                .filter_map(|p| p.pubkey().map(str::to_string))
                                .collect();
                            let missing = health::missing_peers(&peering, &ids, name, &peers);
                            if missing.is_empty() {
                                return None;
                            }
                            let missing = missing.into_iter().map(str::to_string).collect();
                            return Some((name.clone(), Err(missing)));
                        }
                        Err(_) => "restart (process alive but not answering on its IPC socket)"
                            .to_string(),
                    }
                };
                Some((name.clone(), Ok(why)))
            })
            .into_iter()
            .flatten()
            .collect();
        *self.chain_refusal.lock().unwrap() = chaindata::no_holder(topology, &recorded, &probed);
        let restarted: BTreeSet<&str> = probed
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.as_str())
            .collect();
        let mut drift: BTreeMap<String, String> = BTreeMap::new();
        for (name, r) in &probed {
            let why = match r {
                Ok(why) => why.clone(),
                Err(missing) => {
                    let missing: Vec<&str> = missing
                        .iter()
                        .map(String::as_str)
                        .filter(|m| !restarted.contains(m))
                        .collect();
                    if missing.is_empty() {
                        continue;
                    }
                    format!("dial again ({})", health::not_peered(&missing, topology))
                }
            };
            drift.insert(format!("node.{name}"), why);
        }
        // A config naming a peer where it no longer runs (it moved ports): rewritten.
        for (name, _) in &recorded {
            let addr = format!("node.{name}");
            if drift.contains_key(&addr) {
                continue;
            }
            if let Some(why) = mesh::stale_config(topology, state, name) {
                drift.insert(addr, why);
            }
        }
        let d = reconcile::signer_drift(topology, state);
        // Voted out by the other operators: no vote of ours brings it back.
        let removed = d
            .live
            .as_ref()
            .map(|live| votes::voted_out(topology, state, live, None))
            .unwrap_or_default();
        *self.signer_refusal.lock().unwrap() = match removed.first() {
            Some(r) => Some(format!("{r}; there is nothing to apply")),
            None => d.refusal(),
        };
        if !d.is_empty() {
            drift.insert(super::clique::CLIQUE_ADDR.into(), d.reason());
        }
        drift
    }

    fn already_done(
        &self,
        topology: &Topology,
        state: &State,
        changes: &[Change],
    ) -> BTreeMap<String, String> {
        self.mined_fundings(topology, state, changes)
    }

    fn check_live(&self, topology: &Topology, state: &State) -> Result<(), String> {
        if let Some(why) = address_moved(topology, state) {
            return Err(why);
        }
        if let Some(why) = self.chain_refusal.lock().unwrap().take() {
            return Err(why);
        }
        match self.signer_refusal.lock().unwrap().take() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

impl Provider for LocalProvider {
    fn planned_ports(
        &self,
        topology: &Topology,
        state: Option<&State>,
        sd: &StateDir,
    ) -> BTreeMap<String, PlannedPorts> {
        // No free port left is an error apply reports where it happens.
        LocalProvider::planned_ports(self, topology, state, sd).unwrap_or_default()
    }

    fn refresh_by_default(&self) -> bool {
        true
    }

    fn stop_nodes(
        &self,
        sd: &StateDir,
        state: &State,
        events: &crate::events::EventSink,
    ) -> Result<Vec<String>, ProviderError> {
        lifecycle::stop_nodes(sd, state, events)
    }

    fn parallelism(&self) -> usize {
        // Mostly waiting on geth start-up; scrypt work is spread over all of it too.
        16
    }

    fn starts_late(&self, change: &Change, all: &[Change]) -> bool {
        // A tx node of a new chain waits for block 1 (see `await_first_block`), which needs
        // every validator started: those go first. On a running chain nobody waits.
        let new_chain = all
            .iter()
            .any(|c| c.kind == Kind::Genesis && c.action == Action::Create);
        new_chain
            && change.kind == Kind::LocalNode
            && matches!(change.action, Action::Create | Action::Replace)
            && change
                .after
                .as_ref()
                .and_then(|a| a.get("role"))
                .and_then(Value::as_str)
                == Some("tx")
    }

    fn apply_change(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        match change.kind {
            Kind::LocalNode => match change.action {
                Action::Create => self.create_node(ctx, change).map(Some),
                Action::Update => self.update_node(ctx, change).map(Some),
                Action::Replace => {
                    self.destroy_node(ctx, change)?;
                    self.create_node(ctx, change).map(Some)
                }
                Action::Destroy => {
                    self.destroy_node(ctx, change)?;
                    Ok(None)
                }
            },
            Kind::Signer => self.apply_signer(ctx, change),
            Kind::CliqueSigners => self.reconcile_signers(ctx, change),
            Kind::Funding => self.apply_funding(ctx, change),
            _ => Err(super::unsupported("local", change)),
        }
    }

    fn prepare(&self, ctx: &ApplyCtx, changes: &[Change]) {
        // `geth version` takes ~50 ms; nodes need it only after keys and genesis.
        let starts_nodes = changes
            .iter()
            .any(|c| c.kind == Kind::LocalNode && c.action != Action::Destroy);
        if starts_nodes {
            let _ = self.geth(ctx);
        }
        // The whole network goes (`destroy`: every change a Destroy, every node still in
        // the topology, so no vote waits on a running signer): ask every node to exit at
        // once, so their shutdowns overlap instead of running `parallelism` at a time.
        // Each node's Destroy still stops it (and waits) as always.
        let names: BTreeSet<String> = ctx.topology.nodes().into_iter().map(|n| n.name).collect();
        let whole_network = !changes.is_empty()
            && changes.iter().all(|c| c.action == Action::Destroy)
            && changes
                .iter()
                .filter(|c| c.kind == Kind::LocalNode)
                .all(|c| names.contains(&node_name(c)));
        if whole_network {
            for (_, o) in recorded_nodes(&ctx.snapshot()) {
                let _ = process::terminate(o.process(), Path::new(&o.datadir));
            }
        }
    }

    fn after_apply(&self, ctx: &ApplyCtx) -> Result<(), ProviderError> {
        self.archive_abandoned_nodes(ctx)?;
        self.announce_stale_enodes(ctx);
        self.seal_now(ctx);
        Ok(())
    }

    fn wait_healthy(&self, ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        let deadline = Instant::now() + ctx.health_timeout;
        let st = ctx.snapshot();
        self.sync_mesh(ctx.topology, &st, false);
        let mut nudges = 0u32;
        let mut announced: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        let mut last_add_peer = Instant::now();
        let mut sealing = BTreeSet::new();
        let mut progress = (0u64, Instant::now());
        let mut repairs = 0;
        let mut revotes = 0;
        loop {
            let st = ctx.snapshot();
            let h = assess(ctx.topology, &st);
            start_sealing(&h, &st, ctx.peering(), &mut sealing, false);
            if h.head > progress.0 {
                progress = (h.head, Instant::now());
            }
            for n in &h.nodes {
                let done = announced.entry(n.name.clone()).or_default();
                let peered = n.running && !n.problems.iter().any(|p| p.starts_with("not peered"));
                if peered && done.insert("peered") {
                    step(ctx, &n.name, "peered");
                }
                if n.problems.is_empty() && done.insert("sealing") {
                    let what = if n.role == "validator" {
                        "sealing"
                    } else {
                        "synced"
                    };
                    step(ctx, &n.name, what);
                }
            }
            if h.healthy {
                return Ok(h);
            }
            if ctx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(ProviderError::Other(
                    "interrupted while waiting for the network to become healthy; the nodes keep running — `consort status` shows them".into(),
                ));
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Other(unhealthy_report(
                    ctx.topology,
                    &st,
                    &h,
                    ctx.health_timeout,
                )));
            }
            // A start-up fork that geth cannot leave on its own (see `repair_forks`).
            let stall = Duration::from_secs(ctx.topology.network.clique.period + 3);
            if progress.1.elapsed() > stall && repairs < 3 && !self.repair_forks(ctx)?.is_empty() {
                repairs += 1;
                progress.1 = Instant::now();
                // Restarted validators come back without sealing: start them again.
                sealing.clear();
            }
            // Static dials that failed are retried late by geth; nudge missing peers.
            if last_add_peer.elapsed() > Duration::from_secs(3) {
                nudges += 1;
                self.sync_mesh(ctx.topology, &st, nudges % 2 == 0);
                last_add_peer = Instant::now();
                // A vote confirmed on a block that a competing block then replaced (Clique
                // forks of depth 1 happen between out-of-turn signers) can be undone after
                // its proposals were discarded: vote again.
                if revotes < 3
                    && h.nodes.iter().any(|n| {
                        n.problems.iter().any(|p| {
                            p.starts_with("clique signers are")
                                || p.starts_with("pending Clique proposal")
                        })
                    })
                {
                    revotes += 1;
                    self.reconcile_live(ctx)?;
                }
            }
            std::thread::sleep(2 * POLL);
        }
    }

    fn health(&self, topology: &Topology, state: &State) -> Health {
        let mut h = assess(topology, state);
        if topology.has_external_members() {
            votes::consortium_view(topology, state, &mut h);
        }
        h
    }

    fn pool(&self, topology: &Topology, state: &State) -> Vec<super::pending::PoolTx> {
        health::pool(topology, state)
    }

    fn cleanup(&self, state_dir: &StateDir) -> Result<(), ProviderError> {
        // Leftovers of interrupted creates: stop what their pid files name (after the
        // /proc check), then remove the node dirs, which only consort creates.
        let nodes = abs(&state_dir.nodes_dir());
        if let Ok(entries) = std::fs::read_dir(&nodes) {
            for e in entries.flatten() {
                let dir = abs(&e.path());
                stop_recorded(
                    &format!("node.{}", e.file_name().to_string_lossy()),
                    &dir,
                    None,
                )?;
            }
        }
        // A geth on a node dir that is already gone (nothing else names it any more).
        for (id, dir) in process::find_by_datadir(|d| d.starts_with(&nodes)) {
            process::stop(id, &dir, STOP_GRACE).map_err(|e| ProviderError::Other(e.to_string()))?;
        }
        let genesis_db = abs(&genesis_db_dir(state_dir));
        for dir in [nodes, genesis_db.with_extension("tmp"), genesis_db] {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ProviderError::Other(format!(
                        "cannot remove {}: {e}; remove it by hand",
                        dir.display()
                    )))
                }
            }
        }
        Ok(())
    }
}
