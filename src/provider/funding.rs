//! Funding accounts added after genesis: a transfer from the funding account, for every
//! provider (it talks JSON-RPC to whichever node the provider names). Not a consensus
//! rule: any node that takes transactions will do.
//!
//! Idempotent, so an interrupted apply resumes by running again: a funding transfer is
//! skipped when the recipient already holds the amount (a fresh account starts at zero, so
//! that means an earlier run's transfer was mined), and awaited, not sent again, when an
//! earlier run's transfer still waits in the pool (see [`earlier_transfer`]).

use super::ProviderError;
use crate::crypto::tx::LegacyTx;
use crate::crypto::{Address, SecretKey};
use crate::rpc::{self, BlockId, RpcClient, RpcError};
use crate::state::ResourceState;
use crate::topology::Wei;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Why a funding transfer was not made: the node's answer, or what went wrong (refused
/// before sending, mined but failed, not mined in time).
#[derive(Debug, thiserror::Error)]
pub enum FundingError {
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Failed(String),
}

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
) -> Result<Option<String>, FundingError> {
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
        return Err(FundingError::Failed(format!(
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
) -> Result<(), FundingError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = rpc.eth_get_transaction_receipt(hash)? {
            if !r.success {
                return Err(FundingError::Failed(format!(
                    "funding transfer {hash} to {to_name} was mined in block {} but failed",
                    r.block_number
                )));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FundingError::Failed(format!(
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
