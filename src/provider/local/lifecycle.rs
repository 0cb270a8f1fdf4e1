//! `consort stop` for local networks: every recorded geth process is stopped (SIGTERM, so
//! geth writes its state to disk; SIGKILL only after the grace period), while its data
//! directory, keys and its entry in state stay. The next `consort start` or `consort apply`
//! sees each node as "restart (process not running)" and starts it on the same data, so
//! the chain continues from its head.

use super::process::{self, Stopped};
use super::{node_dir, NodeOutputs, STOP_GRACE};
use crate::events::{Event, EventSink};
use crate::provider::ProviderError;
use crate::state::{State, StateDir};
use std::path::Path;

/// A node's mark that `consort stop` stopped it (so a node found down without it has
/// crashed or was killed); removed when the node starts again.
pub const STOPPED_MARK: &str = "stopped-by-consort";

/// Stops every node recorded in `state`, all at once; returns the names of those that were
/// running (in state order).
pub fn stop_nodes(
    sd: &StateDir,
    state: &State,
    events: &EventSink,
) -> Result<Vec<String>, ProviderError> {
    let nodes: Vec<(String, NodeOutputs)> = state
        .resources
        .keys()
        .filter_map(|addr| addr.strip_prefix("node."))
        .filter_map(|name| NodeOutputs::from_state(state, name).map(|o| (name.to_string(), o)))
        .collect();
    // Each node is reported as soon as it is down (and marked), so a progress line — and a
    // kill point of the fault suite — can fall between nodes.
    let results: Vec<(String, Result<Stopped, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|(name, o)| {
                s.spawn(move || {
                    let r = process::stop(o.process(), Path::new(&o.datadir), STOP_GRACE)
                        .map_err(|e| e.to_string())
                        .and_then(|stopped| {
                            mark_stopped(sd, name)?;
                            Ok(stopped)
                        });
                    if matches!(r, Ok(Stopped::Terminated | Stopped::Killed)) {
                        events(Event::Step {
                            subject: name.clone(),
                            step: "stopped".into(),
                        });
                    }
                    (name.clone(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("stop thread"))
            .collect()
    });
    let mut stopped = Vec::new();
    let mut failed = Vec::new();
    for (name, r) in results {
        match r {
            Ok(Stopped::NotRunning) => {}
            Ok(_) => stopped.push(name),
            Err(e) => failed.push(format!("node.{name}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(ProviderError::Other(format!(
            "could not stop every node:\n  {}",
            failed.join("\n  ")
        )));
    }
    Ok(stopped)
}

/// Marks node `name` as stopped by `consort stop`, in its directory under the state dir
/// (not a path read from state); a node whose directory is gone needs no mark.
fn mark_stopped(sd: &StateDir, name: &str) -> Result<(), String> {
    let mark = node_dir(sd, name).join(STOPPED_MARK);
    if mark.parent().is_some_and(Path::is_dir) {
        crate::state::fsutil::write_atomic(&mark, b"", 0o644)
            .map_err(|e| format!("cannot write {}: {e}", mark.display()))?;
    }
    Ok(())
}
