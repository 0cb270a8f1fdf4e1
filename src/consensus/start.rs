//! Starting sealing on validators that were restarted at a chain's head, decided from
//! what each reports (a value any channel can read: Run Command on Azure): wait until each
//! is up, unlocked and peered with every planned validator peer whose geth answers, then
//! start them in [`sealing`](super::sealing)'s order, each group once the one before it
//! seals. Why the order matters is in `sealing`'s docs.

use super::sealing::{in_turn, start_order_with_recents};
use crate::crypto::Address;
use std::collections::{BTreeMap, BTreeSet};

/// What a validator reports for starting sealing: head, whether it seals, whether its
/// signer is unlocked, the enode ids (public keys, lower case) of its peers, the signer set
/// and who signed the last blocks (its head's Clique snapshot `recents`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRead {
    pub block: u64,
    pub mining: bool,
    pub unlocked: bool,
    pub peers: BTreeSet<String>,
    pub signers: Vec<Address>,
    pub recents: BTreeMap<u64, Address>,
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

/// The validators the sealing order is decided over (a provider builds it from state).
pub struct SealingSet {
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
    v: &SealingSet,
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
    fn two() -> SealingSet {
        SealingSet {
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
}
