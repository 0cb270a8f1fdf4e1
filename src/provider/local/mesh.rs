//! The peer mesh: who dials whom at start, and the periodic repair.

use super::*;

impl LocalProvider {
    /// Runs `f` on the nodes known to be up (name → enode URL): those running when this
    /// command first asked, and those started since (`join_mesh`).
    pub(super) fn nodes_up<T>(
        &self,
        ctx: &ApplyCtx,
        f: impl FnOnce(&mut BTreeMap<String, UpNode>) -> T,
    ) -> T {
        let mut guard = self.up.lock().unwrap();
        let up = guard.get_or_insert_with(|| {
            recorded_nodes(&ctx.snapshot())
                .into_iter()
                .filter(|(_, o)| o.is_running())
                .map(|(n, o)| {
                    let up = UpNode {
                        control: o.control(),
                        enode: o.enode,
                    };
                    (n, up)
                })
                .collect()
        });
        f(up)
    }

    /// A freshly started node joins the mesh: it dials every node that came up after its
    /// config was written, then counts as up itself — atomically, so of two nodes
    /// starting together exactly one dials the other, and only once that one is up.
    ///
    /// Why not let every node dial the whole mesh from its config: two nodes starting
    /// together dial each other at the same moment, each keeps its own outgoing
    /// connection and drops the other's as a duplicate, both connections close, and geth
    /// redials neither for 35 s (its dial history). Seen once in ~15 applies of 7 nodes.
    pub(super) fn join_mesh(
        &self,
        ctx: &ApplyCtx,
        node: &str,
        me: String,
        launch: &NodeLaunch,
        dialled: &[String],
    ) {
        let rpc = RpcClient::ipc(&launch.ipc_path).with_timeout(PROBE_TIMEOUT);
        let me = UpNode {
            enode: me,
            control: rpc.clone(),
        };
        let peering = ctx.peering();
        self.nodes_up(ctx, |up| {
            for (name, peer) in up.iter() {
                if peering.are_peers(node, name) && !dialled.contains(&peer.enode) {
                    let _ = rpc.admin_add_peer(&peer.enode);
                }
            }
            up.insert(node.to_string(), me);
        });
    }

    pub(super) fn own_enode(ctx: &ApplyCtx, node: &str, launch: &NodeLaunch) -> String {
        let st = ctx.snapshot();
        let id = st
            .output_str(&format!("key.node.{node}"), "enode_id")
            .unwrap_or_default();
        render::enode_url(id, ctx.topology.local_address(), launch.p2p_port)
    }

    /// Enode URLs of the node's planned peers (see `plan::peering`) whose key and ports
    /// are known.
    pub(super) fn static_nodes(
        &self,
        ctx: &ApplyCtx,
        node: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let st = ctx.snapshot();
        let peering = ctx.peering();
        let mut out = Vec::new();
        for n in ctx.topology.nodes() {
            if !peering.are_peers(node, &n.name) {
                continue;
            }
            let Some(id) = st.output_str(&format!("key.node.{}", n.name), "enode_id") else {
                continue;
            };
            let ports = self.ports_of(ctx, &n.name)?;
            out.push(render::enode_url(
                id,
                ctx.topology.local_address(),
                ports.p2p,
            ));
        }
        out.extend(external_peers(ctx.topology, &peering, node));
        Ok(out)
    }

    /// Periodic repair: every running node has its planned peers (admin_addPeer for
    /// missing ones; geth retries failed static dials late).
    ///
    /// `reverse`: the side that does not normally dial does. A dial that failed (a
    /// handshake that timed out on a busy machine, say) is not retried by geth for ~35 s,
    /// and nudging the same side again waits out that same dial history; the other side
    /// has none for this peer. By then the first side is not dialling, so the two cannot
    /// meet head-on.
    pub(super) fn sync_mesh(&self, topology: &Topology, st: &State, reverse: bool) {
        let peering = Peering::for_topology(topology);
        let nodes = recorded_nodes(st);
        let enodes: BTreeMap<&str, &str> = nodes
            .iter()
            .map(|(n, o)| (n.as_str(), o.enode.as_str()))
            .collect();
        let names: BTreeSet<String> = topology.nodes().into_iter().map(|n| n.name).collect();
        let running: Vec<&(String, NodeOutputs)> = nodes
            .iter()
            .filter(|(name, o)| names.contains(name) && o.is_running())
            .collect();
        parallel::map(&running, parallel::PROBE_CONCURRENCY, |(name, o)| {
            let rpc = o.control().with_timeout(PROBE_TIMEOUT);
            dial_external_peers(&external_peers(topology, &peering, name), &rpc);
            let Ok(peers) = rpc.admin_peers() else { return };
            let have: BTreeSet<&str> = peers.iter().filter_map(|p| p.pubkey()).collect();
            for peer in peering.peers_of(name) {
                // One side of a pair dials: two dialling each other at once can drop both
                // connections (see `join_mesh`).
                if Peering::dials(name, peer) == reverse {
                    continue;
                }
                let Some(enode) = enodes.get(peer) else {
                    continue;
                };
                if let Some(k) = rpc::enode_pubkey(enode) {
                    if !have.contains(k) {
                        let _ = rpc.admin_add_peer(enode);
                    }
                }
            }
        });
    }
}

/// Enode URLs of the nodes other operators run (external members of the topology) that
/// the peering plan gives `node`: it lists them as static and trusted peers, so it dials
/// them at start and lets them in past MaxPeers (which counts them too).
pub(super) fn external_peers(topology: &Topology, peering: &Peering, node: &str) -> Vec<String> {
    topology
        .external_nodes()
        .into_iter()
        .filter(|(n, _)| peering.are_peers(node, &n.name))
        .map(|(_, url)| url.to_string())
        .collect()
}

/// Dials the external peers `urls` the node is not connected to yet (admin_addPeer over
/// IPC), and trusts them: geth's own static dialling of them can lag by tens of seconds.
pub(super) fn dial_external_peers(urls: &[String], rpc: &RpcClient) {
    if urls.is_empty() {
        return;
    }
    let have: BTreeSet<String> = rpc
        .admin_peers()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.pubkey().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for url in urls {
        if rpc::enode_pubkey(url).is_some_and(|k| !have.contains(k)) {
            let _ = rpc.admin_add_trusted_peer(url);
            let _ = rpc.admin_add_peer(url);
        }
    }
}

/// A node that is up: where it listens for peers, and its control socket.
#[derive(Debug, Clone)]
pub(super) struct UpNode {
    pub(super) enode: String,
    pub(super) control: RpcClient,
}

/// A node's peers at its start: whom it dials, and the whole mesh (trusted, and dialled
/// on later restarts).
pub(super) struct Peers {
    pub(super) dial: Vec<String>,
    pub(super) mesh: Vec<String>,
}
