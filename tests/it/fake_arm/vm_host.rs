//! VMs that really boot, here: with [`FakeArm::boot_vms`], every VM created with
//! customData is carried out on this machine the way cloud-init would — `write_files`
//! under its own root directory, then `runcmd` (consort's `start.sh`, which retries the
//! bootstrap) with `CONSORT_ROOT`, the local geth archive, this stand-in as the VM's IMDS
//! (`CONSORT_IMDS_ENDPOINT`) and Key Vault, and no systemd. Its geth listens on the VM's
//! private IP, which a loopback address space (`127.x.0.0/16`) makes real. Deleting the VM
//! (or dropping the stand-in) kills its processes. Run Command scripts run against it.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where VMs boot and what they download.
#[derive(Debug, Clone)]
pub struct BootConfig {
    pub dir: PathBuf,
    pub geth_url: String,
    pub geth_sha256: String,
}

pub(super) struct Host {
    pub root: PathBuf,
    /// The environment the VM booted with (its own engine-API port among it): what is
    /// this VM's own on a real one — 127.0.0.1:8551 is per VM there, one machine's here —
    /// so Run Command scripts that start geth again get the same.
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    child: Option<Child>,
    /// The VM's public IP forwarding to its private IP, while the VM runs.
    nat: Option<Nat>,
}

/// A public IP as Azure wires it: inbound traffic to the public address reaches the NIC's
/// private address (Azure's 1:1 NAT of an instance-level public IP;
/// learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses, "A public IP
/// associated with a virtual machine's network interface"; network 2024-03-01
/// publicIpAddress.json, `ipAddress` of the NIC's `ipConfigurations[].publicIPAddress`).
/// Here: a TCP forwarder per geth port (RPC, WS) from the public to the private IP.
struct Nat {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The ports a public IP forwards here (geth's HTTP and WS RPC).
const NAT_PORTS: [u16; 2] = [8545, 8546];

impl Nat {
    fn start(public: &str, private: &str) -> Option<Nat> {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut listeners = Vec::new();
        for port in NAT_PORTS {
            let listener = std::net::TcpListener::bind((public, port)).ok()?;
            listener.set_nonblocking(true).ok()?;
            listeners.push((listener, format!("{private}:{port}")));
        }
        for (listener, to) in listeners {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((inbound, _)) => {
                            let to = to.clone();
                            std::thread::spawn(move || forward(inbound, &to));
                        }
                        // Nonblocking: look again for the stop flag in a moment.
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                    }
                }
            });
        }
        Some(Nat { stop })
    }
}

/// Copies bytes both ways between a forwarded connection and its private target.
fn forward(inbound: std::net::TcpStream, to: &str) {
    let _ = inbound.set_nonblocking(false);
    let Ok(outbound) = std::net::TcpStream::connect(to) else {
        return;
    };
    let (Ok(mut in2), Ok(mut out2)) = (inbound.try_clone(), outbound.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut in2, &mut out2);
        let _ = out2.shutdown(std::net::Shutdown::Write);
    });
    let (mut inbound, mut outbound) = (inbound, outbound);
    let _ = std::io::copy(&mut outbound, &mut inbound);
    let _ = inbound.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The (public, private) IP pair of a VM's NICs, as the stand-in stored them.
fn public_and_private(g: &Inner, vm: &str) -> Option<(String, String)> {
    let vm_body = g
        .resources
        .values()
        .find(|s| {
            s.rtype == "Microsoft.Compute/virtualMachines" && s.name.eq_ignore_ascii_case(vm)
        })?
        .body
        .clone();
    let by_id = |id: &str| g.resources.get(&id.to_ascii_lowercase()).map(|s| &s.body);
    for nic in vm_body["properties"]["networkProfile"]["networkInterfaces"].as_array()? {
        let Some(nic) = nic["id"].as_str().and_then(by_id) else {
            continue;
        };
        for c in nic["properties"]["ipConfigurations"].as_array()? {
            let p = &c["properties"];
            let private = p["privateIPAddress"].as_str();
            let public = p["publicIPAddress"]["id"]
                .as_str()
                .and_then(by_id)
                .and_then(|b| b["properties"]["ipAddress"].as_str());
            if let (Some(public), Some(private)) = (public, private) {
                return Some((public.to_string(), private.to_string()));
            }
        }
    }
    None
}

#[derive(Default)]
pub(super) struct Hosts {
    pub cfg: Option<BootConfig>,
    /// VM name (lowercase) → its host.
    pub vms: BTreeMap<String, Host>,
}

/// Held while a test's VMs may be booted on the loopback VNet.
pub struct VnetGuard {
    _thread: std::sync::MutexGuard<'static, ()>,
    /// flock(2)ed; closing it releases the lock.
    _file: std::fs::File,
}

/// Booted VMs bind the loopback VNet's addresses (`127.0.0.0/16`, the one that holds
/// 127.0.0.1) on geth's fixed ports: one booting network at a time, on the whole machine —
/// not only in this test binary (a mutex) but across test processes (an flock on a file in
/// the temp directory), since another checkout's test run binds the same addresses and
/// its geth would make ours fail with "bind: address already in use".
pub fn loopback_vnet() -> VnetGuard {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    static VNET: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let thread = VNET.lock().unwrap_or_else(|p| p.into_inner());
    let path = std::env::temp_dir().join("consort-test-loopback-vnet.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own; it is released when `file` is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    VnetGuard {
        _thread: thread,
        _file: file,
    }
}

/// Writes every `write_files` entry of a cloud-init under `root`, with its permissions;
/// returns the parsed document.
pub fn write_files(root: &Path, cloud_init: &str) -> serde_yaml::Value {
    assert!(cloud_init.starts_with("#cloud-config\n"));
    let doc: serde_yaml::Value = serde_yaml::from_str(cloud_init).expect("cloud-init is YAML");
    for f in doc["write_files"].as_sequence().expect("write_files") {
        let path = root.join(f["path"].as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, f["content"].as_str().unwrap()).unwrap();
        let mode = u32::from_str_radix(f["permissions"].as_str().unwrap(), 8).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    doc
}

/// The one runcmd, with VM paths moved under `root`.
pub fn runcmd(root: &Path, doc: &serde_yaml::Value) -> Command {
    let cmds = doc["runcmd"].as_sequence().expect("runcmd");
    assert_eq!(cmds.len(), 1, "one bootstrap command");
    let argv: Vec<String> = cmds[0]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with('/') {
                root.join(a.trim_start_matches('/'))
                    .to_string_lossy()
                    .into_owned()
            } else {
                a.to_string()
            }
        })
        .collect();
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env("CONSORT_ROOT", root)
        .env("CONSORT_NO_SYSTEMD", "1")
        .env("CONSORT_RETRY_DELAY", "1")
        .env("CONSORT_SEAL_INTERVAL", "1")
        .env("CONSORT_AUTHRPC_PORT", free_port().to_string());
    c
}

/// A free loopback TCP port (for geth's engine API, which every "VM" here opens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGKILLs what a bootstrap (or a Run Command starting geth again) started under `root`
/// (its pid files), and waits up to 60 s until each has exited: one started by Run Command
/// is not in the VM's process group, and a geth still exiting holds its address and port.
pub fn kill_root(root: &Path) {
    let mut pids = Vec::new();
    for f in ["geth.pid", "seal.pid"] {
        let pidfile = root.join("var/lib/consort/geth").join(f);
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: signalling a pid our bootstrap wrote for its own process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                pids.push(pid);
            }
        }
    }
    let alive = |p: &i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
            st.rsplit_once(')')
                .is_some_and(|(_, r)| r.split_whitespace().next() != Some("Z"))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pids.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes of group `pgid` that have not exited yet (a zombie holds no socket or port).
fn live_in_group(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
                // pid (comm) state ppid pgrp ...: comm may hold spaces, so after the last ')'.
                let rest: Vec<&str> = st
                    .rsplit_once(')')
                    .map(|(_, r)| r.split_whitespace().collect())
                    .unwrap_or_default();
                rest.len() > 2 && rest[0] != "Z" && rest[2].parse() == Ok(pgid)
            })
        })
        .collect()
}

impl Host {
    /// Kills the VM's whole process group (start.sh, bootstrap, geth, seal.sh) and waits
    /// until each has exited: the next VM on this private IP (the same VM name booted
    /// again, or the next test's network on the loopback VNet) binds the same address and
    /// port, which a geth still exiting (a kill does not wait; a process in the middle of
    /// disk I/O on a loaded machine dies only after it) would still hold. Geth then fails
    /// with "bind: address already in use" and the test waits for a node that never came.
    fn stop(&mut self) {
        drop(self.nat.take());
        let Some(mut c) = self.child.take() else {
            kill_root(&self.root);
            return;
        };
        let pgid = c.id() as i32;
        // SAFETY: signalling the process group we created for this VM's runcmd.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = c.wait();
        kill_root(&self.root);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !live_in_group(pgid).is_empty() && std::time::Instant::now() < deadline {
            // SAFETY: as above; anything of the group still alive gets the signal again.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
    }
}

impl FakeArm {
    /// From now on, VMs created with customData boot on this machine (see the module doc).
    pub fn boot_vms(&self, cfg: BootConfig) {
        self.shared.lock().unwrap().hosts.cfg = Some(cfg);
    }

    /// The root directory a VM booted in.
    pub fn vm_root(&self, vm: &str) -> Option<PathBuf> {
        let g = self.shared.lock().unwrap();
        g.hosts
            .vms
            .get(&vm.to_ascii_lowercase())
            .map(|h| h.root.clone())
    }
}

/// A VM was created: boot it if booting is on.
pub(super) fn boot(g: &mut Inner, vm: &str, custom_data_b64: &str) {
    let Some(cfg) = g.hosts.cfg.clone() else {
        return;
    };
    let Ok(bytes) = azure_core::base64::decode(custom_data_b64) else {
        return;
    };
    let text = String::from_utf8_lossy(&gunzipped(bytes)).into_owned();
    let root = cfg.dir.join(vm.to_ascii_lowercase());
    drop(g.hosts.vms.remove(&vm.to_ascii_lowercase()));
    let _ = std::fs::remove_dir_all(&root);
    let doc = write_files(&root, &text);
    let log = std::fs::File::create(root.join("boot.log")).unwrap();
    use std::os::unix::process::CommandExt;
    let mut cmd = runcmd(&root, &doc);
    let env = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let child = cmd
        .process_group(0)
        .env("CONSORT_GETH_URL", &cfg.geth_url)
        .env("CONSORT_GETH_SHA256", &cfg.geth_sha256)
        .env(
            "CONSORT_IMDS_ENDPOINT",
            format!("{}/imds/{}", g.base, vm.to_ascii_lowercase()),
        )
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .ok();
    let nat = g
        .cfg
        .public_ip_nat
        .then(|| public_and_private(g, vm))
        .flatten()
        .and_then(|(public, private)| Nat::start(&public, &private));
    g.hosts.vms.insert(
        vm.to_ascii_lowercase(),
        Host {
            root,
            env,
            child,
            nat,
        },
    );
}

/// A VM was deleted: its processes stop.
pub(super) fn shut_down(g: &mut Inner, vm: &str) {
    drop(g.hosts.vms.remove(&vm.to_ascii_lowercase()));
}

/// User data as cloud-init reads it: gzip-compressed data (magic 1f 8b) is decompressed.
pub fn gunzipped(bytes: Vec<u8>) -> Vec<u8> {
    use std::io::Read;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes;
    }
    let mut out = Vec::new();
    match flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out) {
        Ok(_) => out,
        Err(_) => bytes,
    }
}
