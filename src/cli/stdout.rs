//! Writes to stdout that a closed reader cannot interrupt (`consort destroy | head`): the
//! first failed write (EPIPE, usually) turns printing off for the rest of the run and the
//! command carries on — a destroy or an apply half done because nobody reads its progress
//! any more would lose more than a line of output. Everything the CLI prints to stdout goes
//! through `outln!` and `out!` (directly or through `say!`/`say_raw!`); errors and
//! warnings stay on stderr.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` (and a newline when `newline`) to stdout, unless an earlier write failed;
/// a failure is remembered, never reported: the command's outcome is in its exit code and
/// its state, not in whether someone still reads.
pub fn write(args: std::fmt::Arguments, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if r.is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Flushes stdout (before a prompt); a failure turns printing off like a failed write.
pub fn flush() {
    if std::io::stdout().flush().is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `println!` that a closed stdout cannot stop (see the module docs).
macro_rules! outln {
    () => {
        $crate::cli::stdout::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!($($arg)*), true)
    };
}

/// `print!` that a closed stdout cannot stop (see the module docs).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!($($arg)*), false)
    };
}
