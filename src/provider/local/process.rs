//! geth processes on this machine: start detached, recognise, stop; free ports.
//!
//! A process is identified by (pid, start time) and must still name its data dir on its
//! command line: consort never signals a pid it cannot prove is the geth it started, so a
//! recycled pid is never hit.

use crate::plan::ports::NodePorts;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Name of the log file in a node's data dir.
pub const LOG_FILE: &str = "geth.log";

/// How often `stop` looks whether the process is gone.
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{path}: cannot open the log file: {source}; check the data dir's permissions")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program} for {datadir}: {source}; check that the geth binary exists and is executable")]
    Spawn {
        program: PathBuf,
        datadir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{datadir}: geth (pid {pid}) exited right after starting ({how}); see {log}")]
    ExitedEarly {
        datadir: PathBuf,
        pid: u32,
        /// Its wait status: "exit status 1", "killed by signal 9 (SIGKILL)".
        how: String,
        log: PathBuf,
    },
    #[error("{datadir}: cannot read /proc/{pid}/stat of the geth just started: {source}; it was stopped again (check `ulimit -n` and /proc)")]
    Unidentified {
        datadir: PathBuf,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("{datadir}: cannot signal geth (pid {pid}): {source}")]
    Signal {
        datadir: PathBuf,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("{datadir}: geth (pid {pid}) is still running {waited:?} after SIGKILL (stuck in the kernel?); check `ps -p {pid}` and retry")]
    WontDie {
        datadir: PathBuf,
        pid: u32,
        waited: Duration,
    },
    #[error("no free port on 127.0.0.1 from {from} up to 65535 ({why}); set a different `provider.local.base_port` or free some ports")]
    NoFreePort { from: u16, why: String },
}

/// A started (or recorded) process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot): tells a recycled pid apart.
    pub start_time: u64,
}

/// Starts `program args…` detached in its own session (so Ctrl-C of consort or its exit
/// does not reach it), stdin null, stdout and stderr appended to `<datadir>/geth.log`.
/// `datadir` must be named on the command line (see [`is_ours`]); pass it absolute.
pub fn start<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    datadir: &Path,
) -> Result<ProcessId, ProcessError> {
    let log_path = datadir.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| ProcessError::Log {
            path: log_path.clone(),
            source,
        })?;
    let log2 = log.try_clone().map_err(|source| ProcessError::Log {
        path: log_path.clone(),
        source,
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(datadir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; between fork and exec the child only calls it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.to_path_buf(),
        datadir: datadir.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    // Until it is reaped the pid cannot be recycled, so what follows is about this process.
    // Only its wait status says it exited: a failed read of /proc (a descriptor limit
    // reached by a consort running hundreds of nodes, say) is not an exit, and was once
    // reported as one, leaving a geth running that consort had given up on.
    let identified = (|| {
        let mut last = None;
        for _ in 0..20 {
            match try_read_stat(pid) {
                Ok(st) if st.state != 'Z' => return Ok(st.start_time),
                Ok(_) => return Err(None),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(POLL);
        }
        Err(last)
    })();
    match identified {
        Ok(start_time) => {
            // The Child handle is dropped without waiting: the process outlives us. While
            // we run, `stop` / `reap` collect its exit status so it does not linger as a
            // zombie.
            drop(child);
            Ok(ProcessId { pid, start_time })
        }
        Err(why) => {
            let exited = |status: std::process::ExitStatus| ProcessError::ExitedEarly {
                datadir: datadir.to_path_buf(),
                pid,
                how: describe(status),
                log: log_path.clone(),
            };
            if let Ok(Some(status)) = child.try_wait() {
                return Err(exited(status));
            }
            // Alive but unreadable: never leave a geth running that nothing records.
            let _ = child.kill();
            let status = child.wait();
            match (why, status) {
                (Some(source), _) => Err(ProcessError::Unidentified {
                    datadir: datadir.to_path_buf(),
                    pid,
                    source,
                }),
                (None, Ok(status)) => Err(exited(status)),
                (None, Err(source)) => Err(ProcessError::Unidentified {
                    datadir: datadir.to_path_buf(),
                    pid,
                    source,
                }),
            }
        }
    }
}

/// "exit status 1" or "killed by signal 9 (SIGKILL)": how a process ended, for errors.
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
        _ => status.to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        _ => "another signal",
    }
}

struct Stat {
    state: char,
    start_time: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    try_read_stat(pid).ok()
}

fn try_read_stat(pid: u32) -> std::io::Result<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&s).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat: {s:?}"),
        )
    })
}

fn parse_stat(s: &str) -> Option<Stat> {
    // `pid (comm) state ...`: comm may contain spaces and parens; split after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Start time of a live pid (None if gone or a zombie).
pub fn start_time_of(pid: u32) -> Option<u64> {
    read_stat(pid)
        .filter(|s| s.state != 'Z')
        .map(|s| s.start_time)
}

/// Whether `cmdline` (NUL-separated) names `datadir`: an argument equal to it, or
/// `--flag=<datadir>`.
fn names_datadir(cmdline: &[u8], datadir: &Path) -> bool {
    let want = datadir.as_os_str().as_bytes();
    cmdline.split(|&b| b == 0).any(|arg| {
        arg == want
            || arg
                .iter()
                .position(|&b| b == b'=')
                .is_some_and(|i| arg.starts_with(b"-") && &arg[i + 1..] == want)
    })
}

/// True iff `pid` is alive (not a zombie), started at `start_time`, and its command line
/// still names `datadir`. Everything that signals a process checks this first.
pub fn is_ours(id: ProcessId, datadir: &Path) -> bool {
    if id.pid == 0 || start_time_of(id.pid) != Some(id.start_time) {
        return false;
    }
    match std::fs::read(format!("/proc/{}/cmdline", id.pid)) {
        Ok(cmdline) => names_datadir(&cmdline, datadir),
        Err(_) => false,
    }
}

/// The value of `--datadir` in a NUL-separated command line (`--datadir=X` or
/// `--datadir X`, one or two dashes).
fn datadir_arg(cmdline: &[u8]) -> Option<PathBuf> {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    for (i, a) in args.iter().enumerate() {
        let a = a.strip_prefix(b"-").unwrap_or(a);
        let a = a.strip_prefix(b"-").unwrap_or(a);
        if let Some(v) = a.strip_prefix(b"datadir=") {
            return Some(PathBuf::from(OsStr::from_bytes(v)));
        }
        if a == b"datadir" {
            return args.get(i + 1).map(|v| PathBuf::from(OsStr::from_bytes(v)));
        }
    }
    None
}

/// Live processes whose `--datadir` satisfies `wanted`: finds a geth started by a run that
/// was killed before it could record it. Each is returned with its identity, so `stop`
/// re-checks it before signalling.
pub fn find_by_datadir(wanted: impl Fn(&Path) -> bool) -> Vec<(ProcessId, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let Some(dir) = datadir_arg(&cmdline) else {
            continue;
        };
        if !wanted(&dir) {
            continue;
        }
        if let Some(start_time) = start_time_of(pid) {
            out.push((ProcessId { pid, start_time }, dir));
        }
    }
    out
}

/// Collects the exit status if `pid` is our child and has exited: how it ended ("exit status 1",
/// "killed by signal 9 (SIGKILL)"), or None (still running, or not our child).
pub fn reap(pid: u32) -> Option<String> {
    use std::os::unix::process::ExitStatusExt as _;
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a specific pid; returns -1/ECHILD if not our child.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    (r == pid as libc::pid_t).then(|| describe(std::process::ExitStatus::from_raw(status)))
}

/// How `stop` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running (or the pid now belongs to something else): nothing signalled.
    NotRunning,
    /// Exited after SIGTERM.
    Terminated,
    /// Needed SIGKILL after the grace period.
    Killed,
}

/// A pidfd pins the exact process: a signal sent through it can never hit a recycled pid.
struct PidFd(libc::c_int);

impl PidFd {
    fn open(pid: u32) -> Option<PidFd> {
        // SAFETY: plain syscall; returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        (fd >= 0).then_some(PidFd(fd as libc::c_int))
    }
    fn signal(&self, sig: libc::c_int) -> std::io::Result<()> {
        // SAFETY: fd is a pidfd we own; no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0,
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Drop for PidFd {
    fn drop(&mut self) {
        // SAFETY: closing our own fd once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn send(
    id: ProcessId,
    datadir: &Path,
    pidfd: &Option<PidFd>,
    sig: libc::c_int,
) -> Result<(), ProcessError> {
    let r = match pidfd {
        Some(fd) => fd.signal(sig),
        None => {
            // SAFETY: kill on a pid just verified by is_ours.
            if unsafe { libc::kill(id.pid as libc::pid_t, sig) } < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    match r {
        Ok(()) => Ok(()),
        // Exited meanwhile: that is what we wanted.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(source) => Err(ProcessError::Signal {
            datadir: datadir.to_path_buf(),
            pid: id.pid,
            source,
        }),
    }
}

/// Polls until `id` is gone (reaping it if it is our child) or `deadline` passes.
fn wait_gone(id: ProcessId, deadline: Instant) -> bool {
    loop {
        reap(id.pid);
        if start_time_of(id.pid) != Some(id.start_time) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Asks the process to exit (SIGTERM, and SIGCONT for a stopped one) without waiting,
/// only if [`is_ours`] holds. Returns whether it was running.
pub fn terminate(id: ProcessId, datadir: &Path) -> Result<bool, ProcessError> {
    Ok(signal_exit(id, datadir)?.is_some())
}

/// [`terminate`], returning the pidfd (when the kernel has them) it was signalled through.
#[allow(clippy::option_option)]
fn signal_exit(id: ProcessId, datadir: &Path) -> Result<Option<Option<PidFd>>, ProcessError> {
    // Open the pidfd first, then check: if the check passes, the pidfd is that process.
    let pidfd = PidFd::open(id.pid);
    if !is_ours(id, datadir) {
        reap(id.pid);
        return Ok(None);
    }
    send(id, datadir, &pidfd, libc::SIGTERM)?;
    // A stopped process (SIGSTOP) acts on SIGTERM only once continued.
    let _ = send(id, datadir, &pidfd, libc::SIGCONT);
    Ok(Some(pidfd))
}

/// SIGTERM, then SIGKILL after `grace`, polling until the process is gone — and only if
/// [`is_ours`] holds. Reaps it if it is our child.
pub fn stop(id: ProcessId, datadir: &Path, grace: Duration) -> Result<Stopped, ProcessError> {
    let Some(pidfd) = signal_exit(id, datadir)? else {
        return Ok(Stopped::NotRunning);
    };
    if wait_gone(id, Instant::now() + grace) {
        return Ok(Stopped::Terminated);
    }
    if !is_ours(id, datadir) {
        return Ok(Stopped::Terminated);
    }
    send(id, datadir, &pidfd, libc::SIGKILL)?;
    let waited = Duration::from_secs(10);
    if wait_gone(id, Instant::now() + waited) {
        Ok(Stopped::Killed)
    } else {
        Err(ProcessError::WontDie {
            datadir: datadir.to_path_buf(),
            pid: id.pid,
            waited,
        })
    }
}

/// First p2p port when the topology sets no `provider.local.base_port` (geth's default).
pub const DEFAULT_BASE_PORT: u16 = 30303;
/// First HTTP JSON-RPC port of tx nodes (the conventional 8545; WebSocket beside it).
pub const DEFAULT_RPC_PORT: u16 = 8545;
/// First Prometheus metrics port (geth's conventional 6060; node `i` gets 6060 + i).
pub const DEFAULT_METRICS_PORT: u16 = 6060;
/// Where geth serves its metrics in Prometheus' text format.
pub const METRICS_PATH: &str = "/debug/metrics/prometheus";

/// The URL of geth's Prometheus metrics on `host` (the node's own address) at `port`.
pub fn metrics_url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}{METRICS_PATH}")
}

/// Whether a TCP port can be bound on `ip`: the address the node will bind (a port taken
/// on 127.0.0.1 is free on 127.0.0.2, unless it is taken on every address).
pub fn tcp_free_on(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    tcp_free_on(Ipv4Addr::LOCALHOST.into(), port)
}

/// Whether a p2p port is free on `ip` for TCP and UDP (devp2p).
pub fn p2p_free(ip: IpAddr, port: u16) -> bool {
    tcp_free_on(ip, port) && UdpSocket::bind(SocketAddr::new(ip, port)).is_ok()
}

/// Whether all ports of a node can be bound on `ip` right now.
pub fn ports_free(ip: IpAddr, p: NodePorts) -> bool {
    p2p_free(ip, p.p2p)
        && p.http
            .into_iter()
            .chain(p.ws)
            .chain(p.metrics)
            .all(|port| tcp_free_on(ip, port))
}

/// Hands out free ports on 127.0.0.1 from a base upwards, never one in `reserved` (ports
/// recorded in state for other nodes, or already handed out by this allocator). Freedom is
/// checked by binding (TCP for HTTP/WS, TCP and UDP for p2p); something may still take
/// a port before geth binds it, so callers must detect a failed start and retry.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    base: u16,
    next: u16,
    reserved: BTreeSet<u16>,
}

impl PortAllocator {
    pub fn new(base: Option<u16>, reserved: impl IntoIterator<Item = u16>) -> PortAllocator {
        let base = base.unwrap_or(DEFAULT_BASE_PORT).max(1024);
        PortAllocator {
            base,
            next: base,
            reserved: reserved.into_iter().collect(),
        }
    }

    /// Never hand out `port` (e.g. it failed for a node start).
    pub fn reserve(&mut self, port: u16) {
        self.reserved.insert(port);
    }

    /// Whether `port` is neither reserved nor handed out.
    pub fn is_reserved(&self, port: u16) -> bool {
        self.reserved.contains(&port)
    }

    /// Takes `port` if it is not reserved and `check` says it is free.
    pub fn claim(&mut self, port: u16, check: impl Fn(u16) -> bool) -> bool {
        if self.reserved.contains(&port) || !check(port) {
            return false;
        }
        self.reserved.insert(port);
        true
    }

    /// Moves the search for the next free port to `from` (never below the base).
    pub fn skip_to(&mut self, from: u16) {
        self.next = self.next.max(from);
    }

    fn take(&mut self, check: impl Fn(u16) -> bool, why: &str) -> Result<u16, ProcessError> {
        loop {
            let p = self.next;
            if p == u16::MAX {
                return Err(ProcessError::NoFreePort {
                    from: self.base,
                    why: why.to_string(),
                });
            }
            self.next += 1;
            if self.claim(p, &check) {
                return Ok(p);
            }
        }
    }

    /// A free TCP port.
    pub fn tcp(&mut self) -> Result<u16, ProcessError> {
        self.take(tcp_free, "TCP")
    }

    /// Two free TCP ports next to each other (HTTP, then WebSocket).
    pub fn tcp_pair(&mut self) -> Result<(u16, u16), ProcessError> {
        loop {
            let a = self.tcp()?;
            if self.claim(a + 1, tcp_free) {
                return Ok((a, a + 1));
            }
        }
    }

    /// A port free for both TCP and UDP (devp2p).
    pub fn p2p(&mut self) -> Result<u16, ProcessError> {
        self.take(|p| p2p_free(Ipv4Addr::LOCALHOST.into(), p), "TCP+UDP")
    }

    /// p2p and HTTP ports for a test node.
    pub fn node(&mut self) -> Result<NodePorts, ProcessError> {
        Ok(NodePorts {
            p2p: self.p2p()?,
            http: Some(self.tcp()?),
            ws: None,
            metrics: None,
        })
    }
}

/// The last `lines` lines of a node's `geth.log` (for error messages).
pub fn log_tail(datadir: &Path, lines: usize) -> String {
    let path = datadir.join(LOG_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return format!("(no log at {})", path.display());
    };
    // Only the end matters; logs can be large.
    let start = text.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&text[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Raises this process's soft limit on open descriptors to its hard limit (as Go programs,
/// geth among them, do for themselves). A network of hundreds of nodes has consort hold
/// an IPC connection, a log and a thread's worth of descriptors per node in flight; a
/// shell's default soft limit of 1,024 is near that. Children inherit the raised limit,
/// which geth would set for itself anyway.
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Marks every descriptor above 2 this process inherited (a caller's `flock` lock, a
/// shell's pipes) close-on-exec, so no child — geth above all, which outlives consort —
/// holds one: `consort apply | cat` returns and `flock LOCK consort apply` releases its
/// lock when consort exits. Call once at start-up, before any thread: every descriptor
/// consort opens itself is close-on-exec already (Rust's standard library).
pub fn close_inherited_on_exec() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: each descriptor /proc lists, one by one.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number; a closed one just fails.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start that dies at once is reported with its wait status, not guessed from /proc.
    #[test]
    fn an_exit_is_told_by_its_wait_status() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        let sh = Path::new("/bin/sh");
        for (script, want) in [
            ("kill -KILL $$", "killed by signal 9 (SIGKILL)"),
            ("exit 3", "exit status 3"),
        ] {
            // `sh -c SCRIPT sh DATADIR`: the data dir is named on its command line.
            let args = [
                OsStr::new("-c"),
                OsStr::new(script),
                OsStr::new("sh"),
                d.as_os_str(),
            ];
            let how = match start(sh, &args, &d) {
                // Seen running first: the status is collected once it has exited.
                Ok(id) => {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    loop {
                        if let Some(how) = reap(id.pid) {
                            break how;
                        }
                        assert!(Instant::now() < deadline, "{script}: never exited");
                        std::thread::sleep(POLL);
                    }
                }
                Err(ProcessError::ExitedEarly { how, .. }) => how,
                Err(e) => panic!("{script}: {e}"),
            };
            assert_eq!(how, want, "{script}");
        }
        // Not our child (or still running): nothing to tell.
        assert_eq!(reap(1), None);
    }

    #[test]
    fn cmdline_must_name_the_datadir_exactly() {
        let d = Path::new("/tmp/x/nodes/a");
        assert!(names_datadir(
            b"geth\0--datadir\0/tmp/x/nodes/a\0--mine\0",
            d
        ));
        assert!(names_datadir(b"geth\0--datadir=/tmp/x/nodes/a\0", d));
        assert!(!names_datadir(b"geth\0--datadir\0/tmp/x/nodes/ab\0", d));
        assert!(!names_datadir(b"geth\0--datadir\0/tmp/x/nodes\0", d));
        assert!(!names_datadir(b"", d));
    }

    #[test]
    fn datadir_argument_forms() {
        assert_eq!(
            datadir_arg(b"geth\0--datadir=/a/b\0--mine\0"),
            Some(PathBuf::from("/a/b"))
        );
        assert_eq!(
            datadir_arg(b"geth\0-datadir\0/a/b\0"),
            Some(PathBuf::from("/a/b"))
        );
        assert_eq!(datadir_arg(b"geth\0--datadirx=/a\0"), None);
        assert_eq!(datadir_arg(b"ls\0/a/b\0"), None);
    }

    #[test]
    fn start_is_ours_and_stop_with_sigterm() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        // A stand-in for geth that names the dir and traps nothing: dies on SIGTERM.
        let id = start(Path::new("/bin/sleep"), &["300"], &dir).unwrap();
        // sleep's command line does not name the dir, so it is not "ours".
        assert!(!is_ours(id, &dir));
        assert_eq!(
            stop(id, &dir, Duration::from_secs(1)).unwrap(),
            Stopped::NotRunning
        );
        assert!(
            start_time_of(id.pid).is_some(),
            "stop must not signal a process that is not ours"
        );
        // SAFETY: test cleanup of our own child.
        unsafe { libc::kill(id.pid as i32, libc::SIGKILL) };
        assert!(wait_gone(id, Instant::now() + Duration::from_secs(5)));

        let id = start(
            Path::new("/bin/sh"),
            &[
                "-c",
                "while :; do sleep 0.05; done",
                "--datadir",
                dir.to_str().unwrap(),
            ],
            &dir,
        )
        .unwrap();
        assert!(is_ours(id, &dir));
        // The shell forks `sleep` children; between fork and exec a child carries the
        // shell's command line for a moment, so a scan may briefly see it too. Poll
        // (with a deadline) for a scan that sees exactly ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = find_by_datadir(|d| d == dir);
        while found != vec![(id, dir.clone())] && Instant::now() < deadline {
            assert!(
                found.contains(&(id, dir.clone())),
                "scan missed the process: {found:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
            found = find_by_datadir(|d| d == dir);
        }
        assert_eq!(found, vec![(id, dir.clone())]);
        assert!(!is_ours(
            ProcessId {
                start_time: id.start_time + 1,
                ..id
            },
            &dir
        ));
        assert!(!is_ours(id, &dir.join("other")));
        // Own session: its session id is its pid.
        let sid = unsafe { libc::getsid(id.pid as i32) };
        assert_eq!(sid, id.pid as i32);
        assert_eq!(
            stop(id, &dir, Duration::from_secs(5)).unwrap(),
            Stopped::Terminated
        );
        assert!(!is_ours(id, &dir));
        assert!(start_time_of(id.pid).is_none(), "reaped, not a zombie");
    }

    #[test]
    fn stop_escalates_to_sigkill_after_grace() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let id = start(
            Path::new("/bin/sh"),
            &[
                "-c",
                "trap '' TERM; echo ready; while :; do sleep 0.05; done",
                "--datadir",
                dir.to_str().unwrap(),
            ],
            &dir,
        )
        .unwrap();
        // Wait until the trap is installed (the shell printed "ready" after it).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log_tail(&dir, 5).contains("ready") {
            assert!(Instant::now() < deadline, "script never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let t0 = Instant::now();
        assert_eq!(
            stop(id, &dir, Duration::from_millis(300)).unwrap(),
            Stopped::Killed
        );
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert!(!is_ours(id, &dir));
    }

    #[test]
    fn ports_skip_reserved_and_bound_ones() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let mut a = PortAllocator::new(Some(busy_port), [busy_port + 1]);
        let p = a.node().unwrap();
        assert!(!p.all().contains(&busy_port), "{p:?}");
        assert!(!p.all().contains(&(busy_port + 1)), "{p:?}");
        let q = a.node().unwrap();
        assert!(p.all().iter().all(|x| !q.all().contains(x)), "{p:?} {q:?}");
        assert!(p.p2p > busy_port && p.http.unwrap() > p.p2p);
        let (h, w) = a.tcp_pair().unwrap();
        assert_eq!(w, h + 1);
        assert!(!q.all().contains(&h) && !q.all().contains(&w));
        // UDP taken is not a free p2p port.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up = udp.local_addr().unwrap().port();
        if tcp_free(up) {
            let mut b = PortAllocator::new(Some(up), []);
            assert_ne!(b.p2p().unwrap(), up);
        }
    }
}
