//! Published vectors with their private keys, kept under tests/ (never in src/): the Web3
//! Secret Storage and go-ethereum keystore vectors (tests/fixtures/keystore_vectors.json),
//! private key 1 and the devp2p ENR test key.

use consort::crypto::{keccak256, keystore, CryptoError, SecretKey};
use serde_json::{json, Value};

fn vectors() -> Value {
    serde_json::from_str(include_str!("../fixtures/keystore_vectors.json")).unwrap()
}

fn vector(name: &str) -> (Value, String) {
    let v = &vectors()[name];
    (
        v["json"].clone(),
        v["password"].as_str().unwrap().to_string(),
    )
}

#[test]
fn decrypts_every_published_keystore_vector_to_its_key() {
    // The wiki's scrypt vector uses r=1, p=8: the parameters must be read from the file.
    // The 31- and 30-byte keys come back left-padded to 32 bytes.
    for name in [
        "wikipage_test_vector_scrypt",
        "wikipage_test_vector_pbkdf2",
        "31_byte_key",
        "30_byte_key",
    ] {
        let (file, password) = vector(name);
        let key = keystore::decrypt(&file, &password).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            key.to_hex(),
            vectors()[name]["priv"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_wrong_password_is_refused_by_the_mac() {
    for (name, wrong) in [
        ("wikipage_test_vector_scrypt", "testpassworD"),
        ("wikipage_test_vector_pbkdf2", ""),
    ] {
        let (file, _) = vector(name);
        assert_eq!(
            keystore::decrypt(&file, wrong).unwrap_err(),
            CryptoError::WrongPassword,
            "{name}"
        );
    }
}

#[test]
fn decrypts_geths_very_light_scrypt_file_and_checks_its_address() {
    let (file, password) = vector("very_light_scrypt");
    let key = keystore::decrypt(&file, &password).unwrap();
    assert_eq!(
        key.address().to_lower_hex(),
        "45dea0fb0bba44f4fcf290bba71fd57d7117cbb8"
    );
    // A file whose address field was swapped for another account is refused.
    let mut swapped = file.clone();
    swapped["address"] = json!("7e5f4552091a69125d5dfcb7b8c2659029395bdf");
    match keystore::decrypt(&swapped, &password) {
        Err(CryptoError::Keystore(msg)) => assert!(msg.contains("address"), "{msg}"),
        other => panic!("expected an address mismatch, got {other:?}"),
    }
}

#[test]
fn secret_key_one_has_the_published_address_and_generator_public_key() {
    // Private key 1: its public key is the secp256k1 generator G (SEC 2, section 2.4.1)
    // and its address is the widely published 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf.
    let key =
        SecretKey::from_hex("0x0000000000000000000000000000000000000000000000000000000000000001")
            .unwrap();
    assert_eq!(
        key.address().to_string(),
        "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    );
    assert_eq!(
        key.enode_id(),
        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
         483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
    );
    assert_eq!(
        key.to_hex(),
        "0000000000000000000000000000000000000000000000000000000000000001"
    );
}

#[test]
fn enode_id_matches_the_devp2p_enr_test_vector() {
    // devp2p enr.md "Test Vectors" (also geth p2p/enode TestPythonInterop):
    // private key b71c71a6...f291 has compressed public key
    // 03ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138 and node id
    // (keccak256 of the 64-byte public key) a448f24c...17f7.
    let key =
        SecretKey::from_hex("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291")
            .unwrap();
    let id = key.enode_id();
    assert_eq!(id.len(), 128);
    assert_eq!(
        &id[..64],
        "ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138"
    );
    // 03 prefix: y is odd.
    assert_eq!(key.public_key()[63] & 1, 1);
    assert_eq!(
        hex::encode(keccak256(&key.public_key())),
        "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
    );
}
