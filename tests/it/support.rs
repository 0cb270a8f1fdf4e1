//! Shared helpers for integration tests: the geth binary (built if missing, never
//! skipped), free ports, and handles that stop geth processes on Drop so a failing test
//! never leaks a node.
#![allow(dead_code)]

use consort::chain::geth::{ensure_geth, GethBinary};
use consort::events::{Event, EventSink};
use consort::plan::ports::NodePorts;
use consort::provider::local::process::{self, PortAllocator, ProcessId};
use consort::rpc::RpcClient;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const GETH_VERSION: &str = "1.13.15";

/// geth 1.13.15: found like consort finds it, or built into the cache with Go. A test that
/// needs geth fails loudly here if neither works; it never skips.
pub fn geth() -> &'static GethBinary {
    static GETH: OnceLock<GethBinary> = OnceLock::new();
    GETH.get_or_init(|| {
        let sink: EventSink = Arc::new(|e| match e {
            Event::Phase { message } => eprintln!("[support] {message} …"),
            Event::PhaseDone { message, elapsed } => {
                eprintln!("[support] {message}: done in {elapsed:.1?}")
            }
            Event::Warning { message } => eprintln!("[support] warning: {message}"),
            _ => {}
        });
        match ensure_geth(None, GETH_VERSION, &sink) {
            Ok(g) => g,
            Err(e) => {
                panic!("integration tests need geth {GETH_VERSION} and could not get it: {e}")
            }
        }
    })
}

/// Free ports for test nodes, shared by all tests of this binary so parallel tests never
/// pick the same ones; the base is spread by pid so concurrent test runs rarely meet.
pub fn node_ports() -> NodePorts {
    static ALLOC: OnceLock<Mutex<PortAllocator>> = OnceLock::new();
    let alloc = ALLOC.get_or_init(|| {
        let base = 40000 + (std::process::id() % 200) as u16 * 100;
        Mutex::new(PortAllocator::new(Some(base), []))
    });
    alloc
        .lock()
        .unwrap()
        .node()
        .expect("free ports for a test node")
}

/// Polls `f` until it returns Some or `timeout` passes (then panics with `what` and the
/// last observation).
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f() {
            Ok(Some(v)) => return v,
            Ok(None) => "not yet".to_string(),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One geth process started by a test; stopped (SIGTERM, then SIGKILL) on Drop.
pub struct NodeHandle {
    pub id: ProcessId,
    pub datadir: PathBuf,
    pub ports: NodePorts,
    pub rpc: RpcClient,
    stopped: bool,
}

impl NodeHandle {
    pub fn start(datadir: &Path, ports: NodePorts, args: &[String]) -> NodeHandle {
        let id = process::start(&geth().path, args, datadir)
            .unwrap_or_else(|e| panic!("starting geth in {}: {e}", datadir.display()));
        NodeHandle {
            id,
            datadir: datadir.to_path_buf(),
            ports,
            // Over HTTP when the test gave it a port, else its IPC socket in the data dir.
            rpc: match ports.http {
                Some(p) => RpcClient::local(p),
                None => RpcClient::ipc(datadir.join("geth.ipc")),
            },
            stopped: false,
        }
    }

    /// Stops the node now; returns how.
    pub fn stop(&mut self) -> process::Stopped {
        self.stopped = true;
        process::stop(self.id, &self.datadir, Duration::from_secs(10)).expect("stop geth")
    }

    pub fn log_tail(&self) -> String {
        process::log_tail(&self.datadir, 30)
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = process::stop(self.id, &self.datadir, Duration::from_secs(5));
        }
    }
}

/// Stops every geth a test network started, on Drop: the processes recorded in the
/// network's state and any `consort.pid` left in its node dirs (both only after the /proc
/// check). Keeps the temp dir alive as long as the handle.
pub struct NetworkHandle {
    pub dir: tempfile::TempDir,
    /// `<dir>/.consort`
    pub base: PathBuf,
    pub network: String,
}

impl NetworkHandle {
    pub fn new(network: &str) -> NetworkHandle {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().canonicalize().unwrap().join(".consort");
        NetworkHandle {
            dir,
            base,
            network: network.to_string(),
        }
    }

    pub fn state_dir(&self) -> consort::state::StateDir {
        consort::state::StateDir::new(&self.base, &self.network)
    }

    /// (pid, start time, data dir) of every geth this network may have running.
    pub fn processes(&self) -> Vec<(ProcessId, PathBuf)> {
        let sd = self.state_dir();
        let mut out = Vec::new();
        if let Ok(Some(st)) = sd.load() {
            for (addr, r) in &st.resources {
                if !addr.starts_with("node.") {
                    continue;
                }
                if let Ok(o) = serde_json::from_value::<consort::provider::local::NodeOutputs>(
                    r.outputs.clone(),
                ) {
                    out.push((o.process(), PathBuf::from(o.datadir)));
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(sd.nodes_dir()) {
            for e in entries.flatten() {
                let pid_file = e.path().join("consort.pid");
                if let Ok(bytes) = std::fs::read(&pid_file) {
                    if let Ok(id) = serde_json::from_slice::<ProcessId>(&bytes) {
                        out.push((id, e.path()));
                    }
                }
            }
        }
        // And any geth on a data dir of this network that neither names (a run killed
        // between starting it and recording it).
        let nodes = sd.nodes_dir();
        out.extend(process::find_by_datadir(|d| d.starts_with(&nodes)));
        out.sort_by_key(|(id, _)| (id.pid, id.start_time));
        out.dedup_by_key(|(id, _)| *id);
        out
    }

    /// Processes of this network that are alive.
    pub fn running(&self) -> Vec<(ProcessId, PathBuf)> {
        self.processes()
            .into_iter()
            .filter(|(id, d)| process::is_ours(*id, d))
            .collect()
    }
}

impl Drop for NetworkHandle {
    /// Stops this network's geth, and any other geth whose data dir lies in this handle's
    /// temporary directory (whatever network a test's commands deployed there): the
    /// directory goes next, and no node may outlive it.
    fn drop(&mut self) {
        let mut all = self.processes();
        if let Ok(root) = self.dir.path().canonicalize() {
            all.extend(process::find_by_datadir(|d| d.starts_with(&root)));
        }
        all.sort_by_key(|(id, _)| (id.pid, id.start_time));
        all.dedup_by_key(|(id, _)| *id);
        for (id, d) in all {
            let _ = process::stop(id, &d, Duration::from_secs(5));
        }
    }
}

/// Runs the real `consort` binary in `dir` with the test geth.
pub fn consort(dir: &Path, args: &[&str]) -> std::process::Output {
    run_logged(consort_cmd(dir, args), args)
}

/// Runs a consort command and prints what it said (for the test's log).
pub fn run_logged(mut cmd: std::process::Command, args: &[&str]) -> std::process::Output {
    let out = cmd.output().expect("run consort");
    eprintln!(
        "[consort {}] exit {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn consort_cmd(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_consort"));
    c.args(args)
        .current_dir(dir)
        .env("CONSORT_GETH", &geth().path)
        .env_remove("CONSORT_STATE_DIR")
        .stdin(std::process::Stdio::null());
    c
}

/// Like [`consort`], asserting success; returns stdout.
pub fn consort_ok(dir: &Path, args: &[&str]) -> String {
    let out = consort(dir, args);
    assert!(
        out.status.success(),
        "consort {} failed ({:?}):\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Pids of live processes whose command line names a data dir under `dir`.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if process::start_time_of(pid).is_none() {
            continue; // gone or a zombie
        }
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.split('\0').any(|a| {
                a.strip_prefix("--datadir=")
                    .is_some_and(|d| d.starts_with(&needle))
            }) {
                out.push(pid);
            }
        }
    }
    out
}

/// A copy of a shipped topology in `dir`, with `local: {}` given a base port (so parallel
/// tests start their search in different ranges) and optionally renamed.
pub fn topology_copy(
    dir: &Path,
    shipped: &str,
    base_port: u16,
    rename: Option<(&str, u64)>,
) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(shipped);
    let mut text = std::fs::read_to_string(&src).unwrap();
    assert!(text.contains("local: {}"), "{shipped} has no `local: {{}}`");
    text = text.replace("local: {}", &format!("local: {{ base_port: {base_port} }}"));
    let mut file = shipped.to_string();
    if let Some((name, chain_id)) = rename {
        let old_name = shipped.trim_end_matches(".yaml");
        text = text.replace(&format!("name: {old_name}"), &format!("name: {name}"));
        let re_chain = text
            .lines()
            .find(|l| l.trim_start().starts_with("chain_id:"))
            .unwrap()
            .to_string();
        text = text.replace(&re_chain, &format!("  chain_id: {chain_id}"));
        file = format!("{name}.yaml");
    }
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// A block of 100 ports per call, spread by pid so concurrent test runs rarely meet (a
/// port in use is skipped anyway), all in 20000–32099: below the kernel's ephemeral range
/// (32768–60999), whose ports outgoing connections take at random.
pub fn port_base() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let offset = (std::process::id() % 30) as u16 * 400
        + NEXT.fetch_add(100, std::sync::atomic::Ordering::SeqCst);
    20000 + offset % 12000
}

/// npm packages of the tools the application tests drive, pinned (`.ci/run` installs the
/// same).
pub const NPM_TOOLS: &[&str] = &[
    "@foundry-rs/cast-linux-amd64@1.7.1",
    "@foundry-rs/forge-linux-amd64@1.7.1",
    "solc@0.8.26",
    "ethers@6.17.0",
];

/// A tool from npm (`cast` and `forge` from @foundry-rs/*-linux-amd64, `solcjs` from solc; the
/// ethers library sits beside them in `node_modules`), or
/// `$CONSORT_<NAME>`: found in consort's cache (`~/.cache/consort/tools`), else installed
/// there once with `npm install --prefix`, as geth is built once with Go. A test that needs
/// it fails loudly when neither works; it never skips.
pub fn npm_tool(name: &str) -> PathBuf {
    let var = format!("CONSORT_{}", name.to_ascii_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    static INSTALL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let prefix = INSTALL
        .get_or_init(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .ok_or("neither HOME nor XDG_CACHE_HOME is set")?;
            let prefix = cache.join("consort/tools");
            let bin = prefix.join("node_modules/.bin");
            if bin.join("cast").exists()
                && bin.join("forge").exists()
                && bin.join("solcjs").exists()
                && prefix.join("node_modules/ethers/package.json").exists()
            {
                return Ok(prefix);
            }
            eprintln!(
                "[support] installing {NPM_TOOLS:?} into {} …",
                prefix.display()
            );
            std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
            let status = std::process::Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .args(NPM_TOOLS)
                .status()
                .map_err(|e| format!("cannot run npm: {e}"))?;
            if !status.success() {
                return Err(format!("npm install {NPM_TOOLS:?} failed ({status})"));
            }
            Ok(prefix)
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("this test needs {name} (npm: {NPM_TOOLS:?}) or ${var}: {e}"));
    let p = prefix.join("node_modules/.bin").join(name);
    assert!(
        p.exists(),
        "this test needs {name}; {} is missing after installing {NPM_TOOLS:?}",
        p.display()
    );
    p
}

/// Runs `cmd` to completion or kills it after `timeout` (then panics with what it printed).
pub fn run_with_deadline(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> std::process::Output {
    use std::io::Read;
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shown} did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&t_out.join().unwrap()),
                String::from_utf8_lossy(&t_err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::process::Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    log_output(&shown, &out);
    out
}

/// Prints what a command said, for the test's log: `[what] exit N`, stdout, stderr.
pub fn log_output(what: &str, out: &std::process::Output) {
    eprintln!(
        "[{what}] exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// web3.py for the application tests, pinned (`.ci/run` installs the same).
pub const WEB3_PY: &str = "web3==7.16.0";

/// A Python with web3.py: `$CONSORT_WEB3_PYTHON`, else the venv in consort's cache
/// (`~/.cache/consort/tools/py`), created once with pip when missing. Fails loudly.
pub fn web3_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONSORT_WEB3_PYTHON") {
        return PathBuf::from(p);
    }
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .ok_or("neither HOME nor XDG_CACHE_HOME is set")?;
        let venv = cache.join("consort/tools/py");
        let python = venv.join("bin/python");
        let has = |p: &Path| {
            std::process::Command::new(p)
                .args([
                    "-c",
                    "import web3, sys; sys.exit(web3.__version__ != '7.16.0')",
                ])
                .status()
                .is_ok_and(|s| s.success())
        };
        if has(&python) {
            return Ok(python);
        }
        eprintln!("[support] installing {WEB3_PY} into {} …", venv.display());
        let run = |c: &mut std::process::Command| -> Result<(), String> {
            let st = c.status().map_err(|e| format!("{c:?}: {e}"))?;
            st.success()
                .then_some(())
                .ok_or_else(|| format!("{c:?} failed ({st})"))
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv))?;
        run(std::process::Command::new(venv.join("bin/pip")).args(["install", "-q", WEB3_PY]))?;
        if has(&python) {
            Ok(python)
        } else {
            Err(format!(
                "{} cannot import web3 after installing it",
                python.display()
            ))
        }
    })
    .clone()
    .unwrap_or_else(|e| panic!("this test needs {WEB3_PY} (or $CONSORT_WEB3_PYTHON): {e}"))
}

/// The lines `child` prints on its (piped) stdout, as they come, read by a thread.
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Where a fault landed: what the command had printed when the signal went out.
pub struct Landed {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `consort args` in `dir` (its own process group) and delivers `signal` — SIGKILL to
/// consort, anything else to the group, as a terminal does — as soon as it prints a line
/// containing `event` (a progress line such as `  - account.delta.pay`), so the fault lands
/// after that change and not at a random moment. A command that exits before printing
/// `event` fails the test: a run that finished before the signal proves nothing.
pub fn signal_at_event(dir: &Path, args: &[&str], event: &str, signal: i32) -> Landed {
    signals_at_event(dir, args, event, &[signal])
}

/// [`signal_at_event`] with several signals in a row, 30 ms apart (a double Ctrl-C).
pub fn signals_at_event(dir: &Path, args: &[&str], event: &str, signals: &[i32]) -> Landed {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::process::CommandExt as _;
    let mut stderr = tempfile::tempfile().unwrap();
    let mut child = consort_cmd(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr.try_clone().unwrap())
        .process_group(0)
        .spawn()
        .expect("run consort");
    let lines = stdout_lines(&mut child);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(event) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let s = child.wait().unwrap();
                panic!(
                    "consort {} exited ({s}) before printing {event:?}: the fault never landed\n{seen}",
                    args.join(" ")
                );
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            // Whatever it printed last is still in the pipe.
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                if line.contains(event) {
                    panic!(
                        "consort {} printed {event:?} but exited ({s}) before the signal: the \
                         fault never landed\n{seen}{line}",
                        args.join(" ")
                    );
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            panic!(
                "consort {} exited ({s}) before printing {event:?}: the fault never landed\n{seen}",
                args.join(" ")
            );
        }
        assert!(
            Instant::now() < deadline,
            "consort {} never printed {event:?}:\n{seen}",
            args.join(" ")
        );
    }
    if let Some(s) = child.try_wait().unwrap() {
        panic!(
            "consort {} finished ({s}) right after {event:?}, before the signal: the fault never \
             landed\n{seen}",
            args.join(" ")
        );
    }
    let pid = child.id() as i32;
    for (i, &signal) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
        // SAFETY: signalling the child we spawned, or its own process group.
        unsafe {
            if signal == libc::SIGKILL {
                libc::kill(pid, signal);
            } else {
                libc::kill(-pid, signal);
            }
        }
    }
    let code = child.wait().unwrap().code();
    let mut err = String::new();
    stderr.rewind().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    let signal = signals[0];
    if signals.len() > 1 && code == Some(130) {
        // The second signal stops consort at once: nothing is waited for after it (the
        // first signal's way out ends with its "Interrupted: … saved" summary). If the
        // first had already finished before the second came, only that summary is there.
        if let Some((_, after)) = err.split_once("interrupted again: stopping now") {
            assert!(
                !after.contains("Interrupted: "),
                "consort {} went on after the second signal:\n{err}",
                args.join(" ")
            );
        }
    }
    if signal == libc::SIGKILL {
        assert_eq!(
            code,
            None,
            "consort {} exited by itself: the fault never landed\n{seen}",
            args.join(" ")
        );
    }
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&line);
        seen.push('\n');
    }
    eprintln!(
        "[consort {}] signals {signals:?} after {event:?}: exit {code:?}\n{seen}",
        args.join(" ")
    );
    Landed {
        code,
        stdout: seen,
        stderr: err,
    }
}

/// The account `name` in `consort output --json` (panics if there is none).
pub fn output_account(out: &serde_json::Value, name: &str) -> serde_json::Value {
    out["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no account {name} in {out}"))
}

/// A signer account made by geth itself (`geth account new --lightkdf`): its 0x address,
/// lower case. (consort's own crypto module is tested separately.)
pub fn geth_account(keystore: &Path, password_file: &Path) -> String {
    let out = std::process::Command::new(&geth().path)
        .args(["account", "new", "--lightkdf", "--keystore"])
        .arg(keystore)
        .arg("--password")
        .arg(password_file)
        .output()
        .expect("run geth account new");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "geth account new failed: {text}");
    text.lines()
        .find_map(|l| l.split("Public address of the key:").nth(1))
        .map(|a| a.trim().to_lowercase())
        .unwrap_or_else(|| panic!("no address in: {text}"))
}

/// A Clique genesis (period 1) with `signers` (0x addresses, in the order given) and
/// `alloc`, every fork up to London at block 0.
pub fn clique_genesis(
    chain_id: u64,
    signers: &[&str],
    alloc: serde_json::Value,
) -> serde_json::Value {
    let hex: String = signers.iter().map(|a| a.trim_start_matches("0x")).collect();
    serde_json::json!({
        "config": {
            "chainId": chain_id,
            "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
            "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
            "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
            "clique": {"period": 1, "epoch": 30000}
        },
        "difficulty": "0x1",
        "gasLimit": "0x1c9c380",
        "extradata": format!("0x{}{}{}", "0".repeat(64), hex, "0".repeat(130)),
        "alloc": alloc
    })
}

/// `geth init --datadir DATADIR GENESIS`, asserting it worked.
pub fn geth_init(datadir: &Path, genesis_file: &Path) {
    let init = std::process::Command::new(&geth().path)
        .arg("init")
        .arg("--datadir")
        .arg(datadir)
        .arg(genesis_file)
        .output()
        .expect("run geth init");
    assert!(
        init.status.success(),
        "geth init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
}
