//! The consortium as this operator's nodes see it over IPC, for `status`: the members other
//! operators run (peered with how many of their nodes, how many of their validators sign)
//! and every signer vote that waits for other operators — its tally on chain
//! (`clique_getSnapshot`) and the members whose operators have not voted. The rules (tally,
//! who a vote waits for, when a member was voted out) are [`crate::consensus::votes`]'.

use super::reconcile::signer_drift;
use super::*;
use crate::consensus::votes::{tally, waiting_for};
use crate::provider::{ExternalMember, RemovedMember, VoteProgress};

/// The signers at block `n` (None: the node does not answer).
fn signers_at(rpc: &RpcClient, n: u64) -> Option<BTreeSet<Address>> {
    let raw: Vec<String> = rpc
        .call("clique_getSigners", json!([format!("0x{n:x}")]))
        .ok()?;
    Some(raw.iter().filter_map(|s| rpc::parse_address(s)).collect())
}

/// The first block at which none of `ours` is a signer any more, read over IPC (see
/// [`consensus::votes::removed_at`]).
fn removed_at(rpc: &RpcClient, ours: &BTreeSet<Address>, head: u64) -> Option<u64> {
    consensus::votes::removed_at(head, |n| signers_at(rpc, n).map(|s| !s.is_disjoint(ours)))
}

/// Our validators' signer addresses, by member.
fn own_signers(topology: &Topology, st: &State) -> BTreeMap<String, BTreeSet<Address>> {
    let mut ours: BTreeMap<String, BTreeSet<Address>> = BTreeMap::new();
    for n in topology
        .nodes()
        .iter()
        .filter(|n| n.role == Role::Validator)
    {
        if let Some(a) = st
            .output_str(&format!("key.signer.{}", n.name), "address")
            .and_then(rpc::parse_address)
        {
            ours.entry(n.member.clone()).or_default().insert(a);
        }
    }
    ours
}

/// The members of ours that the other operators voted out: none of their validators is
/// among the `live` signers though one was earlier on the chain (removed, at a block), or
/// the chain our nodes last saw holds votes to remove their signers (being removed: the
/// others' nodes stop peering with ours as they vote, so ours may never see the vote
/// pass). `still_peered`: how many of the other operators' nodes ours are still peered
/// with, when known.
pub(super) fn voted_out(
    topology: &Topology,
    st: &State,
    live: &BTreeSet<Address>,
    still_peered: Option<u32>,
) -> Vec<RemovedMember> {
    if live.is_empty() || !topology.has_external_members() {
        return vec![];
    }
    let ours = own_signers(topology, st);
    let Some(probe) = recorded_nodes(st)
        .into_iter()
        .filter(|(n, o)| o.is_running() && topology.nodes().iter().any(|s| &s.name == n))
        .map(|(_, o)| o.control().with_timeout(PROBE_TIMEOUT))
        .find(|rpc| rpc.block_number().is_ok())
    else {
        return vec![];
    };
    let head = probe.block_number().unwrap_or(0);
    let mut snapshot = None;
    let mut out = Vec::new();
    for (member, signers) in &ours {
        if signers.is_disjoint(live) {
            if let Some(block) = removed_at(&probe, signers, head) {
                out.push(RemovedMember {
                    name: member.clone(),
                    block: Some(block),
                    votes_against: None,
                    still_peered,
                });
            }
            continue;
        }
        let snapshot = snapshot.get_or_insert_with(|| {
            probe
                .call_raw("clique_getSnapshot", json!([null]))
                .unwrap_or(Value::Null)
        });
        let against = signers
            .iter()
            .filter(|a| live.contains(*a))
            .map(|a| tally(snapshot, a, false).0)
            .max()
            .unwrap_or(0);
        if against > 0 {
            out.push(RemovedMember {
                name: member.clone(),
                block: None,
                votes_against: Some((against, liveness::quorum(live.len()) as u32, head)),
                still_peered,
            });
        }
    }
    out
}

/// Adds `external` and `votes` to `h`.
pub(super) fn consortium_view(topology: &Topology, st: &State, h: &mut Health) {
    let nodes = recorded_nodes(st);
    let running: Vec<&NodeOutputs> = nodes
        .iter()
        .filter(|(n, o)| o.is_running() && topology.nodes().iter().any(|s| &s.name == n))
        .map(|(_, o)| o)
        .collect();
    let Some(probe) = running
        .first()
        .map(|o| o.control().with_timeout(PROBE_TIMEOUT))
    else {
        return;
    };
    let live: BTreeSet<Address> = probe
        .clique_get_signers()
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    let mut peered: BTreeSet<String> = BTreeSet::new();
    for o in &running {
        if let Ok(ps) = o.control().with_timeout(PROBE_TIMEOUT).admin_peers() {
            peered.extend(ps.iter().filter_map(|p| p.pubkey().map(str::to_string)));
        }
    }
    // Whose signer an address is: our validators by their key, external ones by member.
    let mut member_of: BTreeMap<Address, String> = BTreeMap::new();
    for (m, addrs) in own_signers(topology, st) {
        member_of.extend(addrs.into_iter().map(|a| (a, m.clone())));
    }
    for (m, e) in topology.external_members() {
        let signers: Vec<Address> = e
            .signers
            .iter()
            .filter_map(|s| rpc::parse_address(s))
            .collect();
        for a in &signers {
            member_of.insert(*a, m.name.clone());
        }
        let reached = |u: &str| rpc::enode_pubkey(u).is_some_and(|k| peered.contains(k));
        h.external.push(ExternalMember {
            name: m.name.clone(),
            enodes: e.enodes.len() as u32,
            peered: e.enodes.iter().filter(|u| reached(u)).count() as u32,
            signers: signers.len() as u32,
            signing: signers.iter().filter(|a| live.contains(a)).count() as u32,
            unreached: topology
                .external_nodes()
                .into_iter()
                .filter(|(n, url)| n.member == m.name && !reached(url))
                .map(|(n, _)| n.name)
                .collect(),
        });
    }
    let still_peered = h.external.iter().map(|e| e.peered).sum();
    h.removed = voted_out(topology, st, &live, Some(still_peered));
    if h.removed.is_empty() && still_peered == 0 && !h.external.is_empty() {
        h.isolated = topology
            .members
            .iter()
            .filter(|m| m.is_operated())
            .map(|m| m.name.clone())
            .collect();
    }
    if !h.removed.is_empty() || !h.isolated.is_empty() {
        h.healthy = false;
    }
    let ours = own_signers(topology, st);
    let removed: BTreeSet<&Address> = h
        .removed
        .iter()
        .flat_map(|r| ours.get(&r.name).into_iter().flatten())
        .collect();
    let d = signer_drift(topology, st);
    let snapshot = probe
        .call_raw("clique_getSnapshot", json!([null]))
        .unwrap_or(Value::Null);
    let pending = d
        .waiting
        .iter()
        .cloned()
        .chain(d.vote_in.iter().map(|(a, l)| (*a, true, l.clone())))
        .chain(d.vote_out.iter().map(|(a, l)| (*a, false, l.clone())));
    for (target, authorize, label) in pending {
        // Not waiting for a vote in: voted out.
        if authorize && removed.contains(&target) {
            continue;
        }
        let (votes, voters) = tally(&snapshot, &target, authorize);
        let waiting = waiting_for(&live, &voters, |s| {
            let member = member_of.get(s);
            // Our own proposals are cast (they reach the chain as our signers seal).
            let ours = topology
                .member(member.map(String::as_str).unwrap_or(""))
                .is_some_and(|m| m.is_operated());
            (!ours).then(|| member.cloned().unwrap_or_else(|| s.to_checksum()))
        });
        h.votes.push(VoteProgress {
            subject: label.split(':').next().unwrap_or(&label).trim().to_string(),
            address: target.to_checksum(),
            authorize,
            votes,
            signers: live.len() as u32,
            needed: liveness::quorum(live.len()) as u32,
            waiting_for: waiting.into_iter().collect(),
        });
    }
}
