//! Command line: clap definitions, parsing and rendering; each command calls one operation
//! of [`crate::ops`]. Core code never imports clap.

#[macro_use]
mod stdout;
#[macro_use]
mod hint;
mod apply;
mod dispatch;
mod foundry;
mod front;
mod interrupt;
mod join;
mod lifecycle;
mod logs;
pub mod output;
mod plan;
mod progress;
mod recovery;
pub mod reference;
mod status;
mod view;

use dispatch::workspace;

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
    /// Print only results and errors: no progress lines, no warnings
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: each change as it starts and every step of every node
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

// Examples shown in `--help`. `tests/it/help_examples.rs` runs every one of them on a real
// network, in the order of a session: keep them working.
const INIT_EXAMPLES: &str = "Examples:
  consort init --members 1
  consort init -f other.yaml --members 3";
const VALIDATE_EXAMPLES: &str = "Examples:
  consort validate
  consort validate -f other.yaml";
const PLAN_EXAMPLES: &str = "Examples:
  consort plan
  consort plan --json --out plan.json";
const APPLY_EXAMPLES: &str = "Examples:
  consort apply plan.json --yes
  consort apply --yes";
const STATUS_EXAMPLES: &str = "Examples:
  consort status
  consort status --json";
const OUTPUT_EXAMPLES: &str = "Examples:
  consort output
  consort output --format env > .env
  consort output --format foundry --write foundry.toml
  consort output --format prometheus > prometheus.yml
  consort output --json";
const LOGS_EXAMPLES: &str = "Examples:
  consort logs -n 5
  consort logs --member contoso -n 50
  consort logs contoso-validator-0
  consort logs contoso-tx-0 -n 5";
const MEMBER_ADD_EXAMPLES: &str = "Examples:
  consort member add delta --validators 0 --tx-nodes 1 --account ops=100ether --yes";
const MEMBER_REMOVE_EXAMPLES: &str = "Examples:
  consort member remove delta --yes --allow-data-loss   # delta/ops holds ether: its key is archived";
const INVITE_EXAMPLES: &str = "Examples:
  consort invite delta --validators 1 --tx-nodes 1 --account ops=10ether -o invite.json";
const JOIN_EXAMPLES: &str = "Examples:
  consort join invite.json -f delta/consort.yaml --address 127.0.0.2 --yes   # delta's own directory and state";
const ADMIT_EXAMPLES: &str = "Examples:
  consort admit delta/join-request.json --yes";
const STOP_EXAMPLES: &str = "Examples:
  consort stop";
const START_EXAMPLES: &str = "Examples:
  consort start";
const DESTROY_EXAMPLES: &str = "Examples:
  consort destroy --yes
  consort destroy --yes --allow-data-loss   # a chain other operators run: its signers and funded keys go (archived)";
const COMPLETIONS_EXAMPLES: &str = "Examples:
  consort completions bash > consort.bash
  consort completions zsh";
const SCHEMA_EXAMPLES: &str = "Examples:
  consort schema > consort.schema.json";
const DASHBOARD_EXAMPLES: &str = "Examples:
  consort dashboard --no-open            # then open http://127.0.0.1:8600/
  consort dashboard --port 0 --no-open   # a free port: it prints the URL";
const GRAPH_EXAMPLES: &str = "Examples:
  consort graph -o topology.svg
  consort graph --format dot | dot -Tpng -o topology.png
  consort graph --live -o now.svg";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter topology and its JSON Schema (for editors)
    #[command(after_long_help = INIT_EXAMPLES)]
    Init {
        /// Number of member organisations
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        members: u32,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Check the topology file and report every problem with its line and column
    #[command(after_long_help = VALIDATE_EXAMPLES)]
    Validate,
    /// Show what apply would change (a dry run: writes nothing, generates no key)
    #[command(after_long_help = PLAN_EXAMPLES)]
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
    #[command(after_long_help = APPLY_EXAMPLES)]
    Apply(ApplyArgs),
    /// Show the live network: nodes, peers, blocks, health
    #[command(after_long_help = STATUS_EXAMPLES)]
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show how to reach the network: RPC URLs, enodes, accounts and their keystores
    #[command(
        long_about = "Show how to reach the network: RPC URLs, enodes, accounts and their keystores.\n\n\
            Also the chain's EVM version (london: compile contracts for it) and what a wallet \
            such as MetaMask asks for. Only paths of keystore and password files are shown, \
            never their contents.",
        after_long_help = OUTPUT_EXAMPLES
    )]
    Output {
        /// text for people; json for programs; env: KEY=value lines (ETH_RPC_URL, CHAIN_ID,
        /// ETH_KEYSTORE, ETH_PASSWORD, per-node URLs) to `source` or put in .env; foundry:
        /// a foundry.toml profile; prometheus: a scrape configuration (a target per node)
        #[arg(long, value_enum, default_value = "text")]
        format: output::Format,
        /// Same as --format json
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// The member whose tx node and account env/foundry use (default: the first)
        #[arg(long, value_name = "NAME")]
        member: Option<String>,
        // "[rpc_endpoints]" is foundry.toml's table in --help text, not a doc link.
        #[allow(rustdoc::broken_intra_doc_links)]
        /// With --format foundry: merge the profile and [rpc_endpoints] into this
        /// foundry.toml (created if missing), keeping its other keys and comments; safe to
        /// repeat
        #[arg(long, value_name = "FOUNDRY_TOML")]
        write: Option<PathBuf>,
    },
    /// Show the nodes' geth logs: every node's interleaved by time, each line prefixed with
    /// its node's name, or one node's
    #[command(after_long_help = LOGS_EXAMPLES)]
    Logs {
        /// Node name, as `consort status` lists it (e.g. contoso-validator-0); without it,
        /// every node's log
        node: Option<String>,
        /// Only the nodes of this member
        #[arg(long, value_name = "NAME", conflicts_with = "node")]
        member: Option<String>,
        /// Number of lines from the end of each log to show
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing lines as geth writes them, until interrupted (-f is --file)
        #[arg(short = 'F', long)]
        follow: bool,
    },
    /// Stop every node and keep all data; `consort start` continues the chain from its head
    #[command(after_long_help = STOP_EXAMPLES)]
    Stop,
    /// Start a stopped network again on its data (what `apply` also does for stopped nodes)
    #[command(after_long_help = START_EXAMPLES)]
    Start {
        /// Seconds to wait for the network to become healthy
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// geth binary to use
        #[arg(long, env = "CONSORT_GETH", hide_env_values = true)]
        geth: Option<PathBuf>,
    },
    /// Tear the network down: stop and delete everything in state
    #[command(after_long_help = DESTROY_EXAMPLES)]
    Destroy {
        /// Do not ask for confirmation
        #[arg(long, visible_alias = "auto-approve")]
        yes: bool,
        /// On a chain other operators run: destroy even though this operator's signers
        /// stay signers nobody can use and its funded accounts' keys leave consort
        /// (archived, not deleted)
        #[arg(long)]
        allow_data_loss: bool,
    },
    /// Add or remove a member organisation on a running consortium
    #[command(subcommand)]
    Member(MemberCommand),
    /// Invite a member organisation that runs its own nodes and holds its own keys: writes
    /// an invitation (no secret in it) for `consort join`
    #[command(after_long_help = INVITE_EXAMPLES)]
    Invite {
        #[command(flatten)]
        member: NewMemberArgs,
        /// Where to write the invitation
        #[arg(short = 'o', long = "out", default_value = "invite.json")]
        out: PathBuf,
        /// Hours the invitation stays valid
        #[arg(long, default_value_t = 72)]
        valid_hours: u64,
    },
    /// Join a network with an invitation: writes this operator's topology (-f), generates
    /// its keys, starts its nodes and writes join-request.json for the network's operators
    #[command(after_long_help = JOIN_EXAMPLES)]
    Join {
        /// The invitation (`consort invite` wrote it)
        invite: PathBuf,
        /// The address this operator's nodes listen on and advertise (of this machine)
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        /// First TCP port for this operator's nodes
        #[arg(long)]
        base_port: Option<u16>,
        /// Where to write the join request (default: join-request.json beside the topology)
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        #[command(flatten)]
        apply: MemberApply,
    },
    /// Admit a member that joined: checks its join request, peers with its nodes and casts
    /// this operator's votes for its validators
    #[command(after_long_help = ADMIT_EXAMPLES)]
    Admit {
        /// The join request (`consort join` wrote it)
        request: PathBuf,
        /// The invitation, when another operator of the network issued it
        #[arg(long)]
        invite: Option<PathBuf>,
        #[command(flatten)]
        apply: MemberApply,
    },
    /// Export the deployment in another format
    #[command(subcommand)]
    Export(ExportCommand),
    /// Inspect or repair consort's state
    #[command(subcommand)]
    State(StateCommand),
    /// Print a shell completion script
    #[command(after_long_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// Shell to complete in
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of the topology file (generated from the types consort reads)
    #[command(after_long_help = SCHEMA_EXAMPLES)]
    Schema,
    /// Serve a live page of the network on 127.0.0.1: health, topology, signers, blocks,
    /// metrics and a block explorer (read-only), until Ctrl-C
    #[command(after_long_help = DASHBOARD_EXAMPLES)]
    Dashboard {
        /// Port on 127.0.0.1 (0: a free one; the URL is printed either way)
        #[arg(long, default_value_t = crate::dashboard::DEFAULT_PORT)]
        port: u16,
        /// Do not open a browser
        #[arg(long)]
        no_open: bool,
    },
    /// Draw the topology: members as groups, validators and tx nodes, signers, peer links
    #[command(after_long_help = GRAPH_EXAMPLES)]
    Graph {
        /// svg: drawn by consort (no Graphviz needed); dot: for Graphviz
        #[arg(long, value_enum, default_value = "svg")]
        format: GraphFormat,
        /// Write to FILE instead of standard output
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Peer links, signers and node states as the running nodes report them (local
        /// networks); without it, the links the topology plans
        #[arg(long)]
        live: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Svg,
    Dot,
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
    /// geth binary to use (a bare name such as `geth` is looked up on PATH); else consort's own cache, else built with `go install`
    #[arg(long, env = "CONSORT_GETH", hide_env_values = true)]
    pub geth: Option<PathBuf>,
}

/// A member organisation to add (`member add`) or invite (`invite`).
#[derive(Debug, Clone, Args)]
pub struct NewMemberArgs {
    /// Member name (2 to 24 lowercase letters, digits or '-')
    pub name: String,
    /// Clique signer nodes (each is voted in by the current signers)
    #[arg(long, default_value_t = 1)]
    pub validators: u32,
    /// Nodes that serve applications over JSON-RPC
    #[arg(long, default_value_t = 0)]
    pub tx_nodes: u32,
    /// A funded account NAME=BALANCE (e.g. ops=100ether); repeatable
    #[arg(long = "account", value_name = "NAME=BALANCE")]
    pub accounts: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member to the topology file, then plan and apply
    #[command(after_long_help = MEMBER_ADD_EXAMPLES)]
    Add {
        #[command(flatten)]
        member: NewMemberArgs,
        #[command(flatten)]
        apply: MemberApply,
    },
    /// Remove a member from the topology file, then plan and apply
    #[command(after_long_help = MEMBER_REMOVE_EXAMPLES)]
    Remove {
        /// Member name
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
    /// Seconds to wait for the network to become healthy (and for each vote to be
    /// confirmed by the signer set)
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Do not wait for the network to become healthy (votes are still confirmed)
    #[arg(long)]
    pub skip_health_check: bool,
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
    crate::provider::local::process::close_inherited_on_exec();
    crate::provider::local::process::raise_open_file_limit();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    hint::set_file(&cli.global.file);
    match dispatch::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = hint::hint(&format!("{e:#}"));
            // Topology diagnostics carry their own `error:` / `warning:` headers.
            if msg.starts_with("error") || msg.starts_with("warning:") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            e.downcast_ref::<dispatch::Exit>().map(|x| x.0).unwrap_or(1)
        }
    }
}
