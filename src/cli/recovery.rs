//! `consort state recover`: call `crate::ops::recover`, say what it rebuilt.

use super::front::Terminal;
use super::{workspace, Global};
use crate::ops;
use anyhow::Result;

/// `consort state recover`: rebuilds state from the files in the state dir.
pub(super) fn state_recover(g: &Global) -> Result<i32> {
    let front = Terminal::new(&g.file, true);
    let rec = ops::recover::state_recover(&workspace(g), &front)?;
    if rec.recovered.is_empty() {
        say!(
            "Nothing to recover: {} already lists everything consort found in {} that the topology names.",
            if rec.had_state { "state" } else { "there is no state and" },
            rec.root.display()
        );
    } else {
        say!(
            "Recovered {} resource(s) of network {} into {}:\n  {}",
            rec.recovered.len(),
            rec.network,
            rec.state_file.display(),
            rec.recovered.join("\n  ")
        );
    }
    if !rec.skipped.is_empty() {
        say!("Not recovered:\n  {}", rec.skipped.join("\n  "));
    }
    say!(
        "Next: `consort plan -f {}` shows what apply still has to do (for an unchanged topology: \
         at most restarting nodes that are not running).",
        g.file.display()
    );
    Ok(0)
}
