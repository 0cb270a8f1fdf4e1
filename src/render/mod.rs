//! tera templates, embedded in the binary at build time (`templates/*.tera`).
//!
//! A render error names the template, the line of the template where the missing or bad
//! variable is used, and the variable.

use serde::Serialize;
use std::sync::OnceLock;
use tera::Tera;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "geth-config.toml",
        include_str!("../../templates/geth-config.toml.tera"),
    ),
    ("geth-args", include_str!("../../templates/geth-args.tera")),
    (
        "cloud-init.yaml",
        include_str!("../../templates/cloud-init.yaml.tera"),
    ),
];

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("template {template}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct RenderError {
    pub template: String,
    pub line: Option<usize>,
    pub variable: Option<String>,
    pub message: String,
}

fn engine() -> &'static Result<Tera, RenderError> {
    static ENGINE: OnceLock<Result<Tera, RenderError>> = OnceLock::new();
    ENGINE.get_or_init(|| build(TEMPLATES))
}

fn build(templates: &[(&str, &str)]) -> Result<Tera, RenderError> {
    let mut t = Tera::default();
    t.autoescape_on(vec![]);
    for (name, src) in templates {
        t.add_raw_template(name, src).map_err(|e| RenderError {
            template: name.to_string(),
            line: None,
            variable: None,
            message: error_chain(&e),
        })?;
    }
    Ok(t)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.join(": ")
}

/// Renders a named template with a serialisable context.
pub fn render<C: Serialize>(template: &str, ctx: &C) -> Result<String, RenderError> {
    let tera = engine().as_ref().map_err(Clone::clone)?;
    render_with(tera, TEMPLATES, template, ctx)
}

fn render_with<C: Serialize>(
    tera: &Tera,
    sources: &[(&str, &str)],
    template: &str,
    ctx: &C,
) -> Result<String, RenderError> {
    let context = tera::Context::from_serialize(ctx).map_err(|e| RenderError {
        template: template.to_string(),
        line: None,
        variable: None,
        message: error_chain(&e),
    })?;
    tera.render(template, &context).map_err(|e| {
        let message = error_chain(&e);
        let variable = message
            .split("Variable `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let source = sources
            .iter()
            .find(|(n, _)| *n == template)
            .map(|(_, s)| *s)
            .unwrap_or("");
        let line = variable.as_ref().and_then(|v| {
            let root = v.split('.').next().unwrap_or(v);
            source.lines().position(|l| l.contains(root)).map(|i| i + 1)
        });
        RenderError {
            template: template.to_string(),
            line,
            variable,
            message,
        }
    })
}

/// Everything needed to launch one geth node; rendered into config.toml and the argv.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLaunch {
    pub network: String,
    pub node_name: String,
    pub geth_version: String,
    pub chain_id: u64,
    pub datadir: String,
    pub config_path: String,
    pub nodekey_path: String,
    /// Address p2p listens on: 127.0.0.1 locally, the private IP on Azure.
    pub listen_addr: String,
    pub p2p_port: u16,
    /// `none` locally; `extip:<private ip>` on Azure.
    pub nat: String,
    /// Address of the application RPC (HTTP and WebSocket): 127.0.0.1 locally, the
    /// private IP on Azure. Only tx nodes serve it.
    pub http_addr: String,
    /// HTTP JSON-RPC port, tx nodes only (`eth,net,web3,txpool`). A validator serves
    /// no TCP RPC at all: rendering refuses a signer with one.
    pub http_port: Option<u16>,
    /// WebSocket JSON-RPC port, tx nodes only (same namespaces).
    pub ws_port: Option<u16>,
    /// geth's Prometheus metrics (`--metrics`) on 127.0.0.1 at this port: read-only
    /// counters, no RPC. None: no metrics server.
    pub metrics_port: Option<u16>,
    /// geth's engine API (JWT-authenticated; unused under Clique but always opened), on
    /// 127.0.0.1. 0: a port the kernel picks.
    pub authrpc_port: u16,
    /// geth's IPC socket (`--ipcpath`): consort's control channel (admin, clique, miner).
    pub ipc_path: String,
    /// `--netrestrict`: the only networks (CIDR list) this node exchanges p2p traffic with.
    pub netrestrict: Option<String>,
    pub cache_mb: u32,
    pub verbosity: u8,
    pub max_peers: u32,
    /// Enode URLs geth dials (StaticNodes): every other node, except locally at a
    /// node's first start (see the local provider's `launch_with_retries`).
    pub static_nodes: Vec<String>,
    /// Enode URLs always let in, even past MaxPeers (TrustedNodes): every other node.
    pub trusted_nodes: Vec<String>,
    pub signer: Option<SignerLaunch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignerLaunch {
    /// 0x-prefixed signer address.
    pub address: String,
    pub keystore_dir: String,
    pub password_file: String,
    /// `--mine` at start. Locally false: sealing starts (`miner_start`, the `miner` API on
    /// loopback) only once the node is peered, because signers that seal block 1 before
    /// they see each other fork and then deadlock on Clique's "signed recently" rule.
    pub mine: bool,
}

pub fn geth_config_toml(n: &NodeLaunch) -> Result<String, RenderError> {
    render("geth-config.toml", n)
}

/// The JSON-RPC namespaces applications get on a tx node (HTTP and WebSocket): no
/// `admin`, `miner`, `personal` or `debug`, and no account is unlocked there. Not
/// `clique` either: its `clique_propose`/`clique_discard` are governance, and consort reads
/// and votes over IPC (status, the dashboard and `graph --live` included).
pub const APP_RPC_APIS: &str = "eth,net,web3,txpool";

pub fn geth_args(n: &NodeLaunch) -> Result<Vec<String>, RenderError> {
    if n.signer.is_some() && (n.http_port.is_some() || n.ws_port.is_some()) {
        return Err(RenderError {
            template: "geth-args".into(),
            line: None,
            variable: Some("http_port".into()),
            message: format!(
                "{}: a validator serves no HTTP or WebSocket RPC (its signer key is unlocked); consort controls it over IPC",
                n.node_name
            ),
        });
    }
    #[derive(Serialize)]
    struct Ctx<'a> {
        #[serde(flatten)]
        n: &'a NodeLaunch,
        apis: &'static str,
    }
    Ok(render(
        "geth-args",
        &Ctx {
            n,
            apis: APP_RPC_APIS,
        },
    )?
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty())
    .map(str::to_string)
    .collect())
}

/// The official geth release archive for linux-amd64 and its SHA-256.
pub const GETH_RELEASE_URL: &str =
    "https://gethstore.blob.core.windows.net/builds/geth-linux-amd64-1.13.15-c5ba367e.tar.gz";
pub const GETH_RELEASE_SHA256: &str =
    "cd0aa1e73bad4c2dcbaa225675a11556281d10e2bc25b8b1bd669da0670e33c2";

/// What a VM's cloud-init needs. Paths in `node` are the VM's (`/var/lib/consort/...`);
/// `cloud_init` prefixes them with `$ROOT` so the bootstrap also runs under a directory.
/// It holds no secret: the VM fetches `secrets` from Key Vault at boot.
#[derive(Debug, Clone, Serialize)]
pub struct CloudInit {
    pub node: NodeLaunch,
    pub member: String,
    pub role: String,
    pub geth_version: String,
    pub geth_url: String,
    pub geth_sha256: String,
    pub genesis_json: String,
    /// The Key Vault's data-plane URL (`https://<vault>.vault.azure.net/`).
    pub vault_uri: String,
    /// What the bootstrap fetches from the vault, and where it writes it (0600).
    pub secrets: Vec<CloudSecret>,
    /// Validators: enode public keys of the other validators; sealing starts once the
    /// node is peered with all of them.
    pub seal_after_peers: Vec<String>,
}

/// One Key Vault secret of a VM: its name in the vault, its path on the VM.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CloudSecret {
    pub name: String,
    pub path: String,
}

/// The VM layout the cloud-init bootstrap writes.
pub mod vm_paths {
    pub const DATADIR: &str = "/var/lib/consort/geth";
    pub const CONFIG: &str = "/etc/consort/config.toml";
    pub const NODEKEY: &str = "/var/lib/consort/nodekey";
    pub const KEYSTORE_DIR: &str = "/var/lib/consort/keystore";
    pub const PASSWORD: &str = "/var/lib/consort/password";
    /// Marker of a bootstrap that succeeded (it then never runs again).
    pub const BOOTSTRAPPED: &str = "/var/lib/consort/bootstrapped";
    /// geth's IPC socket: how Run Command scripts (as root) control the node.
    pub const IPC: &str = "/var/lib/consort/geth/geth.ipc";
    /// The system user geth runs as: no login shell, no sudo, never the VM's admin user.
    pub const GETH_USER: &str = "geth";
}

/// Renders the cloud-init `customData` (before base64) for one VM.
pub fn cloud_init(c: &CloudInit) -> Result<String, RenderError> {
    let config_toml = geth_config_toml(&c.node)?;
    let mut node = c.node.clone();
    let root = |p: &str| format!("$ROOT{p}");
    node.datadir = root(&node.datadir);
    node.config_path = root(&node.config_path);
    node.nodekey_path = root(&node.nodekey_path);
    node.ipc_path = root(&node.ipc_path);
    if let Some(s) = node.signer.as_mut() {
        s.keystore_dir = root(&s.keystore_dir);
        s.password_file = root(&s.password_file);
    }
    // The engine API listens on loopback; a test that runs several "VMs" on one host
    // gives each its own port (CONSORT_AUTHRPC_PORT), the VM keeps the default.
    let authrpc = format!("--authrpc.port={}", node.authrpc_port);
    let args: Vec<String> = geth_args(&node)?
        .into_iter()
        .map(|a| {
            if a == authrpc {
                format!(
                    "--authrpc.port=${{CONSORT_AUTHRPC_PORT:-{}}}",
                    node.authrpc_port
                )
            } else {
                a
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Ctx<'a> {
        #[serde(flatten)]
        c: &'a CloudInit,
        config_toml: String,
        geth_args: Vec<String>,
        ipc_path: &'static str,
    }
    render(
        "cloud-init.yaml",
        &Ctx {
            c,
            config_toml,
            geth_args: args,
            ipc_path: vm_paths::IPC,
        },
    )
}

pub fn enode_url(enode_id: &str, host: &str, port: u16) -> String {
    format!("enode://{enode_id}@{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(signer: bool) -> NodeLaunch {
        NodeLaunch {
            network: "net".into(),
            node_name: "a-validator-0".into(),
            geth_version: "1.13.15".into(),
            chain_id: 707070,
            datadir: "/d".into(),
            config_path: "/d/config.toml".into(),
            nodekey_path: "/d/nodekey".into(),
            listen_addr: "127.0.0.1".into(),
            p2p_port: 30303,
            nat: "none".into(),
            http_addr: "127.0.0.1".into(),
            http_port: (!signer).then_some(8545),
            ws_port: (!signer).then_some(8546),
            metrics_port: None,
            authrpc_port: 0,
            ipc_path: "/d/geth.ipc".into(),
            netrestrict: None,
            cache_mb: 64,
            verbosity: 3,
            max_peers: 50,
            static_nodes: vec![enode_url("ab", "127.0.0.1", 30304)],
            trusted_nodes: vec![enode_url("ab", "127.0.0.1", 30304)],
            signer: signer.then(|| SignerLaunch {
                address: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".into(),
                keystore_dir: "/d/keystore".into(),
                password_file: "/d/password".into(),
                mine: true,
            }),
        }
    }

    #[test]
    fn config_lists_static_and_trusted_nodes_on_loopback() {
        let c = geth_config_toml(&launch(false)).unwrap();
        assert!(c.contains("ListenAddr = \"127.0.0.1:30303\""), "{c}");
        assert_eq!(
            c.matches("\"enode://ab@127.0.0.1:30304\",").count(),
            2,
            "{c}"
        );
    }

    #[test]
    fn args_seal_only_for_signers_and_never_pprof() {
        let v = geth_args(&launch(true)).unwrap();
        assert!(v.contains(&"--mine".to_string()));
        let mut later = launch(true);
        later.signer.as_mut().unwrap().mine = false;
        let l = geth_args(&later).unwrap();
        assert!(!l.contains(&"--mine".to_string()), "{l:?}");
        let t = geth_args(&launch(false)).unwrap();
        assert!(!t
            .iter()
            .any(|a| a.starts_with("--mine") || a.starts_with("--unlock")));
        assert!(!v.iter().chain(&t).any(|a| a.contains("pprof")));
        assert!(
            !t.iter().any(|a| a.starts_with("--port")),
            "--port would bind 0.0.0.0"
        );
    }

    #[test]
    fn validators_serve_no_tcp_rpc_and_tx_nodes_only_application_namespaces() {
        let v = geth_args(&launch(true)).unwrap();
        // A validator: IPC only, so geth needs no --allow-insecure-unlock either.
        for bad in ["--http", "--ws", "--allow-insecure-unlock", "--ipcdisable"] {
            assert!(
                !v.iter()
                    .any(|a| a == bad || a.starts_with(&format!("{bad}."))),
                "{bad} in {v:?}"
            );
        }
        assert!(v.contains(&"--ipcpath=/d/geth.ipc".to_string()), "{v:?}");
        assert!(v.contains(&"--unlock=0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".to_string()));
        // Rendering refuses a validator with an RPC port.
        let mut open = launch(true);
        open.http_port = Some(8545);
        let e = geth_args(&open).unwrap_err();
        assert!(e.to_string().contains("serves no HTTP"), "{e}");
        // A tx node: HTTP and WS with the application namespaces, nothing unlocked.
        let t = geth_args(&launch(false)).unwrap();
        for want in [
            "--http",
            "--http.port=8545",
            "--http.api=eth,net,web3,txpool",
            "--ws",
            "--ws.port=8546",
            "--ws.api=eth,net,web3,txpool",
            "--authrpc.addr=127.0.0.1",
        ] {
            assert!(t.contains(&want.to_string()), "{want} missing: {t:?}");
        }
        for a in v.iter().chain(&t) {
            for ns in ["admin", "miner", "personal", "debug", "clique"] {
                assert!(!(a.contains(".api=") && a.contains(ns)), "{a}");
            }
        }
        assert!(!t
            .iter()
            .any(|a| a.starts_with("--unlock") || a.contains("insecure")));
        let mut restricted = launch(false);
        restricted.netrestrict = Some("10.42.0.0/16".into());
        let r = geth_args(&restricted).unwrap();
        assert!(
            r.contains(&"--netrestrict=10.42.0.0/16".to_string()),
            "{r:?}"
        );
    }

    fn cloud(signer: bool) -> CloudInit {
        let mut node = launch(signer);
        node.datadir = vm_paths::DATADIR.into();
        node.config_path = vm_paths::CONFIG.into();
        node.nodekey_path = vm_paths::NODEKEY.into();
        node.ipc_path = vm_paths::IPC.into();
        if let Some(s) = node.signer.as_mut() {
            s.keystore_dir = vm_paths::KEYSTORE_DIR.into();
            s.password_file = vm_paths::PASSWORD.into();
            // As the Azure provider renders it: seal.sh starts sealing.
            s.mine = false;
        }
        CloudInit {
            node,
            member: "a".into(),
            role: if signer { "validator" } else { "tx" }.into(),
            geth_version: "1.13.15".into(),
            geth_url: GETH_RELEASE_URL.into(),
            geth_sha256: GETH_RELEASE_SHA256.into(),
            genesis_json: "{\"config\": {\"chainId\": 7}}\n".into(),
            vault_uri: "https://net-0123abcd.vault.azure.net/".into(),
            secrets: std::iter::once(CloudSecret {
                name: "a-validator-0-nodekey".into(),
                path: vm_paths::NODEKEY.into(),
            })
            .chain(signer.then(|| CloudSecret {
                name: "a-validator-0-password".into(),
                path: vm_paths::PASSWORD.into(),
            }))
            .collect(),
            seal_after_peers: if signer {
                vec!["ab".repeat(64)]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn cloud_init_is_valid_yaml_fetching_secrets_with_a_retrying_bootstrap() {
        let text = cloud_init(&cloud(true)).unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let files = doc["write_files"].as_sequence().unwrap();
        let file = |path: &str| {
            files
                .iter()
                .find(|f| f["path"].as_str() == Some(path))
                .unwrap_or_else(|| panic!("{path} missing"))
        };
        // No secret is written from customData: the bootstrap fetches each one.
        assert!(files
            .iter()
            .all(|f| f["path"].as_str() != Some(vm_paths::NODEKEY)));
        let boot_text = file("/var/lib/consort/bootstrap.sh")["content"]
            .as_str()
            .unwrap();
        assert!(
            boot_text.contains("fetch a-validator-0-nodekey \"$ROOT/var/lib/consort/nodekey\""),
            "{boot_text}"
        );
        assert!(boot_text.contains("VAULT=\"https://net-0123abcd.vault.azure.net/\""));
        assert!(boot_text.contains("CONSORT_IMDS_ENDPOINT:-http://169.254.169.254"));
        assert!(boot_text.contains("umask 077"));
        let unit = file("/etc/systemd/system/consort-bootstrap.service")["content"]
            .as_str()
            .unwrap();
        for line in [
            "Type=oneshot",
            "Restart=on-failure",
            "ConditionPathExists=!/var/lib/consort/bootstrapped",
            "StartLimitIntervalSec=0",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing in {unit}");
        }
        let seal = file("/var/lib/consort/seal.sh")["content"]
            .as_str()
            .unwrap();
        assert!(
            seal.contains("miner.start()") && seal.contains(&"ab".repeat(64)),
            "{seal}"
        );
        assert!(
            !text.contains("--mine\""),
            "geth starts without --mine; seal.sh starts sealing"
        );
        assert_eq!(
            file("/etc/consort/genesis.json")["content"].as_str(),
            Some("{\"config\": {\"chainId\": 7}}\n")
        );
        let boot = file("/var/lib/consort/bootstrap.sh")["content"]
            .as_str()
            .unwrap();
        assert!(
            boot.contains(GETH_RELEASE_SHA256) && boot.contains("sha256sum -c"),
            "{boot}"
        );
        let run = file("/var/lib/consort/run-geth.sh")["content"]
            .as_str()
            .unwrap();
        assert!(
            run.contains("\"--datadir=$ROOT/var/lib/consort/geth\""),
            "{run}"
        );
        assert!(
            run.contains("\"--password=$ROOT/var/lib/consort/password\""),
            "{run}"
        );
        let toml = file("/etc/consort/config.toml")["content"]
            .as_str()
            .unwrap();
        assert!(toml.contains("StaticNodes"), "{toml}");
        // A tx node gets no signer secrets at all, and no sealing step.
        let tx = cloud_init(&cloud(false)).unwrap();
        assert!(!tx.contains("/var/lib/consort/password") && !tx.contains("seal.sh"));
        assert!(!tx.contains("--mine"));
        // geth runs as its own system user, never the admin user (who has sudo) or root.
        for text in [&text, &tx] {
            let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
            let files = doc["write_files"].as_sequence().unwrap();
            let unit = files
                .iter()
                .find(|f| f["path"].as_str() == Some("/etc/systemd/system/consort-geth.service"))
                .unwrap()["content"]
                .as_str()
                .unwrap();
            let user: Vec<&str> = unit.lines().filter(|l| l.starts_with("User=")).collect();
            assert_eq!(
                user,
                vec![format!("User={}", vm_paths::GETH_USER)],
                "{unit}"
            );
            assert_ne!(vm_paths::GETH_USER, "root");
            assert!(text.contains("useradd --system"), "{text}");
            assert!(text.contains("--shell /usr/sbin/nologin geth"), "{text}");
            assert!(
                text.contains("\"--ipcpath=$ROOT/var/lib/consort/geth/geth.ipc\""),
                "{text}"
            );
        }
        assert!(
            !text.contains("--http"),
            "a validator VM serves no HTTP RPC"
        );
    }

    #[test]
    fn missing_variable_names_template_line_and_variable() {
        let src = [("t", "a\nb {{ nope }}\n")];
        let tera = build(&src).unwrap();
        let err = render_with(&tera, &src, "t", &serde_json::json!({})).unwrap_err();
        assert_eq!(err.variable.as_deref(), Some("nope"));
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().starts_with("template t line 2: "), "{err}");
        assert_eq!(err.template, "t");
        assert!(err.message.contains("nope"), "{err}");
    }
    /// The bootstrap root runs leaves the geth user nothing it could turn into root: every
    /// `chown` to geth misses what root runs (the scripts, the units, the marker), no unit
    /// of the geth user has systemd (root) open its log, every download is bounded, the
    /// oneshot has a start timeout, and the marker comes after every step it vouches for.
    #[test]
    fn the_bootstrap_leaves_root_nothing_the_geth_user_can_write_and_ends_with_its_marker() {
        for signer in [true, false] {
            let text = cloud_init(&cloud(signer)).unwrap();
            let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            let files = doc["write_files"].as_sequence().unwrap();
            let content = |path: &str| -> String {
                files
                    .iter()
                    .find(|f| f["path"].as_str() == Some(path))
                    .and_then(|f| f["content"].as_str())
                    .unwrap_or_else(|| panic!("{path} missing"))
                    .to_string()
            };
            let boot = content("/var/lib/consort/bootstrap.sh");
            // What root runs or trusts: the bootstrap's own files and the marker.
            let mut root_runs: Vec<String> = files
                .iter()
                .filter_map(|f| f["path"].as_str())
                .filter(|p| {
                    p.ends_with("bootstrap.sh")
                        || p.ends_with("start.sh")
                        || p.ends_with(".service")
                })
                .map(str::to_string)
                .collect();
            root_runs.push(vm_paths::BOOTSTRAPPED.to_string());
            root_runs.push("/var/lib/consort".to_string());
            // Shell lines, continuations joined.
            let lines: Vec<String> = boot
                .replace("\\\n", " ")
                .lines()
                .map(|l| l.trim().to_string())
                .collect();
            let chowns: Vec<&str> = lines
                .iter()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.find("chown ").map(|i| &l[i..]))
                .collect();
            assert!(chowns.len() >= 3, "{boot}");
            for l in &chowns {
                let words: Vec<&str> = l.split_whitespace().collect();
                let recursive = words.contains(&"-R");
                let mut args = words[1..].iter().filter(|w| !w.starts_with('-'));
                let owner = args.next().unwrap();
                if !owner.starts_with("geth") {
                    continue;
                }
                for t in args {
                    let t = t
                        .trim_matches('"')
                        .replace("$DATA", vm_paths::DATADIR)
                        .replace("$f", "/var/lib/consort/nodekey");
                    for r in &root_runs {
                        let inside = r == &t || (recursive && r.starts_with(&format!("{t}/")));
                        assert!(
                            !inside,
                            "{l}: gives the geth user {r}, which root runs or trusts"
                        );
                    }
                }
            }
            assert!(
                !boot.contains("chown -R geth:geth /var/lib/consort\n"),
                "{boot}"
            );
            for unit in files
                .iter()
                .filter_map(|f| f["path"].as_str())
                .filter(|p| p.ends_with(".service"))
            {
                let u = content(unit);
                if u.contains("User=geth") {
                    assert!(
                        !u.contains("=append:"),
                        "{unit}: systemd opens its log as root: {u}"
                    );
                }
            }
            // Bounded downloads (each curl, with its continuation lines).
            let curls: Vec<&String> = lines.iter().filter(|l| l.contains("curl ")).collect();
            assert!(curls.len() >= 3, "{boot}");
            for c in curls {
                assert!(
                    c.contains("--max-time") && c.contains("--connect-timeout"),
                    "unbounded: {c}"
                );
            }
            let unit = content("/etc/systemd/system/consort-bootstrap.service");
            assert!(
                unit.lines().any(|l| l.starts_with("TimeoutStartSec=")),
                "{unit}"
            );
            // The marker is written last, after everything it says is done.
            let at = |needle: &str| {
                lines
                    .iter()
                    .rposition(|l| l.contains(needle))
                    .unwrap_or_else(|| panic!("{needle} missing in {boot}"))
            };
            let marker = lines
                .iter()
                .rposition(|l| l.starts_with("touch") && l.contains("bootstrapped"))
                .unwrap();
            for step in [
                "useradd",
                "chown -R geth",
                "systemctl enable consort-geth",
                "init --datadir",
            ] {
                assert!(at(step) < marker, "{step} comes after the marker:\n{boot}");
            }
            assert!(
                at("systemctl disable consort-bootstrap.service") > marker,
                "{boot}"
            );
        }
    }
}
