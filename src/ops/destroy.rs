//! `destroy`: through the plan when state is there; without a usable state, what consort
//! finds on disk (after showing it and asking). Only destroy deletes keys.

use super::apply::{apply, ApplyOpts, ApplyOutcome};
use super::{Front, Notice, Workspace};
use crate::provider::{self, recover, ApplyCtx, Provider};
use crate::state::{StateDir, StateError};
use crate::topology::{self, Loaded};
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};

pub fn destroy(ws: &Workspace, allow_data_loss: bool, front: &dyn Front) -> Result<ApplyOutcome> {
    let loaded = ws.load()?;
    let sd = ws.state_dir(&loaded.topology.network.name);
    match sd.load() {
        Ok(Some(_)) => {}
        Ok(None) => return destroy_from_disk(&loaded, &sd, None, front),
        Err(e @ StateError::Corrupt { .. }) => {
            return destroy_from_disk(&loaded, &sd, Some(e.to_string()), front)
        }
        Err(e) => return Err(e.into()),
    }
    apply(
        ws,
        ApplyOpts {
            allow_data_loss,
            timeout: 60,
            skip_health: true,
            geth: None,
            saved_plan: None,
            only_restarts: false,
            command: "destroy",
        },
        true,
        None,
        front,
    )
}

/// After every destroy change: the provider's cleanup, key dirs, and — once state holds
/// nothing — the state dir itself. Returns the archive kept for a chain other operators
/// run (it may still know these keys' addresses).
pub(super) fn after_destroy(
    provider: &dyn Provider,
    loaded: &Loaded,
    sd: &StateDir,
    ctx: &ApplyCtx,
) -> Result<Option<PathBuf>> {
    provider.cleanup(sd)?;
    provider::core::cleanup_key_dirs(sd);
    let st = ctx.state.lock().unwrap();
    // A chain other operators run lives on: it may still know these keys' addresses.
    let keep_archive = loaded.topology.has_external_members() && sd.archive_dir().exists();
    if st.resources.is_empty() {
        // Only destroy deletes keys: the archived ones of removed members too.
        if !keep_archive {
            remove_path(&sd.archive_dir())?;
        }
        // The invitations it issued (nothing secret, but nothing to keep either).
        remove_path(&crate::join::flow::invitations_dir(sd))?;
        remove_set_aside_states(sd)?;
        sd.remove_state()?;
        let _ = std::fs::remove_file(sd.lock_file());
        let _ = std::fs::remove_dir(&sd.root);
        if let Some(parent) = sd.root.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(keep_archive.then(|| sd.archive_dir()))
}

fn remove_path(p: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(p) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    };
    r.with_context(|| format!("cannot remove {}; remove it by hand", p.display()))
}

/// State files `state recover` moved aside (`state.json.corrupt-<time>`): a destroy that
/// leaves nothing removes them too.
fn remove_set_aside_states(sd: &StateDir) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(&sd.root) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
            {
                remove_path(&e.path())?;
            }
        }
    }
    Ok(())
}

/// `destroy` without a usable state: stop every process consort started under the state
/// directory and delete what it finds there, after showing it all and confirming.
fn destroy_from_disk(
    loaded: &Loaded,
    sd: &StateDir,
    corrupt: Option<String>,
    front: &dyn Front,
) -> Result<ApplyOutcome> {
    let _lock = sd.lock("destroy")?;
    let topo = &loaded.topology;
    let found = recover::on_disk(topo, sd);
    let remove_dirs = || {
        let _ = std::fs::remove_file(sd.lock_file());
        let _ = std::fs::remove_dir(&sd.root);
        if let Some(parent) = sd.root.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    };
    if found.is_empty() {
        remove_dirs();
        return Ok(ApplyOutcome::NothingToDestroy {
            network: topo.network.name.clone(),
            root: sd.root.clone(),
        });
    }
    let local = matches!(topo.provider, topology::ProviderConfig::Local(_));
    front.notice(Notice::FoundOnDisk {
        network: &topo.network.name,
        root: &sd.root,
        state_file: &sd.state_file(),
        corrupt: corrupt.as_deref(),
        found: &found,
        cloud: !local,
    });
    if !front.confirm(&format!("destroy network {}", topo.network.name))? {
        return Ok(ApplyOutcome::Cancelled { edit: false });
    }
    if local {
        let stopped = provider::local::recover::stop_all(sd).map_err(|e| anyhow!(e))?;
        front.notice(Notice::StoppedProcesses(stopped));
    }
    let provider = provider::for_topology(topo)?;
    provider.cleanup(sd)?;
    for p in [
        "nodes",
        "genesis-db",
        "genesis-db.tmp",
        "keys",
        "genesis.json",
        crate::state::JOINED_FILE,
        "archive",
        "invitations",
        "backups",
        crate::provider::pending::SEEN_FILE,
        "state.json",
    ] {
        remove_path(&sd.root.join(p))?;
    }
    remove_set_aside_states(sd)?;
    remove_dirs();
    Ok(ApplyOutcome::DestroyedFromDisk {
        network: topo.network.name.clone(),
    })
}
