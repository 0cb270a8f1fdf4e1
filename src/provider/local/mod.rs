//! The local provider: real geth processes on 127.0.0.1.
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

pub mod lifecycle;
pub mod process;

use super::events::Event;
use super::governance::{self, SignerNode};
use super::{ApplyCtx, Health, NodeHealth, Proposal, Provider, ProviderError};
use crate::chain::geth::{ensure_geth, GethBinary};
use crate::crypto::Address;
use crate::plan::{mesh_digest, Action, Change, Kind, Resource};
use crate::render::{self, NodeLaunch, SignerLaunch};
use crate::rpc::{self, BlockId, RpcClient};
use crate::state::fsutil::{create_private_dir, write_atomic, write_secret};
use crate::state::{ResourceState, State, StateDir};
use crate::topology::{LocalConfig, NodeSpec, Role, Topology};
use process::{NodePorts, PortAllocator, ProcessId};
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
    pub rpc_url: String,
    pub enode: String,
    /// The StaticNodes in config.toml (enode URLs of every other node).
    #[serde(default)]
    pub static_nodes: Vec<String>,
    pub geth: String,
    pub geth_version: String,
    pub log: String,
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
    pub fn from_state(state: &State, node: &str) -> Option<NodeOutputs> {
        let r = state.resources.get(&format!("node.{node}"))?;
        serde_json::from_value(r.outputs.clone()).ok()
    }
}

/// Ports handed out during one command: every node of the topology gets its ports from
/// one table, so each config.toml can list the final p2p port of every peer even while
/// the peers are still being created.
struct PortTable {
    alloc: PortAllocator,
    assigned: BTreeMap<String, NodePorts>,
}

pub struct LocalProvider {
    pub config: LocalConfig,
    geth: Mutex<Option<Result<GethBinary, String>>>,
    ports: Mutex<Option<PortTable>>,
    /// Validators `miner_start` was sent to while tx nodes wait for block 1; its lock
    /// makes one waiting tx node the one that starts sealing (see `await_first_block`).
    sealing_started: Mutex<BTreeSet<String>>,
    /// Nodes up, by name (see `join_mesh`).
    up: Mutex<Option<BTreeMap<String, UpNode>>>,
    /// Serialises building the genesis-db template (see `init_datadir`).
    genesis_db: Mutex<()>,
}

impl LocalProvider {
    pub fn new(config: LocalConfig) -> LocalProvider {
        LocalProvider {
            config,
            geth: Mutex::new(None),
            ports: Mutex::new(None),
            up: Mutex::new(None),
            sealing_started: Mutex::new(BTreeSet::new()),
            genesis_db: Mutex::new(()),
        }
    }

    /// The geth binary for this command (found or built once).
    fn geth(&self, ctx: &ApplyCtx) -> Result<GethBinary, ProviderError> {
        let mut g = self.geth.lock().unwrap();
        if g.is_none() {
            // The outcome, failure included, is kept: a build that failed is not retried
            // by every node.
            *g = Some(
                ensure_geth(None, &ctx.topology.client.geth, &ctx.events)
                    .map_err(|e| e.to_string()),
            );
        }
        match g.as_ref().expect("just set") {
            Ok(b) => Ok(b.clone()),
            Err(e) => Err(ProviderError::Other(e.clone())),
        }
    }

    fn with_ports<T>(
        &self,
        ctx: &ApplyCtx,
        f: impl FnOnce(&mut PortTable) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut guard = self.ports.lock().unwrap();
        if guard.is_none() {
            let st = ctx.snapshot();
            let mut reserved: BTreeSet<u16> = sibling_ports(ctx.state_dir);
            let mut assigned = BTreeMap::new();
            for (name, out) in recorded_nodes(&st) {
                reserved.extend(out.ports.all());
                assigned.insert(name, out.ports);
            }
            *guard = Some(PortTable {
                alloc: PortAllocator::new(self.config.base_port, reserved),
                assigned,
            });
        }
        f(guard.as_mut().unwrap())
    }

    /// Ports of `node`: recorded, or already handed out this command, or new — allocating
    /// for every node of the topology that has none yet, in topology order.
    fn ports_of(&self, ctx: &ApplyCtx, node: &str) -> Result<NodePorts, ProviderError> {
        self.with_ports(ctx, |t| {
            for n in ctx.topology.nodes() {
                if !t.assigned.contains_key(&n.name) {
                    let p = t.alloc.node().map_err(|e| {
                        ProviderError::at(&format!("node.{}", n.name), e.to_string())
                    })?;
                    t.assigned.insert(n.name, p);
                }
            }
            t.assigned
                .get(node)
                .copied()
                .ok_or_else(|| ProviderError::at(&format!("node.{node}"), "is not in the topology"))
        })
    }

    /// New ports for `node` (its old ones were taken by something else).
    fn fresh_ports(&self, ctx: &ApplyCtx, node: &str) -> Result<NodePorts, ProviderError> {
        self.with_ports(ctx, |t| {
            let p = t
                .alloc
                .node()
                .map_err(|e| ProviderError::at(&format!("node.{node}"), e.to_string()))?;
            t.assigned.insert(node.to_string(), p);
            Ok(p)
        })
    }

    /// Runs `f` on the nodes known to be up (name → enode URL): those running when this
    /// command first asked, and those started since (`join_mesh`).
    fn nodes_up<T>(&self, ctx: &ApplyCtx, f: impl FnOnce(&mut BTreeMap<String, UpNode>) -> T) -> T {
        let mut guard = self.up.lock().unwrap();
        let up = guard.get_or_insert_with(|| {
            recorded_nodes(&ctx.snapshot())
                .into_iter()
                .filter(|(_, o)| o.is_running())
                .map(|(n, o)| {
                    let up = UpNode {
                        enode: o.enode,
                        rpc_url: o.rpc_url,
                    };
                    (n, up)
                })
                .collect()
        });
        f(up)
    }

    /// A freshly started node joins the mesh: it dials every node that came up after its
    /// config was written, then counts as up itself — atomically, so of two nodes
    /// starting together exactly one dials the other, and only once that one is up.
    ///
    /// Why not let every node dial the whole mesh from its config: two nodes starting
    /// together dial each other at the same moment, each keeps its own outgoing
    /// connection and drops the other's as a duplicate, both connections close, and geth
    /// redials neither for 35 s (its dial history). Seen once in ~15 applies of 7 nodes.
    fn join_mesh(
        &self,
        ctx: &ApplyCtx,
        node: &str,
        me: String,
        launch: &NodeLaunch,
        dialled: &[String],
    ) {
        let rpc = RpcClient::local(launch.http_port).with_timeout(PROBE_TIMEOUT);
        let me = UpNode {
            enode: me,
            rpc_url: format!("http://127.0.0.1:{}", launch.http_port),
        };
        self.nodes_up(ctx, |up| {
            for (name, peer) in up.iter() {
                if name != node && !dialled.contains(&peer.enode) {
                    let _ = rpc.admin_add_peer(&peer.enode);
                }
            }
            up.insert(node.to_string(), me);
        });
    }

    fn own_enode(ctx: &ApplyCtx, node: &str, launch: &NodeLaunch) -> String {
        let st = ctx.snapshot();
        let id = st
            .output_str(&format!("key.node.{node}"), "enode_id")
            .unwrap_or_default();
        render::enode_url(id, "127.0.0.1", launch.p2p_port)
    }

    /// Enode URLs of every other node of the topology whose key and ports are known.
    fn static_nodes(&self, ctx: &ApplyCtx, node: &str) -> Result<Vec<String>, ProviderError> {
        let st = ctx.snapshot();
        let mut out = Vec::new();
        for n in ctx.topology.nodes() {
            if n.name == node {
                continue;
            }
            let Some(id) = st.output_str(&format!("key.node.{}", n.name), "enode_id") else {
                continue;
            };
            let ports = self.ports_of(ctx, &n.name)?;
            out.push(render::enode_url(id, "127.0.0.1", ports.p2p));
        }
        Ok(out)
    }
}

/// A node that is up: where it listens for peers and answers RPC.
#[derive(Debug, Clone)]
struct UpNode {
    enode: String,
    rpc_url: String,
}

/// A node's peers at its start: whom it dials, and the whole mesh (trusted, and dialled
/// on later restarts).
struct Peers {
    dial: Vec<String>,
    mesh: Vec<String>,
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

/// Ports recorded by the other networks under the same `.consort/` directory, so two
/// networks never share a port even while one of them is stopped.
fn sibling_ports(sd: &StateDir) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let Some(base) = sd.root.parent() else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == sd.network || !e.path().is_dir() {
            continue;
        }
        if let Ok(Some(st)) = StateDir::new(base, &name).load() {
            for (_, o) in recorded_nodes(&st) {
                out.extend(o.ports.all());
            }
        }
    }
    out
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Where the genesis-initialised database that node data dirs are copied from lives.
fn genesis_db_dir(sd: &StateDir) -> PathBuf {
    sd.root.join("genesis-db")
}

/// The genesis.json a genesis-db was initialised with (inside it).
const GENESIS_DB_SOURCE: &str = "genesis.json";

/// Copies the directory tree `from` to `to` (created), skipping paths `skip` names.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let src = e.path();
        if skip(&src) {
            continue;
        }
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&src, &dst, skip)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
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

/// `{pid, start_time}` of the process last started in `datadir`.
fn read_pid_file(datadir: &Path) -> Option<ProcessId> {
    let text = std::fs::read(datadir.join(PID_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Stops whatever consort started in `datadir`: the recorded process, the one in its pid
/// file, and any other geth whose `--datadir` is exactly this dir (started by a run killed
/// before it wrote either). `process::stop` re-checks each against /proc first.
fn stop_recorded(
    addr: &str,
    datadir: &Path,
    recorded: Option<ProcessId>,
) -> Result<(), ProviderError> {
    let strays = process::find_by_datadir(|d| d == datadir)
        .into_iter()
        .map(|(id, _)| id);
    for id in recorded
        .into_iter()
        .chain(read_pid_file(datadir))
        .chain(strays)
    {
        process::stop(id, datadir, STOP_GRACE)
            .map_err(|e| ProviderError::at(addr, e.to_string()))?;
    }
    Ok(())
}

fn log_excerpt(datadir: &Path) -> String {
    let tail = process::log_tail(datadir, LOG_TAIL);
    format!(
        "last lines of {}:\n{}",
        datadir.join(process::LOG_FILE).display(),
        tail.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Whether the node can sign with its signer key (always true for tx nodes).
fn signer_ready(rpc: &RpcClient, launch: &NodeLaunch) -> bool {
    let Some(signer) = &launch.signer else {
        return true;
    };
    let Some(address) = rpc::parse_address(&signer.address) else {
        return false;
    };
    rpc.eth_sign(&address, "0x00").is_ok()
}

/// Why a started geth did not come up.
enum StartFailure {
    /// It exited; `port_clash` if its log says a port was taken.
    Exited {
        port_clash: bool,
    },
    Other(String),
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn desired(
        &self,
        topology: &Topology,
        _state: Option<&State>,
        _core: &[Resource],
    ) -> Result<Vec<Resource>, ProviderError> {
        let nodes = topology.nodes();
        let mesh = mesh_digest(nodes.iter().map(|n| n.name.as_str()));
        Ok(nodes
            .iter()
            .map(|n| {
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
                    attrs: json!({
                        "node": n.name,
                        "member": n.member,
                        "role": n.role.to_string(),
                        "geth": topology.client.geth,
                        "mesh": mesh,
                    }),
                    deps,
                    summary: format!(
                        "geth {} {} of {} on 127.0.0.1, peered with {} other node(s)",
                        topology.client.geth,
                        n.role,
                        n.member,
                        nodes.len() - 1
                    ),
                }
            })
            .collect())
    }

    fn refresh(&self, _topology: &Topology, state: &State) -> BTreeMap<String, String> {
        recorded_nodes(state)
            .into_iter()
            .filter(|(_, o)| !o.is_running())
            .map(|(name, _)| {
                (
                    format!("node.{name}"),
                    "restart (process not running)".to_string(),
                )
            })
            .collect()
    }

    fn refresh_by_default(&self) -> bool {
        true
    }

    fn stop_nodes(
        &self,
        state: &State,
        events: &super::events::EventSink,
    ) -> Result<Vec<String>, ProviderError> {
        lifecycle::stop_nodes(state, events)
    }

    fn parallelism(&self) -> usize {
        // Mostly waiting on geth start-up; scrypt work is spread over all of it too.
        16
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
    }

    fn after_apply(&self, ctx: &ApplyCtx) -> Result<(), ProviderError> {
        // Validators start without --mine; seal once each sees every running node, so no
        // two signers fork block 1 unseen by each other (then Clique's "signed recently"
        // rule deadlocks them). Past the wait, start the rest anyway: sealing beats halting.
        let deadline = Instant::now() + ctx.health_timeout.min(Duration::from_secs(30));
        let mut started = BTreeSet::new();
        self.sync_mesh(ctx.topology, &ctx.snapshot());
        loop {
            let st = ctx.snapshot();
            let h = assess(ctx.topology, &st);
            let waiting = start_sealing(&h, &st, &mut started, Instant::now() >= deadline);
            if waiting == 0 || Instant::now() >= deadline {
                return Ok(());
            }
            if ctx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_healthy(&self, ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        let deadline = Instant::now() + ctx.health_timeout;
        let st = ctx.snapshot();
        self.sync_mesh(ctx.topology, &st);
        let mut announced: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        let mut last_add_peer = Instant::now();
        let mut sealing = BTreeSet::new();
        let mut progress = (0u64, Instant::now());
        let mut repairs = 0;
        loop {
            let st = ctx.snapshot();
            let h = assess(ctx.topology, &st);
            start_sealing(&h, &st, &mut sealing, false);
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
                self.sync_mesh(ctx.topology, &st);
                last_add_peer = Instant::now();
            }
            std::thread::sleep(2 * POLL);
        }
    }

    fn health(&self, topology: &Topology, state: &State) -> Health {
        assess(topology, state)
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

impl LocalProvider {
    fn spec(ctx: &ApplyCtx, addr: &str, node: &str) -> Result<NodeSpec, ProviderError> {
        ctx.topology
            .nodes()
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| ProviderError::at(addr, format!("node {node} is not in the topology")))
    }

    /// The NodeLaunch for `spec` with `ports`.
    fn launch(
        ctx: &ApplyCtx,
        addr: &str,
        spec: &NodeSpec,
        datadir: &Path,
        ports: NodePorts,
        peers: Peers,
        geth: &GethBinary,
    ) -> Result<NodeLaunch, ProviderError> {
        let st = ctx.snapshot();
        let nodekey = st
            .output_str(&format!("key.node.{}", spec.name), "key_file")
            .ok_or_else(|| {
                ProviderError::at(
                    addr,
                    format!("key.node.{} is not in state; run apply again", spec.name),
                )
            })?;
        let signer = if spec.role == Role::Validator {
            let key_addr = format!("key.signer.{}", spec.name);
            let address = st.output_str(&key_addr, "address").ok_or_else(|| {
                ProviderError::at(addr, format!("{key_addr} is not in state; run apply again"))
            })?;
            Some(SignerLaunch {
                address: address.to_string(),
                keystore_dir: s(&datadir.join("keystore")),
                password_file: s(&datadir.join("password")),
                // Sealing starts once peered: see `start_sealing`.
                mine: false,
            })
        } else {
            None
        };
        let n = ctx.topology.nodes().len() as u32;
        Ok(NodeLaunch {
            network: ctx.topology.network.name.clone(),
            node_name: spec.name.clone(),
            geth_version: geth.version.clone(),
            chain_id: ctx.topology.network.chain_id,
            datadir: s(datadir),
            config_path: s(&datadir.join("config.toml")),
            nodekey_path: s(&abs(Path::new(nodekey))),
            listen_addr: "127.0.0.1".into(),
            p2p_port: ports.p2p,
            nat: "none".into(),
            http_addr: "127.0.0.1".into(),
            http_port: ports.http,
            authrpc_port: ports.authrpc,
            cache_mb: 64,
            verbosity: 3,
            // Exactly the mesh: geth starts its first sync once min(5, MaxPeers) peers
            // are connected, so a larger value would leave non-sealing nodes of small
            // networks discarding blocks until its 10 s forced sync. Mesh peers are
            // trusted, so they are never refused for exceeding it.
            max_peers: n.saturating_sub(1).max(1),
            static_nodes: peers.dial,
            trusted_nodes: peers.mesh,
            signer,
        })
    }

    fn write_config(addr: &str, launch: &NodeLaunch) -> Result<(), ProviderError> {
        let toml =
            render::geth_config_toml(launch).map_err(|e| ProviderError::at(addr, e.to_string()))?;
        let path = Path::new(&launch.config_path);
        write_atomic(path, toml.as_bytes(), 0o644)
            .map_err(|e| ProviderError::at(addr, format!("cannot write {}: {e}", path.display())))
    }

    /// Copies the signer keystore and password into the node's dir (0600).
    fn install_signer(
        ctx: &ApplyCtx,
        addr: &str,
        node: &str,
        datadir: &Path,
    ) -> Result<(), ProviderError> {
        let st = ctx.snapshot();
        let key_addr = format!("key.signer.{node}");
        let get = |k: &str| {
            st.output_str(&key_addr, k)
                .map(PathBuf::from)
                .ok_or_else(|| {
                    ProviderError::at(
                        addr,
                        format!("{key_addr} has no {k} in state; run apply again"),
                    )
                })
        };
        let keystore = get("keystore")?;
        let password = get("password_file")?;
        let ks_dir = datadir.join("keystore");
        create_private_dir(&ks_dir).map_err(|e| {
            ProviderError::at(addr, format!("cannot create {}: {e}", ks_dir.display()))
        })?;
        for (from, to) in [
            (
                keystore.clone(),
                ks_dir.join(keystore.file_name().unwrap_or_default()),
            ),
            (password, datadir.join("password")),
        ] {
            let bytes = std::fs::read(&from).map_err(|e| {
                ProviderError::at(
                    addr,
                    format!(
                        "cannot read {}: {e}; run apply again to regenerate {key_addr}",
                        from.display()
                    ),
                )
            })?;
            write_secret(&to, &bytes).map_err(|e| {
                ProviderError::at(addr, format!("cannot write {}: {e}", to.display()))
            })?;
        }
        Ok(())
    }

    /// `geth init` of a node's data dir with the network's genesis: run once per genesis
    /// into `.consort/<net>/genesis-db/` and copied from there, because every init costs a
    /// geth start-up's worth of CPU (~0.2 s) and a network's nodes all start from the same
    /// database. The template is rebuilt whenever genesis.json differs from the one it was
    /// made from; destroy removes it.
    fn init_datadir(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        geth: &GethBinary,
        datadir: &Path,
        genesis: &Path,
    ) -> Result<(), ProviderError> {
        let template = {
            let _one_at_a_time = self.genesis_db.lock().unwrap();
            let root = abs(&genesis_db_dir(ctx.state_dir));
            let wanted = std::fs::read(genesis).map_err(|e| {
                ProviderError::at(addr, format!("cannot read {}: {e}", genesis.display()))
            })?;
            let made_from = std::fs::read(root.join(GENESIS_DB_SOURCE)).ok();
            if made_from.as_deref() != Some(wanted.as_slice()) {
                // One apply at a time holds the state lock, so one fixed scratch name.
                let tmp = root.with_extension("tmp");
                let fail = |what: &str, p: &Path, e: std::io::Error| {
                    ProviderError::at(addr, format!("cannot {what} {}: {e}", p.display()))
                };
                for d in [&root, &tmp] {
                    match std::fs::remove_dir_all(d) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(fail("clear", d, e))
                        }
                        _ => {}
                    }
                }
                create_private_dir(&tmp).map_err(|e| fail("create", &tmp, e))?;
                Self::geth_init(addr, geth, &tmp, genesis)?;
                // Written last: a template is only ever used once it is complete.
                write_atomic(&tmp.join(GENESIS_DB_SOURCE), &wanted, 0o644)
                    .map_err(|e| fail("write", &tmp, e))?;
                std::fs::rename(&tmp, &root).map_err(|e| fail("rename", &tmp, e))?;
            }
            root
        };
        // Only the chain database: the template's keystore/ is empty and its geth/nodekey
        // unused (nodes get theirs with --nodekey).
        copy_tree(&template.join("geth"), &datadir.join("geth"), &|p| {
            p.file_name().is_some_and(|n| n == "nodekey")
        })
        .map_err(|e| {
            ProviderError::at(
                addr,
                format!(
                    "cannot copy the initialised chain database from {} into {}: {e}",
                    template.display(),
                    datadir.display()
                ),
            )
        })
    }

    /// Returns once a validator has sealed block 1 (at once on a running chain), starting
    /// the validators' sealing itself when they are all up and peered; gives up when a
    /// change failed, on Ctrl-C or after 30 s (the node then starts anyway).
    ///
    /// Why tx nodes of a new network wait for it: geth accepts propagated blocks only once it
    /// counts itself synced, which a node that does not seal becomes only through a sync from
    /// a peer that is ahead — noticed at the peer handshake, or when a propagated block's
    /// *parent* is ahead. Started with the validators, a tx node meets them at block 0 and
    /// stays there until block 2 arrives, one Clique period after block 1. Started after
    /// block 1, it syncs at its first handshake.
    fn await_first_block(&self, ctx: &ApplyCtx) {
        use std::sync::atomic::Ordering::SeqCst;
        let validators: Vec<String> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.role == Role::Validator)
            .map(|n| n.name)
            .collect();
        let deadline = Instant::now() + ctx.health_timeout.min(Duration::from_secs(30));
        loop {
            let st = ctx.snapshot();
            let recorded: BTreeMap<String, NodeOutputs> = recorded_nodes(&st).into_iter().collect();
            let running: Vec<&NodeOutputs> = validators
                .iter()
                .filter_map(|v| recorded.get(v))
                .filter(|o| o.is_running())
                .collect();
            let sealed = running.iter().any(|o| {
                RpcClient::new(o.rpc_url.clone())
                    .with_timeout(PROBE_TIMEOUT)
                    .block_number()
                    .is_ok_and(|b| b >= 1)
            });
            if sealed || ctx.failed.load(SeqCst) || ctx.interrupted.load(SeqCst) {
                return;
            }
            // One waiting tx node drives sealing; the others only watch for block 1.
            if running.len() == validators.len() {
                if let Ok(mut started) = self.sealing_started.try_lock() {
                    let h = assess(ctx.topology, &st);
                    start_sealing(&h, &st, &mut started, false);
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(POLL);
        }
    }

    fn geth_init(
        addr: &str,
        geth: &GethBinary,
        datadir: &Path,
        genesis: &Path,
    ) -> Result<(), ProviderError> {
        let out = std::process::Command::new(&geth.path)
            .arg("init")
            .arg("--datadir")
            .arg(datadir)
            .arg(genesis)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                ProviderError::at(
                    addr,
                    format!("cannot run {} init: {e}", geth.path.display()),
                )
            })?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = text.lines().rev().take(LOG_TAIL).collect();
            return Err(ProviderError::at(
                addr,
                format!(
                    "`geth init` of {} with {} failed ({}):\n{}",
                    datadir.display(),
                    genesis.display(),
                    out.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            ));
        }
        Ok(())
    }

    /// Starts geth and waits until it answers RPC with the right chain id.
    fn start_and_wait(
        geth: &GethBinary,
        launch: &NodeLaunch,
    ) -> Result<ProcessId, (StartFailure, Option<ProcessId>)> {
        let datadir = Path::new(&launch.datadir);
        let args =
            render::geth_args(launch).map_err(|e| (StartFailure::Other(e.to_string()), None))?;
        let id = match process::start(&geth.path, &args, datadir) {
            Ok(id) => id,
            Err(process::ProcessError::ExitedEarly { .. }) => {
                let clash = process::log_tail(datadir, LOG_TAIL).contains("address already in use");
                return Err((StartFailure::Exited { port_clash: clash }, None));
            }
            Err(e) => return Err((StartFailure::Other(e.to_string()), None)),
        };
        // Before anything else: a consort killed from here on still finds this process.
        let pid_json = serde_json::to_vec(&id).expect("pid serialises");
        if let Err(e) = write_atomic(&datadir.join(PID_FILE), &pid_json, 0o644) {
            let _ = process::stop(id, datadir, STOP_GRACE);
            return Err((
                StartFailure::Other(format!(
                    "cannot write {}: {e}",
                    datadir.join(PID_FILE).display()
                )),
                None,
            ));
        }
        let rpc = RpcClient::local(launch.http_port).with_timeout(PROBE_TIMEOUT);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !process::is_ours(id, datadir) {
                process::reap(id.pid);
                let clash = process::log_tail(datadir, LOG_TAIL).contains("address already in use");
                return Err((StartFailure::Exited { port_clash: clash }, Some(id)));
            }
            match rpc.chain_id() {
                // A validator is ready once its signer is unlocked too: geth answers RPC
                // before `--unlock` is done, and a seal attempted in between fails and is
                // not retried until the next block arrives (which may never come).
                Ok(c) if c == launch.chain_id && signer_ready(&rpc, launch) => return Ok(id),
                Ok(c) if c == launch.chain_id => {}
                Ok(c) => {
                    return Err((
                        StartFailure::Other(format!(
                            "answers on port {} with chain id {c}, not {}: another process holds that port",
                            launch.http_port, launch.chain_id
                        )),
                        Some(id),
                    ))
                }
                Err(_) if Instant::now() < deadline => {}
                Err(e) => {
                    return Err((
                        StartFailure::Other(format!("did not answer RPC within {START_TIMEOUT:?}: {e}")),
                        Some(id),
                    ))
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node, choosing new ports (up to 3 times) if its ports turn out taken.
    /// Returns the process, the ports it runs on and the static nodes in its config.
    fn launch_with_retries(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        spec: &NodeSpec,
        datadir: &Path,
        geth: &GethBinary,
        mut ports: NodePorts,
    ) -> Result<(ProcessId, NodePorts, Vec<String>), ProviderError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mesh = self.static_nodes(ctx, &spec.name)?;
            let up: Vec<UpNode> = self.nodes_up(ctx, |up| {
                up.iter()
                    .filter(|(n, _)| **n != spec.name)
                    .map(|(_, u)| u.clone())
                    .collect()
            });
            let dial: Vec<String> = up.iter().map(|u| u.enode.clone()).collect();
            let peers = Peers {
                dial: dial.clone(),
                mesh: mesh.clone(),
            };
            let mut launch = Self::launch(ctx, addr, spec, datadir, ports, peers, geth)?;
            // The nodes it is about to dial let it in even when their MaxPeers (the mesh
            // size when they started) is reached: a member joining a running network.
            let me = Self::own_enode(ctx, &spec.name, &launch);
            std::thread::scope(|scope| {
                for u in &up {
                    let me = &me;
                    scope.spawn(move || {
                        let rpc = RpcClient::new(u.rpc_url.clone()).with_timeout(PROBE_TIMEOUT);
                        let _ = rpc.admin_add_trusted_peer(me);
                    });
                }
            });
            Self::write_config(addr, &launch)?;
            step(ctx, &spec.name, "start");
            match Self::start_and_wait(geth, &launch) {
                Ok(id) => {
                    self.join_mesh(ctx, &spec.name, me.clone(), &launch, &dial);
                    // From now on (restarts) it dials the whole mesh.
                    launch.static_nodes = mesh.clone();
                    Self::write_config(addr, &launch)?;
                    return Ok((id, ports, mesh));
                }
                Err((StartFailure::Exited { port_clash: true }, _)) if attempt < 3 => {
                    let old = ports;
                    ports = self.fresh_ports(ctx, &spec.name)?;
                    ctx.emit(Event::Warning {
                        message: format!(
                            "{addr}: a port of {:?} was taken by another process; retrying on {:?}",
                            old.all(),
                            ports.all()
                        ),
                    });
                }
                Err((why, id)) => {
                    if let Some(id) = id {
                        let _ = process::stop(id, datadir, STOP_GRACE);
                    }
                    let msg = match why {
                        StartFailure::Exited { port_clash: true } => format!(
                            "geth exited: its ports {:?} are taken by another process; set `provider.local.base_port` to a free range",
                            ports.all()
                        ),
                        StartFailure::Exited { port_clash: false } => "geth exited right after starting".into(),
                        StartFailure::Other(m) => m,
                    };
                    return Err(ProviderError::at(
                        addr,
                        format!("{msg}\n{}", log_excerpt(datadir)),
                    ));
                }
            }
        }
    }

    fn outputs(
        datadir: &Path,
        id: ProcessId,
        ports: NodePorts,
        enode_id: &str,
        statics: Vec<String>,
        geth: &GethBinary,
    ) -> NodeOutputs {
        NodeOutputs {
            datadir: s(datadir),
            pid: id.pid,
            start_time: id.start_time,
            ports,
            rpc_url: format!("http://127.0.0.1:{}", ports.http),
            enode: render::enode_url(enode_id, "127.0.0.1", ports.p2p),
            static_nodes: statics,
            geth: s(&geth.path),
            geth_version: geth.version.clone(),
            log: s(&datadir.join(process::LOG_FILE)),
        }
    }

    fn record_genesis_hash(ctx: &ApplyCtx, ports: NodePorts) {
        let needs = ctx
            .state
            .lock()
            .unwrap()
            .genesis
            .as_ref()
            .is_some_and(|g| g.hash.is_empty());
        if !needs {
            return;
        }
        if let Ok(h) = RpcClient::local(ports.http)
            .with_timeout(PROBE_TIMEOUT)
            .genesis_hash()
        {
            if let Some(g) = ctx.state.lock().unwrap().genesis.as_mut() {
                if g.hash.is_empty() {
                    g.hash = h;
                }
            }
        }
    }

    fn create_node(&self, ctx: &ApplyCtx, change: &Change) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let name = node_name(change);
        let spec = Self::spec(ctx, addr, &name)?;
        let geth = self.geth(ctx)?;
        let datadir = node_dir(ctx.state_dir, &name);
        // Leftovers of an interrupted run: stop its process (if still ours), start afresh.
        stop_recorded(addr, &datadir, None)?;
        if datadir.exists() {
            std::fs::remove_dir_all(&datadir).map_err(|e| {
                ProviderError::at(addr, format!("cannot clear {}: {e}", datadir.display()))
            })?;
        }
        create_private_dir(&datadir).map_err(|e| {
            ProviderError::at(addr, format!("cannot create {}: {e}", datadir.display()))
        })?;
        if spec.role == Role::Validator {
            Self::install_signer(ctx, addr, &name, &datadir)?;
        }
        let genesis = abs(&ctx.state_dir.root.join("genesis.json"));
        step(ctx, &name, "init");
        self.init_datadir(ctx, addr, &geth, &datadir, &genesis)?;
        if spec.role == Role::Tx {
            self.await_first_block(ctx);
        }
        let ports = self.ports_of(ctx, &name)?;
        let (id, ports, statics) =
            self.launch_with_retries(ctx, addr, &spec, &datadir, &geth, ports)?;
        Self::record_genesis_hash(ctx, ports);
        let enode_id = ctx
            .snapshot()
            .output_str(&format!("key.node.{name}"), "enode_id")
            .unwrap_or_default()
            .to_string();
        let out = Self::outputs(&datadir, id, ports, &enode_id, statics, &geth);
        Ok(ResourceState {
            kind: Kind::LocalNode,
            attrs: change.after.clone().unwrap_or(json!({})),
            outputs: serde_json::to_value(out).expect("outputs serialise"),
            deps: change.deps.clone(),
        })
    }

    /// Peers changed → rewrite config.toml and add/remove peers live (no restart);
    /// process dead → start it again (same ports if still free).
    fn update_node(&self, ctx: &ApplyCtx, change: &Change) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let name = node_name(change);
        let spec = Self::spec(ctx, addr, &name)?;
        let st = ctx.snapshot();
        let Some(cur) = NodeOutputs::from_state(&st, &name) else {
            // Nothing usable recorded: make it from scratch.
            return self.create_node(ctx, change);
        };
        let datadir = PathBuf::from(&cur.datadir);
        let enode_id = st
            .output_str(&format!("key.node.{name}"), "enode_id")
            .unwrap_or_default()
            .to_string();
        let mut out = if cur.is_running() {
            let statics = self.static_nodes(ctx, &name)?;
            let geth = GethBinary {
                path: PathBuf::from(&cur.geth),
                version: cur.geth_version.clone(),
            };
            let peers = Peers {
                dial: statics.clone(),
                mesh: statics.clone(),
            };
            let launch = Self::launch(ctx, addr, &spec, &datadir, cur.ports, peers, &geth)?;
            Self::write_config(addr, &launch)?;
            let rpc = RpcClient::new(cur.rpc_url.clone()).with_timeout(PROBE_TIMEOUT);
            let old: BTreeSet<&String> = cur.static_nodes.iter().collect();
            let new: BTreeSet<&String> = statics.iter().collect();
            let e = |err: rpc::RpcError| ProviderError::at(addr, err.to_string());
            for gone in old.difference(&new) {
                rpc.admin_remove_trusted_peer(gone).map_err(e)?;
                rpc.admin_remove_peer(gone).map_err(e)?;
            }
            for added in new.difference(&old) {
                // Trusted, or it would be refused past MaxPeers (the old mesh size). Not
                // dialled from here: the new node dials us (see `join_mesh`).
                rpc.admin_add_trusted_peer(added).map_err(e)?;
            }
            NodeOutputs {
                static_nodes: statics,
                ..cur.clone()
            }
        } else {
            let geth = self.geth(ctx)?;
            // Ours or not, nothing of this pid is signalled unless /proc proves it is.
            stop_recorded(addr, &datadir, Some(cur.process()))?;
            if !datadir.join("geth").is_dir() {
                return self.create_node(ctx, change);
            }
            if spec.role == Role::Validator {
                Self::install_signer(ctx, addr, &name, &datadir)?;
            }
            let mut ports = cur.ports;
            if !process::ports_free(ports) {
                let old = ports;
                ports = self.fresh_ports(ctx, &name)?;
                ctx.emit(Event::Warning {
                    message: format!(
                        "{addr}: its ports {:?} are now used by another process; restarting on {:?}",
                        old.all(),
                        ports.all()
                    ),
                });
            }
            let (id, ports, statics) =
                self.launch_with_retries(ctx, addr, &spec, &datadir, &geth, ports)?;
            Self::outputs(&datadir, id, ports, &enode_id, statics, &geth)
        };
        out.enode = render::enode_url(&enode_id, "127.0.0.1", out.ports.p2p);
        Ok(ResourceState {
            kind: Kind::LocalNode,
            attrs: change.after.clone().unwrap_or(json!({})),
            outputs: serde_json::to_value(out).expect("outputs serialise"),
            deps: change.deps.clone(),
        })
    }

    fn destroy_node(&self, ctx: &ApplyCtx, change: &Change) -> Result<(), ProviderError> {
        let addr = change.addr.as_str();
        let name = node_name(change);
        let st = ctx.snapshot();
        let cur = NodeOutputs::from_state(&st, &name);
        let datadir = cur
            .as_ref()
            .map(|o| PathBuf::from(&o.datadir))
            .unwrap_or_else(|| node_dir(ctx.state_dir, &name));
        self.nodes_up(ctx, |up| up.remove(&name));
        stop_recorded(addr, &datadir, cur.as_ref().map(NodeOutputs::process))?;
        match std::fs::remove_dir_all(&datadir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ProviderError::at(
                    addr,
                    format!(
                        "cannot remove {}: {e}; remove it by hand",
                        datadir.display()
                    ),
                ))
            }
        }
        if cur.is_some() {
            self.with_ports(ctx, |t| {
                t.assigned.remove(&name);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Validators that started sealing at the same moment can each end up on their own
    /// block 1: geth drops blocks propagated before a node counts itself synced (mining
    /// start), and a propagated block does not tell the receiver its weight, so nobody
    /// learns of the heavier fork and every signer has "signed recently" on its own. Only
    /// a new handshake (which carries the total difficulty) lets a node sync to the
    /// heaviest fork, so restart each validator whose head is not the heaviest block.
    /// Returns the restarted nodes. (Sealing starts only once peered, which makes this
    /// rare: a validator whose `miner_start` comes a few ms after the in-turn signer
    /// sealed still drops that block.)
    fn repair_forks(&self, ctx: &ApplyCtx) -> Result<Vec<String>, ProviderError> {
        let st = ctx.snapshot();
        let heads: Vec<(NodeSpec, NodeOutputs, rpc::Block)> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.role == Role::Validator)
            .filter_map(|n| {
                let o = NodeOutputs::from_state(&st, &n.name)?;
                if !o.is_running() {
                    return None;
                }
                let b = RpcClient::new(o.rpc_url.clone())
                    .with_timeout(PROBE_TIMEOUT)
                    .block_by_number(BlockId::Latest)
                    .ok()??;
                Some((n, o, b))
            })
            .collect();
        let Some(best) = heads
            .iter()
            .map(|(_, _, b)| b)
            .max_by_key(|b| (b.total_difficulty, b.number))
            .cloned()
        else {
            return Ok(vec![]);
        };
        let behind: Vec<_> = heads
            .into_iter()
            .filter(|(_, _, b)| b.hash != best.hash && b.total_difficulty < best.total_difficulty)
            .collect();
        let mut restarted = Vec::new();
        for (spec, o, b) in behind {
            let addr = format!("node.{}", spec.name);
            ctx.emit(Event::Warning {
                message: format!(
                    "{addr}: stuck on a competing block {} while the heaviest chain is at block {} (a geth start-up race between signers); restarting it so it syncs to that chain",
                    b.number, best.number
                ),
            });
            let datadir = PathBuf::from(&o.datadir);
            process::stop(o.process(), &datadir, STOP_GRACE)
                .map_err(|e| ProviderError::at(&addr, e.to_string()))?;
            let geth = GethBinary {
                path: PathBuf::from(&o.geth),
                version: o.geth_version.clone(),
            };
            let (id, ports, statics) =
                self.launch_with_retries(ctx, &addr, &spec, &datadir, &geth, o.ports)?;
            let enode_id = st
                .output_str(&format!("key.node.{}", spec.name), "enode_id")
                .unwrap_or_default()
                .to_string();
            let out = Self::outputs(&datadir, id, ports, &enode_id, statics, &geth);
            let mut guard = ctx.state.lock().unwrap();
            if let Some(r) = guard.resources.get_mut(&addr) {
                r.outputs = serde_json::to_value(out).expect("outputs serialise");
            }
            ctx.state_dir.save(&mut guard)?;
            restarted.push(spec.name);
        }
        Ok(restarted)
    }

    /// Periodic repair: every running node's config lists all others and has them as
    /// peers (admin_addPeer for missing ones; geth retries failed static dials late).
    fn sync_mesh(&self, topology: &Topology, st: &State) {
        let nodes = recorded_nodes(st);
        let enodes: BTreeMap<&str, &str> = nodes
            .iter()
            .map(|(n, o)| (n.as_str(), o.enode.as_str()))
            .collect();
        std::thread::scope(|scope| {
            for (name, o) in &nodes {
                if !o.is_running() || topology.nodes().iter().all(|n| &n.name != name) {
                    continue;
                }
                let enodes = &enodes;
                scope.spawn(move || {
                    let rpc = RpcClient::new(o.rpc_url.clone()).with_timeout(PROBE_TIMEOUT);
                    let Ok(peers) = rpc.admin_peers() else { return };
                    let have: BTreeSet<&str> = peers.iter().filter_map(|p| p.pubkey()).collect();
                    for (peer, enode) in enodes {
                        // One side of a pair dials: two dialling each other at once can
                        // drop both connections (see `join_mesh`).
                        if *peer >= name.as_str() {
                            continue;
                        }
                        if let Some(k) = rpc::enode_pubkey(enode) {
                            if !have.contains(k) {
                                let _ = rpc.admin_add_peer(enode);
                            }
                        }
                    }
                });
            }
        });
    }

    fn apply_signer(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let addr = change.addr.as_str();
        let attrs = change
            .after
            .as_ref()
            .or(change.before.as_ref())
            .cloned()
            .unwrap_or(json!({}));
        let node = attrs
            .get("node")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let in_genesis = attrs
            .get("genesis")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let st = ctx.snapshot();
        let signer_addr = st
            .output_str(&format!("key.signer.{node}"), "address")
            .map(str::to_string)
            .or_else(|| {
                st.resources
                    .get(addr)
                    .and_then(|r| r.outputs.get("address"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let record = |outputs: Value| ResourceState {
            kind: Kind::Signer,
            attrs: change.after.clone().unwrap_or(json!({})),
            outputs,
            deps: change.deps.clone(),
        };
        match change.action {
            Action::Update => Ok(st.resources.get(addr).cloned()),
            Action::Create | Action::Replace if in_genesis => {
                // Authorised by genesis: nothing to do but record it.
                Ok(Some(record(
                    json!({ "address": signer_addr, "via": "genesis" }),
                )))
            }
            Action::Create | Action::Replace => {
                let a = signer_addr.ok_or_else(|| {
                    ProviderError::at(addr, format!("key.signer.{node} has no address in state"))
                })?;
                self.vote(ctx, addr, &node, &a, true)?;
                Ok(Some(record(json!({ "address": a, "via": "vote" }))))
            }
            Action::Destroy => {
                // A validator removed from the topology is voted out by the others. One
                // still in it is going away with the whole network (`destroy`): no vote.
                let removed = ctx.topology.nodes().iter().all(|n| n.name != node);
                if let (true, Some(a)) = (removed, signer_addr) {
                    self.vote(ctx, addr, &node, &a, false)?;
                }
                Ok(None)
            }
        }
    }

    /// A Clique vote through `governance::vote`: every running validator that is a current
    /// signer proposes (the target too, when voting itself out), a majority is required,
    /// then it waits until `clique_getSigners` reflects it and discards the proposals.
    fn vote(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        node: &str,
        address: &str,
        authorize: bool,
    ) -> Result<(), ProviderError> {
        let target = rpc::parse_address(address)
            .ok_or_else(|| ProviderError::at(addr, format!("{address:?} is not an address")))?;
        let st = ctx.snapshot();
        let candidates: Vec<SignerNode> = recorded_nodes(&st)
            .into_iter()
            .filter(|(_, o)| o.is_running())
            .filter_map(|(n, o)| {
                let a = st.output_str(&format!("key.signer.{n}"), "address")?;
                Some(SignerNode {
                    address: rpc::parse_address(a)?,
                    rpc: RpcClient::new(o.rpc_url),
                    name: n,
                })
            })
            .collect();
        if candidates.is_empty() {
            return Err(ProviderError::at(
                addr,
                "no running signer can vote; bring the validators back (`consort apply`) first",
            ));
        }
        step(ctx, node, if authorize { "vote in" } else { "vote out" });
        governance::vote(
            &candidates,
            target,
            authorize,
            ctx.health_timeout,
            node,
            &ctx.events,
        )
        .map(|_| ())
        .map_err(|e| ProviderError::at(addr, e.to_string()))
    }

    /// Funds an account added after genesis with a transfer signed by the funding account.
    fn apply_funding(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let addr = change.addr.as_str();
        let st = ctx.snapshot();
        match change.action {
            // A transfer cannot be undone; forgetting it is all a destroy can do.
            Action::Destroy => return Ok(None),
            Action::Update => return Ok(st.resources.get(addr).cloned()),
            Action::Create | Action::Replace => {}
        }
        let attrs = change.after.clone().unwrap_or(json!({}));
        let governance::Funding {
            member,
            name,
            funder: from,
            funder_member: fm,
            key,
            to,
            amount,
        } = governance::funding_parties(change, &st).map_err(|m| ProviderError::at(addr, m))?;
        // Any running node of the network will do; prefer the funding member's own: they
        // were running before this change, so they are synced (a node that just started
        // may not be, and would give a stale nonce and balance).
        let funder_nodes: BTreeSet<String> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.member == fm)
            .map(|n| n.name)
            .collect();
        let nodes = recorded_nodes(&st);
        let (_, node) = nodes
            .iter()
            .filter(|(_, o)| o.is_running())
            .min_by_key(|(n, _)| !funder_nodes.contains(n))
            .ok_or_else(|| {
                ProviderError::at(addr, "no running node to send the transfer through")
            })?;
        let rpc = RpcClient::new(node.rpc_url.clone());
        let from_addr = key.address();
        let hash = governance::fund(
            &rpc,
            ctx.topology.network.chain_id,
            &from,
            &key,
            &format!("{member}/{name}"),
            to,
            amount,
            ctx.health_timeout,
        )
        .map_err(|e| ProviderError::at(addr, e.to_string()))?;
        Ok(Some(ResourceState {
            kind: Kind::Funding,
            attrs,
            // tx_hash is null when an earlier, interrupted run's transfer had already landed.
            outputs: json!({ "tx_hash": hash, "from": rpc::hex_address(&from_addr) }),
            deps: change.deps.clone(),
        }))
    }
}

/// Starts sealing (`miner_start`) on the running validators not yet in `started`, all at
/// once and only when every one of them is ready: its signer account unlocked and peered
/// with every other running node (with `force`: the ready ones, whatever the others do).
/// Idempotent in geth. Returns how many running validators still wait.
///
/// Why all at once: geth drops propagated blocks until it counts itself synced, which a
/// node without `--mine` does only when mining starts. A validator started seconds after
/// the others drops their block 1, seals its own, and the signers fork; each then has
/// "signed recently" on its own fork and the chain never moves. Why the unlock check:
/// geth unlocks `--unlock` accounts a moment after its RPC is up, a seal tried before that
/// fails, and geth's Clique worker does not retry without new transactions.
fn start_sealing(h: &Health, st: &State, started: &mut BTreeSet<String>, force: bool) -> usize {
    let running = h.nodes.iter().filter(|n| n.running).count() as u32;
    let pending: Vec<&NodeHealth> = h
        .nodes
        .iter()
        .filter(|n| n.running && n.role == "validator" && !started.contains(&n.name))
        .collect();
    let ready: Vec<(&NodeHealth, RpcClient)> = pending
        .iter()
        .filter(|n| n.peers + 1 >= running)
        .filter_map(|n| {
            let address = st.output_str(&format!("key.signer.{}", n.name), "address")?;
            let rpc = RpcClient::new(n.rpc_url.clone()).with_timeout(PROBE_TIMEOUT);
            let unlocked = rpc.call_raw("eth_sign", json!([address, "0x00"])).is_ok();
            unlocked.then_some((*n, rpc))
        })
        .collect();
    if ready.is_empty() || (ready.len() < pending.len() && !force) {
        return pending.len();
    }
    let ok: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = ready
            .iter()
            .map(|(n, rpc)| {
                scope.spawn(move || {
                    rpc.call_raw("miner_start", json!([]))
                        .ok()
                        .map(|_| n.name.clone())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    });
    let n = ok.len();
    started.extend(ok);
    pending.len() - n
}

/// What one probe of a node saw.
#[derive(Debug, Default, Clone)]
struct Probe {
    running: bool,
    rpc_error: Option<String>,
    block: u64,
    block_time: u64,
    genesis: Option<String>,
    peers: BTreeSet<String>,
    signers: Option<BTreeSet<Address>>,
    proposals: Vec<rpc::CliqueProposal>,
}

fn probe(o: &NodeOutputs, validator: bool) -> Probe {
    let mut p = Probe {
        running: o.is_running(),
        ..Default::default()
    };
    if !p.running {
        return p;
    }
    let rpc = RpcClient::new(o.rpc_url.clone()).with_timeout(PROBE_TIMEOUT);
    let r = (|| -> Result<(), rpc::RpcError> {
        if let Some(b) = rpc.block_by_number(BlockId::Latest)? {
            p.block = b.number;
            p.block_time = b.timestamp;
        }
        p.genesis = Some(rpc.genesis_hash()?);
        p.peers = rpc
            .admin_peers()?
            .iter()
            .filter_map(|x| x.pubkey().map(str::to_string))
            .collect();
        p.signers = Some(rpc.clique_get_signers()?.into_iter().collect());
        if validator {
            p.proposals = rpc.clique_proposals()?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        p.rpc_error = Some(e.to_string());
    }
    p
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Health of the network as state and the live nodes say.
fn assess(topology: &Topology, st: &State) -> Health {
    let specs = topology.nodes();
    let outs: BTreeMap<String, NodeOutputs> = recorded_nodes(st).into_iter().collect();
    let probes: BTreeMap<String, Probe> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .filter_map(|n| {
                let o = outs.get(&n.name)?;
                let v = n.role == Role::Validator;
                Some((n.name.clone(), scope.spawn(move || probe(o, v))))
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| (n, h.join().unwrap_or_default()))
            .collect()
    });

    // One chain: every answering node has the same block at the lowest height any of
    // them is at (a start-up fork keeps equal heights but different hashes).
    let common = probes
        .values()
        .filter(|p| p.running && p.rpc_error.is_none())
        .map(|p| p.block)
        .min();
    let hashes_at_common: BTreeMap<String, String> = match common {
        Some(h) if h > 0 => std::thread::scope(|scope| {
            let handles: Vec<_> = probes
                .iter()
                .filter(|(_, p)| p.running && p.rpc_error.is_none())
                .filter_map(|(n, _)| {
                    let o = outs.get(n)?;
                    Some((
                        n.clone(),
                        scope.spawn(move || {
                            RpcClient::new(o.rpc_url.clone())
                                .with_timeout(PROBE_TIMEOUT)
                                .block_by_number(BlockId::Number(h))
                                .ok()
                                .flatten()
                                .map(|b| b.hash)
                        }),
                    ))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|(n, j)| Some((n, j.join().ok()??)))
                .collect()
        }),
        _ => BTreeMap::new(),
    };
    let mut hash_votes: BTreeMap<&str, usize> = BTreeMap::new();
    for h in hashes_at_common.values() {
        *hash_votes.entry(h.as_str()).or_default() += 1;
    }
    let forked = hash_votes.len() > 1;

    // What the network should look like.
    let enode_ids: BTreeMap<&str, &str> = specs
        .iter()
        .filter_map(|n| {
            Some((
                n.name.as_str(),
                st.output_str(&format!("key.node.{}", n.name), "enode_id")?,
            ))
        })
        .collect();
    let validators: Vec<&NodeSpec> = specs.iter().filter(|n| n.role == Role::Validator).collect();
    let any_signer_record = st.resources.keys().any(|k| k.starts_with("signer."));
    let expected_signers: BTreeSet<Address> = validators
        .iter()
        .filter(|n| !any_signer_record || st.resources.contains_key(&format!("signer.{}", n.name)))
        .filter_map(|n| st.output_str(&format!("key.signer.{}", n.name), "address"))
        .filter_map(rpc::parse_address)
        .collect();
    let genesis = st
        .genesis
        .as_ref()
        .map(|g| g.hash.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            // Not recorded yet: the most common answer.
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for p in probes.values() {
                if let Some(g) = &p.genesis {
                    *count.entry(g.as_str()).or_default() += 1;
                }
            }
            count
                .into_iter()
                .max_by_key(|(_, c)| *c)
                .map(|(g, _)| g.to_string())
        });
    let head = probes.values().map(|p| p.block).max().unwrap_or(0);
    let period = topology.network.clique.period;
    let stale_after = 2 * period + 10;
    let now = now_secs();

    let mut health = Health {
        healthy: true,
        head,
        nodes: vec![],
        proposals: vec![],
    };
    for n in &specs {
        let o = outs.get(&n.name);
        let p = probes.get(&n.name).cloned().unwrap_or_default();
        let mut problems = Vec::new();
        match (o, p.running) {
            (None, _) => problems.push("not created (run `consort apply`)".to_string()),
            (Some(_), false) => problems.push("process not running".to_string()),
            (Some(_), true) => {
                if let Some(e) = &p.rpc_error {
                    problems.push(format!("RPC not answering: {e}"));
                } else {
                    let missing: Vec<&str> = enode_ids
                        .iter()
                        .filter(|(peer, id)| **peer != n.name && !p.peers.contains(**id))
                        .map(|(peer, _)| *peer)
                        .collect();
                    if !missing.is_empty() {
                        problems.push(format!("not peered with {}", missing.join(", ")));
                    }
                    if let (Some(want), Some(got)) = (&genesis, &p.genesis) {
                        if want != got {
                            problems
                                .push(format!("genesis {got} differs from the network's {want}"));
                        }
                    }
                    if let (true, Some(mine)) = (forked, hashes_at_common.get(&n.name)) {
                        let others: Vec<String> = hash_votes
                            .keys()
                            .filter(|h| **h != mine.as_str())
                            .map(|h| short_hash(h))
                            .collect();
                        problems.push(format!(
                            "on its own fork: block {} is {} here but {} on other nodes",
                            common.unwrap_or(0),
                            short_hash(mine),
                            others.join(", ")
                        ));
                    }
                    if p.block + BEHIND_TOLERANCE < head {
                        problems.push(format!("at block {} while the head is {head}", p.block));
                    }
                    if period > 0 && now.saturating_sub(p.block_time) > stale_after {
                        problems.push(if p.block == 0 {
                            "no block sealed yet (head is the genesis block)".to_string()
                        } else {
                            format!(
                                "head not advancing: block {} is {}s old (period {period}s); are more than half of the signers running?",
                                p.block,
                                now.saturating_sub(p.block_time)
                            )
                        });
                    }
                    if let Some(got) = &p.signers {
                        if !expected_signers.is_empty() && got != &expected_signers {
                            let fmt = |s: &BTreeSet<Address>| {
                                s.iter()
                                    .map(rpc::hex_address)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            };
                            problems.push(format!(
                                "clique signers are [{}], expected [{}]",
                                fmt(got),
                                fmt(&expected_signers)
                            ));
                        }
                    }
                }
            }
        }
        for prop in &p.proposals {
            health.proposals.push(Proposal {
                proposer: n.name.clone(),
                address: rpc::hex_address(&prop.address),
                authorize: prop.authorize,
            });
        }
        if !problems.is_empty() {
            health.healthy = false;
        }
        health.nodes.push(NodeHealth {
            name: n.name.clone(),
            member: n.member.clone(),
            role: n.role.to_string(),
            running: p.running,
            peers: p.peers.len() as u32,
            block: p.block,
            rpc_url: o.map(|o| o.rpc_url.clone()).unwrap_or_default(),
            problems,
        });
    }
    if specs.is_empty() {
        health.healthy = false;
    }
    health
}

fn short_hash(h: &str) -> String {
    if h.len() > 14 {
        format!("{}…{}", &h[..8], &h[h.len() - 4..])
    } else {
        h.to_string()
    }
}

/// The deadline error: each unhealthy node, why, and the tail of its log.
fn unhealthy_report(topology: &Topology, st: &State, h: &Health, waited: Duration) -> String {
    let bad: Vec<&NodeHealth> = h.nodes.iter().filter(|n| !n.problems.is_empty()).collect();
    let mut msg = format!(
        "network {} is not healthy after {}s ({} of {} node(s) unhealthy, head #{}):",
        topology.network.name,
        waited.as_secs(),
        bad.len(),
        h.nodes.len(),
        h.head
    );
    for n in bad {
        msg.push_str(&format!("\n  {}: {}", n.name, n.problems.join("; ")));
        if let Some(o) = NodeOutputs::from_state(st, &n.name) {
            msg.push_str(&format!("\n  {}", log_excerpt(Path::new(&o.datadir))));
        }
    }
    msg.push_str(
        "\nThe nodes keep running: `consort status` shows them live, `consort apply --timeout N` waits longer, `consort destroy` removes them.",
    );
    msg
}
