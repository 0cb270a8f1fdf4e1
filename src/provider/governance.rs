//! Changing a running consortium through the chain itself: Clique votes and funding
//! transfers. Provider-independent: it talks JSON-RPC to whichever nodes the provider names.
//!
//! Both are idempotent, so an interrupted change resumes by running again:
//! - a vote that already took effect is only cleaned up (`clique_discard`); proposals are
//!   re-sent every time (geth forgets them on restart);
//! - a funding transfer is skipped when the recipient already holds the amount (a fresh
//!   account starts at zero, so that means an earlier run's transfer was mined), and
//!   awaited, not sent again, when an earlier run's transfer still waits in the pool
//!   (see [`earlier_transfer`]).

use super::ProviderError;
use crate::crypto::tx::LegacyTx;
use crate::crypto::{Address, SecretKey};
use crate::events::{Event, EventSink};
use crate::rpc::{self, BlockId, RpcClient, RpcError};
use crate::state::ResourceState;
use crate::topology::Wei;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Who pays whom for a `fund.<member>.<account>` change, read from its attributes and state.
pub struct Funding {
    pub member: String,
    pub name: String,
    /// `<member>/<account>` of the funding account, and its member.
    pub funder: String,
    pub funder_member: String,
    pub key: SecretKey,
    pub to: Address,
    pub amount: Wei,
}

/// Resolves a funding change: the recipient's address and the funder's key (its 0600 key
/// file under the state directory). Errors say what is missing.
pub fn funding_parties(
    change: &crate::plan::Change,
    st: &crate::state::State,
) -> Result<Funding, String> {
    let attrs = change.after.clone().unwrap_or_default();
    let get = |k: &str| {
        attrs
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let (member, name, funder) = (get("member"), get("name"), get("from"));
    let amount: u128 = get("balance")
        .parse()
        .map_err(|_| "balance is not a number".to_string())?;
    let (fm, fa) = funder
        .split_once('/')
        .ok_or("no funding account; set `network.funding_account: <member>/<account>`")?;
    let to = st
        .output_str(&format!("account.{member}.{name}"), "address")
        .and_then(crate::rpc::parse_address)
        .ok_or_else(|| format!("account.{member}.{name} has no address in state"))?;
    let key_file = st
        .output_str(&format!("account.{fm}.{fa}"), "key_file")
        .ok_or_else(|| format!("account.{fm}.{fa} has no key file in state"))?;
    let key_hex = std::fs::read_to_string(key_file)
        .map_err(|e| format!("cannot read the funding key {key_file}: {e}"))?;
    let key = SecretKey::from_hex(key_hex.trim())
        .map_err(|_| format!("{key_file} does not hold a valid key"))?;
    Ok(Funding {
        funder_member: fm.to_string(),
        member,
        name,
        funder,
        key,
        to,
        amount: Wei(amount),
    })
}

/// What a `signer.<n>` change is about: its node, whether genesis authorised it, and the
/// signer's address (from its key, else from what the resource recorded).
pub struct SignerChange {
    pub node: String,
    pub in_genesis: bool,
    pub address: Option<String>,
}

/// Which validators state counts as signers: once any `signer.<n>` is recorded, those
/// recorded (the others wait for their vote in); before that (a new chain), every one.
pub fn counted_signer(st: &crate::state::State) -> impl Fn(&str) -> bool + '_ {
    let any_record = st.resources.keys().any(|k| k.starts_with("signer."));
    move |node| !any_record || st.resources.contains_key(&format!("signer.{node}"))
}

pub fn signer_change(change: &crate::plan::Change, st: &crate::state::State) -> SignerChange {
    let attrs = change
        .after
        .as_ref()
        .or(change.before.as_ref())
        .cloned()
        .unwrap_or_default();
    let node = attrs
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let address = st
        .output_str(&format!("key.signer.{node}"), "address")
        .map(str::to_string)
        .or_else(|| {
            st.resources
                .get(&change.addr)
                .and_then(|r| r.outputs.get("address"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    SignerChange {
        in_genesis: attrs
            .get("genesis")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        node,
        address,
    }
}

/// A `signer.<n>` change around the provider's vote: an Update keeps what state has; a
/// genesis signer is only recorded; a Create votes it in; a Destroy votes it out when its
/// node left the topology (one still in it goes away with the whole network, `destroy`: no
/// vote). `vote(node, address, authorize)` returns how the signer got in (`"vote"`, ...).
pub fn apply_signer(
    change: &crate::plan::Change,
    st: &crate::state::State,
    topology: &crate::topology::Topology,
    vote: impl FnOnce(&str, &str, bool) -> Result<&'static str, ProviderError>,
) -> Result<Option<ResourceState>, ProviderError> {
    use crate::state::{Action, Kind};
    let addr = change.addr.as_str();
    let SignerChange {
        node,
        in_genesis,
        address,
    } = signer_change(change, st);
    let record = |outputs: Value| ResourceState {
        kind: Kind::Signer,
        attrs: change.after.clone().unwrap_or(json!({})),
        outputs,
        deps: change.deps.clone(),
    };
    match change.action {
        Action::Update => Ok(st.resources.get(addr).cloned()),
        Action::Create | Action::Replace if in_genesis => Ok(Some(record(
            json!({ "address": address, "via": "genesis" }),
        ))),
        Action::Create | Action::Replace => {
            let a = address.ok_or_else(|| {
                ProviderError::at(addr, format!("key.signer.{node} has no address in state"))
            })?;
            let via = vote(&node, &a, true)?;
            Ok(Some(record(json!({ "address": a, "via": via }))))
        }
        Action::Destroy => {
            let removed = topology.nodes().iter().all(|n| n.name != node);
            if let (true, Some(a)) = (removed, address) {
                vote(&node, &a, false)?;
            }
            Ok(None)
        }
    }
}

/// A `fund.<member>.<account>` change: a transfer from the funding account through the
/// node `rpc_for` picks (a transfer cannot be undone: a Destroy only forgets it).
pub fn apply_funding(
    ctx: &super::ApplyCtx,
    change: &crate::plan::Change,
    rpc_for: impl FnOnce(&Funding, &crate::state::State) -> Result<RpcClient, ProviderError>,
) -> Result<Option<ResourceState>, ProviderError> {
    use crate::state::{Action, Kind};
    let addr = change.addr.as_str();
    let st = ctx.snapshot();
    match change.action {
        Action::Destroy => return Ok(None),
        Action::Update => return Ok(st.resources.get(addr).cloned()),
        Action::Create | Action::Replace => {}
    }
    let f = funding_parties(change, &st).map_err(|m| ProviderError::at(addr, m))?;
    let rpc = rpc_for(&f, &st)?;
    // tx_hash is null when an earlier, interrupted run's transfer had already landed.
    let hash = fund(
        &rpc,
        ctx.topology.network.chain_id,
        &f.funder,
        &f.key,
        &format!("{}/{}", f.member, f.name),
        f.to,
        f.amount,
        ctx.health_timeout,
    )
    .map_err(|e| ProviderError::at(addr, e.to_string()))?;
    Ok(Some(ResourceState {
        kind: Kind::Funding,
        attrs: change.after.clone().unwrap_or(json!({})),
        outputs: json!({ "tx_hash": hash, "from": rpc::hex_address(&f.key.address()) }),
        deps: change.deps.clone(),
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum GovError {
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Timeout(String),
}

/// How consort reaches a signer's Clique API: geth's IPC socket locally
/// ([`RpcClient`]), VM Run Command on Azure. The vote rules below are the same for both.
pub trait CliqueControl: Send + Sync {
    fn signers(&self) -> Result<Vec<Address>, GovError>;
    fn propose(&self, target: &Address, authorize: bool) -> Result<(), GovError>;
    fn discard(&self, target: &Address) -> Result<(), GovError>;
    /// The signers whose vote about `target` (`authorize`) is on chain now, when this
    /// channel can tell at every poll (over IPC; not by Run Command, which takes seconds).
    fn voters(&self, _target: &Address, _authorize: bool) -> Option<BTreeSet<Address>> {
        None
    }
    /// How long to wait between two looks at the signer set (a Run Command takes seconds).
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(200)
    }
}

impl CliqueControl for RpcClient {
    fn signers(&self) -> Result<Vec<Address>, GovError> {
        Ok(self.clique_get_signers()?)
    }
    fn propose(&self, target: &Address, authorize: bool) -> Result<(), GovError> {
        Ok(self.clique_propose(target, authorize)?)
    }
    fn discard(&self, target: &Address) -> Result<(), GovError> {
        Ok(self.clique_discard(target)?)
    }
    fn voters(&self, target: &Address, authorize: bool) -> Option<BTreeSet<Address>> {
        let snapshot = self.call_raw("clique_getSnapshot", json!([null])).ok()?;
        Some(snapshot_voters(&snapshot, target, authorize))
    }
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
    pub control: std::sync::Arc<dyn CliqueControl>,
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
    let need = signers.len() / 2 + 1;
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

/// [`vote`] as a change of an apply: with its timeout (`--timeout`) and events.
pub fn vote_in_apply(
    ctx: &super::ApplyCtx,
    candidates: &[SignerNode],
    target: Address,
    authorize: bool,
    subject: &str,
) -> Result<Vec<String>, GovError> {
    let t = ctx.health_timeout;
    vote(candidates, target, authorize, t, subject, &ctx.events)
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
    let needed = signers.len() / 2 + 1;
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
/// read at every poll (`CliqueControl::voters`):
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

/// Transfers `amount` from `funder` to `to` through `rpc`, waiting for the receipt.
/// Skipped when `to` already holds at least `amount`. Refuses, before sending, when the
/// funder cannot cover amount + fee. Returns the transaction hash (None when skipped).
#[allow(clippy::too_many_arguments)]
pub fn fund(
    rpc: &RpcClient,
    chain_id: u64,
    funder_name: &str,
    funder: &SecretKey,
    to_name: &str,
    to: Address,
    amount: Wei,
    timeout: Duration,
) -> Result<Option<String>, GovError> {
    let from = funder.address();
    // One transfer at a time per process: parallel fundings from one account would read
    // the same pending nonce and replace each other in the pool.
    static SENDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let sending = SENDING.lock().unwrap_or_else(|p| p.into_inner());
    match earlier_transfer(rpc, &from, &to, amount.0)? {
        EarlierTransfer::Mined => return Ok(None),
        EarlierTransfer::Pending(hash) => {
            drop(sending);
            wait_mined(rpc, &hash, to_name, timeout)?;
            return Ok(Some(hash));
        }
        EarlierTransfer::None => {}
    }
    let gas: u64 = 21_000;
    // Pay well above the base fee so the transfer is never stuck behind it.
    let gas_price = rpc.eth_gas_price()?.saturating_mul(2).max(1_000_000_000);
    let fee = gas_price.saturating_mul(gas as u128);
    let balance = rpc.eth_get_balance(&from, BlockId::Latest)?;
    if balance < amount.0.saturating_add(fee) {
        return Err(GovError::Refused(format!(
            "funding account {funder_name} ({from}) holds {} and cannot cover {} for {to_name} \
             plus the fee; fund it, lower the balance, or name another funding account with \
             network.funding_account",
            Wei(balance),
            amount
        )));
    }
    let nonce = rpc.eth_get_pending_nonce(&from)?;
    let tx = LegacyTx {
        chain_id,
        nonce,
        gas_price,
        gas,
        to: Some(to),
        value: amount.0,
        data: vec![],
    }
    .sign(funder);
    let hash = match rpc.eth_send_raw_transaction(&tx.raw_hex()) {
        Ok(h) => h,
        // An earlier, interrupted run may have sent exactly this transaction.
        Err(RpcError::Node { message, .. }) if message.contains("already known") => tx.hash_hex(),
        Err(e) => return Err(e.into()),
    };
    // Sent: the pool now holds the nonce, the next sender reads the one after it.
    drop(sending);
    wait_mined(rpc, &hash, to_name, timeout)?;
    Ok(Some(hash))
}

/// What an earlier, interrupted run may already have done about a transfer of `amount`
/// from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlierTransfer {
    /// The recipient (a fresh account) already holds the amount: it was mined.
    Mined,
    /// Sent and still in the transaction pool (its hash): wait for it, never send another
    /// (a second one would get the next nonce and be mined too: funded twice).
    Pending(String),
    /// Nothing: send it.
    None,
}

/// Looks at the recipient's balance, then at the funder's transactions in `rpc`'s pool
/// (`txpool_contentFrom`) for one to `to` of exactly `amount`.
pub fn earlier_transfer(
    rpc: &RpcClient,
    from: &Address,
    to: &Address,
    amount: u128,
) -> Result<EarlierTransfer, RpcError> {
    if already_funded(rpc.eth_get_balance(to, BlockId::Latest)?, amount) {
        return Ok(EarlierTransfer::Mined);
    }
    let pool = rpc.call_raw("txpool_contentFrom", json!([rpc::hex_address(from)]))?;
    Ok(pooled_transfer(&pool, to, amount)
        .map(EarlierTransfer::Pending)
        .unwrap_or(EarlierTransfer::None))
}

/// Whether a fresh account holding `held` got its funding of `amount` already (the one
/// rule plan and apply both use).
pub fn already_funded(held: u128, amount: u128) -> bool {
    held >= amount
}

/// The hash of a transaction to `to` of `amount` in a `txpool_contentFrom` answer
/// (`{"pending": {nonce: tx}, "queued": {nonce: tx}}`).
fn pooled_transfer(pool: &Value, to: &Address, amount: u128) -> Option<String> {
    ["pending", "queued"]
        .iter()
        .filter_map(|section| pool.get(section).and_then(Value::as_object))
        .flat_map(|txs| txs.values())
        .find(|tx| {
            tx.get("to")
                .and_then(Value::as_str)
                .and_then(rpc::parse_address)
                == Some(*to)
                && tx
                    .get("value")
                    .and_then(Value::as_str)
                    .and_then(rpc::parse_quantity_u128)
                    == Some(amount)
        })
        .and_then(|tx| tx.get("hash").and_then(Value::as_str).map(String::from))
}

/// Waits (up to `timeout`) for `hash` to be mined successfully.
fn wait_mined(
    rpc: &RpcClient,
    hash: &str,
    to_name: &str,
    timeout: Duration,
) -> Result<(), GovError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = rpc.eth_get_transaction_receipt(hash)? {
            if !r.success {
                return Err(GovError::Refused(format!(
                    "funding transfer {hash} to {to_name} was mined in block {} but failed",
                    r.block_number
                )));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(GovError::Timeout(format!(
                "funding transfer {hash} to {to_name} not mined after {timeout:?}; are blocks \
                 being sealed? (`consort status`)"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signer's Clique API as a log of what was asked, with the chain's votes given.
    struct Fake {
        voted: BTreeSet<Address>,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl CliqueControl for Fake {
        fn signers(&self) -> Result<Vec<Address>, GovError> {
            Ok(vec![])
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
    fn a_pooled_transfer_is_found_by_recipient_and_exact_amount() {
        let to = rpc::parse_address("0xf4f7e1f4eeb084394c1edaae9dde59fb590f21a9").unwrap();
        let other = rpc::parse_address("0x150d3f7209ab68efd96e71db61577d1395bb1a41").unwrap();
        // The shape of geth 1.13's txpool_contentFrom (fields trimmed).
        let pool = json!({
            "pending": {
                "0": {"to": "0x150D3F7209ab68efD96E71dB61577d1395BB1A41",
                      "value": "0x6124fee993bc0000", "hash": "0xaa"},
                "1": {"to": "0xF4F7e1F4eEb084394c1EdAAE9Dde59Fb590f21A9",
                      "value": "0x6124fee993bc0000", "hash": "0xbb"}
            },
            "queued": {}
        });
        let seven = 7_000_000_000_000_000_000u128;
        assert_eq!(pooled_transfer(&pool, &to, seven).as_deref(), Some("0xbb"));
        assert_eq!(
            pooled_transfer(&pool, &other, seven).as_deref(),
            Some("0xaa")
        );
        assert_eq!(pooled_transfer(&pool, &to, seven + 1), None);
        let queued = json!({"pending": {}, "queued": {"5": pool["pending"]["1"].clone()}});
        assert_eq!(
            pooled_transfer(&queued, &to, seven).as_deref(),
            Some("0xbb")
        );
        assert_eq!(
            pooled_transfer(&json!({"pending": {}, "queued": {}}), &to, seven),
            None
        );
    }
}
