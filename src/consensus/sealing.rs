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

#[cfg(test)]
mod tests {
    use super::*;

    fn a(byte: u8) -> Address {
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
}
