//! Command line: clap definitions and dispatch. Core code never imports clap.

mod commands;
mod interrupt;
mod progress;
mod recovery;
pub mod reference;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "consort",
    version,
    about = "Deploy private Ethereum consortium networks (geth, Clique PoA) as infrastructure-as-code",
    long_about = "Deploy private Ethereum consortium networks (geth, Clique PoA) as infrastructure-as-code.\n\n\
        A topology file (consort.yaml) describes the network, its members with their validators, \
        transaction nodes and funded accounts, and a provider (local geth processes or Azure). \
        `plan` shows what would change; `apply` makes it so and waits until the network is healthy."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Topology file
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "consort.yaml"
    )]
    pub file: PathBuf,
    /// State directory (default: .consort beside the topology file)
    #[arg(long, global = true, env = "CONSORT_STATE_DIR", hide_env_values = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter topology
    Init {
        /// Number of member organisations
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        members: u32,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Check the topology file and report every problem with its line and column
    Validate,
    /// Show what apply would change (a dry run: writes nothing, generates no key)
    Plan {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        /// Save the plan; `consort apply PLAN` applies exactly it (refused if state moved on)
        #[arg(long, value_name = "PLAN")]
        out: Option<PathBuf>,
        /// Plan the destruction of everything in state
        #[arg(long)]
        destroy: bool,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error
        #[arg(long)]
        detailed_exitcode: bool,
        /// Compare state with what actually exists (Azure: needs credentials); local
        /// networks always check their processes
        #[arg(long)]
        refresh: bool,
    },
    /// Make the network match the topology, then wait until it is healthy
    Apply(ApplyArgs),
    /// Show the live network: nodes, peers, blocks, health
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show how to reach the network: RPC URLs, enodes, accounts and their keystores
    Output {
        #[arg(long)]
        json: bool,
    },
    /// Tear the network down: stop and delete everything in state
    Destroy {
        /// Do not ask for confirmation
        #[arg(long, visible_alias = "auto-approve")]
        yes: bool,
    },
    /// Add or remove a member organisation on a running consortium
    #[command(subcommand)]
    Member(MemberCommand),
    /// Export the deployment in another format
    #[command(subcommand)]
    Export(ExportCommand),
    /// Inspect or repair consort's state
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Rebuild state.json from the files in the state directory (keys, genesis.json, node
    /// data dirs, pid files) and the running nodes, so a network whose state was lost or
    /// damaged carries on: same addresses, same chain
    Recover,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `consort plan --out`
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Seconds to wait for the network to become healthy
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Do not wait for the network to become healthy
    #[arg(long)]
    pub skip_health_check: bool,
    /// Apply a plan even though it loses chain data or the key of a funded account (the
    /// `!` lines of the plan)
    #[arg(long)]
    pub allow_data_loss: bool,
    /// geth binary to use (else PATH, then consort's cache, else built with `go install`)
    #[arg(long, env = "CONSORT_GETH", hide_env_values = true)]
    pub geth: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member to the topology file, then plan and apply
    Add {
        name: String,
        #[arg(long, default_value_t = 1)]
        validators: u32,
        #[arg(long, default_value_t = 0)]
        tx_nodes: u32,
        /// A funded account NAME=BALANCE (e.g. ops=100ether); repeatable
        #[arg(long = "account", value_name = "NAME=BALANCE")]
        accounts: Vec<String>,
        #[command(flatten)]
        apply: MemberApply,
    },
    /// Remove a member from the topology file, then plan and apply
    Remove {
        name: String,
        #[command(flatten)]
        apply: MemberApply,
    },
}

#[derive(Debug, Args)]
pub struct MemberApply {
    /// Do not ask for confirmation
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Seconds to wait for the network to become healthy
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// geth binary to use
    #[arg(long, env = "CONSORT_GETH", hide_env_values = true)]
    pub geth: Option<PathBuf>,
    /// Apply even though the change loses chain data or the key of a funded account
    #[arg(long)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write an ARM template (azuredeploy.json + parameters) equivalent to what apply creates
    Arm {
        /// Output directory
        #[arg(short = 'o', long = "out-dir", default_value = "arm")]
        out_dir: PathBuf,
    },
}

/// Runs the CLI; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            // Topology diagnostics carry their own `error:` headers.
            if msg.starts_with("error") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            e.downcast_ref::<commands::Exit>().map(|x| x.0).unwrap_or(1)
        }
    }
}
