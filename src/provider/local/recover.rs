//! What a local network keeps on disk beside state, read back without state: node data
//! dirs, their pid files and live geth processes. Used to refuse planning over a network
//! state does not list, by `consort state recover` to rebuild a node's record, and by
//! `destroy` when state is missing or corrupt.
//!
//! Reads the layout documented in `local/mod.rs` (`nodes/<name>/{geth/, config.toml,
//! consort.pid}` and geth's command line); writes nothing but state records.

use super::process::{self, PortAllocator, ProcessId};
use super::NodeOutputs;
use crate::plan::ports::NodePorts;
use crate::state::StateDir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pid file `local/mod.rs` writes in each node dir (its `PID_FILE`).
const PID_FILE: &str = "consort.pid";
/// SIGTERM → SIGKILL grace when stopping what is found (geth flushes on SIGTERM).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// One `nodes/<name>/` directory.
#[derive(Debug, Clone)]
pub struct NodeOnDisk {
    pub name: String,
    /// Absolute.
    pub dir: PathBuf,
    /// `geth/` exists: an initialised chain database.
    pub chain_data: bool,
    /// Live geth processes consort started there (pid file or `--datadir` on the command
    /// line, each checked against /proc).
    pub processes: Vec<ProcessId>,
}

impl NodeOnDisk {
    pub fn describe(&self, root: &Path) -> String {
        let rel = self.dir.strip_prefix(root).unwrap_or(&self.dir).display();
        let mut parts = Vec::new();
        if self.chain_data {
            parts.push("chain data".to_string());
        }
        for p in &self.processes {
            parts.push(format!("geth pid {} running", p.pid));
        }
        if parts.is_empty() {
            parts.push("no chain data".into());
        }
        format!("{rel}: {}", parts.join(", "))
    }
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn read_pid_file(dir: &Path) -> Option<ProcessId> {
    serde_json::from_slice(&std::fs::read(dir.join(PID_FILE)).ok()?).ok()
}

/// Every node dir under `nodes/`, with what runs there.
pub fn nodes_on_disk(sd: &StateDir) -> Vec<NodeOnDisk> {
    let nodes = abs(&sd.nodes_dir());
    let Ok(entries) = std::fs::read_dir(&nodes) else {
        return vec![];
    };
    let running = process::find_by_datadir(|d| d.starts_with(&nodes));
    let mut out: Vec<NodeOnDisk> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let dir = nodes.join(e.file_name());
            let mut processes: Vec<ProcessId> = read_pid_file(&dir)
                .filter(|id| process::is_ours(*id, &dir))
                .into_iter()
                .chain(
                    running
                        .iter()
                        .filter(|(_, d)| *d == dir)
                        .map(|(id, _)| *id)
                        .filter(|id| process::is_ours(*id, &dir)),
                )
                .collect();
            processes.sort_by_key(|p| (p.pid, p.start_time));
            processes.dedup();
            NodeOnDisk {
                name: e.file_name().to_string_lossy().into_owned(),
                chain_data: dir.join("geth").is_dir(),
                dir,
                processes,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Live geth processes whose `--datadir` is under `nodes/` but whose dir is gone.
pub fn orphan_processes(sd: &StateDir) -> Vec<(ProcessId, PathBuf)> {
    let nodes = abs(&sd.nodes_dir());
    process::find_by_datadir(|d| d.starts_with(&nodes) && !d.is_dir())
        .into_iter()
        .filter(|(id, d)| process::is_ours(*id, d))
        .collect()
}

/// Stops every geth consort started under this state dir (pid files, and any process
/// whose `--datadir` is under `nodes/`), each only after the /proc check. Returns how many
/// were stopped.
pub fn stop_all(sd: &StateDir) -> Result<usize, String> {
    let mut n = 0;
    let mut all: Vec<(ProcessId, PathBuf)> = nodes_on_disk(sd)
        .into_iter()
        .flat_map(|d| {
            let dir = d.dir.clone();
            d.processes.into_iter().map(move |p| (p, dir.clone()))
        })
        .collect();
    all.extend(orphan_processes(sd));
    for (id, dir) in all {
        match process::stop(id, &dir, STOP_GRACE) {
            Ok(process::Stopped::NotRunning) => {}
            Ok(_) => n += 1,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(n)
}

/// `--flag=value` of a NUL-separated command line.
fn arg_value(cmdline: &[u8], flag: &str) -> Option<String> {
    let want = format!("{flag}=");
    cmdline
        .split(|&b| b == 0)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .find_map(|a| a.strip_prefix(want.as_str()).map(str::to_string))
}

/// The quoted strings of `Key = [ "...", ... ]` in a rendered config.toml.
fn toml_list(text: &str, key: &str) -> Vec<String> {
    let Some(start) = text.find(&format!("{key} = [")) else {
        return vec![];
    };
    let rest = &text[start..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The p2p port of `ListenAddr = "host:port"` in config.toml.
fn listen_port(text: &str) -> Option<u16> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("ListenAddr"))?;
    line.trim()
        .trim_end_matches('"')
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// The host of `ListenAddr` (`provider.local.address` when the config was written).
fn listen_host(text: &str) -> String {
    text.lines()
        .find(|l| l.trim_start().starts_with("ListenAddr"))
        .and_then(|l| l.split('"').nth(1))
        .and_then(|a| a.rsplit_once(':'))
        .map(|(h, _)| h.to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// Rebuilds the state record (`node.<name>` outputs) of a node dir: pid, ports and geth
/// from its running process when there is one; otherwise pid 0 (so plan restarts it, on
/// its data) with its p2p port from config.toml and free HTTP/authrpc ports. `reserved`
/// are ports other nodes hold (updated with this node's).
pub fn node_outputs(
    node: &NodeOnDisk,
    enode_id: &str,
    base_port: Option<u16>,
    geth_version: &str,
    reserved: &mut BTreeSet<u16>,
) -> Result<NodeOutputs, String> {
    let config = std::fs::read_to_string(node.dir.join("config.toml")).unwrap_or_default();
    let static_nodes = toml_list(&config, "StaticNodes");
    let p2p_conf = listen_port(&config);
    let host = listen_host(&config);
    let live = node.processes.first().copied();
    let cmdline = live.and_then(|id| std::fs::read(format!("/proc/{}/cmdline", id.pid)).ok());
    let (ports, geth, version, geth_sha256) = match (&cmdline, live) {
        (Some(cmd), Some(id)) => {
            let port = |f: &str| arg_value(cmd, f).and_then(|v| v.parse::<u16>().ok());
            // Tx nodes serve HTTP + WS; validators no TCP RPC (older consorts: HTTP on all).
            let http = port("--http.port");
            let ws = port("--ws.port");
            let metrics = port("--metrics.port");
            let p2p = port("--port").or(p2p_conf).ok_or_else(|| {
                format!(
                    "{}: no p2p port in config.toml nor on geth's command line",
                    node.dir.display()
                )
            })?;
            let exe = cmd
                .split(|&b| b == 0)
                .next()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_default();
            // The SHA-256 of what the process runs (its executable, even if the file was
            // replaced since); the file is asked its version only if it is still that.
            let sha = |p: &Path| crate::chain::geth::sha256_file(p).ok();
            let running = sha(Path::new(&format!("/proc/{}/exe", id.pid))).unwrap_or_default();
            let version = if !running.is_empty() && sha(Path::new(&exe)) == Some(running.clone()) {
                crate::chain::geth::version_of(Path::new(&exe), geth_version)
                    .unwrap_or_else(|_| geth_version.to_string())
            } else {
                geth_version.to_string()
            };
            (
                NodePorts {
                    p2p,
                    http,
                    ws,
                    metrics,
                },
                exe,
                version,
                running,
            )
        }
        _ => {
            let mut alloc = PortAllocator::new(base_port, reserved.iter().copied());
            let p2p = match p2p_conf {
                Some(p) if !reserved.contains(&p) => p,
                _ => alloc.p2p().map_err(|e| e.to_string())?,
            };
            alloc.reserve(p2p);
            // RPC ports (tx nodes) are chosen when the node is started again.
            (
                NodePorts {
                    p2p,
                    http: None,
                    ws: None,
                    metrics: None,
                },
                String::new(),
                geth_version.to_string(),
                // Nothing vouches for a binary that is not running: the next start records
                // the hash of the geth it is started on.
                String::new(),
            )
        }
    };
    reserved.extend(ports.all());
    let id = live.unwrap_or(ProcessId {
        pid: 0,
        start_time: 0,
    });
    Ok(NodeOutputs {
        datadir: node.dir.to_string_lossy().into_owned(),
        pid: id.pid,
        start_time: id.start_time,
        ports,
        ipc_path: cmdline
            .as_ref()
            .and_then(|c| arg_value(c, "--ipcpath"))
            .unwrap_or_else(|| {
                super::node::ipc_path(&node.dir)
                    .to_string_lossy()
                    .into_owned()
            }),
        rpc_url: ports.http.map(|p| format!("http://{host}:{p}")),
        ws_url: ports.ws.map(|p| format!("ws://{host}:{p}")),
        metrics_url: ports.metrics.map(|p| process::metrics_url(&host, p)),
        enode: crate::render::enode_url(enode_id, &host, ports.p2p),
        static_nodes,
        geth,
        geth_version: version,
        geth_sha256,
        log: node
            .dir
            .join(process::LOG_FILE)
            .to_string_lossy()
            .into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_and_ports_are_read_back_from_the_rendered_config() {
        let text = "[Node.P2P]\nListenAddr = \"127.0.0.1:30311\"\nStaticNodes = [\n  \"enode://a@127.0.0.1:1\",\n  \"enode://b@127.0.0.1:2\",\n]\nTrustedNodes = [\n  \"enode://c@127.0.0.1:3\",\n]\n";
        assert_eq!(
            toml_list(text, "StaticNodes"),
            vec!["enode://a@127.0.0.1:1", "enode://b@127.0.0.1:2"]
        );
        assert_eq!(listen_port(text), Some(30311));
        let cmd = b"/bin/geth\0--datadir=/x\0--http.port=8545\0--authrpc.port=8551\0";
        assert_eq!(arg_value(cmd, "--http.port").as_deref(), Some("8545"));
        assert_eq!(arg_value(cmd, "--port"), None);
    }
}
