//! `consort dashboard`: a live page for a local network, served by consort itself on
//! 127.0.0.1 only, with its HTML, script and styles embedded in the binary (no CDN; works
//! offline).
//!
//! - [`sampler`] reads state and the nodes once a second (the health assessment of
//!   `consort status`, peers, Clique signers and who sealed which block, geth's Prometheus
//!   metrics) into one snapshot the page polls;
//! - [`api`] is the page's only way to the chain: a fixed list of read methods
//!   ([`api::READ_METHODS`]), each sent to a node over its IPC socket; anything else is
//!   refused, and nothing the server answers holds a key or a password;
//! - `assets` are the page;
//! - [`server`] holds the connections: header-read timeout and a connection cap, so a
//!   local user cannot starve the owner.

pub mod api;
mod assets;
pub mod metrics;
pub mod sampler;
pub mod server;

use crate::state::StateDir;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The port `consort dashboard` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8600;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot listen on 127.0.0.1:{port}: {reason}; pick another port with `--port P` (`--port 0` picks a free one)")]
    Bind { port: u16, reason: String },
    #[error("the dashboard reads a local network over its nodes' IPC sockets; network {0} runs on another provider")]
    NotLocal(String),
    #[error("{0}")]
    Other(String),
}

/// What the dashboard shows: the network of `file`, whose state is in `state_dir`.
#[derive(Debug, Clone)]
pub struct Options {
    pub file: PathBuf,
    pub state_dir: StateDir,
    /// 0: a free port.
    pub port: u16,
}

/// Shared between the sampler thread and the request handlers.
pub struct Shared {
    pub opts: Options,
    /// The last snapshot (None until the first sample is taken).
    pub snapshot: RwLock<Option<Arc<serde_json::Value>>>,
    /// IPC sockets of the running nodes, tx nodes first: where [`api`] sends reads.
    pub endpoints: RwLock<Vec<PathBuf>>,
    pub stop: AtomicBool,
}

/// Serves the dashboard until Ctrl-C (or `shutdown` resolves). `ready` gets the address
/// once the port is bound, before the first request is answered.
pub fn serve(
    opts: Options,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let loaded =
        crate::topology::load(&opts.file).map_err(|e| DashboardError::Other(e.to_string()))?;
    if !matches!(
        loaded.topology.provider,
        crate::topology::ProviderConfig::Local(_)
    ) {
        return Err(DashboardError::NotLocal(loaded.topology.network.name));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DashboardError::Other(format!("cannot start the server runtime: {e}")))?;
    let port = opts.port;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port,
        ))))
        .map_err(|e| DashboardError::Bind {
            port,
            reason: e.to_string(),
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| DashboardError::Other(e.to_string()))?;
    let shared = Arc::new(Shared {
        opts,
        snapshot: RwLock::new(None),
        endpoints: RwLock::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    // The sampler does blocking I/O (IPC, metrics over HTTP): its own thread, outside
    // the runtime.
    let sampler = {
        let shared = shared.clone();
        std::thread::spawn(move || sampler::run(&shared))
    };
    ready(addr);
    let app = api::router(shared.clone());
    let served = rt.block_on(server::serve(listener, app, shutdown));
    shared.stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    served.map_err(|e| DashboardError::Other(format!("the dashboard server failed: {e}")))
}
