//! The progress view: one monitor draws what providers report. On a terminal, a spinner line
//! per node moving through its steps (keys → init → start → peered → sealing) and one for
//! the current phase; off a terminal, one plain line per event. `-q` shows only failures;
//! `-v` adds a line as each change starts and every node step (on a terminal too).
//! Warnings go to stderr.

use crate::events::{Event, EventSink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Inner {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    phase: Option<ProgressBar>,
    /// -1 quiet, 0 normal, 1 verbose.
    level: i8,
}

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Mutex<Inner>>,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.green} {prefix:.bold} {wide_msg} {elapsed:>4}")
        .expect("valid template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓")
}

impl Progress {
    pub fn new(level: i8) -> Progress {
        let multi = (level >= 0 && std::io::stdout().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Progress {
            inner: Arc::new(Mutex::new(Inner {
                multi,
                bars: BTreeMap::new(),
                phase: None,
                level,
            })),
        }
    }

    pub fn sink(&self) -> EventSink {
        let me = self.clone();
        Arc::new(move |ev| me.handle(ev))
    }

    pub fn phase(&self, message: &str) {
        self.handle(Event::Phase {
            message: message.to_string(),
        })
    }

    fn line(inner: &Inner, text: String) {
        let text = super::hint::hint(&text);
        match &inner.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => outln!("{text}"),
        }
    }

    fn handle(&self, ev: Event) {
        let mut inner = self.inner.lock().unwrap();
        let quiet_ok = matches!(ev, Event::ChangeFailed { .. } | Event::Warning { .. });
        if inner.level < 0 && !quiet_ok {
            return;
        }
        match ev {
            Event::ChangeStarted {
                addr,
                action,
                recorded,
            } => {
                if inner.level > 0 {
                    Self::line(&inner, format!("  … {} {addr}", symbol(action, recorded)));
                }
            }
            Event::ChangeDone {
                addr,
                action,
                recorded,
                elapsed,
            } => Self::line(
                &inner,
                format!(
                    "  {} {addr} ({:.1}s)",
                    symbol(action, recorded),
                    elapsed.as_secs_f64()
                ),
            ),
            Event::ChangeFailed { addr, error } => {
                Self::line(&inner, format!("  ✗ {addr}: {error}"))
            }
            Event::Step { subject, step } => {
                if inner.level > 0 {
                    Self::line(&inner, format!("  {subject}: {step}"));
                }
                if let Some(m) = inner.multi.clone() {
                    let bar = inner.bars.entry(subject.clone()).or_insert_with(|| {
                        let b = m.add(ProgressBar::new_spinner());
                        b.set_style(style());
                        b.set_prefix(subject.clone());
                        b.enable_steady_tick(Duration::from_millis(120));
                        b
                    });
                    let msg = match bar.message() {
                        m if m.is_empty() => step.clone(),
                        m => format!("{m} → {step}"),
                    };
                    bar.set_message(msg);
                } else if inner.level == 0 {
                    say!("  {subject}: {step}");
                }
            }
            Event::Phase { message } => {
                if let Some(m) = inner.multi.clone() {
                    if let Some(p) = inner.phase.take() {
                        p.finish_and_clear();
                    }
                    let b = m.add(ProgressBar::new_spinner());
                    b.set_style(style());
                    b.set_message(message);
                    b.enable_steady_tick(Duration::from_millis(120));
                    inner.phase = Some(b);
                } else {
                    say!("{message} …");
                }
            }
            Event::PhaseDone { message, elapsed } => {
                if let Some(p) = inner.phase.take() {
                    p.finish_and_clear();
                }
                Self::line(&inner, format!("{message} ({:.1}s)", elapsed.as_secs_f64()));
            }
            Event::Warning { message } => match &inner.multi {
                Some(m) => m.suspend(|| say_err!("warning: {message}")),
                None => say_err!("warning: {message}"),
            },
        }
    }

    pub fn finish(&self) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(p) = inner.phase.take() {
            p.finish_and_clear();
        }
        for (_, b) in std::mem::take(&mut inner.bars) {
            b.finish();
        }
    }
}

/// A change's symbol; `=` for a record-only step (as `plan` shows it).
fn symbol(action: crate::state::Action, recorded: bool) -> &'static str {
    if recorded {
        "="
    } else {
        action.symbol()
    }
}
