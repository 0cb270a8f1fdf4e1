//! Issue 9: least-privilege nodes. After a real apply, no TCP port of any node can sign
//! with a node's key or offers admin/miner/personal/debug; every port is on 127.0.0.1;
//! applications get `eth,net,web3,txpool` on tx nodes over HTTP and WebSocket (no
//! `clique`: `clique_propose` there is "method not found");
//! consort itself works over the IPC sockets. And geth's `--netrestrict` keeps a stranger
//! that knows the genesis from peering (shown on loopback addresses).

use crate::support::{consort_ok, geth, poll, port_base, topology_copy, NetworkHandle, NodeHandle};
use consort::plan::ports::NodePorts;
use consort::provider::local::NodeOutputs;
use consort::rpc::{self, RpcClient};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Every call an attacker on this machine would try on an open port.
fn forbidden_calls(signer: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("eth_sign", json!([signer, "0xdeadbeef"])),
        (
            "eth_sendTransaction",
            json!([{"from": signer, "to": signer, "value": "0x1"}]),
        ),
        ("personal_listAccounts", json!([])),
        ("admin_nodeInfo", json!([])),
        (
            "admin_addPeer",
            json!([format!("enode://{}@127.0.0.1:1", "ab".repeat(64))]),
        ),
        ("admin_exportChain", json!(["/tmp/consort-exported-chain"])),
        ("miner_stop", json!([])),
        ("debug_traceBlockByNumber", json!(["0x1"])),
    ]
}

/// TCP ports `pid` listens on, with their local IPv4/IPv6 address: the process's socket
/// inodes (`/proc/<pid>/fd`) matched against the kernel's LISTEN sockets.
fn listening(pid: u32) -> Vec<(String, u16)> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address st ... inode
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let addr = if table == "tcp" {
                let n = u32::from_str_radix(addr, 16).unwrap();
                Ipv4Addr::from(n.swap_bytes()).to_string()
            } else {
                format!("v6:{addr}")
            };
            out.push((addr, port));
        }
    }
    out
}

fn node_outputs(net: &NetworkHandle, node: &str) -> NodeOutputs {
    let st = net.state_dir().load().unwrap().unwrap();
    NodeOutputs::from_state(&st, node).unwrap()
}

/// A minimal WebSocket JSON-RPC call (one request, one answer).
fn ws_call(url: &str, method: &str, params: Value) -> Result<Value, String> {
    let (mut sock, _) = tungstenite::connect(url).map_err(|e| e.to_string())?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    sock.send(tungstenite::Message::text(body.to_string()))
        .map_err(|e| e.to_string())?;
    loop {
        match sock.read().map_err(|e| e.to_string())? {
            tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                let _ = sock.close(None);
                if let Some(e) = v.get("error") {
                    return Err(e.to_string());
                }
                return Ok(v["result"].clone());
            }
            tungstenite::Message::Close(_) => return Err("closed".into()),
            _ => {}
        }
    }
}

#[test]
fn no_tcp_port_signs_or_administers_and_consort_works_over_ipc() {
    let net = NetworkHandle::new("three-members");
    let dir = net.dir.path().canonicalize().unwrap();
    topology_copy(&dir, "three-members.yaml", port_base(), None);
    let f = ["-f", "three-members.yaml"];
    consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());

    let output: Value =
        serde_json::from_str(&consort_ok(&dir, &[&f[..], &["output", "--json"]].concat())).unwrap();
    let nodes = output["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 5);
    let signers: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["address"].as_str().map(str::to_string))
        .collect();
    assert_eq!(signers.len(), 3);

    let mut ports_tried = 0;
    for n in &nodes {
        let name = n["name"].as_str().unwrap();
        let o = node_outputs(&net, name);
        // consort's control channel: an IPC socket in a 0700 directory.
        let ipc = n["ipc_path"].as_str().expect("every node has ipc_path");
        assert!(Path::new(ipc).is_absolute(), "{n}");
        let meta = std::fs::metadata(ipc).unwrap();
        assert!(meta.file_type().is_socket(), "{ipc} is not a socket");
        let parent = std::fs::metadata(Path::new(ipc).parent().unwrap()).unwrap();
        assert_eq!(
            parent.permissions().mode() & 0o077,
            0,
            "{ipc}'s dir is open"
        );
        let control = RpcClient::ipc(ipc);
        assert!(control.admin_node_info().is_ok(), "IPC control of {name}");

        match n["role"].as_str().unwrap() {
            "validator" => {
                assert!(n["rpc_url"].is_null(), "{n}");
                assert!(n["ws_url"].is_null(), "{n}");
                let cmdline = std::fs::read(format!("/proc/{}/cmdline", o.pid)).unwrap();
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                for bad in ["--http", "--ws", "--allow-insecure-unlock"] {
                    assert!(
                        !args
                            .iter()
                            .any(|a| a == bad || a.starts_with(&format!("{bad}="))),
                        "{name} runs with {bad}: {args:?}"
                    );
                }
            }
            "tx" => {
                let http = n["rpc_url"].as_str().unwrap();
                let ws = n["ws_url"].as_str().unwrap();
                let app = RpcClient::new(http);
                assert!(app.block_number().is_ok(), "{http}");
                assert!(ws_call(ws, "eth_blockNumber", json!([])).is_ok(), "{ws}");
                // Issue 20 item 13: no `clique` namespace for applications (votes are
                // governance; consort reads the signers over IPC).
                for (method, params) in [
                    ("clique_propose", json!([signers[0], false])),
                    ("clique_discard", json!([signers[0]])),
                    ("clique_getSigners", json!([])),
                ] {
                    let e = app
                        .call_raw(method, params.clone())
                        .unwrap_err()
                        .to_string();
                    assert!(
                        e.contains("does not exist/is not available"),
                        "{method} on {http}: {e}"
                    );
                    let e = ws_call(ws, method, params).unwrap_err();
                    assert!(
                        e.contains("does not exist/is not available"),
                        "{method} on {ws}: {e}"
                    );
                }
                // The application namespaces refuse the dangerous calls on WS too.
                for (method, params) in forbidden_calls(&signers[0]) {
                    let r = ws_call(ws, method, params);
                    assert!(r.is_err(), "{method} answered on {ws}: {r:?}");
                }
            }
            r => panic!("role {r}"),
        }

        // Every TCP socket the process listens on: loopback only, and none serves a
        // forbidden call (authrpc answers 401 without its JWT; p2p speaks no HTTP; the
        // metrics server answers only GETs of its counters).
        let sockets = listening(o.pid);
        assert!(!sockets.is_empty(), "{name} listens on nothing?");
        for (addr, port) in &sockets {
            assert_eq!(addr, "127.0.0.1", "{name} listens on {addr}:{port}");
        }
        std::thread::scope(|scope| {
            for (_, port) in &sockets {
                let signers = &signers;
                scope.spawn(move || {
                    let url = format!("http://127.0.0.1:{port}");
                    let probe = RpcClient::new(url.clone()).with_timeout(Duration::from_secs(2));
                    for signer in signers {
                        for (method, params) in forbidden_calls(signer) {
                            match probe.call_raw(method, params) {
                                Ok(v) => panic!("{method} answered on {name}'s {url}: {v}"),
                                // Not HTTP at all (p2p): no call can get an answer there.
                                Err(e) if e.is_unreachable() => return,
                                Err(_) => {}
                            }
                        }
                    }
                });
            }
        });
        ports_tried += sockets.len();
    }
    // 5 p2p + 5 authrpc + 5 Prometheus metrics + 2 × (HTTP + WS).
    assert_eq!(ports_tried, 19, "unexpected number of listening ports");
    assert!(!Path::new("/tmp/consort-exported-chain").exists());

    // consort's own status works over IPC and sees a healthy network.
    let status: Value =
        serde_json::from_str(&consort_ok(&dir, &[&f[..], &["status", "--json"]].concat())).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
}

fn free_port(ip: Ipv4Addr) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// A non-sealing geth with the given genesis, listening on `ip`, controlled over IPC.
fn peer_node(dir: &Path, name: &str, ip: Ipv4Addr, extra: &[String]) -> NodeHandle {
    let datadir = dir.join(name);
    let out = std::process::Command::new(&geth().path)
        .arg("init")
        .arg("--datadir")
        .arg(&datadir)
        .arg(dir.join("genesis.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p2p = free_port(ip);
    let mut args: Vec<String> = vec![
        format!("--datadir={}", datadir.display()),
        "--networkid=4243".into(),
        "--nodiscover".into(),
        "--nat=none".into(),
        format!("--port={p2p}"),
        format!("--ipcpath={}", datadir.join("geth.ipc").display()),
        "--authrpc.addr=127.0.0.1".into(),
        "--authrpc.port=0".into(),
        "--cache=32".into(),
    ];
    // geth binds p2p on all addresses with --port alone: pin it to `ip` via a config.
    let config = datadir.join("config.toml");
    std::fs::write(
        &config,
        format!("[Node.P2P]\nListenAddr = \"{ip}:{p2p}\"\nNoDiscovery = true\n"),
    )
    .unwrap();
    args.push(format!("--config={}", config.display()));
    args.extend(extra.iter().cloned());
    let ports = NodePorts {
        p2p,
        http: None,
        ws: None,
        metrics: None,
    };
    let node = NodeHandle::start(&datadir, ports, &args);
    poll(
        &format!("{name} to answer IPC"),
        Duration::from_secs(30),
        || Ok(node.rpc.admin_node_info().ok().map(|_| ())),
    );
    node
}

fn enode(n: &NodeHandle, ip: Ipv4Addr) -> String {
    let info = n.rpc.admin_node_info().unwrap();
    let id = rpc::enode_pubkey(&info.enode).unwrap().to_string();
    format!("enode://{id}@{ip}:{}", n.ports.p2p)
}

fn peers(n: &NodeHandle) -> BTreeSet<String> {
    n.rpc
        .admin_peers()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.pubkey().map(str::to_string))
        .collect()
}

/// `--netrestrict` (what Azure VMs get with their VNet's range): the restricted node
/// peers with a listed address, and a stranger with the same genesis gets nowhere, in
/// either direction. On one machine every connection to 127.0.0.1 comes from 127.0.0.1,
/// so the listed "consortium" address here is 127.0.0.2 and the node dials it.
#[test]
fn netrestrict_admits_listed_addresses_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let genesis = json!({
        "config": {"chainId": 4243, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
            "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
            "clique": {"period": 5, "epoch": 30000}},
        "difficulty": "0x1", "gasLimit": "0x1c9c380",
        "extradata": format!("0x{}{}{}", "0".repeat(64), "11".repeat(20), "0".repeat(130)),
        "alloc": {}
    });
    std::fs::write(dir.join("genesis.json"), genesis.to_string()).unwrap();
    let member_ip = Ipv4Addr::new(127, 0, 0, 2);
    let stranger_ip = Ipv4Addr::new(127, 0, 0, 3);
    let home = Ipv4Addr::LOCALHOST;

    let member = peer_node(&dir, "member", member_ip, &[]);
    let restricted = peer_node(
        &dir,
        "restricted",
        home,
        &[format!("--netrestrict={member_ip}/32")],
    );
    let stranger = peer_node(&dir, "stranger", stranger_ip, &[]);
    let member_id = rpc::enode_pubkey(&enode(&member, member_ip))
        .unwrap()
        .to_string();
    let stranger_id = rpc::enode_pubkey(&enode(&stranger, stranger_ip))
        .unwrap()
        .to_string();
    let restricted_id = rpc::enode_pubkey(&enode(&restricted, home))
        .unwrap()
        .to_string();

    // The stranger dials the restricted node (its connection comes from 127.0.0.1, not in
    // the list), and the restricted node is asked to dial the stranger (127.0.0.3).
    stranger
        .rpc
        .admin_add_peer(&enode(&restricted, home))
        .unwrap();
    restricted
        .rpc
        .admin_add_peer(&enode(&stranger, stranger_ip))
        .unwrap();
    // The listed address is admitted.
    restricted
        .rpc
        .admin_add_peer(&enode(&member, member_ip))
        .unwrap();
    poll(
        "the restricted node to peer with the member",
        Duration::from_secs(30),
        || Ok(peers(&restricted).contains(&member_id).then_some(())),
    );
    // By now the stranger's dials had as long as the member's; watch a while longer: it
    // must never get in.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert!(
            !peers(&restricted).contains(&stranger_id),
            "stranger peered"
        );
        assert!(
            !peers(&stranger).contains(&restricted_id),
            "stranger peered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Control: without the restriction the same stranger does get in.
    let open = peer_node(&dir, "open", home, &[]);
    let open_id = rpc::enode_pubkey(&enode(&open, home)).unwrap().to_string();
    stranger.rpc.admin_add_peer(&enode(&open, home)).unwrap();
    poll(
        "the stranger to peer with an unrestricted node",
        Duration::from_secs(30),
        || Ok(peers(&open).contains(&stranger_id).then_some(())),
    );
    assert!(!open_id.is_empty());
}
