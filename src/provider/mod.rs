//! Providers turn changes into reality. The executor here is shared: it runs a plan's
//! changes in dependency order (each change starts as soon as what it needs is done, up to
//! the provider's parallelism), saves state as changes finish (results that arrive together
//! share one save), stops starting new work on Ctrl-C or on the first failure, and reports
//! through events. Providers never print.
//!
//! # Contract between the core and providers
//!
//! Core resources (applied by `core.rs`, identical for every provider), outputs in state:
//! - `key.node.<n>`: `{enode_id, key_file}` (key_file: hex node key, 0600)
//! - `key.signer.<n>`: `{address, keystore, keystore_dir, password_file}` (validators)
//! - `account.<m>.<a>`: `{address, keystore, password_file, key_file}`, or `{address,
//!   external: true}` for an `address:` account (the user's key; nothing kept)
//! - `genesis`: `{file, signers: [node names], accounts: {"m/a": wei}, funding_account}`;
//!   the JSON is also in `State::genesis`, whose `hash` the provider fills once a node
//!   reports block 0.
//!
//! Provider node resources (`node_addr(n)`: `node.<n>` locally, `azure.vm.<n>` on Azure):
//! - attrs: `{node, member, role, geth, mesh}` with `mesh = plan::mesh_digest(all node
//!   names)`, so adding/removing nodes updates every node (peer add/remove) in O(n);
//! - deps: `key.node.<n>`, `key.signer.<n>` (validators), `genesis`, and `key.node.*` (a
//!   wildcard: every node key, because the static peers need every enode);
//! - outputs must include `rpc_url` (tx nodes' application RPC; absent or null for
//!   validators, which serve no TCP RPC) and `enode` (full `enode://id@host:port`), which
//!   `consort output` reports; local nodes also `ipc_path`, `ws_url` and `metrics_url`
//!   (geth's Prometheus metrics on 127.0.0.1).
//!
//! Non-core kinds a provider applies: its node resources; `signer.<n>` (attrs `{node,
//! member, genesis}`: `genesis: true` is a no-op record, otherwise create = vote in by a
//! majority of current signers, destroy = vote out; [`signer`], with the vote rules of
//! [`crate::consensus::votes`]); `clique` (the live signers = the topology's validators,
//! [`clique`] and [`crate::consensus::drift`]); `fund.<m>.<a>` (attrs `{member, name,
//! balance, from}`: a signed transfer from the funding account, [`funding`]).
//!
//! A provider answers *where* nodes run and *how to reach them*; what the chain needs
//! (votes, signer drift, sealing order, liveness) is [`crate::consensus`]'s, which reaches
//! nodes through the channel each provider implements
//! ([`crate::consensus::control::NodeControl`]).
//!
//! Rendering: `render::NodeLaunch` → `geth_config_toml` / `geth_args`; Azure VMs'
//! customData is base64 of `render::cloud_init`.

pub mod archived_keys;
pub mod clique;
pub mod core;
pub mod funding;
pub mod key_files;
pub mod local;
pub mod pending;
pub mod recover;
pub mod signer;

#[cfg(feature = "azure")]
pub mod azure;

use crate::plan::build::PlanError;
use crate::plan::ports::PlannedPorts;
use crate::plan::{dep_matches, Change, Planning};

use crate::events::{Event, EventSink};
use crate::state::{Action, Kind};
use crate::state::{ResourceState, State, StateDir};
use crate::topology::Topology;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A failure tied to one resource: the message says what and how to fix it.
    #[error("{addr}: {message}")]
    Resource { addr: String, message: String },
    #[error("{0}")]
    Other(String),
    #[error("the {provider} provider does not support {what}")]
    Unsupported {
        provider: &'static str,
        what: String,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl ProviderError {
    pub fn at(addr: &str, message: impl Into<String>) -> ProviderError {
        ProviderError::Resource {
            addr: addr.to_string(),
            message: message.into(),
        }
    }

    /// The error as said beside the change `addr` it failed (which names it already).
    pub fn beside(&self, addr: &str) -> String {
        match self {
            ProviderError::Resource { addr: a, message } if a == addr => message.clone(),
            other => other.to_string(),
        }
    }
}

/// A provider error met while planning (its desired resources) is the plan's error,
/// message and source chain unchanged.
impl From<ProviderError> for PlanError {
    fn from(e: ProviderError) -> PlanError {
        PlanError::Provider(Box::new(e))
    }
}

/// And back, where a provider plans for itself (`state recover`): the provider's own error
/// as it was.
impl From<PlanError> for ProviderError {
    fn from(e: PlanError) -> ProviderError {
        match e {
            PlanError::Provider(b) => match b.downcast::<ProviderError>() {
                Ok(e) => *e,
                Err(b) => ProviderError::Other(b.to_string()),
            },
            PlanError::Refused(m) => ProviderError::Other(m),
        }
    }
}

/// What an apply works with. `state` is shared by parallel changes; hold its lock briefly.
pub struct ApplyCtx<'a> {
    pub topology: &'a Topology,
    pub state: Mutex<State>,
    pub state_dir: &'a StateDir,
    pub events: EventSink,
    pub interrupted: &'a AtomicBool,
    pub health_timeout: Duration,
    /// Set by `execute` once a change has failed: changes in flight that wait for others
    /// (a tx node waiting for block 1) stop waiting.
    pub failed: AtomicBool,
    /// The peering plan of `topology`, made on first use (`peering()`).
    pub peering: std::sync::OnceLock<crate::plan::peering::Peering>,
}

impl ApplyCtx<'_> {
    /// A copy of the current state (cheap enough at our sizes; avoids holding the lock).
    pub fn snapshot(&self) -> State {
        self.state.lock().unwrap().clone()
    }
    pub fn emit(&self, ev: Event) {
        (self.events)(ev)
    }
    /// Who peers with whom in the topology being applied, other operators' nodes too
    /// (planned once per apply: every node start and sealing poll asks).
    pub fn peering(&self) -> &crate::plan::peering::Peering {
        self.peering
            .get_or_init(|| crate::plan::peering::Peering::for_topology(self.topology))
    }
}

/// Health of the whole network, as `status` shows it and `apply` waits for.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    pub healthy: bool,
    pub head: u64,
    pub nodes: Vec<NodeHealth>,
    /// Clique proposals pending on signers: (proposer node, address, authorize).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proposals: Vec<Proposal>,
    /// Set when too few signers are online for Clique to seal: the chain is halted.
    #[serde(rename = "chain_halted", skip_serializing_if = "Option::is_none")]
    pub halted: Option<crate::consensus::liveness::Halted>,
    /// Members other operators run, as this operator's nodes see them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<ExternalMember>,
    /// Signer votes in progress that wait for other operators.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<VoteProgress>,
    /// Members of ours that the other operators voted out of the consortium.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedMember>,
    /// Members of ours whose running nodes no node of any other operator is peered with:
    /// the others dropped them (removed them from the consortium?), or are all down.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub isolated: Vec<String>,
    /// Set when no node runs: `consort stop` stopped them, or they crashed (or were
    /// killed) without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<Down>,
    /// Transactions pending for more than `pending::STUCK_PERIODS` periods, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_transactions: Vec<StuckTx>,
}

impl Health {
    /// What is wrong beyond single nodes, one sentence each, in the words every view uses
    /// (`status`, the dashboard's banner): a halted chain, a member of ours voted out, and
    /// other operators' nodes none of ours reaches (theirs to repair, named all the same).
    pub fn network_problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.halted.iter().map(|h| h.to_string()).collect();
        out.extend(self.removed.iter().map(|r| r.to_string()));
        for m in &self.isolated {
            out.push(format!(
                "none of {m}'s nodes is peered with any node of the other operators: they \
                 dropped {m}'s nodes (did they remove {m} from the consortium?) or all of \
                 theirs are down; ask them, and if {m} was removed, run `consort destroy` to \
                 clean up"
            ));
        }
        for e in &self.external {
            if !e.unreached.is_empty() {
                out.push(format!(
                    "member {} (another operator's): none of our nodes is peered with {}",
                    e.name,
                    e.unreached.join(", ")
                ));
            }
        }
        out
    }
}

/// A member of ours whose signers the other operators voted out: its nodes run on, but it
/// is no longer part of the consortium.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemovedMember {
    pub name: String,
    /// The first block whose signers no longer include any of its validators (None: the
    /// vote has not passed on the chain our nodes saw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// Not passed yet: (votes to remove one of its signers, votes needed, at block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub votes_against: Option<(u32, u32, u64)>,
    /// Other operators' nodes still peered with ours (None: not probed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_peered: Option<u32>,
}

impl std::fmt::Display for RemovedMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.block, self.votes_against) {
            (Some(block), _) => write!(
                f,
                "{} was removed from the consortium at block {block} (none of its validators is a signer any more); ",
                self.name
            )?,
            (None, Some((votes, needed, at))) => write!(
                f,
                "{} is being voted out of the consortium: the chain our nodes saw (block {at}) holds {votes} vote(s) to remove its signer, {needed} remove it; ",
                self.name
            )?,
            (None, None) => write!(f, "{} was voted out of the consortium; ", self.name)?,
        }
        match self.still_peered {
            Some(0) => write!(f, "its nodes are no longer peered; ")?,
            Some(n) => write!(
                f,
                "{n} of the other operators' nodes are still peered with its nodes; "
            )?,
            None => {}
        }
        write!(f, "run `consort destroy` to clean up")
    }
}

/// Why no node of the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Down {
    /// Every node was stopped by `consort stop`.
    Stopped,
    /// Some node exited or was killed without `consort stop`.
    Crashed,
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Down::Stopped => "stopped — `consort start` starts it again on its data",
            Down::Crashed => "CRASHED — every node is down, and not by `consort stop` (exited or killed); `consort start` or `consort apply` starts them again on their data",
        })
    }
}

/// A transaction the pool has held for more than `pending::STUCK_PERIODS` periods.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StuckTx {
    pub hash: String,
    pub from: String,
    pub nonce: u64,
    /// Its priority fee (maxPriorityFeePerGas, or gasPrice if legacy), decimal wei.
    pub tip_wei: String,
    /// Its maxFeePerGas (gasPrice if legacy), decimal wei.
    pub max_fee_wei: String,
    pub pending_secs: u64,
    pub reason: String,
}

impl std::fmt::Display for StuckTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transaction {} from {} (nonce {}, tip {} wei) pending for {}s: {}",
            self.hash, self.from, self.nonce, self.tip_wei, self.pending_secs, self.reason
        )
    }
}

/// The health `status`, `plan` and the dashboard show: the provider's assessment plus
/// the pool's stuck transactions (first sightings kept in `sd`).
pub fn assess(
    provider: &dyn Provider,
    topology: &Topology,
    state: &State,
    sd: &crate::state::StateDir,
) -> Health {
    let mut h = provider.health(topology, state);
    let pool = provider.pool(topology, state);
    pending::assess(
        &mut h,
        &pool,
        sd,
        topology.network.clique.period,
        pending::now_secs(),
    );
    h
}

/// A member another operator runs: how many of its nodes ours are peered with, and how
/// many of its validators are live signers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExternalMember {
    pub name: String,
    pub enodes: u32,
    pub peered: u32,
    pub signers: u32,
    pub signing: u32,
    /// Its nodes that none of ours is peered with, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreached: Vec<String>,
}

/// A Clique vote that has not passed yet: `votes` of `signers` on chain, `needed` needed;
/// `waiting_for` names the members whose operators' signers have not voted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VoteProgress {
    pub subject: String,
    pub address: String,
    pub authorize: bool,
    pub votes: u32,
    pub signers: u32,
    pub needed: u32,
    pub waiting_for: Vec<String>,
}

impl std::fmt::Display for VoteProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} of {} votes to {}, needs {}",
            self.subject,
            self.address,
            self.votes,
            self.signers,
            if self.authorize { "add" } else { "remove" },
            self.needed
        )?;
        if !self.waiting_for.is_empty() {
            write!(
                f,
                " — waiting for operator of {}",
                self.waiting_for.join(", ")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeHealth {
    pub name: String,
    pub member: String,
    pub role: String,
    pub running: bool,
    pub peers: u32,
    /// How many peers the peering plan gives it (`plan::peering`).
    pub planned_peers: u32,
    pub block: u64,
    /// The application RPC (tx nodes); validators have none (consort uses their IPC).
    pub rpc_url: Option<String>,
    /// Why this node is not healthy (empty when it is).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Proposal {
    pub proposer: String,
    pub address: String,
    pub authorize: bool,
}

/// Nodes whose ports in `st` differ from the ones `planned` for them (a planned port was
/// taken by the time apply started the node): node → [(kind, planned, got)], kinds in the
/// order p2p, http, ws, metrics.
pub fn moved_ports(
    planned: &BTreeMap<String, PlannedPorts>,
    st: &State,
) -> BTreeMap<String, Vec<(&'static str, u16, u16)>> {
    let mut out = BTreeMap::new();
    for (node, p) in planned {
        let Some(got) = local::NodeOutputs::from_state(st, node).map(|o| o.ports) else {
            continue;
        };
        let pairs = [
            ("p2p", Some(p.ports.p2p), Some(got.p2p)),
            ("http", p.ports.http, got.http),
            ("ws", p.ports.ws, got.ws),
            ("metrics", p.ports.metrics, got.metrics),
        ];
        let moved: Vec<_> = pairs
            .into_iter()
            .filter_map(|(kind, a, b)| Some((kind, a?, b?)))
            .filter(|(_, a, b)| a != b)
            .collect();
        if !moved.is_empty() {
            out.insert(node.clone(), moved);
        }
    }
    out
}

/// A provider: where nodes run and how to reach them. What plan needs from it (its
/// desired resources, notes, live drift and checks) is `plan::Planning`.
pub trait Provider: Planning + Sync {
    /// The ports each node state does not record yet will get, if the provider chooses
    /// them (local: free ones, checked now on the nodes' address); apply may still move a
    /// node whose planned port is taken by then. Nothing is claimed.
    fn planned_ports(
        &self,
        _topology: &Topology,
        _state: Option<&State>,
        _sd: &StateDir,
    ) -> BTreeMap<String, PlannedPorts> {
        BTreeMap::new()
    }

    /// Whether `plan` asks for drift without `--refresh` (cheap, offline checks only).
    fn refresh_by_default(&self) -> bool {
        false
    }

    /// Whether `apply` (and `member add/remove`) ask for drift before planning, where a
    /// plain `plan` does not (Azure: apply has credentials; plan stays offline).
    fn refresh_on_apply(&self) -> bool {
        self.refresh_by_default()
    }

    /// How many changes may run at once.
    fn parallelism(&self) -> usize {
        4
    }

    /// Whether `change` should be started before other ready changes: the Azure
    /// provider's ARM operations are long waits, so they go out before local CPU work
    /// (key generation) takes the workers.
    fn starts_first(&self, _change: &Change) -> bool {
        false
    }

    /// Whether `change` (one of `all`) should start only after the others: a late change
    /// starts once every other change that does not (transitively) wait for a late one has
    /// started. The local provider's tx nodes of a new chain wait for block 1 inside their
    /// change; started early they would hold workers the validators they wait for need.
    fn starts_late(&self, _change: &Change, _all: &[Change]) -> bool {
        false
    }

    /// Makes one non-core change real; returns the resource's new state (None once
    /// destroyed). On failure, whatever was created must be reflected by a later refresh
    /// or be safe to create again.
    fn apply_change(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError>;

    /// Runs beside the first changes of an apply (on its own thread), for slow lookups
    /// later changes need: the local provider finds geth while keys are generated. Its
    /// failures are not reported here; the change that needs the result reports them.
    fn prepare(&self, _ctx: &ApplyCtx, _changes: &[Change]) {}

    /// Runs once all changes are made, whether or not health is waited for (the local
    /// provider starts sealing here once validators are peered).
    fn after_apply(&self, _ctx: &ApplyCtx) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Waits (polling, with `ctx.health_timeout`) until the network is healthy; the error
    /// names each unhealthy node and why.
    fn wait_healthy(&self, ctx: &ApplyCtx) -> Result<Health, ProviderError>;

    /// Live health for `status`.
    fn health(&self, topology: &Topology, state: &State) -> Health;

    /// The transactions in the pools of the running nodes (none where the provider
    /// cannot read them).
    fn pool(&self, _topology: &Topology, _state: &State) -> Vec<pending::PoolTx> {
        Vec::new()
    }

    /// Stops every node and keeps all data (`consort stop`); returns the nodes that were
    /// running. The next apply (`consort start`) starts them again on the same data.
    fn stop_nodes(
        &self,
        _sd: &StateDir,
        _state: &State,
        _events: &EventSink,
    ) -> Result<Vec<String>, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.name(),
            what: "stopping a network (consort stop)".into(),
        })
    }

    /// The last `lines` of each of `nodes`' geth logs, for nodes whose log is not a file
    /// on this machine (Azure: read on the VM); one result per node, in order. None: the
    /// provider cannot read them.
    fn remote_logs(
        &self,
        _state: &State,
        _nodes: &[&str],
        _lines: usize,
    ) -> Option<Vec<Result<String, String>>> {
        None
    }

    /// Removes what the provider keeps outside state resources after a full destroy.
    fn cleanup(&self, _state_dir: &StateDir) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Outcome of executing a plan.
#[derive(Debug, Default)]
pub struct ExecReport {
    pub done: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
    pub interrupted: bool,
}

/// When may change `c` start? Create/update/replace: after every planned non-destroy change
/// it depends on. Destroy: after every planned destroy of a resource that depends on it.
/// An update also waits for the destroys among its dependencies: a node's peer list drops
/// a departing node only once that node is voted out and gone, never while it still counts
/// as a signer (no cycle: destroys only ever wait for destroys and replaces).
fn blockers(changes: &[Change]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.addr.as_str(), i))
        .collect();
    changes
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            if c.action == Action::Destroy {
                changes
                    .iter()
                    .enumerate()
                    .filter(|(oi, o)| {
                        *oi != ci
                            && matches!(o.action, Action::Destroy | Action::Replace)
                            && o.deps.iter().any(|d| dep_matches(d, &c.addr))
                    })
                    .map(|(i, _)| i)
                    .collect()
            } else {
                let waits_for =
                    |o: &Change| o.action != Action::Destroy || c.action == Action::Update;
                let mut out = Vec::new();
                for d in &c.deps {
                    if d.ends_with('*') {
                        out.extend(
                            changes
                                .iter()
                                .enumerate()
                                .filter(|(oi, o)| {
                                    *oi != ci && waits_for(o) && dep_matches(d, &o.addr)
                                })
                                .map(|(i, _)| i),
                        );
                    } else if let Some(&i) = index.get(d.as_str()) {
                        if waits_for(&changes[i]) {
                            out.push(i);
                        }
                    }
                }
                out
            }
        })
        .collect()
}

/// For each change: whether it waits, directly or through others, for a late change.
fn waits_for_late(block: &[Vec<usize>], late: &[bool]) -> Vec<bool> {
    fn visit(i: usize, block: &[Vec<usize>], late: &[bool], memo: &mut [Option<bool>]) -> bool {
        if let Some(v) = memo[i] {
            return v;
        }
        // Blockers never form a cycle; a provisional `false` keeps a bad graph finite.
        memo[i] = Some(false);
        let v = block[i]
            .iter()
            .any(|&b| late[b] || visit(b, block, late, memo));
        memo[i] = Some(v);
        v
    }
    let mut memo = vec![None; block.len()];
    (0..block.len())
        .map(|i| visit(i, block, late, &mut memo))
        .collect()
}

/// Runs the changes. State is saved after each one. Returns when all are done, or after
/// the first failure / an interrupt once in-flight changes finished.
pub fn execute(
    provider: &dyn Provider,
    ctx: &ApplyCtx,
    changes: &[Change],
) -> Result<ExecReport, ProviderError> {
    let block = blockers(changes);
    let late: Vec<bool> = changes
        .iter()
        .map(|c| provider.starts_late(c, changes))
        .collect();
    let after_late = waits_for_late(&block, &late);
    let mut pending: Vec<usize> = (0..changes.len()).collect();
    // Stable: plan order within each group.
    pending.sort_by_key(|&i| !provider.starts_first(&changes[i]));
    let mut finished: HashSet<usize> = HashSet::new();
    let mut report = ExecReport::default();
    let mut stop = false;
    let parallel = provider.parallelism().max(1);
    let (tx, rx) = mpsc::channel::<(
        usize,
        Result<Option<ResourceState>, ProviderError>,
        Duration,
    )>();

    std::thread::scope(|scope| -> Result<(), ProviderError> {
        scope.spawn(|| provider.prepare(ctx, changes));
        let mut running = 0usize;
        loop {
            if ctx.interrupted.load(Ordering::SeqCst) && !stop {
                stop = true;
                report.interrupted = true;
            }
            // Until a pass starts nothing: a late change skipped because an early one
            // after it in `pending` had not started yet starts in the next pass, not only
            // once some change finishes.
            let mut started = !stop;
            while started {
                started = false;
                let mut i = 0;
                while i < pending.len() && running < parallel {
                    let ci = pending[i];
                    let early_pending = || pending.iter().any(|&p| !late[p] && !after_late[p]);
                    if block[ci].iter().all(|b| finished.contains(b))
                        && !(late[ci] && early_pending())
                    {
                        pending.remove(i);
                        running += 1;
                        started = true;
                        let c = &changes[ci];
                        ctx.emit(Event::ChangeStarted {
                            addr: c.addr.clone(),
                            action: c.action,
                            recorded: c.record_only,
                        });
                        let tx = tx.clone();
                        scope.spawn(move || {
                            let t0 = Instant::now();
                            let r = if c.kind.is_core() {
                                core::apply_change(ctx, c)
                            } else {
                                provider.apply_change(ctx, c)
                            };
                            let _ = tx.send((ci, r, t0.elapsed()));
                        });
                    } else {
                        i += 1;
                    }
                }
            }
            if running == 0 {
                break;
            }
            // Every result that is in: recorded together, then one state save (a save is
            // several fsyncs; one per change serialised a large apply behind the disk).
            let mut results = vec![rx.recv().expect("workers send results")];
            results.extend(rx.try_iter());
            let mut done = Vec::new();
            {
                let mut st = ctx.state.lock().unwrap();
                for (ci, result, elapsed) in results {
                    running -= 1;
                    let c = &changes[ci];
                    match result {
                        Ok(new) => {
                            match new {
                                Some(rs) => {
                                    st.resources.insert(c.addr.clone(), rs);
                                }
                                None => {
                                    st.resources.remove(&c.addr);
                                }
                            }
                            done.push((ci, elapsed));
                        }
                        Err(e) => {
                            stop = true;
                            ctx.failed.store(true, Ordering::SeqCst);
                            ctx.emit(Event::ChangeFailed {
                                addr: c.addr.clone(),
                                error: e.beside(&c.addr),
                            });
                            report.failed.push((c.addr.clone(), e.beside(&c.addr)));
                        }
                    }
                }
                if !done.is_empty() {
                    ctx.state_dir.save(&mut st)?;
                }
            }
            for (ci, elapsed) in done {
                let c = &changes[ci];
                finished.insert(ci);
                report.done.push(c.addr.clone());
                ctx.emit(Event::ChangeDone {
                    addr: c.addr.clone(),
                    action: c.action,
                    recorded: c.record_only,
                    elapsed,
                });
            }
            if pending.is_empty() && running == 0 {
                break;
            }
        }
        Ok(())
    })?;
    report.skipped = pending.iter().map(|&i| changes[i].addr.clone()).collect();
    Ok(report)
}

/// Picks the provider for a topology.
pub fn for_topology(topology: &Topology) -> Result<Box<dyn Provider>, ProviderError> {
    match &topology.provider {
        crate::topology::ProviderConfig::Local(cfg) => {
            Ok(Box::new(local::LocalProvider::new(cfg.clone())))
        }
        #[cfg(feature = "azure")]
        crate::topology::ProviderConfig::Azure(cfg) => {
            Ok(Box::new(azure::AzureProvider::new(cfg.clone())?))
        }
        #[cfg(not(feature = "azure"))]
        crate::topology::ProviderConfig::Azure(_) => Err(ProviderError::Unsupported {
            provider: "azure",
            what: "this build (compiled without the `azure` feature)".into(),
        }),
    }
}

/// Kinds a provider is responsible for, for its `apply_change` guard.
pub fn unsupported(provider: &'static str, change: &Change) -> ProviderError {
    ProviderError::Unsupported {
        provider,
        what: format!("{:?} resources ({})", change.kind, change.addr),
    }
}

#[allow(dead_code)]
fn _kind_is_used(_: Kind) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(addr: &str, action: Action, deps: &[&str]) -> Change {
        Change {
            addr: addr.into(),
            kind: Kind::LocalNode,
            action,
            reason: String::new(),
            summary: String::new(),
            before: None,
            after: None,
            deps: deps.iter().map(|s| s.to_string()).collect(),
            record_only: false,
        }
    }

    #[test]
    fn creates_wait_for_deps_destroys_wait_for_dependents() {
        let changes = vec![
            ch("a", Action::Create, &[]),
            ch("b", Action::Create, &["a", "not-planned"]),
            ch("x", Action::Destroy, &[]),
            ch("y", Action::Destroy, &["x"]),
            ch("key.node.a", Action::Create, &[]),
            ch("key.node.b", Action::Create, &[]),
            ch("node.a", Action::Create, &["key.node.*"]),
        ];
        let b = blockers(&changes);
        assert_eq!(b[0], Vec::<usize>::new());
        assert_eq!(b[1], vec![0]);
        assert_eq!(b[2], vec![3], "x is destroyed after y, which depends on it");
        assert_eq!(b[3], Vec::<usize>::new());
        assert_eq!(b[6], vec![4, 5], "a wildcard dep waits for every match");
    }

    #[test]
    fn peers_are_dropped_only_after_the_departing_signer_is_voted_out_and_gone() {
        // What removing member c plans for the local provider.
        let changes = vec![
            ch("key.node.c", Action::Destroy, &[]),
            ch("node.c", Action::Destroy, &["key.node.c", "key.node.*"]),
            ch("signer.c", Action::Destroy, &["node.c"]),
            ch("node.a", Action::Update, &["key.node.a", "key.node.*"]),
            ch("node.d", Action::Create, &["key.node.d", "key.node.*"]),
            ch("key.node.d", Action::Create, &[]),
        ];
        let b = blockers(&changes);
        assert_eq!(b[2], Vec::<usize>::new(), "the vote-out goes first");
        assert_eq!(b[1], vec![2], "the node stops once voted out");
        assert_eq!(b[0], vec![1], "its key goes with it");
        assert_eq!(
            b[3],
            vec![0, 5],
            "peers drop it once it is gone (and learn d)"
        );
        assert!(
            b[4].contains(&5) && !b[4].contains(&0),
            "creates still ignore destroys: {:?}",
            b[4]
        );
    }
}
