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
        out.extend(external_peers(ctx.topology, peering, node));
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

/// The peers whose enode `config_text` (a node's config.toml) names at another address
/// than the one the peer runs on, as `(peer, the stale enode, its enode now)`: after a
/// restart the node would dial a port nobody listens on.
pub(super) fn stale_enodes<'a>(
    config_text: &str,
    peers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (peer, enode) in peers {
        let Some(id) = rpc::enode_pubkey(enode) else {
            continue;
        };
        let prefix = format!("\"enode://{id}@");
        for (i, _) in config_text.match_indices(&prefix) {
            let named = config_text[i + 1..].split('"').next().unwrap_or_default();
            if named != enode {
                out.push((peer.to_string(), named.to_string(), enode.to_string()));
            }
        }
    }
    out
}

/// Why `node`'s config.toml needs rewriting: the planned peers it names at a stale
/// address (None when it names every peer where it runs, or has no config to read).
pub(super) fn stale_config(topology: &Topology, st: &State, node: &str) -> Option<String> {
    let peering = Peering::for_topology(topology);
    let recorded: BTreeMap<String, NodeOutputs> = recorded_nodes(st).into_iter().collect();
    let me = recorded.get(node)?;
    let text = std::fs::read_to_string(Path::new(&me.datadir).join("config.toml")).ok()?;
    let peers = recorded
        .iter()
        .filter(|(n, o)| peering.are_peers(node, n) && !o.enode.is_empty())
        .map(|(n, o)| (n.as_str(), o.enode.as_str()));
    let stale = stale_enodes(&text, peers);
    (!stale.is_empty()).then(|| {
        let list: Vec<String> = stale
            .iter()
            .map(|(peer, old, _)| {
                let at = |e: &str| e.rsplit('@').next().unwrap_or_default().to_string();
                let now = recorded.get(peer).map(|o| at(&o.enode)).unwrap_or_default();
                format!("{peer} at {} (it runs on {now})", at(old))
            })
            .collect();
        format!(
            "rewrite config (it names stale enodes: {}; a restart would dial nobody)",
            list.join(", ")
        )
    })
}

impl LocalProvider {
    /// `node` moved from `old` to `new` after its peers' configs were written: each peer's
    /// config.toml (in its node directory under the state dir) and recorded static list
    /// name the enode it runs on, and a running peer trusts the new one.
    pub(super) fn announce_move(&self, ctx: &ApplyCtx, node: &str, old: &str, new: &str) {
        let peering = ctx.peering();
        for (peer, o) in recorded_nodes(&ctx.snapshot()) {
            if peer == node || !peering.are_peers(node, &peer) {
                continue;
            }
            let path = node_dir(ctx.state_dir, &peer).join("config.toml");
            if let Ok(text) = std::fs::read_to_string(&path) {
                if text.contains(old) {
                    if let Err(e) = write_atomic(&path, text.replace(old, new).as_bytes(), 0o644) {
                        ctx.emit(Event::Warning {
                            message: format!(
                                "node.{peer}: cannot rewrite {} for {node}'s new port: {e}; the next `consort plan` shows it",
                                path.display()
                            ),
                        });
                    }
                }
            }
            if o.is_running() {
                let rpc = o.control().with_timeout(PROBE_TIMEOUT);
                let _ = rpc.admin_remove_trusted_peer(old);
                let _ = rpc.admin_add_trusted_peer(new);
            }
            let mut st = ctx.state.lock().unwrap();
            if let Some(r) = st.resources.get_mut(&format!("node.{peer}")) {
                if let Some(list) = r.outputs["static_nodes"].as_array_mut() {
                    for e in list.iter_mut() {
                        if e.as_str() == Some(old) {
                            *e = serde_json::Value::String(new.to_string());
                        }
                    }
                }
            }
        }
    }

    /// After an apply: every stale enode left in a node's config (a peer restarted on other
    /// ports in the same wave as the node that names it) is announced once more, so no
    /// config names a peer where it no longer runs (`stale_config` would plan it).
    pub(super) fn announce_stale_enodes(&self, ctx: &ApplyCtx) {
        let st = ctx.snapshot();
        let peering = ctx.peering();
        let recorded: BTreeMap<String, NodeOutputs> = recorded_nodes(&st).into_iter().collect();
        let mut moves: BTreeMap<String, (String, String)> = BTreeMap::new();
        for name in recorded.keys() {
            let path = node_dir(ctx.state_dir, name).join("config.toml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let peers = recorded
                .iter()
                .filter(|(n, o)| peering.are_peers(name, n) && !o.enode.is_empty())
                .map(|(n, o)| (n.as_str(), o.enode.as_str()));
            for (peer, old, new) in stale_enodes(&text, peers) {
                moves.insert(old, (peer, new));
            }
        }
        for (old, (peer, new)) in moves {
            self.announce_move(ctx, &peer, &old, &new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stale_enodes;

    #[test]
    fn a_peer_named_at_another_port_is_stale_and_the_right_one_is_not() {
        let id = "ab".repeat(64);
        let now = format!("enode://{id}@127.0.0.1:34362");
        let config = format!(
            "StaticNodes = [\n  \"enode://{id}@127.0.0.1:34357\",\n  \"enode://{}@127.0.0.1:1\",\n]\nTrustedNodes = [\n  \"{now}\",\n]\n",
            "cd".repeat(64)
        );
        let stale = stale_enodes(&config, [("delta-tx-0", now.as_str())]);
        assert_eq!(
            stale,
            vec![(
                "delta-tx-0".to_string(),
                format!("enode://{id}@127.0.0.1:34357"),
                now.clone()
            )]
        );
        let fixed = config.replace(":34357", ":34362");
        assert!(stale_enodes(&fixed, [("delta-tx-0", now.as_str())]).is_empty());
    }
}
