//! `consort stop`, `consort start` and `consort logs`: a deployed network's processes.

use super::commands::{deployed, progress, run_apply, ApplyOpts};
use super::Global;
use crate::plan::{Action, Change, Kind};
use crate::provider;
use crate::state::State;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// A change that only starts a stopped node again (what `consort start` may do).
pub(super) fn is_restart(c: &Change) -> bool {
    matches!(c.kind, Kind::LocalNode | Kind::AzureVm)
        && c.action == Action::Update
        && c.reason.contains("not running")
}

pub(super) fn stop(g: &Global) -> Result<i32> {
    let (loaded, sd, _) = deployed(g)?;
    let _lock = sd.lock("stop")?;
    let state = sd
        .load()?
        .ok_or_else(|| anyhow!("network {} has no state", loaded.topology.network.name))?;
    let provider = provider::for_topology(&loaded.topology)?;
    let head = provider.health(&loaded.topology, &state).head;
    let progress = progress();
    let stopped = provider.stop_nodes(&sd, &state, &progress.sink());
    progress.finish();
    let stopped = stopped?;
    if stopped.is_empty() {
        println!(
            "No node of network {} was running; nothing to stop.",
            state.network
        );
    } else {
        println!(
            "Stopped {} node(s) of network {} at head #{head}; all data is kept. `consort start` continues the chain from there.",
            stopped.len(),
            state.network
        );
    }
    Ok(0)
}

pub(super) fn start(g: &Global, timeout: u64, geth: Option<&Path>) -> Result<i32> {
    deployed(g)?;
    run_apply(
        g,
        ApplyOpts {
            yes: true,
            allow_data_loss: false,
            timeout,
            skip_health: false,
            geth,
            saved_plan: None,
            only_restarts: true,
            command: "start",
        },
        false,
        None,
    )
}

/// The node's log file, as its provider recorded it in state.
fn log_path(state: &State, node: &str) -> Result<std::path::PathBuf> {
    let found = state.resources.iter().find(|(_, r)| {
        r.attrs.get("node").and_then(|v| v.as_str()) == Some(node)
            && matches!(r.kind, Kind::LocalNode | Kind::AzureVm)
    });
    let Some((addr, r)) = found else {
        let mut names: Vec<&str> = state
            .resources
            .values()
            .filter(|r| matches!(r.kind, Kind::LocalNode | Kind::AzureVm))
            .filter_map(|r| r.attrs.get("node").and_then(|v| v.as_str()))
            .collect();
        names.sort();
        bail!(
            "network {} has no node {node:?}; its nodes: {}",
            state.network,
            names.join(", ")
        );
    };
    let Some(log) = r.outputs.get("log").and_then(|v| v.as_str()) else {
        bail!("{addr} records no log file (on Azure the log is on the node's VM: `journalctl -u consort-geth`)");
    };
    Ok(std::path::PathBuf::from(log))
}

/// The last `n` lines of `text` (all of it when shorter).
fn last_lines(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    let mut start = trimmed.len();
    for _ in 0..n {
        match trimmed[..start].rfind('\n') {
            Some(i) => start = i,
            None => return text,
        }
    }
    &text[start + 1..]
}

pub(super) fn logs(g: &Global, node: &str, lines: usize, follow: bool) -> Result<i32> {
    let (_, _, state) = deployed(g)?;
    let path = log_path(&state, node)?;
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let mut out = std::io::stdout().lock();
    out.write_all(last_lines(&text, lines).as_bytes())?;
    out.flush()?;
    if !follow {
        return Ok(0);
    }
    // Follow: print what geth appends (a log rotated or truncated is read from its start).
    let mut pos = file.stream_position()?;
    let mut buf = Vec::new();
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            file = std::fs::File::open(&path)?;
            pos = 0;
        }
        if len > pos {
            file.seek(SeekFrom::Start(pos))?;
            buf.clear();
            file.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
                return Ok(0); // the reader went away (e.g. `| head`)
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(last_lines("a\n", 0), "");
    }
}
