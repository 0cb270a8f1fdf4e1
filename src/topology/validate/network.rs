//! The `network`, `client` and `rpc` sections: name, chain id, Clique period and epoch,
//! gas limit, geth version, CORS origins.

use super::names::check_named;
use super::DEFAULT_GETH;
use super::{
    Ctx, DEFAULT_EPOCH, DEFAULT_GAS_LIMIT, DEFAULT_PERIOD, MAX_CHAIN_ID, MAX_EPOCH, MAX_PERIOD,
    PUBLIC_CHAIN_IDS,
};
use crate::topology::model::Clique;
use crate::topology::raw::RawNetwork;
use crate::topology::spans::child_index;
use std::collections::HashMap;

/// The `network` section's Clique settings and gas limit (defaults filled in).
pub(super) fn check_network(ctx: &mut Ctx, net: &RawNetwork) -> (Clique, u64) {
    check_named(ctx, "network.name", "network", &net.name);
    check_chain_id(ctx, net.chain_id);
    let clique = net.consensus.as_ref().and_then(|c| c.clique.as_ref());
    let period = clique
        .as_ref()
        .and_then(|c| c.period)
        .unwrap_or(DEFAULT_PERIOD);
    let epoch = clique
        .as_ref()
        .and_then(|c| c.epoch)
        .unwrap_or(DEFAULT_EPOCH);
    if period == 0 {
        ctx.error(
            "network.consensus.clique.period",
            "clique period 0 is not allowed",
            Some(format!("with period 0 Clique seals blocks only when transactions arrive, so the chain looks stalled to health checks; use the default `period: {DEFAULT_PERIOD}`")),
        );
    }
    if period > MAX_PERIOD {
        ctx.error(
            "network.consensus.clique.period",
            format!("clique period {period} is above the maximum of {MAX_PERIOD} seconds"),
            Some(format!("Clique seals one block per period: blocks further apart than an hour make the chain look halted to health checks and wallets, and each block's timestamp is its parent's plus the period (a huge period overflows it); use the default `period: {DEFAULT_PERIOD}`")),
        );
    }
    if epoch == 0 {
        ctx.error(
            "network.consensus.clique.epoch",
            "clique epoch 0 is not allowed",
            Some(format!("epoch is the number of blocks between Clique checkpoints; use the default `epoch: {DEFAULT_EPOCH}`")),
        );
    } else if epoch > MAX_EPOCH {
        ctx.error(
            "network.consensus.clique.epoch",
            format!("clique epoch {epoch} is above the maximum of {MAX_EPOCH}"),
            Some(format!("the epoch is written into the chain config as a JSON number, and JavaScript-based tools (web3, ethers) read numbers above 2^53-1 wrongly; use the default `epoch: {DEFAULT_EPOCH}`")),
        );
    }
    let gas_limit = net.gas_limit.unwrap_or(DEFAULT_GAS_LIMIT);
    if gas_limit < 21_000 {
        ctx.error(
            "network.gas_limit",
            format!("gas_limit {gas_limit} is below 21000, the gas of a plain transfer"),
            Some(format!("no transaction would fit in a block; use the default `gas_limit: {DEFAULT_GAS_LIMIT}`")),
        );
    } else if gas_limit > i64::MAX as u64 {
        ctx.error(
            "network.gas_limit",
            format!(
                "gas_limit {gas_limit} is above geth's maximum of {}",
                i64::MAX
            ),
            Some(format!("use the default `gas_limit: {DEFAULT_GAS_LIMIT}`")),
        );
    }
    (Clique { period, epoch }, gas_limit)
}

/// Each entry of `rpc.cors_origins` is an origin as browsers send it (`scheme://host[:port]`,
/// lowercase scheme, no path): geth compares the `Origin` header with it. `*` would let every
/// page a user visits call the node, so it is refused.
pub(super) fn check_cors_origins(ctx: &mut Ctx, origins: Vec<String>) -> Vec<String> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(origins.len());
    for (i, o) in origins.into_iter().enumerate() {
        let path = child_index("rpc.cors_origins", i);
        match origin_problem(&o) {
            Some((why, fix)) => ctx.error(&path, format!("cors_origins: {o:?} {why}"), Some(fix)),
            None if seen.contains_key(&o) => ctx.warn(
                &path,
                format!("cors_origins lists {o} twice"),
                Some("remove one of them".to_string()),
            ),
            None => {
                seen.insert(o.clone(), path);
                out.push(o);
            }
        }
    }
    out
}

/// Why `o` is not an origin, and how to write it.
fn origin_problem(o: &str) -> Option<(String, String)> {
    let example = "write the origin your page is served from, like `http://localhost:5173` or `https://app.example.com`";
    if o.contains('*') {
        return Some((
            "is a wildcard: every web page a user opens could then call the node".into(),
            format!("list each origin that may call the node; {example}"),
        ));
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return Some(("is not an origin (no scheme)".into(), example.into()));
    };
    if scheme != "http" && scheme != "https" {
        return Some((
            format!("has scheme {scheme:?}; browsers send http or https origins (lowercase)"),
            example.into(),
        ));
    }
    if rest.ends_with('/') || rest.contains(['/', '?', '#']) {
        return Some((
            "has a path; an origin is scheme, host and port only".into(),
            format!(
                "drop everything from the first `/` after the host: `{scheme}://{}`",
                rest.split(['/', '?', '#']).next().unwrap_or("")
            ),
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
            if h.contains(':') && !h.starts_with('[') {
                (rest, None)
            } else {
                (h, Some(p))
            }
        }
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && !host.contains('@')
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if !host_ok {
        return Some((format!("has no valid host ({host:?})"), example.into()));
    }
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return Some((
                format!("has port {p:?}, not a number from 1 to 65535"),
                example.into(),
            ));
        }
    }
    None
}

fn check_chain_id(ctx: &mut Ctx, id: u64) {
    const PATH: &str = "network.chain_id";
    if id == 0 {
        ctx.error(
            PATH,
            "chain_id 0 is not allowed",
            Some("transaction signatures (EIP-155) need a chain id of 1 or more; pick an unused number such as 707070".to_string()),
        );
    } else if let Some((_, name)) = PUBLIC_CHAIN_IDS.iter().find(|(n, _)| *n == id) {
        ctx.error(
            PATH,
            format!("chain_id {id} belongs to {name}"),
            Some("a private network needs its own chain id, so its signed transactions cannot be replayed on a public one; pick an unused number such as 707070 (chainlist.org lists taken ids)".to_string()),
        );
    } else if id > MAX_CHAIN_ID {
        ctx.error(
            PATH,
            format!("chain_id {id} is too large"),
            Some(format!("wallets refuse chain ids above {MAX_CHAIN_ID} (EIP-2294); pick a smaller number such as 707070")),
        );
    }
}

/// Returns the normalised version (`v1.13.15` -> `1.13.15`).
pub(super) fn check_geth(ctx: &mut Ctx, v: &str) -> String {
    const PATH: &str = "client.geth";
    let bare = v.trim().strip_prefix('v').unwrap_or(v.trim());
    let parts: Vec<&str> = bare.split('.').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse::<u64>().ok()).collect();
    let use_default = format!("use `geth: {DEFAULT_GETH}`");
    match nums.as_deref() {
        Some([1, 13, patch]) if *patch <= 15 => {}
        Some([1, 13, _]) => ctx.error(
            PATH,
            format!("geth {bare} does not exist"),
            Some(format!("the 1.13 series ends at 1.13.15; {use_default}")),
        ),
        Some([_, _, _]) => ctx.error(
            PATH,
            format!("geth {bare} cannot seal Clique blocks"),
            Some(format!("only geth 1.13.x can seal Clique blocks (1.14 removed block production before the merge); {use_default}")),
        ),
        _ => ctx.error(
            PATH,
            format!("client.geth {v:?} is not a geth version"),
            Some(format!("write major.minor.patch; {use_default}")),
        ),
    }
    bare.to_string()
}
