//! From parsed arguments to one operation: the verbosity, the interrupt handler, the
//! [`Workspace`] every operation works in, and the command → function table.

use super::interrupt::install_interrupt_handler;
use super::output::Format;
use super::progress::Progress;
use super::{Cli, Command, ExportCommand, Global, MemberCommand, StateCommand};
use crate::ops::Workspace;
use crate::topology::{self, Loaded};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};

/// An exit code carried through anyhow (e.g. 130 after Ctrl-C).
#[derive(Debug)]
pub struct Exit(pub i32);
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

/// -1 quiet, 0 normal, 1 verbose (set once, from the global flags).
static LEVEL: AtomicI8 = AtomicI8::new(0);

pub(super) fn level() -> i8 {
    LEVEL.load(Ordering::Relaxed)
}

pub(super) fn progress() -> Progress {
    Progress::new(level())
}

/// Topology warnings go to stderr once per command, however often it loads the file.
static WARNED: AtomicBool = AtomicBool::new(false);

fn print_warnings(loaded: &Loaded) {
    if level() < 0 || loaded.warnings.is_empty() || WARNED.swap(true, Ordering::SeqCst) {
        return;
    }
    for w in &loaded.warnings {
        say_err!("{w}\n");
    }
}

/// Where the operations of this command line work: `-f` and `--state-dir`.
pub(super) fn workspace(g: &Global) -> Workspace {
    Workspace {
        file: g.file.clone(),
        state_base: g.state_dir.clone(),
        on_loaded: print_warnings,
    }
}

pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = cli.global;
    if matches!(
        cli.command,
        Command::Apply(_)
            | Command::Destroy { .. }
            | Command::Member(_)
            | Command::Start { .. }
            | Command::Join { .. }
            | Command::Admit { .. }
    ) {
        install_interrupt_handler();
    }
    LEVEL.store(
        if g.quiet { -1 } else { i8::from(g.verbose) },
        Ordering::Relaxed,
    );
    match cli.command {
        Command::Init { members, force } => super::status::init(&g, members, force),
        Command::Validate => super::status::validate(&g),
        Command::Plan {
            json,
            out,
            destroy,
            detailed_exitcode,
            refresh,
        } => super::plan::plan(&g, json, out, destroy, detailed_exitcode, refresh),
        Command::Apply(a) => super::apply::apply(&g, &a),
        Command::Status { json } => super::status::status(&g, json),
        Command::Output {
            format,
            json,
            member,
            write,
        } => super::status::output(
            &g,
            if json { Format::Json } else { format },
            member.as_deref(),
            write.as_deref(),
        ),
        Command::Logs {
            node,
            member,
            lines,
            follow,
        } => super::logs::logs(&g, node.as_deref(), member.as_deref(), lines, follow),
        Command::Stop => super::lifecycle::stop(&g),
        Command::Start { timeout, geth } => super::lifecycle::start(&g, timeout, geth.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "consort", &mut std::io::stdout());
            Ok(0)
        }
        Command::Schema => {
            out!("{}", topology::schema::json_schema_text());
            Ok(0)
        }
        Command::Destroy {
            yes,
            allow_data_loss,
        } => super::apply::destroy(&g, yes, allow_data_loss),
        Command::Member(MemberCommand::Add { member, apply: a }) => {
            super::apply::member_add(&g, member, &a)
        }
        Command::Member(MemberCommand::Remove { name, apply: a }) => {
            super::apply::member_remove(&g, &name, &a)
        }
        Command::Invite {
            member,
            out,
            valid_hours,
        } => super::join::invite(&g, member, &out, valid_hours),
        Command::Join {
            invite,
            address,
            base_port,
            out,
            apply,
        } => super::join::join(&g, &invite, &address, base_port, out.as_deref(), &apply),
        Command::Admit {
            request,
            invite,
            apply,
        } => super::join::admit(&g, &request, invite.as_deref(), &apply),
        Command::Export(ExportCommand::Arm { out_dir }) => super::status::export_arm(&g, &out_dir),
        Command::Dashboard { port, no_open } => super::view::dashboard(&g, port, no_open),
        Command::Graph { format, out, live } => {
            super::view::graph(&g, format, out.as_deref(), live)
        }
        Command::State(StateCommand::Recover) => super::recovery::state_recover(&g),
    }
}
