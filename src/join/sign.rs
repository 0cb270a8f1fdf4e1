//! Signatures of invitations and join requests.
//!
//! The signed message is the 32-byte keccak256 of the bundle's canonical JSON (see
//! [`super::bundle::canonical`]), signed EIP-191 style (`personal_sign`): anyone can check
//! one with standard tools, e.g.
//! `cast wallet verify --address <signer> 0x<keccak256 of the canonical JSON> <signature>`.

use super::bundle::{Invite, JoinRequest};
use super::{refused, JoinError};
use crate::crypto::personal::{personal_sign, recover_personal};
use crate::crypto::{keccak256, Address, SecretKey};

/// The message signed for `bytes`: keccak256 of them.
pub fn message(bytes: &[u8]) -> [u8; 32] {
    keccak256(bytes)
}

fn sign_hex(key: &SecretKey, bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(personal_sign(key, &message(bytes))))
}

fn recover(bytes: &[u8], signature: &str) -> Result<Address, String> {
    let raw = hex::decode(signature.trim_start_matches("0x"))
        .map_err(|_| format!("signature {signature:?} is not hex"))?;
    recover_personal(&message(bytes), &raw)
}

/// Signs `invite` with `key` (a signer key of the inviting operator).
pub fn sign_invite(invite: &mut Invite, key: &SecretKey) {
    invite.signed_by = key.address().to_checksum();
    invite.signature = sign_hex(key, &invite.signed_bytes());
}

/// The address whose key signed `invite`; refused when it is not `signed_by` (the
/// invitation was changed after it was signed).
pub fn verify_invite(invite: &Invite) -> Result<Address, JoinError> {
    let claimed: Address = invite.signed_by.parse().map_err(|_| {
        refused(format!(
            "the invitation's signed_by {:?} is not an address",
            invite.signed_by
        ))
    })?;
    match recover(&invite.signed_bytes(), &invite.signature) {
        Ok(a) if a == claimed => Ok(a),
        _ => Err(refused(format!(
            "the invitation's signature does not match its content and signer {claimed}: it was \
             changed after it was signed (or damaged in transit); ask the network's operator \
             for a new one (`consort invite`)"
        ))),
    }
}

/// Signs `request` with each signer key, in the order of `request.member.signers`.
pub fn sign_request(request: &mut JoinRequest, keys: &[&SecretKey]) {
    let bytes = request.signed_bytes();
    request.signatures = keys.iter().map(|k| sign_hex(k, &bytes)).collect();
}

/// Every signer address of the request has exactly one signature, made by its key over
/// the request as it is.
pub fn verify_request(request: &JoinRequest) -> Result<(), JoinError> {
    let signers = &request.member.signers;
    if request.signatures.len() != signers.len() {
        return Err(refused(format!(
            "the join request of {} lists {} signer(s) but carries {} signature(s); each \
             signer key must sign it (`consort join` does)",
            request.member.name,
            signers.len(),
            request.signatures.len()
        )));
    }
    let bytes = request.signed_bytes();
    for (addr, sig) in signers.iter().zip(&request.signatures) {
        let want: Address = addr.parse().map_err(|_| {
            refused(format!(
                "the join request's signer {addr:?} is not an address"
            ))
        })?;
        match recover(&bytes, sig) {
            Ok(got) if got == want => {}
            Ok(got) => {
                return Err(refused(format!(
                    "the join request's signature for signer {want} was made by {got}, not by \
                     {want}'s key: the request was changed after it was signed, or its joiner \
                     does not hold that key; refused — ask the joiner for its join-request.json \
                     as `consort join` wrote it"
                )))
            }
            Err(why) => {
                return Err(refused(format!(
                    "the join request's signature for signer {want} is not valid ({why})"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::bundle::*;

    fn request(signers: &[&SecretKey]) -> JoinRequest {
        JoinRequest {
            format: REQUEST_FORMAT.into(),
            invitation_id: "ab".repeat(16),
            network: RequestNetwork {
                name: "net".into(),
                chain_id: 7,
                genesis_hash: "0x00".into(),
            },
            member: RequestMember {
                name: "delta".into(),
                validators: signers.len() as u32,
                tx_nodes: 0,
                enodes: vec![],
                signers: signers.iter().map(|k| k.address().to_checksum()).collect(),
                accounts: vec![],
            },
            signatures: vec![],
        }
    }

    #[test]
    fn a_request_signed_by_its_signers_verifies_and_any_change_does_not() {
        let (a, b) = (SecretKey::random(), SecretKey::random());
        let mut r = request(&[&a, &b]);
        sign_request(&mut r, &[&a, &b]);
        verify_request(&r).unwrap();

        let mut changed = r.clone();
        changed.member.enodes.push("enode://x@127.0.0.9:1".into());
        let e = verify_request(&changed).unwrap_err().to_string();
        assert!(e.contains("changed after it was signed"), "{e}");

        // Signed by someone else's key: the addresses are not the signers'.
        let mut forged = request(&[&a, &b]);
        let other = SecretKey::random();
        sign_request(&mut forged, &[&a, &other]);
        let e = verify_request(&forged).unwrap_err().to_string();
        assert!(e.contains(&b.address().to_checksum()), "{e}");

        let mut short = r.clone();
        short.signatures.pop();
        assert!(verify_request(&short).is_err());
    }

    #[test]
    fn the_signature_is_eip191_of_the_keccak_of_the_canonical_request() {
        let a = SecretKey::random();
        let mut r = request(&[&a]);
        sign_request(&mut r, &[&a]);
        let digest = keccak256(&r.signed_bytes());
        let sig = hex::decode(r.signatures[0].trim_start_matches("0x")).unwrap();
        assert_eq!(recover_personal(&digest, &sig).unwrap(), a.address());
    }
}
