//! Finding, checking and installing geth 1.13.x.
//!
//! Lookup order (first hit wins):
//! 1. an explicit path (`--geth PATH`, else the `CONSORT_GETH` environment variable);
//!    a wrong version here is an error, since the user asked for exactly this binary;
//! 2. `geth` on `PATH`, if `geth version` says 1.13.x (another version is skipped with a
//!    warning naming it);
//! 3. the cache: `$XDG_CACHE_HOME/consort/geth-<version>/geth`, else
//!    `~/.cache/consort/geth-<version>/geth`;
//! 4. if `go` is on `PATH`: build it once into the cache with `go install` (into a temporary
//!    GOBIN that is renamed into place, so an interrupted build never leaves half a binary).
//!
//! Without any of these the error says how to install geth.

use crate::provider::events::{Event, EventSink};
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
}

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
    #[error("geth {wanted} not found (looked at: {searched}) and Go is not installed to build it. Install Go (https://go.dev/dl/) and rerun, or build geth yourself with `{install}` and pass its path with --geth or CONSORT_GETH")]
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

/// [`ensure_geth`] with an explicit environment.
pub fn ensure_geth_with(
    env: &Lookup,
    explicit: Option<&Path>,
    version: &str,
    events: &EventSink,
) -> Result<GethBinary, GethError> {
    let wanted_series = series(version).ok_or_else(|| GethError::BadVersion {
        version: version.to_string(),
    })?;
    let accept = |path: &Path| -> Result<Result<GethBinary, GethError>, GethError> {
        let found = version_of(path, version)?;
        if series(&found).as_deref() == Some(wanted_series.as_str()) {
            Ok(Ok(GethBinary {
                path: path.to_path_buf(),
                version: found,
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

    // 1. Explicit: exactly this binary or an error.
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| env.env_geth.clone())
    {
        let p = absolute(&p);
        return accept(&p)?;
    }

    let mut searched = vec!["--geth / CONSORT_GETH (not set)".to_string()];

    // 2. PATH.
    match env.which("geth") {
        Some(p) => match accept(&p) {
            Ok(Ok(bin)) => return Ok(bin),
            Ok(Err(wrong)) => {
                events(Event::Warning {
                    message: format!("ignoring {wrong}"),
                });
                searched.push(format!("{} (wrong version)", p.display()));
            }
            Err(e) => {
                events(Event::Warning {
                    message: format!("ignoring geth on PATH: {e}"),
                });
                searched.push(format!("{} (not runnable)", p.display()));
            }
        },
        None => searched.push("geth on PATH (none)".into()),
    }

    // 3. Cache.
    let cached = env.cached_geth(version);
    if let Some(c) = &cached {
        if c.exists() {
            match accept(c)? {
                Ok(bin) => return Ok(bin),
                // Something else was put there: rebuild over it rather than use it.
                Err(wrong) => events(Event::Warning {
                    message: format!("ignoring cached {wrong}"),
                }),
            }
        }
        searched.push(c.display().to_string());
    }

    // 4. Build.
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
    std::fs::rename(&built, target)
        .map_err(io(target, "cannot move the built geth into the cache"))?;
    let _ = crate::state::fsutil::fsync_dir(target_dir);
    events(Event::PhaseDone {
        message,
        elapsed: t0.elapsed(),
    });
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
        path: target.to_path_buf(),
        version: found,
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
        let g = script(&d.path().join("bin"), "geth", "sleep 600");
        let t0 = Instant::now();
        let err = version_of_within(&g, "1.13.15", Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(err.contains(&g.display().to_string()), "{err}");
        assert!(err.contains("no answer within"), "{err}");
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
        let err = ensure_geth_with(
            &env,
            Some(&g),
            "1.13.15",
            &crate::provider::events::null_sink(),
        )
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
        let bin =
            ensure_geth_with(&env, None, "1.13.15", &crate::provider::events::null_sink()).unwrap();
        assert_eq!(
            bin,
            GethBinary {
                path: g,
                version: "1.13.14".into()
            }
        );
    }

    #[test]
    fn path_wrong_version_is_skipped_with_warning_then_cache_used() {
        let d = tempfile::tempdir().unwrap();
        let bin_dir = d.path().join("bin");
        fake_geth(&bin_dir, "1.14.8");
        let cache = d.path().join("cache");
        let cached = fake_geth(&cache.join("consort/geth-1.13.15"), "1.13.15");
        let env = Lookup {
            env_geth: None,
            path_var: Some(bin_dir.into_os_string()),
            cache_home: Some(cache),
        };
        let (sink, got) = collector();
        let bin = ensure_geth_with(&env, None, "1.13.15", &sink).unwrap();
        assert_eq!(bin.path, cached);
        let got = got.lock().unwrap();
        assert!(
            matches!(&got[..], [Event::Warning { message }] if message.contains("found geth 1.14.8")),
            "{got:?}"
        );
    }

    #[test]
    fn without_go_the_error_says_how_to_install() {
        let d = tempfile::tempdir().unwrap();
        let env = Lookup {
            env_geth: None,
            path_var: Some(d.path().join("empty").into_os_string()),
            cache_home: Some(d.path().join("cache")),
        };
        let err = ensure_geth_with(&env, None, "1.13.15", &crate::provider::events::null_sink())
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
        let err = ensure_geth_with(&env, None, "1.13.15", &crate::provider::events::null_sink())
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
