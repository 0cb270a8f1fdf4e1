//! Finding, checking and installing geth 1.13.x.
//!
//! Lookup order (first hit wins):
//! 1. an explicit binary (`--geth PATH`, else the `CONSORT_GETH` environment variable; a
//!    bare name such as `geth` is looked up on `PATH`); a wrong version here is an error,
//!    since the user asked for exactly this binary;
//! 2. the cache: `$XDG_CACHE_HOME/consort/geth-<version>/geth`, else
//!    `~/.cache/consort/geth-<version>/geth`, only if its SHA-256 is the one recorded
//!    beside it (`geth.sha256`, written when consort built it) — checked before it is
//!    ever run;
//! 3. if `go` is on `PATH`: build it once into the cache with `go install` (a pinned module
//!    version, checked against Go's checksum database; into a temporary GOBIN that is
//!    renamed into place, so an interrupted build never leaves half a binary), and record
//!    its SHA-256 beside it.
//!
//! A geth on `PATH` is never picked up unasked: any binary that prints the right version
//! would otherwise run with the signers' keys unlocked. Every binary found gets its
//! SHA-256 ([`GethBinary::sha256`]); nodes record it in state, every start checks the file
//! still has it ([`verify`]), and an explicit path whose hash state recorded is checked
//! before it is run ([`ensure_geth_recorded`]), so a later swap is caught.
//!
//! Without any of these the error says how to install geth.

use crate::events::{Event, EventSink};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long `geth version` (or `go env`) may take: it answers in ~50 ms; a binary that
/// hangs must not hang consort.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why consort pins geth to 1.13: later releases cannot seal Clique blocks.
pub const WHY_113: &str =
    "geth 1.14 removed pre-merge block production, so it can no longer seal Clique blocks; 1.13.15 is the last release that can";

/// The geth consort runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GethBinary {
    pub path: PathBuf,
    /// As reported by `geth version`, without the `-stable` suffix: "1.13.15".
    pub version: String,
    /// Lowercase hex SHA-256 of the file: what every start checks it against.
    pub sha256: String,
}

/// The file beside a cached geth that holds the SHA-256 consort recorded when it built it
/// (`sha256sum` format: `<hex>  geth`).
pub const SHA256_FILE: &str = "geth.sha256";

#[derive(Debug, thiserror::Error)]
pub enum GethError {
    #[error("found geth {found} at {path}; consort needs {wanted_series}.x because {WHY_113}. Point --geth / CONSORT_GETH at a geth {wanted} binary, or unset it to let consort find or build one")]
    WrongVersion {
        path: PathBuf,
        found: String,
        wanted: String,
        wanted_series: String,
    },
    #[error("{path}: cannot run `geth version` ({reason}); check that the file exists and is an executable geth {wanted} binary")]
    NotRunnable {
        path: PathBuf,
        wanted: String,
        reason: String,
    },
    #[error("geth {wanted} not found (looked at: {searched}) and Go is not installed to build it. Install Go (https://go.dev/dl/) and rerun, or build geth yourself with `{install}` and pass its path with --geth or CONSORT_GETH (a geth on PATH: `--geth geth`)")]
    NotFound {
        wanted: String,
        searched: String,
        install: String,
    },
    #[error("building geth {wanted} with `{command}` failed ({status}); the end of its output:\n{output_tail}\nFix the Go toolchain / network problem shown above, or install geth {wanted} yourself and pass it with --geth or CONSORT_GETH")]
    BuildFailed {
        wanted: String,
        command: String,
        status: String,
        output_tail: String,
    },
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: its SHA-256 is {found}, not the {expected} {recorded}; the binary was replaced since, and consort runs no geth it cannot vouch for (it is given the signers' keys). If you replaced it yourself, {fix}")]
    Tampered {
        path: PathBuf,
        expected: String,
        found: String,
        /// Where `expected` comes from ("recorded in state for node.x", ...).
        recorded: String,
        fix: String,
    },
    #[error("{version:?} is not a geth version consort can use (expected something like 1.13.15); fix `client.geth` in the topology")]
    BadVersion { version: String },
}

/// The command line that builds geth `version` (for messages and for the build itself).
pub fn install_command(version: &str) -> String {
    format!(
        "go install -ldflags=-checklinkname=0 github.com/ethereum/go-ethereum/cmd/geth@v{version}"
    )
}

/// Where things are looked up; `from_env` reads the real environment. Split out so the
/// lookup can be tested without touching process-wide environment variables.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// `CONSORT_GETH`.
    pub env_geth: Option<PathBuf>,
    /// `PATH`.
    pub path_var: Option<OsString>,
    /// `$XDG_CACHE_HOME` or `~/.cache`.
    pub cache_home: Option<PathBuf>,
}

impl Lookup {
    pub fn from_env() -> Lookup {
        let env_geth = std::env::var_os("CONSORT_GETH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let cache_home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            // The XDG spec says relative values are to be ignored.
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            });
        Lookup {
            env_geth,
            path_var: std::env::var_os("PATH"),
            cache_home,
        }
    }

    /// `<cache>/consort/geth-<version>/geth`.
    pub fn cached_geth(&self, version: &str) -> Option<PathBuf> {
        self.cache_home.as_ref().map(|c| {
            c.join("consort")
                .join(format!("geth-{version}"))
                .join("geth")
        })
    }

    /// The first executable file called `name` on PATH.
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        let path = self.path_var.as_ref()?;
        std::env::split_paths(path)
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// "1.13" from "1.13.15".
fn series(version: &str) -> Option<String> {
    let mut it = version.split('.');
    let (maj, min) = (it.next()?, it.next()?);
    if maj.parse::<u32>().is_err() || min.parse::<u32>().is_err() {
        return None;
    }
    Some(format!("{maj}.{min}"))
}

/// Parses `geth version` output: the `Version: 1.13.15-stable` line → "1.13.15".
pub fn parse_version_output(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Version:")?.trim();
        let v = v.split('-').next()?.trim();
        series(v)?;
        Some(v.to_string())
    })
}

/// Runs `cmd` in its own process group (so a Ctrl-C meant for consort does not reach it)
/// with stdout and stderr captured; past `timeout` the whole group is killed and the
/// error says so.
pub fn output_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // SAFETY: signalling the process group we created for this child.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}, killed it"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Lowercase hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Checks that `bin.path` still has the SHA-256 it had when it was found (or that state
/// recorded): call it right before every run of geth.
pub fn verify(bin: &GethBinary, recorded: &str) -> Result<(), GethError> {
    let found = sha256_file(&bin.path).map_err(|source| GethError::Io {
        path: bin.path.clone(),
        what: "cannot read the geth binary to check its SHA-256",
        source,
    })?;
    if found == bin.sha256 {
        return Ok(());
    }
    Err(GethError::Tampered {
        path: bin.path.clone(),
        expected: bin.sha256.clone(),
        found,
        recorded: recorded.to_string(),
        fix: "check it (`geth version`), copy it to a new path and pass that with --geth / CONSORT_GETH: each node records the binary it is (re)started on".into(),
    })
}

/// The SHA-256 recorded beside a cached geth, if any.
fn recorded_sha256(cached: &Path) -> Option<String> {
    let text = std::fs::read_to_string(cached.with_file_name(SHA256_FILE)).ok()?;
    let hex = text.split_whitespace().next()?.to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Runs `<path> version` and returns the version it reports.
pub fn version_of(path: &Path, wanted: &str) -> Result<String, GethError> {
    version_of_within(path, wanted, PROBE_TIMEOUT)
}

fn version_of_within(path: &Path, wanted: &str, timeout: Duration) -> Result<String, GethError> {
    let not_runnable = |reason: String| GethError::NotRunnable {
        path: path.to_path_buf(),
        wanted: wanted.to_string(),
        reason,
    };
    let mut cmd = Command::new(path);
    cmd.arg("version");
    let out = output_with_timeout(cmd, timeout).map_err(|e| not_runnable(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(not_runnable(format!("it exited with {}", out.status)));
    }
    parse_version_output(&text)
        .ok_or_else(|| not_runnable("its output has no `Version: X.Y.Z` line".into()))
}

/// Finds (or builds) geth of the series of `version` (e.g. any 1.13.x for "1.13.15"; the
/// cache and a build use exactly `version`). See the module docs for the order.
pub fn ensure_geth(
    explicit: Option<&Path>,
    version: &str,
    events: &EventSink,
) -> Result<GethBinary, GethError> {
    ensure_geth_with(&Lookup::from_env(), explicit, version, events)
}

/// [`ensure_geth`] for a network whose state recorded the SHA-256 of the binaries its
/// nodes ran (path → hash): an explicit binary at one of those paths must still have that
/// hash, checked before it is run at all.
pub fn ensure_geth_recorded(
    explicit: Option<&Path>,
    version: &str,
    events: &EventSink,
    recorded: &std::collections::BTreeMap<PathBuf, (String, String)>,
) -> Result<GethBinary, GethError> {
    resolve(&Lookup::from_env(), explicit, version, events, recorded)
}

/// [`ensure_geth`] with an explicit environment.
pub fn ensure_geth_with(
    env: &Lookup,
    explicit: Option<&Path>,
    version: &str,
    events: &EventSink,
) -> Result<GethBinary, GethError> {
    resolve(env, explicit, version, events, &Default::default())
}

/// `recorded`: path → (SHA-256, who recorded it, e.g. "state (node.x)").
fn resolve(
    env: &Lookup,
    explicit: Option<&Path>,
    version: &str,
    events: &EventSink,
    recorded: &std::collections::BTreeMap<PathBuf, (String, String)>,
) -> Result<GethBinary, GethError> {
    let wanted_series = series(version).ok_or_else(|| GethError::BadVersion {
        version: version.to_string(),
    })?;
    let accept =
        |path: &Path, sha256: String| -> Result<Result<GethBinary, GethError>, GethError> {
            let found = version_of(path, version)?;
            if series(&found).as_deref() == Some(wanted_series.as_str()) {
                Ok(Ok(GethBinary {
                    path: path.to_path_buf(),
                    version: found,
                    sha256,
                }))
            } else {
                Ok(Err(GethError::WrongVersion {
                    path: path.to_path_buf(),
                    found,
                    wanted: version.to_string(),
                    wanted_series: wanted_series.clone(),
                }))
            }
        };

    let hash_of = |p: &Path| {
        sha256_file(p).map_err(|e| GethError::NotRunnable {
            path: p.to_path_buf(),
            wanted: version.to_string(),
            reason: e.to_string(),
        })
    };

    // 1. Explicit: exactly this binary or an error.
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| env.env_geth.clone())
    {
        // A bare name (`--geth geth`): from PATH, as the user asked.
        let p = if p.components().count() == 1 && !p.as_os_str().is_empty() {
            env.which(&p.to_string_lossy())
                .unwrap_or_else(|| absolute(&p))
        } else {
            absolute(&p)
        };
        let sha256 = hash_of(&p)?;
        if let Some((expected, by)) = recorded.get(&p) {
            if *expected != sha256 {
                return Err(GethError::Tampered {
                    path: p,
                    expected: expected.clone(),
                    found: sha256,
                    recorded: format!("recorded in {by}"),
                    fix: "check it (`geth version`), copy it to a new path and pass that with --geth / CONSORT_GETH: each node records the binary it is (re)started on".into(),
                });
            }
        }
        return accept(&p, sha256)?;
    }

    let mut searched = vec!["--geth / CONSORT_GETH (not set)".to_string()];

    // 2. Cache: only a binary with the SHA-256 recorded when consort built it, checked
    // before it is run.
    let cached = env.cached_geth(version);
    if let Some(c) = &cached {
        if c.exists() {
            let found = hash_of(c)?;
            match recorded_sha256(c) {
                Some(want) if want == found => match accept(c, found)? {
                    Ok(bin) => return Ok(bin),
                    // Something else was put there: rebuild over it rather than use it.
                    Err(wrong) => events(Event::Warning {
                        message: format!("ignoring cached {wrong}"),
                    }),
                },
                want => events(Event::Warning {
                    message: format!(
                        "not running {}: its SHA-256 {found} is {} (consort runs only a cached geth it built itself, or one named with --geth / CONSORT_GETH)",
                        c.display(),
                        match want {
                            Some(w) => format!("not the {w} recorded in {SHA256_FILE} beside it"),
                            None => format!("not recorded ({SHA256_FILE} beside it is missing)"),
                        }
                    ),
                }),
            }
        }
        searched.push(c.display().to_string());
    }

    // 3. Build.
    let go = env.which("go");
    match (go, cached) {
        (Some(go), Some(target)) => build(&go, version, &target, events),
        _ => Err(GethError::NotFound {
            wanted: version.to_string(),
            searched: searched.join(", "),
            install: install_command(version),
        }),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The Go version as (major, minor), from `go env GOVERSION` ("go1.26.8").
fn go_version(go: &Path) -> Option<(u32, u32)> {
    let mut cmd = Command::new(go);
    cmd.args(["env", "GOVERSION"]);
    let out = output_with_timeout(cmd, PROBE_TIMEOUT).ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let v = s.trim().strip_prefix("go")?;
    let mut it = v.split(['.', 'r', 'b']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Builds geth `version` into `target` (`<cache>/consort/geth-<version>/geth`).
fn build(
    go: &Path,
    version: &str,
    target: &Path,
    events: &EventSink,
) -> Result<GethBinary, GethError> {
    let target_dir = target.parent().expect("cache path has a parent");
    let consort_cache = target_dir.parent().expect("cache path has a grandparent");
    let io = |path: &Path, what: &'static str| {
        let path = path.to_path_buf();
        move |source| GethError::Io { path, what, source }
    };
    std::fs::create_dir_all(consort_cache)
        .map_err(io(consort_cache, "cannot create the cache directory"))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".geth-{version}.build-"))
        .tempdir_in(consort_cache)
        .map_err(io(
            consort_cache,
            "cannot create a temporary build directory",
        ))?;

    // -checklinkname=0 works around fjl/memsize on Go >= 1.23; older linkers reject it.
    let needs_flag = go_version(go).is_none_or(|v| v >= (1, 23));
    let mut args: Vec<String> = vec!["install".into()];
    if needs_flag {
        args.push("-ldflags=-checklinkname=0".into());
    }
    args.push(format!(
        "github.com/ethereum/go-ethereum/cmd/geth@v{version}"
    ));
    let shown = format!("go {}", args.join(" "));

    let message = format!(
        "building geth {version} with `{shown}` (once; cached in {})",
        target_dir.display()
    );
    events(Event::Phase {
        message: message.clone(),
    });
    let t0 = Instant::now();
    let run = |sumdb_off: bool| {
        let mut cmd = Command::new(go);
        // Its own process group: a Ctrl-C of consort must not kill the build half-way.
        cmd.args(&args)
            .env("GOBIN", tmp.path())
            .stdin(std::process::Stdio::null())
            .process_group(0);
        if sumdb_off {
            cmd.env("GOSUMDB", "off");
        }
        cmd.output()
    };
    let mut out = run(false).map_err(io(go, "cannot run go"))?;
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    if !out.status.success() && mentions_sumdb(&text(&out)) {
        // The checksum database is unreachable here; the pinned version still fixes what
        // is built (module downloads only).
        events(Event::Warning {
            message: "the Go checksum database (sum.golang.org) is unreachable; retrying the geth build with GOSUMDB=off".into(),
        });
        out = run(true).map_err(io(go, "cannot run go"))?;
    }
    let built = tmp.path().join("geth");
    if !out.status.success() || !built.is_file() {
        let all = text(&out);
        let tail: Vec<&str> = all.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(GethError::BuildFailed {
            wanted: version.to_string(),
            command: shown,
            status: if out.status.success() {
                "no geth binary was produced".into()
            } else {
                out.status.to_string()
            },
            output_tail: tail.join("\n"),
        });
    }
    std::fs::create_dir_all(target_dir)
        .map_err(io(target_dir, "cannot create the cache directory"))?;
    // Its hash, taken before it leaves our temporary directory and recorded beside it.
    let sha256 = sha256_file(&built).map_err(io(&built, "cannot read the built geth"))?;
    std::fs::rename(&built, target)
        .map_err(io(target, "cannot move the built geth into the cache"))?;
    let sum_file = target_dir.join(SHA256_FILE);
    crate::state::fsutil::write_atomic(&sum_file, format!("{sha256}  geth\n").as_bytes(), 0o644)
        .map_err(io(&sum_file, "cannot record the built geth's SHA-256"))?;
    events(Event::PhaseDone {
        message,
        elapsed: t0.elapsed(),
    });
    let bin = GethBinary {
        path: target.to_path_buf(),
        version: String::new(),
        sha256,
    };
    verify(&bin, "taken when it was built")?;
    let found = version_of(target, version)?;
    if found != version {
        return Err(GethError::WrongVersion {
            path: target.to_path_buf(),
            found,
            wanted: version.to_string(),
            wanted_series: series(version).unwrap_or_default(),
        });
    }
    Ok(GethBinary {
        version: found,
        ..bin
    })
}

fn mentions_sumdb(output: &str) -> bool {
    output.contains("sum.golang.org") || output.contains("checksum database")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Mutex};

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn fake_geth(dir: &Path, version: &str) -> PathBuf {
        script(
            dir,
            "geth",
            &format!("echo Geth; echo 'Version: {version}-stable'; echo 'Architecture: amd64'"),
        )
    }

    fn collector() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        (Arc::new(move |e| g.lock().unwrap().push(e)), got)
    }

    #[test]
    fn a_hung_geth_version_times_out_naming_the_binary() {
        let d = tempfile::tempdir().unwrap();
        let pid_file = d.path().join("pid");
        let g = script(
            &d.path().join("bin"),
            "geth",
            &format!("echo $$ > {}; exec sleep 600", pid_file.display()),
        );
        // On another thread, so that ignoring the timeout fails the test (after a deadline
        // far beyond any machine's load) instead of hanging it for ten minutes.
        let (tx, rx) = std::sync::mpsc::channel();
        let probe = g.clone();
        std::thread::spawn(move || {
            let _ = tx.send(version_of_within(
                &probe,
                "1.13.15",
                Duration::from_millis(300),
            ));
        });
        let err = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the 300 ms timeout was not applied: still waiting for the hung geth")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&g.display().to_string()), "{err}");
        // It gave up at its own timeout, not another limit...
        assert!(err.contains("no answer within 300ms"), "{err}");
        // ...and killed the hung process rather than leaving it behind. (No pid file: it
        // was killed before its first line ran, on a very loaded machine.)
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let pid: libc::pid_t = pid.trim().parse().unwrap();
            // SAFETY: signal 0 only checks whether the pid exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            assert!(!alive, "the hung geth {pid} is still running");
        }
        // The real probe still answers fast.
        let g = fake_geth(&d.path().join("ok"), "1.13.15");
        assert_eq!(version_of(&g, "1.13.15").unwrap(), "1.13.15");
    }

    #[test]
    fn parses_geth_version_output() {
        let out = "Geth\nVersion: 1.13.15-stable\nGit Commit: c5ba367e\nArchitecture: amd64\n";
        assert_eq!(parse_version_output(out).as_deref(), Some("1.13.15"));
        assert_eq!(
            parse_version_output("Version: 1.14.8-unstable-abc").as_deref(),
            Some("1.14.8")
        );
        assert_eq!(parse_version_output("no version here"), None);
    }

    #[test]
    fn explicit_wrong_version_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let g = fake_geth(&d.path().join("bin"), "1.14.8");
        let env = Lookup::default();
        let err = ensure_geth_with(&env, Some(&g), "1.13.15", &crate::events::null_sink())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("found geth 1.14.8 at {}", g.display())),
            "{err}"
        );
        assert!(err.contains("consort needs 1.13.x because"), "{err}");
    }

    #[test]
    fn env_var_is_used_and_other_patch_release_accepted() {
        let d = tempfile::tempdir().unwrap();
        let g = fake_geth(&d.path().join("bin"), "1.13.14");
        let env = Lookup {
            env_geth: Some(g.clone()),
            ..Default::default()
        };
        let bin = ensure_geth_with(&env, None, "1.13.15", &crate::events::null_sink()).unwrap();
        assert_eq!(
            bin,
            GethBinary {
                sha256: sha256_file(&g).unwrap(),
                path: g,
                version: "1.13.14".into(),
            }
        );
    }

    /// A fake geth that leaves a mark when it is run at all.
    fn marking_geth(dir: &Path, mark: &Path) -> PathBuf {
        script(
            dir,
            "geth",
            &format!("touch {}; echo 'Version: 1.13.15-stable'", mark.display()),
        )
    }

    fn record(cached: &Path) {
        let sum = sha256_file(cached).unwrap();
        std::fs::write(cached.with_file_name(SHA256_FILE), format!("{sum}  geth\n")).unwrap();
    }

    /// Issue 20 item 11: a binary planted in the cache (no recorded SHA-256, or another
    /// one) is never run, not even for `geth version`; with Go, consort builds over it.
    #[test]
    fn a_cached_geth_without_its_recorded_hash_is_never_run() {
        let d = tempfile::tempdir().unwrap();
        let mark = d.path().join("ran");
        let cache = d.path().join("cache");
        let cached = marking_geth(&cache.join("consort/geth-1.13.15"), &mark);
        let no_go = Lookup {
            env_geth: None,
            path_var: Some(d.path().join("empty").into_os_string()),
            cache_home: Some(cache.clone()),
        };
        let (sink, got) = collector();
        let err = ensure_geth_with(&no_go, None, "1.13.15", &sink)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Go is not installed"), "{err}");
        assert!(!mark.exists(), "the planted binary ran");
        let warned = format!("{:?}", got.lock().unwrap());
        assert!(warned.contains("not recorded"), "{warned}");
        // A recorded hash of something else: still never run.
        std::fs::write(
            cached.with_file_name(SHA256_FILE),
            format!("{}  geth\n", "ab".repeat(32)),
        )
        .unwrap();
        assert!(ensure_geth_with(&no_go, None, "1.13.15", &sink).is_err());
        assert!(!mark.exists(), "the planted binary ran");
        // Its own hash recorded (what consort's build writes): used.
        record(&cached);
        let bin = ensure_geth_with(&no_go, None, "1.13.15", &sink).unwrap();
        assert_eq!(bin.path, cached);
        assert!(mark.exists());
    }

    #[test]
    fn geth_on_path_is_not_used_unasked_but_by_name_it_is() {
        let d = tempfile::tempdir().unwrap();
        let bin_dir = d.path().join("bin");
        let on_path = fake_geth(&bin_dir, "1.13.15");
        let env = Lookup {
            env_geth: None,
            path_var: Some(bin_dir.clone().into_os_string()),
            cache_home: Some(d.path().join("cache")),
        };
        let sink = crate::events::null_sink();
        let err = ensure_geth_with(&env, None, "1.13.15", &sink)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Go is not installed"), "{err}");
        let bin = ensure_geth_with(&env, Some(Path::new("geth")), "1.13.15", &sink).unwrap();
        assert_eq!(bin.path, on_path);
    }

    /// An explicit binary whose hash state recorded: a swap is refused before it runs.
    #[test]
    fn an_explicit_geth_swapped_since_state_recorded_it_is_refused_unrun() {
        let d = tempfile::tempdir().unwrap();
        let g = fake_geth(&d.path().join("bin"), "1.13.15");
        let good = sha256_file(&g).unwrap();
        let env = Lookup::default();
        let sink = crate::events::null_sink();
        let recorded: std::collections::BTreeMap<PathBuf, (String, String)> =
            [(g.clone(), (good.clone(), "state for node.a".to_string()))].into();
        let bin = resolve(&env, Some(&g), "1.13.15", &sink, &recorded).unwrap();
        assert_eq!(bin.sha256, good);
        verify(&bin, "x").unwrap();
        let mark = d.path().join("ran");
        marking_geth(&d.path().join("bin"), &mark);
        let err = resolve(&env, Some(&g), "1.13.15", &sink, &recorded)
            .unwrap_err()
            .to_string();
        assert!(!mark.exists(), "the swapped binary ran");
        assert!(err.contains(&g.display().to_string()), "{err}");
        assert!(err.contains(&good), "{err}");
        assert!(err.contains(&sha256_file(&g).unwrap()), "{err}");
        assert!(err.contains("node.a"), "{err}");
        // And a start after the swap is refused too.
        let err = verify(&bin, "recorded for node.a").unwrap_err().to_string();
        assert!(err.contains("not the"), "{err}");
    }

    #[test]
    fn path_is_not_searched_and_a_recorded_cache_is_used() {
        let d = tempfile::tempdir().unwrap();
        let bin_dir = d.path().join("bin");
        fake_geth(&bin_dir, "1.14.8");
        let cache = d.path().join("cache");
        let cached = fake_geth(&cache.join("consort/geth-1.13.15"), "1.13.15");
        record(&cached);
        let env = Lookup {
            env_geth: None,
            path_var: Some(bin_dir.into_os_string()),
            cache_home: Some(cache),
        };
        let (sink, got) = collector();
        let bin = ensure_geth_with(&env, None, "1.13.15", &sink).unwrap();
        assert_eq!(bin.path, cached);
        assert!(got.lock().unwrap().is_empty(), "{:?}", got.lock().unwrap());
    }

    #[test]
    fn without_go_the_error_says_how_to_install() {
        let d = tempfile::tempdir().unwrap();
        let env = Lookup {
            env_geth: None,
            path_var: Some(d.path().join("empty").into_os_string()),
            cache_home: Some(d.path().join("cache")),
        };
        let err = ensure_geth_with(&env, None, "1.13.15", &crate::events::null_sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Go is not installed"), "{err}");
        assert!(err.contains(&install_command("1.13.15")), "{err}");
        assert!(err.contains("CONSORT_GETH"), "{err}");
        assert!(err.contains("consort/geth-1.13.15/geth"), "{err}");
    }

    /// A fake `go` that "builds" by writing a fake geth into $GOBIN: checks the temp GOBIN,
    /// the rename into the cache and the Phase/PhaseDone events.
    #[test]
    fn builds_with_go_into_temp_gobin_then_renames_into_cache() {
        let d = tempfile::tempdir().unwrap();
        let bin_dir = d.path().join("bin");
        let log = d.path().join("go-args");
        script(
            &bin_dir,
            "go",
            &format!(
                r#"if [ "$1" = env ]; then echo go1.26.1; exit 0; fi
echo "$@ GOBIN=$GOBIN" > {log}
printf '#!/bin/sh\necho "Version: 1.13.15-stable"\n' > "$GOBIN/geth"
chmod 755 "$GOBIN/geth""#,
                log = log.display()
            ),
        );
        let cache = d.path().join("cache");
        let env = Lookup {
            env_geth: None,
            path_var: Some(bin_dir.into_os_string()),
            cache_home: Some(cache.clone()),
        };
        let (sink, got) = collector();
        let bin = ensure_geth_with(&env, None, "1.13.15", &sink).unwrap();
        assert_eq!(bin.path, cache.join("consort/geth-1.13.15/geth"));
        assert_eq!(bin.version, "1.13.15");
        // Its SHA-256 recorded beside it, so the next run uses it.
        assert_eq!(
            recorded_sha256(&bin.path),
            Some(sha256_file(&bin.path).unwrap())
        );
        assert_eq!(bin.sha256, sha256_file(&bin.path).unwrap());
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(
            args.starts_with("install -ldflags=-checklinkname=0 github.com/ethereum/go-ethereum/cmd/geth@v1.13.15 GOBIN="),
            "{args}"
        );
        let gobin = args.trim().rsplit("GOBIN=").next().unwrap();
        assert!(
            gobin.starts_with(
                &cache
                    .join("consort/.geth-1.13.15.build-")
                    .display()
                    .to_string()
            ),
            "{gobin}"
        );
        assert!(
            !Path::new(gobin).exists(),
            "temporary GOBIN {gobin} is removed"
        );
        let got = got.lock().unwrap();
        assert!(
            matches!(&got[0], Event::Phase { message } if message.contains("building geth 1.13.15")),
            "{got:?}"
        );
        assert!(matches!(&got[1], Event::PhaseDone { .. }), "{got:?}");
    }

    #[test]
    fn failed_build_leaves_no_binary_in_cache() {
        let d = tempfile::tempdir().unwrap();
        let bin_dir = d.path().join("bin");
        script(
            &bin_dir,
            "go",
            r#"if [ "$1" = env ]; then echo go1.22.0; exit 0; fi
printf 'half' > "$GOBIN/geth.partial"; echo 'compile error: boom' >&2; exit 2"#,
        );
        let cache = d.path().join("cache");
        let env = Lookup {
            env_geth: None,
            path_var: Some(bin_dir.into_os_string()),
            cache_home: Some(cache.clone()),
        };
        let err = ensure_geth_with(&env, None, "1.13.15", &crate::events::null_sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("compile error: boom"), "{err}");
        // Go < 1.23 gets no -checklinkname flag.
        assert!(
            err.contains("`go install github.com/ethereum/go-ethereum/cmd/geth@v1.13.15`"),
            "{err}"
        );
        assert!(!cache.join("consort/geth-1.13.15/geth").exists());
        let left: Vec<_> = std::fs::read_dir(cache.join("consort")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
