//! `consort state recover`, and `consort destroy` without a usable state: the CLI side
//! of `provider::recover` (what is found on disk, and rebuilding state from it).

use super::commands::{load, state_dir};
use super::interrupt::confirm;
use super::Global;
use crate::provider::{self, recover};
use crate::state::{StateDir, StateError};
use crate::topology::{self, Loaded};
use anyhow::{anyhow, Context, Result};
use std::path::Path;

pub(super) fn remove_path(p: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(p) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    };
    r.with_context(|| format!("cannot remove {}; remove it by hand", p.display()))
}

/// State files `state recover` moved aside (`state.json.corrupt-<time>`): a destroy that
/// leaves nothing removes them too.
pub(super) fn remove_set_aside_states(sd: &StateDir) -> Result<()> {
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
pub(super) fn destroy_from_disk(
    loaded: &Loaded,
    sd: &StateDir,
    yes: bool,
    corrupt: Option<String>,
) -> Result<i32> {
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
        say!(
            "No changes. Nothing to destroy: network {} has nothing in state or in {}.",
            topo.network.name,
            sd.root.display()
        );
        remove_dirs();
        return Ok(0);
    }
    match &corrupt {
        Some(e) => say!("{e}\n"),
        None => say!("{} is missing.", sd.state_file().display()),
    }
    say!(
        "consort found this of network {} in {}:\n  {}",
        topo.network.name,
        sd.root.display(),
        found.join("\n  ")
    );
    say!(
        "\nDestroying stops every geth process listed and deletes everything listed, keys included."
    );
    if !matches!(topo.provider, topology::ProviderConfig::Local(_)) {
        say!(
            "Without state consort cannot find the cloud resources of this network: delete them \
             in the cloud yourself (Azure: its resource group)."
        );
    }
    if !confirm(&format!("destroy network {}", topo.network.name), yes)? {
        say!("Cancelled: nothing was changed.");
        return Ok(1);
    }
    if matches!(topo.provider, topology::ProviderConfig::Local(_)) {
        let stopped = provider::local::recover::stop_all(sd).map_err(|e| anyhow!(e))?;
        say!("Stopped {stopped} geth process(es).");
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
    say!(
        "Destroy complete: everything consort found of network {} is gone.",
        topo.network.name
    );
    Ok(0)
}

/// `consort state recover`: rebuilds state from the files in the state dir.
pub(super) fn state_recover(g: &Global) -> Result<i32> {
    let loaded = load(g)?;
    let topo = &loaded.topology;
    let sd = state_dir(g, &topo.network.name);
    let _lock = sd.lock("state recover")?;
    let existing = match sd.load() {
        Ok(s) => s,
        Err(StateError::Corrupt { reason, .. }) => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let aside = sd.root.join(format!("state.json.corrupt-{stamp}"));
            std::fs::rename(sd.state_file(), &aside)
                .with_context(|| format!("cannot move {} aside", sd.state_file().display()))?;
            say!(
                "{} was not valid ({reason}); moved it to {} and rebuilt state from disk.",
                sd.state_file().display(),
                aside.display()
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let provider = provider::for_topology(topo)?;
    let had_state = existing.is_some();
    let rec = recover::recover(topo, &sd, existing, provider.as_ref())?;
    if rec.recovered.is_empty() {
        say!(
            "Nothing to recover: {} already lists everything consort found in {} that the topology names.",
            if had_state { "state" } else { "there is no state and" },
            sd.root.display()
        );
    } else {
        let mut st = rec.state;
        sd.save(&mut st)?;
        say!(
            "Recovered {} resource(s) of network {} into {}:\n  {}",
            rec.recovered.len(),
            topo.network.name,
            sd.state_file().display(),
            rec.recovered.join("\n  ")
        );
    }
    if !rec.skipped.is_empty() {
        say!("Not recovered:\n  {}", rec.skipped.join("\n  "));
    }
    say!(
        "Next: `consort plan -f {}` shows what apply still has to do (for an unchanged topology: \
         at most restarting nodes that are not running).",
        g.file.display()
    );
    Ok(0)
}
