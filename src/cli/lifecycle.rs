//! `consort stop` and `consort start`: a deployed network's processes.

use super::apply::run;
use super::front::Terminal;
use super::{workspace, Global};
use crate::ops::{self, apply::ApplyOpts};
use anyhow::Result;
use std::path::Path;

pub(super) fn stop(g: &Global) -> Result<i32> {
    let front = Terminal::new(&g.file, true);
    let stopped = ops::lifecycle::stop(&workspace(g), &front);
    front.finish();
    let s = stopped?;
    if s.nodes.is_empty() {
        say!(
            "No node of network {} was running; nothing to stop.",
            s.network
        );
    } else {
        say!(
            "Stopped {} node(s) of network {} at head #{}; all data is kept. `consort start` continues the chain from there.",
            s.nodes.len(),
            s.network,
            s.head
        );
    }
    Ok(0)
}

pub(super) fn start(g: &Global, timeout: u64, geth: Option<&Path>) -> Result<i32> {
    let opts = ApplyOpts {
        allow_data_loss: false,
        timeout,
        skip_health: false,
        geth,
        saved_plan: None,
        only_restarts: true,
        command: "start",
    };
    run(g, true, |ws, front| ops::lifecycle::start(ws, opts, front))
}
