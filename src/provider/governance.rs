//! Changing a running consortium through the chain itself: Clique votes and funding
//! transfers. Provider-independent: it talks JSON-RPC to whichever nodes the provider names.
//!
//! Both are idempotent, so an interrupted change resumes by running again:
//! - a vote that already took effect is only cleaned up (`clique_discard`); proposals are
//!   re-sent every time (geth forgets them on restart);
//! - a funding transfer is skipped when the recipient already holds the amount (a fresh
//!   account starts at zero, so that means an earlier run's transfer was mined).

use super::events::{Event, EventSink};
use crate::crypto::tx::LegacyTx;
use crate::crypto::{Address, SecretKey};
use crate::rpc::{BlockId, RpcClient, RpcError};
use crate::topology::Wei;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum GovError {
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Timeout(String),
}

/// A signer node that can propose: its name (for messages), RPC and signer address.
#[derive(Debug, Clone)]
pub struct SignerNode {
    pub name: String,
    pub rpc: RpcClient,
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
            match c.rpc.clique_get_signers() {
                Ok(s) => return Ok(sorted(s)),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => GovError::Rpc(e),
            None => GovError::Refused("no signer node to ask for the signer set".into()),
        })
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
    for p in &proposers {
        match p.rpc.clique_propose(&target, authorize) {
            Ok(()) => proposed.push(p.name.clone()),
            Err(e) => failures.push(format!("{}: {e}", p.name)),
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
    loop {
        let now = observe()?;
        if done(&now) {
            break;
        }
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
        std::thread::sleep(Duration::from_millis(200));
    }
    discard(&proposers, target);
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

/// Drops pending proposals about `target` (best effort: a node that is down has none).
fn discard(nodes: &[&SignerNode], target: Address) {
    for n in nodes {
        let _ = n.rpc.clique_discard(&target);
    }
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
    let have = rpc.eth_get_balance(&to, BlockId::Latest)?;
    if have >= amount.0 {
        return Ok(None);
    }
    let from = funder.address();
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
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = rpc.eth_get_transaction_receipt(&hash)? {
            if !r.success {
                return Err(GovError::Refused(format!(
                    "funding transfer {hash} to {to_name} was mined in block {} but failed",
                    r.block_number
                )));
            }
            return Ok(Some(hash));
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
