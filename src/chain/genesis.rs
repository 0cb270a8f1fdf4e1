//! Clique genesis: extraData = 32 zero bytes ‖ signers (sorted ascending) ‖ 65 zero bytes,
//! forks up to London only (geth 1.13's Clique rejects Shanghai and later).

use crate::crypto::Address;
use crate::topology::{Clique, Wei};
use serde_json::{json, Map, Value};

pub fn extra_data(signers: &[Address]) -> String {
    let mut sorted: Vec<Address> = signers.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut bytes = vec![0u8; 32];
    for s in &sorted {
        bytes.extend_from_slice(&s.0);
    }
    bytes.extend_from_slice(&[0u8; 65]);
    format!("0x{}", hex::encode(bytes))
}

/// The genesis JSON `geth init` takes.
pub fn genesis_json(
    chain_id: u64,
    clique: Clique,
    gas_limit: u64,
    signers: &[Address],
    alloc: &[(Address, Wei)],
) -> Value {
    let mut alloc_map = Map::new();
    for (addr, bal) in alloc {
        alloc_map.insert(
            addr.to_lower_hex(),
            json!({ "balance": format!("0x{:x}", bal.0) }),
        );
    }
    json!({
        "config": {
            "chainId": chain_id,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "muirGlacierBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "arrowGlacierBlock": 0,
            "grayGlacierBlock": 0,
            "clique": { "period": clique.period, "epoch": clique.epoch }
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "extraData": extra_data(signers),
        "gasLimit": format!("0x{gas_limit:x}"),
        "difficulty": "0x1",
        "mixHash": format!("0x{}", "0".repeat(64)),
        "coinbase": format!("0x{}", "0".repeat(40)),
        "alloc": alloc_map,
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": format!("0x{}", "0".repeat(64)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: u8) -> Address {
        Address([b; 20])
    }

    #[test]
    fn extra_data_sorts_signers_and_pads() {
        let x = extra_data(&[addr(0xbb), addr(0x11)]);
        let raw = hex::decode(&x[2..]).unwrap();
        assert_eq!(raw.len(), 32 + 2 * 20 + 65);
        assert!(raw[..32].iter().all(|&b| b == 0));
        assert_eq!(&raw[32..52], &[0x11; 20]);
        assert_eq!(&raw[52..72], &[0xbb; 20]);
        assert!(raw[72..].iter().all(|&b| b == 0));
    }

    #[test]
    fn genesis_has_no_post_london_forks_and_hex_alloc() {
        let g = genesis_json(
            707070,
            Clique {
                period: 5,
                epoch: 30000,
            },
            30_000_000,
            &[addr(1)],
            &[(addr(2), Wei(5 * Wei::ETHER))],
        );
        let cfg = g["config"].as_object().unwrap();
        for k in [
            "shanghaiTime",
            "cancunTime",
            "terminalTotalDifficulty",
            "mergeNetsplitBlock",
        ] {
            assert!(
                !cfg.contains_key(k),
                "{k} must not be set for Clique on geth 1.13"
            );
        }
        assert_eq!(g["config"]["chainId"], 707070);
        assert_eq!(g["config"]["clique"]["period"], 5);
        assert_eq!(g["gasLimit"], "0x1c9c380");
        assert_eq!(
            g["alloc"]["0202020202020202020202020202020202020202"]["balance"],
            "0x4563918244f40000"
        );
    }
}
