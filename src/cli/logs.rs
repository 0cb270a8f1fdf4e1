//! `consort logs`: one node's geth log, or every node's (of a member) interleaved by time,
//! each line prefixed with its node's name like `docker compose logs`; `-n` last lines (of
//! each node), `-F` follow.

use super::Global;
use crate::state::Kind;
use crate::state::State;
use anyhow::{bail, Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

/// The nodes of `state` (in the order the provider recorded them: the topology's), each
/// with its log file; `None` where none is recorded (Azure: the log is on the VM).
fn node_logs(state: &State) -> Vec<(String, Option<PathBuf>)> {
    let mut nodes: Vec<(String, Option<PathBuf>)> = state
        .resources
        .values()
        .filter(|r| matches!(r.kind, Kind::LocalNode | Kind::AzureVm))
        .filter_map(|r| {
            let name = r.attrs.get("node")?.as_str()?.to_string();
            let log = r
                .outputs
                .get("log")
                .and_then(|v| v.as_str())
                .map(PathBuf::from);
            Some((name, log))
        })
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    nodes
}

const NO_LOG: &str =
    "records no log file (on Azure the log is on the node's VM: `journalctl -u consort-geth`)";

/// The logs `consort logs` shows: `node`, else every node of `member` (else of the network).
/// Nodes whose log is not a file here (Azure: on the VM) have their last `lines` read by
/// the provider, once ([`Provider::remote_logs`](crate::provider::Provider::remote_logs)); they cannot be followed.
fn chosen(
    g: &Global,
    node: Option<&str>,
    member: Option<&str>,
    lines: usize,
    follow: bool,
) -> Result<Chosen> {
    let (loaded, _, state) = super::workspace(g).deployed()?;
    let all = node_logs(&state);
    let names = || {
        all.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let picked: Vec<&(String, Option<PathBuf>)> = match (node, member) {
        (Some(n), _) => {
            let Some(found) = all.iter().find(|(name, _)| name == n) else {
                bail!(
                    "network {} has no node {n:?}; its nodes: {}",
                    state.network,
                    names()
                );
            };
            vec![found]
        }
        (None, Some(m)) => {
            let topo = &loaded.topology;
            let Some(member) = topo.members.iter().find(|x| x.name == m) else {
                let members: Vec<&str> = topo.members.iter().map(|x| x.name.as_str()).collect();
                bail!(
                    "no member {m:?} in {}; members: {}",
                    g.file.display(),
                    members.join(", ")
                );
            };
            let of_member: Vec<String> = topo
                .nodes()
                .into_iter()
                .filter(|n| n.member == member.name)
                .map(|n| n.name)
                .collect();
            let picked: Vec<_> = all.iter().filter(|(n, _)| of_member.contains(n)).collect();
            if picked.is_empty() {
                bail!("member {m} runs no node of network {} here", state.network);
            }
            picked
        }
        (None, None) => all.iter().collect(),
    };
    if picked.is_empty() {
        bail!(
            "network {} has no nodes in state: `consort apply` starts them",
            state.network
        );
    }
    // Nodes in topology order: validators and tx nodes of each member, as `status` lists them.
    let order: Vec<String> = loaded
        .topology
        .nodes()
        .into_iter()
        .map(|n| n.name)
        .collect();
    let rank = |n: &str| order.iter().position(|o| o == n).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut remote: Vec<&str> = Vec::new();
    for (name, log) in picked {
        match log {
            Some(p) => out.push((name.clone(), p.clone())),
            None => remote.push(name),
        }
    }
    remote.sort_by_key(|n| rank(n));
    let mut fetched = Vec::new();
    if !remote.is_empty() {
        let provider = crate::provider::for_topology(&loaded.topology)?;
        match provider.remote_logs(&state, &remote, lines) {
            Some(_) if follow => bail!(
                "-F follows log files on this machine; the log of {} is on its VM ({} provider): run `consort logs` again, or `journalctl -fu consort-geth` on the VM",
                remote.join(", "),
                provider.name()
            ),
            Some(logs) => {
                for (name, text) in remote.iter().zip(logs) {
                    let text = text.map_err(|e| anyhow::anyhow!("node {name}: {e}"))?;
                    fetched.push((name.to_string(), text));
                }
            }
            None if node.is_some() => bail!("node {} {NO_LOG}", remote[0]),
            None => {}
        }
    }
    if out.is_empty() && fetched.is_empty() {
        bail!("no node of network {} {NO_LOG}", state.network);
    }
    out.sort_by_key(|(n, _)| rank(n));
    Ok(Chosen {
        files: out,
        fetched,
    })
}

/// What `consort logs` shows: log files here, and logs the provider fetched (node, text).
struct Chosen {
    files: Vec<(String, PathBuf)>,
    fetched: Vec<(String, String)>,
}

pub(super) fn logs(
    g: &Global,
    node: Option<&str>,
    member: Option<&str>,
    lines: usize,
    follow: bool,
) -> Result<i32> {
    let Chosen {
        files: chosen,
        fetched,
    } = chosen(g, node, member, lines, follow)?;
    // One node: its log as it is; several: each line prefixed with its node's name.
    let width = chosen
        .iter()
        .map(|(n, _)| n)
        .chain(fetched.iter().map(|(n, _)| n))
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let prefix = |name: &str| {
        if node.is_some() {
            String::new()
        } else {
            format!("{name:<width$} | ")
        }
    };
    let mut tails = Vec::with_capacity(chosen.len());
    let mut shown: Vec<(String, String)> = Vec::new();
    for (name, text) in &fetched {
        for l in last_lines(text, lines).lines() {
            shown.push((name.clone(), l.to_string()));
        }
    }
    for (name, path) in &chosen {
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("cannot open {} (log of {name})", path.display()))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        for l in last_lines(&text, lines).lines() {
            shown.push((name.clone(), l.to_string()));
        }
        tails.push(Tail {
            name: name.clone(),
            path: path.clone(),
            file,
            pos: text.len() as u64,
            partial: Vec::new(),
        });
    }
    // A reader that went away (`consort logs | head`) ends the command quietly, with or
    // without -F: logs only print, so nothing is left half done.
    let mut out = std::io::stdout().lock();
    let printed = interleave(shown)
        .into_iter()
        .try_for_each(|(name, line)| writeln!(out, "{}{line}", prefix(&name)))
        .and_then(|()| out.flush());
    if printed.is_err() || !follow {
        return Ok(0);
    }
    // Follow: print the complete lines each log gains (a log rotated or truncated is read
    // from its start).
    loop {
        for t in &mut tails {
            for line in t.read_new()? {
                if writeln!(out, "{}{line}", prefix(&t.name))
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return Ok(0); // the reader went away
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Tail {
    name: String,
    path: PathBuf,
    file: std::fs::File,
    pos: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn read_new(&mut self) -> Result<Vec<String>> {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if len < self.pos {
            self.file = std::fs::File::open(&self.path)?;
            self.pos = 0;
            self.partial.clear();
        }
        if len == self.pos {
            return Ok(vec![]);
        }
        self.file.seek(SeekFrom::Start(self.pos))?;
        let mut buf = Vec::new();
        self.file.read_to_end(&mut buf)?;
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(vec![]);
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        Ok(String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// geth's time stamp of a log line (`INFO [12-06|09:49:29.403] …`), which sorts as text.
fn stamp(line: &str) -> Option<&str> {
    let open = line.find('[')?;
    if open > 6 {
        return None;
    }
    let close = open + line[open..].find(']')?;
    Some(&line[open + 1..close])
}

/// Lines of several nodes merged by time stamp, each node's own order kept; a line with
/// no stamp (a continuation) stays right after the line before it.
fn interleave(lines: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut keyed: Vec<(String, usize, (String, String))> = Vec::with_capacity(lines.len());
    let mut last: std::collections::HashMap<String, String> = Default::default();
    for (i, (node, line)) in lines.into_iter().enumerate() {
        let key = match stamp(&line) {
            Some(s) => {
                last.insert(node.clone(), s.to_string());
                s.to_string()
            }
            None => last.get(&node).cloned().unwrap_or_default(),
        };
        keyed.push((key, i, (node, line)));
    }
    keyed.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    keyed.into_iter().map(|(_, _, l)| l).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(last_lines("a\n", 0), "");
    }

    #[test]
    fn lines_interleave_by_time_and_continuations_stay_with_their_line() {
        let l = |n: &str, s: &str| (n.to_string(), s.to_string());
        let merged = interleave(vec![
            l("a", "INFO [12-06|09:00:01.000] a1"),
            l("a", "  continued"),
            l("a", "INFO [12-06|09:00:03.000] a3"),
            l("b", "WARN [12-06|09:00:02.000] b2"),
            l("b", "INFO [12-06|09:00:03.000] b3"),
        ]);
        let text: Vec<&str> = merged.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            text,
            [
                "INFO [12-06|09:00:01.000] a1",
                "  continued",
                "WARN [12-06|09:00:02.000] b2",
                "INFO [12-06|09:00:03.000] a3",
                "INFO [12-06|09:00:03.000] b3",
            ]
        );
        assert_eq!(stamp("Fatal: no [stamp] here"), None);
    }
}
