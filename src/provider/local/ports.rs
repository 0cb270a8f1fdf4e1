//! Port assignment for local nodes: conventional and stable.
//!
//! Node `i` of the topology (in topology order) gets p2p port `p2p_base + i`; tx node `j`
//! gets HTTP JSON-RPC `rpc_base + 2j` and WebSocket beside it. Without
//! `provider.local.base_port` the bases are geth's conventional 30303 and 8545; with
//! `base_port: B` p2p starts at B and RPC right after the p2p block (B + node count). So
//! the same topology gets the same ports after destroy + apply, as long as they are free.
//! A port that is taken (by another program, or recorded for another network under the
//! same `.consort/`) moves only that node, to the first free port past the block; the plan
//! shows each new node's ports and the busy ones it skipped, and apply says in one line
//! which nodes got other ports than planned. Recorded ports always win: a running node
//! keeps its ports.
//!
//! Every node also serves geth's Prometheus metrics on its own address: node `i` on
//! `metrics_base + i`, where `metrics_base` is geth's conventional 6060, or with
//! `base_port: B` the port right after the RPC block (B + node count + 2 × tx count).

use super::*;
use crate::plan::ports::PlannedPorts;
use process::{p2p_free, tcp_free_on, DEFAULT_METRICS_PORT, DEFAULT_RPC_PORT};
use std::net::IpAddr;

/// Ports handed out during one command: every node of the topology gets its ports from
/// one table, so each config.toml can list the final p2p port of every peer even while
/// the peers are still being created.
pub(super) struct PortTable {
    /// Recorded for any node of this or a sibling network, or handed out this command.
    taken: BTreeSet<u16>,
    pub(super) assigned: BTreeMap<String, NodePorts>,
}

impl PortTable {
    /// Takes `port` if nobody has it and `free` says it can be bound.
    fn claim(&mut self, port: u16, free: impl Fn(u16) -> bool) -> bool {
        if port < 1024 || self.taken.contains(&port) || !free(port) {
            return false;
        }
        self.taken.insert(port);
        true
    }

    /// The first port from `from` upwards with `width` consecutive ports claimable.
    fn first_free(
        &mut self,
        node: &str,
        from: u16,
        width: u16,
        free: impl Fn(u16) -> bool + Copy,
    ) -> Result<u16, ProviderError> {
        let mut p = from;
        loop {
            if u32::from(p) + u32::from(width) > 65535 {
                return Err(ProviderError::at(
                    &format!("node.{node}"),
                    format!("no free port from {from} upwards; set `provider.local.base_port` to a free range"),
                ));
            }
            if self.claim_run(p, width, free) {
                return Ok(p);
            }
            p += 1;
        }
    }

    /// The conventional port `want` of kind `what` if it is claimable, else the first
    /// free one from `from` upwards, noting the busy one in `busy` ("p2p 30303").
    fn wanted_or_next(
        &mut self,
        node: &str,
        (what, want): (&str, u16),
        from: u16,
        free: impl Fn(u16) -> bool + Copy,
        busy: &mut Vec<String>,
    ) -> Result<u16, ProviderError> {
        if self.claim(want, free) {
            return Ok(want);
        }
        busy.push(format!("{what} {want}"));
        self.first_free(node, from, 1, free)
    }

    fn claim_run(&mut self, first: u16, width: u16, free: impl Fn(u16) -> bool + Copy) -> bool {
        let ports: Vec<u16> = (first..first.saturating_add(width)).collect();
        if ports.len() != usize::from(width)
            || ports
                .iter()
                .any(|p| *p < 1024 || self.taken.contains(p) || !free(*p))
        {
            return false;
        }
        self.taken.extend(ports);
        true
    }
}

impl PortTable {
    /// The ports recorded in `st` and by the sibling networks of `sd`.
    fn recorded(st: &State, sd: &StateDir) -> PortTable {
        let mut taken: BTreeSet<u16> = sibling_ports(sd);
        let mut assigned = BTreeMap::new();
        for (name, out) in recorded_nodes(st) {
            taken.extend(out.ports.all());
            assigned.insert(name, out.ports);
        }
        PortTable { taken, assigned }
    }

    /// Gives every node of `nodes` (the topology's, in its order) that has no ports yet its
    /// own (see the module docs); returns, by node, the conventional ports it did not get
    /// because they were busy ("p2p 30303", "http/ws 8545/8546").
    fn allocate(
        &mut self,
        config: &LocalConfig,
        nodes: &[NodeSpec],
        (tcp_free, p2p_free): (impl Fn(u16) -> bool + Copy, impl Fn(u16) -> bool + Copy),
    ) -> Result<BTreeMap<String, Vec<String>>, ProviderError> {
        let (p2p_base, rpc_base) = bases(config, nodes.len());
        let tx_count = nodes.iter().filter(|n| n.role == Role::Tx).count() as u16;
        let metrics_base = metrics_base(config, nodes.len(), tx_count.into());
        let mut all_busy = BTreeMap::new();
        let mut tx_index = 0u16;
        for (i, n) in nodes.iter().enumerate() {
            let j = tx_index;
            if n.role == Role::Tx {
                tx_index += 1;
            }
            if self.assigned.contains_key(&n.name) {
                continue;
            }
            let mut busy = Vec::new();
            let p2p = self.wanted_or_next(
                &n.name,
                ("p2p", p2p_base.saturating_add(i as u16)),
                p2p_base.saturating_add(nodes.len() as u16),
                p2p_free,
                &mut busy,
            )?;
            let (http, ws) = if n.role == Role::Tx {
                let want = rpc_base.saturating_add(2 * j);
                let h = if self.claim_run(want, 2, tcp_free) {
                    want
                } else {
                    busy.push(format!("http/ws {want}/{}", want + 1));
                    let from = rpc_base.saturating_add(2 * tx_count);
                    self.first_free(&n.name, from, 2, tcp_free)?
                };
                (Some(h), Some(h + 1))
            } else {
                (None, None)
            };
            let metrics = self.wanted_or_next(
                &n.name,
                ("metrics", metrics_base.saturating_add(i as u16)),
                metrics_base.saturating_add(nodes.len() as u16),
                tcp_free,
                &mut busy,
            )?;
            self.assigned.insert(
                n.name.clone(),
                NodePorts {
                    p2p,
                    http,
                    ws,
                    metrics: Some(metrics),
                },
            );
            if !busy.is_empty() {
                all_busy.insert(n.name.clone(), busy);
            }
        }
        Ok(all_busy)
    }
}

/// Where the two port blocks start for `topology`.
pub(super) fn bases(config: &LocalConfig, nodes: usize) -> (u16, u16) {
    match config.base_port {
        None => (process::DEFAULT_BASE_PORT, DEFAULT_RPC_PORT),
        Some(b) => (b, b.saturating_add(nodes as u16)),
    }
}

/// Where the metrics block starts: see the module docs.
pub(super) fn metrics_base(config: &LocalConfig, nodes: usize, tx_nodes: usize) -> u16 {
    match config.base_port {
        None => DEFAULT_METRICS_PORT,
        Some(b) => b.saturating_add((nodes + 2 * tx_nodes) as u16),
    }
}

impl LocalProvider {
    /// The address the nodes bind (`provider.local.address`): ports are checked there.
    pub(super) fn ip(&self) -> IpAddr {
        self.config
            .address()
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// Port checks on the nodes' address: (TCP, TCP + UDP for p2p).
    fn free_checks(&self) -> (impl Fn(u16) -> bool + Copy, impl Fn(u16) -> bool + Copy) {
        let ip = self.ip();
        (move |p| tcp_free_on(ip, p), move |p| p2p_free(ip, p))
    }

    pub(super) fn with_ports<T>(
        &self,
        ctx: &ApplyCtx,
        f: impl FnOnce(&mut PortTable) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut guard = self.ports.lock().unwrap();
        if guard.is_none() {
            *guard = Some(PortTable::recorded(&ctx.snapshot(), ctx.state_dir));
        }
        f(guard.as_mut().unwrap())
    }

    /// Ports of `node`: recorded, or already handed out this command, or new — allocating
    /// for every node of the topology that has none yet (see the module docs). The plan
    /// showed where new nodes would go; apply reports, in one line, those that went
    /// elsewhere (`provider::moved_ports`), so no warning per busy port here.
    pub(super) fn ports_of(&self, ctx: &ApplyCtx, node: &str) -> Result<NodePorts, ProviderError> {
        let checks = self.free_checks();
        self.with_ports(ctx, |t| {
            t.allocate(&self.config, &ctx.topology.nodes(), checks)?;
            t.assigned
                .get(node)
                .copied()
                .ok_or_else(|| ProviderError::at(&format!("node.{node}"), "is not in the topology"))
        })
    }

    /// What `ports_of` would hand out now to each node state does not record, with the
    /// conventional ports it would not get because they are busy (nothing is claimed).
    pub(super) fn planned_ports(
        &self,
        topology: &Topology,
        state: Option<&State>,
        sd: &StateDir,
    ) -> Result<BTreeMap<String, PlannedPorts>, ProviderError> {
        let empty = State::new(&topology.network.name, "local");
        let mut t = PortTable::recorded(state.unwrap_or(&empty), sd);
        let recorded: BTreeSet<String> = t.assigned.keys().cloned().collect();
        let mut busy = t.allocate(&self.config, &topology.nodes(), self.free_checks())?;
        Ok(t.assigned
            .into_iter()
            .filter(|(name, _)| !recorded.contains(name))
            .map(|(name, ports)| {
                let busy = busy.remove(&name).unwrap_or_default();
                (name, PlannedPorts { ports, busy })
            })
            .collect())
    }

    /// Recorded `ports` made to fit the node's role: a validator has no RPC ports; a tx
    /// node recorded before it served WebSocket gets the port beside its HTTP one (or a
    /// new pair when that is taken); a node recorded before metrics gets a metrics port.
    pub(super) fn complete_ports(
        &self,
        ctx: &ApplyCtx,
        spec: &NodeSpec,
        ports: NodePorts,
    ) -> NodePorts {
        let (tcp_free, _) = self.free_checks();
        let ports = match ports.metrics {
            Some(_) => ports,
            None => NodePorts {
                metrics: self.free_metrics_port(ctx, &spec.name).ok(),
                ..ports
            },
        };
        match (spec.role, ports.http, ports.ws) {
            (Role::Validator, _, _) => NodePorts {
                http: None,
                ws: None,
                ..ports
            },
            // Recovered without its RPC ports (it was not running): new ones.
            (Role::Tx, None, _) => self.fresh_ports(ctx, &spec.name).unwrap_or(ports),
            (Role::Tx, Some(h), None) => {
                let ws = self
                    .with_ports(ctx, |t| Ok(t.claim(h + 1, tcp_free)))
                    .unwrap_or(false);
                if ws {
                    NodePorts {
                        ws: Some(h + 1),
                        ..ports
                    }
                } else {
                    self.fresh_ports(ctx, &spec.name).unwrap_or(ports)
                }
            }
            _ => ports,
        }
    }

    /// A metrics port for `node` from the metrics block, past the conventional ones.
    fn free_metrics_port(&self, ctx: &ApplyCtx, node: &str) -> Result<u16, ProviderError> {
        let nodes = ctx.topology.nodes();
        let tx_count = nodes.iter().filter(|n| n.role == Role::Tx).count();
        let base = metrics_base(&self.config, nodes.len(), tx_count);
        let from = base.saturating_add(nodes.len() as u16);
        let (tcp_free, _) = self.free_checks();
        self.with_ports(ctx, |t| t.first_free(node, from, 1, tcp_free))
    }

    /// New ports for `node` (its old ones were taken by something else).
    pub(super) fn fresh_ports(
        &self,
        ctx: &ApplyCtx,
        node: &str,
    ) -> Result<NodePorts, ProviderError> {
        let nodes = ctx.topology.nodes();
        let (p2p_base, rpc_base) = bases(&self.config, nodes.len());
        let tx_count = nodes.iter().filter(|n| n.role == Role::Tx).count() as u16;
        let (tcp_free, p2p_free) = self.free_checks();
        self.with_ports(ctx, |t| {
            let tx = nodes.iter().any(|n| n.name == node && n.role == Role::Tx);
            let p2p = t.first_free(
                node,
                p2p_base.saturating_add(nodes.len() as u16),
                1,
                p2p_free,
            )?;
            let (http, ws) = match tx {
                true => {
                    let h =
                        t.first_free(node, rpc_base.saturating_add(2 * tx_count), 2, tcp_free)?;
                    (Some(h), Some(h + 1))
                }
                false => (None, None),
            };
            let metrics_from = metrics_base(&self.config, nodes.len(), tx_count.into())
                .saturating_add(nodes.len() as u16);
            let metrics = Some(t.first_free(node, metrics_from, 1, tcp_free)?);
            let p = NodePorts {
                p2p,
                http,
                ws,
                metrics,
            };
            t.assigned.insert(node.to_string(), p);
            Ok(p)
        })
    }
}

/// Ports recorded by the other networks under the same `.consort/` directory, so two
/// networks never share a port even while one of them is stopped.
pub(super) fn sibling_ports(sd: &StateDir) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let Some(base) = sd.root.parent() else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == sd.network || !e.path().is_dir() {
            continue;
        }
        if let Ok(Some(st)) = StateDir::new(base, &name).load() {
            for (_, o) in recorded_nodes(&st) {
                out.extend(o.ports.all());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::provider::for_topology;
    use crate::state::StateDir;
    use std::net::TcpListener;
    use std::path::Path;

    /// Issue 22 item 8: the plan's ports for new nodes skip a busy conventional one (and
    /// say so), and planning claims nothing: asked twice, the same answer.
    #[test]
    fn planned_ports_skip_a_busy_port_say_so_and_claim_nothing() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = holder.local_addr().unwrap().port();
        let text = include_str!("../../../topologies/dev-single.yaml")
            .replace("base_port: 30303", &format!("base_port: {b}"));
        let t = crate::topology::parse(Path::new("t.yaml"), text.as_bytes())
            .unwrap()
            .topology;
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "devnet");
        let p = for_topology(&t).unwrap();
        let first = p.planned_ports(&t, None, &sd);
        assert_eq!(
            first,
            p.planned_ports(&t, None, &sd),
            "planning claimed ports"
        );
        let v = &first["contoso-validator-0"];
        assert_eq!(v.busy, vec![format!("p2p {b}")], "{first:?}");
        assert!(v.ports.p2p > b + 1, "moved past the p2p block: {first:?}");
        assert_eq!((v.ports.http, v.ports.ws), (None, None));
        let tx = &first["contoso-tx-0"];
        assert_eq!(tx.ports.p2p, b + 1, "{first:?}");
        assert_eq!(tx.ports.ws, tx.ports.http.map(|h| h + 1));
        drop(holder);
    }
}
