//! Ctrl-C, SIGTERM and SIGHUP during apply, destroy and member add/remove, and the
//! confirmation prompt (where an interrupt exits at once).

use crate::events::{Event, EventSink};
use anyhow::{bail, Result};
use std::io::{BufRead, IsTerminal};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

// The first signal stops new work, lets the changes in flight
// finish and be saved, then exits 130; the second exits 130 at once (state already holds
// every change that finished: it is saved after each). Children run in their own process
// group, so a Ctrl-C at the terminal reaches consort only.

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Set while waiting at the confirmation prompt: nothing has started, exit at once.
static AT_PROMPT: AtomicBool = AtomicBool::new(false);
/// Changes started and not yet finished (counted from the progress events).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn write_stderr(msg: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; the buffer is valid for its length.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

extern "C" fn on_interrupt(_: libc::c_int) {
    let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    if AT_PROMPT.load(Ordering::SeqCst) {
        write_stderr(b"\ninterrupted: nothing was changed\n");
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    if n >= 1 {
        write_stderr(
            b"\ninterrupted again: stopping now; state holds every change finished so far \
              (run the command again to converge)\n",
        );
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

pub(super) fn install_interrupt_handler() {
    // SAFETY: a handler that only touches atomics, write(2) and _exit.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, on_interrupt as *const () as libc::sighandler_t);
        }
    }
    // The first interrupt's message, from a normal thread (formatting is not
    // async-signal-safe).
    std::thread::spawn(|| loop {
        if INTERRUPTS.load(Ordering::SeqCst) >= 1 {
            announce_interrupt();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    });
}

/// Prints the first interrupt's message once (from the watcher thread, or from an exit
/// path that got there first).
pub(super) fn announce_interrupt() {
    static ANNOUNCED: AtomicBool = AtomicBool::new(false);
    if !ANNOUNCED.swap(true, Ordering::SeqCst) {
        say_err!(
            "\ninterrupting: finishing {} change(s) in flight, Ctrl-C again to stop now",
            IN_FLIGHT.load(Ordering::SeqCst)
        );
    }
}

/// Wraps the progress sink to count the changes in flight.
pub(super) fn counting(inner: EventSink) -> EventSink {
    std::sync::Arc::new(move |e: Event| {
        match &e {
            Event::ChangeStarted { .. } => {
                IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            }
            Event::ChangeDone { .. } | Event::ChangeFailed { .. } => {
                let _ = IN_FLIGHT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(1))
                });
            }
            _ => {}
        }
        inner(e)
    })
}

pub(super) fn interrupted() -> bool {
    let yes = INTERRUPTED.load(Ordering::SeqCst);
    if yes {
        announce_interrupt();
    }
    yes
}

pub(super) fn confirm(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {question} without confirmation: stdin is not a terminal; pass --yes");
    }
    out!("\nDo you want to {question}? Only 'yes' will be accepted: ");
    super::stdout::flush();
    let mut line = String::new();
    AT_PROMPT.store(true, Ordering::SeqCst);
    let read = std::io::stdin().lock().read_line(&mut line);
    AT_PROMPT.store(false, Ordering::SeqCst);
    read?;
    Ok(line.trim() == "yes")
}
