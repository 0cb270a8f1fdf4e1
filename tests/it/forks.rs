//! Issue 23 on real geth: a Clique fork of equal weight that geth never leaves on its own,
//! and the repair consort's `repair_forks` applies to it (`provider::local::forks`).
//!
//! Three signers, two of them up (the one in turn for block 1 is not), each alone: each
//! seals its own out-of-turn block 1 (weight 1, so both heads weigh 2), and then neither
//! may seal block 2 (a signer waits `3/2 + 1 = 2` blocks). Peered, they stay apart: geth
//! syncs only from a heavier peer. Rewinding the loser below the fork (`debug_setHead`)
//! and restarting it lets it sync the winner's block 1, after which both seal on one chain.

use crate::support::{clique_genesis, geth_account, geth_init, poll, NodeHandle};
use consort::consensus::forks::{self, Head, Repair};
use consort::plan::ports::NodePorts;
use consort::provider::local::forks as local_forks;
use consort::provider::local::process::PortAllocator;
use consort::rpc::{BlockId, RpcClient};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CHAIN_ID: u64 = 4343;

struct Signer {
    address: String,
    datadir: PathBuf,
    password: PathBuf,
    ports: NodePorts,
}

impl Signer {
    fn ipc(&self) -> RpcClient {
        RpcClient::ipc(self.datadir.join("geth.ipc")).with_timeout(Duration::from_secs(5))
    }

    /// Started alone (no discovery, no peers); sealing at once if `mine`.
    fn start(&self, mine: bool) -> NodeHandle {
        let d = self.datadir.to_str().unwrap().to_string();
        let mut args: Vec<String> = [
            "--datadir",
            &d,
            "--networkid",
            &CHAIN_ID.to_string(),
            "--syncmode",
            "full",
            "--port",
            &self.ports.p2p.to_string(),
            "--nodiscover",
            "--nat",
            "none",
            "--authrpc.port",
            "0",
            "--miner.etherbase",
            &self.address,
            "--unlock",
            &self.address,
            "--password",
            self.password.to_str().unwrap(),
            "--allow-insecure-unlock",
            "--cache",
            "64",
            "--verbosity",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if mine {
            args.push("--mine".into());
        }
        let node = NodeHandle::start(&self.datadir, self.ports, &args);
        let rpc = self.ipc();
        poll("its signer unlocked", Duration::from_secs(60), || {
            Ok(rpc
                .call_raw("eth_sign", serde_json::json!([self.address, "0x00"]))
                .is_ok()
                .then_some(()))
        });
        node
    }

    fn head(&self) -> Head {
        let b = self
            .ipc()
            .block_by_number(BlockId::Latest)
            .unwrap()
            .unwrap();
        Head {
            node: self.address.clone(),
            number: b.number,
            hash: b.hash,
            total_difficulty: b.total_difficulty.unwrap(),
        }
    }

    fn enode(&self) -> String {
        self.ipc().admin_node_info().unwrap().enode
    }
}

#[test]
fn an_equal_weight_fork_stays_until_the_rival_is_rewound_below_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let password = dir.join("password");
    std::fs::write(&password, "test-password\n").unwrap();
    let mut addresses: Vec<(String, PathBuf)> = (0..3)
        .map(|i| {
            let datadir = dir.join(format!("s{i}"));
            let address = geth_account(&datadir.join("keystore"), &password);
            (address, datadir)
        })
        .collect();
    addresses.sort();
    let sorted: Vec<&str> = addresses.iter().map(|(a, _)| a.as_str()).collect();
    let genesis = clique_genesis(CHAIN_ID, &sorted, serde_json::json!({}));
    let genesis_file = dir.join("genesis.json");
    std::fs::write(&genesis_file, serde_json::to_vec(&genesis).unwrap()).unwrap();
    let mut alloc = PortAllocator::new(Some(43000 + (std::process::id() % 150) as u16 * 100), []);
    // Block 1 is in turn for the signer at index 1 % 3 (sorted by address): leave it down.
    let signers: Vec<Signer> = [0, 2]
        .iter()
        .map(|&i| {
            let (address, datadir) = addresses[i].clone();
            geth_init(&datadir, &genesis_file);
            Signer {
                address,
                datadir,
                password: password.clone(),
                ports: alloc.node().unwrap(),
            }
        })
        .collect();
    let (a, b) = (&signers[0], &signers[1]);
    let _node_a = a.start(true);
    let mut node_b = b.start(true);

    // Each seals its own block 1 out of turn: two heads of weight 1 + 1.
    let heads = poll("both at block 1", Duration::from_secs(30), || {
        let (x, y) = (a.head(), b.head());
        Ok((x.number >= 1 && y.number >= 1).then_some((x, y)))
    });
    assert_eq!((heads.0.number, heads.1.number), (1, 1), "{heads:?}");
    assert_ne!(heads.0.hash, heads.1.hash);
    assert_eq!(heads.0.total_difficulty, 2);
    assert_eq!(heads.1.total_difficulty, 2);

    // Peered, geth does not leave it: over two of its 10 s sync cycles nothing changes.
    assert!(a.ipc().admin_add_peer(&b.enode()).unwrap());
    poll("the two peered", Duration::from_secs(30), || {
        Ok((a.ipc().net_peer_count().map_err(|e| e.to_string())? == 1).then_some(()))
    });
    let until = Instant::now() + Duration::from_secs(22);
    while Instant::now() < until {
        assert_eq!(a.head(), heads.0, "a moved on its own");
        assert_eq!(b.head(), heads.1, "b moved on its own");
        std::thread::sleep(Duration::from_millis(500));
    }

    // The repair: the lower hash wins the tie; the other is rewound and restarted.
    let both = [heads.0.clone(), heads.1.clone()];
    let (best, repairs) = forks::plan(&both).unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].1, Repair::Rewind);
    let (winner, loser, loser_is_b) = if best.node == a.address {
        (a, b, true)
    } else {
        (b, a, false)
    };
    let to = local_forks::rewind_to_common_ancestor(&loser.ipc(), &winner.ipc(), 1).unwrap();
    assert_eq!(to, 0, "they share only genesis");
    assert_eq!(loser.ipc().block_number().unwrap(), 0);
    // Restarted without sealing (as consort restarts a validator), it dials the winner
    // (as consort's restart does: the winner would redial it only after geth's backoff)
    // and syncs from it, now heavier, at the handshake; then it seals again.
    let _restarted = if loser_is_b {
        node_b.stop();
        b.start(false)
    } else {
        drop(_node_a);
        a.start(false)
    };
    assert!(loser.ipc().admin_add_peer(&winner.enode()).unwrap());
    poll(
        "the loser on the winner's block 1",
        Duration::from_secs(60),
        || {
            let h = loser
                .ipc()
                .block_by_number(BlockId::Number(1))
                .map_err(|e| e.to_string())?;
            Ok(h.is_some_and(|h| h.hash == best.hash).then_some(()))
        },
    );
    loser
        .ipc()
        .call_raw("miner_start", serde_json::json!([]))
        .unwrap();
    // Both seal on one chain: block 3 reached by both, one hash.
    poll(
        "both at block 3 on one chain",
        Duration::from_secs(60),
        || {
            let x = a
                .ipc()
                .block_by_number(BlockId::Number(3))
                .map_err(|e| e.to_string())?;
            let y = b
                .ipc()
                .block_by_number(BlockId::Number(3))
                .map_err(|e| e.to_string())?;
            Ok(match (x, y) {
                (Some(x), Some(y)) if x.hash == y.hash => Some(()),
                (Some(x), Some(y)) => return Err(format!("block 3: {} vs {}", x.hash, y.hash)),
                _ => None,
            })
        },
    );
}
