//! `state recover`: rebuilds state from the files in the state dir (the walk of
//! `provider::recover`), moving an unreadable state file aside first.

use super::{Front, Notice, Workspace};
use crate::provider::{self, recover};
use crate::state::StateError;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// What `state recover` did.
pub struct Recovered {
    pub network: String,
    pub root: PathBuf,
    pub state_file: PathBuf,
    /// A state file was there (and readable).
    pub had_state: bool,
    /// Resources recovered into state (none: nothing to recover, nothing saved).
    pub recovered: Vec<String>,
    /// What was found but not recovered, and why.
    pub skipped: Vec<String>,
}

pub fn state_recover(ws: &Workspace, front: &dyn Front) -> Result<Recovered> {
    let loaded = ws.load()?;
    let topo = &loaded.topology;
    let sd = ws.state_dir(&topo.network.name);
    let _lock = sd.lock("state recover")?;
    let existing = match sd.load() {
        Ok(s) => s,
        Err(StateError::Corrupt { reason, .. }) => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let aside = sd.root.join(format!("state.json.corrupt-{stamp}"));
            std::fs::rename(sd.state_file(), &aside)
                .with_context(|| format!("cannot move {} aside", sd.state_file().display()))?;
            front.notice(Notice::StateMovedAside {
                state_file: &sd.state_file(),
                reason: &reason,
                aside: &aside,
            });
            None
        }
        Err(e) => return Err(e.into()),
    };
    let provider = provider::for_topology(topo)?;
    let had_state = existing.is_some();
    let rec = recover::recover(topo, &sd, existing, provider.as_ref())?;
    if !rec.recovered.is_empty() {
        let mut st = rec.state;
        sd.save(&mut st)?;
    }
    Ok(Recovered {
        network: topo.network.name.clone(),
        root: sd.root.clone(),
        state_file: sd.state_file(),
        had_state,
        recovered: rec.recovered,
        skipped: rec.skipped,
    })
}
