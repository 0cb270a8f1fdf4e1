//! Keys and addresses. CONTRACT (implemented by the crypto work; signatures are fixed):
//! - `keccak256(&[u8]) -> [u8; 32]`
//! - `Address([u8; 20])`: Display = EIP-55 checksum with 0x; FromStr accepts 0x-prefixed hex
//!   (all-lower/all-upper or a valid checksum; a wrong checksum is an error);
//!   serde as the checksum string; `to_lower_hex()` without 0x.
//! - `SecretKey`: Debug prints `SecretKey(<redacted>)`; never Display.

use super::CryptoError;
use std::fmt;
use std::str::FromStr;

pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let _ = data;
    unimplemented!("crypto work")
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// EIP-55 checksummed, with 0x.
    pub fn to_checksum(&self) -> String {
        unimplemented!("crypto work")
    }
    /// Lowercase hex without 0x (keystore `address` field, file names).
    pub fn to_lower_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_checksum())
    }
}
impl FromStr for Address {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let _ = s;
        unimplemented!("crypto work")
    }
}
impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_checksum())
    }
}
impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

pub struct SecretKey(k256::ecdsa::SigningKey);

impl SecretKey {
    pub fn random() -> Self {
        unimplemented!("crypto work")
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let _ = bytes;
        unimplemented!("crypto work")
    }
    /// 64 hex chars, optional 0x.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let _ = s;
        unimplemented!("crypto work")
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        unimplemented!("crypto work")
    }
    /// 64 lowercase hex chars without 0x: the format of geth's `nodekey` file.
    pub fn to_hex(&self) -> String {
        unimplemented!("crypto work")
    }
    /// Uncompressed public key without the 0x04 prefix.
    pub fn public_key(&self) -> [u8; 64] {
        unimplemented!("crypto work")
    }
    pub fn address(&self) -> Address {
        unimplemented!("crypto work")
    }
    /// 128 lowercase hex chars: the node id in `enode://<id>@host:port`.
    pub fn enode_id(&self) -> String {
        hex::encode(self.public_key())
    }
    /// Sign a 32-byte digest: (r, s, recovery id 0/1), s normalised to the lower half.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> ([u8; 32], [u8; 32], u8) {
        let _ = (digest, &self.0);
        unimplemented!("crypto work")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}
