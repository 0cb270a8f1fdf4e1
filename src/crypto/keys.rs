//! Keys and addresses. CONTRACT (implemented by the crypto work; signatures are fixed):
//! - `keccak256(&[u8]) -> [u8; 32]`
//! - `Address([u8; 20])`: Display = EIP-55 checksum with 0x; FromStr accepts 0x-prefixed hex
//!   (all-lower/all-upper or a valid checksum; a wrong checksum is an error);
//!   serde as the checksum string; `to_lower_hex()` without 0x.
//! - `SecretKey`: Debug prints `SecretKey(<redacted>)`; never Display.

use super::CryptoError;
use k256::ecdsa::SigningKey;
use sha3::{Digest, Keccak256};
use std::fmt;
use std::str::FromStr;

/// Keccak-256 as used by Ethereum (the original Keccak padding, not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// EIP-55 checksummed, with 0x.
    pub fn to_checksum(&self) -> String {
        // EIP-55: hash the lowercase hex (as ASCII); a letter is upper case when the
        // matching nibble of the hash is >= 8.
        let lower = self.to_lower_hex();
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
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
        let err = |reason: &str| CryptoError::InvalidAddress {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| err("an address must start with 0x followed by 40 hex digits"))?;
        if digits.len() != 40 {
            return Err(err(&format!(
                "expected 0x followed by 40 hex digits, found {} characters after 0x",
                digits.chars().count()
            )));
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|_| err("contains a character that is not a hex digit (0-9, a-f)"))?;
        let addr = Address(bytes);
        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && addr.to_checksum()[2..] != *digits {
            return Err(err(
                "the mixed-case EIP-55 checksum does not match, so the address is probably \
                 mistyped; check it against its source (writing it all in lower case skips \
                 the check)",
            ));
        }
        Ok(addr)
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

/// A secp256k1 secret key (an account key or a devp2p node key).
///
/// Deliberately no `Display` and a redacted `Debug`: the only ways out are
/// [`SecretKey::to_bytes`] and [`SecretKey::to_hex`], for writing 0600 secret files.
pub struct SecretKey(k256::ecdsa::SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's RNG.
    pub fn random() -> Self {
        SecretKey(SigningKey::random(&mut rand::rngs::OsRng))
    }
    /// 32 big-endian bytes; rejects zero and values not below the secp256k1 group order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::InvalidKey(format!(
                "a secp256k1 secret key is 32 bytes, got {} bytes",
                bytes.len()
            )));
        }
        SigningKey::from_slice(bytes).map(SecretKey).map_err(|_| {
            CryptoError::InvalidKey(
                "the value is zero or not below the secp256k1 group order; \
                 generate a new key instead"
                    .to_string(),
            )
        })
    }
    /// 64 hex chars, optional 0x.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        // Error messages never echo the input: it is a secret.
        let s = s.trim();
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.len() != 64 {
            return Err(CryptoError::InvalidKey(format!(
                "expected 64 hex digits (optionally prefixed with 0x), got {} characters",
                digits.chars().count()
            )));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| {
            CryptoError::InvalidKey(
                "contains a character that is not a hex digit (0-9, a-f)".to_string(),
            )
        })?;
        Self::from_bytes(&bytes)
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }
    /// 64 lowercase hex chars without 0x: the format of geth's `nodekey` file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
    /// Uncompressed public key without the 0x04 prefix.
    pub fn public_key(&self) -> [u8; 64] {
        let point = self.0.verifying_key().to_encoded_point(false);
        let mut out = [0u8; 64];
        // SEC1 uncompressed encoding: 0x04 || x || y.
        out.copy_from_slice(&point.as_bytes()[1..65]);
        out
    }
    /// The account address: the last 20 bytes of keccak256(public key).
    pub fn address(&self) -> Address {
        let hash = keccak256(&self.public_key());
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }
    /// 128 lowercase hex chars: the node id in `enode://<id>@host:port`.
    pub fn enode_id(&self) -> String {
        hex::encode(self.public_key())
    }
    /// Sign a 32-byte digest: (r, s, recovery id 0/1), s normalised to the lower half.
    ///
    /// Deterministic (RFC 6979), like geth's libsecp256k1 signer, so the same key and
    /// digest always give the same signature.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> ([u8; 32], [u8; 32], u8) {
        // k256 normalises s to the lower half and adjusts the recovery id accordingly.
        // Signing a 32-byte prehash cannot fail for a valid key (the only error paths are
        // a wrong digest length and a probability-2^-128 degenerate nonce).
        let (sig, recid) = self
            .0
            .sign_prehash_recoverable(digest)
            .expect("secp256k1 signing of a 32-byte digest with a valid key");
        let (r, s) = sig.split_bytes();
        (r.into(), s.into(), u8::from(recid.is_y_odd()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak256_of_empty_input() {
        // The well-known Keccak-256 of "" (e.g. geth's crypto.Keccak256Hash(nil),
        // types.EmptyCodeHash = 0xc5d2...a470).
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    // Published private-key vectors (key 1, the devp2p ENR key) are checked in
    // tests/it/crypto_vectors.rs.

    #[test]
    fn eip55_vectors_from_the_eip_round_trip() {
        // EIP-55 specification test addresses (ethereum/EIPs EIPS/eip-55.md), including
        // the all-caps and all-lower ones from its extended test list.
        for s in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
            // All caps.
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
            // All lower.
            "0xde709f2102306220921060314715629080e2fb77",
            "0x27b1fdb04752bbc536007a920d24acb045561c26",
        ] {
            let a: Address = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(a.to_checksum(), s);
            assert_eq!(a.to_string(), s);
            assert_eq!(a.to_lower_hex(), s[2..].to_lowercase());
        }
    }

    #[test]
    fn address_parsing_accepts_uniform_case_and_rejects_a_bad_checksum() {
        let lower: Address = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
            .parse()
            .unwrap();
        let upper: Address = "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"
            .parse()
            .unwrap();
        assert_eq!(lower, upper);
        assert_eq!(
            lower.to_string(),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );

        // One letter's case flipped from the valid checksum.
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        match bad.parse::<Address>() {
            Err(CryptoError::InvalidAddress { input, reason }) => {
                assert_eq!(input, bad);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        let msg = bad.parse::<Address>().unwrap_err().to_string();
        assert!(msg.contains(bad), "error must name the input: {msg}");

        for bad in [
            "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea",
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00",
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg",
            "",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn address_serde_uses_the_checksum_string() {
        let a: Address = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"
            .parse()
            .unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359\"");
        let back: Address = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let err = serde_json::from_str::<Address>("\"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d35A\"")
            .unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn secret_key_rejects_zero_out_of_range_and_malformed_input() {
        assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
        // The group order n itself and 2^256-1 are out of range.
        let n = hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .unwrap();
        assert!(SecretKey::from_bytes(&n).is_err());
        assert!(SecretKey::from_bytes(&[0xff; 32]).is_err());
        // n - 1 is the largest valid key.
        let mut n_minus_1 = n.clone();
        n_minus_1[31] -= 1;
        assert!(SecretKey::from_bytes(&n_minus_1).is_ok());
        assert!(SecretKey::from_bytes(&[1u8; 31]).is_err());
        assert!(SecretKey::from_bytes(&[1u8; 33]).is_err());

        assert!(SecretKey::from_hex(&"1".repeat(63)).is_err());
        let not_hex = format!("{}zz", "1".repeat(62));
        let err = SecretKey::from_hex(&not_hex).unwrap_err().to_string();
        assert!(
            !err.contains(&not_hex),
            "errors must not echo key material: {err}"
        );
    }

    #[test]
    fn hex_round_trip_and_random_keys_differ() {
        let a = SecretKey::random();
        let b = SecretKey::random();
        assert_ne!(a.to_bytes(), b.to_bytes());
        let again = SecretKey::from_hex(&format!("0x{}", a.to_hex())).unwrap();
        assert_eq!(again.to_bytes(), a.to_bytes());
        assert_eq!(again.address(), a.address());
        assert_eq!(a.to_hex().len(), 64);
        assert_eq!(a.to_hex(), a.to_hex().to_lowercase());
    }

    #[test]
    fn debug_is_redacted() {
        let key = SecretKey::from_hex(&"46".repeat(32)).unwrap();
        let dbg = format!("{key:?}");
        assert_eq!(dbg, "SecretKey(<redacted>)");
        assert!(!dbg.contains("4646"));
    }

    #[test]
    fn signatures_are_low_s_and_recover_to_the_signer() {
        use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
        // secp256k1 n/2: s must never exceed it (EIP-2, enforced by geth's tx pool).
        let half_n =
            hex::decode("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")
                .unwrap();
        let key = SecretKey::random();
        let mut saw = [false; 2];
        for i in 0u32..64 {
            let digest = keccak256(&i.to_be_bytes());
            let (r, s, v) = key.sign_prehash(&digest);
            assert!(v <= 1);
            saw[v as usize] = true;
            assert!(s.as_slice() <= half_n.as_slice(), "high s for digest {i}");
            let sig = Signature::from_scalars(r, s).unwrap();
            let recovered = VerifyingKey::recover_from_prehash(
                &digest,
                &sig,
                RecoveryId::from_byte(v).unwrap(),
            )
            .unwrap();
            let point = recovered.to_encoded_point(false);
            assert_eq!(&point.as_bytes()[1..], &key.public_key()[..]);
        }
        // Over 64 signatures both parities show up (probability of failure 2^-63).
        assert_eq!(saw, [true, true]);
    }
}
