//! Issue 20, "no one gets in": a link planted where consort makes a private directory, a
//! state file naming a directory outside the state dir, a substituted geth, a starved or
//! cross-origin dashboard, and a second local user. Real geth 1.13.15 where a node is
//! involved.

use crate::support::{consort, consort_cmd, consort_ok, port_base, run_logged, NetworkHandle};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The smallest network (one validator, one tx node) in `dir`, named `name`.
fn dev_single(dir: &Path, name: &str, chain_id: u64) -> PathBuf {
    let file = dir.join("consort.yaml");
    std::fs::write(
        &file,
        format!(
            "network:
  name: {name}
  chain_id: {chain_id}
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
members:
  - name: contoso
    validators: 1
    tx_nodes: 1
provider:
  local:
    base_port: {}
",
            port_base()
        ),
    )
    .unwrap();
    file
}

/// A dev_single network `name` in a new temp dir: its handle, the dir and `-f` value.
fn dev_net(name: &str, chain_id: u64) -> (NetworkHandle, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let file = dev_single(&root, name, chain_id);
    let net = handle_in(tmp, &root, name);
    (net, root, file.to_string_lossy().into_owned())
}

/// A network handle whose state dir is `<dir>/.consort` (so Drop stops its nodes).
fn handle_in(tmp: tempfile::TempDir, dir: &Path, network: &str) -> NetworkHandle {
    NetworkHandle {
        dir: tmp,
        base: dir.join(".consort"),
        network: network.into(),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Item 8: the node dirs are so deep that the IPC sockets go to `$XDG_RUNTIME_DIR/consort`,
/// where another user has planted a link to a directory of theirs. apply refuses the link,
/// naming it, and the directory it points at keeps its mode (it was chmod-ed 0700 before).
#[test]
fn a_link_planted_at_the_socket_dir_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let deep = root.join("d".repeat(100));
    std::fs::create_dir(&deep).unwrap();
    let file = dev_single(&deep, "sockdir", 727201);
    let run = root.join("run");
    let victim = root.join("victim");
    std::fs::create_dir(&run).unwrap();
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let planted = run.join("consort");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let net = handle_in(tmp, &deep, "sockdir");

    let f = file.to_string_lossy().into_owned();
    let args = ["-f", f.as_str(), "apply", "--yes"];
    let mut cmd = consort_cmd(&deep, &args);
    cmd.env("XDG_RUNTIME_DIR", &run);
    let out = run_logged(cmd, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "apply went through a planted link");
    assert!(
        err.contains(&planted.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(mode(&victim), 0o755, "the link's target was chmod-ed");
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    assert!(std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
    drop(net);
}

/// Item 9: a state file whose node names another directory as its data dir; destroy
/// deletes the node's own dir under the state dir and nothing outside.
#[test]
fn destroy_deletes_nothing_outside_the_state_dir_whatever_state_names() {
    let (net, root, f) = dev_net("outside", 727202);
    consort_ok(&root, &["-f", &f, "apply", "--yes"]);

    let precious = root.join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("keep.txt"), b"mine").unwrap();
    let sd = net.state_dir();
    let mut st: Value = serde_json::from_slice(&std::fs::read(sd.state_file()).unwrap()).unwrap();
    let nodes = ["node.contoso-validator-0", "node.contoso-tx-0"];
    for n in nodes {
        let outputs = &mut st["resources"][n]["outputs"];
        assert!(outputs["datadir"].is_string(), "{n}: {outputs}");
        outputs["datadir"] = Value::from(precious.to_string_lossy().into_owned());
    }
    std::fs::write(sd.state_file(), serde_json::to_vec_pretty(&st).unwrap()).unwrap();

    let out = consort(&root, &["-f", &f, "destroy", "--yes"]);
    assert!(out.status.success(), "destroy failed");
    assert_eq!(
        std::fs::read(precious.join("keep.txt")).unwrap(),
        b"mine",
        "destroy deleted a directory named in state.json"
    );
    assert!(
        !sd.nodes_dir().exists(),
        "the node dirs themselves are gone"
    );
    assert!(
        net.running().is_empty(),
        "geth still runs: {:?}",
        net.running()
    );
}

/// A child process killed on Drop.
struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Item 12: `consort dashboard` under `ulimit -n 256` while another local user holds 300
/// connections with half-sent requests: the owner's page is still answered within 2 s,
/// and a POST from another origin (or not JSON) is refused.
#[test]
fn the_dashboard_serves_its_owner_past_300_idle_connections_and_refuses_other_origins() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let (_net, root, f) = dev_net("starve", 727203);
    consort_ok(&root, &["-f", &f, "apply", "--yes"]);

    let args = ["-f", f.as_str(), "dashboard", "--port", "0", "--no-open"];
    let mut cmd = consort_cmd(&root, &args);
    cmd.stdout(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run consort dashboard");
    let lines = crate::support::stdout_lines(&mut child);
    let dash = Killed(child);
    let url = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("consort dashboard prints its URL");
    let url = url.strip_prefix("Dashboard: ").unwrap().to_string();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", dash.0.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some("256"),
        "{open_files}"
    );
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let owner = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // The owner's page answers before the flood (and the first sample is taken).
    crate::support::poll(
        "the dashboard's first snapshot",
        Duration::from_secs(30),
        || {
            Ok(owner
                .get(format!("{url}api/snapshot"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ()))
        },
    );

    // Another user: 300 connections, each with half a request, held open.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("connect (the kernel completes it whatever the server does)");
        s.write_all(b"GET /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        held.push(s);
    }
    // The owner, several times while they are held: each answered within 2 s.
    for i in 0..5 {
        let t0 = Instant::now();
        let r = owner
            .get(format!("{url}api/snapshot"))
            .send()
            .unwrap_or_else(|e| panic!("request {i} of the owner was starved: {e}"));
        assert!(r.status().is_success(), "{}", r.status());
        let rpc = owner
            .post(format!("{url}api/rpc"))
            .json(&serde_json::json!({"method": "eth_blockNumber", "params": []}))
            .send()
            .unwrap_or_else(|e| panic!("rpc {i} of the owner was starved: {e}"));
        assert!(rpc.status().is_success(), "{}", rpc.status());
        eprintln!("owner request {i}: {:?}", t0.elapsed());
    }
    assert_eq!(held.len(), 300);
    drop(held);

    // Cross-origin and non-JSON POSTs.
    let post = |origin: Option<&str>, content_type: &str| {
        let mut r = owner
            .post(format!("{url}api/rpc"))
            .header("content-type", content_type)
            .body(r#"{"method":"eth_blockNumber","params":[]}"#);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post(Some("http://evil.example"), "text/plain"), 403);
    assert_eq!(post(Some("http://evil.example"), "application/json"), 403);
    assert_eq!(post(None, "text/plain"), 415);
    let own = url.trim_end_matches('/');
    assert_eq!(post(Some(own), "application/json"), 200);

    // Idle connections do not stay: a half-sent request, and a kept-alive connection
    // after its answer, are closed by the server (header-read timeout, 5 s) — read until
    // EOF, with a deadline well past it.
    let read_to_eof = |mut s: std::net::TcpStream| -> String {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut got = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return String::from_utf8_lossy(&got).into_owned()
                }
                Err(e) => panic!("the server kept an idle connection open: {e}"),
            }
        }
    };
    let mut half = std::net::TcpStream::connect(addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    read_to_eof(half);
    let mut kept = std::net::TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /api/methods HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let answer = read_to_eof(kept);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(dash);
}

/// A shell script that leaves a mark when run, then runs the real geth.
fn wrapper(path: &Path, mark: &Path) {
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\ntouch {}\nexec {} \"$@\"\n",
            mark.display(),
            crate::support::geth().path.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Item 11: a wrapper placed in consort's geth cache is never run (not even for `geth
/// version`), and a geth named with CONSORT_GETH that is swapped after the nodes recorded
/// its SHA-256 is refused before it runs, naming its path and both hashes.
#[test]
fn a_substituted_geth_is_never_run() {
    let (net, root, f) = dev_net("swapped", 727204);
    let mark = root.join("wrapper-ran");

    // 1. The cache holds a wrapper that prints the right version (via the real geth).
    let cache = root.join("cache");
    let cached = cache.join("consort/geth-1.13.15/geth");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    wrapper(&cached, &mark);
    let args = ["-f", f.as_str(), "apply", "--yes"];
    let mut cmd = consort_cmd(&root, &args);
    // No CONSORT_GETH, no Go and no geth on PATH: only the cache could answer.
    cmd.env_remove("CONSORT_GETH")
        .env("XDG_CACHE_HOME", &cache)
        .env("PATH", "/usr/bin:/bin");
    let out = run_logged(cmd, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!mark.exists(), "the wrapper in the cache ran");
    assert!(err.contains(&cached.display().to_string()), "{err}");
    assert!(net.running().is_empty());

    // 2. An explicit geth: the nodes record its hash; after a swap, nothing runs it.
    let own = root.join("bin/geth");
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::copy(&crate::support::geth().path, &own).unwrap();
    let good = consort::chain::geth::sha256_file(&own).unwrap();
    let with_own = |args: &[&str]| {
        let mut cmd = consort_cmd(&root, args);
        cmd.env("CONSORT_GETH", &own);
        run_logged(cmd, args)
    };
    assert!(with_own(&["-f", &f, "apply", "--yes"]).status.success());
    let st = net.state_dir().load().unwrap().unwrap();
    for n in ["contoso-validator-0", "contoso-tx-0"] {
        let o = consort::provider::local::NodeOutputs::from_state(&st, n).unwrap();
        assert_eq!(o.geth_sha256, good, "{n}");
    }
    assert!(with_own(&["-f", &f, "stop"]).status.success());
    wrapper(&own, &mark);
    let bad = consort::chain::geth::sha256_file(&own).unwrap();
    for args in [&["-f", &f, "start"][..], &["-f", &f, "apply", "--yes"][..]] {
        let out = with_own(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran a swapped geth");
        assert!(
            err.contains(&own.display().to_string()) && err.contains(&good) && err.contains(&bad),
            "{args:?}: {err}"
        );
    }
    assert!(!mark.exists(), "the swapped geth ran");
    assert!(net.running().is_empty());
}

/// The other local user of the second-user test: created if missing (needs root, as CI
/// runs); returns (uid, gid).
fn other_user() -> (u32, u32) {
    const NAME: &str = "consort-intruder";
    let id = |flag: &str| {
        std::process::Command::new("id")
            .args([flag, NAME])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if id("-u").is_none() {
        let out = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                NAME,
            ])
            .output()
            .expect("run useradd");
        // Another test may have created it meanwhile (exit 9: exists).
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "the second-user test needs a second local user and could not create {NAME} (run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// Runs, as `uid`, a probe over `paths`: every file it can read or write, directory it
/// can list or write into (to plant or replace an entry), socket it can connect to.
fn probe_as(uid: u32, gid: u32, paths: &[PathBuf]) -> Vec<String> {
    const PROBE: &str = r#"
for p in "$@"; do
  if [ -L "$p" ]; then echo "LINK $p"
  elif [ -d "$p" ]; then
    ls "$p" >/dev/null 2>&1 && echo "LIST $p"
    if touch "$p/.intruder" 2>/dev/null; then echo "WRITE-INTO $p"; rm -f "$p/.intruder"; fi
  elif [ -S "$p" ]; then
    [ -w "$p" ] && echo "CONNECT $p"
  else
    head -c1 "$p" >/dev/null 2>&1 && echo "READ $p"
    [ -w "$p" ] && echo "WRITE $p"
  fi
done
exit 0
"#;
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args(["--", "sh", "-c", PROBE, "probe"])
        .args(paths)
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Done-when of issue 20: a real other uid finds no file, socket or directory of
/// consort's that it can read or redirect — with the directories above the state dir
/// open to it (0755), so only consort's own modes stand in its way. Checked on a running
/// network (IPC sockets up) and again on a stopped one, with the short socket directory
/// of a network whose node dirs are too deep for a unix socket path.
#[test]
fn a_second_local_user_can_read_or_redirect_nothing_of_consorts() {
    let (uid, gid) = other_user();
    assert_ne!(uid, unsafe { libc::geteuid() });
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let deep = root.join("d".repeat(100));
    std::fs::create_dir(&deep).unwrap();
    for d in [&root, &deep] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = root.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dev_single(&deep, "secondus", 727205);
    let net = handle_in(tmp, &deep, "secondus");
    let f = file.to_string_lossy().into_owned();
    let consort_here = |args: &[&str]| {
        let mut cmd = consort_cmd(&deep, args);
        cmd.env("XDG_RUNTIME_DIR", &run);
        let out = run_logged(cmd, args);
        assert!(out.status.success(), "consort {args:?} failed");
    };
    consort_here(&["-f", &f, "apply", "--yes"]);
    let ours = || {
        let mut paths = Vec::new();
        walk(&deep.join(".consort"), &mut paths);
        walk(&run.join("consort"), &mut paths);
        paths
    };
    let running = ours();
    assert!(
        running
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "ipc")),
        "no IPC socket found to probe: {running:?}"
    );
    assert!(running.iter().any(|p| p.ends_with("state.json")));
    let found = probe_as(uid, gid, &running);
    assert!(found.is_empty(), "uid {uid} gets at: {found:#?}");
    // The probe does find what is open to it (so a silent probe means something).
    let control = probe_as(uid, gid, &[root.clone(), file.clone()]);
    assert_eq!(
        control,
        vec![
            format!("LIST {}", root.display()),
            format!("READ {}", file.display())
        ]
    );

    consort_here(&["-f", &f, "stop"]);
    let found = probe_as(uid, gid, &ours());
    assert!(found.is_empty(), "uid {uid} gets at (stopped): {found:#?}");
    consort_here(&["-f", &f, "destroy", "--yes"]);
    drop(net);
}
