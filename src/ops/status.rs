//! `status`: the network's health as the provider assesses it, what runs unrecorded, who
//! holds the lock, and key files state names but the disk lacks.

use super::Workspace;
use crate::provider::{self, Health};
use anyhow::Result;

pub struct Status {
    pub network: String,
    pub health: Health,
    /// geth processes of this network that state does not record.
    pub unrecorded: Vec<String>,
    /// The command changing the network now, if one is.
    pub command_running: Option<String>,
    /// Key files missing (restorable ones: `consort apply`), lost, or in doubt.
    pub key_problems: Vec<String>,
}

impl Status {
    /// Healthy, and every key file there.
    pub fn ok(&self) -> bool {
        self.health.healthy && self.key_problems.is_empty()
    }
}

pub fn status(ws: &Workspace) -> Result<Status> {
    let (loaded, sd, state) = ws.deployed()?;
    let provider = provider::for_topology(&loaded.topology)?;
    let health = provider::assess(provider.as_ref(), &loaded.topology, &state, &sd);
    let unrecorded = provider::recover::unrecorded_processes(&loaded.topology, &sd, &state);
    let command_running = sd.lock_holder();
    // Key files state names but the disk lacks (restorable ones: `consort apply`).
    let keys = crate::plan::key_files::check(&loaded.topology, &state);
    let key_problems: Vec<String> = keys
        .drift
        .iter()
        .map(|(a, why)| format!("{a}: key files missing; `consort apply` will {why}"))
        .chain(keys.lost.iter().cloned())
        .chain(keys.warnings.iter().cloned())
        .collect();
    Ok(Status {
        network: state.network.clone(),
        health,
        unrecorded,
        command_running,
        key_problems,
    })
}
