//! Phase-1 primitives against real geth 1.13.15: a single-signer Clique node started with
//! `process::start`, checked through every RPC helper, then stopped.

use crate::support::{clique_genesis, geth_account, geth_init, node_ports, poll, NodeHandle};
use consort::provider::local::process::{self, Stopped};
use consort::rpc::{parse_address, BlockId, RpcError};
use std::path::Path;
use std::time::Duration;

const CHAIN_ID: u64 = 4242;
const BALANCE_WEI: u128 = 1_000_000_000_000_000_000_000; // 1000 ether

fn new_account(keystore: &Path, password_file: &Path) -> String {
    geth_account(keystore, password_file)
}

fn genesis(signer: &str) -> serde_json::Value {
    let hex = signer.trim_start_matches("0x");
    clique_genesis(
        CHAIN_ID,
        &[signer],
        serde_json::json!({ hex: {"balance": format!("{BALANCE_WEI:#x}")} }),
    )
}

#[test]
fn single_clique_node_seals_and_answers_rpc_then_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let datadir = dir.join("node");
    let keystore = datadir.join("keystore");
    let password = dir.join("password");
    std::fs::create_dir_all(&datadir).unwrap();
    std::fs::write(&password, "test-password\n").unwrap();
    let signer = new_account(&keystore, &password);

    let genesis_file = dir.join("genesis.json");
    std::fs::write(
        &genesis_file,
        serde_json::to_vec_pretty(&genesis(&signer)).unwrap(),
    )
    .unwrap();
    geth_init(&datadir, &genesis_file);

    let ports = node_ports();
    let d = datadir.to_str().unwrap().to_string();
    let args: Vec<String> = [
        "--datadir",
        &d,
        "--networkid",
        &CHAIN_ID.to_string(),
        "--syncmode",
        "full",
        "--port",
        &ports.p2p.to_string(),
        "--nodiscover",
        "--nat",
        "none",
        "--ipcdisable",
        "--http",
        "--http.addr",
        "127.0.0.1",
        "--http.port",
        &ports.http.unwrap().to_string(),
        "--http.api",
        "eth,net,web3,txpool,clique,admin",
        "--authrpc.addr",
        "127.0.0.1",
        "--authrpc.port",
        "0",
        "--mine",
        "--miner.etherbase",
        &signer,
        "--unlock",
        &signer,
        "--password",
        password.to_str().unwrap(),
        "--allow-insecure-unlock",
        "--cache",
        "64",
        "--verbosity",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut node = NodeHandle::start(&datadir, ports, &args);
    assert!(process::is_ours(node.id, &datadir));
    assert!(!process::is_ours(node.id, &dir.join("elsewhere")));

    let rpc = node.rpc.clone();
    let chain_id = poll("RPC to answer", Duration::from_secs(30), || {
        match rpc.chain_id() {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.is_unreachable() => Err(format!("{e}\nlog:\n{}", node.log_tail())),
            Err(e) => panic!("{e}"),
        }
    });
    assert_eq!(chain_id, CHAIN_ID);

    // The head advances: the signer seals.
    let first = poll("block 2", Duration::from_secs(30), || {
        let n = rpc.block_number().map_err(|e| e.to_string())?;
        Ok((n >= 2).then_some(n))
    });
    let later = poll("the head to advance", Duration::from_secs(10), || {
        let n = rpc.block_number().map_err(|e| e.to_string())?;
        Ok((n > first).then_some(n))
    });
    assert!(later > first);

    let latest = rpc
        .block_by_number(BlockId::Latest)
        .unwrap()
        .expect("latest block");
    assert!(latest.number >= later);
    assert_eq!(latest.hash.len(), 66, "{latest:?}");
    assert!(latest.timestamp > 1_600_000_000, "{latest:?}");
    // Clique: miner is zero; the 65-byte seal sits at the end of extraData.
    assert_eq!(latest.miner.0, [0u8; 20]);
    // A lone signer is always in turn: every block weighs 2 on top of genesis' 1.
    assert_eq!(latest.total_difficulty, Some(1 + 2 * latest.number as u128));
    assert_eq!(
        latest.extra_data.len(),
        2 + 2 * (32 + 65),
        "{}",
        latest.extra_data
    );
    let genesis_block = rpc.block_by_number(BlockId::Number(0)).unwrap().unwrap();
    assert_eq!(genesis_block.number, 0);
    assert!(genesis_block
        .extra_data
        .contains(signer.trim_start_matches("0x")));
    assert!(rpc
        .block_by_number(BlockId::Number(1 << 40))
        .unwrap()
        .is_none());

    let signer_addr = parse_address(&signer).unwrap();
    assert_eq!(rpc.clique_get_signers().unwrap(), vec![signer_addr]);

    let info = rpc.admin_node_info().unwrap();
    assert!(info.enode.starts_with("enode://"), "{info:?}");
    assert!(info.enode.contains(&format!(":{}", ports.p2p)), "{info:?}");
    assert_eq!(
        info.genesis.as_deref(),
        Some(rpc.genesis_hash().unwrap().as_str())
    );
    assert_eq!(rpc.net_peer_count().unwrap(), 0);
    assert!(rpc.admin_peers().unwrap().is_empty());
    // Adding a peer that does not exist is accepted (geth keeps dialling); removing it too.
    // The public key of secret key 1 (the curve generator G): valid, and nobody runs it.
    let g = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
             483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
    let ghost = format!("enode://{g}@127.0.0.1:1");
    assert!(rpc.admin_add_peer(&ghost).unwrap());
    assert!(rpc.admin_remove_peer(&ghost).unwrap());
    assert!(rpc.admin_add_trusted_peer(&ghost).unwrap());
    assert!(rpc.admin_remove_trusted_peer(&ghost).unwrap());

    // Clique votes: propose, see it, discard.
    let candidate = parse_address("0x00000000000000000000000000000000000000aa").unwrap();
    assert!(rpc.clique_proposals().unwrap().is_empty());
    rpc.clique_propose(&candidate, true).unwrap();
    let props = rpc.clique_proposals().unwrap();
    assert_eq!(props.len(), 1);
    assert_eq!(props[0].address, candidate);
    assert!(props[0].authorize);
    rpc.clique_discard(&candidate).unwrap();
    assert!(rpc.clique_proposals().unwrap().is_empty());

    assert_eq!(
        rpc.eth_get_balance(&signer_addr, BlockId::Latest).unwrap(),
        BALANCE_WEI
    );
    // The unlocked signer signs; an account the node does not hold cannot.
    let sig = rpc.eth_sign(&signer_addr, "0x00").unwrap();
    assert_eq!(sig.len(), 2 + 130, "{sig}");
    assert!(rpc.eth_sign(&candidate, "0x00").is_err());
    assert_eq!(rpc.eth_get_balance(&candidate, BlockId::Latest).unwrap(), 0);
    assert_eq!(
        rpc.eth_get_transaction_count(&signer_addr, BlockId::Latest)
            .unwrap(),
        0
    );
    assert!(rpc.eth_gas_price().unwrap() > 0);
    let none = rpc
        .eth_get_transaction_receipt(&format!("0x{}", "00".repeat(32)))
        .unwrap();
    assert!(none.is_none());
    // A node-side error names the URL and the method.
    let err = rpc.eth_send_raw_transaction("0x1234").unwrap_err();
    assert!(matches!(err, RpcError::Node { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(rpc.url()) && msg.contains("eth_sendRawTransaction"),
        "{msg}"
    );

    // Stop: SIGTERM is enough for geth; afterwards the process is gone and not ours.
    let id = node.id;
    assert_eq!(node.stop(), Stopped::Terminated);
    assert!(!process::is_ours(id, &datadir));
    assert!(process::start_time_of(id.pid).is_none());
    assert!(rpc.block_number().unwrap_err().is_unreachable());
    let log = process::log_tail(&datadir, 400);
    assert!(log.contains("Successfully sealed new block"), "{log}");
    assert!(
        log.contains("Got interrupt, shutting down"),
        "SIGTERM reached geth: {log}"
    );
    // Stopping again signals nothing.
    assert_eq!(
        process::stop(id, &datadir, Duration::from_secs(1)).unwrap(),
        Stopped::NotRunning
    );
}
