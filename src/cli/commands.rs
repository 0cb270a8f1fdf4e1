//! One function per command: each a walk along load → plan → apply → health.

use super::output::{self, Format};
use super::progress::Progress;
use super::{ApplyArgs, Cli, Command, ExportCommand, Global, MemberApply, MemberCommand};
use crate::plan::desired::{build, PlanInput};
use crate::plan::{display, Plan};
use crate::provider::{self, ApplyCtx, Provider};
use crate::state::{fsutil, State, StateDir};
use crate::topology::{self, Loaded};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
        } => output(
            &g,
            if json { Format::Json } else { format },
            member.as_deref(),
        ),
        Command::Logs {
            node,
            lines,
            follow,
        } => super::lifecycle::logs(&g, &node, lines, follow),
        Command::Stop => super::lifecycle::stop(&g),
        Command::Start { timeout, geth } => super::lifecycle::start(&g, timeout, geth.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "consort", &mut std::io::stdout());
            Ok(0)
        }
        Command::Schema => {
            print!("{}", topology::schema::json_schema_text());
            Ok(0)
        }
        Command::Destroy { yes } => destroy(&g, yes),
        Command::Member(MemberCommand::Add {
            name,
            validators,
            tx_nodes,
            accounts,
            apply: a,
        }) => member_add(&g, name, validators, tx_nodes, accounts, &a),
        Command::Member(MemberCommand::Remove { name, apply: a }) => member_remove(&g, name, &a),
        Command::Export(ExportCommand::Arm { out_dir }) => export_arm(&g, &out_dir),
    }
}

/// Topology warnings go to stderr once per command, however often it loads the file.
static WARNED: AtomicBool = AtomicBool::new(false);

fn print_warnings(loaded: &Loaded) {
    if level() < 0 || loaded.warnings.is_empty() || WARNED.swap(true, Ordering::SeqCst) {
        return;
    }
    for w in &loaded.warnings {
        eprintln!("{w}\n");
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
    println!(
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
    println!(
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
    plan_loaded(g, load(g)?, destroy, refresh)
}

fn plan_loaded(g: &Global, loaded: Loaded, destroy: bool, refresh: bool) -> Result<Planned> {
    let sd = state_dir(g, &loaded.topology.network.name);
    let state = sd.load()?;
    let provider = provider::for_topology(&loaded.topology)?;
    let refresh = refresh || provider.refresh_by_default();
    let plan = build(
        PlanInput {
            topology: &loaded.topology,
            topology_sha256: sha256_hex(loaded.source.as_bytes()),
            state: state.as_ref(),
            destroy,
            refresh,
        },
        provider.as_ref(),
    )?;
    Ok(Planned {
        loaded,
        sd,
        state,
        provider,
        plan,
    })
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
        println!("{}", serde_json::to_string_pretty(&plan_json(&p.plan))?);
    } else {
        print!("{}", display::render(&p.plan));
    }
    if let Some(path) = out {
        let mut text = serde_json::to_vec_pretty(&p.plan)?;
        text.push(b'\n');
        fsutil::write_atomic(&path, &text, 0o644)
            .with_context(|| format!("cannot write plan {}", path.display()))?;
        if !as_json {
            println!(
                "\nSaved the plan to {}. Apply exactly it with `consort apply {}`.",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if detailed && !p.plan.is_empty() { 2 } else { 0 })
}

// ---- Ctrl-C: first stops new work, second exits at once ----

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    if n >= 1 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

fn install_interrupt_handler() {
    // SAFETY: installing a handler that only touches atomics and calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
}

fn confirm(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {question} without confirmation: stdin is not a terminal; pass --yes");
    }
    print!("\nDo you want to {question}? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

pub(super) struct ApplyOpts<'a> {
    pub yes: bool,
    pub timeout: u64,
    pub skip_health: bool,
    pub geth: Option<&'a Path>,
    pub saved_plan: Option<&'a Path>,
    /// `consort start`: refuse a plan that does more than start stopped nodes.
    pub only_restarts: bool,
}

fn apply(g: &Global, a: &ApplyArgs) -> Result<i32> {
    run_apply(
        g,
        ApplyOpts {
            yes: a.yes,
            timeout: a.timeout,
            skip_health: a.skip_health_check,
            geth: a.geth.as_deref(),
            saved_plan: a.plan.as_deref(),
            only_restarts: false,
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
    let _lock = sd.lock(if destroy { "destroy" } else { "apply" })?;
    let Planned {
        loaded,
        sd,
        state,
        provider,
        plan,
    } = plan_loaded(g, loaded, destroy, false).map_err(|e| match &edit {
        Some(_) => anyhow!("{e:#}\n{} is unchanged.", g.file.display()),
        None => e,
    })?;
    let write_edit = |e: &PendingEdit| -> Result<()> {
        fsutil::write_atomic(&g.file, e.text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", g.file.display()))?;
        println!("{}", e.done);
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
            println!("Every node of network {} is running already.", plan.network);
            return Ok(0);
        }
    }
    print!("{}", display::render(&plan));
    if plan.is_empty() {
        if let Some(e) = &edit {
            write_edit(e)?;
        }
        return Ok(0);
    }
    let question = if destroy {
        format!("destroy network {}", plan.network)
    } else {
        "perform these actions".to_string()
    };
    if !confirm(&question, o.yes)? {
        match &edit {
            Some(_) => println!(
                "Cancelled: nothing was changed, {} included.",
                g.file.display()
            ),
            None => println!("Cancelled: nothing was changed."),
        }
        return Ok(1);
    }
    // Accepted: from here on the file says what the network is becoming.
    if let Some(e) = &edit {
        write_edit(e)?;
    }
    install_interrupt_handler();
    let progress = progress();
    let state = state.unwrap_or_else(|| State::new(&loaded.topology.network.name, provider.name()));
    let ctx = ApplyCtx {
        topology: &loaded.topology,
        state: Mutex::new(state),
        state_dir: &sd,
        events: progress.sink(),
        interrupted: &INTERRUPTED,
        health_timeout: Duration::from_secs(o.timeout),
        failed: Default::default(),
    };
    let report = provider::execute(provider.as_ref(), &ctx, &plan.changes)?;
    if report.interrupted {
        progress.finish();
        eprintln!(
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
        msg.push_str(
            "\nFix the cause and run the command again: it continues from what was saved.",
        );
        bail!(msg);
    }
    if destroy {
        provider.cleanup(&sd)?;
        provider::core::cleanup_key_dirs(&sd);
        let st = ctx.state.lock().unwrap();
        if st.resources.is_empty() {
            sd.remove_state()?;
            let _ = std::fs::remove_file(sd.lock_file());
            let _ = std::fs::remove_dir(&sd.root);
            if let Some(parent) = sd.root.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        progress.finish();
        let s = plan.summary();
        println!("Destroy complete: {} resource(s) destroyed.", s.destroy);
        return Ok(0);
    }
    let s = plan.summary();
    if let Err(e) = provider.after_apply(&ctx) {
        progress.finish();
        return Err(e.into());
    }
    if o.skip_health {
        progress.finish();
        println!(
            "Apply complete: {} added, {} changed, {} destroyed (health check skipped).",
            s.add, s.change, s.destroy
        );
        return Ok(0);
    }
    progress.phase("waiting for the network to become healthy");
    let health = provider.wait_healthy(&ctx);
    progress.finish();
    let health = health?;
    println!(
        "Apply complete: {} added, {} changed, {} destroyed. Network {} is healthy: {} node(s) peered, head #{}.",
        s.add,
        s.change,
        s.destroy,
        plan.network,
        health.nodes.len(),
        health.head
    );
    let st = ctx.state.lock().unwrap().clone();
    print!(
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

fn destroy(g: &Global, yes: bool) -> Result<i32> {
    run_apply(
        g,
        ApplyOpts {
            yes,
            timeout: 60,
            skip_health: true,
            geth: None,
            saved_plan: None,
            only_restarts: false,
        },
        true,
        None,
    )
}

fn status(g: &Global, as_json: bool) -> Result<i32> {
    let loaded = load(g)?;
    let sd = state_dir(g, &loaded.topology.network.name);
    let Some(state) = sd.load()? else {
        bail!(
            "network {} has no state in {}: nothing is deployed (run `consort apply`)",
            loaded.topology.network.name,
            sd.root.display()
        );
    };
    let provider = provider::for_topology(&loaded.topology)?;
    let health = provider.health(&loaded.topology, &state);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&health)?);
    } else {
        let stopped = !health.nodes.is_empty() && health.nodes.iter().all(|n| !n.running);
        if stopped {
            println!(
                "Network {}: stopped — `consort start` starts it again on its data",
                state.network
            );
        } else {
            println!(
                "Network {}: {} — head #{}",
                state.network,
                if health.healthy {
                    "healthy"
                } else {
                    "UNHEALTHY"
                },
                health.head
            );
        }
        let w = health
            .nodes
            .iter()
            .map(|n| n.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "  {:<w$}  {:<9}  {:<7}  {:>5}  {:>8}  RPC",
            "NODE", "ROLE", "RUNNING", "PEERS", "BLOCK"
        );
        for n in &health.nodes {
            println!(
                "  {:<w$}  {:<9}  {:<7}  {:>5}  {:>8}  {}",
                n.name,
                n.role,
                if n.running { "yes" } else { "NO" },
                n.peers,
                n.block,
                n.rpc_url
            );
            for p in &n.problems {
                println!("  {:<w$}    ! {p}", "");
            }
        }
        for p in &health.proposals {
            println!(
                "  pending proposal: {} votes to {} {}",
                p.proposer,
                if p.authorize { "add" } else { "remove" },
                p.address
            );
        }
    }
    Ok(if health.healthy { 0 } else { 1 })
}

fn output(g: &Global, format: Format, member: Option<&str>) -> Result<i32> {
    let loaded = load(g)?;
    let sd = state_dir(g, &loaded.topology.network.name);
    let Some(state) = sd.load()? else {
        bail!(
            "network {} has no state in {}: nothing is deployed (run `consort apply`)",
            loaded.topology.network.name,
            sd.root.display()
        );
    };
    if member.is_some() && matches!(format, Format::Text | Format::Json) {
        bail!("--member picks the node and account of --format env or --format foundry; text and json list every member");
    }
    let v = output::output_json(&loaded.topology, &state);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text => print!("{}", output::render_text(&v)),
        Format::Env => print!("{}", output::render_env(&v, &loaded.topology, member)?),
        Format::Foundry => print!("{}", output::render_foundry(&v, &loaded.topology, member)?),
    }
    Ok(0)
}

/// The topology file with `edit` applied, in memory: [`run_apply`] writes it once the plan
/// is accepted (an edit that would not load is refused when it is planned).
fn edit_topology(g: &Global, edit: impl FnOnce(&str) -> Result<String>) -> Result<String> {
    let source = std::fs::read_to_string(&g.file)
        .with_context(|| format!("cannot read {}", g.file.display()))?;
    edit(&source)
}

fn member_add(
    g: &Global,
    name: String,
    validators: u32,
    tx_nodes: u32,
    accounts: Vec<String>,
    a: &MemberApply,
) -> Result<i32> {
    let mut accts = Vec::new();
    for spec in accounts {
        let (n, b) = spec.split_once('=').ok_or_else(|| {
            anyhow!("--account {spec:?}: expected NAME=BALANCE, e.g. --account ops=\"100 ether\"")
        })?;
        topology::parse_balance(b.trim()).map_err(|e| anyhow!("--account {spec:?}: {e}"))?;
        accts.push((n.trim().to_string(), b.trim().to_string()));
    }
    let m = topology::edit::NewMember {
        name: name.clone(),
        validators,
        tx_nodes,
        accounts: accts,
    };
    let text = edit_topology(g, |src| {
        topology::edit::add_member(src, &m).map_err(|e| anyhow!("{}: {e}", g.file.display()))
    })?;
    apply_member_edit(
        g,
        a,
        text,
        format!("Added member {name} to {}.", g.file.display()),
    )
}

fn member_remove(g: &Global, name: String, a: &MemberApply) -> Result<i32> {
    let text = edit_topology(g, |src| {
        topology::edit::remove_member(src, &name).map_err(|e| anyhow!("{}: {e}", g.file.display()))
    })?;
    apply_member_edit(
        g,
        a,
        text,
        format!("Removed member {name} from {}.", g.file.display()),
    )
}

/// Plans and applies an edited topology; the file is written only once the plan is accepted.
fn apply_member_edit(g: &Global, a: &MemberApply, text: String, done: String) -> Result<i32> {
    run_apply(
        g,
        ApplyOpts {
            yes: a.yes,
            timeout: a.timeout,
            skip_health: false,
            geth: a.geth.as_deref(),
            saved_plan: None,
            only_restarts: false,
        },
        false,
        Some(PendingEdit { text, done }),
    )
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
            println!("wrote {}", f.display());
        }
        Ok(0)
    }
    #[cfg(not(feature = "azure"))]
    {
        let _ = (loaded, out_dir);
        bail!("this consort was built without the `azure` feature")
    }
}
