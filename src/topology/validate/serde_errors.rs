//! serde_yaml's errors as diagnostics: the position, the path, friendlier wording and a
//! help line saying what the field holds.

use super::Ctx;
use crate::topology::diagnostic::{Diagnostic, Severity};
use crate::topology::spans::{child_key, line_text, LineMap, Pos};

// ---------------------------------------------------------------------------------------
// serde_yaml errors -> diagnostics

pub(super) fn serde_diag(ctx: &Ctx, e: &serde_yaml::Error) -> Diagnostic {
    // libyaml's index counts bytes (yaml-rust2's counts chars); map both the same way.
    let pos = e.location().map(|l| {
        let mut b = l.index().min(ctx.text.len());
        while !ctx.text.is_char_boundary(b) {
            b -= 1;
        }
        LineMap::new(ctx.text).pos(ctx.text[..b].chars().count())
    });
    let full = strip_first_location(&e.to_string());
    let (path, msg) = split_path(&full);
    let pos = pos.or_else(|| {
        full.contains("more than one document")
            .then(|| second_document(ctx.text))
            .flatten()
    });
    let (pos, message, help) = explain_serde(ctx, path, msg, pos);
    ctx.diag(Severity::Error, pos, message, help)
}

/// The first non-blank, non-comment character of the file (else its start).
pub(super) fn first_content(text: &str) -> Option<Pos> {
    for line in 1.. {
        let Some(l) = line_text(text, line) else {
            break;
        };
        let t = l.trim_start();
        if !t.is_empty() && !t.starts_with('#') {
            return Some(Pos {
                line,
                column: l.chars().count() - t.chars().count() + 1,
            });
        }
    }
    Some(Pos { line: 1, column: 1 })
}

/// The `---` line that starts a second document (after some content).
fn second_document(text: &str) -> Option<Pos> {
    let mut content = false;
    for line in 1.. {
        let l = line_text(text, line)?;
        let is_marker = l == "---" || l.starts_with("--- ");
        if is_marker && content {
            return Some(Pos { line, column: 1 });
        }
        let t = l.trim_start();
        content |= !(is_marker || t.is_empty() || t.starts_with('#') || t.starts_with('%'));
    }
    None
}

/// Drops the first ` at line N column M` (the diagnostic shows the position already).
pub(super) fn strip_first_location(s: &str) -> String {
    let Some(i) = s.find(" at line ") else {
        return s.to_string();
    };
    let rest = &s[i + " at line ".len()..];
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    let Some(after) = rest.get(n..).and_then(|r| r.strip_prefix(" column ")) else {
        return s.to_string();
    };
    let m = digits(after);
    if n == 0 || m == 0 {
        return s.to_string();
    }
    format!("{}{}", &s[..i], &after[m..])
}

/// `members[0].name: invalid type ...` -> (`members[0].name`, `invalid type ...`).
pub(super) fn split_path(s: &str) -> (&str, &str) {
    if let Some((p, rest)) = s.split_once(": ") {
        let is_path = !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
        if is_path && !p.starts_with('[') && !p.starts_with('.') {
            return (p, rest);
        }
    }
    ("", s)
}

/// Names inside backticks: "expected `a`, `b` or `c`" -> [a, b, c].
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn where_(path: &str) -> String {
    if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in {path}")
    }
}

fn friendly_types(msg: &str) -> String {
    msg.replace("unit value", "null (nothing)")
        .replace("expected u16", "expected a whole number from 0 to 65535")
        .replace(
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        )
        .replace("expected u64", "expected a whole number")
        .replace("expected a string", "expected text")
}

fn explain_serde(
    ctx: &Ctx,
    path: &str,
    msg: &str,
    pos: Option<Pos>,
) -> (Option<Pos>, String, Option<String>) {
    // An unclosed `{` or `[`: libyaml notices at the next line, and names where it opened.
    for (what, open, close) in [("flow mapping", '{', '}'), ("flow sequence", '[', ']')] {
        let marker = format!("while parsing a {what} at line ");
        let Some(rest) = msg.split(&marker).nth(1) else {
            continue;
        };
        let mut nums = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().ok());
        if let (Some(Some(line)), Some(Some(column))) = (nums.next(), nums.next()) {
            // Where libyaml says it opened, if that is a line of the text as we count
            // lines (else where serde stopped: a diagnostic always points at a line).
            let opened =
                if line_text(ctx.text, line).is_some_and(|l| l.chars().count() + 1 >= column) {
                    Pos { line, column }
                } else if let Some(p) = pos {
                    p
                } else {
                    continue;
                };
            let found = pos
                .map(|p| {
                    format!(
                        " (reading on, line {} has no `,` or `{close}` where one belongs)",
                        p.line
                    )
                })
                .unwrap_or_default();
            return (
                Some(opened),
                format!("this `{open}` is not closed{found}"),
                Some(format!("close it with `{close}` on the same line, or write the mapping in block style (one `key: value` per line)")),
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let field = names.first().copied().unwrap_or("?");
        let expected: Vec<&str> = names.iter().skip(1).copied().collect();
        let suggestion = expected
            .iter()
            .map(|c| (strsim::jaro_winkler(field, c), *c))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c);
        let accepted = if expected.is_empty() {
            "no fields here".to_string()
        } else {
            format!("accepted here: {}", expected.join(", "))
        };
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`? ({accepted})"),
            None => format!("remove it or fix its spelling ({accepted})"),
        };
        return (
            pos,
            format!("unknown field `{field}` {}", where_(path)),
            Some(help),
        );
    }
    if let Some(rest) = msg.strip_prefix("duplicate field ") {
        let field = backticked(rest).first().copied().unwrap_or("?");
        let entry = child_key(path, field);
        return match ctx.index.duplicate(&entry) {
            Some((first, second)) => (
                Some(second),
                format!("`{field}` appears twice {}", where_(path)),
                Some(format!(
                    "the first `{field}` is on line {}; keep only one",
                    first.line
                )),
            ),
            None => (
                pos,
                format!("`{field}` appears twice {}", where_(path)),
                Some("keep only one".into()),
            ),
        };
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = backticked(rest).first().copied().unwrap_or("?");
        let entry = child_key(path, field);
        let help = field_help(&entry)
            .map(|h| format!("add `{field}:` here; {h}"))
            .unwrap_or_else(|| format!("add `{field}:` here"));
        return (
            pos,
            format!("missing field `{field}` {}", where_(path)),
            Some(help),
        );
    }
    if msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
    {
        let shown = if path.is_empty() {
            "the topology"
        } else {
            path
        };
        return (
            pos,
            format!("{shown}: {}", friendly_types(msg)),
            field_help(path).map(str::to_string),
        );
    }
    // Syntax and everything else serde_yaml reports.
    let on_tab = pos
        .and_then(|p| line_text(ctx.text, p.line).map(|l| (p, l)))
        .and_then(|(p, l)| l.chars().nth(p.column.saturating_sub(1)))
        == Some('\t');
    let help = if on_tab {
        "YAML does not allow tabs for indentation; indent with spaces".to_string()
    } else if msg.contains("more than one document") {
        "a topology is a single YAML document: remove the `---` separators and what follows".into()
    } else if msg.contains("recursion limit") || msg.contains("repetition limit") {
        "the file nests or repeats far more than a topology does; check that -f points at a consort topology".into()
    } else {
        "check the YAML syntax here: indentation, a `:` after each key, closed quotes and brackets"
            .into()
    };
    let message = if path.is_empty() {
        format!("invalid YAML: {msg}")
    } else {
        format!("{path}: {msg}")
    };
    (pos, message, Some(help))
}

/// What a field holds, for help lines; keyed by path with list indices removed.
pub(super) fn field_help(path: &str) -> Option<&'static str> {
    let mut norm = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                norm.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => norm.push(c),
        }
    }
    Some(match norm.as_str() {
        "" => "a topology is a mapping with network, members and provider; run `consort init` for an example",
        "network" => "network is a mapping: name, chain_id and optionally consensus, gas_limit, funding_account",
        "network.name" => "the network name is text like `tradelane`",
        "network.chain_id" => "chain_id is a whole number no public network uses, e.g. `chain_id: 707070`",
        "network.consensus" => "consensus is a mapping holding `clique:` with period and epoch",
        "network.consensus.clique" => "clique is a mapping like `{ period: 5, epoch: 30000 }`",
        "network.consensus.clique.period" => "period is the number of seconds between blocks, e.g. `period: 5`",
        "network.consensus.clique.epoch" => "epoch is the number of blocks between checkpoints, e.g. `epoch: 30000`",
        "network.gas_limit" => "gas_limit is the block gas limit, a whole number like `gas_limit: 30000000`",
        "network.funding_account" => "funding_account is `<member>/<account>`, e.g. `contoso/treasury`",
        "client" => "client is a mapping like `geth: 1.13.15`",
        "client.geth" => "geth is a version like `geth: 1.13.15`",
        "rpc" => "rpc is a mapping like `cors_origins: [http://localhost:5173]`",
        "rpc.cors_origins" => "cors_origins is a list of origins like `[http://localhost:5173]`",
        "rpc.cors_origins[]" => "an origin is text like `http://localhost:5173`",
        "members" => "members is a list; each item starts with `- name: ...`",
        "members[]" => "a member looks like `- name: contoso` with `validators: 1` below it",
        "members[].name" => "a member name is text like `contoso`",
        "members[].validators" => "validators is the number of Clique signer nodes of this member, e.g. `validators: 1`",
        "members[].tx_nodes" => "tx_nodes is the number of RPC nodes for applications, e.g. `tx_nodes: 1`",
        "members[].accounts" => "accounts is a list; each item has `name` and `balance`",
        "members[].accounts[]" => "an account looks like `- name: treasury` with `balance: 1000 ether` below it",
        "members[].accounts[].name" => "an account name is text like `treasury`",
        "members[].accounts[].balance" => "a balance is like `5000000 ether`, `1.5 ether`, `21 gwei` or a whole number of wei",
        "provider" => "provider is a mapping with one key: `local: {}` or `azure: {...}`",
        "provider.local" => "local takes an optional base_port and address, e.g. `local: {}`",
        "provider.local.address" => "address is an IP address of this machine, e.g. `address: 127.0.0.2`",
        "members[].external" => "external is a mapping with signers and enodes (written by `consort admit`)",
        "provider.local.base_port" => "base_port is the first TCP port to use, e.g. `base_port: 30303`",
        "provider.azure" => "azure is a mapping with at least location and ssh_public_key_file",
        "provider.azure.location" => "location is an Azure region name like `westeurope`",
        "provider.azure.subscription_id" => "subscription_id is a GUID; leave it out to use AZURE_SUBSCRIPTION_ID",
        "provider.azure.address_space" => "address_space is an IPv4 CIDR like `10.42.0.0/16`",
        "provider.azure.allowed_rpc_cidrs" | "provider.azure.allowed_ssh_cidrs" => "a list of CIDRs like `[203.0.113.0/24]`",
        "provider.azure.allowed_rpc_cidrs[]" | "provider.azure.allowed_ssh_cidrs[]" => "a CIDR like `203.0.113.0/24`",
        "provider.azure.ssh_public_key" => "the text of an OpenSSH public key, `ssh-ed25519 AAAA... you@host`",
        "provider.azure.ssh_public_key_file" => "a path to an OpenSSH .pub file, relative to the topology file",
        _ => return None,
    })
}
