//! Operations: each command's walk along the pipeline (topology → plan → provider → state),
//! returning values — plans, outcomes, errors — and emitting events. Every front end (the
//! CLI, the dashboard, a future server) calls these; none of them prints or knows clap.
//!
//! What an operation needs from its front end while it runs (showing the plan before
//! asking, the confirmation, progress events, Ctrl-C) is the [`Front`] trait; what it has
//! to tell on the way is a [`Notice`]; what it ends with is its outcome type.

pub mod apply;
pub mod destroy;
pub mod join;
pub mod lifecycle;
pub mod member;
pub mod plan;
pub mod recover;
pub mod setup;
pub mod status;

use crate::events::EventSink;
use crate::plan::Plan;
use crate::provider::recover as found;
use crate::state::{State, StateDir};
use crate::topology::{self, Loaded};
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Where an operation finds its network: the topology file and the state directory.
#[derive(Clone)]
pub struct Workspace {
    /// The topology file (`-f`).
    pub file: PathBuf,
    /// The state directory's base (`--state-dir`); default: `.consort` beside the file.
    pub state_base: Option<PathBuf>,
    /// Called with every topology loaded (the front end shows its warnings).
    pub on_loaded: fn(&Loaded),
}

impl Workspace {
    /// The state directory of `network`.
    pub fn state_dir(&self, network: &str) -> StateDir {
        let base = match &self.state_base {
            Some(d) => d.clone(),
            None => {
                let parent = self
                    .file
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                parent.join(".consort")
            }
        };
        // Absolute, so every path recorded in state works from any directory.
        let base = std::path::absolute(&base).unwrap_or(base);
        StateDir::new(&base, network)
    }

    /// The topology file, loaded and validated.
    pub fn load(&self) -> Result<Loaded> {
        let loaded = topology::load(&self.file).map_err(|e| anyhow!("{e}"))?;
        (self.on_loaded)(&loaded);
        Ok(loaded)
    }

    /// `text` as the topology file would read (an edit not written yet).
    pub fn parse(&self, text: &str) -> Result<Loaded> {
        let loaded = topology::parse(&self.file, text.as_bytes()).map_err(|e| anyhow!("{e}"))?;
        (self.on_loaded)(&loaded);
        Ok(loaded)
    }

    /// The directory beside the topology file.
    pub fn dir(&self) -> &Path {
        self.file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// The topology, its state dir and its state, for operations that need a deployed
    /// network; without state: the lost-state refusal when the state dir still holds the
    /// network's data, else "nothing is deployed".
    pub fn deployed(&self) -> Result<(Loaded, StateDir, State)> {
        let loaded = self.load()?;
        let sd = self.state_dir(&loaded.topology.network.name);
        let Some(state) = sd.load()? else {
            let found = found::unaccounted(&loaded.topology, &sd, None);
            if !found.is_empty() {
                bail!(found::refusal(&sd, None, &found, &self.file));
            }
            bail!(
                "network {} has no state in {}: nothing is deployed (run `consort apply`)",
                loaded.topology.network.name,
                sd.root.display()
            );
        };
        Ok((loaded, sd, state))
    }
}

/// Something an operation tells its user on the way (the outcome comes at the end).
pub enum Notice<'a> {
    /// The edited topology was written: the plan was accepted.
    TopologyWritten(&'a Edit),
    /// An interrupted `member add` / `member remove` is being finished.
    FinishingMember {
        name: &'a str,
        /// Still in the topology (an add) or gone from it (a remove).
        adding: bool,
    },
    /// `join` found its own earlier, interrupted run.
    JoinResumed { invitation: &'a str },
    /// `join` wrote the joining member's topology.
    JoinWrote { member: &'a str, network: &'a str },
    /// `destroy` without a usable state found this on disk (asked about next).
    FoundOnDisk {
        network: &'a str,
        root: &'a Path,
        state_file: &'a Path,
        /// Why state was unusable: `None` when it is missing.
        corrupt: Option<&'a str>,
        found: &'a [String],
        /// Cloud resources exist that only state could find.
        cloud: bool,
    },
    /// Nodes that got other ports than planned (a planned one was taken meanwhile): node →
    /// (which port, planned, got).
    PortsMoved(&'a std::collections::BTreeMap<String, Vec<(&'static str, u16, u16)>>),
    /// `destroy` without state stopped this many geth processes.
    StoppedProcesses(usize),
    /// `state recover` moved an unreadable state file aside.
    StateMovedAside {
        state_file: &'a Path,
        reason: &'a str,
        aside: &'a Path,
    },
}

/// What a topology edit does.
#[derive(Debug, Clone)]
pub enum Edit {
    MemberAdded {
        name: String,
    },
    MemberRemoved {
        name: String,
    },
    /// A joining member admitted with its invitation.
    Admitted {
        name: String,
        invitation: String,
    },
}

/// What an operation needs from the front end that runs it.
pub trait Front: Sync {
    /// Where progress events go.
    fn events(&self) -> EventSink;
    /// The plan about to be applied (shown before asking).
    fn show_plan(&self, plan: &Plan);
    /// Asks to `question` ("perform these actions"); true to go ahead.
    fn confirm(&self, question: &str) -> Result<bool>;
    /// Tells the user something on the way.
    fn notice(&self, notice: Notice);
    /// The flag the executor watches: set once the user asked to stop.
    fn interrupt_flag(&self) -> &'static AtomicBool;
    /// Whether the user asked to stop (the front end may say it noticed).
    fn interrupted(&self) -> bool;
}
