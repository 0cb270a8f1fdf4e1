//! Sealing on the validators whose geth an apply started again (`consort start`, or any
//! apply's restart Update, `lifecycle`), as `consensus::start` decides (the Run Command
//! scripts that read each validator and start its miner are here): geth
//! alone was started on each VM; once every one of them is up, unlocked and peered with its
//! running validators (read on the VM by Run Command, polled with the apply's timeout),
//! sealing (`miner.start`) starts on the others first and on the next block's in-turn
//! signer last, each group only once the one before it seals (`eth.mining`). Then each
//! VM's seal.sh starts to keep watch: it finds `eth.mining` true and only restarts sealing
//! after a geth restart. Started together with geth (as before), the first validator
//! ready sealed the next block while the others did not count themselves synced yet; they
//! dropped it and, with two signers, neither might seal next (see `consensus::sealing`).
//!
//! One Run Command at a time per VM (Azure's rule): each VM gets one script per round.

use super::lifecycle::start_sealer_script;
use super::run_command::{json_line, prelude, JSON_MARKER};
use super::*;
use crate::consensus::start::{next_step, Next, SealRead, SealingSet};
use crate::parallel;

/// A validator's own view for starting sealing: head, whether it seals, whether its signer
/// is unlocked, the enode ids (public keys) of its peers, the signer set and who signed
/// the last blocks (its head's Clique snapshot `recents`).
pub fn seal_read_script() -> String {
    arm::run_command::wrap(&format!(
        r#"{}
js '(function () {{
  var unlocked = true;
  try {{ eth.sign(eth.coinbase, "0x00"); }} catch (e) {{ unlocked = false; }}
  var peers = admin.peers.map(function (p) {{ return p.enode.split("@")[0].replace("enode://", ""); }});
  console.log("{JSON_MARKER}" + JSON.stringify({{block: eth.blockNumber, mining: eth.mining, unlocked: unlocked, peers: peers, signers: clique.getSigners(), recents: clique.getSnapshot().recents}}));
}})()'"#,
        prelude()
    ))
}

/// `miner.start()`, then up to 10 s for `eth.mining` (geth's miner starts on its own
/// loop); prints `{mining}`.
pub fn miner_start_script() -> String {
    arm::run_command::wrap(&format!(
        r#"{}
js 'miner.start()' >/dev/null
i=0
while [ "$(js eth.mining 2>/dev/null)" != true ] && [ "$i" -lt 50 ]; do
  i=$((i + 1))
  sleep 0.2
done
echo "{JSON_MARKER}{{\"mining\": $(js eth.mining)}}""#,
        prelude()
    ))
}

fn parse_read(v: &Value) -> Option<SealRead> {
    Some(SealRead {
        block: v["block"].as_u64()?,
        mining: v["mining"].as_bool()?,
        unlocked: v["unlocked"].as_bool()?,
        peers: v["peers"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_lowercase))
            .collect(),
        signers: v["signers"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str().and_then(crate::rpc::parse_address))
            .collect(),
        recents: v["recents"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(n, a)| {
                        Some((
                            n.parse().ok()?,
                            a.as_str().and_then(crate::rpc::parse_address)?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

impl AzureProvider {
    /// The validators to decide over: those of the topology with a VM in state.
    fn validators(&self, ctx: &ApplyCtx, st: &State) -> SealingSet {
        let names: Vec<String> = ctx
            .topology
            .nodes()
            .into_iter()
            .filter(|n| n.role == Role::Validator && st.resources.contains_key(&vm_addr(&n.name)))
            .map(|n| n.name)
            .collect();
        let addresses = names
            .iter()
            .filter_map(|n| {
                let a = st.output_str(&format!("key.signer.{n}"), "address")?;
                Some((n.clone(), crate::rpc::parse_address(a)?))
            })
            .collect();
        let peering = ctx.peering();
        let peers = names
            .iter()
            .map(|n| {
                let ps = names
                    .iter()
                    .filter(|p| *p != n && peering.are_peers(n, p))
                    .filter_map(|p| {
                        let id = st.output_str(&format!("key.node.{p}"), "enode_id")?;
                        Some((p.clone(), id.to_string()))
                    })
                    .collect();
                (n.clone(), ps)
            })
            .collect();
        SealingSet { addresses, peers }
    }

    /// Starts sealing on the validators this apply started again (see the module doc),
    /// then their seal.sh. Out of time, the ready ones start and the others' seal.sh
    /// starts sealing once they are ready (a warning names them).
    pub(super) fn seal_in_order(&self, ctx: &ApplyCtx) -> Result<(), ProviderError> {
        use std::sync::atomic::Ordering::SeqCst;
        let to_seal = std::mem::take(&mut *self.to_seal.lock().unwrap());
        if to_seal.is_empty() {
            return Ok(());
        }
        let st = ctx.snapshot();
        let v = self.validators(ctx, &st);
        let names: Vec<String> = v.addresses.keys().cloned().collect();
        let deadline = Instant::now() + ctx.health_timeout;
        let mut told: BTreeMap<String, String> = BTreeMap::new();
        loop {
            if ctx.interrupted.load(SeqCst) {
                // The next refresh finds their seal.sh down and starts sealing again.
                return Ok(());
            }
            let force = Instant::now() >= deadline;
            let reads: BTreeMap<String, Option<SealRead>> = names
                .iter()
                .cloned()
                .zip(parallel::map(&names, parallel::PROBE_CONCURRENCY, |n| {
                    let out = self.control(n).ok()?.run(&seal_read_script()).ok()?;
                    parse_read(&json_line(&out).ok()?)
                }))
                .collect();
            match next_step(&to_seal, &reads, &v, force) {
                Next::Done => break,
                Next::Wait(why) => {
                    for (n, w) in why {
                        if told.get(&n) != Some(&w) {
                            ctx.emit(Event::Step {
                                subject: n.clone(),
                                step: format!("sealing waits: {w}"),
                            });
                            told.insert(n, w);
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Next::Start {
                    first,
                    last,
                    next,
                    in_turn,
                } => {
                    let mut sealing = self.start_mining(ctx, &first, "sealing");
                    if sealing.len() == first.len() && !last.is_empty() {
                        let step = if last.len() == 1 && in_turn.as_ref() == last.first() {
                            format!("sealing (last: in turn for block {next})")
                        } else {
                            format!("sealing (last: may seal block {next}, which its in-turn signer may not: it signed recently)")
                        };
                        sealing.extend(self.start_mining(ctx, &last, &step));
                    }
                    if force {
                        let behind: Vec<&String> = to_seal
                            .iter()
                            .filter(|n| {
                                !sealing.contains(*n)
                                    && !reads
                                        .get(*n)
                                        .and_then(Option::as_ref)
                                        .is_some_and(|r| r.mining)
                            })
                            .collect();
                        if !behind.is_empty() {
                            ctx.emit(Event::Warning {
                                message: format!(
                                    "sealing did not start in order within {}s on {}; each one's seal.sh starts it once it is ready",
                                    ctx.health_timeout.as_secs(),
                                    behind.iter().map(|n| format!("node.{n}")).collect::<Vec<_>>().join(", ")
                                ),
                            });
                        }
                        break;
                    }
                }
            }
        }
        // seal.sh keeps watch on each (and finds it sealing).
        let nodes: Vec<String> = to_seal.into_iter().collect();
        let results = parallel::map(&nodes, parallel::PROBE_CONCURRENCY, |n| {
            self.control(n)
                .map_err(|e| e.to_string())
                .and_then(|vm| vm.run(&start_sealer_script()))
                .and_then(|out| json_line(&out))
        });
        let failed: Vec<String> = nodes
            .iter()
            .zip(results)
            .filter_map(|(n, r)| {
                r.err()
                    .map(|e| format!("node.{n} (VM {}): {e}", vm_name(n)))
            })
            .collect();
        if !failed.is_empty() {
            return Err(ProviderError::Other(format!(
                "could not start the sealer (seal.sh) on every validator (the next `consort start` or apply tries again):\n  {}",
                failed.join("\n  ")
            )));
        }
        Ok(())
    }

    /// `miner.start` on `nodes` together; those of them that seal now.
    fn start_mining(&self, ctx: &ApplyCtx, nodes: &[String], step: &str) -> Vec<String> {
        let mining = parallel::map(nodes, parallel::PROBE_CONCURRENCY, |n| {
            self.control(n)
                .ok()
                .and_then(|vm| vm.run(&miner_start_script()).ok())
                .and_then(|out| json_line(&out).ok())
                .is_some_and(|v| v["mining"] == json!(true))
        });
        let sealing: Vec<String> = nodes
            .iter()
            .zip(mining)
            .filter(|(_, m)| *m)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &sealing {
            ctx.emit(Event::Step {
                subject: n.clone(),
                step: step.into(),
            });
        }
        sealing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::sealing::tests::a;

    #[test]
    fn scripts_hold_no_secret_and_use_the_ipc_socket() {
        for s in [seal_read_script(), miner_start_script()] {
            assert!(s.contains(vm_paths::IPC), "{s}");
            assert!(!s.contains("password"), "{s}");
        }
        assert!(miner_start_script().contains("miner.start()"));
        let v = json!({"block": 3, "mining": false, "unlocked": true, "peers": ["AB"], "signers": ["0x1000000000000000000000000000000000000000"], "recents": {"3": "0x1000000000000000000000000000000000000000"}});
        let r = parse_read(&v).unwrap();
        assert_eq!((r.block, r.peers.len(), r.signers), (3, 1, vec![a(0x10)]));
        assert_eq!(r.recents, [(3, a(0x10))].into());
        assert!(r.peers.contains("ab"));
    }
}
