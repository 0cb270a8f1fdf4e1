//! One function per command: each a walk along load → plan → apply → health.

use super::interrupt::{
    announce_interrupt, confirm, counting, install_interrupt_handler, interrupted, INTERRUPTED,
};
use super::output::{self, Format};
use super::progress::Progress;
use super::recovery::{destroy_from_disk, remove_path, remove_set_aside_states, state_recover};
use super::{
    ApplyArgs, Cli, Command, ExportCommand, Global, MemberApply, MemberCommand, NewMemberArgs,
    StateCommand,
};
use crate::plan::build::{build, PlanInput};
use crate::plan::{display, Plan};
use crate::provider::{self, recover, ApplyCtx, Provider};
use crate::state::{fsutil, State, StateDir, StateError};
use crate::topology::{self, Loaded};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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
static LEVEL: std::sync::atomic::AtomicI8 = std::sync::atomic::AtomicI8::new(0);

pub(super) fn level() -> i8 {
    LEVEL.load(Ordering::Relaxed)
}

pub(super) fn progress() -> Progress {
    Progress::new(level())
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
        Command::Init { members, force } => init(&g, members, force),
        Command::Validate => validate(&g),
        Command::Plan {
            json,
            out,
            destroy,
            detailed_exitcode,
            refresh,
        } => plan(&g, json, out, destroy, detailed_exitcode, refresh),
        Command::Apply(a) => apply(&g, &a),
        Command::Status { json } => status(&g, json),
        Command::Output {
            format,
            json,
            member,
            write,
        } => output(
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
        } => destroy(&g, yes, allow_data_loss),
        Command::Member(MemberCommand::Add { member, apply: a }) => member_add(&g, member, &a),
        Command::Member(MemberCommand::Remove { name, apply: a }) => member_remove(&g, name, &a),
        Command::Invite {
            member,
            out,
            valid_hours,
        } => super::join::invite(&g, &member, &out, valid_hours),
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
        Command::Export(ExportCommand::Arm { out_dir }) => export_arm(&g, &out_dir),
        Command::Dashboard { port, no_open } => super::view::dashboard(&g, port, no_open),
        Command::Graph { format, out, live } => {
            super::view::graph(&g, format, out.as_deref(), live)
        }
        Command::State(StateCommand::Recover) => state_recover(&g),
    }
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

pub(super) fn load(g: &Global) -> Result<Loaded> {
    let loaded = topology::load(&g.file).map_err(|e| anyhow!("{e}"))?;
    print_warnings(&loaded);
    Ok(loaded)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(super) fn state_dir(g: &Global, network: &str) -> StateDir {
    let base = match &g.state_dir {
        Some(d) => d.clone(),
        None => {
            let parent = g
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

fn init(g: &Global, members: u32, force: bool) -> Result<i32> {
    if g.file.exists() && !force {
        bail!(
            "{} already exists; use --force to overwrite it or -f to write another file",
            g.file.display()
        );
    }
    // Editors with the YAML language server read the first line and complete and check the
    // file against the schema written beside it.
    let schema_name = topology::schema::SCHEMA_FILE;
    let schema_path = g
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(schema_name);
    let text = format!(
        "# yaml-language-server: $schema={schema_name}\n{}",
        topology::starter(members)
    );
    fsutil::write_atomic(
        &schema_path,
        topology::schema::json_schema_text().as_bytes(),
        0o644,
    )
    .with_context(|| format!("cannot write {}", schema_path.display()))?;
    fsutil::write_atomic(&g.file, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", g.file.display()))?;
    say!(
        "Wrote {} ({members} member{}) and its schema {}. Next: `consort plan`, then `consort apply`.",
        g.file.display(),
        if members == 1 { "" } else { "s" },
        schema_path.display()
    );
    Ok(0)
}

fn validate(g: &Global) -> Result<i32> {
    let l = load(g)?;
    let t = &l.topology;
    let nodes = t.nodes();
    let v = t.validator_count();
    say!(
        "{} is valid: network {} (chain {}), {} member(s), {} node(s): {} validator(s), {} tx node(s); provider {}.",
        g.file.display(),
        t.network.name,
        t.network.chain_id,
        t.members.len(),
        nodes.len(),
        v,
        nodes.len() as u32 - v,
        t.provider.kind()
    );
    Ok(0)
}

struct Planned {
    loaded: Loaded,
    sd: StateDir,
    state: Option<State>,
    provider: Box<dyn Provider>,
    plan: Plan,
}

fn make_plan(g: &Global, destroy: bool, refresh: bool) -> Result<Planned> {
    plan_loaded(g, load(g)?, destroy, refresh, false)
}

/// `applying`: the plan of an apply, which reads the live network where the provider says
/// so (`Provider::refresh_on_apply`).
fn plan_loaded(
    g: &Global,
    loaded: Loaded,
    destroy: bool,
    refresh: bool,
    applying: bool,
) -> Result<Planned> {
    let sd = state_dir(g, &loaded.topology.network.name);
    let state = sd.load()?;
    let provider = provider::for_topology(&loaded.topology)?;
    if !destroy {
        // Lost state must not mean a new chain.
        let found = recover::unaccounted(&loaded.topology, &sd, state.as_ref());
        if !found.is_empty() {
            bail!(recover::refusal(&sd, state.as_ref(), &found, &g.file));
        }
    }
    let refresh = refresh
        || provider.refresh_by_default()
        || (applying && !destroy && provider.refresh_on_apply());
    if destroy && applying && !refresh {
        // `destroy` reads nothing live, but must not delete half a network and then fail.
        provider
            .preflight(&loaded.topology, true)
            .map_err(crate::plan::build::PlanError::Refused)?;
    }
    let mut plan = build(
        PlanInput {
            topology: &loaded.topology,
            topology_sha256: sha256_hex(loaded.source.as_bytes()),
            state: state.as_ref(),
            destroy,
            refresh,
        },
        provider.as_ref(),
    )?;
    if let Some(st) = &state {
        plan.warnings
            .extend(recover::unrecorded_processes(&loaded.topology, &sd, st));
    }
    if destroy && state.is_none() {
        let found = recover::on_disk(&loaded.topology, &sd);
        if !found.is_empty() {
            plan.warnings.push(format!(
                "{} is missing, but {} holds: {}; `consort destroy` stops and deletes them (after asking)",
                sd.state_file().display(),
                sd.root.display(),
                found.join(", ")
            ));
        }
    }
    if !destroy {
        provider::archived_keys::annotate(&mut plan, &sd.root);
        let created = |name: &String| {
            let addr = provider.node_addr(name);
            plan.changes
                .iter()
                .any(|c| c.addr == addr && c.action == crate::state::Action::Create)
        };
        let ports: std::collections::BTreeMap<_, _> = provider
            .planned_ports(&loaded.topology, state.as_ref(), &sd)
            .into_iter()
            .filter(|(name, _)| created(name))
            .collect();
        plan.ports = ports;
    }
    mark_data_loss(&mut plan, state.as_ref(), &loaded.topology);
    Ok(Planned {
        loaded,
        sd,
        state,
        provider,
        plan,
    })
}

/// A node of `st` that answers RPC (local networks; None elsewhere or when none runs).
fn live_rpc(st: &State) -> Option<crate::rpc::RpcClient> {
    st.resources
        .values()
        .filter(|r| r.kind == crate::state::Kind::LocalNode)
        .filter_map(|r| r.outputs.get("rpc_url").and_then(|v| v.as_str()))
        .map(|u| crate::rpc::RpcClient::new(u).with_timeout(Duration::from_secs(2)))
        .find(|c| c.block_number().is_ok())
}

/// A running node of `st` answering over IPC (local networks; None elsewhere).
fn live_ipc(st: &State) -> Option<crate::rpc::RpcClient> {
    st.resources
        .iter()
        .filter(|(_, r)| r.kind == crate::state::Kind::LocalNode)
        .filter_map(|(a, _)| provider::local::NodeOutputs::from_state(st, a.strip_prefix("node.")?))
        .filter(|o| o.is_running())
        .map(|o| o.control().with_timeout(Duration::from_secs(2)))
        .find(|c| c.block_number().is_ok())
}

/// The `!` lines: what the plan would lose, asking the live chain for balances (and, for
/// the destroy of a chain other operators run, for its signers).
fn mark_data_loss(plan: &mut Plan, state: Option<&State>, topology: &topology::Topology) {
    use crate::state::{Action, Kind};
    let Some(st) = state else { return };
    let shared = plan.destroy && topology.has_external_members();
    let destructive = plan.changes.iter().any(|c| {
        crate::plan::loss::is_corrupt_resync(c)
            || matches!(c.action, Action::Destroy | Action::Replace)
                && matches!(
                    c.kind,
                    Kind::Account | Kind::LocalNode | Kind::AzureVm | Kind::SignerKey
                )
    });
    if !destructive || (plan.destroy && !shared) {
        return;
    }
    let rpc = live_ipc(st).or_else(|| live_rpc(st));
    let head = rpc.as_ref().and_then(|c| c.block_number().ok());
    let balance = |a: &str| -> Option<u128> {
        let addr = a.parse().ok()?;
        rpc.as_ref()?
            .eth_get_balance(&addr, crate::rpc::BlockId::Latest)
            .ok()
    };
    if shared {
        let live: Option<Vec<String>> = rpc
            .as_ref()
            .and_then(|c| c.clique_get_signers().ok())
            .map(|s| s.iter().map(|a| a.to_checksum()).collect());
        let member_of = |node: &str| {
            topology
                .nodes()
                .into_iter()
                .find(|n| n.name == node)
                .map(|n| n.member)
        };
        crate::plan::loss::mark_shared_destroy(plan, st, live.as_deref(), &member_of, &balance);
        return;
    }
    crate::plan::loss::mark(plan, state, head, &balance);
}

/// Why a plan that could not read part of the network cannot promise "No changes".
fn unread_message(plan: &Plan) -> String {
    format!(
        "could not read {} of network {}, so the plan may be incomplete:\n  {}\nRun the command again once {}.",
        plan.unread.len(),
        plan.network,
        plan.unread.join("\n  "),
        if plan.unread.len() == 1 {
            "it answers"
        } else {
            "they answer"
        }
    )
}

fn plan_json(plan: &Plan) -> serde_json::Value {
    let s = plan.summary();
    let mut v = serde_json::to_value(plan).expect("plan serialises");
    v["summary"] = json!({ "add": s.add, "change": s.change, "destroy": s.destroy });
    v
}

fn plan(
    g: &Global,
    as_json: bool,
    out: Option<PathBuf>,
    destroy: bool,
    detailed: bool,
    refresh: bool,
) -> Result<i32> {
    let p = make_plan(g, destroy, refresh)?;
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&plan_json(&p.plan))?);
    } else {
        say_raw!("{}", display::render(&p.plan));
    }
    if let Some(path) = out {
        let mut text = serde_json::to_vec_pretty(&p.plan)?;
        text.push(b'\n');
        fsutil::write_atomic(&path, &text, 0o644)
            .with_context(|| format!("cannot write plan {}", path.display()))?;
        if !as_json {
            say!(
                "\nSaved the plan to {}. Apply exactly it with `consort apply {}`.",
                path.display(),
                path.display()
            );
        }
    }
    // A plan that could not read part of the network does not know it has no changes.
    if !p.plan.unread.is_empty() {
        say_err!("{}", unread_message(&p.plan));
        if p.plan.is_empty() {
            return Ok(1);
        }
    }
    // "No changes" promises a healthy network: say so when it is not.
    // (Providers whose health needs no credentials or public endpoints: local.)
    if p.plan.is_empty() && !destroy && p.provider.refresh_by_default() {
        if let Some(st) = &p.state {
            // A node a block behind, a block being sealed: look again for a couple of
            // periods before calling the network unhealthy.
            let period = p.loaded.topology.network.clique.period;
            let deadline = std::time::Instant::now() + Duration::from_secs(2 * period + 2);
            let h = loop {
                let h = provider::assess(p.provider.as_ref(), &p.loaded.topology, st, &p.sd);
                if h.healthy || std::time::Instant::now() >= deadline {
                    break h;
                }
                std::thread::sleep(Duration::from_millis(250));
            };
            if !h.healthy {
                let mut msg = format!(
                    "network {} is not healthy, although its resources match the topology:",
                    p.plan.network
                );
                if let Some(halted) = &h.halted {
                    msg.push_str(&format!("\n  {halted}"));
                }
                for n in h.nodes.iter().filter(|n| !n.problems.is_empty()) {
                    msg.push_str(&format!("\n  {}: {}", n.name, n.problems.join("; ")));
                }
                for t in &h.pending_transactions {
                    msg.push_str(&format!("\n  {t}"));
                }
                msg.push_str("\n`consort apply` waits for it and repairs what it can; `consort status` shows it live.");
                say_err!("{msg}");
                return Ok(1);
            }
        }
    }
    Ok(if detailed && !p.plan.is_empty() { 2 } else { 0 })
}

pub(super) struct ApplyOpts<'a> {
    pub yes: bool,
    pub allow_data_loss: bool,
    pub timeout: u64,
    pub skip_health: bool,
    pub geth: Option<&'a Path>,
    pub saved_plan: Option<&'a Path>,
    /// `consort start`: refuse a plan that does more than start stopped nodes.
    pub only_restarts: bool,
    /// The command, as the lock names its holder: "apply", "member add", "start", ….
    pub command: &'static str,
}

fn apply(g: &Global, a: &ApplyArgs) -> Result<i32> {
    run_apply(
        g,
        ApplyOpts {
            yes: a.yes,
            allow_data_loss: a.allow_data_loss,
            timeout: a.timeout,
            skip_health: a.skip_health_check,
            geth: a.geth.as_deref(),
            saved_plan: a.plan.as_deref(),
            only_restarts: false,
            command: "apply",
        },
        false,
        None,
    )
}

/// A topology edit (`member add/remove`) that is planned from memory and only written to
/// the file once its plan is accepted: a refused or cancelled change leaves the file as it
/// was.
pub(super) struct PendingEdit {
    text: String,
    done: String,
}

pub(super) fn run_apply(
    g: &Global,
    o: ApplyOpts,
    destroy: bool,
    edit: Option<PendingEdit>,
) -> Result<i32> {
    if let Some(geth) = o.geth {
        std::env::set_var("CONSORT_GETH", geth);
    }
    let loaded = match &edit {
        None => load(g)?,
        Some(e) => {
            let l = topology::parse(&g.file, e.text.as_bytes()).map_err(|e| anyhow!("{e}"))?;
            print_warnings(&l);
            l
        }
    };
    // Lock first, then plan against the state we hold.
    let sd = state_dir(g, &loaded.topology.network.name);
    let _lock = sd.lock(if destroy { "destroy" } else { o.command })?;
    let Planned {
        loaded,
        sd,
        state,
        provider,
        plan,
    } = plan_loaded(g, loaded, destroy, false, true).map_err(|e| match &edit {
        Some(_) => anyhow!("{e:#}\n{} is unchanged.", g.file.display()),
        None => e,
    })?;
    let write_edit = |e: &PendingEdit| -> Result<()> {
        fsutil::write_atomic(&g.file, e.text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", g.file.display()))?;
        say!("{}", e.done);
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
            .filter(|c| !super::lifecycle::is_restart(c))
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
            say!("Every node of network {} is running already.", plan.network);
            return Ok(0);
        }
    }
    say_raw!("{}", display::render(&plan));
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
            msg.push_str(&format!("\n{} is unchanged.", g.file.display()));
        }
        bail!(msg);
    }
    if interrupted() {
        say_err!("Interrupted before any change: nothing was changed.");
        return Ok(130);
    }
    // No changes: still make sure the network is healthy (an interrupted run may have
    // created every node but not started sealing), so apply exits 0 only when it is.
    let nothing = plan.is_empty();
    if nothing && !plan.unread.is_empty() {
        bail!(
            "{}\nNothing was changed.{}",
            unread_message(&plan),
            edit.as_ref()
                .map(|_| format!(" {} is unchanged.", g.file.display()))
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
            return Ok(0);
        }
    } else {
        let question = if destroy {
            format!("destroy network {}", plan.network)
        } else {
            "perform these actions".to_string()
        };
        if !confirm(&question, o.yes)? {
            match &edit {
                Some(_) => say!(
                    "Cancelled: nothing was changed, {} included.",
                    g.file.display()
                ),
                None => say!("Cancelled: nothing was changed."),
            }
            return Ok(1);
        }
        // Accepted: from here on the file says what the network is becoming.
        if let Some(e) = &edit {
            write_edit(e)?;
        }
    }
    let progress = progress();
    let state = state.unwrap_or_else(|| State::new(&loaded.topology.network.name, provider.name()));
    let ctx = ApplyCtx {
        topology: &loaded.topology,
        state: Mutex::new(state),
        state_dir: &sd,
        events: counting(progress.sink()),
        interrupted: &INTERRUPTED,
        health_timeout: Duration::from_secs(o.timeout),
        failed: Default::default(),
        peering: Default::default(),
    };
    let report = provider::execute(provider.as_ref(), &ctx, &plan.changes)?;
    let moved = provider::moved_ports(&plan.ports, &ctx.state.lock().unwrap());
    if let Some(line) = display::moved_ports_line(&moved) {
        progress.finish();
        say!("{line}");
    }
    if report.interrupted {
        announce_interrupt();
    }
    if report.interrupted || (interrupted() && report.failed.is_empty()) {
        progress.finish();
        say_err!(
            "Interrupted: {} change(s) done and saved, {} not started. Run `consort {}` again to converge.",
            report.done.len(),
            report.skipped.len(),
            if destroy { "destroy" } else { "apply" }
        );
        return Ok(130);
    }
    if !report.failed.is_empty() {
        progress.finish();
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
        provider.cleanup(&sd)?;
        provider::core::cleanup_key_dirs(&sd);
        let st = ctx.state.lock().unwrap();
        // A chain other operators run lives on: it may still know these keys' addresses.
        let keep_archive = loaded.topology.has_external_members() && sd.archive_dir().exists();
        if st.resources.is_empty() {
            // Only destroy deletes keys: the archived ones of removed members too.
            if !keep_archive {
                remove_path(&sd.archive_dir())?;
            }
            // The invitations it issued (nothing secret, but nothing to keep either).
            remove_path(&crate::join::flow::invitations_dir(&sd))?;
            remove_set_aside_states(&sd)?;
            sd.remove_state()?;
            let _ = std::fs::remove_file(sd.lock_file());
            let _ = std::fs::remove_dir(&sd.root);
            if let Some(parent) = sd.root.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        progress.finish();
        let s = plan.summary();
        say!("Destroy complete: {} resource(s) destroyed.", s.destroy);
        if keep_archive {
            say!(
                "The keys stay archived under {}: the chain other operators run still knows \
                 their addresses. Delete them yourself once they are voted out and emptied.",
                sd.archive_dir().display()
            );
        }
        return Ok(0);
    }
    let s = plan.summary();
    let interrupted_exit = |progress: &Progress| {
        progress.finish();
        say_err!(
            "Interrupted: all {} change(s) done and saved; the network was not checked for \
             health. `consort status` shows it; `consort apply` finishes the job.",
            report.done.len()
        );
        Ok(130)
    };
    if let Err(e) = provider.after_apply(&ctx) {
        if interrupted() {
            return interrupted_exit(&progress);
        }
        progress.finish();
        return Err(e.into());
    }
    if interrupted() {
        return interrupted_exit(&progress);
    }
    if o.skip_health {
        progress.finish();
        if o.only_restarts {
            say!("Started {} node(s) (health check skipped).", s.change);
        } else {
            say!(
                "Apply complete: {} added, {} changed, {} destroyed (health check skipped).",
                s.add,
                s.change,
                s.destroy
            );
        }
        return Ok(0);
    }
    if !nothing {
        progress.phase("waiting for the network to become healthy");
    }
    let health = provider.wait_healthy(&ctx);
    if health.is_err() && interrupted() {
        return interrupted_exit(&progress);
    }
    progress.finish();
    let health = health?;
    if nothing {
        say!(
            "Network {} is healthy: {} node(s) peered, head #{}.",
            plan.network,
            health.nodes.len(),
            health.head
        );
        return Ok(0);
    }
    if o.only_restarts {
        // `consort start`: what it did, in its own words.
        say!(
            "Started {} node(s). Network {} is healthy: {} node(s) peered, head #{}.",
            s.change,
            plan.network,
            health.nodes.len(),
            health.head
        );
    } else {
        say!(
            "Apply complete: {} added, {} changed, {} destroyed. Network {} is healthy: {} node(s) peered, head #{}.",
            s.add,
            s.change,
            s.destroy,
            plan.network,
            health.nodes.len(),
            health.head
        );
    }
    let st = ctx.state.lock().unwrap().clone();
    say_raw!(
        "{}",
        output::render_text(&output::output_json(&loaded.topology, &st))
    );
    Ok(0)
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

fn destroy(g: &Global, yes: bool, allow_data_loss: bool) -> Result<i32> {
    let loaded = load(g)?;
    let sd = state_dir(g, &loaded.topology.network.name);
    match sd.load() {
        Ok(Some(_)) => {}
        Ok(None) => return destroy_from_disk(&loaded, &sd, yes, None),
        Err(e @ StateError::Corrupt { .. }) => {
            return destroy_from_disk(&loaded, &sd, yes, Some(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    run_apply(
        g,
        ApplyOpts {
            yes,
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
    )
}

/// The topology, its state dir and its state, for commands that need a deployed network;
/// without state: the lost-state refusal when the state dir still holds the network's
/// data, else "nothing is deployed".
pub(super) fn deployed(g: &Global) -> Result<(Loaded, StateDir, State)> {
    let loaded = load(g)?;
    let sd = state_dir(g, &loaded.topology.network.name);
    let Some(state) = sd.load()? else {
        let found = recover::unaccounted(&loaded.topology, &sd, None);
        if !found.is_empty() {
            bail!(recover::refusal(&sd, None, &found, &g.file));
        }
        bail!(
            "network {} has no state in {}: nothing is deployed (run `consort apply`)",
            loaded.topology.network.name,
            sd.root.display()
        );
    };
    Ok((loaded, sd, state))
}

fn status(g: &Global, as_json: bool) -> Result<i32> {
    let (loaded, sd, state) = deployed(g)?;
    let provider = provider::for_topology(&loaded.topology)?;
    let health = provider::assess(provider.as_ref(), &loaded.topology, &state, &sd);
    let unrecorded = recover::unrecorded_processes(&loaded.topology, &sd, &state);
    if as_json {
        let mut v = serde_json::to_value(&health)?;
        if !unrecorded.is_empty() {
            v["unrecorded_processes"] = json!(unrecorded);
        }
        if let Some(holder) = sd.lock_holder() {
            v["command_running"] = json!(holder);
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if let Some(down) = health.down {
            say!("Network {}: {down}", state.network);
        } else {
            say!(
                "Network {}: {} — head #{}",
                state.network,
                if health.healthy {
                    "healthy"
                } else {
                    "UNHEALTHY"
                },
                health.head
            );
            for p in health.network_problems() {
                say!("  ! {p}");
            }
        }
        let w = health
            .nodes
            .iter()
            .map(|n| n.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        say!(
            "  {:<w$}  {:<9}  {:<7}  {:>7}  {:>8}  RPC",
            "NODE",
            "ROLE",
            "RUNNING",
            "PEERS",
            "BLOCK"
        );
        for n in &health.nodes {
            say!(
                "  {:<w$}  {:<9}  {:<7}  {:>7}  {:>8}  {}",
                n.name,
                n.role,
                if n.running { "yes" } else { "NO" },
                format!("{}/{}", n.peers, n.planned_peers),
                n.block,
                n.rpc_url.as_deref().unwrap_or(if n.role == "validator" {
                    "(ipc only)"
                } else {
                    "-"
                })
            );
            for p in &n.problems {
                say!("  {:<w$}    ! {p}", "");
            }
        }
        for e in &health.external {
            say!(
                "  member {} (external: run by another operator): peered with {} of {} node(s), {} of {} validator(s) signing{}",
                e.name,
                e.peered,
                e.enodes,
                e.signing,
                e.signers,
                if e.unreached.is_empty() {
                    String::new()
                } else {
                    format!(" — not reached: {}", e.unreached.join(", "))
                }
            );
        }
        for v in &health.votes {
            say!("  vote: {v}");
        }
        for p in &health.proposals {
            say!(
                "  pending proposal: {} votes to {} {}",
                p.proposer,
                if p.authorize { "add" } else { "remove" },
                p.address
            );
        }
        for t in &health.pending_transactions {
            say!("  ! {t}");
        }
        if let Some(holder) = sd.lock_holder() {
            say!("  (a command is changing the network now: {holder})");
        }
        for u in &unrecorded {
            say!("  ! {u}");
        }
    }
    // Key files state names but the disk lacks (restorable ones: `consort apply`).
    let keys = crate::plan::key_files::check(&loaded.topology, &state);
    let key_problems: Vec<String> = keys
        .drift
        .iter()
        .map(|(a, why)| format!("{a}: key files missing; `consort apply` will {why}"))
        .chain(keys.lost.iter().cloned())
        .chain(keys.warnings.iter().cloned())
        .collect();
    for k in &key_problems {
        say_err!("! {k}");
    }
    Ok(if health.healthy && key_problems.is_empty() {
        0
    } else {
        1
    })
}

fn output(
    g: &Global,
    format: Format,
    member: Option<&str>,
    write: Option<&std::path::Path>,
) -> Result<i32> {
    if write.is_some() && format != Format::Foundry {
        bail!("--write merges into a foundry.toml: use it with --format foundry (other formats: redirect the output, e.g. `> .env`)");
    }
    let (loaded, _, state) = deployed(g)?;
    if member.is_some() && matches!(format, Format::Text | Format::Json | Format::Prometheus) {
        bail!("--member picks the node and account of --format env or --format foundry; text, json and prometheus list every member");
    }
    let v = output::output_json(&loaded.topology, &state);
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text => say_raw!("{}", output::render_text(&v)),
        Format::Env => out!("{}", output::render_env(&v, &loaded.topology, member)?),
        Format::Foundry => {
            let profile = output::render_foundry(&v, &loaded.topology, member)?;
            match write {
                None => out!("{profile}"),
                Some(path) => {
                    let network = &loaded.topology.network.name;
                    let what = match super::foundry::write(path, &profile)? {
                        super::foundry::Written::Created => "wrote",
                        super::foundry::Written::Updated => "updated",
                        super::foundry::Written::Unchanged => "already up to date:",
                    };
                    say!(
                        "{what} {}: [profile.{network}] (evm_version = \"{}\") and [rpc_endpoints] {network}; use `FOUNDRY_PROFILE={network} forge …` or `--rpc-url {network}`",
                        path.display(),
                        output::EVM_VERSION
                    );
                }
            }
        }
        Format::Prometheus => {
            if loaded.topology.provider.kind() == "azure" {
                // geth's metrics port is rendered on local networks only (azure/mod.rs).
                bail!(
                    "the nodes of network {} run on Azure, where geth serves no metrics yet (`--format prometheus` covers local networks); their health: `consort status`",
                    loaded.topology.network.name
                );
            }
            out!("{}", output::render_prometheus(&v)?)
        }
    }
    Ok(0)
}

/// The topology file with `edit` applied, in memory: [`run_apply`] writes it once the plan
/// is accepted (an edit that would not load is refused when it is planned).
pub(super) fn edit_topology(
    g: &Global,
    edit: impl FnOnce(&str) -> Result<String>,
) -> Result<String> {
    let source = std::fs::read_to_string(&g.file)
        .with_context(|| format!("cannot read {}", g.file.display()))?;
    edit(&source)
}

/// `--account NAME=BALANCE` flags as (name, balance text), each balance checked.
pub(super) fn parse_accounts(accounts: &[String]) -> Result<Vec<(String, String)>> {
    let mut accts = Vec::new();
    for spec in accounts {
        let (n, b) = spec.split_once('=').ok_or_else(|| {
            anyhow!("--account {spec:?}: expected NAME=BALANCE, e.g. --account ops=\"100 ether\"")
        })?;
        topology::parse_balance(b.trim()).map_err(|e| anyhow!("--account {spec:?}: {e}"))?;
        accts.push((n.trim().to_string(), b.trim().to_string()));
    }
    Ok(accts)
}

fn member_add(g: &Global, member: NewMemberArgs, a: &MemberApply) -> Result<i32> {
    let NewMemberArgs {
        name,
        validators,
        tx_nodes,
        accounts,
    } = member;
    let accts = parse_accounts(&accounts)?;
    // An earlier `member add` of the same member that was interrupted (Ctrl-C, kill -9,
    // a failed vote) wrote the topology already: finish it rather than refuse the name.
    if let Ok(current) = topology::load(&g.file) {
        if let Some(have) = current.topology.member(&name) {
            let same = have.validators == validators
                && have.tx_nodes == tx_nodes
                && have.accounts.len() == accts.len()
                && accts
                    .iter()
                    .all(|(n, _)| have.accounts.iter().any(|a| &a.name == n));
            if !same {
                bail!(
                    "{}: member {name} is already in the topology, with {} validator(s), {} tx node(s) and {} account(s); run `consort apply` to finish adding {name}, or `consort member remove {name}` first to add it differently",
                    g.file.display(),
                    have.validators,
                    have.tx_nodes,
                    have.accounts.len()
                );
            }
            say!(
                "Member {name} is already in {}: finishing its addition.",
                g.file.display()
            );
            return run_apply(g, member_apply_opts(a, "member add"), false, None);
        }
    }
    let m = topology::edit::NewMember {
        name: name.clone(),
        validators,
        tx_nodes,
        accounts: accts,
        external: None,
    };
    let text = edit_topology(g, |src| {
        topology::edit::add_member(src, &m).map_err(|e| anyhow!("{}: {e}", g.file.display()))
    })?;
    apply_member_edit(
        g,
        a,
        "member add",
        text,
        format!("Added member {name} to {}.", g.file.display()),
    )
}

fn member_remove(g: &Global, name: String, a: &MemberApply) -> Result<i32> {
    // An interrupted `member remove` wrote the topology already: if state still holds
    // some of the member's resources, finish removing them.
    if let Ok(current) = topology::load(&g.file) {
        if current.topology.member(&name).is_none() {
            let sd = state_dir(g, &current.topology.network.name);
            let left = sd.load().ok().flatten().is_some_and(|st| {
                st.resources
                    .values()
                    .any(|r| r.attrs.get("member").and_then(|m| m.as_str()) == Some(name.as_str()))
            });
            if left {
                say!(
                    "Member {name} is no longer in {} but the network still has some of it: finishing its removal.",
                    g.file.display()
                );
                return run_apply(g, member_apply_opts(a, "member remove"), false, None);
            }
        }
    }
    let text = edit_topology(g, |src| {
        topology::edit::remove_member(src, &name).map_err(|e| anyhow!("{}: {e}", g.file.display()))
    })?;
    apply_member_edit(
        g,
        a,
        "member remove",
        text,
        format!("Removed member {name} from {}.", g.file.display()),
    )
}

/// Plans and applies an edited topology; the file is written only once the plan is accepted.
pub(super) fn apply_member_edit(
    g: &Global,
    a: &MemberApply,
    command: &'static str,
    text: String,
    done: String,
) -> Result<i32> {
    run_apply(
        g,
        member_apply_opts(a, command),
        false,
        Some(PendingEdit { text, done }),
    )
}

pub(super) fn member_apply_opts<'a>(a: &'a MemberApply, command: &'static str) -> ApplyOpts<'a> {
    ApplyOpts {
        yes: a.yes,
        allow_data_loss: a.allow_data_loss,
        timeout: a.timeout,
        skip_health: a.skip_health_check,
        geth: a.geth.as_deref(),
        saved_plan: None,
        only_restarts: false,
        command,
    }
}

fn export_arm(g: &Global, out_dir: &Path) -> Result<i32> {
    let loaded = load(g)?;
    #[cfg(feature = "azure")]
    {
        // With keys and genesis in state, the parameters file carries each VM's customData.
        let state = state_dir(g, &loaded.topology.network.name).load()?;
        let files =
            provider::azure::export_arm_with_state(&loaded.topology, state.as_ref(), out_dir)?;
        for f in files {
            say!("wrote {}", f.display());
        }
        Ok(0)
    }
    #[cfg(not(feature = "azure"))]
    {
        let _ = (loaded, out_dir);
        bail!("this consort was built without the `azure` feature")
    }
}
