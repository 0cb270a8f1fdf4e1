//! Clique forks geth does not leave on its own, and how consort repairs them: which head
//! wins and what every other node needs ([`plan`]). The rewind itself goes over the local
//! provider's IPC socket (`provider::local::forks`).
//!
//! geth 1.13 chooses between two heads by total difficulty (core/forkchoice.go,
//! `ReorgNeeded`). At equal difficulty it prefers the lower block, and at equal height too
//! it flips a coin once, when the competing block arrives; Clique never asks it to prefer its own blocks (eth/backend.go,
//! `shouldPreserve`). Its downloader syncs only from a peer whose total difficulty is
//! higher (eth/sync.go, `nextSyncOp`). So two sides of equal weight stay apart: each side's
//! signers have "recently signed" on it (consensus/clique/clique.go, `Seal`: a signer waits
//! `signers/2 + 1` blocks), and when every signer on a side has, neither side grows and
//! nothing will ever make one side heavier.
//!
//! The repair: pick one head as the winner (the heaviest; among equal weight the lower
//! block, as geth prefers, then the lowest hash, so every run picks the same), and
//! - a node on a lighter head is restarted: the new handshake carries the peers' weight and
//!   it syncs to the heavier chain (what `repair_forks` always did);
//! - a node on a head of equal weight first rewinds to the last block it shares with the
//!   winner (`debug_setHead`, over its IPC socket only), which makes it lighter, and then
//!   restarts like the above. Only blocks the winner's chain does not have are dropped:
//!   exactly what geth's fork choice drops when it reorganises.

/// A validator's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub node: String,
    pub number: u64,
    pub hash: String,
    pub total_difficulty: u128,
}

/// What a node off the winning head needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Lighter than the winner: a restart (a new handshake) lets it sync.
    Restart,
    /// As heavy as the winner on another block: rewind it below the fork, then restart.
    Rewind,
}

/// The winning head and, for every node on another head, its repair (node order kept).
pub fn plan(heads: &[Head]) -> Option<(&Head, Vec<(&Head, Repair)>)> {
    // geth's own order (core/forkchoice.go): heavier wins; at equal weight the lower
    // block; then (where geth flips a coin) the lower hash. Reversed comparisons make
    // max_by pick the lower.
    let best = heads.iter().max_by(|a, b| {
        a.total_difficulty
            .cmp(&b.total_difficulty)
            .then_with(|| b.number.cmp(&a.number))
            .then_with(|| b.hash.cmp(&a.hash))
    })?;
    let repairs = heads
        .iter()
        .filter(|h| h.hash != best.hash)
        .map(|h| {
            let r = if h.total_difficulty < best.total_difficulty {
                Repair::Restart
            } else {
                Repair::Rewind
            };
            (h, r)
        })
        .collect();
    Some((best, repairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(node: &str, number: u64, hash: &str, td: u128) -> Head {
        Head {
            node: node.into(),
            number,
            hash: hash.into(),
            total_difficulty: td,
        }
    }

    #[test]
    fn lighter_heads_restart_and_equal_weight_rivals_rewind() {
        let heads = [
            head("a", 7, "0xbb", 9),
            head("b", 7, "0xaa", 9),
            head("c", 7, "0xbb", 9),
            head("d", 6, "0xcc", 8),
        ];
        let (best, repairs) = plan(&heads).unwrap();
        // Equal weight and height: the lower hash wins, whatever the node order.
        assert_eq!(best.hash, "0xaa");
        let got: Vec<(&str, Repair)> = repairs
            .iter()
            .map(|(h, r)| (h.node.as_str(), r.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Repair::Rewind),
                ("c", Repair::Rewind),
                ("d", Repair::Restart)
            ]
        );
        let mut reversed = heads.clone();
        reversed.reverse();
        assert_eq!(plan(&reversed).unwrap().0.hash, "0xaa");
    }

    #[test]
    fn the_heaviest_wins_before_the_highest_and_one_head_needs_nothing() {
        // Out-of-turn blocks weigh 1, in-turn 2: a shorter chain can be heavier.
        let heads = [head("a", 8, "0x01", 9), head("b", 7, "0x02", 10)];
        let (best, repairs) = plan(&heads).unwrap();
        assert_eq!(best.node, "b");
        assert_eq!(repairs.len(), 1);
        assert_eq!(repairs[0].1, Repair::Restart);
        let same = [head("a", 8, "0x01", 9), head("b", 8, "0x01", 9)];
        assert!(plan(&same).unwrap().1.is_empty());
        assert!(plan(&[]).is_none());
    }
}
