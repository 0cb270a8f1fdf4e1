//! Issue 10 end to end: what application developers do with a consort network, through the
//! real binary on real geth 1.13.15 with foundry's `cast`, ethers and solc (from npm) and
//! web3.py (from PyPI):
//! a transfer with cast's, ethers' and web3.py's default fees confirms (EIP-1559 and legacy); a contract compiled
//! for london deploys and runs; `source <(consort output --format env)` drives cast; an
//! `address:` account is funded in genesis and one added later by transfer; `stop` then
//! `start` keeps the head and balances; `logs` shows the node's log.

use crate::support::{consort_ok, npm_tool, poll, port_base, run_with_deadline, NetworkHandle};
use consort::crypto::SecretKey;
use consort::rpc::{parse_address, BlockId, RpcClient};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ETHER: u128 = 1_000_000_000_000_000_000;
/// Clique period of the test network: "confirms within 3 block periods" plus start-up slack.
const PERIOD: u64 = 1;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

pub(crate) fn cast(dir: &Path) -> Command {
    let mut c = Command::new(npm_tool("cast"));
    c.current_dir(dir)
        // Only what the test passes: no ETH_* from the environment, no foundry.toml above.
        .env_remove("ETH_RPC_URL")
        .env_remove("ETH_KEYSTORE")
        .env_remove("ETH_PASSWORD")
        .env_remove("ETH_FROM")
        .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1");
    c
}

/// cast's arguments to send from `account` (an entry of `consort output --json`'s
/// accounts) through `rpc_url`.
pub(crate) fn cast_key_args(account: &Value, rpc_url: &str) -> Vec<String> {
    let file = |k: &str| account[k].as_str().unwrap().to_string();
    vec![
        "--keystore".into(),
        file("keystore"),
        "--password-file".into(),
        file("password_file"),
        "--rpc-url".into(),
        rpc_url.into(),
    ]
}

pub(crate) fn cast_ok(dir: &Path, args: &[&str], timeout: Duration) -> String {
    let mut c = cast(dir);
    c.args(args);
    let out = run_with_deadline(c, timeout);
    assert!(
        out.status.success(),
        "cast {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Counter.sol compiled by solcjs for evmVersion london: its creation bytecode.
fn counter_bytecode(dir: &Path) -> String {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/Counter.sol"),
    )
    .unwrap();
    let input = serde_json::json!({
        "language": "Solidity",
        "sources": { "Counter.sol": { "content": source } },
        "settings": {
            "evmVersion": "london",
            "outputSelection": { "*": { "*": ["evm.bytecode.object"] } }
        }
    });
    let input_path = dir.join("solc-input.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "{} --standard-json < {}",
            npm_tool("solcjs").display(),
            input_path.display()
        ))
        .current_dir(dir);
    let out = run_with_deadline(c, Duration::from_secs(120));
    assert!(out.status.success(), "solcjs failed");
    let text = String::from_utf8(out.stdout).unwrap();
    // solcjs may print a notice before the JSON.
    let v = json(&text[text.find('{').expect("JSON from solcjs")..]);
    let bin = v["contracts"]["Counter.sol"]["Counter"]["evm"]["bytecode"]["object"]
        .as_str()
        .unwrap_or_else(|| panic!("no bytecode in {v}"));
    assert!(bin.len() > 100, "{bin}");
    format!("0x{bin}")
}

/// ethers v6 with its default fees, as the README shows it: prints the receipt's status
/// and the transaction's type.
const ETHERS_SEND: &str = r#"
const { ethers } = require("ethers");
const fs = require("fs");
(async () => {
  const provider = new ethers.JsonRpcProvider(process.env.ETH_RPC_URL);
  const wallet = await ethers.Wallet.fromEncryptedJson(
    fs.readFileSync(process.env.ETH_KEYSTORE, "utf8"),
    fs.readFileSync(process.env.ETH_PASSWORD, "utf8").trim()
  );
  const tx = await wallet.connect(provider).sendTransaction({
    to: process.argv[1],
    value: ethers.parseEther("1"),
  });
  const receipt = await tx.wait();
  console.log(`status ${receipt.status} type ${tx.type}`);
  provider.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
"#;

/// web3.py 7 with its default fees: first shows a Clique block does not read without
/// ExtraDataToPOAMiddleware, then sends 1 ether with the middleware in.
const WEB3PY_SEND: &str = r#"
import os, sys
from web3 import Web3
from web3.exceptions import ExtraDataLengthError
from web3.middleware import ExtraDataToPOAMiddleware, SignAndSendRawMiddlewareBuilder

w3 = Web3(Web3.HTTPProvider(os.environ["ETH_RPC_URL"]))
try:
    w3.eth.get_block("latest")
    print("without middleware: read")
except ExtraDataLengthError:
    print("without middleware: ExtraDataLengthError")
w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
w3.eth.get_block("latest")
with open(os.environ["ETH_KEYSTORE"]) as k, open(os.environ["ETH_PASSWORD"]) as p:
    account = w3.eth.account.from_key(w3.eth.account.decrypt(k.read(), p.read().strip()))
w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
h = w3.eth.send_transaction(
    {"from": account.address, "to": sys.argv[1], "value": w3.to_wei(1, "ether")}
)
r = w3.eth.wait_for_transaction_receipt(h, timeout=60)
print(f"status {r['status']} type {int(r['type'])}")
"#;

struct Net {
    handle: NetworkHandle,
    dir: PathBuf,
    file: &'static str,
}

impl Net {
    fn consort(&self, args: &[&str]) -> String {
        consort_ok(&self.dir, &[&["-f", self.file][..], args].concat())
    }
    fn output(&self) -> Value {
        json(&self.consort(&["output", "--json"]))
    }
}

fn tx_rpc(output: &Value) -> String {
    let url = output["wallet"]["rpc_url"].as_str().unwrap().to_string();
    let tx = output["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "tx")
        .unwrap();
    assert_eq!(tx["rpc_url"].as_str(), Some(url.as_str()), "{output}");
    url
}

#[test]
fn applications_transact_deploy_and_survive_stop_start() {
    let handle = NetworkHandle::new("apps");
    let dir = handle.dir.path().canonicalize().unwrap();
    let external = SecretKey::random().address().to_checksum();
    let later = SecretKey::random().address().to_checksum();
    let topology = format!(
        "network:
  name: apps
  chain_id: 1337101
  consensus:
    clique: {{ period: {PERIOD}, epoch: 30000 }}
members:
  - name: contoso
    validators: 1
    tx_nodes: 1
    accounts:
      - name: deployer
        balance: 1000 ether
      - name: wallet
        balance: 42 ether
        address: {external}
provider:
  local: {{ base_port: {} }}
",
        port_base()
    );
    std::fs::write(dir.join("apps.yaml"), &topology).unwrap();
    let net = Net {
        handle,
        dir: dir.clone(),
        file: "apps.yaml",
    };
    let out = net.consort(&["apply", "--yes"]);
    assert!(out.contains("Network apps is healthy"), "{out}");
    // The human output says what to compile for and what a wallet needs.
    assert!(out.contains("EVM version: london"), "{out}");
    assert!(out.contains("currency symbol ETH"), "{out}");

    let output = net.output();
    assert_eq!(output["network"]["evm_version"], "london", "{output}");
    assert_eq!(output["wallet"]["chain_id"], 1337101);
    assert_eq!(output["wallet"]["chain_id_hex"], "0x14670d");
    assert_eq!(output["wallet"]["currency_symbol"], "ETH");
    let rpc_url = tx_rpc(&output);
    let rpc = RpcClient::new(rpc_url.clone());
    let accounts = output["accounts"].as_array().unwrap();
    let deployer = accounts.iter().find(|a| a["name"] == "deployer").unwrap();
    let keystore = deployer["keystore"].as_str().unwrap().to_string();
    let password = deployer["password_file"].as_str().unwrap().to_string();
    let deployer_addr = deployer["address"].as_str().unwrap().to_string();

    // ---- the `address:` account: funded in genesis, no key held, none shown.
    let wallet = accounts.iter().find(|a| a["name"] == "wallet").unwrap();
    assert_eq!(
        wallet["address"].as_str(),
        Some(external.as_str()),
        "{wallet}"
    );
    assert_eq!(wallet["key_held"], false);
    assert!(wallet["keystore"].is_null() && wallet["password_file"].is_null());
    let ext = parse_address(&external).unwrap();
    assert_eq!(
        rpc.eth_get_balance(&ext, BlockId::Latest).unwrap(),
        42 * ETHER
    );
    assert!(
        !net.handle
            .state_dir()
            .keys_dir()
            .join("accounts/contoso/wallet")
            .exists(),
        "consort keeps no files for an address: account"
    );

    // ---- cast with its default fees (EIP-1559, a 1 wei tip on an idle chain) confirms.
    let to = SecretKey::random().address().to_checksum();
    let timeout = Duration::from_secs(3 * PERIOD + 60);
    let receipt = cast_ok(
        &dir,
        &[
            "send",
            "--keystore",
            &keystore,
            "--password-file",
            &password,
            "--rpc-url",
            &rpc_url,
            &to,
            "--value",
            "1ether",
        ],
        timeout,
    );
    assert!(receipt.contains("1 (success)"), "{receipt}");
    // ... and with --legacy.
    let receipt = cast_ok(
        &dir,
        &[
            "send",
            "--keystore",
            &keystore,
            "--password-file",
            &password,
            "--rpc-url",
            &rpc_url,
            "--legacy",
            &to,
            "--value",
            "1ether",
        ],
        timeout,
    );
    assert!(receipt.contains("1 (success)"), "{receipt}");
    // ... and ethers v6 with its defaults (the README's snippet).
    let prefix = npm_tool("cast")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut node = Command::new("node");
    node.arg("-e")
        .arg(ETHERS_SEND)
        .arg(&to)
        .current_dir(&dir)
        .env("NODE_PATH", &prefix)
        .env("ETH_RPC_URL", &rpc_url)
        .env("ETH_KEYSTORE", &keystore)
        .env("ETH_PASSWORD", &password);
    let out = run_with_deadline(node, timeout);
    assert!(out.status.success(), "ethers failed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "status 1 type 2"
    );
    // ... and web3.py with its defaults, which needs the POA middleware to read a Clique
    // block (the README's snippet).
    let mut py = Command::new(crate::support::web3_python());
    py.arg("-c")
        .arg(WEB3PY_SEND)
        .arg(&to)
        .current_dir(&dir)
        .env("ETH_RPC_URL", &rpc_url)
        .env("ETH_KEYSTORE", &keystore)
        .env("ETH_PASSWORD", &password);
    let out = run_with_deadline(py, timeout);
    assert!(out.status.success(), "web3.py failed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "without middleware: ExtraDataLengthError\nstatus 1 type 2"
    );
    let to_addr = parse_address(&to).unwrap();
    assert_eq!(
        rpc.eth_get_balance(&to_addr, BlockId::Latest).unwrap(),
        4 * ETHER
    );

    // ---- a contract compiled for london: deployed with `cast send --create`, then used.
    let bytecode = counter_bytecode(&dir);
    let receipt = json(&cast_ok(
        &dir,
        &[
            "send",
            "--keystore",
            &keystore,
            "--password-file",
            &password,
            "--rpc-url",
            &rpc_url,
            "--json",
            "--create",
            &bytecode,
        ],
        timeout,
    ));
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let contract = receipt["contractAddress"].as_str().unwrap().to_string();
    cast_ok(
        &dir,
        &[
            "send",
            "--keystore",
            &keystore,
            "--password-file",
            &password,
            "--rpc-url",
            &rpc_url,
            &contract,
            "inc()",
        ],
        timeout,
    );
    let count = cast_ok(
        &dir,
        &["call", "--rpc-url", &rpc_url, &contract, "count()(uint256)"],
        Duration::from_secs(30),
    );
    assert_eq!(count.trim(), "1", "{count}");

    // ---- `source <(consort output --format env)`, then cast with no flags at all.
    let env = net.consort(&["output", "--format", "env"]);
    assert!(
        env.contains(&format!("export ETH_RPC_URL={rpc_url}\n")),
        "{env}"
    );
    assert!(env.contains("export CHAIN_ID=1337101\n"), "{env}");
    assert!(
        env.contains(&format!("export ETH_KEYSTORE={keystore}\n")),
        "{env}"
    );
    assert!(
        env.contains(&format!("export ETH_PASSWORD={password}\n")),
        "{env}"
    );
    let secret = std::fs::read_to_string(&password).unwrap();
    assert!(
        !env.contains(secret.trim()),
        "a password leaked into env output"
    );
    let bin_dirs = format!(
        "{}:{}:{}",
        Path::new(env!("CARGO_BIN_EXE_consort"))
            .parent()
            .unwrap()
            .display(),
        npm_tool("cast").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut sh = Command::new("bash");
    sh.arg("-c")
        .arg(
            "set -euo pipefail; source <(consort -f apps.yaml output --format env); \
             cast block-number; cast balance \"$CONSORT_ACCOUNT_ADDRESS\"; \
             cast send \"$CONSORT_ACCOUNT_ADDRESS\" --value 0 >/dev/null; echo sent",
        )
        .current_dir(&dir)
        .env("PATH", bin_dirs)
        .env("CONSORT_GETH", &crate::support::geth().path)
        .env_remove("CONSORT_STATE_DIR")
        .env_remove("ETH_RPC_URL")
        .env_remove("ETH_KEYSTORE")
        .env_remove("ETH_PASSWORD");
    let out = run_with_deadline(sh, timeout);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let block: u64 = lines[0].trim().parse().unwrap_or_else(|_| panic!("{text}"));
    assert!(block >= 3, "{text}");
    let deployer_wei: u128 = lines[1].trim().parse().unwrap_or_else(|_| panic!("{text}"));
    assert!(
        deployer_wei < 996 * ETHER && deployer_wei > 995 * ETHER,
        "{text}"
    );
    assert_eq!(lines[2], "sent", "{text}");

    // --member picks a member's node and account; an unknown one is refused by name.
    assert_eq!(
        net.consort(&["output", "--format", "env", "--member", "contoso"]),
        env
    );
    let bad = crate::support::consort(
        &dir,
        &[
            "-f",
            "apps.yaml",
            "output",
            "--format",
            "env",
            "--member",
            "nobody",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("members: contoso"));

    // ---- foundry: a profile for london.
    let foundry = net.consort(&["output", "--format", "foundry"]);
    assert!(
        foundry.contains("[profile.apps]\nevm_version = \"london\"\n"),
        "{foundry}"
    );
    assert!(
        foundry.contains(&format!("eth_rpc_url = \"{rpc_url}\"")),
        "{foundry}"
    );
    assert!(foundry.contains("chain_id = 1337101"), "{foundry}");
    assert!(foundry.contains("[rpc_endpoints]\n"), "{foundry}");

    // ---- logs: the node's geth log, its last N lines.
    let log_file = net
        .handle
        .state_dir()
        .nodes_dir()
        .join("contoso-validator-0/geth.log");
    let shown = net.consort(&["logs", "contoso-validator-0", "-n", "5"]);
    assert_eq!(shown.lines().count(), 5, "{shown}");
    let whole = std::fs::read_to_string(&log_file).unwrap();
    for l in shown.lines() {
        assert!(whole.contains(l), "{l:?} is not in {}", log_file.display());
    }
    // -F follows: lines geth writes after the command started arrive.
    {
        use std::io::BufRead;
        let mut c = crate::support::consort_cmd(
            &dir,
            &[
                "-f",
                "apps.yaml",
                "logs",
                "contoso-tx-0",
                "-n",
                "0",
                "--follow",
            ],
        );
        let mut child = c.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The tx node imports a block every period and logs it.
        let line = rx.recv_timeout(Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        let line = line.expect("consort logs --follow printed a new line");
        assert!(!line.is_empty());
    }
    let missing = crate::support::consort(&dir, &["-f", "apps.yaml", "logs", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("contoso-tx-0"));

    // ---- stop keeps everything; start continues the chain from its head.
    let head_before = rpc.block_number().unwrap();
    let deployer_a = parse_address(&deployer_addr).unwrap();
    let balances = |rpc: &RpcClient| {
        (
            rpc.eth_get_balance(&deployer_a, BlockId::Latest).unwrap(),
            rpc.eth_get_balance(&ext, BlockId::Latest).unwrap(),
            rpc.eth_get_balance(&to_addr, BlockId::Latest).unwrap(),
        )
    };
    let before = balances(&rpc);
    let out = net.consort(&["stop"]);
    assert!(out.contains("Stopped 2 node(s) of network apps"), "{out}");
    assert!(
        net.handle.running().is_empty(),
        "nodes still running after stop"
    );
    assert!(rpc.block_number().is_err(), "the tx node still answers");
    let status = crate::support::consort(&dir, &["-f", "apps.yaml", "status"]);
    assert!(
        !status.status.success(),
        "status of a stopped network is not healthy"
    );
    let out = net.consort(&["start"]);
    assert!(out.contains("Network apps is healthy"), "{out}");
    let output = net.output();
    let rpc = RpcClient::new(tx_rpc(&output));
    let head_after = rpc.block_number().unwrap();
    assert!(head_after >= head_before, "{head_after} < {head_before}");
    assert_eq!(balances(&rpc), before, "balances changed across stop/start");
    poll("blocks after start", Duration::from_secs(30), || {
        Ok((rpc.block_number().map_err(|e| e.to_string())? > head_after).then_some(()))
    });
    // A second start has nothing to do.
    let out = net.consort(&["start"]);
    assert!(out.contains("running already"), "{out}");

    // ---- an `address:` account added later is funded by transfer.
    let edited = topology.replace(
        "provider:",
        &format!(
            "      - name: later\n        balance: 3 ether\n        address: {later}\nprovider:"
        ),
    );
    assert_ne!(edited, topology);
    std::fs::write(dir.join("apps.yaml"), edited).unwrap();
    let plan = net.consort(&["plan"]);
    assert!(plan.contains("fund.contoso.later"), "{plan}");
    assert!(plan.contains("no key held"), "{plan}");
    net.consort(&["apply", "--yes"]);
    assert_eq!(
        rpc.eth_get_balance(&parse_address(&later).unwrap(), BlockId::Latest)
            .unwrap(),
        3 * ETHER
    );

    // ---- apply of a stopped network starts it too, on its data.
    let head = rpc.block_number().unwrap();
    // -q: only the result line, no progress.
    let out = net.consort(&["-q", "stop"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("Stopped 2 node(s)"), "{out}");
    let status = crate::support::consort(&dir, &["-f", "apps.yaml", "status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("stopped"),
        "status does not say the network is stopped"
    );
    // -v: each change as it starts, too.
    let out = net.consort(&["-v", "apply", "--yes"]);
    assert!(out.contains("  … ~ node.contoso-tx-0\n"), "{out}");
    assert!(out.contains("restart (process not running)"), "{out}");
    assert!(out.contains("Network apps is healthy"), "{out}");
    let rpc = RpcClient::new(tx_rpc(&net.output()));
    assert!(rpc.block_number().unwrap() >= head);
    assert_eq!(
        rpc.eth_get_balance(&parse_address(&later).unwrap(), BlockId::Latest)
            .unwrap(),
        3 * ETHER
    );
    net.consort(&["destroy", "--yes"]);
}
