//! EIP-191 "personal_sign" signatures (version 0x45): what wallets, `cast wallet sign` and
//! geth's `personal_sign` produce, so a signature consort writes can be checked with any of
//! them. The signed digest is keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message);
//! the signature is r ‖ s ‖ v with v = 27 + recovery id, 65 bytes.

use super::keys::{keccak256, Address, SecretKey};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

/// The EIP-191 digest of `message`.
pub fn personal_digest(message: &[u8]) -> [u8; 32] {
    let mut data = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    data.extend_from_slice(message);
    keccak256(&data)
}

/// Signs `message` EIP-191 style: 65 bytes r ‖ s ‖ v (v 27 or 28).
pub fn personal_sign(key: &SecretKey, message: &[u8]) -> [u8; 65] {
    let (r, s, v) = key.sign_prehash(&personal_digest(message));
    let mut out = [0u8; 65];
    out[..32].copy_from_slice(&r);
    out[32..64].copy_from_slice(&s);
    out[64] = 27 + v;
    out
}

/// The address whose key made `signature` (65 bytes, v 27/28 or 0/1) over `message`.
pub fn recover_personal(message: &[u8], signature: &[u8]) -> Result<Address, String> {
    if signature.len() != 65 {
        return Err(format!(
            "a signature is 65 bytes (r, s, v), this one is {}",
            signature.len()
        ));
    }
    let v = match signature[64] {
        v @ (27 | 28) => v - 27,
        v @ (0 | 1) => v,
        v => return Err(format!("recovery byte v is {v}, expected 27 or 28")),
    };
    let sig = Signature::from_slice(&signature[..64]).map_err(|e| format!("bad signature: {e}"))?;
    let recid = RecoveryId::from_byte(v).ok_or("bad recovery id")?;
    let key = VerifyingKey::recover_from_prehash(&personal_digest(message), &sig, recid)
        .map_err(|e| format!("no key recovers from this signature: {e}"))?;
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&hash[12..]);
    Ok(Address(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of ethers.js / viem's `signMessage` docs: the well-known Hardhat key #0
    /// signing "hello world" gives this signature (checked with `cast wallet sign` too).
    #[test]
    fn matches_the_wallets_signature_of_hello_world() {
        let key =
            SecretKey::from_hex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap();
        let sig = personal_sign(&key, b"hello world");
        assert_eq!(
            hex::encode(sig),
            "a461f509887bd19e312c0c58467ce8ff8e300d3c1a90b608a760c5b80318eaf15fe57c96f9175d6cd4daad4663763baa7e78836e067d0163e9a2ccf2ff753f5b1b"
        );
        assert_eq!(
            recover_personal(b"hello world", &sig).unwrap(),
            key.address()
        );
    }

    #[test]
    fn another_message_or_a_flipped_bit_recovers_another_address() {
        let key = SecretKey::random();
        let mut sig = personal_sign(&key, b"request");
        assert_eq!(recover_personal(b"request", &sig).unwrap(), key.address());
        assert_ne!(recover_personal(b"requesT", &sig).ok(), Some(key.address()));
        sig[10] ^= 1;
        assert_ne!(recover_personal(b"request", &sig).ok(), Some(key.address()));
        assert!(recover_personal(b"request", &sig[..64]).is_err());
    }
}
