//! Issue 13 on real geth 1.13.15 through the real binary: `consort dashboard` in a real
//! headless Chromium (Debian's package, driven over WebDriver by chromedriver) shows every
//! node and the head, finds a transaction sent with cast through its search box, and
//! leaves screenshots under `target/dashboard-screenshots/`; its HTTP API refuses every
//! method outside its read list; `output --format prometheus` is YAML whose every target
//! serves `chain_head_block`; `graph --live` draws what the nodes report.

use crate::apps::cast_ok;
use crate::support::{
    consort_cmd, consort_ok, poll, port_base, stdout_lines, topology_copy, NetworkHandle,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: &[&str] = &[
    "contoso-validator-0",
    "contoso-tx-0",
    "fabrikam-validator-0",
    "fabrikam-tx-0",
    "northwind-validator-0",
];

/// A child process killed on Drop (the dashboard, chromedriver).
pub(crate) struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// three-members with a 1 s period, applied; returns (handle, topology file, base port).
pub(crate) fn network(name: &str, chain_id: u64) -> (NetworkHandle, PathBuf, u16) {
    let net = NetworkHandle::new(name);
    let base = port_base();
    let file = topology_copy(
        net.dir.path(),
        "three-members.yaml",
        base,
        Some((name, chain_id)),
    );
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("period: 2 ", "period: 1 ")).unwrap();
    consort_ok(
        net.dir.path(),
        &["apply", "--yes", "-f", file.to_str().unwrap()],
    );
    (net, file, base)
}

/// Starts `consort dashboard --port 0 --no-open`; returns it and its URL (from the
/// `Dashboard: URL` line it prints).
pub(crate) fn dashboard(dir: &Path, file: &Path) -> (Killed, String) {
    let mut cmd = consort_cmd(
        dir,
        &[
            "dashboard",
            "--port",
            "0",
            "--no-open",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run consort dashboard");
    let rx = stdout_lines(&mut child);
    let child = Killed(child);
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("consort dashboard prints its URL");
    let url = line
        .strip_prefix("Dashboard: ")
        .unwrap_or_else(|| panic!("first line is not `Dashboard: URL`: {line:?}"))
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    (child, url)
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `GET /api/snapshot` of the dashboard at `url`.
pub(crate) fn snapshot(url: &str) -> Result<Value, String> {
    http()
        .get(format!("{url}api/snapshot"))
        .send()
        .and_then(|r| r.json())
        .map_err(|e| e.to_string())
}

fn rpc_status(url: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{url}api/rpc"))
        .json(&body)
        .send()
        .expect("POST /api/rpc");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn read_only_api_prometheus_targets_and_live_graph() {
    let (net, file, base) = network("dashapi", 1713131);
    let dir = net.dir.path();
    let f = file.to_str().unwrap();

    // ---- output --format prometheus: YAML, a target per node, each serving chain_head_block.
    let text = consort_ok(dir, &["output", "--format", "prometheus", "-f", f]);
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"));
    let jobs = yaml["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    assert_eq!(jobs.len(), 1, "{text}");
    let job = &jobs[0];
    assert_eq!(job["job_name"].as_str(), Some("consort-dashapi"));
    let path = job["metrics_path"].as_str().unwrap().to_string();
    let groups = job["static_configs"].as_sequence().unwrap();
    let mut seen = Vec::new();
    for g in groups {
        let node = g["labels"]["node"].as_str().unwrap().to_string();
        assert!(
            g["labels"]["member"]
                .as_str()
                .is_some_and(|m| node.starts_with(m)),
            "{text}"
        );
        assert!(
            matches!(g["labels"]["role"].as_str(), Some("validator" | "tx")),
            "{text}"
        );
        for t in g["targets"].as_sequence().unwrap() {
            let target = t.as_str().unwrap();
            assert!(target.starts_with("127.0.0.1:"), "{target}");
            let body = http()
                .get(format!("http://{target}{path}"))
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.text())
                .unwrap_or_else(|e| panic!("{node}: scraping {target}{path}: {e}"));
            assert!(
                body.lines().any(|l| l.starts_with("chain_head_block ")),
                "{node}: no chain_head_block in its metrics"
            );
        }
        seen.push(node);
    }
    seen.sort();
    let mut want: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    // ... and `output --json` names each node's metrics_url, recorded in state: node i
    // (topology order) on base + 5 nodes + 2 × 2 tx nodes + i, right after the RPC block.
    let out: Value =
        serde_json::from_str(&consort_ok(dir, &["output", "--json", "-f", f])).unwrap();
    let nodes = out["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), NODES.len());
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["name"], NODES[i]);
        let want = format!("http://127.0.0.1:{}{path}", base + 9 + i as u16);
        assert_eq!(n["metrics_url"].as_str(), Some(want.as_str()), "{n}");
    }

    // ---- the dashboard's API: its read list answers, everything else is refused.
    let (_dash, url) = dashboard(dir, &file);
    let snapshot = poll(
        "the dashboard's first snapshot",
        Duration::from_secs(30),
        || {
            let r = http()
                .get(format!("{url}api/snapshot"))
                .send()
                .map_err(|e| e.to_string())?;
            if r.status() != 200 {
                return Ok(None);
            }
            let v: Value = r.json().map_err(|e| e.to_string())?;
            Ok((v["head"].as_u64().unwrap_or(0) > 0).then_some(v))
        },
    );
    assert!(snapshot["error"].is_null(), "{snapshot}");
    let text = snapshot.to_string();
    for secret in ["password", "keystore", "key_file", "private"] {
        assert!(!text.contains(secret), "the snapshot mentions {secret}");
    }
    let (status, body) = rpc_status(&url, json!({"method": "eth_blockNumber", "params": []}));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["result"].as_str().is_some_and(|s| s.starts_with("0x")),
        "{body}"
    );
    let (status, body) = rpc_status(&url, json!({"method": "clique_getSigners", "params": []}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"].as_array().map(Vec::len), Some(3), "{body}");
    let refused = [
        "admin_addPeer",
        "admin_nodeInfo",
        "admin_peers",
        "miner_start",
        "miner_stop",
        "personal_unlockAccount",
        "personal_listWallets",
        "debug_traceTransaction",
        "eth_sendRawTransaction",
        "eth_sendTransaction",
        "eth_sign",
        "eth_call",
        "clique_propose",
        "clique_discard",
        "txpool_content",
        "rpc_modules",
        "",
    ];
    for m in refused {
        let (status, body) = rpc_status(&url, json!({"method": m, "params": []}));
        assert_eq!(status, 403, "{m} was not refused: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("read-only")),
            "{body}"
        );
    }
    // Not JSON-RPC's batch form either, nor another path or verb.
    let (status, _) = rpc_status(&url, json!([{"method": "eth_blockNumber"}]));
    assert_eq!(status, 400);
    let r = http().get(format!("{url}api/rpc")).send().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // A page elsewhere cannot reach it through DNS rebinding: the Host must be loopback.
    let r = http()
        .get(format!("{url}api/snapshot"))
        .header("Host", "attacker.example")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // ---- graph --live: what the nodes report — every planned link up, the live signers.
    let svg = consort_ok(dir, &["graph", "--live", "-f", f]);
    let doc = roxmltree::Document::parse(&svg).expect("graph --live is XML");
    let links: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("link ")))
        .collect();
    assert_eq!(links.len(), 10, "a full mesh of 5 nodes");
    assert!(
        links
            .iter()
            .all(|l| l.attribute("class") == Some("link up")),
        "every planned link up: {svg}"
    );
    let signers = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.contains(" signer ")))
        .count();
    assert_eq!(signers, 3, "{svg}");

    // ---- the banner's assessment is `consort status`'s: two of three signers down halt
    // the chain, and both say so with the same reasons.
    let st = net.state_dir().load().unwrap().unwrap();
    for n in ["fabrikam-validator-0", "northwind-validator-0"] {
        let o = consort::provider::local::NodeOutputs::from_state(&st, n).unwrap();
        consort::provider::local::process::stop(
            o.process(),
            Path::new(&o.datadir),
            Duration::from_secs(10),
        )
        .unwrap();
    }
    let snap = poll(
        "the dashboard to see the halt",
        Duration::from_secs(30),
        || {
            let v = self::snapshot(&url)?;
            Ok((!v["health"]["halted"].is_null()).then_some(v))
        },
    );
    let health = &snap["health"];
    assert_eq!(health["healthy"], false, "{health}");
    assert_eq!(
        health["halted"],
        json!({"online": 1, "signers": 3, "needed": 2}),
        "{health}"
    );
    let out = crate::support::consort(dir, &["status", "--json", "-f", f]);
    assert_eq!(out.status.code(), Some(1));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["chain_halted"], health["halted"], "{status}");
    // The same reasons, once the remaining nodes have noticed their peers are gone (a
    // moment apart, the two looks may differ by a dropped peer or a block's age).
    poll(
        "the banner and `consort status` to agree",
        Duration::from_secs(30),
        || {
            let status: Value = serde_json::from_slice(
                &crate::support::consort(dir, &["status", "--json", "-f", f]).stdout,
            )
            .map_err(|e| e.to_string())?;
            let snap = self::snapshot(&url)?;
            let timeless = |p: &str| !p.contains("s old");
            let mut banner: Vec<String> = snap["health"]["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .filter(|r| timeless(r))
                .collect();
            let mut said: Vec<String> = std::iter::once(format!(
                "chain halted: {} of {} signers online, Clique needs {}",
                status["chain_halted"]["online"],
                status["chain_halted"]["signers"],
                status["chain_halted"]["needed"]
            ))
            .chain(
                status["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|n| {
                        let name = n["name"].as_str().unwrap_or("").to_string();
                        n["problems"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p.as_str())
                            .filter(|p| timeless(p))
                            .map(move |p| format!("{name}: {p}"))
                            .collect::<Vec<_>>()
                    }),
            )
            .collect();
            banner.sort();
            said.sort();
            assert!(
                banner.iter().any(|r| r.contains("process not running")),
                "{banner:?}"
            );
            Ok((banner == said).then_some(()).or_else(|| {
                eprintln!("banner {banner:?}\nstatus {said:?}");
                None
            }))
        },
    );
}

/// chromedriver on a free port, Debian's chromium headless.
fn chromedriver() -> (Killed, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test needs chromedriver and chromium (`apt-get install chromium chromium-driver`; .ci/run installs them): {e}")
        });
    let child = Killed(child);
    let url = format!("http://127.0.0.1:{port}");
    poll("chromedriver to listen", Duration::from_secs(30), || {
        Ok(http()
            .get(format!("{url}/status"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ()))
    });
    (child, url)
}

fn screenshot_dir() -> PathBuf {
    // target/tmp → target/dashboard-screenshots (a CI artifact).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls the page's text of `css` until `ok` says yes (or panics after `timeout`).
async fn wait_text(
    c: &fantoccini::Client,
    css: &str,
    timeout: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(fantoccini::Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting on {css}; last text: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `text` into the page's search box and submits it.
async fn search(c: &fantoccini::Client, text: &str) {
    let q = c.find(fantoccini::Locator::Css("#q")).await.unwrap();
    q.clear().await.unwrap();
    q.send_keys(text).await.unwrap();
    c.find(fantoccini::Locator::Css("#search button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[test]
fn dashboard_in_a_real_browser_finds_a_cast_transaction() {
    let (net, file, _) = network("dashweb", 1713132);
    let dir = net.dir.path();
    let (_dash, url) = dashboard(dir, &file);
    let (_driver, driver_url) = chromedriver();
    let shots = screenshot_dir();

    let out: Value = serde_json::from_str(&consort_ok(
        dir,
        &["output", "--json", "-f", file.to_str().unwrap()],
    ))
    .unwrap();
    let rpc_url = out["wallet"]["rpc_url"].as_str().unwrap().to_string();
    let treasury = crate::support::output_account(&out, "treasury");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1440,1800",
                         "--hide-scrollbars"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("a WebDriver session with headless chromium")
    });
    rt.block_on(async {
        client.goto(&url).await.unwrap();
        // Every node by name, and a head number above the genesis block.
        let nodes = wait_text(&client, "#nodes", Duration::from_secs(60), |t| {
            NODES.iter().all(|n| t.contains(n))
        })
        .await;
        assert!(nodes.contains("running"), "{nodes}");
        wait_text(&client, "#t-head", Duration::from_secs(60), |t| {
            t.trim_start_matches('#')
                .replace(',', "")
                .parse::<u64>()
                .is_ok_and(|n| n > 0)
        })
        .await;
        let banner = wait_text(&client, "#banner", Duration::from_secs(60), |t| {
            t.starts_with("Healthy")
        })
        .await;
        assert!(banner.contains("5 node(s)"), "{banner}");
        // The topology picture: a group per member, every node in it.
        let svg_nodes = client
            .find_all(fantoccini::Locator::Css("#graph g.node"))
            .await
            .unwrap();
        assert_eq!(svg_nodes.len(), NODES.len());
    });

    // A transaction with cast (outside the runtime: blocking), then found by its hash.
    let to = "0x00000000000000000000000000000000000c0de1";
    let key = crate::apps::cast_key_args(&treasury, &rpc_url);
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let receipt = cast_ok(
        dir,
        &[&["send"][..], &key, &[to, "--value", "1.5ether", "--json"]].concat(),
        Duration::from_secs(90),
    );
    let receipt: Value = serde_json::from_str(receipt.trim()).expect("cast --json receipt");
    let hash = receipt["transactionHash"].as_str().unwrap().to_string();
    let block = u64::from_str_radix(
        receipt["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();

    rt.block_on(async {
        search(&client, &hash).await;
        let page = wait_text(&client, "#detail-body", Duration::from_secs(30), |t| {
            t.contains(&hash) && t.contains("success")
        })
        .await;
        assert!(page.contains("1.5 ETH"), "{page}");
        assert!(page.contains(&format!("#{block}")), "{page}");
        assert!(
            page.contains("contoso/treasury"),
            "the sender's member account: {page}"
        );
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join("transaction.png"), png).unwrap();

        // Its block, through the search box too: who sealed it, and the transaction in it.
        search(&client, &block.to_string()).await;
        let page = wait_text(&client, "#detail-body", Duration::from_secs(30), |t| {
            t.contains("Sealed by") && t.contains(&format!("#{block}"))
        })
        .await;
        assert!(page.contains("-validator-0"), "the signer's node: {page}");
        let listed = client
            .find(fantoccini::Locator::Css(&format!(
                r##"#detail-body a[href="#/tx/{hash}"]"##
            )))
            .await;
        assert!(
            listed.is_ok(),
            "the transaction is not listed in its block: {page}"
        );
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join("block.png"), png).unwrap();

        // And the recipient's address page.
        search(&client, to).await;
        let page = wait_text(&client, "#detail-body", Duration::from_secs(30), |t| {
            t.contains("Balance")
        })
        .await;
        assert!(page.contains("1.5 ETH"), "{page}");
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join("address.png"), png).unwrap();

        // Back to the overview: the transaction's block among the latest, then the picture
        // an operator keeps open.
        client.goto(&url).await.unwrap();
        wait_text(&client, "#latest", Duration::from_secs(30), |t| {
            t.contains(&format!("#{block}"))
        })
        .await;
        wait_text(&client, "#banner", Duration::from_secs(60), |t| {
            t.starts_with("Healthy")
        })
        .await;
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join("overview.png"), png).unwrap();
    });

    // A transaction the validators do not seal (its max fee, 1 wei, is below the base
    // fee): once pending for more than 3 periods the snapshot lists it, and its page
    // shows its tip and why it waits.
    let mut c = crate::apps::cast(dir);
    c.arg("send")
        .args(&key)
        .args(crate::truth::BELOW_BASE_FEE)
        .args(["--async", to, "--value", "1"]);
    let sent = crate::support::run_with_deadline(c, Duration::from_secs(60));
    assert!(sent.status.success(), "{sent:?}");
    let cheap = String::from_utf8_lossy(&sent.stdout)
        .trim()
        .to_ascii_lowercase();
    poll(
        "the snapshot to list the stuck transaction",
        Duration::from_secs(60),
        || {
            let v = snapshot(&url)?;
            let listed = v["pending_transactions"]
                .as_array()
                .is_some_and(|l| l.iter().any(|t| t["hash"] == cheap.as_str()));
            Ok(listed.then_some(()))
        },
    );
    rt.block_on(async {
        search(&client, &cheap).await;
        let page = wait_text(&client, "#detail-body", Duration::from_secs(30), |t| {
            t.contains(&cheap) && t.contains("Not sealed")
        })
        .await;
        assert!(page.contains("pending"), "{page}");
        assert!(page.contains("1 wei (max priority fee)"), "{page}");
        assert!(
            page.contains("max fee 1 wei is below the base fee"),
            "{page}"
        );
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join("pending-transaction.png"), png).unwrap();
        client.goto(&url).await.unwrap();
        wait_text(&client, "#banner", Duration::from_secs(30), |t| {
            t.starts_with("Unhealthy") && t.contains(&cheap)
        })
        .await;
    });

    // `consort stop` with the page open: it says stopped (the sampler went on).
    consort_ok(dir, &["stop", "-f", file.to_str().unwrap()]);
    rt.block_on(async {
        let banner = wait_text(&client, "#banner", Duration::from_secs(30), |t| {
            t.starts_with("Stopped")
        })
        .await;
        assert!(banner.contains("consort start"), "{banner}");
        let running = wait_text(&client, "#t-nodes", Duration::from_secs(30), |t| {
            t.starts_with("0 /")
        })
        .await;
        assert_eq!(running, "0 / 5");
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join("stopped.png"), png).unwrap();
        client.close().await.unwrap();
    });
    eprintln!("screenshots in {}", shots.display());
}
