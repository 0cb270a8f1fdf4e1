//! Bytes -> validated [`Topology`], collecting every diagnostic it can.
//!
//! Order: size and UTF-8 checks, YAML syntax (serde_yaml into a `Value`), top-level shape,
//! the typed pass (serde_yaml into [`RawTopology`]; on failure each section is re-read on
//! its own so errors in different sections are all reported), then semantic checks with
//! positions from the [`SpanIndex`].

use super::balance::parse_balance;
use super::diagnostic::{Diagnostic, LoadError, Severity};
use super::model::*;
use super::raw::*;
use super::spans::{child_index, child_key, line_text, LineMap, Pos, SpanIndex};
use serde::de::DeserializeSeed;
use std::collections::HashMap;
use std::net::IpAddr;
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

/// Usernames Azure refuses for Linux VMs.
const AZURE_RESERVED_USERS: &[&str] = &[
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin",
    "admin1",
    "admin2",
    "administrator",
    "aspnet",
    "backup",
    "console",
    "david",
    "guest",
    "john",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
    "test",
    "test1",
    "test2",
    "test3",
    "user",
    "user1",
    "user2",
    "user3",
    "user4",
    "user5",
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

// ---------------------------------------------------------------------------------------
// serde_yaml errors -> diagnostics

fn serde_diag(ctx: &Ctx, e: &serde_yaml::Error) -> Diagnostic {
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
fn first_content(text: &str) -> Option<Pos> {
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
fn strip_first_location(s: &str) -> String {
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
fn split_path(s: &str) -> (&str, &str) {
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
fn field_help(path: &str) -> Option<&'static str> {
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

// ---------------------------------------------------------------------------------------
// Semantic checks

/// `Ok` or why `s` is not a valid network/member/account name.
pub fn check_name(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    let first = s.chars().next();
    if n == 0 {
        return Err("it is empty".into());
    }
    if !first.is_some_and(|c| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "it contains {c:?}; only lowercase letters, digits and '-' are allowed"
        ));
    }
    if n < 2 {
        return Err("it is shorter than 2 characters".into());
    }
    if n > 24 {
        return Err(format!("it is {n} characters long; the limit is 24"));
    }
    if s.ends_with('-') {
        return Err("it must not end with '-'".into());
    }
    Ok(())
}

/// A valid name close to `s`, if one is easy to derive (`Contoso Ltd` -> `contoso-ltd`).
pub fn suggest_name(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let start = out.find(|c: char| c.is_ascii_lowercase())?;
    let mut out: String = out[start..].chars().take(24).collect();
    while out.ends_with('-') {
        out.pop();
    }
    (check_name(&out).is_ok() && out != s).then_some(out)
}

const NAME_RULE: &str = "names are 2 to 24 characters: a lowercase letter first, then lowercase letters, digits or '-' (not at the end)";

fn check_named(ctx: &mut Ctx, path: &str, kind: &str, name: &str) -> bool {
    match check_name(name) {
        Ok(()) => true,
        Err(why) => {
            let help = match suggest_name(name) {
                Some(s) => format!("{NAME_RULE}; for example \"{s}\""),
                None => NAME_RULE.to_string(),
            };
            ctx.error(path, format!("invalid {kind} name {name:?}: {why}"), help);
            false
        }
    }
}

/// Records `name` at `path`; reports it if an earlier entry used it.
fn check_unique(
    ctx: &mut Ctx,
    seen: &mut HashMap<String, String>,
    path: &str,
    kind: &str,
    scope: &str,
    name: &str,
) {
    if let Some(first) = seen.get(name) {
        let first_line = ctx
            .index
            .value_exact(first)
            .map_or_else(String::new, |p| format!(" (line {})", p.line));
        ctx.error(
            path,
            format!("duplicate {kind} name {name:?}{scope}"),
            format!(
                "{name:?} is already used by {first}{first_line}; {kind} names must be unique{scope}: rename or remove one"
            ),
        );
    } else {
        seen.insert(name.to_string(), path.to_string());
    }
}

fn check(ctx: &mut Ctx, raw: RawTopology) -> Option<Topology> {
    // network
    let net = raw.network;
    check_named(ctx, "network.name", "network", &net.name);
    check_chain_id(ctx, net.chain_id);
    let clique = net.consensus.and_then(|c| c.clique);
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

    // client
    let geth = match raw.client.and_then(|c| c.geth) {
        Some(v) => check_geth(ctx, &v),
        None => DEFAULT_GETH.to_string(),
    };

    // members
    if raw.members.is_empty() {
        ctx.error_key(
            "members",
            "the network has no members",
            Some("add at least one member with a validator:\n  members:\n    - name: contoso\n      validators: 1".to_string()),
        );
    }
    let mut member_names = HashMap::new();
    let mut addresses: HashMap<String, String> = HashMap::new();
    // A count over the limit is clamped below: no parity warning about the clamped sum.
    let mut over_limit = false;
    let mut members = Vec::with_capacity(raw.members.len());
    for (i, m) in raw.members.into_iter().enumerate() {
        let mpath = child_index("members", i);
        let name_path = child_key(&mpath, "name");
        if check_named(ctx, &name_path, "member", &m.name) {
            check_unique(ctx, &mut member_names, &name_path, "member", "", &m.name);
        }
        for (field, n) in [("validators", m.validators), ("tx_nodes", m.tx_nodes)] {
            if n > MAX_NODES_PER_ROLE {
                over_limit = true;
                ctx.error(
                    &child_key(&mpath, field),
                    format!(
                        "member {:?} asks for {n} {field}; the limit is {MAX_NODES_PER_ROLE}",
                        m.name
                    ),
                    Some(
                        "a consortium member runs a handful of nodes; lower the number".to_string(),
                    ),
                );
            }
        }
        let mut account_names = HashMap::new();
        let mut accounts = Vec::with_capacity(m.accounts.len());
        for (j, a) in m.accounts.into_iter().enumerate() {
            let apath = child_index(&child_key(&mpath, "accounts"), j);
            let aname_path = child_key(&apath, "name");
            if check_named(ctx, &aname_path, "account", &a.name) {
                let scope = format!(" in member {:?}", m.name);
                check_unique(
                    ctx,
                    &mut account_names,
                    &aname_path,
                    "account",
                    &scope,
                    &a.name,
                );
            }
            let balance = check_balance(ctx, &child_key(&apath, "balance"), &a.name, &a.balance);
            let address = a.address.as_deref().and_then(|text| {
                let path = child_key(&apath, "address");
                let addr = check_address(ctx, &path, &a.name, text)?;
                if let Some(first) = addresses.get(&addr) {
                    ctx.error(
                        &path,
                        format!("address {addr} is funded twice"),
                        Some(format!("{first} already names it; genesis holds one balance per address: remove one of the two accounts")),
                    );
                } else {
                    addresses.insert(addr.clone(), path.clone());
                }
                Some(addr)
            });
            accounts.push(Account {
                name: a.name,
                balance: balance.unwrap_or_default(),
                address,
            });
        }
        let external = m
            .external
            .map(|e| check_external(ctx, &mpath, &m.name, m.validators, m.tx_nodes, &accounts, e));
        members.push(Member {
            name: m.name,
            validators: m.validators.min(MAX_NODES_PER_ROLE),
            tx_nodes: m.tx_nodes.min(MAX_NODES_PER_ROLE),
            accounts,
            external,
        });
    }
    let signers: u32 = members.iter().map(|m| m.validators).sum();
    let node_count: u32 = members.iter().map(|m| m.validators + m.tx_nodes).sum();
    if signers == 0 && !members.is_empty() {
        ctx.error_key(
            "members",
            "the network has no validators",
            Some("Clique needs at least one signer: give a member `validators: 1`".to_string()),
        );
    } else if over_limit {
    } else if signers == 2 {
        ctx.warn_key(
            "members",
            "2 validators: if either one is down, the chain halts",
            Some("Clique needs more than half of the signers online to seal blocks (2 of 2); use 1 or 3 validators".to_string()),
        );
    } else if signers > 2 && signers % 2 == 0 {
        ctx.warn_key(
            "members",
            format!("{signers} validators (an even number) tolerate no more failures than {}", signers - 1),
            Some(format!(
                "Clique needs {} of {signers} signers online, so {} may be down, the same as with {}; use an odd number",
                signers / 2 + 1,
                signers / 2 - 1,
                signers - 1
            )),
        );
    }

    if let Some(spec) = &net.funding_account {
        check_funding(ctx, spec, &members);
    }

    let provider = check_provider(ctx, raw.provider, &net.name, &members, node_count);
    let rpc = Rpc {
        cors_origins: raw
            .rpc
            .map(|r| check_cors_origins(ctx, r.cors_origins))
            .unwrap_or_default(),
    };

    let topology = Topology {
        network: Network {
            name: net.name,
            chain_id: net.chain_id,
            clique: Clique { period, epoch },
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

/// Each entry of `rpc.cors_origins` is an origin as browsers send it (`scheme://host[:port]`,
/// lowercase scheme, no path): geth compares the `Origin` header with it. `*` would let every
/// page a user visits call the node, so it is refused.
fn check_cors_origins(ctx: &mut Ctx, origins: Vec<String>) -> Vec<String> {
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
fn check_geth(ctx: &mut Ctx, v: &str) -> String {
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

fn check_balance(ctx: &mut Ctx, path: &str, account: &str, b: &RawBalance) -> Option<Wei> {
    const HELP: &str =
        "write a balance like `5000000 ether`, `1.5 ether`, `21 gwei` or a whole number of wei";
    match b {
        RawBalance::Wei(w) => Some(Wei(*w)),
        RawBalance::Text(t) => match parse_balance(t) {
            Ok(w) => Some(w),
            Err(why) => {
                ctx.error(
                    path,
                    format!("invalid balance {t:?} for account {account:?}: {why}"),
                    Some(HELP.to_string()),
                );
                None
            }
        },
        RawBalance::Negative => {
            ctx.error(
                path,
                format!("the balance of account {account:?} is negative"),
                Some(HELP.to_string()),
            );
            None
        }
        RawBalance::Float(f) => {
            ctx.error(
                path,
                format!("the balance of account {account:?} is a floating-point number ({f})"),
                Some("floating point cannot hold wei exactly; write it with a unit, like `1.5 ether` or `1000000 ether`".to_string()),
            );
            None
        }
    }
}

/// The account's address, EIP-55 checksummed, or `None` after reporting why it is not one.
fn check_address(ctx: &mut Ctx, path: &str, account: &str, text: &str) -> Option<String> {
    match text.trim().parse::<crate::crypto::Address>() {
        Ok(a) => Some(a.to_checksum()),
        Err(crate::crypto::CryptoError::InvalidAddress { reason, .. }) => {
            ctx.error(
                path,
                format!("invalid address {text:?} for account {account:?}: {reason}"),
                Some("copy the address from your wallet: `0x` and 40 hex digits, e.g. `address: 0x52908400098527886E0F7030069857D2E4169EE7`; or leave `address:` out and consort generates a key".to_string()),
            );
            None
        }
        Err(e) => {
            ctx.error(
                path,
                format!("invalid address {text:?} for account {account:?}: {e}"),
                None,
            );
            None
        }
    }
}

/// A member another operator runs: one signer address per validator, one enode per node,
/// and only accounts it holds the key of itself (`address:`).
fn check_external(
    ctx: &mut Ctx,
    mpath: &str,
    member: &str,
    validators: u32,
    tx_nodes: u32,
    accounts: &[Account],
    e: super::raw::RawExternal,
) -> External {
    let path = child_key(mpath, "external");
    let mut signers = Vec::new();
    for (i, text) in e.signers.iter().enumerate() {
        let p = child_index(&child_key(&path, "signers"), i);
        if let Some(a) = check_address(ctx, &p, &format!("{member} signer {i}"), text) {
            signers.push(a);
        }
    }
    if e.signers.len() != validators as usize {
        ctx.error(
            &child_key(&path, "signers"),
            format!(
                "external member {member:?} has {validators} validator(s) but lists {} signer address(es)",
                e.signers.len()
            ),
            Some("list one signer address per validator (as its join request gave them)".to_string()),
        );
    }
    for (i, url) in e.enodes.iter().enumerate() {
        if crate::rpc::enode_pubkey(url).is_none() || !url.contains('@') {
            ctx.error(
                &child_index(&child_key(&path, "enodes"), i),
                format!("{url:?} is not an enode URL"),
                Some(
                    "an enode URL looks like `enode://<128 hex digits>@127.0.0.2:30303`"
                        .to_string(),
                ),
            );
        }
    }
    if e.enodes.len() != (validators + tx_nodes) as usize {
        ctx.error(
            &child_key(&path, "enodes"),
            format!(
                "external member {member:?} has {} node(s) but lists {} enode(s)",
                validators + tx_nodes,
                e.enodes.len()
            ),
            Some("list one enode URL per node".to_string()),
        );
    }
    for (j, a) in accounts.iter().enumerate() {
        if a.has_key() {
            ctx.error(
                &child_index(&child_key(mpath, "accounts"), j),
                format!(
                    "account {:?} of external member {member:?} has no address: consort holds no key of a member another operator runs",
                    a.name
                ),
                Some("give the account's `address:` (its operator holds the key)".to_string()),
            );
        }
    }
    External {
        signers,
        enodes: e.enodes,
        invitation: e.invitation,
    }
}

fn check_funding(ctx: &mut Ctx, spec: &str, members: &[Member]) {
    const PATH: &str = "network.funding_account";
    let Some((m, a)) = spec
        .split_once('/')
        .filter(|(m, a)| !m.is_empty() && !a.is_empty())
    else {
        ctx.error(
            PATH,
            format!("funding_account {spec:?} is not of the form <member>/<account>"),
            Some(
                "name a member and one of its accounts, e.g. `funding_account: contoso/treasury`"
                    .to_string(),
            ),
        );
        return;
    };
    let list = |names: Vec<&str>| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match members.iter().find(|x| x.name == m) {
        None => ctx.error(
            PATH,
            format!("funding_account {spec:?} names no existing member {m:?}"),
            Some(format!("members: {}", {
                let mut names: Vec<&str> = members.iter().map(|x| x.name.as_str()).collect();
                names.dedup();
                list(names)
            })),
        ),
        Some(member)
            if member
                .accounts
                .iter()
                .any(|x| x.name == a && !x.has_key()) =>
        {
            ctx.error(
                PATH,
                format!("funding_account {spec:?} is an `address:` account, whose key consort does not hold"),
                Some("the funding account signs transfers, so it must be an account consort generated (no `address:`); name another".to_string()),
            )
        }
        Some(member) if !member.accounts.iter().any(|x| x.name == a) => ctx.error(
            PATH,
            format!("funding_account {spec:?}: member {m:?} has no account {a:?}"),
            Some(format!(
                "accounts of {m:?}: {}; add the account or name another",
                list(member.accounts.iter().map(|x| x.name.as_str()).collect())
            )),
        ),
        Some(_) => {}
    }
}

fn check_provider(
    ctx: &mut Ctx,
    p: RawProvider,
    network: &str,
    members: &[Member],
    nodes: u32,
) -> Option<ProviderConfig> {
    match (p.local, p.azure) {
        (None, None) => {
            ctx.error(
                "provider",
                "the provider names neither `local` nor `azure`",
                Some(
                    "add `local: {}` to run geth on this machine, or `azure:` with its settings"
                        .to_string(),
                ),
            );
            None
        }
        (Some(_), Some(_)) => {
            ctx.error_key(
                "provider.azure",
                "the provider names both `local` and `azure`",
                Some("a network runs on one provider: keep one of them".to_string()),
            );
            None
        }
        (Some(local), None) => {
            let local = local.unwrap_or_default();
            if let Some(port) = local.base_port {
                let needed = nodes.saturating_mul(3);
                if port < 1024 {
                    ctx.error(
                        "provider.local.base_port",
                        format!("base_port {port} is a privileged port (below 1024)"),
                        Some("use 1024 or above, e.g. `base_port: 30303`, or leave it out to let consort choose".to_string()),
                    );
                } else if u32::from(port) + needed > 65536 {
                    ctx.error(
                        "provider.local.base_port",
                        format!("base_port {port} leaves {} ports, but {nodes} nodes need up to {needed} (p2p each, HTTP and WebSocket per tx node)", 65536 - u32::from(port)),
                        Some("lower base_port, e.g. `base_port: 30303`".to_string()),
                    );
                }
            }
            let address = local.address.as_deref().and_then(|a| {
                match crate::topology::check_local_address(a) {
                    Ok(ip) => Some(ip.to_string()),
                    Err(why) => {
                        ctx.error(
                            "provider.local.address",
                            why,
                            Some("use an address of this machine, e.g. `address: 127.0.0.2` (127.0.0.0/8 is all local on Linux), or leave it out for 127.0.0.1".to_string()),
                        );
                        None
                    }
                }
            });
            Some(ProviderConfig::Local(LocalConfig {
                address,
                base_port: local.base_port,
            }))
        }
        (None, Some(None)) => {
            ctx.error_key(
                "provider.azure",
                "provider.azure is empty",
                Some("azure needs at least `location:` and `ssh_public_key_file:`".to_string()),
            );
            None
        }
        (None, Some(Some(az))) => check_azure(ctx, az, network, members).map(ProviderConfig::Azure),
    }
}

fn check_azure(
    ctx: &mut Ctx,
    az: RawAzure,
    network: &str,
    members: &[Member],
) -> Option<AzureConfig> {
    const P: &str = "provider.azure";
    let path = |k: &str| child_key(P, k);

    let subscription_id = match az.subscription_id {
        Some(s) => {
            if uuid::Uuid::parse_str(s.trim()).is_err() {
                ctx.error(
                    &path("subscription_id"),
                    format!("subscription_id {s:?} is not a GUID"),
                    Some("copy it from `az account show --query id -o tsv`, or leave it out to use AZURE_SUBSCRIPTION_ID".to_string()),
                );
            }
            Some(s.trim().to_string())
        }
        None => std::env::var("AZURE_SUBSCRIPTION_ID")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    };

    let location = az.location.trim().to_string();
    if location.is_empty()
        || !location
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        ctx.error(
            &path("location"),
            format!("location {:?} is not an Azure region name", az.location),
            Some("use the short lowercase name, e.g. `westeurope` (`az account list-locations -o table` lists them)".to_string()),
        );
    }

    let resource_group = az
        .resource_group
        .unwrap_or_else(|| format!("consort-{network}"));
    let rg_ok = (1..=90).contains(&resource_group.chars().count())
        && resource_group
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
        && !resource_group.ends_with('.');
    if !rg_ok {
        ctx.error(
            &path("resource_group"),
            format!("resource_group {resource_group:?} is not a valid Azure resource group name"),
            Some(
                "use 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"
                    .to_string(),
            ),
        );
    }

    let address_space = az
        .address_space
        .unwrap_or_else(|| DEFAULT_ADDRESS_SPACE.to_string());
    check_address_space(ctx, &path("address_space"), &address_space, members.len());

    let vm_size = az.vm_size.unwrap_or_else(|| DEFAULT_VM_SIZE.to_string());
    for (key, v) in [
        ("vm_size", Some(&vm_size)),
        ("validator_vm_size", az.validator_vm_size.as_ref()),
        ("tx_vm_size", az.tx_vm_size.as_ref()),
    ] {
        if let Some(v) = v {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                ctx.error(
                    &path(key),
                    format!("{key} {v:?} is not an Azure VM size name"),
                    Some(format!("VM sizes look like `{DEFAULT_VM_SIZE}` (`az vm list-sizes -l <location>` lists them)")),
                );
            }
        }
    }

    let admin_username = az
        .admin_username
        .unwrap_or_else(|| DEFAULT_ADMIN_USERNAME.to_string());
    let user_ok = admin_username.len() <= 32
        && admin_username
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && admin_username
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !user_ok {
        ctx.error(
            &path("admin_username"),
            format!("admin_username {admin_username:?} is not a valid Linux user name"),
            Some(format!("use up to 32 lowercase letters, digits, '_' or '-', starting with a letter; e.g. `{DEFAULT_ADMIN_USERNAME}`")),
        );
    } else if admin_username == crate::render::vm_paths::GETH_USER {
        ctx.error(
            &path("admin_username"),
            format!("admin_username {admin_username:?} is the system user geth runs as on every VM"),
            Some(format!(
                "geth must never run as the admin user (who has sudo): pick another name, e.g. `{DEFAULT_ADMIN_USERNAME}`"
            )),
        );
    } else if AZURE_RESERVED_USERS.contains(&admin_username.as_str()) {
        ctx.error(
            &path("admin_username"),
            format!("Azure does not allow the admin username {admin_username:?}"),
            Some(format!(
                "pick another name, e.g. `{DEFAULT_ADMIN_USERNAME}`"
            )),
        );
    }

    let ssh_public_key = match (az.ssh_public_key, az.ssh_public_key_file) {
        (None, None) => {
            ctx.error(
                P,
                "provider.azure needs an SSH public key for the VMs",
                Some("add `ssh_public_key_file: ~/.ssh/id_ed25519.pub` (or `ssh_public_key:` with the key text)".to_string()),
            );
            None
        }
        (Some(_), Some(_)) => {
            ctx.error_key(
                &path("ssh_public_key_file"),
                "both ssh_public_key and ssh_public_key_file are set",
                Some("keep one of them".to_string()),
            );
            None
        }
        (Some(text), None) => check_ssh_key(ctx, &path("ssh_public_key"), &text, "ssh_public_key")
            .then(|| text.trim().to_string()),
        (None, Some(file)) => read_ssh_key(ctx, &path("ssh_public_key_file"), &file),
    };

    for (key, list) in [
        ("allowed_rpc_cidrs", &az.allowed_rpc_cidrs),
        ("allowed_ssh_cidrs", &az.allowed_ssh_cidrs),
    ] {
        for (i, c) in list.iter().enumerate() {
            let p = child_index(&path(key), i);
            match parse_cidr(c) {
                Err(why) => ctx.error(
                    &p,
                    format!("{key} entry {c:?} is not a valid CIDR: {why}"),
                    Some("write an address and prefix length, e.g. `203.0.113.0/24` (or `/32` for one address)".to_string()),
                ),
                Ok((_, 0)) => ctx.warn(
                    &p,
                    format!("{key} entry {c:?} opens the {} port to the whole internet", if key == "allowed_rpc_cidrs" { "JSON-RPC" } else { "SSH" }),
                    Some("allow only the networks that need access, e.g. your office's `203.0.113.0/24`".to_string()),
                ),
                Ok(_) => {}
            }
        }
    }

    Some(AzureConfig {
        subscription_id,
        location,
        resource_group,
        address_space,
        vm_size,
        validator_vm_size: az.validator_vm_size,
        tx_vm_size: az.tx_vm_size,
        admin_username,
        ssh_public_key: ssh_public_key?,
        allowed_rpc_cidrs: az.allowed_rpc_cidrs,
        allowed_ssh_cidrs: az.allowed_ssh_cidrs,
    })
}

/// `a.b.c.d/n` or an IPv6 CIDR, with no host bits set. Returns (address, prefix).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((addr, len)) = s.trim().split_once('/') else {
        return Err("it has no /prefix length".into());
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("the prefix length must be a number from 0 to {max}"))?;
    let host_bits_set = match ip {
        IpAddr::V4(v4) => len < 32 && (u32::from(v4) & (u32::MAX >> len)) != 0,
        IpAddr::V6(v6) => len < 128 && (u128::from(v6) & (u128::MAX >> len)) != 0,
    };
    if host_bits_set {
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::from(std::net::Ipv4Addr::from(
                u32::from(v4) & !(u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)),
            )),
            IpAddr::V6(v6) => IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(v6) & !(u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)),
            )),
        };
        return Err(format!("it has host bits set; the network is {net}/{len}"));
    }
    Ok((ip, len))
}

fn check_address_space(ctx: &mut Ctx, path: &str, s: &str, members: usize) {
    let help =
        "use a private IPv4 range of size /8 to /24 with one /24 per member, e.g. `10.42.0.0/16`";
    match parse_cidr(s) {
        Err(why) => ctx.error(
            path,
            format!("address_space {s:?} is not a valid CIDR: {why}"),
            Some(help.to_string()),
        ),
        Ok((IpAddr::V6(_), _)) => ctx.error(
            path,
            format!("address_space {s:?} is IPv6; it must be IPv4"),
            Some(help.to_string()),
        ),
        Ok((_, len)) if !(8..=24).contains(&len) => ctx.error(
            path,
            format!("address_space {s:?} is a /{len}; it must be between /8 and /24"),
            Some(help.to_string()),
        ),
        Ok((_, len)) => {
            let subnets = 1usize << (24 - len);
            if subnets < members {
                ctx.error(
                    path,
                    format!("address_space {s:?} holds {subnets} /24 subnets, but there are {members} members"),
                    Some(format!("each member gets its own /24; use a larger range, e.g. a /{}", 24 - (usize::BITS - (members - 1).leading_zeros()).min(16))),
                );
            }
        }
    }
}

/// Reads the key file (path relative to the topology file; `~/` is the home directory).
fn read_ssh_key(ctx: &mut Ctx, path: &str, file: &str) -> Option<String> {
    let expanded: PathBuf = match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(file),
    };
    let full = if expanded.is_absolute() {
        expanded
    } else {
        ctx.file
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(expanded)
    };
    match std::fs::read_to_string(&full) {
        Err(e) => {
            ctx.error(
                path,
                format!("cannot read ssh_public_key_file {}: {e}", full.display()),
                Some("point it at an OpenSSH public key (a .pub file; relative paths start at the topology file's directory), or create one with `ssh-keygen -t ed25519`".to_string()),
            );
            None
        }
        Ok(text) => {
            let what = format!("the file {}", full.display());
            check_ssh_key(ctx, path, &text, &what).then(|| text.trim().to_string())
        }
    }
}

/// Never echoes the key text: a private key pasted by mistake must not reach a terminal.
fn check_ssh_key(ctx: &mut Ctx, path: &str, text: &str, what: &str) -> bool {
    let t = text.trim();
    if t.contains("PRIVATE KEY") {
        ctx.error(
            path,
            format!("{what} holds a private key"),
            Some("use the public half (the .pub file next to it); never put a private key in a topology".to_string()),
        );
        return false;
    }
    let mut parts = t.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let blob = parts.next().unwrap_or("");
    let looks_b64 = blob.len() >= 16
        && blob.starts_with("AAAA")
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if t.lines().count() != 1 || !looks_b64 || !kind.starts_with(['s', 'e']) {
        ctx.error(
            path,
            format!("{what} does not look like an OpenSSH public key"),
            Some("expected one line like `ssh-ed25519 AAAA... you@host`, as in ~/.ssh/id_ed25519.pub".to_string()),
        );
        return false;
    }
    if kind != "ssh-rsa" && kind != "ssh-ed25519" {
        ctx.error(
            path,
            format!("{what} holds a key of type {kind}; Azure accepts only ssh-rsa and ssh-ed25519 keys"),
            Some("create one with `ssh-keygen -t ed25519`".to_string()),
        );
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("tradelane").is_ok());
        assert!(check_name("a1-b2").is_ok());
        assert_eq!(check_name("").unwrap_err(), "it is empty");
        assert_eq!(
            check_name("a").unwrap_err(),
            "it is shorter than 2 characters"
        );
        assert_eq!(
            check_name("1abc").unwrap_err(),
            "it must start with a lowercase letter"
        );
        assert_eq!(
            check_name("Contoso").unwrap_err(),
            "it must start with a lowercase letter"
        );
        assert!(check_name("con_toso").unwrap_err().contains("'_'"));
        assert_eq!(check_name("abc-").unwrap_err(), "it must not end with '-'");
        assert!(check_name(&"a".repeat(25))
            .unwrap_err()
            .contains("25 characters"));
        assert!(check_name(&"a".repeat(24)).is_ok());
        assert_eq!(suggest_name("Contoso Ltd").as_deref(), Some("contoso-ltd"));
        assert_eq!(suggest_name("9lives_Inc-").as_deref(), Some("lives-inc"));
        assert_eq!(suggest_name("contoso"), None);
        assert_eq!(suggest_name("-"), None);
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.42.0.0/16").is_ok());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        assert!(parse_cidr("2001:db8::/32").is_ok());
        assert_eq!(
            parse_cidr("10.42.0.0").unwrap_err(),
            "it has no /prefix length"
        );
        assert!(parse_cidr("10.42.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(parse_cidr("10.420.0.0/16")
            .unwrap_err()
            .contains("not an IP"));
        assert_eq!(
            parse_cidr("10.42.1.7/16").unwrap_err(),
            "it has host bits set; the network is 10.42.0.0/16"
        );
    }

    #[test]
    fn strips_only_the_first_location() {
        assert_eq!(
            strip_first_location("did not find expected key at line 3 column 5, while parsing a block mapping at line 1 column 1"),
            "did not find expected key, while parsing a block mapping at line 1 column 1"
        );
        assert_eq!(strip_first_location("x at line y"), "x at line y");
        assert_eq!(
            split_path("members[0].name: invalid type: x"),
            ("members[0].name", "invalid type: x")
        );
        assert_eq!(split_path("invalid type: x"), ("", "invalid type: x"));
        assert_eq!(
            field_help("members[12].accounts[3].balance"),
            field_help("members[].accounts[].balance")
        );
        assert!(field_help("members[12].accounts[3].balance").is_some());
    }
}
