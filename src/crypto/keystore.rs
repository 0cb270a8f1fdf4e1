//! Web3 Secret Storage V3. CONTRACT (signatures fixed; bodies by the crypto work):
//! scrypt KDF + aes-128-ctr with DK[0..16], MAC = keccak256(DK[16..32] ++ ciphertext),
//! JSON fields exactly as geth writes them (`address` lowercase without 0x, `id` UUIDv4,
//! `version` 3, `crypto.{cipher,cipherparams.iv,ciphertext,kdf,kdfparams{dklen,n,p,r,salt},mac}`).

use super::{keccak256, Address, CryptoError, SecretKey};
use ctr::cipher::{KeyIvInit, StreamCipher};
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use serde_json::Value;

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
    /// For a random, machine-made password (consort's are ~190 bits): n = 2^12, r = 8,
    /// p = 1, a sixth of LIGHT's work. Stretching cannot strengthen a password that is
    /// already beyond brute force; it only costs time at every write and every unlock.
    pub const RANDOM_PASSWORD: ScryptParams = ScryptParams {
        log_n: 12,
        r: 8,
        p: 1,
    };
}

/// Encrypts `key` exactly as geth's `keystore.EncryptKey` does: random 32-byte salt and
/// 16-byte IV from the OS RNG, scrypt(password, salt, n, r, p, dklen 32), AES-128-CTR with
/// DK[0..16], MAC = keccak256(DK[16..32] ++ ciphertext), a fresh UUIDv4 `id`.
/// The fields are in the order geth writes them.
///
/// Panics only if `params` is not a valid scrypt parameter set (the two constants are).
pub fn encrypt(key: &SecretKey, password: &str, params: ScryptParams) -> serde_json::Value {
    let mut salt = [0u8; 32];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);

    let scrypt_params = scrypt::Params::new(params.log_n, params.r, params.p)
        .unwrap_or_else(|_| panic!("invalid scrypt parameters {params:?}"));
    let mut dk = [0u8; DKLEN];
    scrypt::scrypt(password.as_bytes(), &salt, &scrypt_params, &mut dk)
        .expect("32 bytes is a valid scrypt output length");

    let mut ciphertext = key.to_bytes();
    aes_ctr(&dk[..16], &iv, &mut ciphertext);
    let mac = mac(&dk, &ciphertext);
    dk.fill(0);

    serde_json::json!({
        "address": key.address().to_lower_hex(),
        "crypto": {
            "cipher": CIPHER,
            "ciphertext": hex::encode(ciphertext),
            "cipherparams": { "iv": hex::encode(iv) },
            "kdf": "scrypt",
            "kdfparams": {
                "dklen": DKLEN,
                "n": 1u64 << params.log_n,
                "p": params.p,
                "r": params.r,
                "salt": hex::encode(salt),
            },
            "mac": hex::encode(mac),
        },
        "id": uuid::Uuid::new_v4().to_string(),
        "version": 3,
    })
}

/// Decrypts a V3 keystore as geth's `keystore.DecryptKey` does: KDF scrypt or pbkdf2
/// (hmac-sha256); the MAC is checked before anything is decrypted, and a mismatch is
/// [`CryptoError::WrongPassword`]. Keys stored shorter than 32 bytes (old geth bug) are
/// left-padded, as geth does. If the file has an `address`, it must match the key.
///
/// Errors say what is wrong with the JSON; callers add the file path.
pub fn decrypt(json: &serde_json::Value, password: &str) -> Result<SecretKey, CryptoError> {
    let version = json.get("version").and_then(Value::as_u64);
    if version != Some(3) {
        return Err(bad(format!(
            "unsupported \"version\" {}: only Web3 Secret Storage version 3 keystores \
             (what geth writes) can be read; re-export the key with a current geth",
            json.get("version")
                .map(Value::to_string)
                .unwrap_or_else(|| "(missing)".into())
        )));
    }
    // Go's encoding/json matches field names case-insensitively, so geth also reads
    // the "Crypto" spelling some wallets write.
    let crypto = json
        .get("crypto")
        .or_else(|| json.get("Crypto"))
        .ok_or_else(|| missing("crypto"))?;
    let cipher = str_field(crypto, "cipher", "crypto.cipher")?;
    if cipher != CIPHER {
        return Err(bad(format!(
            "crypto.cipher is {cipher:?}; only \"{CIPHER}\" is supported (as in geth)"
        )));
    }
    let iv = hex_field(crypto.get("cipherparams"), "iv", "crypto.cipherparams.iv")?;
    if iv.len() != 16 {
        return Err(bad(format!(
            "crypto.cipherparams.iv must be 16 bytes (32 hex digits), got {} bytes",
            iv.len()
        )));
    }
    let ciphertext = hex_field(Some(crypto), "ciphertext", "crypto.ciphertext")?;
    let expected_mac = hex_field(Some(crypto), "mac", "crypto.mac")?;

    let mut dk = derive_key(crypto, password)?;
    let ok = constant_time_eq(&mac(&dk, &ciphertext), &expected_mac);
    if !ok {
        dk.fill(0);
        return Err(CryptoError::WrongPassword);
    }
    let mut plain = ciphertext;
    aes_ctr(&dk[..16], &iv, &mut plain);
    dk.fill(0);

    if plain.len() > 32 {
        let n = plain.len();
        plain.fill(0);
        return Err(bad(format!(
            "the decrypted key is {n} bytes, a secp256k1 key is at most 32; the file is corrupt"
        )));
    }
    let mut padded = [0u8; 32];
    padded[32 - plain.len()..].copy_from_slice(&plain);
    plain.fill(0);
    let key = SecretKey::from_bytes(&padded);
    padded.fill(0);
    let key = key.map_err(|e| bad(format!("the decrypted key is invalid ({e})")))?;

    if let Some(field) = json.get("address") {
        let text = field
            .as_str()
            .ok_or_else(|| bad("\"address\" must be a string".to_string()))?;
        let digits = text.strip_prefix("0x").unwrap_or(text);
        if !digits.eq_ignore_ascii_case(&key.address().to_lower_hex()) {
            return Err(bad(format!(
                "\"address\" says {text} but the key inside belongs to {}; \
                 the file was edited or mixed up with another, restore it from a backup",
                key.address()
            )));
        }
    }
    Ok(key)
}

/// geth's file name: `UTC--2026-11-21T09-26-12.123456789Z--<address lowercase hex>`.
///
/// Same as geth's `keyFileName`/`toISO8601`: the time in UTC, nanoseconds always
/// printed as 9 digits (`%09d`), `Z`, then the address without 0x.
pub fn file_name(address: &Address, at: time::OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "UTC--{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:09}Z--{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond(),
        address.to_lower_hex()
    )
}

/// A random password of 32 alphanumeric characters from the OS RNG.
pub fn random_password() -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

const DKLEN: usize = 32;
const MAX_SCRYPT_MEMORY: u128 = 1 << 30;
const CIPHER: &str = "aes-128-ctr";

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

fn aes_ctr(key: &[u8], iv: &[u8], data: &mut [u8]) {
    let mut cipher = Aes128Ctr::new(key.into(), iv.into());
    cipher.apply_keystream(data);
}

fn mac(dk: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(16 + ciphertext.len());
    buf.extend_from_slice(&dk[16..32]);
    buf.extend_from_slice(ciphertext);
    keccak256(&buf)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn derive_key(crypto: &Value, password: &str) -> Result<Vec<u8>, CryptoError> {
    let kdf = str_field(crypto, "kdf", "crypto.kdf")?;
    let params = crypto
        .get("kdfparams")
        .ok_or_else(|| missing("crypto.kdfparams"))?;
    let salt = hex_field(Some(params), "salt", "crypto.kdfparams.salt")?;
    let dklen = uint_field(params, "dklen")?;
    if !(32..=64).contains(&dklen) {
        return Err(bad(format!(
            "crypto.kdfparams.dklen is {dklen}; it must be between 32 and 64 \
             (geth writes 32)"
        )));
    }
    let mut dk = vec![0u8; dklen as usize];
    match kdf {
        "scrypt" => {
            let n = uint_field(params, "n")?;
            let r = uint_field(params, "r")?;
            let p = uint_field(params, "p")?;
            if n < 2 || !n.is_power_of_two() {
                return Err(bad(format!(
                    "crypto.kdfparams.n is {n}; scrypt needs a power of two above 1"
                )));
            }
            let log_n = n.trailing_zeros() as u8;
            let invalid = || {
                bad(format!(
                    "scrypt parameters n={n}, r={r}, p={p} are out of range; \
                     the file is corrupt"
                ))
            };
            let r = u32::try_from(r).map_err(|_| invalid())?;
            let p = u32::try_from(p).map_err(|_| invalid())?;
            // scrypt needs 128*r*n bytes; refuse absurd values instead of aborting on
            // allocation (geth's standard is 256 MiB).
            if u128::from(n) * u128::from(r) * 128 > MAX_SCRYPT_MEMORY {
                return Err(bad(format!(
                    "scrypt parameters n={n}, r={r} would need more than 1 GiB of memory; \
                     re-encrypt the key with geth's standard parameters"
                )));
            }
            // scrypt 0.12, not 0.11: 0.11 applied RFC 7914's erroneous bound
            // n < 2^(16 r), which refuses the Web3 Secret Storage vector and web3.py
            // keystores (n=262144, r=1, p=8) that geth reads fine.
            let sp = scrypt::Params::new(log_n, r, p).map_err(|_| invalid())?;
            scrypt::scrypt(password.as_bytes(), &salt, &sp, &mut dk).map_err(|_| invalid())?;
        }
        "pbkdf2" => {
            let prf = str_field(params, "prf", "crypto.kdfparams.prf")?;
            if prf != "hmac-sha256" {
                return Err(bad(format!(
                    "crypto.kdfparams.prf is {prf:?}; only \"hmac-sha256\" is supported \
                     (as in geth)"
                )));
            }
            let c = uint_field(params, "c")?;
            let c = u32::try_from(c)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad(format!("crypto.kdfparams.c is {c}; it must be 1..2^32")))?;
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, c, &mut dk);
        }
        other => {
            return Err(bad(format!(
                "crypto.kdf is {other:?}; only \"scrypt\" and \"pbkdf2\" are supported"
            )))
        }
    }
    Ok(dk)
}

fn bad(msg: String) -> CryptoError {
    CryptoError::Keystore(msg)
}

fn missing(path: &str) -> CryptoError {
    bad(format!(
        "missing field {path}; this is not a Web3 Secret Storage V3 keystore"
    ))
}

fn str_field<'a>(obj: &'a Value, name: &str, path: &str) -> Result<&'a str, CryptoError> {
    match obj.get(name) {
        None => Err(missing(path)),
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad(format!("{path} must be a string, found {v}"))),
    }
}

fn hex_field(obj: Option<&Value>, name: &str, path: &str) -> Result<Vec<u8>, CryptoError> {
    let obj = obj.ok_or_else(|| missing(path))?;
    let text = str_field(obj, name, path)?;
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|e| bad(format!("{path} is not valid hex ({e})")))
}

fn uint_field(params: &Value, name: &str) -> Result<u64, CryptoError> {
    let path = format!("crypto.kdfparams.{name}");
    let v = params.get(name).ok_or_else(|| missing(&path))?;
    // geth's ensureInt also accepts JSON numbers written as floats (e.g. 262144.0).
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        })
        .ok_or_else(|| bad(format!("{path} must be a non-negative integer, found {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The published keystore vectors (Web3 Secret Storage, go-ethereum testdata) are
    // decrypted in tests/it/crypto_vectors.rs, from tests/fixtures.

    /// A keystore of a fresh key, password "testpassword".
    fn sample() -> Value {
        encrypt(&SecretKey::random(), "testpassword", ScryptParams::LIGHT)
    }

    #[test]
    fn encrypt_writes_geths_layout_and_round_trips() {
        let key = SecretKey::random();
        let password = random_password();
        let json = encrypt(&key, &password, ScryptParams::LIGHT);

        // Field order exactly as geth's json.Marshal writes it.
        let top: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(top, ["address", "crypto", "id", "version"]);
        let crypto = &json["crypto"];
        let keys: Vec<&str> = crypto
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "cipher",
                "ciphertext",
                "cipherparams",
                "kdf",
                "kdfparams",
                "mac"
            ]
        );
        let kdf_keys: Vec<&str> = crypto["kdfparams"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(kdf_keys, ["dklen", "n", "p", "r", "salt"]);

        assert_eq!(json["address"], key.address().to_lower_hex());
        assert_eq!(json["version"], 3);
        let id = uuid::Uuid::parse_str(json["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(crypto["cipher"], "aes-128-ctr");
        assert_eq!(crypto["kdf"], "scrypt");
        assert_eq!(crypto["kdfparams"]["n"], 4096);
        assert_eq!(crypto["kdfparams"]["r"], 8);
        assert_eq!(crypto["kdfparams"]["p"], 6);
        assert_eq!(crypto["kdfparams"]["dklen"], 32);
        assert_eq!(crypto["kdfparams"]["salt"].as_str().unwrap().len(), 64);
        assert_eq!(crypto["cipherparams"]["iv"].as_str().unwrap().len(), 32);
        assert_eq!(crypto["ciphertext"].as_str().unwrap().len(), 64);
        assert_eq!(crypto["mac"].as_str().unwrap().len(), 64);
        // The key itself never appears in the file.
        assert!(!json.to_string().contains(&key.to_hex()));

        let back = decrypt(&json, &password).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        assert_eq!(
            decrypt(&json, "not the password").unwrap_err(),
            CryptoError::WrongPassword
        );

        // Fresh salt, IV and id every time.
        let again = encrypt(&key, &password, ScryptParams::LIGHT);
        assert_ne!(again["crypto"]["ciphertext"], json["crypto"]["ciphertext"]);
        assert_ne!(
            again["crypto"]["kdfparams"]["salt"],
            json["crypto"]["kdfparams"]["salt"]
        );
        assert_ne!(again["id"], json["id"]);
    }

    #[test]
    fn tampered_ciphertext_is_refused_by_the_mac() {
        let key = SecretKey::random();
        let mut json = encrypt(&key, "pw", ScryptParams::LIGHT);
        let ct = json["crypto"]["ciphertext"].as_str().unwrap().to_string();
        let flipped = format!("{}{}", if &ct[..1] == "0" { "1" } else { "0" }, &ct[1..]);
        json["crypto"]["ciphertext"] = json!(flipped);
        assert_eq!(
            decrypt(&json, "pw").unwrap_err(),
            CryptoError::WrongPassword
        );
    }

    #[test]
    fn malformed_keystores_give_errors_naming_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "version"),
            (json!({"version": 1}), "version"),
            (json!({"version": 3}), "crypto"),
            (
                {
                    let mut v = sample();
                    v["crypto"]["cipher"] = json!("aes-128-cbc");
                    v
                },
                "crypto.cipher",
            ),
            (
                {
                    let mut v = sample();
                    v["crypto"]["kdf"] = json!("argon2");
                    v
                },
                "crypto.kdf",
            ),
            (
                {
                    let mut v = sample();
                    v["crypto"]["kdfparams"]["n"] = json!(1000);
                    v
                },
                "crypto.kdfparams.n",
            ),
            (
                {
                    let mut v = sample();
                    v["crypto"]["mac"] = json!("xyz");
                    v
                },
                "crypto.mac",
            ),
            (
                {
                    let mut v = sample();
                    v["crypto"]["kdfparams"]
                        .as_object_mut()
                        .unwrap()
                        .remove("salt");
                    v
                },
                "crypto.kdfparams.salt",
            ),
        ];
        for (json, field) in cases {
            match decrypt(&json, "testpassword") {
                Err(CryptoError::Keystore(msg)) => {
                    assert!(msg.contains(field), "{field}: {msg}")
                }
                other => panic!("{field}: expected a keystore error, got {other:?}"),
            }
        }
    }

    #[test]
    fn file_name_matches_geths_format() {
        let addr: Address = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
            .parse()
            .unwrap();
        let at = time::macros::datetime!(2026-11-21 09:26:12.123456789 UTC);
        assert_eq!(
            file_name(&addr, at),
            "UTC--2026-11-21T09-26-12.123456789Z--7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
        // geth prints nanoseconds with %09d: always nine digits, zeros kept.
        let at = time::macros::datetime!(2018-07-04 09:58:30.1 UTC);
        assert!(file_name(&addr, at).starts_with("UTC--2018-07-04T09-58-30.100000000Z--"));
        // Other offsets are converted to UTC first.
        let at = time::macros::datetime!(2026-11-21 11:26:12 +02:00);
        assert!(file_name(&addr, at).starts_with("UTC--2026-11-21T09-26-12.000000000Z--"));
    }

    #[test]
    fn random_passwords_are_32_alphanumerics_and_differ() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}
