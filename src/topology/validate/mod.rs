//! Bytes -> validated [`Topology`], collecting every diagnostic it can.
//!
//! Order: size and UTF-8 checks, YAML syntax (serde_yaml into a `Value`), top-level shape,
//! the typed pass (serde_yaml into `RawTopology`; on failure each section is re-read on
//! its own so errors in different sections are all reported), then semantic checks with
//! positions from the `SpanIndex`.

//!
//! One file per concern: `serde_errors` (serde_yaml's errors as diagnostics), `names`, then
//! one per section — `network` (with `client` and `rpc`), `members`, `provider` — and
//! `cross` for checks across sections.

mod cross;
mod members;
mod names;
mod network;
mod provider;
mod serde_errors;
#[cfg(test)]
mod tests;

pub use names::{check_name, suggest_name};
pub use provider::parse_cidr;

use serde_errors::{first_content, serde_diag};

use super::diagnostic::{Diagnostic, LoadError, Severity};
use super::model::*;
use super::raw::*;
use super::spans::{line_text, LineMap, Pos, SpanIndex};
use serde::de::DeserializeSeed;
use std::path::{Path, PathBuf};

/// Larger than any real topology by far; refusing early keeps the parsers' work bounded.
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// Per member and role; keeps node counts (and sums of them) far from overflow.
pub const MAX_NODES_PER_ROLE: u32 = 100;
/// Sections re-read on their own after a failed typed pass (bounds the work on huge files).
const MAX_SECTION_PASSES: usize = 200;

pub const DEFAULT_PERIOD: u64 = 5;
pub const DEFAULT_EPOCH: u64 = 30_000;
pub const DEFAULT_GAS_LIMIT: u64 = 30_000_000;
pub const DEFAULT_GETH: &str = "1.13.15";
pub const DEFAULT_ADDRESS_SPACE: &str = "10.42.0.0/16";
pub const DEFAULT_VM_SIZE: &str = "Standard_D2s_v5";
pub const DEFAULT_ADMIN_USERNAME: &str = "consort";
/// Wallets refuse larger chain ids (EIP-2294).
pub const MAX_CHAIN_ID: u64 = 4_503_599_627_370_476;

/// Chain ids of public networks (and well-known testnets) a private network must not reuse.
pub const PUBLIC_CHAIN_IDS: &[(u64, &str)] = &[
    (1, "Ethereum Mainnet"),
    (2, "Expanse"),
    (3, "the Ropsten testnet"),
    (4, "the Rinkeby testnet"),
    (5, "the Goerli testnet"),
    (10, "OP Mainnet"),
    (25, "Cronos"),
    (56, "BNB Smart Chain"),
    (61, "Ethereum Classic"),
    (63, "the Mordor testnet"),
    (97, "the BNB Smart Chain testnet"),
    (100, "Gnosis Chain"),
    (137, "Polygon PoS"),
    (250, "Fantom Opera"),
    (288, "Boba Network"),
    (324, "zkSync Era"),
    (1101, "Polygon zkEVM"),
    (1284, "Moonbeam"),
    (1285, "Moonriver"),
    (5000, "Mantle"),
    (7700, "Canto"),
    (8217, "Kaia"),
    (8453, "Base"),
    (17000, "the Holesky testnet"),
    (42161, "Arbitrum One"),
    (42170, "Arbitrum Nova"),
    (42220, "Celo"),
    (43113, "the Avalanche Fuji testnet"),
    (43114, "Avalanche C-Chain"),
    (59144, "Linea"),
    (80001, "the Polygon Mumbai testnet"),
    (80002, "the Polygon Amoy testnet"),
    (81457, "Blast"),
    (84532, "the Base Sepolia testnet"),
    (421614, "the Arbitrum Sepolia testnet"),
    (534352, "Scroll"),
    (560048, "the Hoodi testnet"),
    (7777777, "Zora"),
    (11155111, "the Sepolia testnet"),
    (11155420, "the OP Sepolia testnet"),
];

/// A successfully loaded topology with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub topology: Topology,
    pub warnings: Vec<Diagnostic>,
    pub path: PathBuf,
    pub source: String,
}

/// Where diagnostics go and how they find their line.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    index: SpanIndex,
    diags: Vec<Diagnostic>,
    /// Paths the lenient second pass dropped: no check speaks about what encloses them.
    suppress: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Ctx {
            file,
            text,
            index: SpanIndex::default(),
            diags: Vec::new(),
            suppress: Vec::new(),
        }
    }

    fn diag(
        &self,
        sev: Severity,
        pos: Option<Pos>,
        msg: String,
        help: Option<String>,
    ) -> Diagnostic {
        make_diag(self.file, self.text, sev, pos, msg, help)
    }

    /// Pushes a diagnostic about the content: without a position from the index it points
    /// at the first line with content, so every such diagnostic has a line.
    fn push(&mut self, sev: Severity, pos: Option<Pos>, msg: String, help: Option<String>) {
        let pos = pos.or_else(|| first_content(self.text));
        let d = self.diag(sev, pos, msg, help);
        self.diags.push(d);
    }

    /// Whether `path` is or encloses a field the lenient pass dropped.
    fn suppressed(&self, path: &str) -> bool {
        self.suppress.iter().any(|d| {
            path.is_empty()
                || d == path
                || d.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// An error pointing at the value at `path` (or its nearest positioned ancestor).
    fn error(&mut self, path: &str, msg: impl Into<String>, help: impl Into<Option<String>>) {
        if self.suppressed(path) {
            return;
        }
        let pos = self.index.value(path);
        self.push(Severity::Error, pos, msg.into(), help.into());
    }

    /// An error pointing at the key of the entry at `path`.
    fn error_key(&mut self, path: &str, msg: impl Into<String>, help: impl Into<Option<String>>) {
        if self.suppressed(path) {
            return;
        }
        let pos = self.index.key(path);
        self.push(Severity::Error, pos, msg.into(), help.into());
    }

    fn warn_key(&mut self, path: &str, msg: impl Into<String>, help: impl Into<Option<String>>) {
        if self.suppressed(path) {
            return;
        }
        let pos = self.index.key(path);
        self.push(Severity::Warning, pos, msg.into(), help.into());
    }

    fn warn(&mut self, path: &str, msg: impl Into<String>, help: impl Into<Option<String>>) {
        if self.suppressed(path) {
            return;
        }
        let pos = self.index.value(path);
        self.push(Severity::Warning, pos, msg.into(), help.into());
    }

    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        let mut seen = std::collections::HashSet::new();
        self.diags
            .retain(|d| seen.insert((d.line, d.column, d.message.clone())));
        // Top to bottom; unpositioned ones last. Stable, so equal lines keep check order.
        self.diags
            .sort_by_key(|d| (d.line.is_none(), d.line, d.column));
        self.diags
    }
}

fn make_diag(
    file: &Path,
    text: &str,
    severity: Severity,
    pos: Option<Pos>,
    message: String,
    help: Option<String>,
) -> Diagnostic {
    let snippet = pos
        .and_then(|p| line_text(text, p.line))
        .map(str::to_string);
    Diagnostic {
        severity,
        file: file.to_path_buf(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        message,
        help,
        snippet,
    }
}

/// Longest Clique period accepted, in seconds.
pub const MAX_PERIOD: u64 = 3600;
/// Largest Clique epoch accepted: 2^53 - 1, the largest integer JSON tools built on
/// JavaScript numbers (web3, ethers, browsers) read back exactly from the chain config.
pub const MAX_EPOCH: u64 = (1 << 53) - 1;

/// What kind of non-regular file `meta` is, for the error.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    // Only regular files: opening a FIFO without a writer blocks forever, a directory or
    // device is never a topology. `metadata` follows symlinks and never blocks.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(LoadError {
                diagnostics: vec![make_diag(
                    path,
                    "",
                    Severity::Error,
                    None,
                    format!(
                        "the topology file is {}, not a regular file",
                        file_kind(&meta)
                    ),
                    Some(
                        "pass a YAML file with -f FILE (`consort init -f FILE` writes a starter)"
                            .to_string(),
                    ),
                )],
            });
        }
    }
    // At most one byte over the limit is read, so `-f /dev/zero` fails fast too.
    let read = |path: &Path| -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read(path).map_err(|e| {
        let (message, help) = if e.kind() == std::io::ErrorKind::NotFound {
            (
                "topology file not found".to_string(),
                format!(
                    "run `consort init -f {}` to write a starter topology, or pass the file with -f FILE",
                    path.display()
                ),
            )
        } else {
            (
                format!("cannot read the topology file: {e}"),
                "check that the path names a readable file".to_string(),
            )
        };
        LoadError {
            diagnostics: vec![make_diag(path, "", Severity::Error, None, message, Some(help))],
        }
    })?;
    parse(path, &bytes)
}

pub fn parse(path_for_messages: &Path, bytes: &[u8]) -> Result<Loaded, LoadError> {
    let file = path_for_messages;
    let fail = |d: Diagnostic| LoadError {
        diagnostics: vec![d],
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(fail(make_diag(
            file,
            "",
            Severity::Error,
            None,
            format!("the file is larger than {MAX_FILE_BYTES} bytes, too large to be a topology"),
            Some("check that -f points at a consort topology file".into()),
        )));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Err(fail(utf8_diag(file, bytes, e.valid_up_to()))),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ctx = Ctx::new(file, text);

    // libyaml slows down quadratically with flow nesting depth; refuse absurd nesting
    // before it sees the file.
    if let Some(at) = flow_too_deep(text) {
        let pos = LineMap::new(text).pos(at);
        return Err(fail(ctx.diag(
            Severity::Error,
            Some(pos),
            format!("brackets are nested more than {MAX_FLOW_DEPTH} levels deep here"),
            Some("a topology nests a few levels at most; check for unclosed `[` or `{`".into()),
        )));
    }

    // YAML syntax and the top-level shape.
    let top: Peek = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let d = serde_diag(&ctx, &e);
            return Err(fail(d));
        }
    };
    if top.kind == "null" {
        return Err(fail(make_diag(
            file,
            text,
            Severity::Error,
            None,
            "the topology file is empty".into(),
            // `init` refuses to overwrite a file that exists, even an empty one.
            Some(format!(
                "run `consort init -f {} --force` to write a commented starter topology into it",
                file.display()
            )),
        )));
    }
    ctx.index = SpanIndex::build(text);
    if top.kind != "a mapping" {
        ctx.error(
            "",
            format!("the top level of a topology must be a mapping, but this file holds {}", top.kind),
            Some("a topology starts with `network:`, `members:` and `provider:` keys at the left margin; run `consort init` for an example".to_string()),
        );
        return Err(LoadError {
            diagnostics: ctx.finish(),
        });
    }

    // The typed pass.
    let raw = match serde_yaml::from_str::<RawTopology>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let d = serde_diag(&ctx, &e);
            ctx.diags.push(d);
            let n_members = top.members;
            let sections = [
                Section::Network,
                Section::Client,
                Section::Provider,
                Section::Rpc,
            ]
            .into_iter()
            .chain((0..n_members).map(Section::Member))
            .take(MAX_SECTION_PASSES);
            for section in sections {
                if let Err(e) = section.deserialize(serde_yaml::Deserializer::from_str(text)) {
                    let d = serde_diag(&ctx, &e);
                    ctx.diags.push(d);
                }
            }
            // What the strict pass could not read is reported; check the rest too, so one
            // run reports every problem (an unknown field hides nothing).
            if let Some((raw, dropped)) = super::schema::lenient(text) {
                ctx.suppress = dropped;
                let _ = check(&mut ctx, raw);
            }
            return Err(LoadError {
                diagnostics: ctx.finish(),
            });
        }
    };

    let topology = check(&mut ctx, raw);
    let failed = ctx.has_errors();
    let diags = ctx.finish();
    match topology {
        Some(topology) if !failed => Ok(Loaded {
            topology,
            warnings: diags,
            path: file.to_path_buf(),
            source: text.to_string(),
        }),
        _ => Err(LoadError { diagnostics: diags }),
    }
}

/// Deepest `[`/`{` nesting accepted before parsing (a topology uses two or three).
pub(crate) const MAX_FLOW_DEPTH: usize = 64;

/// Char index where `[`/`{` nesting first exceeds [`MAX_FLOW_DEPTH`], skipping comments
/// and quoted text (roughly: a bracket inside a plain scalar still counts).
pub(crate) fn flow_too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for (i, c) in text.chars().enumerate() {
        if c == '\n' || c == '\r' {
            comment = false;
            if quote == Some('\'') {
                quote = None;
            }
        } else if comment {
        } else if let Some(q) = quote {
            if c == q && !(q == '"' && prev == '\\') {
                quote = None;
            }
        } else {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if prev.is_whitespace() || "[{,:".contains(prev) => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(i);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    None
}

fn utf8_diag(file: &Path, bytes: &[u8], valid_up_to: usize) -> Diagnostic {
    let prefix = bytes.get(..valid_up_to).unwrap_or_default();
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(prefix.get(line_start..).unwrap_or_default())
        .chars()
        .count()
        + 1;
    let rest = bytes.get(line_start..).unwrap_or_default();
    let line_bytes = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let snippet = String::from_utf8_lossy(line_bytes).trim_end().to_string();
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line: Some(line),
        column: Some(column),
        message: format!("the file is not valid UTF-8 (bad byte at offset {valid_up_to})"),
        help: Some("save the topology as UTF-8 text".into()),
        snippet: Some(snippet),
    }
}

fn check(ctx: &mut Ctx, raw: RawTopology) -> Option<Topology> {
    let net = raw.network;
    let (clique, gas_limit) = network::check_network(ctx, &net);

    // client
    let geth = match raw.client.and_then(|c| c.geth) {
        Some(v) => network::check_geth(ctx, &v),
        None => DEFAULT_GETH.to_string(),
    };

    let members = members::check_members(ctx, raw.members);
    let node_count: u32 = members.iter().map(|m| m.validators + m.tx_nodes).sum();

    if let Some(spec) = &net.funding_account {
        cross::check_funding(ctx, spec, &members);
    }

    let provider = provider::check_provider(ctx, raw.provider, &net.name, &members, node_count);
    let rpc = Rpc {
        cors_origins: raw
            .rpc
            .map(|r| network::check_cors_origins(ctx, r.cors_origins))
            .unwrap_or_default(),
    };

    let topology = Topology {
        network: Network {
            name: net.name,
            chain_id: net.chain_id,
            clique,
            gas_limit,
            funding_account: net.funding_account,
        },
        client: Client { geth },
        members,
        provider: provider?,
        rpc,
    };
    Some(topology)
}
