//! Transactions the pool holds that the validators do not seal: read from a node's
//! `txpool_content`, timed from when consort first saw each one, and reported by
//! `status`, `plan` and the dashboard once pending for more than [`STUCK_PERIODS`] block
//! periods, with the reason (tip below the floor, fee cap below the base fee, nonce gap,
//! insufficient funds).
//!
//! geth keeps no arrival time, so first sightings are kept beside state
//! (`<state dir>/txpool-seen.json`, hashes and times only): `status` run twice a few
//! periods apart reports what the first run saw.

use super::{Health, StuckTx};
use crate::rpc::{self, parse_quantity, parse_quantity_u128, BlockId, RpcClient};
use crate::state::StateDir;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The smallest priority fee (tip) the pool accepts and the validators seal, in wei
/// (`--txpool.pricelimit`, `--miner.gasprice`; `--txpool.nolocals` so a node's own RPC
/// clients get no exemption).
pub const MIN_TIP_WEI: u128 = 1;
/// A transaction pending for more block periods than this is reported.
pub const STUCK_PERIODS: u64 = 3;
/// File of first sightings, in the state directory.
pub const SEEN_FILE: &str = "txpool-seen.json";

/// One transaction in a pool, with what decides whether it can be sealed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTx {
    pub hash: String,
    pub from: String,
    pub nonce: u64,
    /// maxPriorityFeePerGas (gasPrice for a legacy transaction).
    pub tip_cap: u128,
    /// maxFeePerGas (gasPrice for a legacy transaction).
    pub fee_cap: u128,
    pub gas: u64,
    pub value: u128,
    /// In the pool's `queued` part (not executable: a nonce gap or unpayable).
    pub queued: bool,
    /// The sender's next nonce and balance at the head.
    pub account_nonce: u64,
    pub balance: u128,
    /// Base fee of the head block.
    pub base_fee: u128,
}

impl PoolTx {
    /// The tip it pays at the current base fee.
    pub fn effective_tip(&self) -> u128 {
        self.tip_cap.min(self.fee_cap.saturating_sub(self.base_fee))
    }

    /// Why the validators do not seal it now (None: nothing in the transaction itself
    /// stops them).
    pub fn reason(&self) -> Option<String> {
        if self.nonce > self.account_nonce {
            return Some(format!(
                "nonce gap: its nonce is {}, but the account's next nonce is {} (nonce(s) {}..{} were never sent)",
                self.nonce,
                self.account_nonce,
                self.account_nonce,
                self.nonce - 1
            ));
        }
        let cost = (self.gas as u128)
            .saturating_mul(self.fee_cap)
            .saturating_add(self.value);
        if cost > self.balance {
            return Some(format!(
                "insufficient funds: it may cost {cost} wei (gas × max fee + value), the account holds {} wei",
                self.balance
            ));
        }
        if self.tip_cap < MIN_TIP_WEI {
            return Some(format!(
                "tip {} wei is below the validators' floor of {MIN_TIP_WEI} wei: they never seal it; send a replacement (same nonce) with a tip of at least {MIN_TIP_WEI} wei",
                self.tip_cap
            ));
        }
        if self.fee_cap < self.base_fee.saturating_add(MIN_TIP_WEI) {
            return Some(format!(
                "max fee {} wei is below the base fee {} wei plus the {MIN_TIP_WEI} wei floor: it waits until the base fee falls; send a replacement (same nonce) with a higher max fee",
                self.fee_cap, self.base_fee
            ));
        }
        None
    }
}

/// Reads the pool of the node behind `rpc`: every transaction, with its sender's nonce
/// and balance and the head's base fee. `None` if the node does not answer.
pub fn read_pool(rpc: &RpcClient) -> Option<Vec<PoolTx>> {
    let content = rpc.call_raw("txpool_content", serde_json::json!([])).ok()?;
    let head = rpc.block_by_number(BlockId::Latest).ok()??;
    let base_fee = rpc
        .call_raw(
            "eth_getBlockByNumber",
            serde_json::json!([format!("0x{:x}", head.number), false]),
        )
        .ok()
        .and_then(|b| b["baseFeePerGas"].as_str().and_then(parse_quantity_u128))
        .unwrap_or(0);
    let mut accounts: BTreeMap<String, (u64, u128)> = BTreeMap::new();
    let mut out = Vec::new();
    for (part, queued) in [("pending", false), ("queued", true)] {
        let Some(by_sender) = content[part].as_object() else {
            continue;
        };
        for (from, by_nonce) in by_sender {
            let Some(addr) = rpc::parse_address(from) else {
                continue;
            };
            let key = from.to_ascii_lowercase();
            if !accounts.contains_key(&key) {
                let nonce = rpc.eth_get_transaction_count(&addr, BlockId::Latest).ok()?;
                let balance = rpc.eth_get_balance(&addr, BlockId::Latest).ok()?;
                accounts.insert(key.clone(), (nonce, balance));
            }
            let (account_nonce, balance) = accounts[&key];
            for tx in by_nonce.as_object().into_iter().flat_map(|m| m.values()) {
                if let Some(t) = pool_tx(tx, &key, queued, account_nonce, balance, base_fee) {
                    out.push(t);
                }
            }
        }
    }
    Some(out)
}

fn pool_tx(
    tx: &Value,
    from: &str,
    queued: bool,
    account_nonce: u64,
    balance: u128,
    base_fee: u128,
) -> Option<PoolTx> {
    let q = |k: &str| tx[k].as_str().and_then(parse_quantity_u128);
    let price = q("gasPrice");
    Some(PoolTx {
        hash: tx["hash"].as_str()?.to_ascii_lowercase(),
        from: from.to_string(),
        nonce: tx["nonce"].as_str().and_then(parse_quantity)?,
        tip_cap: q("maxPriorityFeePerGas").or(price)?,
        fee_cap: q("maxFeePerGas").or(price)?,
        gas: tx["gas"].as_str().and_then(parse_quantity).unwrap_or(0),
        value: q("value").unwrap_or(0),
        queued,
        account_nonce,
        balance,
        base_fee,
    })
}

/// First sightings of pool transactions: hash → unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen(pub BTreeMap<String, u64>);

impl Seen {
    fn path(sd: &StateDir) -> PathBuf {
        sd.root.join(SEEN_FILE)
    }

    /// What an earlier look recorded (nothing if the file is missing or unreadable: the
    /// clock then starts now).
    pub fn load(sd: &StateDir) -> Seen {
        std::fs::read(Self::path(sd))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Best effort: a state directory that cannot be written only loses the timing.
    pub fn save(&self, sd: &StateDir) {
        if !sd.root.is_dir() {
            return;
        }
        if let Ok(json) = serde_json::to_vec(self) {
            let _ = crate::state::fsutil::write_atomic(&Self::path(sd), &json, 0o644);
        }
    }
}

/// The transactions of `pool` pending for more than [`STUCK_PERIODS`] periods of
/// `period` seconds (at least 1), oldest first. `seen` learns the new ones and forgets
/// those no longer in the pool.
pub fn stuck(pool: &[PoolTx], seen: &mut Seen, now: u64, period: u64) -> Vec<StuckTx> {
    seen.0.retain(|h, _| pool.iter().any(|t| &t.hash == h));
    let limit = STUCK_PERIODS * period.max(1);
    let mut out: Vec<StuckTx> = Vec::new();
    for t in pool {
        let first = *seen.0.entry(t.hash.clone()).or_insert(now);
        let age = now.saturating_sub(first);
        if age <= limit || out.iter().any(|s| s.hash == t.hash) {
            continue;
        }
        out.push(StuckTx {
            hash: t.hash.clone(),
            from: t.from.clone(),
            nonce: t.nonce,
            tip_wei: t.tip_cap.to_string(),
            max_fee_wei: t.fee_cap.to_string(),
            pending_secs: age,
            reason: t.reason().unwrap_or_else(|| {
                format!(
                    "not sealed for {} periods, though nothing in it stops the validators: is the chain sealing?",
                    age / period.max(1)
                )
            }),
        });
    }
    out.sort_by(|a, b| {
        b.pending_secs
            .cmp(&a.pending_secs)
            .then(a.hash.cmp(&b.hash))
    });
    out
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Adds the pool's stuck transactions to `health` (a stuck one makes the network not
/// healthy), timing them with the first sightings kept in `sd`.
pub fn assess(health: &mut Health, pool: &[PoolTx], sd: &StateDir, period: u64, now: u64) {
    let mut seen = Seen::load(sd);
    let before = seen.clone();
    health.pending_transactions = stuck(pool, &mut seen, now, period);
    if !health.pending_transactions.is_empty() {
        health.healthy = false;
    }
    if seen != before {
        seen.save(sd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(hash: &str) -> PoolTx {
        PoolTx {
            hash: hash.into(),
            from: "0xaa".into(),
            nonce: 3,
            tip_cap: 1_000_000_000,
            fee_cap: 2_000_000_000,
            gas: 21_000,
            value: 1,
            queued: false,
            account_nonce: 3,
            balance: 10u128.pow(18),
            base_fee: 7,
        }
    }

    #[test]
    fn each_reason_names_what_stops_the_validators() {
        assert_eq!(tx("a").reason(), None);
        let gap = PoolTx {
            nonce: 5,
            queued: true,
            ..tx("a")
        };
        assert!(gap.reason().unwrap().starts_with(
            "nonce gap: its nonce is 5, but the account's next nonce is 3 (nonce(s) 3..4"
        ));
        let poor = PoolTx {
            balance: 5,
            ..tx("a")
        };
        assert!(poor.reason().unwrap().starts_with("insufficient funds"));
        let zero = PoolTx {
            tip_cap: 0,
            ..tx("a")
        };
        assert!(zero
            .reason()
            .unwrap()
            .starts_with("tip 0 wei is below the validators' floor of 1 wei"));
        let cheap = PoolTx {
            fee_cap: 7,
            tip_cap: 1,
            ..tx("a")
        };
        assert!(cheap
            .reason()
            .unwrap()
            .starts_with("max fee 7 wei is below the base fee 7 wei"));
        assert_eq!(cheap.effective_tip(), 0);
    }

    #[test]
    fn only_what_stays_more_than_three_periods_is_reported_and_gone_ones_are_forgotten() {
        let mut seen = Seen::default();
        let pool = vec![
            PoolTx {
                tip_cap: 0,
                ..tx("a")
            },
            tx("b"),
        ];
        assert!(stuck(&pool, &mut seen, 100, 2).is_empty());
        assert!(
            stuck(&pool, &mut seen, 106, 2).is_empty(),
            "6 s is 3 periods, not more"
        );
        let s = stuck(&pool, &mut seen, 107, 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].hash, "a");
        assert_eq!(s[0].tip_wei, "0");
        assert!(s[0].reason.starts_with("tip 0 wei"), "{}", s[0].reason);
        assert!(
            s[1].reason.starts_with("not sealed for 3 periods"),
            "{}",
            s[1].reason
        );
        // b was sealed: forgotten, and a new sighting of it starts again.
        let s = stuck(&pool[..1], &mut seen, 108, 2);
        assert_eq!((s.len(), seen.0.len()), (1, 1));
        assert!(stuck(&pool, &mut seen, 108, 2).len() == 1);
    }
}
