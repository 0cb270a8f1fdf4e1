//! The crypto module against REAL geth 1.13.15:
//! - geth lists and unlocks a keystore written by our `encrypt`, refuses it with a wrong
//!   password, and signs exactly what we sign with the unlocked key;
//! - geth reports our node key's enode id;
//! - geth's tx pool accepts our EIP-155 and EIP-1559 transactions with our hashes and
//!   recovers our address as the sender;
//! - our `decrypt` reads a keystore created by `geth account new`, and our `file_name`
//!   and LIGHT parameters reproduce geth's.
//!
//! geth is found via CONSORT_GETH, else ~/.cache/consort/geth-1.13.15/geth, else `geth`
//! on PATH; if none exists these tests fail (they never skip). Only 127.0.0.1 is used.

use consort::crypto::keystore::{self, ScryptParams};
use consort::crypto::tx::{Eip1559Tx, LegacyTx};
use consort::crypto::{keccak256, Address, SecretKey};
use consort::state::fsutil::write_secret;
use serde_json::{json, Value};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn geth() -> PathBuf {
    if let Some(p) = std::env::var_os("CONSORT_GETH") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CONSORT_GETH={} does not exist; point it at a geth 1.13.15 binary",
            p.display()
        );
        return p;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/consort/geth-1.13.15/geth");
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("geth");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "geth not found: these tests need geth 1.13.15. Set CONSORT_GETH to its path, or \
         build it into ~/.cache/consort/geth-1.13.15/geth (see DESIGN.md), or put it on PATH"
    );
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(geth())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run geth");
    assert!(
        out.status.success(),
        "geth {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Kills (and reaps) the geth it holds on drop, so a failing assertion never leaks it.
struct GethProcess {
    child: Child,
    log: PathBuf,
}

impl GethProcess {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Exit status if geth has already stopped.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for GethProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Node {
    dir: PathBuf,
    keystore: PathBuf,
    http_port: u16,
}

impl Node {
    fn start(
        &self,
        label: &str,
        unlock: &Address,
        password_file: &Path,
        node_key: &SecretKey,
    ) -> GethProcess {
        let data = self.dir.join("data");
        // Pin the devp2p listener to loopback (there is no flag for the address).
        let config = self.dir.join("config.toml");
        fs::write(&config, "[Node.P2P]\nListenAddr = \"127.0.0.1:0\"\n").unwrap();
        let node_key_file = self.dir.join("nodekey");
        write_secret(&node_key_file, node_key.to_hex().as_bytes()).unwrap();
        let log = self.dir.join(format!("geth-{label}.log"));
        let log_file = fs::File::create(&log).unwrap();
        let unlock = unlock.to_string();
        let http_port = self.http_port.to_string();
        let authrpc_port = free_port().to_string();
        let child = Command::new(geth())
            .args([
                "--config",
                p(&config),
                "--datadir",
                p(&data),
                "--keystore",
                p(&self.keystore),
                "--nodekey",
                p(&node_key_file),
                "--unlock",
                &unlock,
                "--password",
                p(password_file),
                "--allow-insecure-unlock",
                "--networkid",
                "1337",
                "--nodiscover",
                "--maxpeers",
                "0",
                "--nat",
                "none",
                "--ipcdisable",
                "--http",
                "--http.addr",
                "127.0.0.1",
                "--http.port",
                &http_port,
                "--http.api",
                "eth,net,web3,admin",
                "--authrpc.addr",
                "127.0.0.1",
                "--authrpc.port",
                &authrpc_port,
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start geth");
        GethProcess { child, log }
    }
}

fn rpc(port: u16, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(10))
        .json(&body)
        .send()
        .map_err(|e| format!("{method}: {e}"))?;
    let v: Value = resp.json().map_err(|e| format!("{method}: {e}"))?;
    match v.get("error") {
        Some(err) => Err(format!("{method}: {err}")),
        None => Ok(v["result"].clone()),
    }
}

/// A genesis like consort's: chain 1337, forks up to London, Clique with `signer`, and
/// `funded` holding 1000 ether.
fn init_genesis(dir: &Path, signer: &Address, funded: &Address) {
    let genesis = json!({
        "config": {
            "chainId": 1337,
            "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
            "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
            "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
            "clique": { "period": 5, "epoch": 30000 }
        },
        "difficulty": "0x1",
        "gasLimit": "0x1c9c380",
        "extraData": format!("0x{}{}{}", "00".repeat(32), signer.to_lower_hex(), "00".repeat(65)),
        "alloc": { funded.to_lower_hex(): { "balance": "0x3635c9adc5dea00000" } }
    });
    let path = dir.join("genesis.json");
    fs::write(&path, serde_json::to_vec_pretty(&genesis).unwrap()).unwrap();
    run(&["init", "--datadir", p(&dir.join("data")), p(&path)]);
}

/// EIP-191 personal message hash, what geth's eth_sign signs.
fn personal_hash(msg: &[u8]) -> [u8; 32] {
    let mut data = format!("\x19Ethereum Signed Message:\n{}", msg.len()).into_bytes();
    data.extend_from_slice(msg);
    keccak256(&data)
}

#[test]
fn geth_unlocks_our_keystore_and_agrees_on_signatures_enode_and_transactions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keystore_dir = dir.join("keystore");
    fs::create_dir_all(&keystore_dir).unwrap();

    let key = SecretKey::random();
    let addr = key.address();
    let password = keystore::random_password();
    let json = keystore::encrypt(&key, &password, ScryptParams::LIGHT);
    let file = keystore_dir.join(keystore::file_name(&addr, time::OffsetDateTime::now_utc()));
    write_secret(&file, serde_json::to_string(&json).unwrap().as_bytes()).unwrap();
    let password_file = dir.join("password");
    write_secret(&password_file, password.as_bytes()).unwrap();
    let wrong_password_file = dir.join("wrong-password");
    write_secret(&wrong_password_file, b"not-the-password").unwrap();

    // 1. geth sees the account in our file.
    let out = run(&[
        "account",
        "list",
        "--datadir",
        p(&dir.join("data")),
        "--keystore",
        p(&keystore_dir),
    ]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&format!("{{{}}}", addr.to_lower_hex())),
        "geth account list does not show {addr}:\n{listing}"
    );

    init_genesis(dir, &addr, &addr);
    let node_key = SecretKey::random();
    let node = Node {
        dir: dir.to_path_buf(),
        keystore: keystore_dir.clone(),
        http_port: free_port(),
    };

    // 2. With a wrong password geth refuses to unlock our keystore and exits: so the
    // successful unlock below really means geth decrypted our file.
    {
        let mut geth = node.start("wrong-password", &addr, &wrong_password_file, &node_key);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = geth.exited() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "geth kept running with a wrong password:\n{}",
                geth.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(!status.success());
        let log = geth.log();
        assert!(
            log.contains("could not decrypt key with given password"),
            "unexpected geth failure:\n{log}"
        );
    }

    // 3. With the right password geth unlocks it: eth_sign works only on an unlocked
    // account, and geth's signature must equal ours (both RFC 6979, low s).
    let mut geth = node.start("unlocked", &addr, &password_file, &node_key);
    let port = node.http_port;
    let msg = b"consort crypto test";
    let deadline = Instant::now() + Duration::from_secs(60);
    let geth_sig = loop {
        if let Some(status) = geth.exited() {
            panic!(
                "geth exited ({status}) instead of unlocking our keystore:\n{}",
                geth.log()
            );
        }
        match rpc(
            port,
            "eth_sign",
            json!([addr.to_string(), format!("0x{}", hex::encode(msg))]),
        ) {
            Ok(sig) => break sig,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "geth did not unlock {addr} in 60 s (last: {e}):\n{}",
                    geth.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let (r, s, v) = key.sign_prehash(&personal_hash(msg));
    let ours = format!("0x{}{}{:02x}", hex::encode(r), hex::encode(s), 27 + v);
    assert_eq!(geth_sig, json!(ours), "geth's eth_sign differs from ours");

    // 4. geth's enode URL carries our node key's id.
    let info = rpc(port, "admin_nodeInfo", json!([])).unwrap();
    let enode = info["enode"].as_str().unwrap();
    assert!(
        enode.starts_with(&format!("enode://{}@127.0.0.1:", node_key.enode_id())),
        "geth enode {enode} does not carry our id {}",
        node_key.enode_id()
    );
    // admin_nodeInfo.id is keccak256(public key).
    assert_eq!(
        info["id"],
        json!(hex::encode(keccak256(&node_key.public_key())))
    );

    // 5. The tx pool accepts our signed transactions, computes our hashes and recovers
    // our address as the sender.
    assert_eq!(rpc(port, "eth_chainId", json!([])).unwrap(), json!("0x539"));
    let to: Address = "0x3535353535353535353535353535353535353535"
        .parse()
        .unwrap();
    let legacy = LegacyTx {
        chain_id: 1337,
        nonce: 0,
        gas_price: 2_000_000_000,
        gas: 21_000,
        to: Some(to),
        value: 1,
        data: vec![],
    }
    .sign(&key);
    let dynamic = Eip1559Tx {
        chain_id: 1337,
        nonce: 1,
        max_priority_fee_per_gas: 1_000_000_000,
        max_fee_per_gas: 3_000_000_000,
        gas: 21_000,
        to: Some(to),
        value: 2,
        data: vec![],
    }
    .sign(&key);
    for (kind, signed) in [("legacy", &legacy), ("eip1559", &dynamic)] {
        let hash = rpc(port, "eth_sendRawTransaction", json!([signed.raw_hex()]))
            .unwrap_or_else(|e| panic!("{kind}: geth rejected our transaction: {e}"));
        assert_eq!(hash, json!(signed.hash_hex()), "{kind}: hash differs");
        let tx = rpc(port, "eth_getTransactionByHash", json!([signed.hash_hex()])).unwrap();
        assert_eq!(
            tx["from"].as_str().unwrap().to_lowercase(),
            format!("0x{}", addr.to_lower_hex()),
            "{kind}: geth recovered another sender"
        );
    }
    drop(geth);
}

#[test]
fn we_decrypt_a_keystore_created_by_geth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keystore_dir = dir.join("keystore");
    let password = keystore::random_password();
    let password_file = dir.join("password");
    write_secret(&password_file, password.as_bytes()).unwrap();

    let out = run(&[
        "account",
        "new",
        "--datadir",
        p(&dir.join("data")),
        "--keystore",
        p(&keystore_dir),
        "--password",
        p(&password_file),
        "--lightkdf",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Address = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Public address of the key:"))
        .unwrap_or_else(|| panic!("no address in geth's output:\n{stdout}"))
        .trim()
        .parse()
        .unwrap();

    let files: Vec<PathBuf> = fs::read_dir(&keystore_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = fs::read_to_string(&files[0]).unwrap();
    let geth_json: Value = serde_json::from_str(&text).unwrap();

    let key = keystore::decrypt(&geth_json, &password).unwrap();
    assert_eq!(key.address(), printed);
    assert_eq!(
        keystore::decrypt(&geth_json, "wrong").unwrap_err(),
        consort::crypto::CryptoError::WrongPassword
    );

    // geth's --lightkdf parameters are our LIGHT constants.
    let kdf = &geth_json["crypto"]["kdfparams"];
    let light = ScryptParams::LIGHT;
    assert_eq!(kdf["n"], json!(1u64 << light.log_n));
    assert_eq!(kdf["r"], json!(light.r));
    assert_eq!(kdf["p"], json!(light.p));

    // Our encrypt writes the same fields in the same order as geth.
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Array(m.iter().map(|(k, v)| json!([k, shape(v)])).collect()),
            Value::String(_) => json!("string"),
            Value::Number(_) => json!("number"),
            other => other.clone(),
        }
    }
    let ours = keystore::encrypt(&key, &password, ScryptParams::LIGHT);
    assert_eq!(shape(&ours), shape(&geth_json));
    assert_eq!(ours["address"], geth_json["address"]);

    // And our file_name reproduces geth's name from the time inside it.
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    let stamp = name
        .strip_prefix("UTC--")
        .and_then(|rest| rest.split("--").next())
        .unwrap_or_else(|| panic!("unexpected geth file name {name}"));
    // 2006-01-02T15-04-05.999999999Z
    let num = |range: std::ops::Range<usize>| -> u32 { stamp[range].parse().unwrap() };
    assert_eq!(stamp.len(), 30, "{stamp}");
    let date = time::Date::from_calendar_date(
        num(0..4) as i32,
        time::Month::try_from(num(5..7) as u8).unwrap(),
        num(8..10) as u8,
    )
    .unwrap();
    let clock = time::Time::from_hms_nano(
        num(11..13) as u8,
        num(14..16) as u8,
        num(17..19) as u8,
        num(20..29),
    )
    .unwrap();
    let at = time::PrimitiveDateTime::new(date, clock).assume_utc();
    assert_eq!(keystore::file_name(&printed, at), name);
}
