//! Events from the executor, providers and the geth installer to whatever draws progress
//! (kept low, beside nothing but `state`, so `chain` can emit them too; CLI: indicatif on a
//! terminal, plain lines otherwise; tests: a collector). Never carries a secret.

use crate::state::Action;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ChangeStarted {
        addr: String,
        action: Action,
        /// A record-only step (already done on the network; see `Change::record_only`).
        recorded: bool,
    },
    ChangeDone {
        addr: String,
        action: Action,
        recorded: bool,
        elapsed: Duration,
    },
    ChangeFailed {
        addr: String,
        error: String,
    },
    /// A step of one subject (usually a node: keys → init → start → peered → sealing).
    Step {
        subject: String,
        step: String,
    },
    /// Something long with no subject ("building geth 1.13.15 with go install").
    Phase {
        message: String,
    },
    /// A phase finished.
    PhaseDone {
        message: String,
        elapsed: Duration,
    },
    /// Something the user should read.
    Warning {
        message: String,
    },
}

pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything.
pub fn null_sink() -> EventSink {
    Arc::new(|_| {})
}
