//! Sealing on the validators whose geth an apply started again (`consort start`, or any
//! apply's restart Update, `lifecycle`), in the order `consensus::sealing` gives: geth
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
use crate::consensus::sealing::{in_turn, start_order_with_recents};
use crate::crypto::Address;
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

/// What [`seal_read_script`] prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRead {
    pub block: u64,
    pub mining: bool,
    pub unlocked: bool,
    pub peers: BTreeSet<String>,
    pub signers: Vec<Address>,
    pub recents: BTreeMap<u64, Address>,
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

/// What to do next with the validators to start sealing on.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Every one seals.
    Done,
    /// Some are not ready: node → why.
    Wait(BTreeMap<String, String>),
    /// Start sealing on `first` (together), then, once they all seal, on `last`: the
    /// signer in turn for block `next` (`in_turn`), or the ones that may seal it when that
    /// one signed recently.
    Start {
        first: Vec<String>,
        last: Vec<String>,
        next: u64,
        in_turn: Option<String>,
    },
}

/// The validators the sealing order is decided over.
pub struct Validators {
    /// Every validator with a VM → its signer address.
    pub addresses: BTreeMap<String, Address>,
    /// Validator → its planned validator peers (node, enode id).
    pub peers: BTreeMap<String, Vec<(String, String)>>,
}

/// The next step for `to_seal` given every validator's read (None: its geth did not
/// answer): wait until each is up, unlocked and peered with every planned validator peer
/// whose geth answers; then the order is `consensus::sealing::start_order`'s over those
/// not sealing yet, at the head and signer set of the furthest validator. With `force`
/// (out of time) the ready ones start, whatever the others do.
pub fn next_step(
    to_seal: &BTreeSet<String>,
    reads: &BTreeMap<String, Option<SealRead>>,
    v: &Validators,
    force: bool,
) -> Next {
    let read = |n: &str| reads.get(n).and_then(Option::as_ref);
    let pending: Vec<&String> = to_seal
        .iter()
        .filter(|n| !read(n).is_some_and(|r| r.mining))
        .collect();
    if pending.is_empty() {
        return Next::Done;
    }
    let mut waiting = BTreeMap::new();
    let mut ready = Vec::new();
    for n in pending {
        let why = match read(n) {
            None => Some("geth not answering on its VM yet".to_string()),
            Some(r) if !r.unlocked => Some("its signer account is not unlocked yet".into()),
            Some(r) => {
                let missing: Vec<&str> = v
                    .peers
                    .get(n)
                    .into_iter()
                    .flatten()
                    .filter(|(p, id)| read(p).is_some() && !r.peers.contains(&id.to_lowercase()))
                    .map(|(p, _)| p.as_str())
                    .collect();
                (!missing.is_empty()).then(|| format!("not peered yet with {}", missing.join(", ")))
            }
        };
        match (why, v.addresses.get(n)) {
            (Some(why), _) => {
                waiting.insert(n.clone(), why);
            }
            (None, Some(a)) => ready.push((n.clone(), *a)),
            (None, None) => {
                waiting.insert(n.clone(), "no signer address in state".into());
            }
        }
    }
    if !waiting.is_empty() && !force {
        return Next::Wait(waiting);
    }
    let furthest = reads.values().flatten().max_by_key(|r| r.block);
    let head = furthest.map_or(0, |r| r.block);
    let signers: Vec<Address> = match furthest {
        Some(r) if !r.signers.is_empty() => r.signers.clone(),
        _ => v.addresses.values().copied().collect(),
    };
    let recents = furthest.map(|r| r.recents.clone()).unwrap_or_default();
    let (first, last) = start_order_with_recents(ready, &signers, head, &recents);
    let in_turn = in_turn(&signers, head + 1)
        .and_then(|s| v.addresses.iter().find(|(_, a)| **a == s))
        .map(|(n, _)| n.clone());
    Next::Start {
        first,
        last,
        next: head + 1,
        in_turn,
    }
}

impl AzureProvider {
    /// The validators to decide over: those of the topology with a VM in state.
    fn validators(&self, ctx: &ApplyCtx, st: &State) -> Validators {
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
        Validators { addresses, peers }
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

    fn read(block: u64, mining: bool, peers: &[&str]) -> Option<SealRead> {
        Some(SealRead {
            block,
            mining,
            unlocked: true,
            peers: peers.iter().map(|p| p.to_string()).collect(),
            signers: vec![a(0x20), a(0x10)],
            recents: BTreeMap::new(),
        })
    }

    /// Validators v0 (0x20..) and v1 (0x10..), peers of each other; tx0 is no validator.
    fn two() -> Validators {
        Validators {
            addresses: [("v0".to_string(), a(0x20)), ("v1".to_string(), a(0x10))].into(),
            peers: [
                ("v0".to_string(), vec![("v1".to_string(), "bb".to_string())]),
                ("v1".to_string(), vec![("v0".to_string(), "aa".to_string())]),
            ]
            .into(),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn sealing_waits_until_every_restarted_validator_is_up_and_peered() {
        let v = two();
        let both = set(&["v0", "v1"]);
        // v1's geth not answering yet: v0 waits for it (it would seal alone).
        let reads = [("v0".into(), read(7, false, &[])), ("v1".into(), None)].into();
        let Next::Wait(why) = next_step(&both, &reads, &v, false) else {
            panic!("should wait")
        };
        assert_eq!(why["v1"], "geth not answering on its VM yet");
        assert!(!why.contains_key("v0"), "{why:?}");
        // Both up, v0 not peered with v1 yet.
        let reads = [
            ("v0".into(), read(7, false, &[])),
            ("v1".into(), read(7, false, &["aa"])),
        ]
        .into();
        let Next::Wait(why) = next_step(&both, &reads, &v, false) else {
            panic!("should wait")
        };
        assert_eq!(why["v0"], "not peered yet with v1");
        // A locked signer waits too.
        let mut locked = read(7, false, &["bb"]);
        locked.as_mut().unwrap().unlocked = false;
        let reads = [
            ("v0".into(), locked),
            ("v1".into(), read(7, false, &["aa"])),
        ]
        .into();
        assert!(matches!(next_step(&both, &reads, &v, false), Next::Wait(_)));
    }

    #[test]
    fn the_next_blocks_in_turn_signer_starts_last_then_done() {
        let v = two();
        let both = set(&["v0", "v1"]);
        // Sorted signers: 0x10 (v1), 0x20 (v0). Block 8 is in turn for index 0: v1.
        let reads = [
            ("v0".into(), read(7, false, &["bb"])),
            ("v1".into(), read(7, false, &["aa"])),
        ]
        .into();
        assert_eq!(
            next_step(&both, &reads, &v, false),
            Next::Start {
                first: vec!["v0".into()],
                last: vec!["v1".into()],
                next: 8,
                in_turn: Some("v1".into())
            }
        );
        // At head 8, block 9 is v0's: the furthest head counts.
        let reads = [
            ("v0".into(), read(7, false, &["bb"])),
            ("v1".into(), read(8, false, &["aa"])),
        ]
        .into();
        assert_eq!(
            next_step(&both, &reads, &v, false),
            Next::Start {
                first: vec!["v1".into()],
                last: vec!["v0".into()],
                next: 9,
                in_turn: Some("v0".into())
            }
        );
        // v0 seals already (its group started): v1 is the only one left, alone.
        let reads = [
            ("v0".into(), read(7, true, &["bb"])),
            ("v1".into(), read(7, false, &["aa"])),
        ]
        .into();
        assert_eq!(
            next_step(&both, &reads, &v, false),
            Next::Start {
                first: vec!["v1".into()],
                last: vec![],
                next: 8,
                in_turn: Some("v1".into())
            }
        );
        let reads = [
            ("v0".into(), read(8, true, &["bb"])),
            ("v1".into(), read(8, true, &["aa"])),
        ]
        .into();
        assert_eq!(next_step(&both, &reads, &v, false), Next::Done);
    }

    #[test]
    fn an_in_turn_signer_that_signed_the_head_starts_first() {
        // Out of phase (blocks sealed out of turn, e.g. after a fork): v1 (0x10), in turn
        // for block 8, sealed block 7 and may not seal 8; v0 seals it, so v0 goes last.
        let v = two();
        let mut r0 = read(7, false, &["bb"]);
        let mut r1 = read(7, false, &["aa"]);
        for r in [&mut r0, &mut r1] {
            r.as_mut().unwrap().recents = [(6, a(0x20)), (7, a(0x10))].into();
        }
        let reads = [("v0".into(), r0), ("v1".into(), r1)].into();
        assert_eq!(
            next_step(&set(&["v0", "v1"]), &reads, &v, false),
            Next::Start {
                first: vec!["v1".into()],
                last: vec!["v0".into()],
                next: 8,
                in_turn: Some("v1".into())
            }
        );
    }

    #[test]
    fn only_restarted_validators_start_and_a_down_peer_is_not_waited_for() {
        let v = two();
        // Only v0 restarted; v1's geth is down: v0 is not held for it, and starts alone.
        let reads = [("v0".into(), read(7, false, &[])), ("v1".into(), None)].into();
        assert_eq!(
            next_step(&set(&["v0"]), &reads, &v, false),
            Next::Start {
                first: vec!["v0".into()],
                last: vec![],
                next: 8,
                in_turn: Some("v1".into())
            }
        );
        // Out of time: the ready ones start, the others are left to their seal.sh.
        let reads = [("v0".into(), read(7, false, &["bb"])), ("v1".into(), None)].into();
        assert_eq!(
            next_step(&set(&["v0", "v1"]), &reads, &v, true),
            Next::Start {
                first: vec!["v0".into()],
                last: vec![],
                next: 8,
                in_turn: Some("v1".into())
            }
        );
    }

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
