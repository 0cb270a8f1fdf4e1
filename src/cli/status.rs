//! `init`, `validate`, `status`, `output`, `export arm`: arguments → one operation (or a
//! read of the deployed network) → text or JSON.

use super::output::{self, Format};
use super::{workspace, Global};
use crate::ops;
use anyhow::{bail, Result};
use serde_json::json;

pub(super) fn init(g: &Global, members: u32, force: bool) -> Result<i32> {
    let schema_path = ops::setup::init(&workspace(g), members, force)?;
    say!(
        "Wrote {} ({members} member{}) and its schema {}. Next: `consort plan`, then `consort apply`.",
        g.file.display(),
        if members == 1 { "" } else { "s" },
        schema_path.display()
    );
    Ok(0)
}

pub(super) fn validate(g: &Global) -> Result<i32> {
    let l = workspace(g).load()?;
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

pub(super) fn status(g: &Global, as_json: bool) -> Result<i32> {
    let st = ops::status::status(&workspace(g))?;
    let health = &st.health;
    if as_json {
        let mut v = serde_json::to_value(health)?;
        if !st.unrecorded.is_empty() {
            v["unrecorded_processes"] = json!(st.unrecorded);
        }
        if let Some(holder) = &st.command_running {
            v["command_running"] = json!(holder);
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if let Some(down) = &health.down {
            say!("Network {}: {down}", st.network);
        } else {
            say!(
                "Network {}: {} — head #{}",
                st.network,
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
        if let Some(holder) = &st.command_running {
            say!("  (a command is changing the network now: {holder})");
        }
        for u in &st.unrecorded {
            say!("  ! {u}");
        }
    }
    for k in &st.key_problems {
        say_err!("! {k}");
    }
    Ok(if st.ok() { 0 } else { 1 })
}

pub(super) fn output(
    g: &Global,
    format: Format,
    member: Option<&str>,
    write: Option<&std::path::Path>,
) -> Result<i32> {
    if write.is_some() && format != Format::Foundry {
        bail!("--write merges into a foundry.toml: use it with --format foundry (other formats: redirect the output, e.g. `> .env`)");
    }
    let (loaded, _, state) = workspace(g).deployed()?;
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

pub(super) fn export_arm(g: &Global, out_dir: &std::path::Path) -> Result<i32> {
    for f in ops::setup::export_arm(&workspace(g), out_dir)? {
        say!("wrote {}", f.display());
    }
    Ok(0)
}
