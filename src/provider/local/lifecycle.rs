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

/// Stops every node recorded in `state`, all at once; returns the names of those that were
/// running (in state order).
/// A node's mark that `consort stop` stopped it (so a node found down without it has
/// crashed or was killed); removed when the node starts again.
pub const STOPPED_MARK: &str = "stopped-by-consort";

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
    let results: Vec<(String, Result<Stopped, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|(name, o)| {
                s.spawn(move || {
                    let r = process::stop(o.process(), Path::new(&o.datadir), STOP_GRACE)
                        .map_err(|e| e.to_string());
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
        if r.is_ok() {
            // In the node's directory under the state dir (not a path read from state).
            let mark = node_dir(sd, &name).join(STOPPED_MARK);
            if mark.parent().is_some_and(Path::is_dir) {
                if let Err(e) = crate::state::fsutil::write_atomic(&mark, b"", 0o644) {
                    failed.push(format!("node.{name}: cannot write {}: {e}", mark.display()));
                }
            }
        }
        match r {
            Ok(Stopped::NotRunning) => {}
            Ok(_) => {
                events(Event::Step {
                    subject: name.clone(),
                    step: "stopped".into(),
                });
                stopped.push(name);
            }
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
