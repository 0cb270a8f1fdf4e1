//! Clique votes: how a change of the signer set is proposed, followed until
//! `clique_getSigners` shows it, and cleaned up — alone in a network (a majority of ours
//! votes) or beside other operators (ours cast their votes and wait). Talks to nodes only
//! through [`NodeControl`].
//!
//! Idempotent, so an interrupted vote resumes by running again: a vote that already took
//! effect is only cleaned up (`clique_discard`); proposals are re-sent every time (geth
//! forgets them on restart).

use super::control::{GovError, NodeControl};
use super::liveness;
use crate::crypto::Address;
use crate::events::{Event, EventSink};
use crate::rpc;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Which validators state counts as signers: once any `signer.<n>` is recorded, those
/// recorded (the others wait for their vote in); before that (a new chain), every one.
pub fn counted_signer(st: &crate::state::State) -> impl Fn(&str) -> bool + '_ {
    let any_record = st.resources.keys().any(|k| k.starts_with("signer."));
    move |node| !any_record || st.resources.contains_key(&format!("signer.{node}"))
}

/// The signers whose vote about `target` (`authorize`) a `clique_getSnapshot` answer holds
/// (`{"votes": [{"signer", "address", "authorize", ...}]}`).
pub fn snapshot_voters(snapshot: &Value, target: &Address, authorize: bool) -> BTreeSet<Address> {
    snapshot["votes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v["address"].as_str().and_then(rpc::parse_address) == Some(*target)
                && v["authorize"].as_bool() == Some(authorize)
        })
        .filter_map(|v| v["signer"].as_str().and_then(rpc::parse_address))
        .collect()
}

/// A signer node that can propose: its name (for messages), control channel and signer
/// address.
#[derive(Clone)]
pub struct SignerNode {
    pub name: String,
    pub control: std::sync::Arc<dyn NodeControl>,
    pub address: Address,
}

fn sorted(mut v: Vec<Address>) -> Vec<Address> {
    v.sort();
    v
}

/// Votes `target` in (`authorize`) or out, by every reachable current signer among
/// `candidates` (at least a majority of the current signers must be reachable), then waits
/// until `clique_getSigners` reflects it and discards the proposals. Returns the names of
/// the nodes that proposed (empty when it had already taken effect).
///
/// Several votes run side by side (validators added in one change): a Clique block carries
/// one vote, picked at random among its sealer's proposals, so while waiting the proposals
/// are steered (see `steer`) to make every block count.
pub fn vote(
    candidates: &[SignerNode],
    target: Address,
    authorize: bool,
    timeout: Duration,
    subject: &str,
    events: &EventSink,
) -> Result<Vec<String>, GovError> {
    let deadline = Instant::now() + timeout;
    let observe = || -> Result<Vec<Address>, GovError> {
        let mut last = None;
        for c in candidates {
            match c.control.signers() {
                Ok(s) => return Ok(sorted(s)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            GovError::Refused("no signer node to ask for the signer set".into())
        }))
    };
    let done = |signers: &[Address]| signers.contains(&target) == authorize;
    let verb = if authorize { "vote in" } else { "vote out" };

    let signers = observe()?;
    let proposers: Vec<&SignerNode> = candidates
        .iter()
        .filter(|c| signers.contains(&c.address))
        .collect();
    if done(&signers) {
        discard(&proposers, target);
        return Ok(vec![]);
    }
    let need = liveness::quorum(signers.len());
    let mut proposed = Vec::new();
    let mut failures = Vec::new();
    // At once: on Azure each proposal is a Run Command of several seconds.
    let results: Vec<(String, Result<(), GovError>)> = std::thread::scope(|s| {
        let hs: Vec<_> = proposers
            .iter()
            .map(|p| s.spawn(move || (p.name.clone(), p.control.propose(&target, authorize))))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("propose thread"))
            .collect()
    });
    for (name, r) in results {
        match r {
            Ok(()) => proposed.push(name),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if proposed.len() < need {
        return Err(GovError::Refused(format!(
            "cannot {verb} {target}: {} of {} current signers accepted the proposal, {need} are \
             needed{}",
            proposed.len(),
            signers.len(),
            if failures.is_empty() {
                String::new()
            } else {
                format!(" ({})", failures.join("; "))
            }
        )));
    }
    events(Event::Step {
        subject: subject.to_string(),
        step: format!("{verb} proposed by {}", proposed.join(", ")),
    });
    let mut proposing: BTreeSet<Address> = proposers
        .iter()
        .filter(|p| proposed.contains(&p.name))
        .map(|p| p.address)
        .collect();
    loop {
        let now = observe()?;
        if done(&now) {
            break;
        }
        steer(candidates, &now, target, authorize, &mut proposing);
        if Instant::now() >= deadline {
            return Err(GovError::Timeout(format!(
                "{verb} {target}: proposed by {} but clique_getSigners still {} it after {:?} \
                 (signers: {}); run apply again to re-send the proposals",
                proposed.join(", "),
                if authorize { "lacks" } else { "lists" },
                timeout,
                now.iter()
                    .map(|a| a.to_checksum())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        std::thread::sleep(
            candidates
                .first()
                .map(|c| c.control.poll_interval())
                .unwrap_or(Duration::from_millis(200)),
        );
    }
    let steered: Vec<&SignerNode> = candidates
        .iter()
        .filter(|c| proposing.contains(&c.address) || proposers.iter().any(|p| p.name == c.name))
        .collect();
    discard(&steered, target);
    events(Event::Step {
        subject: subject.to_string(),
        step: if authorize {
            "signer".into()
        } else {
            "no longer a signer".into()
        },
    });
    Ok(proposed)
}

/// What [`cast`] did: whether the change has taken effect, and if not, how many of the live
/// signers this operator's nodes are and how many are needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cast {
    /// Already in effect (the proposals were discarded).
    Done,
    /// Proposed by `proposed` of this operator's signers; the vote needs `needed` of
    /// `signers`, so other operators' signers must vote too.
    Waiting {
        proposed: Vec<String>,
        signers: usize,
        needed: usize,
    },
}

/// In a network where other operators hold signers too: when `candidates` (this
/// operator's signer nodes) are a majority of the live signers, votes with [`vote`];
/// otherwise only proposes on each of them and returns [`Cast::Waiting`] — the vote passes
/// once the other operators' signers vote as well (their `consort admit` / `apply`).
pub fn cast(
    candidates: &[SignerNode],
    target: Address,
    authorize: bool,
    timeout: Duration,
    subject: &str,
    events: &EventSink,
) -> Result<Cast, GovError> {
    let signers = candidates
        .iter()
        .find_map(|c| c.control.signers().ok())
        .ok_or_else(|| GovError::Refused("no signer node answers for the signer set".into()))?;
    let ours: Vec<&SignerNode> = candidates
        .iter()
        .filter(|c| signers.contains(&c.address))
        .collect();
    let needed = liveness::quorum(signers.len());
    if signers.contains(&target) == authorize {
        discard(&ours, target);
        return Ok(Cast::Done);
    }
    if ours.len() >= needed {
        vote(candidates, target, authorize, timeout, subject, events)?;
        return Ok(Cast::Done);
    }
    let mut proposed = Vec::new();
    for p in &ours {
        if p.control.propose(&target, authorize).is_ok() {
            proposed.push(p.name.clone());
        }
    }
    events(Event::Step {
        subject: subject.to_string(),
        step: format!(
            "{} cast by {} ({} of {} signers are this operator's, {needed} needed): waiting for the other operators' votes",
            if authorize { "vote in" } else { "vote out" },
            if proposed.is_empty() {
                "none of ours (no validator of this operator signs yet)".to_string()
            } else {
                proposed.join(", ")
            },
            ours.len(),
            signers.len()
        ),
    });
    Ok(Cast::Waiting {
        proposed,
        signers: signers.len(),
        needed,
    })
}

/// Keeps a vote's proposals where they make blocks count, when the chain's votes can be
/// read at every poll (`NodeControl::voters`):
/// - a signer whose vote about `target` is on chain drops its proposal, so the next block
///   it seals carries a vote still needed (another validator of the same change) instead
///   of the same vote again;
/// - a signer without a vote on chain proposes: one that became a signer meanwhile (voted
///   in beside `target`), and one whose vote left the chain (an epoch block clears votes).
///
/// `proposing` holds the signers with a proposal out.
fn steer(
    candidates: &[SignerNode],
    signers: &[Address],
    target: Address,
    authorize: bool,
    proposing: &mut BTreeSet<Address>,
) {
    let Some(voted) = candidates
        .iter()
        .find_map(|c| c.control.voters(&target, authorize))
    else {
        return;
    };
    for c in candidates.iter().filter(|c| signers.contains(&c.address)) {
        let out = proposing.contains(&c.address);
        if voted.contains(&c.address) && out {
            if c.control.discard(&target).is_ok() {
                proposing.remove(&c.address);
            }
        } else if !voted.contains(&c.address)
            && !out
            && c.control.propose(&target, authorize).is_ok()
        {
            proposing.insert(c.address);
        }
    }
}

/// Drops pending proposals about `target` (best effort: a node that is down has none).
fn discard(nodes: &[&SignerNode], target: Address) {
    std::thread::scope(|s| {
        for n in nodes {
            s.spawn(move || {
                let _ = n.control.discard(&target);
            });
        }
    });
}

/// The snapshot's view of one vote target: votes on chain and who cast them.
pub fn tally(snapshot: &Value, target: &Address, authorize: bool) -> (u32, BTreeSet<Address>) {
    let voters = snapshot_voters(snapshot, target, authorize);
    (voters.len() as u32, voters)
}

/// Who a vote still waits for: the `live` signers that are not among its `voters`, by the
/// label `other` gives them (None: a signer of this operator's, whose proposal is cast and
/// reaches the chain as it seals).
pub fn waiting_for(
    live: &BTreeSet<Address>,
    voters: &BTreeSet<Address>,
    other: impl Fn(&Address) -> Option<String>,
) -> BTreeSet<String> {
    live.iter()
        .filter(|s| !voters.contains(s))
        .filter_map(other)
        .collect()
}

/// Blocks sampled for a past signer set (see [`removed_at`]).
const HISTORY_SAMPLES: u64 = 64;

/// The first block at which none of a member's signers is a signer any more, when one of
/// them was a signer earlier on the chain; `had(n)` tells whether one was at block `n`
/// (None: the node did not answer). `HISTORY_SAMPLES` blocks spread over `0..head` find a
/// block where one was, and a binary search between it and the head (where none is)
/// finds the change. A signer that was in for fewer blocks than the sampling step
/// (head / 64) is not found; its member then reads as waiting to be voted in.
pub fn removed_at(head: u64, had: impl Fn(u64) -> Option<bool>) -> Option<u64> {
    let step = (head / HISTORY_SAMPLES).max(1);
    let mut lo = (0..head)
        .rev()
        .step_by(step as usize)
        .find(|n| had(*n) == Some(true))?;
    let mut hi = head;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match had(mid)? {
            true => lo = mid,
            false => hi = mid,
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signer's Clique API as a log of what was asked, with the chain's votes given.
    struct Fake {
        voted: BTreeSet<Address>,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl NodeControl for Fake {
        fn signers(&self) -> Result<Vec<Address>, GovError> {
            Ok(vec![])
        }
        fn clique_view(&self) -> Result<super::super::control::CliqueView, GovError> {
            Ok((vec![], vec![]))
        }
        fn propose(&self, _: &Address, authorize: bool) -> Result<(), GovError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("propose {authorize}"));
            Ok(())
        }
        fn discard(&self, _: &Address) -> Result<(), GovError> {
            self.calls.lock().unwrap().push("discard".into());
            Ok(())
        }
        fn voters(&self, _: &Address, _: bool) -> Option<BTreeSet<Address>> {
            Some(self.voted.clone())
        }
    }

    #[test]
    fn steering_withdraws_cast_votes_and_enlists_new_signers() {
        let addr = |b: u8| Address([b; 20]);
        let (a, b, c, new, target) = (addr(1), addr(2), addr(3), addr(4), addr(9));
        // a's and c's votes are on chain; b's is not.
        let voted: BTreeSet<Address> = [a, c].into();
        let nodes: Vec<(SignerNode, std::sync::Arc<Fake>)> =
            [("a", a), ("b", b), ("c", c), ("new", new)]
                .into_iter()
                .map(|(name, address)| {
                    let fake = std::sync::Arc::new(Fake {
                        voted: voted.clone(),
                        calls: Default::default(),
                    });
                    let node = SignerNode {
                        name: name.into(),
                        control: fake.clone(),
                        address,
                    };
                    (node, fake)
                })
                .collect();
        let candidates: Vec<SignerNode> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let calls = |i: usize| nodes[i].1.calls.lock().unwrap().clone();
        // a, b and c proposed; `new` was voted in beside the target meanwhile.
        let mut proposing: BTreeSet<Address> = [a, b, c].into();
        steer(&candidates, &[a, b, c, new], target, true, &mut proposing);
        assert_eq!(
            calls(0),
            ["discard"],
            "a's vote is cast: its blocks vote elsewhere"
        );
        assert!(calls(1).is_empty(), "b still has to vote");
        assert_eq!(calls(2), ["discard"]);
        assert_eq!(calls(3), ["propose true"], "a new signer votes too");
        assert_eq!(proposing, [b, new].into());
        // Nothing changes on chain: nothing more is sent.
        steer(&candidates, &[a, b, c, new], target, true, &mut proposing);
        assert_eq!(
            calls(0).len() + calls(1).len() + calls(2).len() + calls(3).len(),
            3
        );
        // Not yet a signer: never asked to propose.
        let mut proposing = BTreeSet::new();
        steer(&candidates[3..], &[a, b, c], target, true, &mut proposing);
        assert!(proposing.is_empty());
    }

    #[test]
    fn a_removal_is_found_at_its_block_unless_it_was_too_brief() {
        // Ours signed up to block 136; from 137 on none is a signer.
        assert_eq!(removed_at(1000, |n| Some(n < 137)), Some(137));
        assert_eq!(removed_at(5, |n| Some(n < 1)), Some(1));
        // Never a signer: not removed (waiting to be voted in).
        assert_eq!(removed_at(1000, |_| Some(false)), None);
        // In for blocks 505..510 only, between two samples (999, 984, …: step 1000 / 64 = 15,
        // 504 and 519 are sampled): not found.
        assert_eq!(removed_at(1000, |n| Some((505..510).contains(&n))), None);
        // The node answers for blocks below 100 only: the search cannot finish.
        assert_eq!(removed_at(1000, |n| (n < 100).then_some(n < 137)), None);
    }

    #[test]
    fn a_vote_waits_for_the_live_signers_that_have_not_voted_except_ours() {
        let addr = |b: u8| Address([b; 20]);
        let live: BTreeSet<Address> = [addr(1), addr(2), addr(3), addr(4)].into();
        let voters: BTreeSet<Address> = [addr(2)].into();
        // addr(1) is ours; 3 and 4 are the other operator's "b".
        let waiting = waiting_for(&live, &voters, |a| (*a != addr(1)).then(|| "b".to_string()));
        assert_eq!(waiting, ["b".to_string()].into());
    }
}
