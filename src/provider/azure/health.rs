//! Health of an Azure network, and the wait for it after apply: the tx nodes as their
//! public RPC shows them (answering, peered, one genesis, head advancing), and the
//! validators, which have no public RPC, as their own VMs show them through Run Command
//! (geth running, peered, and the signer set the plan wants), the channel votes use.
//! A head that advances proves enough validators seal, not that every one does: a
//! validator whose geth never started is named only by asking its VM.

use super::run_command::{json_line, node_status_script, parse_clique};
use super::*;
use crate::parallel;

impl AzureProvider {
    pub(super) fn wait_until_healthy(&self, ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        let st = ctx.snapshot();
        let endpoints = tx_endpoints(&st);
        if endpoints.is_empty() {
            return Err(ProviderError::Other(
                "cannot check health: the network has no tx node with a public RPC (validators \
                 have none); add a tx node, or apply with --skip-health-check"
                    .into(),
            ));
        }
        if self.config.allowed_rpc_cidrs.is_empty() {
            return Err(ProviderError::Other(
                "cannot check health: the tx nodes' RPC is closed (provider.azure.allowed_rpc_cidrs \
                 is empty); add this machine's address, or apply with --skip-health-check"
                    .into(),
            ));
        }
        let deadline = Instant::now() + ctx.health_timeout;
        let mut first_heads: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let st = ctx.snapshot();
            let mut h = assess(ctx.topology, &st, &mut first_heads);
            let out_of_time = Instant::now() >= deadline;
            // Validators by Run Command (one at a time per VM on Azure, and slow): once
            // the tx nodes look healthy, and at the end to name the ones at fault.
            if h.healthy || out_of_time {
                h.nodes.extend(self.validator_health(ctx.topology, &st));
                h.healthy = h.nodes.iter().all(|n| n.problems.is_empty());
            }
            if h.healthy {
                if let Some(g) = ctx.state.lock().unwrap().genesis.as_mut() {
                    if g.hash.is_empty() {
                        if let Some((_, url)) = endpoints.first() {
                            if let Ok(hash) = RpcClient::new(url.clone())
                                .with_timeout(PROBE_TIMEOUT)
                                .genesis_hash()
                            {
                                g.hash = hash;
                            }
                        }
                    }
                }
                return Ok(h);
            }
            if ctx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(ProviderError::Other(
                    "interrupted while waiting for the network to become healthy; the VMs keep running — `consort status` shows them".into(),
                ));
            }
            if out_of_time {
                let detail: Vec<String> = h
                    .nodes
                    .iter()
                    .filter(|n| !n.problems.is_empty())
                    .map(|n| {
                        format!(
                            "{} ({}): {}",
                            n.name,
                            n.rpc_url
                                .clone()
                                .unwrap_or_else(|| format!("VM {}", vm_name(&n.name))),
                            n.problems.join("; ")
                        )
                    })
                    .collect();
                return Err(ProviderError::Other(format!(
                    "the network did not become healthy within {}s (VMs can take several minutes to boot and install geth):\n  {}\n{}\nRun `consort status` to look again.",
                    ctx.health_timeout.as_secs(),
                    detail.join("\n  "),
                    self.unhealthy_logs(&st, &h)
                )));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Each validator of the topology that has a VM, as its VM shows it through Run
    /// Command: geth running, peered, and the signer set being the plan's (every
    /// validator's signer key in state).
    pub(super) fn validator_health(&self, topology: &Topology, st: &State) -> Vec<NodeHealth> {
        let validators: Vec<NodeSpec> = topology
            .nodes()
            .into_iter()
            .filter(|n| n.role == Role::Validator && st.resources.contains_key(&vm_addr(&n.name)))
            .collect();
        let mut planned: Vec<crate::crypto::Address> = validators
            .iter()
            .filter_map(|n| {
                st.output_str(&format!("key.signer.{}", n.name), "address")
                    .and_then(crate::rpc::parse_address)
            })
            .collect();
        planned.sort();
        parallel::map(&validators, parallel::PROBE_CONCURRENCY, |n| {
            let mut h = NodeHealth {
                name: n.name.clone(),
                member: n.member.clone(),
                role: "validator".into(),
                ..Default::default()
            };
            let read = self
                .control(&n.name)
                .map_err(|e| e.to_string())
                .and_then(|vm| vm.run(&node_status_script()))
                .and_then(|out| json_line(&out));
            match read {
                Err(e) if e.contains("geth is not running") => h.problems.push(
                    "geth is not running on its VM (its bootstrap has not finished or failed: see its log below)".into(),
                ),
                Err(e) => h.problems.push(format!("its VM did not answer Run Command ({e})")),
                Ok(v) => {
                    h.running = true;
                    h.block = v["block"].as_u64().unwrap_or(0);
                    h.peers = v["peers"].as_u64().unwrap_or(0) as u32;
                    if h.peers == 0 {
                        h.problems.push("not peered".into());
                    }
                    match parse_clique(&json!({"signers": v["signers"]})) {
                        Ok((mut signers, _)) => {
                            signers.sort();
                            if signers != planned {
                                let list = |a: &[crate::crypto::Address]| {
                                    a.iter().map(|x| x.to_checksum()).collect::<Vec<_>>().join(", ")
                                };
                                h.problems.push(format!(
                                    "its chain's signers are [{}], the plan's [{}]",
                                    list(&signers),
                                    list(&planned)
                                ));
                            }
                        }
                        Err(e) => h.problems.push(format!("cannot read its signers ({e})")),
                    }
                }
            }
            h
        })
    }
}

/// Tx nodes with a public RPC, from state: (node, rpc_url).
pub(super) fn tx_endpoints(st: &State) -> Vec<(String, String)> {
    st.resources
        .iter()
        .filter(|(a, r)| r.kind == Kind::AzureVm && a.starts_with("azure.vm."))
        .filter_map(|(a, r)| {
            let url = r.outputs.get("rpc_url")?.as_str()?;
            (!url.is_empty()).then(|| (a["azure.vm.".len()..].to_string(), url.to_string()))
        })
        .collect()
}

/// One look at a tx node: (head, peers, genesis hash).
pub(super) type Probe = (u64, u64, String);

/// Health as the tx nodes' public RPC shows it: every tx node answers, has peers, all
/// report the same genesis, and the head advanced since the first look (which proves
/// enough validators are sealing). Validators have no public RPC and are not listed.
pub(super) fn assess(
    topology: &Topology,
    st: &State,
    first_heads: &mut BTreeMap<String, u64>,
) -> Health {
    let specs: BTreeMap<String, NodeSpec> = topology
        .nodes()
        .into_iter()
        .map(|n| (n.name.clone(), n))
        .collect();
    let endpoints = tx_endpoints(st);
    let probes: Vec<(String, String, Result<Probe, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = endpoints
            .iter()
            .map(|(n, url)| {
                s.spawn(move || {
                    let rpc = RpcClient::new(url.clone()).with_timeout(PROBE_TIMEOUT);
                    let r = (|| {
                        Ok::<_, crate::rpc::RpcError>((
                            rpc.block_number()?,
                            rpc.net_peer_count()?,
                            rpc.genesis_hash()?,
                        ))
                    })()
                    .map_err(|e| e.to_string());
                    (n.clone(), url.clone(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    });
    let genesis: BTreeSet<&String> = probes
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok().map(|x| &x.2))
        .collect();
    let mut h = Health::default();
    for (name, url, r) in &probes {
        let spec = specs.get(name);
        let mut n = NodeHealth {
            name: name.clone(),
            member: spec.map(|s| s.member.clone()).unwrap_or_default(),
            role: "tx".into(),
            rpc_url: Some(url.clone()),
            ..Default::default()
        };
        match r {
            Err(e) => n.problems.push(format!("RPC not answering ({e})")),
            Ok((block, peers, _)) => {
                n.running = true;
                n.block = *block;
                n.peers = *peers as u32;
                h.head = h.head.max(*block);
                let first = *first_heads.entry(name.clone()).or_insert(*block);
                if *peers == 0 {
                    n.problems.push("not peered".into());
                }
                if *block <= first {
                    n.problems.push(format!("head #{block} not advancing yet"));
                }
                if genesis.len() > 1 {
                    n.problems.push("genesis differs between nodes".into());
                }
            }
        }
        h.nodes.push(n);
    }
    h.healthy = !h.nodes.is_empty() && h.nodes.iter().all(|n| n.problems.is_empty());
    h
}
