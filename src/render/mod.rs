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
    pub http_addr: String,
    pub http_port: u16,
    pub authrpc_port: u16,
    pub cache_mb: u32,
    pub verbosity: u8,
    pub max_peers: u32,
    /// Full enode URLs of every other node.
    pub static_nodes: Vec<String>,
    pub signer: Option<SignerLaunch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignerLaunch {
    /// 0x-prefixed signer address.
    pub address: String,
    pub keystore_dir: String,
    pub password_file: String,
}

pub fn geth_config_toml(n: &NodeLaunch) -> Result<String, RenderError> {
    render("geth-config.toml", n)
}

pub fn geth_args(n: &NodeLaunch) -> Result<Vec<String>, RenderError> {
    Ok(render("geth-args", n)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
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
            http_port: 8545,
            authrpc_port: 8551,
            cache_mb: 64,
            verbosity: 3,
            max_peers: 50,
            static_nodes: vec![enode_url("ab", "127.0.0.1", 30304)],
            signer: signer.then(|| SignerLaunch {
                address: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".into(),
                keystore_dir: "/d/keystore".into(),
                password_file: "/d/password".into(),
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
        assert!(v.contains(&"--allow-insecure-unlock".to_string()));
        assert!(v.contains(&"--http.addr=127.0.0.1".to_string()));
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
}
