//! When validators start sealing, and in which order.
//!
//! geth accepts a propagated block only once it counts itself synced, which a node that
//! restarted at the chain's head becomes only by starting to seal (`miner_start`) or by a
//! sync from a peer that is ahead. A propagated block does not raise the receiver's view
//! of the sender's weight (geth records the *parent's* total difficulty), so a block sealed
//! before the others started sealing is dropped by them and never fetched again. With
//! Clique's "signed recently" rule, that can halt a small network for good: the sealer of
//! the dropped block may not seal the next one, and the others are still one block behind.
//!
//! So sealing starts on every other ready signer first, and on the signer in turn for the
//! next block last (it seals the moment it starts; the others wait out Clique's wiggle
//! delay). Its block then reaches nodes that all accept it, and it outweighs (difficulty
//! 2) any out-of-turn block sealed meanwhile.

use crate::crypto::Address;
use std::collections::BTreeMap;

/// Clique's in-turn signer of block `number`: the one at index `number % n` of the signers
/// sorted by address (geth `consensus/clique/snapshot.go`, `inturn`). None without signers.
pub fn in_turn(signers: &[Address], number: u64) -> Option<Address> {
    let mut sorted = signers.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[(number % sorted.len() as u64) as usize])
}

/// Splits `ready` (validators about to start sealing, with their signer addresses) into
/// those to start first and the one to start after every other has started: the signer in
/// turn for block `head + 1` among `signers`, when it is ready and not alone.
pub fn start_order<T>(
    ready: Vec<(T, Address)>,
    signers: &[Address],
    head: u64,
) -> (Vec<T>, Option<T>) {
    let last = (ready.len() >= 2)
        .then(|| in_turn(signers, head + 1))
        .flatten();
    let mut first = Vec::with_capacity(ready.len());
    let mut late = None;
    for (item, address) in ready {
        if late.is_none() && Some(address) == last {
            late = Some(item);
        } else {
            first.push(item);
        }
    }
    (first, late)
}

/// Whether `signer` may not seal block `number` because it signed one of the blocks
/// before it: geth `consensus/clique/clique.go`, `Seal` ("Signed recently, must wait for
/// others"): a block `seen` it signed in the parent's snapshot `Recents` (block → signer)
/// with `number < limit || seen > number - limit`, `limit = signers / 2 + 1`.
pub fn signed_recently(
    recents: &BTreeMap<u64, Address>,
    signers: usize,
    signer: &Address,
    number: u64,
) -> bool {
    let limit = (signers / 2 + 1) as u64;
    recents
        .iter()
        .any(|(seen, a)| a == signer && (number < limit || *seen > number - limit))
}

/// [`start_order`] when the head's `recents` (its Clique snapshot's) are known, with the
/// last group a list. When the signer in turn for block `head + 1` signed recently, it
/// seals nothing then, and the block comes from a signer out of turn: those that may seal
/// it then start only after every one that may not (which must accept its block), together.
/// (With two signers whose blocks are all out of turn, as after a fork, the one in turn
/// is always the one that sealed the head: started last, it would miss its partner's block
/// and neither could seal again.)
pub fn start_order_with_recents<T>(
    ready: Vec<(T, Address)>,
    signers: &[Address],
    head: u64,
    recents: &BTreeMap<u64, Address>,
) -> (Vec<T>, Vec<T>) {
    let mut set = signers.to_vec();
    set.sort();
    set.dedup();
    let next = head + 1;
    let blocked = |a: &Address| signed_recently(recents, set.len(), a, next);
    match in_turn(signers, next) {
        Some(s) if blocked(&s) => {
            let (late, first): (Vec<_>, Vec<_>) = ready.into_iter().partition(|(_, a)| !blocked(a));
            if first.is_empty() || late.is_empty() {
                (
                    first.into_iter().chain(late).map(|(t, _)| t).collect(),
                    vec![],
                )
            } else {
                (
                    first.into_iter().map(|(t, _)| t).collect(),
                    late.into_iter().map(|(t, _)| t).collect(),
                )
            }
        }
        _ => {
            let (first, last) = start_order(ready, signers, head);
            (first, last.into_iter().collect())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An address whose first byte is `byte` (the rest zero).
    pub(crate) fn a(byte: u8) -> Address {
        let mut b = [0u8; 20];
        b[0] = byte;
        Address(b)
    }

    #[test]
    fn in_turn_follows_the_sorted_signers() {
        // Sorted: 0x10.., 0x20.., 0x30...
        let signers = [a(0x30), a(0x10), a(0x20)];
        assert_eq!(in_turn(&signers, 1), Some(a(0x20)));
        assert_eq!(in_turn(&signers, 5), Some(a(0x30)));
        assert_eq!(in_turn(&signers, 6), Some(a(0x10)));
        assert_eq!(in_turn(&[], 6), None);
    }

    #[test]
    fn the_next_blocks_in_turn_signer_starts_last() {
        let signers = [a(0x30), a(0x10), a(0x20)];
        let ready = vec![("v0", a(0x30)), ("v1", a(0x10)), ("v2", a(0x20))];
        // Block 5 is in turn for index 2: 0x30, v0.
        let (first, last) = start_order(ready.clone(), &signers, 4);
        assert_eq!(first, vec!["v1", "v2"]);
        assert_eq!(last, Some("v0"));
        // The in-turn signer not ready, or alone: nobody waits.
        let (first, last) = start_order(ready[1..].to_vec(), &signers, 4);
        assert_eq!((first, last), (vec!["v1", "v2"], None));
        let (first, last) = start_order(vec![("v0", a(0x30))], &signers, 4);
        assert_eq!((first, last), (vec!["v0"], None));
    }

    #[test]
    fn signed_recently_follows_geths_seal_rule() {
        // Two signers: limit 2; whoever sealed block 7 may not seal 8, may seal 9.
        let recents: BTreeMap<u64, Address> = [(6, a(0x10)), (7, a(0x20))].into();
        assert!(signed_recently(&recents, 2, &a(0x20), 8));
        assert!(!signed_recently(&recents, 2, &a(0x10), 8));
        assert!(!signed_recently(&recents, 2, &a(0x20), 9));
        // Below the limit every recent signer waits.
        let recents: BTreeMap<u64, Address> = [(0, a(0x10))].into();
        assert!(signed_recently(&recents, 3, &a(0x10), 1));
    }

    #[test]
    fn an_in_turn_signer_that_signed_recently_starts_first() {
        let signers = [a(0x10), a(0x20)];
        let ready = vec![("v1", a(0x10)), ("v2", a(0x20))];
        // In phase: block 7 by its in-turn signer (7 % 2 = 1: 0x20); block 8 is 0x10's.
        let recents: BTreeMap<u64, Address> = [(7, a(0x20))].into();
        assert_eq!(
            start_order_with_recents(ready.clone(), &signers, 7, &recents),
            (vec!["v2"], vec!["v1"])
        );
        // Out of phase: block 7 by 0x10, the one in turn for block 8, which then waits;
        // 0x20 seals block 8 out of turn, so it starts last.
        let recents: BTreeMap<u64, Address> = [(6, a(0x20)), (7, a(0x10))].into();
        assert_eq!(
            start_order_with_recents(ready.clone(), &signers, 7, &recents),
            (vec!["v1"], vec!["v2"])
        );
        // Nothing known about recents: start_order's choice.
        assert_eq!(
            start_order_with_recents(ready, &signers, 7, &BTreeMap::new()),
            (vec!["v2"], vec!["v1"])
        );
    }
}
