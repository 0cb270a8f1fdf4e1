//! Bounded fan-out: run a function over many nodes with at most `limit` at a time.
//!
//! Probing 60 (or 600) nodes one thread each costs more in thread start-up and scheduler
//! churn than the probes themselves on a small machine; a few workers taking the next
//! item from a shared counter keep every core busy without that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// How many probes of nodes run at once.
pub const PROBE_CONCURRENCY: usize = 16;

/// `f` over `items`, at most `limit` at a time; results in the order of `items`.
pub fn map<T: Sync, R: Send>(items: &[T], limit: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = limit.max(1).min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a probe panicked"))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Runs CPU-heavy work (a keystore's scrypt) with at most one such job per core in this
/// process: the executor may run a hundred changes at once, most of them waiting on geth
/// or ARM, and those waits must not starve behind a hundred key derivations.
pub fn cpu_bound<R>(f: impl FnOnce() -> R) -> R {
    static BUSY: Mutex<usize> = Mutex::new(0);
    static FREED: Condvar = Condvar::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    {
        let mut busy = BUSY.lock().unwrap();
        while *busy >= cores {
            busy = FREED.wait(busy).unwrap();
        }
        *busy += 1;
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            *BUSY.lock().unwrap() -= 1;
            FREED.notify_one();
        }
    }
    let _release = Release;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn keeps_order_and_never_runs_more_than_the_limit() {
        let items: Vec<u32> = (0..200).collect();
        let now = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = map(&items, 7, |x| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(n, Ordering::SeqCst);
            std::thread::yield_now();
            now.fetch_sub(1, Ordering::SeqCst);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 7);
        assert!(map(&[] as &[u32], 4, |x| *x).is_empty());
    }
}
