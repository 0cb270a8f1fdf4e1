//! What keeps a Clique chain live: more than half of its signers must be online to seal
//! (geth `consensus/clique/snapshot.go`: a signer may seal one block in every
//! `floor(n/2)+1`, so with fewer online every one of them has "signed recently"), and the
//! same majority must propose a change of the signer set for it to pass.

/// How many of `signers` Clique needs online to seal, and proposing for a vote to pass:
/// `floor(n/2)+1`.
pub fn quorum(signers: usize) -> usize {
    signers / 2 + 1
}

/// A halted Clique chain: `online` of `signers` signers answer, `needed` must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Halted {
    pub online: u32,
    pub signers: u32,
    pub needed: u32,
}

impl std::fmt::Display for Halted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chain halted: {} of {} signers online, Clique needs {}",
            self.online, self.signers, self.needed
        )
    }
}

/// The chain is halted when fewer than [`quorum`] of its `signers` are `online`.
pub fn halted(online: usize, signers: usize) -> Option<Halted> {
    let needed = quorum(signers);
    (online < needed).then_some(Halted {
        online: online as u32,
        signers: signers as u32,
        needed: needed as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_half_must_be_online() {
        assert_eq!([1, 2, 3, 4, 5].map(quorum), [1, 2, 2, 3, 3]);
        // Two signers halt when one is down; three survive one.
        assert_eq!(
            halted(1, 2),
            Some(Halted {
                online: 1,
                signers: 2,
                needed: 2
            })
        );
        assert_eq!(halted(2, 3), None);
        assert_eq!(
            halted(1, 3).map(|h| h.to_string()).as_deref(),
            Some("chain halted: 1 of 3 signers online, Clique needs 2")
        );
    }
}
