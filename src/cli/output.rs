//! `consort output`: how to reach the network, in the forms the tools people bring read —
//! text for people, JSON for programs, env lines for shells and `.env` files, and a
//! foundry.toml profile. Never a secret: paths of the keystore and password files only.

use crate::state::State;
use crate::topology::Topology;
use anyhow::{bail, Result};
use serde_json::{json, Value};

/// The chain's forks stop at London (Clique on geth 1.13 cannot enable Shanghai), so
/// contracts must be compiled for it: no PUSH0.
pub const EVM_VERSION: &str = "london";
/// What wallets show as the native currency.
pub const CURRENCY_SYMBOL: &str = "ETH";
/// The minimum priority fee (tip) the txpool accepts and the validators seal.
pub const MIN_TIP_WEI: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people
    Text,
    /// For programs (what `--json` prints)
    Json,
    /// `KEY=value` lines to `source` or put in `.env`
    Env,
    /// A foundry.toml profile and `[rpc_endpoints]`
    Foundry,
    /// A Prometheus scrape configuration: a job for the network, a target per node
    Prometheus,
}

/// Node outputs that say how to reach a node; each is copied when the provider records it.
const ENDPOINTS: &[&str] = &["rpc_url", "ws_url", "ipc_path", "metrics_url"];

fn abs(s: &str) -> String {
    std::path::absolute(s)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| s.to_string())
}

/// The application endpoint: a tx node of `member` (else the first member that has a
/// reachable node), tx nodes before validators. `None` when no node has an RPC URL.
fn app_node<'a>(nodes: &'a [Value], member: Option<&str>) -> Option<&'a Value> {
    let reachable = |n: &&Value| n["rpc_url"].is_string();
    let of = |m: &str| -> Option<&'a Value> {
        nodes
            .iter()
            .filter(|n| n["member"] == m)
            .filter(reachable)
            .min_by_key(|n| n["role"] != "tx")
    };
    match member {
        Some(m) => of(m),
        None => {
            let mut members: Vec<&str> = Vec::new();
            for n in nodes {
                if let Some(m) = n["member"].as_str() {
                    if !members.contains(&m) {
                        members.push(m);
                    }
                }
            }
            members.into_iter().find_map(of)
        }
    }
}

/// `consort output --json`.
pub fn output_json(topo: &Topology, st: &State) -> Value {
    let mut nodes = Vec::new();
    for n in topo.nodes() {
        let Some(r) = st.resources.values().find(|r| {
            r.attrs.get("node").and_then(|v| v.as_str()) == Some(n.name.as_str())
                && matches!(
                    r.kind,
                    crate::state::Kind::LocalNode | crate::state::Kind::AzureVm
                )
        }) else {
            continue;
        };
        let address = st
            .output_str(&format!("key.signer.{}", n.name), "address")
            .map(String::from);
        let mut node = json!({
            "name": n.name,
            "member": n.member,
            "role": n.role.to_string(),
        });
        for key in ENDPOINTS {
            let v = r.outputs.get(*key).cloned().unwrap_or(Value::Null);
            let v = match (key, v) {
                (_, Value::String(s)) if s.is_empty() => Value::Null,
                (&"ipc_path", Value::String(p)) => Value::String(abs(&p)),
                (_, v) => v,
            };
            // Applications' endpoints are always listed (null on validators, which serve
            // no TCP RPC); the IPC socket where the provider has one; metrics always
            // (null where the provider or an older node has none).
            if *key != "ipc_path" || !v.is_null() {
                node[*key] = v;
            }
        }
        node["enode"] = r.outputs.get("enode").cloned().unwrap_or(Value::Null);
        node["address"] = json!(address);
        nodes.push(node);
    }
    let mut accounts = Vec::new();
    for m in &topo.members {
        for a in &m.accounts {
            let addr = format!("account.{}.{}", m.name, a.name);
            let Some(r) = st.resources.get(&addr) else {
                continue;
            };
            let path = |k: &str| r.outputs.get(k).and_then(|v| v.as_str()).map(abs);
            let missing = ["keystore", "password_file", "key_file"]
                .iter()
                .any(|k| path(k).is_some_and(|p| !std::path::Path::new(&p).is_file()));
            accounts.push(json!({
                "key_files_missing": missing,
                "member": m.name,
                "name": a.name,
                "address": r.outputs.get("address"),
                "balance_wei": a.balance.0.to_string(),
                "key_held": a.has_key(),
                "keystore": path("keystore"),
                "password_file": path("password_file"),
            }));
        }
    }
    let rpc_url = app_node(&nodes, None)
        .map(|n| n["rpc_url"].clone())
        .unwrap_or(Value::Null);
    json!({
        "network": {
            "name": st.network,
            "chain_id": topo.network.chain_id,
            "genesis_hash": st.genesis.as_ref().map(|g| g.hash.clone()).filter(|h| !h.is_empty()),
            "consensus": "clique",
            "evm_version": EVM_VERSION,
            "min_priority_fee_wei": MIN_TIP_WEI,
        },
        "wallet": {
            "network_name": st.network,
            "rpc_url": rpc_url,
            "chain_id": topo.network.chain_id,
            "chain_id_hex": format!("0x{:x}", topo.network.chain_id),
            "currency_symbol": CURRENCY_SYMBOL,
        },
        "nodes": nodes,
        "accounts": accounts,
    })
}

pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    let net = &v["network"];
    let wallet = &v["wallet"];
    out.push_str(&format!(
        "\nNetwork {} (chain id {}, Clique)\n",
        net["name"].as_str().unwrap_or(""),
        net["chain_id"]
    ));
    out.push_str(&format!(
        "  EVM version: {EVM_VERSION} — compile contracts for it (solc --evm-version {EVM_VERSION}; foundry evm_version = \"{EVM_VERSION}\"): the chain has no PUSH0\n"
    ));
    if let Some(url) = wallet["rpc_url"].as_str() {
        out.push_str(&format!(
            "  Wallet (e.g. MetaMask, add a network manually): name {}, RPC URL {url}, chain id {}, currency symbol {}\n",
            wallet["network_name"].as_str().unwrap_or(""),
            wallet["chain_id"],
            wallet["currency_symbol"].as_str().unwrap_or(CURRENCY_SYMBOL),
        ));
    }
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    let w = nodes
        .iter()
        .map(|n| n["name"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(4);
    out.push_str("Nodes:\n");
    for n in &nodes {
        let mut extra = String::new();
        if let Some(ws) = n["ws_url"].as_str() {
            extra.push_str(&format!("  {ws}"));
        }
        if let Some(a) = n["address"].as_str() {
            extra.push_str(&format!("  signer {a}"));
        }
        if let Some(e) = n["enode"].as_str() {
            extra.push_str(&format!("\n  {:<w$}  enode {e}", ""));
        }
        out.push_str(&format!(
            "  {:<w$}  {:<9}  {}{extra}\n",
            n["name"].as_str().unwrap_or(""),
            n["role"].as_str().unwrap_or(""),
            n["rpc_url"].as_str().unwrap_or("(ipc only)"),
        ));
    }
    let accounts = v["accounts"].as_array().cloned().unwrap_or_default();
    if !accounts.is_empty() {
        out.push_str("Accounts (keystore + password file, both 0600):\n");
        for a in &accounts {
            out.push_str(&format!(
                "  {}/{}  {}{}\n",
                a["member"].as_str().unwrap_or(""),
                a["name"].as_str().unwrap_or(""),
                a["address"].as_str().unwrap_or(""),
                if a["key_files_missing"] == true {
                    "  (key files missing: `consort plan` says how to restore them)"
                } else {
                    ""
                },
            ));
            if a["key_held"] == true {
                out.push_str(&format!(
                    "    {}\n    {}\n",
                    a["keystore"].as_str().unwrap_or(""),
                    a["password_file"].as_str().unwrap_or("")
                ));
            } else {
                out.push_str("    your own key (consort holds none)\n");
            }
        }
    }
    out
}

/// A value for a `KEY=value` line that both `source` and .env parsers read back as is.
fn env_value(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@+,=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn env_name(node: &str) -> String {
    node.to_ascii_uppercase().replace('-', "_")
}

/// The member whose endpoint and account are the defaults (refused if unknown or
/// unreachable).
fn check_member(v: &Value, topo: &Topology, member: Option<&str>) -> Result<()> {
    if let Some(m) = member {
        if topo.member(m).is_none() {
            let names: Vec<&str> = topo.members.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "--member {m}: no such member (members: {})",
                names.join(", ")
            );
        }
        let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
        if app_node(&nodes, Some(m)).is_none() {
            bail!(
                "--member {m}: member {m} has no node with an RPC URL; give it `tx_nodes: 1` and run `consort apply`"
            );
        }
    }
    Ok(())
}

pub fn render_env(v: &Value, topo: &Topology, member: Option<&str>) -> Result<String> {
    check_member(v, topo, member)?;
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "# consort output --format env: network {} (chain {}). `source` it, or save it as .env (dotenv files accept `export`).\n",
        v["network"]["name"].as_str().unwrap_or(""),
        v["network"]["chain_id"]
    );
    let Some(node) = app_node(&nodes, member) else {
        bail!(
            "no node of network {} has an RPC URL: is it deployed (`consort apply`)?",
            v["network"]["name"].as_str().unwrap_or("")
        );
    };
    out.push_str(&format!(
        "# ETH_RPC_URL is {}'s node {}; cast reads ETH_RPC_URL, ETH_KEYSTORE and ETH_PASSWORD (a file path).\n",
        node["member"].as_str().unwrap_or(""),
        node["name"].as_str().unwrap_or("")
    ));
    out.push_str(&format!(
        "export ETH_RPC_URL={}\n",
        env_value(node["rpc_url"].as_str().unwrap_or(""))
    ));
    out.push_str(&format!("export CHAIN_ID={}\n", v["network"]["chain_id"]));
    // The profile and endpoint name `--format foundry` writes.
    out.push_str(&format!(
        "export CONSORT_NETWORK={}\n",
        env_value(v["network"]["name"].as_str().unwrap_or(""))
    ));
    out.push_str(&format!("export EVM_VERSION={EVM_VERSION}\n"));
    let accounts = v["accounts"].as_array().cloned().unwrap_or_default();
    let default_member = member.or(node["member"].as_str());
    let account = accounts
        .iter()
        .filter(|a| a["key_held"] == true)
        .find(|a| a["member"].as_str() == default_member)
        .or_else(|| accounts.iter().find(|a| a["key_held"] == true));
    if let Some(a) = account {
        out.push_str(&format!(
            "# account {}/{}\n",
            a["member"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or("")
        ));
        out.push_str(&format!(
            "export ETH_KEYSTORE={}\n",
            env_value(a["keystore"].as_str().unwrap_or(""))
        ));
        out.push_str(&format!(
            "export ETH_PASSWORD={}\n",
            env_value(a["password_file"].as_str().unwrap_or(""))
        ));
        out.push_str(&format!(
            "export CONSORT_ACCOUNT_ADDRESS={}\n",
            a["address"].as_str().unwrap_or("")
        ));
    }
    for n in &nodes {
        let name = env_name(n["name"].as_str().unwrap_or(""));
        for (key, suffix) in [
            ("rpc_url", "RPC_URL"),
            ("ws_url", "WS_URL"),
            ("ipc_path", "IPC_PATH"),
        ] {
            if let Some(url) = n[key].as_str() {
                out.push_str(&format!(
                    "export CONSORT_{name}_{suffix}={}\n",
                    env_value(url)
                ));
            }
        }
    }
    Ok(out)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

pub fn render_foundry(v: &Value, topo: &Topology, member: Option<&str>) -> Result<String> {
    check_member(v, topo, member)?;
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    let network = v["network"]["name"].as_str().unwrap_or("");
    let Some(node) = app_node(&nodes, member) else {
        bail!("no node of network {network} has an RPC URL: is it deployed (`consort apply`)?");
    };
    let url = node["rpc_url"].as_str().unwrap_or("");
    let mut out = format!(
        "# consort output --format foundry (`--write foundry.toml` merges it into the file); then use\n\
         # `FOUNDRY_PROFILE={network} forge …` (or `--rpc-url {network}`).\n\
         # The chain stops at London: compile for evm_version \"{EVM_VERSION}\" (no PUSH0).\n\
         [profile.{network}]\n\
         evm_version = {}\n\
         eth_rpc_url = {}\n\
         chain_id = {}\n\n\
         [rpc_endpoints]\n\
         {network} = {}\n",
        toml_str(EVM_VERSION),
        toml_str(url),
        v["network"]["chain_id"],
        toml_str(url),
    );
    for n in &nodes {
        if let Some(u) = n["rpc_url"].as_str() {
            out.push_str(&format!(
                "{network}-{} = {}\n",
                n["name"].as_str().unwrap_or(""),
                toml_str(u)
            ));
        }
    }
    Ok(out)
}

/// `consort output --format prometheus`: a `scrape_configs` section with one job for the
/// network and a target per node that serves metrics, labelled `member`, `role`, `node`.
pub fn render_prometheus(v: &Value) -> Result<String> {
    let network = v["network"]["name"].as_str().unwrap_or("");
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    let mut targets = Vec::new();
    let mut paths = std::collections::BTreeSet::new();
    let mut without = Vec::new();
    for n in &nodes {
        let name = n["name"].as_str().unwrap_or("");
        let Some(url) = n["metrics_url"].as_str() else {
            without.push(name.to_string());
            continue;
        };
        let Some((host, path)) = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
        else {
            bail!("node {name}: metrics URL {url} is not http://HOST:PORT/PATH");
        };
        paths.insert(format!("/{path}"));
        targets.push(json!({
            "targets": [host],
            "labels": {
                "network": network,
                "member": n["member"],
                "role": n["role"],
                "node": name,
            },
        }));
    }
    if targets.is_empty() {
        bail!(
            "no node of network {network} serves metrics: nodes started by an older consort get a metrics port when `consort apply` restarts them"
        );
    }
    // One job needs one path; geth serves them all at the same one.
    let path = match paths.len() {
        1 => paths.into_iter().next().unwrap_or_default(),
        _ => bail!("the nodes of network {network} serve metrics at different paths"),
    };
    let config = json!({
        "scrape_configs": [{
            "job_name": format!("consort-{network}"),
            "metrics_path": path,
            "scrape_interval": "5s",
            "static_configs": targets,
        }]
    });
    let mut out = format!(
        "# consort output --format prometheus: network {network}, a target per node (geth's metrics on 127.0.0.1).\n\
         # Save as prometheus.yml (`prometheus --config.file=prometheus.yml`) or merge the job into yours.\n"
    );
    if !without.is_empty() {
        out.push_str(&format!(
            "# No metrics yet (started by an older consort; `consort apply` after a restart adds them): {}\n",
            without.join(", ")
        ));
    }
    out.push_str(&serde_yaml::to_string(&config)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_survive_source_and_dotenv() {
        assert_eq!(env_value("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(env_value("/a b/key"), "'/a b/key'");
        assert_eq!(env_value("it's"), r"'it'\''s'");
        assert_eq!(env_value(""), "''");
        assert_eq!(env_name("contoso-tx-0"), "CONTOSO_TX_0");
    }

    #[test]
    fn the_application_node_is_a_reachable_tx_node_of_the_member() {
        let nodes = vec![
            json!({"name": "a-validator-0", "member": "a", "role": "validator", "rpc_url": null}),
            json!({"name": "b-validator-0", "member": "b", "role": "validator", "rpc_url": "http://v"}),
            json!({"name": "b-tx-0", "member": "b", "role": "tx", "rpc_url": "http://t"}),
            json!({"name": "c-validator-0", "member": "c", "role": "validator", "rpc_url": "http://c"}),
        ];
        // a has nothing reachable: the first member that has is b, and its tx node wins.
        assert_eq!(app_node(&nodes, None).unwrap()["name"], "b-tx-0");
        assert_eq!(
            app_node(&nodes, Some("c")).unwrap()["name"],
            "c-validator-0"
        );
        assert!(app_node(&nodes, Some("a")).is_none());
    }
}
