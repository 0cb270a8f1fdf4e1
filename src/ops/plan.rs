//! `plan`: load, check nothing on disk is unaccounted for, build the plan against state
//! (reading the live network where the provider says so), mark what it would lose.

use super::Workspace;
use crate::plan::build::{build, PlanInput};
use crate::plan::Plan;
use crate::provider::{self, recover, Health, Provider};
use crate::state::{fsutil, State, StateDir};
use crate::topology::{self, Loaded};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// A plan with everything it was made from.
pub struct Planned {
    pub loaded: Loaded,
    pub sd: StateDir,
    pub state: Option<State>,
    pub provider: Box<dyn Provider>,
    pub plan: Plan,
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `consort plan` (`--destroy`, `--refresh`).
pub fn plan(ws: &Workspace, destroy: bool, refresh: bool) -> Result<Planned> {
    plan_loaded(ws, ws.load()?, destroy, refresh, false)
}

/// `applying`: the plan of an apply, which reads the live network where the provider says
/// so (`Provider::refresh_on_apply`).
pub(super) fn plan_loaded(
    ws: &Workspace,
    loaded: Loaded,
    destroy: bool,
    refresh: bool,
    applying: bool,
) -> Result<Planned> {
    let sd = ws.state_dir(&loaded.topology.network.name);
    let state = sd.load()?;
    let provider = provider::for_topology(&loaded.topology)?;
    if !destroy {
        // Lost state must not mean a new chain.
        let found = recover::unaccounted(&loaded.topology, &sd, state.as_ref());
        if !found.is_empty() {
            bail!(recover::refusal(&sd, state.as_ref(), &found, &ws.file));
        }
    }
    let refresh = refresh
        || provider.refresh_by_default()
        || (applying && !destroy && provider.refresh_on_apply());
    if destroy && applying && !refresh {
        // `destroy` reads nothing live, but must not delete half a network and then fail.
        provider
            .preflight(&loaded.topology, true)
            .map_err(crate::plan::build::PlanError::Refused)?;
    }
    let mut plan = build(
        PlanInput {
            topology: &loaded.topology,
            topology_sha256: sha256_hex(loaded.source.as_bytes()),
            state: state.as_ref(),
            destroy,
            refresh,
        },
        provider.as_ref(),
    )?;
    if let Some(st) = &state {
        plan.warnings
            .extend(recover::unrecorded_processes(&loaded.topology, &sd, st));
    }
    if destroy && state.is_none() {
        let found = recover::on_disk(&loaded.topology, &sd);
        if !found.is_empty() {
            plan.warnings.push(format!(
                "{} is missing, but {} holds: {}; `consort destroy` stops and deletes them (after asking)",
                sd.state_file().display(),
                sd.root.display(),
                found.join(", ")
            ));
        }
    }
    if !destroy {
        provider::archived_keys::annotate(&mut plan, &sd.root);
        let created = |name: &String| {
            let addr = provider.node_addr(name);
            plan.changes
                .iter()
                .any(|c| c.addr == addr && c.action == crate::state::Action::Create)
        };
        let ports: std::collections::BTreeMap<_, _> = provider
            .planned_ports(&loaded.topology, state.as_ref(), &sd)
            .into_iter()
            .filter(|(name, _)| created(name))
            .collect();
        plan.ports = ports;
    }
    mark_data_loss(&mut plan, state.as_ref(), &loaded.topology);
    Ok(Planned {
        loaded,
        sd,
        state,
        provider,
        plan,
    })
}

impl Planned {
    /// "No changes" promises a healthy network: for a plan without changes of a network
    /// whose health needs no credentials or public endpoints (local), the health when it
    /// is not healthy. A node a block behind, a block being sealed: it looks again for a
    /// couple of periods before calling the network unhealthy.
    pub fn unhealthy(&self) -> Option<Health> {
        if !self.plan.is_empty()
            || !self.plan.unread.is_empty()
            || self.plan.destroy
            || !self.provider.refresh_by_default()
        {
            return None;
        }
        let st = self.state.as_ref()?;
        let period = self.loaded.topology.network.clique.period;
        let deadline = std::time::Instant::now() + Duration::from_secs(2 * period + 2);
        let h = loop {
            let h = provider::assess(self.provider.as_ref(), &self.loaded.topology, st, &self.sd);
            if h.healthy || std::time::Instant::now() >= deadline {
                break h;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        (!h.healthy).then_some(h)
    }
}

/// Saves `plan` for `consort apply PLAN`.
pub fn save(plan: &Plan, path: &Path) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(plan)?;
    text.push(b'\n');
    fsutil::write_atomic(path, &text, 0o644)
        .with_context(|| format!("cannot write plan {}", path.display()))
}

/// A node of `st` that answers RPC (local networks; None elsewhere or when none runs).
fn live_rpc(st: &State) -> Option<crate::rpc::RpcClient> {
    st.resources
        .values()
        .filter(|r| r.kind == crate::state::Kind::LocalNode)
        .filter_map(|r| r.outputs.get("rpc_url").and_then(|v| v.as_str()))
        .map(|u| crate::rpc::RpcClient::new(u).with_timeout(Duration::from_secs(2)))
        .find(|c| c.block_number().is_ok())
}

/// A running node of `st` answering over IPC (local networks; None elsewhere).
fn live_ipc(st: &State) -> Option<crate::rpc::RpcClient> {
    st.resources
        .iter()
        .filter(|(_, r)| r.kind == crate::state::Kind::LocalNode)
        .filter_map(|(a, _)| provider::local::NodeOutputs::from_state(st, a.strip_prefix("node.")?))
        .filter(|o| o.is_running())
        .map(|o| o.control().with_timeout(Duration::from_secs(2)))
        .find(|c| c.block_number().is_ok())
}

/// The `!` lines: what the plan would lose, asking the live chain for balances (and, for
/// the destroy of a chain other operators run, for its signers).
pub(super) fn mark_data_loss(
    plan: &mut Plan,
    state: Option<&State>,
    topology: &topology::Topology,
) {
    use crate::state::{Action, Kind};
    let Some(st) = state else { return };
    let shared = plan.destroy && topology.has_external_members();
    let destructive = plan.changes.iter().any(|c| {
        crate::plan::loss::is_corrupt_resync(c)
            || matches!(c.action, Action::Destroy | Action::Replace)
                && matches!(
                    c.kind,
                    Kind::Account | Kind::LocalNode | Kind::AzureVm | Kind::SignerKey
                )
    });
    if !destructive || (plan.destroy && !shared) {
        return;
    }
    let rpc = live_ipc(st).or_else(|| live_rpc(st));
    let head = rpc.as_ref().and_then(|c| c.block_number().ok());
    let balance = |a: &str| -> Option<u128> {
        let addr = a.parse().ok()?;
        rpc.as_ref()?
            .eth_get_balance(&addr, crate::rpc::BlockId::Latest)
            .ok()
    };
    if shared {
        let live: Option<Vec<String>> = rpc
            .as_ref()
            .and_then(|c| c.clique_get_signers().ok())
            .map(|s| s.iter().map(|a| a.to_checksum()).collect());
        let member_of = |node: &str| {
            topology
                .nodes()
                .into_iter()
                .find(|n| n.name == node)
                .map(|n| n.member)
        };
        crate::plan::loss::mark_shared_destroy(plan, st, live.as_deref(), &member_of, &balance);
        return;
    }
    crate::plan::loss::mark(plan, state, head, &balance);
}

/// Why a plan that could not read part of the network cannot promise "No changes".
pub fn unread_message(plan: &Plan) -> String {
    format!(
        "could not read {} of network {}, so the plan may be incomplete:\n  {}\nRun the command again once {}.",
        plan.unread.len(),
        plan.network,
        plan.unread.join("\n  "),
        if plan.unread.len() == 1 {
            "it answers"
        } else {
            "they answer"
        }
    )
}
