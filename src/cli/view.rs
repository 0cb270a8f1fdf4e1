//! `consort graph` and `consort dashboard`: parse, call `graph` / `dashboard`, print.

use super::commands::{deployed, load};
use super::{Global, GraphFormat};
use crate::graph::{self, Graph};
use crate::provider;
use crate::topology::ProviderConfig;
use anyhow::{bail, Context, Result};
use std::path::Path;

pub(super) fn graph(
    g: &Global,
    format: GraphFormat,
    out: Option<&Path>,
    live: bool,
) -> Result<i32> {
    let picture = if live {
        let (loaded, _, state) = deployed(g)?;
        let topo = &loaded.topology;
        if !matches!(topo.provider, ProviderConfig::Local(_)) {
            bail!("--live asks the nodes over their IPC sockets: local networks only; without --live the graph shows the planned links");
        }
        let health = provider::for_topology(topo)?.health(topo, &state);
        let pairs = graph::live::live_pairs(topo, &state);
        let mut p = Graph::planned(topo)
            .with_live_links(&pairs)
            .with_health(&health);
        if let Some(signers) = graph::live::live_signers(topo, &state) {
            let of = graph::live::signer_nodes(topo, &state);
            let names = signers
                .iter()
                .filter_map(|a| of.get(a).map(|w| w.0.clone()))
                .collect();
            p = p.with_signers(&names);
        }
        p
    } else {
        Graph::planned(&load(g)?.topology)
    };
    let text = match format {
        GraphFormat::Svg => graph::svg::render(&picture),
        GraphFormat::Dot => graph::dot::render(&picture),
    };
    match out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if super::commands::level() >= 0 {
                say_err!(
                    "Wrote {} ({} member(s), {} node(s)).",
                    path.display(),
                    picture.members.len(),
                    picture.nodes().count()
                );
            }
        }
        None => out!("{text}"),
    }
    Ok(0)
}

pub(super) fn dashboard(g: &Global, port: u16, no_open: bool) -> Result<i32> {
    let (loaded, state_dir, _) = deployed(g)?;
    let opts = crate::dashboard::Options {
        file: g.file.clone(),
        state_dir,
        port,
    };
    crate::dashboard::serve(
        opts,
        |addr| {
            let url = format!("http://{addr}/");
            say!("Dashboard: {url}");
            if super::commands::level() >= 0 {
                say_err!(
                    "Serving network {} read-only on 127.0.0.1; Ctrl-C stops.",
                    loaded.topology.network.name
                );
            }
            if !no_open {
                open_browser(&url);
            }
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )?;
    Ok(0)
}

/// Best effort: the desktop's browser, if there is one (the URL is printed anyway).
fn open_browser(url: &str) {
    let _ = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
