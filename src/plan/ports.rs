//! The ports of a node, as state records them and as `plan` shows them for new nodes (the
//! local provider chooses them; apply may still move a node whose planned port is taken).

use serde::{Deserialize, Serialize};

/// The TCP/UDP ports of one geth node. Validators have only p2p: consort controls every
/// node over its IPC socket, and applications connect to tx nodes (HTTP and WebSocket).
/// geth's authrpc (engine API, JWT-authenticated, unused under Clique) always opens; it
/// binds 127.0.0.1 on a port the kernel picks (`--authrpc.port=0`), so it is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePorts {
    pub p2p: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<u16>,
    /// geth's Prometheus metrics (`--metrics.port`, on 127.0.0.1); absent on nodes
    /// started before consort enabled metrics (they get one at their next restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<u16>,
}

impl NodePorts {
    pub fn all(&self) -> Vec<u16> {
        [Some(self.p2p), self.http, self.ws, self.metrics]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// The ports a new node will get, as `plan` shows them (local provider): its ports and the
/// conventional ones it skips because something holds them ("p2p 30303").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedPorts {
    #[serde(flatten)]
    pub ports: NodePorts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub busy: Vec<String>,
}
