//! `consort stop` and `consort start`: a deployed network's processes.

use super::commands::{deployed, progress, run_apply, ApplyOpts};
use super::Global;
use crate::plan::Change;
use crate::provider;
use crate::state::{Action, Kind};
use anyhow::{anyhow, Result};
use std::path::Path;

/// A change that only starts a stopped node again (what `consort start` may do).
pub(super) fn is_restart(c: &Change) -> bool {
    matches!(c.kind, Kind::LocalNode | Kind::AzureVm)
        && c.action == Action::Update
        && c.reason.contains("not running")
}

pub(super) fn stop(g: &Global) -> Result<i32> {
    let (loaded, sd, _) = deployed(g)?;
    let _lock = sd.lock("stop")?;
    let state = sd
        .load()?
        .ok_or_else(|| anyhow!("network {} has no state", loaded.topology.network.name))?;
    let provider = provider::for_topology(&loaded.topology)?;
    let head = provider.health(&loaded.topology, &state).head;
    let progress = progress();
    let stopped = provider.stop_nodes(&sd, &state, &progress.sink());
    progress.finish();
    let stopped = stopped?;
    if stopped.is_empty() {
        say!(
            "No node of network {} was running; nothing to stop.",
            state.network
        );
    } else {
        say!(
            "Stopped {} node(s) of network {} at head #{head}; all data is kept. `consort start` continues the chain from there.",
            stopped.len(),
            state.network
        );
    }
    Ok(0)
}

pub(super) fn start(g: &Global, timeout: u64, geth: Option<&Path>) -> Result<i32> {
    deployed(g)?;
    run_apply(
        g,
        ApplyOpts {
            yes: true,
            allow_data_loss: false,
            timeout,
            skip_health: false,
            geth,
            saved_plan: None,
            only_restarts: true,
            command: "start",
        },
        false,
        None,
    )
}
