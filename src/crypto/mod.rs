//! secp256k1 keys, keccak, EIP-55 addresses, enode ids, Web3 Secret Storage V3 keystores,
//! RLP and EIP-155 / EIP-1559 transaction signing.

pub mod keys;
pub mod keystore;
pub mod personal;
pub mod rlp;
pub mod tx;

pub use keys::{keccak256, Address, SecretKey};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("invalid secret key: {0}")]
    InvalidKey(String),
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress { input: String, reason: String },
    #[error("keystore: {0}")]
    Keystore(String),
    #[error("keystore: wrong password (MAC mismatch)")]
    WrongPassword,
}
