//! The consortium as this operator's nodes see it, for `status`: the members other
//! operators run (peered with how many of their nodes, how many of their validators sign)
//! and every signer vote that waits for other operators — its tally on chain
//! (`clique_getSnapshot`) and the members whose operators have not voted.

use super::reconcile::signer_drift;
use super::*;
use crate::provider::{ExternalMember, VoteProgress};

/// The snapshot's view of one vote target: votes on chain and who cast them.
fn tally(snapshot: &Value, target: &Address, authorize: bool) -> (u32, BTreeSet<Address>) {
    let voters = crate::provider::governance::snapshot_voters(snapshot, target, authorize);
    (voters.len() as u32, voters)
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
    for n in topology
        .nodes()
        .iter()
        .filter(|n| n.role == Role::Validator)
    {
        if let Some(a) = st
            .output_str(&format!("key.signer.{}", n.name), "address")
            .and_then(rpc::parse_address)
        {
            member_of.insert(a, n.member.clone());
        }
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
        h.external.push(ExternalMember {
            name: m.name.clone(),
            enodes: e.enodes.len() as u32,
            peered: e
                .enodes
                .iter()
                .filter(|u| rpc::enode_pubkey(u).is_some_and(|k| peered.contains(k)))
                .count() as u32,
            signers: signers.len() as u32,
            signing: signers.iter().filter(|a| live.contains(a)).count() as u32,
        });
    }
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
        let (votes, voters) = tally(&snapshot, &target, authorize);
        // Our own proposals are cast (they reach the chain as our signers seal).
        let waiting: BTreeSet<String> = live
            .iter()
            .filter(|s| !voters.contains(s))
            .filter(|s| {
                !topology
                    .member(member_of.get(s).map(String::as_str).unwrap_or(""))
                    .is_some_and(|m| m.is_operated())
            })
            .map(|s| member_of.get(s).cloned().unwrap_or_else(|| s.to_checksum()))
            .collect();
        h.votes.push(VoteProgress {
            subject: label.split(':').next().unwrap_or(&label).trim().to_string(),
            address: target.to_checksum(),
            authorize,
            votes,
            signers: live.len() as u32,
            needed: (live.len() / 2 + 1) as u32,
            waiting_for: waiting.into_iter().collect(),
        });
    }
}
