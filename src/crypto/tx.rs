//! Transactions. CONTRACT (signatures fixed; bodies by the crypto work):
//! legacy EIP-155 (v = recid + 35 + 2*chain_id) and EIP-1559 (type 0x02) signing.

use super::{Address, SecretKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTx {
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_price: u128,
    pub gas: u64,
    pub to: Option<Address>,
    pub value: u128,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip1559Tx {
    pub chain_id: u64,
    pub nonce: u64,
    pub max_priority_fee_per_gas: u128,
    pub max_fee_per_gas: u128,
    pub gas: u64,
    pub to: Option<Address>,
    pub value: u128,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The bytes for `eth_sendRawTransaction`.
    pub raw: Vec<u8>,
    /// keccak256(raw): the transaction hash.
    pub hash: [u8; 32],
}

impl SignedTx {
    pub fn raw_hex(&self) -> String {
        format!("0x{}", hex::encode(&self.raw))
    }
    pub fn hash_hex(&self) -> String {
        format!("0x{}", hex::encode(self.hash))
    }
}

impl LegacyTx {
    pub fn sign(&self, key: &SecretKey) -> SignedTx {
        let _ = key;
        unimplemented!("crypto work")
    }
}

impl Eip1559Tx {
    pub fn sign(&self, key: &SecretKey) -> SignedTx {
        let _ = key;
        unimplemented!("crypto work")
    }
}
