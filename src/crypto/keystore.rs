//! Web3 Secret Storage V3. CONTRACT (signatures fixed; bodies by the crypto work):
//! scrypt KDF + aes-128-ctr with DK[0..16], MAC = keccak256(DK[16..32] ++ ciphertext),
//! JSON fields exactly as geth writes them (`address` lowercase without 0x, `id` UUIDv4,
//! `version` 3, `crypto.{cipher,cipherparams.iv,ciphertext,kdf,kdfparams{dklen,n,p,r,salt},mac}`).

use super::{Address, CryptoError, SecretKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl ScryptParams {
    /// geth's StandardScryptN/P: n = 2^18, r = 8, p = 1.
    pub const STANDARD: ScryptParams = ScryptParams {
        log_n: 18,
        r: 8,
        p: 1,
    };
    /// geth's LightScryptN/P: n = 2^12, r = 8, p = 6.
    pub const LIGHT: ScryptParams = ScryptParams {
        log_n: 12,
        r: 8,
        p: 6,
    };
}

pub fn encrypt(key: &SecretKey, password: &str, params: ScryptParams) -> serde_json::Value {
    let _ = (key, password, params);
    unimplemented!("crypto work")
}

/// Supports the scrypt KDF (and pbkdf2 if cheap to add); checks the MAC before decrypting.
pub fn decrypt(json: &serde_json::Value, password: &str) -> Result<SecretKey, CryptoError> {
    let _ = (json, password);
    unimplemented!("crypto work")
}

/// geth's file name: `UTC--2026-11-21T09-26-12.123456789Z--<address lowercase hex>`.
pub fn file_name(address: &Address, at: time::OffsetDateTime) -> String {
    let _ = (address, at);
    unimplemented!("crypto work")
}

/// A random password of 32 alphanumeric characters from the OS RNG.
pub fn random_password() -> String {
    unimplemented!("crypto work")
}
