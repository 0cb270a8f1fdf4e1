//! Signer-set drift: the chain's live signers and pending proposals against the topology.
//! State alone cannot tell: a `member add` killed after its proposals went out leaves them
//! pending on the validators, and they take effect later whatever state says; a signer
//! voted in behind consort's back is in no state at all. So plan reads the live set and
//! every validator's proposals (through the provider's [`Validators`]), and apply of the
//! `clique` resource discards what consort does not want and votes until the live signers
//! are exactly the topology's validators ([`reconcile`]).

use super::control::Validators;
use super::liveness;
use super::votes::counted_signer;
use crate::crypto::Address;
use crate::parallel;
use crate::rpc::{self, CliqueProposal};
use crate::state::{Kind, State};
use crate::topology::{Role, Topology};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What the chain says against what the topology wants.
#[derive(Debug, Default, Clone)]
pub struct SignerDrift {
    /// The live signer set, as the answering validators report it (None: none answered).
    pub live: Option<BTreeSet<Address>>,
    /// Validators of the topology (already recorded as signers) missing from the live set.
    pub vote_in: Vec<(Address, String)>,
    /// Live signers that are no validator of the topology, with a label for messages.
    pub vote_out: Vec<(Address, String)>,
    /// Proposals pending on running validators: (node, proposal). consort discards its own
    /// once a vote has passed, so every pending proposal is stray.
    pub stray: Vec<(String, CliqueProposal)>,
    /// Live signers whose node answers now.
    pub online: usize,
    /// Live signers whose node answers now, or (of the topology) that the same apply
    /// brings back: those that can vote.
    pub recoverable: usize,
    /// Live signers of external members (other operators run them).
    pub external_live: usize,
    /// Votes this operator has cast (every one of its live signers proposes them) that wait
    /// for other operators' signers: (address, authorize, label). Not drift of ours.
    pub waiting: Vec<(Address, bool, String)>,
}

impl SignerDrift {
    pub fn is_empty(&self) -> bool {
        self.vote_in.is_empty() && self.vote_out.is_empty() && self.stray.is_empty()
    }

    pub fn needs_votes(&self) -> bool {
        !self.vote_in.is_empty() || !self.vote_out.is_empty()
    }

    /// Signers needed for a vote to pass: more than half of the live set.
    fn needed(&self) -> usize {
        self.live
            .as_ref()
            .map(|l| liveness::quorum(l.len()))
            .unwrap_or(1)
    }

    /// The plan line: `vote in …; vote out …; discard stray proposals on …`.
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        for (a, node) in &self.vote_in {
            parts.push(format!(
                "vote in {} ({node}: a validator of the topology that is not a live signer)",
                a.to_checksum()
            ));
        }
        for (a, why) in &self.vote_out {
            parts.push(format!("vote out {} ({why})", a.to_checksum()));
        }
        if !self.stray.is_empty() {
            let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (node, p) in &self.stray {
                by_node.entry(node).or_default().push(format!(
                    "{} {}",
                    if p.authorize { "add" } else { "remove" },
                    p.address.to_checksum()
                ));
            }
            let list: Vec<String> = by_node
                .into_iter()
                .map(|(n, ps)| format!("{n} ({})", ps.join(", ")))
                .collect();
            parts.push(format!("discard stray proposals on {}", list.join(", ")));
        }
        parts.join("; ")
    }

    /// Why apply could not make the live signers right, if it could not: too few of them
    /// can be online for a vote.
    pub fn refusal(&self) -> Option<String> {
        let n = self.live.as_ref()?.len();
        let need = self.needed();
        (self.needs_votes() && self.recoverable + self.external_live < need).then(|| {
            format!(
                "the live Clique signers differ from the topology ({}), but only {} of {n} \
                 signers are online and {} can be brought back; Clique needs {need} of {n} to \
                 change its signers. Bring the missing validators back first (or restore the \
                 topology that names them)",
                self.reason(),
                self.online,
                self.recoverable
            )
        })
    }
}

/// What one validator says: its signer set and pending proposals.
struct SignerView {
    node: String,
    signers: Vec<Address>,
    proposals: Vec<CliqueProposal>,
}

/// Every signer key state knows, by address → node: topology validators and departed ones.
fn signer_keys(st: &State) -> BTreeMap<Address, String> {
    st.resources
        .iter()
        .filter(|(_, r)| r.kind == Kind::SignerKey)
        .filter_map(|(addr, r)| {
            let node = addr.strip_prefix("key.signer.")?;
            let a = r
                .outputs
                .get("address")
                .and_then(Value::as_str)
                .and_then(rpc::parse_address)?;
            Some((a, node.to_string()))
        })
        .collect()
}

/// Compares the live chain, as `live` reads it, with `topology` and `st` (see
/// [`SignerDrift`]).
pub fn signer_drift(topology: &Topology, st: &State, live: &dyn Validators) -> SignerDrift {
    let specs = topology.nodes();
    let in_topology: BTreeSet<&str> = specs.iter().map(|n| n.name.as_str()).collect();
    let key_of = signer_keys(st);
    let counted = counted_signer(st);
    let mut desired = BTreeSet::new();
    let mut being_added = BTreeSet::new();
    for n in specs.iter().filter(|n| n.role == Role::Validator) {
        let Some(a) = st
            .output_str(&format!("key.signer.{}", n.name), "address")
            .and_then(rpc::parse_address)
        else {
            continue;
        };
        if counted(&n.name) {
            desired.insert(a);
        } else {
            // Its `signer.<n>` create votes it in; not this reconciliation's business.
            being_added.insert(a);
        }
    }

    // Signers of members other operators run: wanted, never ours to vote for alone.
    let external: BTreeMap<Address, String> = topology
        .external_members()
        .flat_map(|(m, e)| {
            e.signers.iter().enumerate().filter_map(move |(i, a)| {
                Some((
                    rpc::parse_address(a)?,
                    format!("{}-validator-{i} (external)", m.name),
                ))
            })
        })
        .collect();
    desired.extend(external.keys().copied());

    let recorded = live.recorded(st);
    let asked: Vec<&String> = recorded
        .iter()
        .filter(|n| key_of.values().any(|v| v == *n))
        .collect();
    let views: Vec<SignerView> = parallel::map(&asked, parallel::PROBE_CONCURRENCY, |n| {
        let (signers, proposals) = live.read(st, n)?;
        Some(SignerView {
            node: (*n).clone(),
            signers,
            proposals,
        })
    })
    .into_iter()
    .flatten()
    .collect();
    let mut d = SignerDrift::default();
    // The set most validators report (a node that lags may still show an older one).
    let mut counts: BTreeMap<BTreeSet<Address>, usize> = BTreeMap::new();
    for v in &views {
        *counts
            .entry(v.signers.iter().copied().collect())
            .or_default() += 1;
    }
    let Some(live_set) = counts.into_iter().max_by_key(|(_, c)| *c).map(|(s, _)| s) else {
        return d;
    };
    let answering: BTreeSet<&str> = views.iter().map(|v| v.node.as_str()).collect();
    d.external_live = live_set.iter().filter(|a| external.contains_key(a)).count();
    for a in &live_set {
        let node = key_of.get(a);
        let online = node.is_some_and(|n| answering.contains(n.as_str()));
        if online {
            d.online += 1;
        }
        // An online signer votes, even one leaving the topology (it votes itself out).
        if online
            || node.is_some_and(|n| {
                in_topology.contains(n.as_str()) && recorded.contains(n) && live.restartable(st, n)
            })
        {
            d.recoverable += 1;
        }
        if !desired.contains(a) && !being_added.contains(a) {
            let why = match node {
                Some(n) if in_topology.contains(n.as_str()) => {
                    format!("{n}: a validator of the topology whose signer is being removed")
                }
                Some(n) => format!("{n}: no longer a validator of the topology"),
                None if !external.is_empty() => {
                    "signer of no member of the topology (a removed external member's?)".to_string()
                }
                None => "no validator of this network has that key".to_string(),
            };
            d.vote_out.push((*a, why));
        }
    }
    for a in &desired {
        if !live_set.contains(a) {
            let label = key_of
                .get(a)
                .or_else(|| external.get(a))
                .cloned()
                .unwrap_or_default();
            d.vote_in.push((*a, label));
        }
    }
    if external.is_empty() {
        for v in views {
            for p in v.proposals {
                d.stray.push((v.node.clone(), p));
            }
        }
        d.live = Some(live_set);
        return d;
    }
    // Other operators vote too: a proposal of ours for a vote still needed is our vote,
    // not stray; a vote every one of our live signers has cast waits for the others.
    let ours_live: Vec<&SignerView> = views
        .iter()
        .filter(|v| {
            key_of
                .iter()
                .any(|(a, n)| n == &v.node && live_set.contains(a))
        })
        .collect();
    let needed: Vec<(Address, bool)> = d
        .vote_in
        .iter()
        .map(|(a, _)| (*a, true))
        .chain(d.vote_out.iter().map(|(a, _)| (*a, false)))
        .collect();
    for v in &views {
        for p in &v.proposals {
            if !needed.contains(&(p.address, p.authorize)) {
                d.stray.push((v.node.clone(), p.clone()));
            }
        }
    }
    let cast = |a: &Address, authorize: bool| {
        ours_live.iter().all(|v| {
            v.proposals
                .iter()
                .any(|p| p.address == *a && p.authorize == authorize)
        })
    };
    let need = liveness::quorum(live_set.len());
    let ours_are_majority = ours_live.len() >= need;
    let (vote_in, vote_out) = (
        std::mem::take(&mut d.vote_in),
        std::mem::take(&mut d.vote_out),
    );
    for (a, label) in vote_in {
        if !ours_are_majority && cast(&a, true) {
            d.waiting.push((a, true, label));
        } else {
            d.vote_in.push((a, label));
        }
    }
    for (a, label) in vote_out {
        if !ours_are_majority && cast(&a, false) {
            d.waiting.push((a, false, label));
        } else {
            d.vote_out.push((a, label));
        }
    }
    d.live = Some(live_set);
    d
}

/// A vote of the reconciliation: (label for messages, target, authorize).
pub type Vote<'a, E> = dyn Fn(&str, &Address, bool) -> Result<(), E> + 'a;

/// Reconciles the live signers: discards every stray proposal, votes the live signer set to
/// the topology's (with the provider's `vote`), checks the result and discards again;
/// returns the live signers. Refuses (`refuse(why)`) when too few signers are online to
/// vote, or when the signers still differ after voting. `snapshot` reads the current
/// state; `step` reports progress.
pub fn reconcile<E>(
    topology: &Topology,
    live: &dyn Validators,
    snapshot: &dyn Fn() -> State,
    step: &dyn Fn(String),
    vote: &Vote<E>,
    refuse: &dyn Fn(String) -> E,
) -> Result<Vec<String>, E> {
    let discard = |d: &SignerDrift, st: &State| {
        parallel::map(&d.stray, parallel::PROBE_CONCURRENCY, |(node, p)| {
            live.discard(st, node, &p.address)
        });
    };
    let st = snapshot();
    let d = signer_drift(topology, &st, live);
    if let Some(why) = d.refusal() {
        return Err(refuse(why));
    }
    if !d.stray.is_empty() {
        step(format!(
            "discard stray proposals on {}",
            d.stray
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        discard(&d, &st);
    }
    for (a, why) in &d.vote_out {
        let label = match why.split_once(':') {
            Some((node, _)) => node.to_string(),
            None => a.to_checksum(),
        };
        vote(&label, a, false)?;
    }
    for (a, node) in &d.vote_in {
        vote(node, a, true)?;
    }
    let st = snapshot();
    let after = signer_drift(topology, &st, live);
    discard(&after, &st);
    if after.needs_votes() {
        return Err(refuse(format!(
            "the live Clique signers still differ from the topology after voting: {}; run apply again",
            after.reason()
        )));
    }
    Ok(after
        .live
        .iter()
        .flatten()
        .map(|a| a.to_checksum())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::control::{CliqueView, GovError, NodeControl};
    use crate::state::ResourceState;
    use serde_json::json;
    use std::sync::Mutex;

    /// A chain as every answering validator sees it: one signer set, proposals per node.
    struct Chain {
        nodes: Vec<String>,
        down: BTreeSet<String>,
        signers: Mutex<Vec<Address>>,
        proposals: Mutex<BTreeMap<String, Vec<CliqueProposal>>>,
        discarded: Mutex<Vec<String>>,
    }

    struct Node<'a> {
        chain: &'a Chain,
        name: String,
    }

    impl NodeControl for Node<'_> {
        fn signers(&self) -> Result<Vec<Address>, GovError> {
            Ok(self.chain.signers.lock().unwrap().clone())
        }
        fn clique_view(&self) -> Result<CliqueView, GovError> {
            let proposals = self.chain.proposals.lock().unwrap();
            Ok((
                self.signers()?,
                proposals.get(&self.name).cloned().unwrap_or_default(),
            ))
        }
        fn propose(&self, _: &Address, _: bool) -> Result<(), GovError> {
            Ok(())
        }
        fn discard(&self, target: &Address) -> Result<(), GovError> {
            let mut proposals = self.chain.proposals.lock().unwrap();
            proposals
                .entry(self.name.clone())
                .or_default()
                .retain(|p| p.address != *target);
            self.chain.discarded.lock().unwrap().push(self.name.clone());
            Ok(())
        }
    }

    impl Validators for Chain {
        fn recorded(&self, _: &State) -> BTreeSet<String> {
            self.nodes.iter().cloned().collect()
        }
        fn node_control<'a>(&'a self, _: &State, node: &str) -> Option<Box<dyn NodeControl + 'a>> {
            (!self.down.contains(node)).then(|| {
                Box::new(Node {
                    chain: self,
                    name: node.to_string(),
                }) as Box<dyn NodeControl>
            })
        }
    }

    fn addr(b: u8) -> Address {
        Address([b; 20])
    }

    /// three-members.yaml (one validator each) with the signer keys recorded, plus the key
    /// of a validator that left the topology (`gone-validator-0`).
    fn setup(down: &[&str]) -> (Topology, State, Chain) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-members.yaml");
        let topology = crate::topology::validate::load(&path).unwrap().topology;
        let nodes = [
            "contoso-validator-0",
            "fabrikam-validator-0",
            "northwind-validator-0",
            "gone-validator-0",
        ];
        let mut st = State::new("three-members", "local");
        for (i, n) in nodes.iter().enumerate() {
            st.resources.insert(
                format!("key.signer.{n}"),
                ResourceState {
                    kind: Kind::SignerKey,
                    attrs: json!({}),
                    outputs: json!({ "address": rpc::hex_address(&addr(i as u8 + 1)) }),
                    deps: vec![],
                },
            );
        }
        // Live: contoso, fabrikam and the departed one sign; northwind is missing; a stray
        // proposal to add a stranger waits on contoso's validator.
        let chain = Chain {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            down: down.iter().map(|n| n.to_string()).collect(),
            signers: Mutex::new(vec![addr(1), addr(2), addr(4)]),
            proposals: Mutex::new(
                [(
                    "contoso-validator-0".to_string(),
                    vec![CliqueProposal {
                        address: addr(9),
                        authorize: true,
                    }],
                )]
                .into(),
            ),
            discarded: Mutex::default(),
        };
        (topology, st, chain)
    }

    #[test]
    fn drift_names_the_votes_and_stray_proposals_and_reconcile_converges() {
        let (topology, st, chain) = setup(&[]);
        let d = signer_drift(&topology, &st, &chain);
        assert_eq!(d.vote_in, [(addr(3), "northwind-validator-0".to_string())]);
        assert_eq!(d.vote_out.len(), 1);
        assert_eq!(d.vote_out[0].0, addr(4));
        assert!(d.vote_out[0]
            .1
            .starts_with("gone-validator-0: no longer a validator"));
        assert_eq!(d.stray.len(), 1);
        assert_eq!((d.online, d.recoverable), (3, 3));
        assert_eq!(d.refusal(), None);

        let votes = Mutex::new(Vec::new());
        let vote = |label: &str, a: &Address, authorize: bool| -> Result<(), String> {
            let mut signers = chain.signers.lock().unwrap();
            signers.retain(|s| s != a);
            if authorize {
                signers.push(*a);
            }
            votes.lock().unwrap().push((label.to_string(), authorize));
            Ok(())
        };
        let steps = Mutex::new(Vec::new());
        let live = reconcile(
            &topology,
            &chain,
            &|| st.clone(),
            &|s| steps.lock().unwrap().push(s),
            &vote,
            &|why| why,
        )
        .unwrap();
        // Out first (the departed validator), then in.
        assert_eq!(
            *votes.lock().unwrap(),
            [
                ("gone-validator-0".to_string(), false),
                ("northwind-validator-0".to_string(), true)
            ]
        );
        assert_eq!(*chain.discarded.lock().unwrap(), ["contoso-validator-0"]);
        assert_eq!(
            *steps.lock().unwrap(),
            ["discard stray proposals on contoso-validator-0"]
        );
        let mut want: Vec<String> = [1, 2, 3].map(|b| addr(b).to_checksum()).into();
        want.sort();
        let mut live = live;
        live.sort();
        assert_eq!(live, want);
        assert!(signer_drift(&topology, &st, &chain).is_empty());
    }

    #[test]
    fn too_few_signers_online_to_vote_is_refused_before_anything_is_sent() {
        // Of the three live signers only the departed one answers: Clique needs 2 of 3.
        let (topology, st, chain) = setup(&["contoso-validator-0", "fabrikam-validator-0"]);
        let voted = Mutex::new(0);
        let err = reconcile(
            &topology,
            &chain,
            &|| st.clone(),
            &|_| {},
            &|_, _, _| -> Result<(), String> {
                *voted.lock().unwrap() += 1;
                Ok(())
            },
            &|why| why,
        )
        .unwrap_err();
        assert!(err.contains("only 1 of 3 signers are online"), "{err}");
        assert!(err.contains("Clique needs 2 of 3"), "{err}");
        assert_eq!(*voted.lock().unwrap(), 0);
        assert!(chain.discarded.lock().unwrap().is_empty());
    }
}
