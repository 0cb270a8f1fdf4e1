//! The terminal as the front end of an operation: progress, the plan before the question,
//! the confirmation, what the operation tells on the way, and how an apply ended.

use super::dispatch::progress;
use super::interrupt::{confirm, counting, interrupted, INTERRUPTED};
use super::output;
use super::progress::Progress;
use crate::events::EventSink;
use crate::ops::apply::ApplyOutcome;
use crate::ops::{Edit, Front, Notice};
use crate::plan::{display, Plan};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub(super) struct Terminal {
    progress: Progress,
    /// `--yes`: no question asked.
    yes: bool,
    /// The topology file, as the messages name it.
    file: PathBuf,
}

impl Terminal {
    pub(super) fn new(file: &Path, yes: bool) -> Terminal {
        Terminal {
            progress: progress(),
            yes,
            file: file.to_path_buf(),
        }
    }

    /// Ends the progress view (before the result is printed).
    pub(super) fn finish(&self) {
        self.progress.finish();
    }

    /// Prints how an apply ended; returns the exit code.
    pub(super) fn outcome(&self, o: &ApplyOutcome) -> i32 {
        self.finish();
        match o {
            ApplyOutcome::AllRunning { network } => {
                say!("Every node of network {network} is running already.")
            }
            ApplyOutcome::InterruptedBeforeChange => {
                say_err!("Interrupted before any change: nothing was changed.")
            }
            ApplyOutcome::Cancelled { edit: true } => say!(
                "Cancelled: nothing was changed, {} included.",
                self.file.display()
            ),
            ApplyOutcome::Cancelled { edit: false } => say!("Cancelled: nothing was changed."),
            ApplyOutcome::Nothing => {}
            ApplyOutcome::Interrupted {
                done,
                skipped,
                destroy,
            } => say_err!(
                "Interrupted: {done} change(s) done and saved, {skipped} not started. Run `consort {}` again to converge.",
                if *destroy { "destroy" } else { "apply" }
            ),
            ApplyOutcome::InterruptedBeforeHealth { done } => say_err!(
                "Interrupted: all {done} change(s) done and saved; the network was not checked for \
                 health. `consort status` shows it; `consort apply` finishes the job."
            ),
            ApplyOutcome::Destroyed {
                destroyed,
                kept_archive,
            } => {
                say!("Destroy complete: {destroyed} resource(s) destroyed.");
                if let Some(archive) = kept_archive {
                    say!(
                        "The keys stay archived under {}: the chain other operators run still knows \
                         their addresses. Delete them yourself once they are voted out and emptied.",
                        archive.display()
                    );
                }
            }
            ApplyOutcome::NothingToDestroy { network, root } => say!(
                "No changes. Nothing to destroy: network {network} has nothing in state or in {}.",
                root.display()
            ),
            ApplyOutcome::DestroyedFromDisk { network } => say!(
                "Destroy complete: everything consort found of network {network} is gone."
            ),
            ApplyOutcome::HealthSkipped { summary: s, start } => {
                if *start {
                    say!("Started {} node(s) (health check skipped).", s.change);
                } else {
                    say!(
                        "Apply complete: {} added, {} changed, {} destroyed (health check skipped).",
                        s.add, s.change, s.destroy
                    );
                }
            }
            ApplyOutcome::Healthy {
                network,
                summary: s,
                nothing,
                start,
                health,
                loaded,
                state,
            } => {
                if *nothing {
                    say!(
                        "Network {network} is healthy: {} node(s) peered, head #{}.",
                        health.nodes.len(),
                        health.head
                    );
                    return 0;
                }
                if *start {
                    // `consort start`: what it did, in its own words.
                    say!(
                        "Started {} node(s). Network {network} is healthy: {} node(s) peered, head #{}.",
                        s.change,
                        health.nodes.len(),
                        health.head
                    );
                } else {
                    say!(
                        "Apply complete: {} added, {} changed, {} destroyed. Network {network} is healthy: {} node(s) peered, head #{}.",
                        s.add,
                        s.change,
                        s.destroy,
                        health.nodes.len(),
                        health.head
                    );
                }
                say_raw!(
                    "{}",
                    output::render_text(&output::output_json(&loaded.topology, state))
                );
            }
        }
        o.code()
    }
}

impl Front for Terminal {
    fn events(&self) -> EventSink {
        counting(self.progress.sink())
    }

    fn show_plan(&self, plan: &Plan) {
        say_raw!("{}", display::render(plan));
    }

    fn confirm(&self, question: &str) -> anyhow::Result<bool> {
        confirm(question, self.yes)
    }

    fn notice(&self, notice: Notice) {
        let file = self.file.display();
        match notice {
            Notice::TopologyWritten(Edit::MemberAdded { name }) => {
                say!("Added member {name} to {file}.")
            }
            Notice::TopologyWritten(Edit::MemberRemoved { name }) => {
                say!("Removed member {name} from {file}.")
            }
            Notice::TopologyWritten(Edit::Admitted { name, invitation }) => say!(
                "Admitted {name} (invitation {invitation}) to {file} as an external member."
            ),
            Notice::FinishingMember { name, adding: true } => {
                say!("Member {name} is already in {file}: finishing its addition.")
            }
            Notice::FinishingMember {
                name,
                adding: false,
            } => say!(
                "Member {name} is no longer in {file} but the network still has some of it: finishing its removal."
            ),
            Notice::JoinResumed { invitation } => {
                say!("{file} joined with invitation {invitation} already: finishing.")
            }
            Notice::JoinWrote { member, network } => say!(
                "Wrote {file} for member {member} of network {network} (its other members are external: run by other operators)."
            ),
            Notice::FoundOnDisk {
                network,
                root,
                state_file,
                corrupt,
                found,
                cloud,
            } => {
                match corrupt {
                    Some(e) => say!("{e}\n"),
                    None => say!("{} is missing.", state_file.display()),
                }
                say!(
                    "consort found this of network {network} in {}:\n  {}",
                    root.display(),
                    found.join("\n  ")
                );
                say!(
                    "\nDestroying stops every geth process listed and deletes everything listed, keys included."
                );
                if cloud {
                    say!(
                        "Without state consort cannot find the cloud resources of this network: delete them \
                         in the cloud yourself (Azure: its resource group)."
                    );
                }
            }
            Notice::PortsMoved(moved) => {
                if let Some(line) = display::moved_ports_line(moved) {
                    self.finish();
                    say!("{line}");
                }
            }
            Notice::StoppedProcesses(n) => say!("Stopped {n} geth process(es)."),
            Notice::StateMovedAside {
                state_file,
                reason,
                aside,
            } => say!(
                "{} was not valid ({reason}); moved it to {} and rebuilt state from disk.",
                state_file.display(),
                aside.display()
            ),
        }
    }

    fn interrupt_flag(&self) -> &'static AtomicBool {
        &INTERRUPTED
    }

    fn interrupted(&self) -> bool {
        interrupted()
    }
}
