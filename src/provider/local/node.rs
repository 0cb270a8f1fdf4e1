//! Node lifecycle: data dir, config, geth start, restart and removal.

use super::*;

/// The genesis.json a genesis-db was initialised with (inside it).
pub(super) const GENESIS_DB_SOURCE: &str = "genesis.json";

/// Copies the directory tree `from` to `to` (created), skipping paths `skip` names.
pub(super) fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let src = e.path();
        if skip(&src) {
            continue;
        }
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&src, &dst, skip)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// `{pid, start_time}` of the process last started in `datadir`.
pub(super) fn read_pid_file(datadir: &Path) -> Option<ProcessId> {
    let text = std::fs::read(datadir.join(PID_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Stops whatever consort started in `datadir`: the recorded process, the one in its pid
/// file, and any other geth whose `--datadir` is exactly this dir (started by a run killed
/// before it wrote either). `process::stop` re-checks each against /proc first.
pub(super) fn stop_recorded(
    addr: &str,
    datadir: &Path,
    recorded: Option<ProcessId>,
) -> Result<(), ProviderError> {
    let strays = process::find_by_datadir(|d| d == datadir);
    stop_with_strays(
        addr,
        datadir,
        recorded,
        strays.into_iter().map(|(id, _)| id),
    )
}

/// [`stop_recorded`] with the strays already found (one /proc scan for many nodes).
pub(super) fn stop_with_strays(
    addr: &str,
    datadir: &Path,
    recorded: Option<ProcessId>,
    strays: impl Iterator<Item = ProcessId>,
) -> Result<(), ProviderError> {
    for id in recorded
        .into_iter()
        .chain(read_pid_file(datadir))
        .chain(strays)
    {
        process::stop(id, datadir, STOP_GRACE)
            .map_err(|e| ProviderError::at(addr, e.to_string()))?;
    }
    Ok(())
}

pub(super) fn log_excerpt(datadir: &Path) -> String {
    let tail = process::log_tail(datadir, LOG_TAIL);
    format!(
        "last lines of {}:\n{}",
        datadir.join(process::LOG_FILE).display(),
        tail.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Whether the node can sign with its signer key (always true for tx nodes).
pub(super) fn signer_ready(rpc: &RpcClient, launch: &NodeLaunch) -> bool {
    let Some(signer) = &launch.signer else {
        return true;
    };
    let Some(address) = rpc::parse_address(&signer.address) else {
        return false;
    };
    rpc.eth_sign(&address, "0x00").is_ok()
}

/// Where the SHA-256 a start checks geth against comes from (for the refusal).
const GETH_HASH_ORIGIN: &str =
    "it had when consort chose it for this run (or that state recorded for the node)";

/// The longest unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How long a node consort just stopped may keep its ports before a restart moves it.
const PORTS_RELEASE: Duration = Duration::from_secs(5);

/// Where a node's IPC socket lives: `<node dir>/geth.ipc` (the node dir is 0700, so only
/// the operator can connect), or, when that path is too long for a unix socket, a short
/// one named after the node dir in a 0700 directory of ours under `$XDG_RUNTIME_DIR`
/// (else `/tmp/consort-<uid>`). The same node dir always gives the same path.
pub(super) fn ipc_path(datadir: &Path) -> PathBuf {
    let own = datadir.join("geth.ipc");
    if own.as_os_str().len() <= MAX_SOCKET_PATH {
        return own;
    }
    use sha2::Digest;
    let digest = hex::encode(&sha2::Sha256::digest(datadir.as_os_str().as_encoded_bytes())[..8]);
    short_socket_dir().join(format!("{digest}.ipc"))
}

/// The directory for IPC sockets whose node dir is too deep (see [`ipc_path`]).
pub(super) fn short_socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("consort"),
        None => PathBuf::from(format!("/tmp/consort-{}", unsafe { libc::getuid() })),
    }
}

/// Makes sure the directory of a node's IPC socket exists and is ours alone (0700, not a
/// link, owned by us): another user must not be able to connect or plant a socket.
pub(super) fn prepare_ipc_dir(addr: &str, ipc: &Path) -> Result<(), ProviderError> {
    let Some(dir) = ipc.parent() else {
        return Ok(());
    };
    create_private_dir(dir).map_err(|e| {
        ProviderError::at(
            addr,
            format!(
                "cannot use {} for the node's IPC socket: {e} (or set XDG_RUNTIME_DIR)",
                dir.display()
            ),
        )
    })
}

/// Why a started geth did not come up.
pub(super) enum StartFailure {
    /// It exited; `port_clash` if its log says a port was taken; `how` its wait status.
    Exited {
        port_clash: bool,
        how: String,
    },
    /// It kept running but one of its servers failed: a port taken between consort's check
    /// and geth's bind (the metrics server only logs that and goes on without it), or its
    /// IPC endpoint closed before it ever answered. consort stopped it.
    HalfStarted {
        why: String,
    },
    Other(String),
}

/// What in geth's log (since this start) says the start failed though the process runs on.
/// geth's metrics server logs "Failure in running metrics server" with the bind error and
/// goes on without it (metrics/exp/exp.go, `Setup`); a failed RPC server start logs "IPC
/// endpoint closed" as the stack stops its endpoints.
fn half_started(log_since_start: &str, answered: bool) -> Option<String> {
    if let Some(line) = log_since_start
        .lines()
        .find(|l| l.contains("address already in use"))
    {
        return Some(format!("a port was taken: {}", line.trim()));
    }
    (!answered && log_since_start.contains("IPC endpoint closed"))
        .then(|| "its IPC endpoint closed before it answered".to_string())
}

/// The part of `path` from byte `offset` on ("" if unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    use std::io::{Read as _, Seek as _};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(std::io::SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

impl LocalProvider {
    pub(super) fn spec(ctx: &ApplyCtx, addr: &str, node: &str) -> Result<NodeSpec, ProviderError> {
        ctx.topology
            .nodes()
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| ProviderError::at(addr, format!("node {node} is not in the topology")))
    }

    /// The NodeLaunch for `spec` with `ports`.
    pub(super) fn launch(
        ctx: &ApplyCtx,
        addr: &str,
        spec: &NodeSpec,
        datadir: &Path,
        ports: NodePorts,
        peers: Peers,
        geth: &GethBinary,
    ) -> Result<NodeLaunch, ProviderError> {
        let st = ctx.snapshot();
        let nodekey = st
            .output_str(&format!("key.node.{}", spec.name), "key_file")
            .ok_or_else(|| {
                ProviderError::at(
                    addr,
                    format!("key.node.{} is not in state; run apply again", spec.name),
                )
            })?;
        let signer = if spec.role == Role::Validator {
            let key_addr = format!("key.signer.{}", spec.name);
            let address = st.output_str(&key_addr, "address").ok_or_else(|| {
                ProviderError::at(addr, format!("{key_addr} is not in state; run apply again"))
            })?;
            Some(SignerLaunch {
                address: address.to_string(),
                keystore_dir: s(&datadir.join("keystore")),
                password_file: s(&datadir.join("password")),
                // Sealing starts once peered: see `start_sealing`.
                mine: false,
            })
        } else {
            None
        };
        let planned_peers = ctx.peering().degree(&spec.name) as u32;
        Ok(NodeLaunch {
            network: ctx.topology.network.name.clone(),
            node_name: spec.name.clone(),
            geth_version: geth.version.clone(),
            chain_id: ctx.topology.network.chain_id,
            datadir: s(datadir),
            config_path: s(&datadir.join("config.toml")),
            nodekey_path: s(&abs(Path::new(nodekey))),
            listen_addr: ctx.topology.local_address().into(),
            p2p_port: ports.p2p,
            nat: "none".into(),
            http_addr: ctx.topology.local_address().into(),
            // Applications connect to tx nodes only; validators are controlled over IPC.
            http_port: ports.http.filter(|_| spec.role == Role::Tx),
            ws_port: ports.ws.filter(|_| spec.role == Role::Tx),
            cors_origins: match spec.role {
                Role::Tx => ctx.topology.rpc.cors_origins.clone(),
                Role::Validator => vec![],
            },
            metrics_port: ports.metrics,
            authrpc_port: 0,
            ipc_path: s(&ipc_path(datadir)),
            netrestrict: None,
            cache_mb: 64,
            verbosity: 3,
            // Exactly the planned peers, other operators' nodes included: geth starts its
            // first sync once min(5, MaxPeers) peers are connected, so a larger value would
            // leave non-sealing nodes of small networks discarding blocks until its 10 s
            // forced sync. Planned peers are trusted, so they are never refused for
            // exceeding it; but geth dials at most MaxPeers of them (its dial slots), so a
            // smaller value leaves static peers never dialled.
            max_peers: planned_peers.max(1),
            static_nodes: peers.dial,
            trusted_nodes: peers.mesh,
            signer,
        })
    }

    pub(super) fn write_config(addr: &str, launch: &NodeLaunch) -> Result<(), ProviderError> {
        let toml =
            render::geth_config_toml(launch).map_err(|e| ProviderError::at(addr, e.to_string()))?;
        let path = Path::new(&launch.config_path);
        write_atomic(path, toml.as_bytes(), 0o644)
            .map_err(|e| ProviderError::at(addr, format!("cannot write {}: {e}", path.display())))
    }

    /// Copies the signer keystore and password into the node's dir (0600).
    pub(super) fn install_signer(
        ctx: &ApplyCtx,
        addr: &str,
        node: &str,
        datadir: &Path,
    ) -> Result<(), ProviderError> {
        let st = ctx.snapshot();
        let key_addr = format!("key.signer.{node}");
        let get = |k: &str| {
            st.output_str(&key_addr, k)
                .map(PathBuf::from)
                .ok_or_else(|| {
                    ProviderError::at(
                        addr,
                        format!("{key_addr} has no {k} in state; run apply again"),
                    )
                })
        };
        let keystore = get("keystore")?;
        let password = get("password_file")?;
        let ks_dir = datadir.join("keystore");
        create_private_dir(&ks_dir).map_err(|e| {
            ProviderError::at(addr, format!("cannot create {}: {e}", ks_dir.display()))
        })?;
        for (from, to) in [
            (
                keystore.clone(),
                ks_dir.join(keystore.file_name().unwrap_or_default()),
            ),
            (password, datadir.join("password")),
        ] {
            let bytes = std::fs::read(&from).map_err(|e| {
                ProviderError::at(
                    addr,
                    format!(
                        "cannot read {}: {e}; `consort plan` shows whether {key_addr} can be restored from its other copy",
                        from.display()
                    ),
                )
            })?;
            write_secret(&to, &bytes).map_err(|e| {
                ProviderError::at(addr, format!("cannot write {}: {e}", to.display()))
            })?;
        }
        Ok(())
    }

    /// `geth init` of a node's data dir with the network's genesis: run once per genesis
    /// into `.consort/<net>/genesis-db/` and copied from there, because every init costs a
    /// geth start-up's worth of CPU (~0.2 s) and a network's nodes all start from the same
    /// database. The template is rebuilt whenever genesis.json differs from the one it was
    /// made from; destroy removes it.
    pub(super) fn init_datadir(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        geth: &GethBinary,
        datadir: &Path,
        genesis: &Path,
    ) -> Result<(), ProviderError> {
        let template = {
            let _one_at_a_time = self.genesis_db.lock().unwrap();
            let root = abs(&genesis_db_dir(ctx.state_dir));
            let wanted = std::fs::read(genesis).map_err(|e| {
                ProviderError::at(addr, format!("cannot read {}: {e}", genesis.display()))
            })?;
            let made_from = std::fs::read(root.join(GENESIS_DB_SOURCE)).ok();
            if made_from.as_deref() != Some(wanted.as_slice()) {
                // One apply at a time holds the state lock, so one fixed scratch name.
                let tmp = root.with_extension("tmp");
                let fail = |what: &str, p: &Path, e: std::io::Error| {
                    ProviderError::at(addr, format!("cannot {what} {}: {e}", p.display()))
                };
                for d in [&root, &tmp] {
                    match std::fs::remove_dir_all(d) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(fail("clear", d, e))
                        }
                        _ => {}
                    }
                }
                create_private_dir(&tmp).map_err(|e| fail("create", &tmp, e))?;
                Self::geth_init(addr, geth, &tmp, genesis)?;
                // Written last: a template is only ever used once it is complete.
                write_atomic(&tmp.join(GENESIS_DB_SOURCE), &wanted, 0o644)
                    .map_err(|e| fail("write", &tmp, e))?;
                std::fs::rename(&tmp, &root).map_err(|e| fail("rename", &tmp, e))?;
            }
            root
        };
        // Only the chain database: the template's keystore/ is empty and its geth/nodekey
        // unused (nodes get theirs with --nodekey).
        copy_tree(&template.join("geth"), &datadir.join("geth"), &|p| {
            p.file_name().is_some_and(|n| n == "nodekey")
        })
        .map_err(|e| {
            ProviderError::at(
                addr,
                format!(
                    "cannot copy the initialised chain database from {} into {}: {e}",
                    template.display(),
                    datadir.display()
                ),
            )
        })
    }

    pub(super) fn geth_init(
        addr: &str,
        geth: &GethBinary,
        datadir: &Path,
        genesis: &Path,
    ) -> Result<(), ProviderError> {
        use std::os::unix::process::CommandExt as _;
        crate::chain::geth::verify(geth, GETH_HASH_ORIGIN)
            .map_err(|e| ProviderError::at(addr, e.to_string()))?;
        let out = std::process::Command::new(&geth.path)
            // Its own process group: a Ctrl-C at the terminal reaches consort, not it.
            .process_group(0)
            .arg("init")
            .arg("--datadir")
            .arg(datadir)
            .arg(genesis)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                ProviderError::at(
                    addr,
                    format!("cannot run {} init: {e}", geth.path.display()),
                )
            })?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = text.lines().rev().take(LOG_TAIL).collect();
            return Err(ProviderError::at(
                addr,
                format!(
                    "`geth init` of {} with {} failed ({}):\n{}",
                    datadir.display(),
                    genesis.display(),
                    out.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            ));
        }
        Ok(())
    }

    /// Starts geth and waits until it answers RPC with the right chain id.
    pub(super) fn start_and_wait(
        geth: &GethBinary,
        launch: &NodeLaunch,
    ) -> Result<ProcessId, (StartFailure, Option<ProcessId>)> {
        let datadir = Path::new(&launch.datadir);
        let args =
            render::geth_args(launch).map_err(|e| (StartFailure::Other(e.to_string()), None))?;
        // The binary is the one chosen (or recorded in state): checked right before it runs.
        crate::chain::geth::verify(geth, GETH_HASH_ORIGIN)
            .map_err(|e| (StartFailure::Other(e.to_string()), None))?;
        let log = datadir.join(process::LOG_FILE);
        // Only what this start writes counts (the log is appended to across restarts).
        let since = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let clash = || read_from(&log, since).contains("address already in use");
        let id = match process::start(&geth.path, &args, datadir) {
            Ok(id) => id,
            Err(process::ProcessError::ExitedEarly { how, .. }) => {
                return Err((
                    StartFailure::Exited {
                        port_clash: clash(),
                        how,
                    },
                    None,
                ));
            }
            Err(e) => return Err((StartFailure::Other(e.to_string()), None)),
        };
        // Before anything else: a consort killed from here on still finds this process.
        let pid_json = serde_json::to_vec(&id).expect("pid serialises");
        if let Err(e) = write_atomic(&datadir.join(PID_FILE), &pid_json, 0o644) {
            let _ = process::stop(id, datadir, STOP_GRACE);
            return Err((
                StartFailure::Other(format!(
                    "cannot write {}: {e}",
                    datadir.join(PID_FILE).display()
                )),
                None,
            ));
        }
        let rpc = RpcClient::ipc(&launch.ipc_path).with_timeout(PROBE_TIMEOUT);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_look = Instant::now();
        let mut answered = false;
        loop {
            // It is our child: only its wait status says it exited (a failed read of /proc
            // does not).
            if let Some(how) = process::reap(id.pid) {
                return Err((
                    StartFailure::Exited {
                        port_clash: clash(),
                        how,
                    },
                    None,
                ));
            }
            let ready = match rpc.chain_id() {
                // A validator is ready once its signer is unlocked too: geth answers RPC
                // before `--unlock` is done, and a seal attempted in between fails and is
                // not retried until the next block arrives (which may never come).
                Ok(c) if c == launch.chain_id => {
                    answered = true;
                    signer_ready(&rpc, launch)
                }
                Ok(c) => {
                    return Err((
                        StartFailure::Other(format!(
                            "{} answers with chain id {c}, not {}: another geth holds that socket",
                            launch.ipc_path, launch.chain_id
                        )),
                        Some(id),
                    ))
                }
                Err(_) if Instant::now() < deadline => false,
                Err(e) => {
                    return Err((
                        StartFailure::Other(format!(
                            "did not answer RPC within {START_TIMEOUT:?}: {e}"
                        )),
                        Some(id),
                    ))
                }
            };
            // A server that failed while the process runs on: not a started node.
            if ready || last_look.elapsed() > Duration::from_millis(250) {
                last_look = Instant::now();
                if let Some(why) = half_started(&read_from(&log, since), answered) {
                    return Err((StartFailure::HalfStarted { why }, Some(id)));
                }
            }
            if ready {
                return Ok(id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node, choosing new ports (up to 3 times) if its ports turn out taken.
    /// Returns the process, the ports it runs on and the static nodes in its config.
    pub(super) fn launch_with_retries(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        spec: &NodeSpec,
        datadir: &Path,
        geth: &GethBinary,
        mut ports: NodePorts,
    ) -> Result<(ProcessId, NodePorts, Vec<String>), ProviderError> {
        let mut attempt = 0;
        // The enode its peers' configs were written with (its ports when this began).
        let mut first_enode: Option<String> = None;
        loop {
            attempt += 1;
            let mesh = self.static_nodes(ctx, &spec.name)?;
            let peering = ctx.peering();
            let up: Vec<UpNode> = self.nodes_up(ctx, |up| {
                up.iter()
                    .filter(|(n, _)| peering.are_peers(&spec.name, n))
                    .map(|(_, u)| u.clone())
                    .collect()
            });
            let dial: Vec<String> = up.iter().map(|u| u.enode.clone()).collect();
            let peers = Peers {
                dial: dial.clone(),
                mesh: mesh.clone(),
            };
            let mut launch = Self::launch(ctx, addr, spec, datadir, ports, peers, geth)?;
            let ipc = PathBuf::from(&launch.ipc_path);
            prepare_ipc_dir(addr, &ipc)?;
            if attempt == 1 && !ipc.starts_with(datadir) {
                ctx.emit(Event::Warning {
                    message: format!(
                        "{addr}: the path of {} is too long for a unix socket; its IPC socket is {}",
                        datadir.join("geth.ipc").display(),
                        ipc.display()
                    ),
                });
            }
            // The nodes it is about to dial let it in even when their MaxPeers (the mesh
            // size when they started) is reached: a member joining a running network.
            let me = Self::own_enode(ctx, &spec.name, &launch);
            let first = first_enode.get_or_insert_with(|| me.clone()).clone();
            std::thread::scope(|scope| {
                for u in &up {
                    let me = &me;
                    scope.spawn(move || {
                        let rpc = u.control.clone().with_timeout(PROBE_TIMEOUT);
                        let _ = rpc.admin_add_trusted_peer(me);
                    });
                }
            });
            Self::write_config(addr, &launch)?;
            // Started again: no longer "stopped by consort stop" (see `status`).
            let _ = std::fs::remove_file(
                node_dir(ctx.state_dir, &spec.name).join(super::lifecycle::STOPPED_MARK),
            );
            step(ctx, &spec.name, "start");
            match Self::start_and_wait(geth, &launch) {
                Ok(id) => {
                    if first != me {
                        self.announce_move(ctx, &spec.name, &first, &me);
                    }
                    self.join_mesh(ctx, &spec.name, me.clone(), &launch, &dial);
                    // From now on (restarts) it dials the whole mesh.
                    launch.static_nodes = mesh.clone();
                    Self::write_config(addr, &launch)?;
                    return Ok((id, ports, mesh));
                }
                Err((
                    why @ (StartFailure::Exited {
                        port_clash: true, ..
                    }
                    | StartFailure::HalfStarted { .. }),
                    id,
                )) if attempt < 3 => {
                    if let Some(id) = id {
                        let _ = process::stop(id, datadir, STOP_GRACE);
                    }
                    let old = ports;
                    ports = self.fresh_ports(ctx, &spec.name)?;
                    let message = match why {
                        StartFailure::HalfStarted { why } => format!(
                            "{addr}: geth started only in part ({why}) on {:?}; retrying on {:?}",
                            old.all(),
                            ports.all()
                        ),
                        _ => format!(
                            "{addr}: a port of {:?} was taken by another process; retrying on {:?}",
                            old.all(),
                            ports.all()
                        ),
                    };
                    ctx.emit(Event::Warning { message });
                }
                Err((why, id)) => {
                    if let Some(id) = id {
                        let _ = process::stop(id, datadir, STOP_GRACE);
                    }
                    let msg = match why {
                        StartFailure::Exited { port_clash: true, how } => format!(
                            "geth exited ({how}): its ports {:?} are taken by another process; set `provider.local.base_port` to a free range",
                            ports.all()
                        ),
                        StartFailure::HalfStarted { why } => format!(
                            "geth started only in part on ports {:?} ({why}) and was stopped; set `provider.local.base_port` to a free range",
                            ports.all()
                        ),
                        StartFailure::Exited { port_clash: false, how } => {
                            format!("geth exited right after starting ({how})")
                        }
                        StartFailure::Other(m) => m,
                    };
                    return Err(ProviderError::at(
                        addr,
                        format!("{msg}\n{}", log_excerpt(datadir)),
                    ));
                }
            }
        }
    }

    pub(super) fn outputs(
        ctx: &ApplyCtx,
        datadir: &Path,
        id: ProcessId,
        ports: NodePorts,
        enode_id: &str,
        statics: Vec<String>,
        geth: &GethBinary,
    ) -> NodeOutputs {
        let host = ctx.topology.local_address();
        NodeOutputs {
            datadir: s(datadir),
            pid: id.pid,
            start_time: id.start_time,
            ports,
            ipc_path: s(&ipc_path(datadir)),
            rpc_url: ports.http.map(|p| format!("http://{host}:{p}")),
            ws_url: ports.ws.map(|p| format!("ws://{host}:{p}")),
            metrics_url: ports.metrics.map(|p| process::metrics_url(host, p)),
            enode: render::enode_url(enode_id, host, ports.p2p),
            static_nodes: statics,
            geth: s(&geth.path),
            geth_version: geth.version.clone(),
            geth_sha256: geth.sha256.clone(),
            log: s(&datadir.join(process::LOG_FILE)),
        }
    }

    pub(super) fn record_genesis_hash(ctx: &ApplyCtx, datadir: &Path) {
        let needs = ctx
            .state
            .lock()
            .unwrap()
            .genesis
            .as_ref()
            .is_some_and(|g| g.hash.is_empty());
        if !needs {
            return;
        }
        if let Ok(h) = RpcClient::ipc(ipc_path(datadir))
            .with_timeout(PROBE_TIMEOUT)
            .genesis_hash()
        {
            if let Some(g) = ctx.state.lock().unwrap().genesis.as_mut() {
                if g.hash.is_empty() {
                    g.hash = h;
                }
            }
        }
    }

    pub(super) fn create_node(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let name = node_name(change);
        let spec = Self::spec(ctx, addr, &name)?;
        let geth = self.geth(ctx)?;
        let datadir = node_dir(ctx.state_dir, &name);
        // Leftovers of an interrupted run: stop its process (if still ours), start afresh.
        stop_recorded(addr, &datadir, None)?;
        if datadir.exists() {
            std::fs::remove_dir_all(&datadir).map_err(|e| {
                ProviderError::at(addr, format!("cannot clear {}: {e}", datadir.display()))
            })?;
        }
        create_private_dir(&datadir).map_err(|e| {
            ProviderError::at(addr, format!("cannot create {}: {e}", datadir.display()))
        })?;
        if spec.role == Role::Validator {
            Self::install_signer(ctx, addr, &name, &datadir)?;
        }
        let genesis = abs(&ctx.state_dir.root.join("genesis.json"));
        step(ctx, &name, "init");
        self.init_datadir(ctx, addr, &geth, &datadir, &genesis)?;
        // A member that joined has no signer of its own yet: its tx nodes sync from the
        // other operators' nodes instead of waiting for ours to seal.
        if spec.role == Role::Tx && !ctx.topology.has_external_members() {
            self.await_first_block(ctx);
        }
        let ports = self.ports_of(ctx, &name)?;
        let (id, ports, statics) =
            self.launch_with_retries(ctx, addr, &spec, &datadir, &geth, ports)?;
        Self::record_genesis_hash(ctx, &datadir);
        let enode_id = ctx
            .snapshot()
            .output_str(&format!("key.node.{name}"), "enode_id")
            .unwrap_or_default()
            .to_string();
        let out = Self::outputs(ctx, &datadir, id, ports, &enode_id, statics, &geth);
        Ok(ResourceState {
            kind: Kind::LocalNode,
            attrs: change.after.clone().unwrap_or(json!({})),
            outputs: serde_json::to_value(out).expect("outputs serialise"),
            deps: change.deps.clone(),
        })
    }

    /// Peers changed → rewrite config.toml and add/remove peers live (no restart);
    /// process dead → start it again (same ports if still free).
    pub(super) fn update_node(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let name = node_name(change);
        let spec = Self::spec(ctx, addr, &name)?;
        let st = ctx.snapshot();
        let Some(cur) = NodeOutputs::from_state(&st, &name) else {
            // Nothing usable recorded: make it from scratch.
            return self.create_node(ctx, change);
        };
        let prior_enode = cur.enode.clone();
        // Derived, never read from state: a tampered `outputs.datadir` must not steer
        // where keys are written or what is restarted (issue 20 item 9).
        let datadir = node_dir(ctx.state_dir, &name);
        let enode_id = st
            .output_str(&format!("key.node.{name}"), "enode_id")
            .unwrap_or_default()
            .to_string();
        // A node started before consort controlled nodes over IPC (no socket recorded) is
        // restarted on the same data dir: validators lose their HTTP RPC, tx nodes keep
        // theirs with the application namespaces only.
        let live_update = cur.is_running()
            && !cur.ipc_path.is_empty()
            && cur
                .control()
                .with_timeout(PROBE_TIMEOUT)
                .block_number()
                .is_ok();
        // A running node on another geth than the topology's: a rolling restart on the new
        // binary, keeping its chain data (see `rejoin`).
        let upgrade = live_update && self.geth(ctx)?.version != cur.geth_version;
        // New browser origins are command-line flags: a restart on the same data.
        let cors = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .map(|a| a["cors_origins"].clone())
                .unwrap_or_default()
        };
        let reconfigure = live_update && cors(&change.before) != cors(&change.after);
        if reconfigure {
            step(ctx, &name, "restart: rpc.cors_origins changed");
        }
        let mut out = if live_update && !upgrade && !reconfigure {
            let statics = self.static_nodes(ctx, &name)?;
            let geth = cur.geth_binary();
            let peers = Peers {
                dial: statics.clone(),
                mesh: statics.clone(),
            };
            let launch = Self::launch(ctx, addr, &spec, &datadir, cur.ports, peers, &geth)?;
            Self::write_config(addr, &launch)?;
            let rpc = cur.control().with_timeout(PROBE_TIMEOUT);
            let old: BTreeSet<&String> = cur.static_nodes.iter().collect();
            let new: BTreeSet<&String> = statics.iter().collect();
            let e = |err: rpc::RpcError| ProviderError::at(addr, err.to_string());
            for gone in old.difference(&new) {
                rpc.admin_remove_trusted_peer(gone).map_err(e)?;
                rpc.admin_remove_peer(gone).map_err(e)?;
            }
            for added in new.difference(&old) {
                // Trusted, or it would be refused past MaxPeers (the old mesh size). Not
                // dialled from here: the new node dials us (see `join_mesh`).
                rpc.admin_add_trusted_peer(added).map_err(e)?;
            }
            // Another operator's nodes were refused while we were full: dial them now.
            let externals = mesh::external_peers(ctx.topology, ctx.peering(), &name);
            mesh::dial_external_peers(&externals, &rpc);
            NodeOutputs {
                static_nodes: statics,
                ..cur.clone()
            }
        } else {
            let geth = self.geth(ctx)?;
            // One node of an upgrade at a time, each back and caught up before the next,
            // so more than half of the signers keep sealing throughout.
            let _one_at_a_time = upgrade.then(|| self.rolling.lock().unwrap());
            let head_before = if upgrade {
                step(
                    ctx,
                    &name,
                    &format!("upgrade geth {} → {}", cur.geth_version, geth.version),
                );
                cur.control()
                    .with_timeout(PROBE_TIMEOUT)
                    .block_number()
                    .ok()
            } else {
                None
            };
            // Ours or not, nothing of this pid is signalled unless /proc proves it is.
            stop_recorded(addr, &datadir, Some(cur.process()))?;
            if !datadir.join("geth").is_dir() || chaindata::missing(&datadir).is_some() {
                return self.create_node(ctx, change);
            }
            // Chain data geth cannot open (plan marked it `!`, apply was allowed the loss,
            // and another node holds the chain): the node is made afresh from genesis with
            // its keys from keys/ (same node key, same signer) and resyncs from its peers.
            if crate::plan::loss::is_corrupt_resync(change) {
                step(
                    ctx,
                    &name,
                    "delete its corrupt chain data, resync from peers",
                );
                return self.create_node(ctx, change);
            }
            if spec.role == Role::Validator {
                Self::install_signer(ctx, addr, &name, &datadir)?;
            }
            let mut ports = self.complete_ports(ctx, &spec, cur.ports);
            // The node just stopped may hold its ports a moment longer (connections closing):
            // give them a few seconds before moving it.
            let free_by = Instant::now()
                + if live_update {
                    PORTS_RELEASE
                } else {
                    Duration::ZERO
                };
            while !process::ports_free(self.ip(), ports) && Instant::now() < free_by {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !process::ports_free(self.ip(), ports) {
                let old = ports;
                ports = self.fresh_ports(ctx, &name)?;
                ctx.emit(Event::Warning {
                    message: format!(
                        "{addr}: its ports {:?} are now used by another process; restarting on {:?}",
                        old.all(),
                        ports.all()
                    ),
                });
            }
            let (id, ports, statics) =
                self.launch_with_retries(ctx, addr, &spec, &datadir, &geth, ports)?;
            let out = Self::outputs(ctx, &datadir, id, ports, &enode_id, statics, &geth);
            if upgrade {
                self.rejoin(ctx, addr, &spec, &out, head_before)?;
            }
            out
        };
        out.enode = render::enode_url(&enode_id, ctx.topology.local_address(), out.ports.p2p);
        // Restarted on other ports than its peers' configs name (its own were taken): they
        // learn where it runs now, as after a move at first start.
        if !prior_enode.is_empty() && prior_enode != out.enode {
            self.announce_move(ctx, &name, &prior_enode, &out.enode);
        }
        Ok(ResourceState {
            kind: Kind::LocalNode,
            attrs: change.after.clone().unwrap_or(json!({})),
            outputs: serde_json::to_value(out).expect("outputs serialise"),
            deps: change.deps.clone(),
        })
    }

    /// Waits until a node restarted during a rolling upgrade is peered with every other
    /// running node and has caught up with the head it left at; a validator then seals
    /// again (`miner_start`, once its signer is unlocked) before the next node goes down.
    fn rejoin(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        spec: &NodeSpec,
        out: &NodeOutputs,
        head_before: Option<u64>,
    ) -> Result<(), ProviderError> {
        let rpc = out.control().with_timeout(PROBE_TIMEOUT);
        let others = recorded_nodes(&ctx.snapshot())
            .into_iter()
            .filter(|(n, o)| *n != spec.name && o.is_running())
            .count();
        let deadline = Instant::now() + ctx.health_timeout;
        loop {
            let peers = rpc.admin_peers().map(|p| p.len()).unwrap_or(0);
            let head = rpc.block_number().unwrap_or(0);
            let caught_up = head_before.is_none_or(|h| head >= h);
            if peers >= others && caught_up {
                let sealing = match spec.role {
                    Role::Tx => true,
                    Role::Validator => {
                        let signer = ctx
                            .snapshot()
                            .output_str(&format!("key.signer.{}", spec.name), "address")
                            .map(str::to_string)
                            .unwrap_or_default();
                        rpc.call_raw("eth_sign", json!([signer, "0x00"])).is_ok()
                            && rpc.call_raw("miner_start", json!([])).is_ok()
                    }
                };
                if sealing {
                    step(ctx, &spec.name, "back on the new geth");
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::at(
                    addr,
                    format!(
                        "after its restart on the new geth it has {peers} of {others} peers and is at block {head} (was {}); the other nodes were left as they are\n{}",
                        head_before.unwrap_or(0),
                        log_excerpt(Path::new(&out.datadir))
                    ),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Node dirs of an interrupted create (never recorded in state) for nodes the topology
    /// no longer has — a `member add` killed mid-way, then `member remove`: their geth is
    /// stopped and the dir archived (`archive/<time>/nodes/<name>`), so no process runs
    /// that state does not list, and nothing is deleted.
    pub(super) fn archive_abandoned_nodes(&self, ctx: &ApplyCtx) -> Result<(), ProviderError> {
        let st = ctx.snapshot();
        let wanted: BTreeSet<String> = ctx.topology.nodes().into_iter().map(|n| n.name).collect();
        for n in super::recover::nodes_on_disk(ctx.state_dir) {
            let addr = format!("node.{}", n.name);
            if wanted.contains(&n.name) || st.resources.contains_key(&addr) {
                continue;
            }
            stop_recorded(&addr, &n.dir, None)?;
            let to = crate::provider::core::archive(&ctx.state_dir.root, &n.dir).map_err(|e| {
                ProviderError::at(&addr, format!("cannot archive {}: {e}", n.dir.display()))
            })?;
            ctx.emit(Event::Warning {
                message: format!(
                    "{addr}: left by an interrupted run and no longer in the topology: stopped its geth and moved {} to {}",
                    n.dir.display(),
                    to.map(|p| p.display().to_string()).unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Processes whose `--datadir` is `datadir`, from one scan of /proc per command (a
    /// scan per node made destroying n nodes read n × n command lines). A process this
    /// command starts later is found through its pid file and state instead.
    fn geth_processes_in(&self, datadir: &Path) -> Vec<ProcessId> {
        let mut scan = self.processes.lock().unwrap();
        scan.get_or_insert_with(|| process::find_by_datadir(|_| true))
            .iter()
            .filter(|(_, d)| d == datadir)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn destroy_node(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<(), ProviderError> {
        let addr = change.addr.as_str();
        let name = node_name(change);
        let st = ctx.snapshot();
        let cur = NodeOutputs::from_state(&st, &name);
        // Always `nodes/<name>` of this state dir: `outputs.datadir` is a path read from a
        // file, and destroy deletes what it names (issue 20 item 9).
        let datadir = node_dir(ctx.state_dir, &name);
        self.nodes_up(ctx, |up| up.remove(&name));
        let strays = self.geth_processes_in(&datadir);
        stop_with_strays(
            addr,
            &datadir,
            cur.as_ref().map(NodeOutputs::process),
            strays.into_iter(),
        )?;
        match std::fs::remove_dir_all(&datadir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ProviderError::at(
                    addr,
                    format!(
                        "cannot remove {}: {e}; remove it by hand",
                        datadir.display()
                    ),
                ))
            }
        }
        if cur.is_some() {
            self.with_ports(ctx, |t| {
                t.assigned.remove(&name);
                Ok(())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_or_an_early_closed_ipc_is_a_half_start() {
        // What geth 1.13.15 logs when its metrics port is taken (it runs on without it).
        let metrics = "INFO [12-06|12:20:34.507] Starting metrics server addr=http://127.0.0.1:38375/debug/metrics\n\
            ERROR[12-06|12:20:34.510] Failure in running metrics server        err=\"listen tcp 127.0.0.1:38375: bind: address already in use\"\n\
            INFO [12-06|12:20:35.043] IPC endpoint opened url=/x/geth.ipc\n";
        let why = half_started(metrics, true).expect("a half start");
        assert!(
            why.contains("38375") && why.contains("metrics server"),
            "{why}"
        );
        let closed = "INFO [..] IPC endpoint opened url=/x/geth.ipc\nINFO [..] IPC endpoint closed url=/x/geth.ipc\n";
        assert!(half_started(closed, false).is_some());
        // Closed after it answered: a stop, not a failed start; a clean start is none.
        assert_eq!(half_started(closed, true), None);
        assert_eq!(
            half_started("INFO [..] IPC endpoint opened url=/x\n", false),
            None
        );
    }

    #[test]
    fn only_the_log_written_since_the_start_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("geth.log");
        std::fs::write(&p, "old: bind: address already in use\n").unwrap();
        let since = std::fs::metadata(&p).unwrap().len();
        assert_eq!(read_from(&p, since), "");
        std::fs::write(&p, "old: bind: address already in use\nnew line\n").unwrap();
        assert_eq!(read_from(&p, since), "new line\n");
        assert_eq!(read_from(&dir.path().join("none"), 0), "");
    }

    #[test]
    fn ipc_socket_lives_in_the_node_dir_unless_the_path_is_too_long() {
        let short = Path::new("/tmp/x/.consort/net/nodes/a-validator-0");
        assert_eq!(ipc_path(short), short.join("geth.ipc"));
        let deep = PathBuf::from(format!("/tmp/{}/nodes/a-validator-0", "d".repeat(120)));
        let p = ipc_path(&deep);
        assert!(p.as_os_str().len() <= MAX_SOCKET_PATH, "{}", p.display());
        assert!(p.starts_with(short_socket_dir()), "{}", p.display());
        // Stable for the same node dir, distinct for another.
        assert_eq!(ipc_path(&deep), p);
        assert_ne!(ipc_path(&deep.with_file_name("b-validator-0")), p);
    }

    #[test]
    fn the_socket_dir_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sockets");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_ipc_dir("node.a", &dir.join("x.ipc")).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}
