//! Live Clique reconciliation: the chain's signer set and pending proposals against the
//! topology. State alone cannot tell: a `member add` killed after its proposals went out
//! leaves them pending on the validators, and they take effect later whatever state says.
//! So plan reads the live set and every validator's proposals (`refresh`), and apply of the
//! `clique` resource discards what consort does not want and votes until the live signers
//! are exactly the topology's validators.

use super::*;

/// The one resource of kind [`Kind::CliqueSigners`].
pub(super) const CLIQUE_ADDR: &str = "clique";

/// What the chain says against what the topology wants.
#[derive(Debug, Default, Clone)]
pub(super) struct SignerDrift {
    /// The live signer set, as the answering validators report it (None: none answered).
    pub live: Option<BTreeSet<Address>>,
    /// Validators of the topology (already recorded as signers) missing from the live set.
    pub vote_in: Vec<(Address, String)>,
    /// Live signers that are no validator of the topology, with a label for messages.
    pub vote_out: Vec<(Address, String)>,
    /// Proposals pending on running validators: (node, proposal). consort discards its own
    /// once a vote has passed, so every pending proposal is stray.
    pub stray: Vec<(String, rpc::CliqueProposal)>,
    /// Live signers whose node answers now.
    pub online: usize,
    /// Live signers whose node this network can run (in the topology and in state), so a
    /// restart in the same apply brings them back for the vote.
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

    fn needs_votes(&self) -> bool {
        !self.vote_in.is_empty() || !self.vote_out.is_empty()
    }

    /// Signers needed for a vote to pass: more than half of the live set.
    fn needed(&self) -> usize {
        self.live.as_ref().map(|l| l.len() / 2 + 1).unwrap_or(1)
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
    proposals: Vec<rpc::CliqueProposal>,
}

/// Compares the live chain with `topology` and `st` (see [`SignerDrift`]).
pub(super) fn signer_drift(topology: &Topology, st: &State) -> SignerDrift {
    let specs = topology.nodes();
    let in_topology: BTreeSet<&str> = specs.iter().map(|n| n.name.as_str()).collect();
    // Every signer key state knows, by address: topology validators and departed ones.
    let mut key_of: BTreeMap<Address, String> = BTreeMap::new();
    for (addr, r) in &st.resources {
        if r.kind != Kind::SignerKey {
            continue;
        }
        let Some(node) = addr.strip_prefix("key.signer.") else {
            continue;
        };
        if let Some(a) = r
            .outputs
            .get("address")
            .and_then(Value::as_str)
            .and_then(rpc::parse_address)
        {
            key_of.insert(a, node.to_string());
        }
    }
    let any_signer_record = st.resources.keys().any(|k| k.starts_with("signer."));
    let mut desired = BTreeSet::new();
    let mut being_added = BTreeSet::new();
    for n in specs.iter().filter(|n| n.role == Role::Validator) {
        let Some(a) = st
            .output_str(&format!("key.signer.{}", n.name), "address")
            .and_then(rpc::parse_address)
        else {
            continue;
        };
        if !any_signer_record || st.resources.contains_key(&format!("signer.{}", n.name)) {
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

    let recorded: BTreeMap<String, NodeOutputs> = recorded_nodes(st).into_iter().collect();
    let validators: BTreeSet<&String> = key_of.values().collect();
    let asked: Vec<(&String, &NodeOutputs)> = recorded
        .iter()
        .filter(|(n, o)| validators.contains(n) && o.is_running())
        .collect();
    let views: Vec<SignerView> = parallel::map(&asked, parallel::PROBE_CONCURRENCY, |(n, o)| {
        let rpc = o.control().with_timeout(PROBE_TIMEOUT);
        Some(SignerView {
            node: (*n).clone(),
            signers: rpc.clique_get_signers().ok()?,
            proposals: rpc.clique_proposals().ok()?,
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
    let Some(live) = counts.into_iter().max_by_key(|(_, c)| *c).map(|(s, _)| s) else {
        return d;
    };
    let answering: BTreeSet<&str> = views.iter().map(|v| v.node.as_str()).collect();
    d.external_live = live.iter().filter(|a| external.contains_key(a)).count();
    for a in &live {
        let node = key_of.get(a);
        if node.is_some_and(|n| answering.contains(n.as_str())) {
            d.online += 1;
        }
        if node.is_some_and(|n| in_topology.contains(n.as_str()) && recorded.contains_key(n)) {
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
        if !live.contains(a) {
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
        d.live = Some(live);
        return d;
    }
    // Other operators vote too: a proposal of ours for a vote still needed is our vote,
    // not stray; a vote every one of our live signers has cast waits for the others.
    let ours_live: Vec<&SignerView> = views
        .iter()
        .filter(|v| key_of.iter().any(|(a, n)| n == &v.node && live.contains(a)))
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
    let need = live.len() / 2 + 1;
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
    d.live = Some(live);
    d
}

impl LocalProvider {
    /// Applies the `clique` resource: discards every pending proposal, votes the live set
    /// to the topology's, checks the result and discards again.
    pub(super) fn reconcile_signers(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        if change.action == Action::Destroy {
            return Ok(None);
        }
        let signers = self.reconcile_live(ctx)?;
        Ok(Some(ResourceState {
            kind: Kind::CliqueSigners,
            attrs: change.after.clone().unwrap_or(json!({})),
            outputs: json!({ "signers": signers }),
            deps: change.deps.clone(),
        }))
    }

    /// Discards every pending proposal, votes the live signer set to the topology's,
    /// checks the result and discards again; returns the live signers.
    pub(super) fn reconcile_live(&self, ctx: &ApplyCtx) -> Result<Vec<String>, ProviderError> {
        let addr = CLIQUE_ADDR;
        let discard = |d: &SignerDrift, st: &State| {
            for (node, p) in &d.stray {
                if let Some(o) = NodeOutputs::from_state(st, node) {
                    let _ = o
                        .control()
                        .with_timeout(PROBE_TIMEOUT)
                        .clique_discard(&p.address);
                }
            }
        };
        let st = ctx.snapshot();
        let d = signer_drift(ctx.topology, &st);
        if let Some(why) = d.refusal() {
            return Err(ProviderError::at(addr, why));
        }
        if !d.stray.is_empty() {
            step(ctx, CLIQUE_ADDR, "discard stray proposals");
            discard(&d, &st);
        }
        for (a, why) in &d.vote_out {
            let label = match why.split_once(':') {
                Some((node, _)) => node.to_string(),
                None => a.to_checksum(),
            };
            self.vote(ctx, addr, &label, &rpc::hex_address(a), false)?;
        }
        for (a, node) in &d.vote_in {
            self.vote(ctx, addr, node, &rpc::hex_address(a), true)?;
        }
        let st = ctx.snapshot();
        let after = signer_drift(ctx.topology, &st);
        discard(&after, &st);
        if after.needs_votes() {
            return Err(ProviderError::at(
                addr,
                format!(
                    "the live Clique signers still differ from the topology after voting: {}; run apply again",
                    after.reason()
                ),
            ));
        }
        Ok(after
            .live
            .iter()
            .flatten()
            .map(|a| a.to_checksum())
            .collect())
    }
}
