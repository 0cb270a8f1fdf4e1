//! `stop` and `start`: a deployed network's processes, its data kept.

use super::apply::{apply, ApplyOpts, ApplyOutcome};
use super::{Front, Workspace};
use crate::provider;
use anyhow::{anyhow, Result};

/// What `stop` did.
pub struct Stopped {
    pub network: String,
    /// The nodes stopped (none: nothing was running).
    pub nodes: Vec<String>,
    /// The head before stopping.
    pub head: u64,
}

pub fn stop(ws: &Workspace, front: &dyn Front) -> Result<Stopped> {
    let (loaded, sd, _) = ws.deployed()?;
    let _lock = sd.lock("stop")?;
    let state = sd
        .load()?
        .ok_or_else(|| anyhow!("network {} has no state", loaded.topology.network.name))?;
    let provider = provider::for_topology(&loaded.topology)?;
    let head = provider.health(&loaded.topology, &state).head;
    let stopped = provider.stop_nodes(&sd, &state, &front.events())?;
    Ok(Stopped {
        network: state.network.clone(),
        nodes: stopped,
        head,
    })
}

/// `start`: an apply that may only start stopped nodes.
pub fn start(ws: &Workspace, opts: ApplyOpts, front: &dyn Front) -> Result<ApplyOutcome> {
    ws.deployed()?;
    apply(
        ws,
        ApplyOpts {
            allow_data_loss: false,
            saved_plan: None,
            only_restarts: true,
            command: "start",
            ..opts
        },
        false,
        None,
        front,
    )
}
