//! `apply` and every command that ends in one (`destroy`, `member add/remove`, `start`,
//! `join`, `admit`): lock, load, plan (or check a saved plan), refuse what would lose data,
//! confirm, execute, clean up after a destroy, wait for health.

use super::plan::{mark_data_loss, plan_loaded, sha256_hex, unread_message, Planned};
use super::{Edit, Front, Notice, Workspace};
use crate::plan::{Change, Plan, Summary};
use crate::provider::{self, ApplyCtx, Health};
use crate::state::{fsutil, State};
use crate::state::{Action, Kind};
use crate::topology::Loaded;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub struct ApplyOpts<'a> {
    pub allow_data_loss: bool,
    /// Seconds to wait for the network to become healthy.
    pub timeout: u64,
    pub skip_health: bool,
    pub geth: Option<&'a Path>,
    pub saved_plan: Option<&'a Path>,
    /// `consort start`: refuse a plan that does more than start stopped nodes.
    pub only_restarts: bool,
    /// The command, as the lock names its holder: "apply", "member add", "start", ….
    pub command: &'static str,
}

/// A topology edit (`member add/remove`, `admit`) that is planned from memory and only
/// written to the file once its plan is accepted: a refused or cancelled change leaves the
/// file as it was.
pub struct PendingEdit {
    pub text: String,
    pub what: Edit,
}

/// How an apply ended (errors aside).
pub enum ApplyOutcome {
    /// `start` of a network whose nodes all run.
    AllRunning { network: String },
    /// Ctrl-C before any change.
    InterruptedBeforeChange,
    /// The user said no; `edit`: the topology file was left as it was.
    Cancelled { edit: bool },
    /// Nothing to do and nothing to check.
    Nothing,
    /// Ctrl-C during the changes: `done` saved, `skipped` not started.
    Interrupted {
        done: usize,
        skipped: usize,
        destroy: bool,
    },
    /// Ctrl-C after every change, before the health check.
    InterruptedBeforeHealth { done: usize },
    /// `destroy` finished; `kept_archive`: the archived keys left for a shared chain.
    Destroyed {
        destroyed: usize,
        kept_archive: Option<PathBuf>,
    },
    /// `destroy` without state found nothing of `network` in `root`.
    NothingToDestroy { network: String, root: PathBuf },
    /// `destroy` without state deleted everything it found of `network`.
    DestroyedFromDisk { network: String },
    /// Applied without the health check.
    HealthSkipped { summary: Summary, start: bool },
    /// Applied (or nothing to apply) and healthy.
    Healthy {
        network: String,
        summary: Summary,
        /// The plan had no changes.
        nothing: bool,
        start: bool,
        health: Box<Health>,
        loaded: Box<Loaded>,
        state: Box<State>,
    },
}

impl ApplyOutcome {
    /// The process exit code this outcome means.
    pub fn code(&self) -> i32 {
        match self {
            ApplyOutcome::Cancelled { .. } => 1,
            ApplyOutcome::InterruptedBeforeChange
            | ApplyOutcome::Interrupted { .. }
            | ApplyOutcome::InterruptedBeforeHealth { .. } => 130,
            _ => 0,
        }
    }
}

/// A change that only starts a stopped node again (what `consort start` may do).
pub fn is_restart(c: &Change) -> bool {
    matches!(c.kind, Kind::LocalNode | Kind::AzureVm)
        && c.action == Action::Update
        && c.reason.contains("not running")
}

pub fn apply(
    ws: &Workspace,
    o: ApplyOpts,
    destroy: bool,
    edit: Option<PendingEdit>,
    front: &dyn Front,
) -> Result<ApplyOutcome> {
    if let Some(geth) = o.geth {
        std::env::set_var("CONSORT_GETH", geth);
    }
    let file = &ws.file;
    let loaded = match &edit {
        None => ws.load()?,
        Some(e) => ws.parse(&e.text)?,
    };
    // Lock first, then plan against the state we hold.
    let sd = ws.state_dir(&loaded.topology.network.name);
    let _lock = sd.lock(if destroy { "destroy" } else { o.command })?;
    let Planned {
        loaded,
        sd,
        state,
        provider,
        plan,
    } = plan_loaded(ws, loaded, destroy, false, true).map_err(|e| match &edit {
        Some(_) => anyhow!("{e:#}\n{} is unchanged.", file.display()),
        None => e,
    })?;
    let write_edit = |e: &PendingEdit| -> Result<()> {
        fsutil::write_atomic(file, e.text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", file.display()))?;
        front.notice(Notice::TopologyWritten(&e.what));
        Ok(())
    };
    let plan = match o.saved_plan {
        None => plan,
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read plan {}", path.display()))?;
            let saved: Plan = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a consort plan", path.display()))?;
            check_saved_plan(&saved, &loaded, state.as_ref(), path)?;
            let mut saved = saved;
            // What it loses is judged now, on the live network, not when it was saved.
            mark_data_loss(&mut saved, state.as_ref(), &loaded.topology);
            saved
        }
    };
    if o.only_restarts {
        let others: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| !is_restart(c))
            .map(|c| c.addr.as_str())
            .collect();
        if !others.is_empty() {
            bail!(
                "network {} has changes besides starting stopped nodes ({}); review them with `consort plan` and make them with `consort apply`",
                plan.network,
                others.join(", ")
            );
        }
        if plan.is_empty() {
            return Ok(ApplyOutcome::AllRunning {
                network: plan.network.clone(),
            });
        }
    }
    front.show_plan(&plan);
    if !plan.data_loss.is_empty() && !o.allow_data_loss {
        let mut msg = format!(
            "refusing to apply: {} change(s) would lose data that exists nowhere else:",
            plan.data_loss.len()
        );
        for l in &plan.data_loss {
            msg.push_str(&format!("\n  ! {}: {}", l.addr, l.what));
        }
        let resync = plan
            .changes
            .iter()
            .any(|c| crate::plan::loss::is_corrupt_resync(c) && !o.allow_data_loss);
        msg.push_str(if destroy {
            "\nPass --allow-data-loss if this is really meant (the keys are archived, not deleted)."
        } else if resync {
            "\nPass --allow-data-loss to delete the corrupt chain data and resync it from peers, or \
             restore that node's geth/chaindata from a backup (while it is stopped) and run apply again."
        } else {
            "\nRevert the topology change, or pass --allow-data-loss if this is really meant."
        });
        if edit.is_some() {
            msg.push_str(&format!("\n{} is unchanged.", file.display()));
        }
        bail!(msg);
    }
    if front.interrupted() {
        return Ok(ApplyOutcome::InterruptedBeforeChange);
    }
    // No changes: still make sure the network is healthy (an interrupted run may have
    // created every node but not started sealing), so apply exits 0 only when it is.
    let nothing = plan.is_empty();
    if nothing && !plan.unread.is_empty() {
        bail!(
            "{}\nNothing was changed.{}",
            unread_message(&plan),
            edit.as_ref()
                .map(|_| format!(" {} is unchanged.", file.display()))
                .unwrap_or_default()
        );
    }
    if nothing {
        if let Some(e) = &edit {
            write_edit(e)?;
        }
        // A destroy killed after its last change still has leftovers to clean up (its
        // empty state, the lock, key dirs): go on to the cleanup below.
        // Record-only steps (already done on the network) still go into state.
        if state.is_none() || (!destroy && o.skip_health && plan.changes.is_empty()) {
            return Ok(ApplyOutcome::Nothing);
        }
    } else {
        let question = if destroy {
            format!("destroy network {}", plan.network)
        } else {
            "perform these actions".to_string()
        };
        if !front.confirm(&question)? {
            return Ok(ApplyOutcome::Cancelled {
                edit: edit.is_some(),
            });
        }
        // Accepted: from here on the file says what the network is becoming.
        if let Some(e) = &edit {
            write_edit(e)?;
        }
    }
    let state = state.unwrap_or_else(|| State::new(&loaded.topology.network.name, provider.name()));
    let ctx = ApplyCtx {
        topology: &loaded.topology,
        state: Mutex::new(state),
        state_dir: &sd,
        events: front.events(),
        interrupted: front.interrupt_flag(),
        health_timeout: Duration::from_secs(o.timeout),
        failed: Default::default(),
        peering: Default::default(),
    };
    let report = provider::execute(provider.as_ref(), &ctx, &plan.changes)?;
    let moved = provider::moved_ports(&plan.ports, &ctx.state.lock().unwrap());
    if !moved.is_empty() {
        front.notice(Notice::PortsMoved(&moved));
    }
    if report.interrupted {
        // Asking makes the front end say it noticed (once).
        let _ = front.interrupted();
    }
    if report.interrupted || (front.interrupted() && report.failed.is_empty()) {
        return Ok(ApplyOutcome::Interrupted {
            done: report.done.len(),
            skipped: report.skipped.len(),
            destroy,
        });
    }
    if !report.failed.is_empty() {
        let mut msg = format!(
            "apply failed: {} change(s) done and saved, {} failed, {} not started:",
            report.done.len(),
            report.failed.len(),
            report.skipped.len()
        );
        for (addr, err) in &report.failed {
            msg.push_str(&format!("\n  {addr}: {err}"));
        }
        if report
            .failed
            .iter()
            .any(|(_, e)| e.contains("No space left on device"))
        {
            msg.push_str(&format!(
                "\nThe disk holding {} is full: free space there (`df -h {}`), then run the command again: it continues from what was saved.",
                sd.root.display(),
                sd.root.display()
            ));
        } else {
            msg.push_str(
                "\nFix the cause and run the command again: it continues from what was saved.",
            );
        }
        bail!(msg);
    }
    if destroy {
        let kept_archive = super::destroy::after_destroy(provider.as_ref(), &loaded, &sd, &ctx)?;
        return Ok(ApplyOutcome::Destroyed {
            destroyed: plan.summary().destroy,
            kept_archive,
        });
    }
    let s = plan.summary();
    let interrupted_exit = || {
        Ok(ApplyOutcome::InterruptedBeforeHealth {
            done: report.done.len(),
        })
    };
    if let Err(e) = provider.after_apply(&ctx) {
        if front.interrupted() {
            return interrupted_exit();
        }
        return Err(e.into());
    }
    if front.interrupted() {
        return interrupted_exit();
    }
    if o.skip_health {
        return Ok(ApplyOutcome::HealthSkipped {
            summary: s,
            start: o.only_restarts,
        });
    }
    if !nothing {
        (front.events())(crate::events::Event::Phase {
            message: "waiting for the network to become healthy".to_string(),
        });
    }
    let health = provider.wait_healthy(&ctx);
    if health.is_err() && front.interrupted() {
        return interrupted_exit();
    }
    let health = health?;
    let state = ctx.state.lock().unwrap().clone();
    Ok(ApplyOutcome::Healthy {
        network: plan.network.clone(),
        summary: s,
        nothing,
        start: o.only_restarts,
        health: Box::new(health),
        loaded: Box::new(loaded),
        state: Box::new(state),
    })
}

fn check_saved_plan(
    saved: &Plan,
    loaded: &Loaded,
    state: Option<&State>,
    path: &Path,
) -> Result<()> {
    if saved.network != loaded.topology.network.name {
        bail!(
            "{} is a plan for network {}, but {} describes network {}",
            path.display(),
            saved.network,
            loaded.path.display(),
            loaded.topology.network.name
        );
    }
    let (lineage, serial) = (
        state.map(|s| s.lineage.clone()),
        state.map(|s| s.serial).unwrap_or(0),
    );
    if saved.state_lineage != lineage || saved.state_serial != serial {
        bail!(
            "{} is stale: state has moved on since it was made (plan serial {}, state serial {}). \
             Run `consort plan --out {}` again and review it.",
            path.display(),
            saved.state_serial,
            serial,
            path.display()
        );
    }
    if saved.topology_sha256 != sha256_hex(loaded.source.as_bytes()) {
        bail!(
            "{} was made from a different version of {}; run `consort plan --out {}` again",
            path.display(),
            loaded.path.display(),
            path.display()
        );
    }
    Ok(())
}
