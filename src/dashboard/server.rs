//! The dashboard's connections: HTTP/1.1 over loopback, with limits that keep a local user
//! from starving the owner (issue 20 item 12).
//!
//! - a request's headers must arrive within [`HEADER_READ_TIMEOUT`] (hyper's header-read
//!   timer also closes a keep-alive connection that sends nothing for that long);
//! - at most [`MAX_CONNECTIONS`] connections are open at once, so the server never runs
//!   out of file descriptors (accept, IPC to the nodes and metrics need them too). A new
//!   connection beyond the cap closes the oldest one with no request in progress: someone
//!   holding hundreds of idle or half-sent requests only pushes out their own, and the
//!   owner's page (whose requests arrive whole) is answered.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Connections open at once (the page uses a handful).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request's headers (or, on a kept-alive connection, the next request) may
/// take to arrive.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// After `accept` fails (out of descriptors, or a reset connection): wait this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

struct Conn {
    /// Requests being answered on it.
    busy: Arc<AtomicUsize>,
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct Table {
    next: u64,
    /// By age: ids only grow.
    open: BTreeMap<u64, Conn>,
}

impl Table {
    /// Room for one more: closes the oldest connection with no request in progress.
    /// False if every connection is answering a request.
    fn make_room(&mut self) -> bool {
        if self.open.len() < MAX_CONNECTIONS {
            return true;
        }
        let idle = self
            .open
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(c) => {
                c.task.abort();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in progress while it lives.
struct Busy(Arc<AtomicUsize>);
impl Busy {
    fn new(n: &Arc<AtomicUsize>) -> Busy {
        n.fetch_add(1, Ordering::SeqCst);
        Busy(n.clone())
    }
}
impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then closes every connection.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(Mutex::new(Table::default()));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE/ENFILE (should not happen under the cap) or a connection reset
                // before it was accepted: nothing to answer; try again shortly.
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let mut t = table.lock().unwrap();
        if !t.make_room() {
            // Every connection is answering a request: refuse this one (closed unread).
            continue;
        }
        let id = t.next;
        t.next += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let inner = TowerToHyperService::new(app.clone());
        let counter = busy.clone();
        let svc = hyper::service::service_fn(move |req| {
            let guard = Busy::new(&counter);
            let answer = hyper::service::Service::call(&inner, req);
            async move {
                let _guard = guard;
                answer.await
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), svc);
        let done = table.clone();
        // Spawned with the table locked, so the task's own removal comes after its insert.
        let task = tokio::spawn(async move {
            let _ = conn.await;
            done.lock().unwrap().open.remove(&id);
        });
        t.open.insert(
            id,
            Conn {
                busy,
                task: task.abort_handle(),
            },
        );
    }
    for (_, c) in std::mem::take(&mut table.lock().unwrap().open) {
        c.task.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_cap_the_oldest_idle_connection_goes_and_busy_ones_stay() {
        let mut t = Table::default();
        let mut tasks = Vec::new();
        for id in 0..MAX_CONNECTIONS as u64 {
            let task = tokio::spawn(std::future::pending::<()>());
            let busy = Arc::new(AtomicUsize::new(usize::from(id == 0)));
            t.open.insert(
                id,
                Conn {
                    busy,
                    task: task.abort_handle(),
                },
            );
            tasks.push(task);
        }
        assert!(t.make_room());
        // 0 is busy: 1 (the oldest idle one) went.
        assert!(t.open.contains_key(&0));
        assert!(!t.open.contains_key(&1));
        assert!(tasks.remove(1).await.unwrap_err().is_cancelled());
        // All busy: no room.
        t.open.insert(
            999,
            Conn {
                busy: Arc::new(AtomicUsize::new(0)),
                task: tokio::spawn(std::future::pending::<()>()).abort_handle(),
            },
        );
        for c in t.open.values() {
            c.busy.store(1, Ordering::SeqCst);
        }
        assert!(!t.make_room());
        for c in t.open.values() {
            c.task.abort();
        }
    }
}
