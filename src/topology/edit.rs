//! Byte-preserving edits of a topology file: add or remove one member and leave every
//! other byte (comments, blank lines, quoting, key order) exactly as it was.
//!
//! Edits are line-based and located with yaml-rust2's event positions. Every result is
//! re-parsed and its YAML events compared with the original's, so an edit either changes
//! exactly that member or is refused with [`EditError::Unsafe`]; it never corrupts a file.

use super::balance::parse_balance;
use super::spans::LineMap;
use super::validate::{check_name, flow_too_deep, MAX_FLOW_DEPTH, MAX_NODES_PER_ROLE};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A member to append with [`add_member`]. Balances are text, as in the file
/// (`"1000 ether"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    pub accounts: Vec<(String, String)>,
    /// A member another operator runs (`consort admit`, `consort join`).
    pub external: Option<NewExternal>,
}

/// The `external:` block of a [`NewMember`], and the address of each of its accounts (in
/// the order of `accounts`: its operator holds their keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExternal {
    pub signers: Vec<String>,
    pub enodes: Vec<String>,
    pub invitation: Option<String>,
    pub account_addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the topology is not valid YAML ({message}); run `consort validate` to see where, fix it, then retry")]
    Yaml { message: String },
    #[error("the topology's top level is not a block mapping (`key: value` lines); consort can only edit block-style topology files: edit it by hand")]
    NotBlockMapping,
    #[error("the topology has no `members:` list at the top level; add `members:` and retry")]
    NoMembers,
    #[error("`members:` on line {line} is {found}, not a list of members; make it a block list (`- name: ...` lines) and retry")]
    NotAList { line: usize, found: String },
    #[error("`members:` on line {line} is written in flow style (`[...]`); consort edits only block lists with one `- name: ...` item per member: rewrite it that way, or edit the file by hand")]
    FlowStyle { line: usize },
    #[error("a member named {name:?} already exists (line {line}); pick another name")]
    DuplicateMember { name: String, line: usize },
    #[error("there is no member named {name:?} in the topology (members: {known})")]
    UnknownMember { name: String, known: String },
    #[error("invalid {kind} name {name:?}: {reason}; names are 2 to 24 characters: a lowercase letter first, then lowercase letters, digits or '-'")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("invalid balance {balance:?} for account {account:?}: {reason}; write it like \"1000 ether\"")]
    InvalidBalance {
        account: String,
        balance: String,
        reason: String,
    },
    #[error(
        "the new member lists account {name:?} twice; account names must be unique within a member"
    )]
    DuplicateAccount { name: String },
    #[error("member {name:?} asks for {count} {what}; the limit is {MAX_NODES_PER_ROLE}")]
    TooMany {
        name: String,
        what: &'static str,
        count: u32,
    },
    #[error("could not {action} member {name:?} without disturbing the rest of the topology ({detail}); edit the file by hand")]
    Unsafe {
        action: &'static str,
        name: String,
        detail: String,
    },
}

/// Appends `m` as the last item of `members:`, in the file's indentation and line-ending
/// style. Everything else stays byte for byte.
pub fn add_member(source: &str, m: &NewMember) -> Result<String, EditError> {
    check_new_member(m)?;
    let doc = Doc::parse(source)?;
    let members = doc.members()?;
    if let Some(item) = members
        .items
        .iter()
        .find(|it| it.name.as_deref() == Some(&m.name))
    {
        return Err(EditError::DuplicateMember {
            name: m.name.clone(),
            line: item.name_line,
        });
    }
    let lines = Lines::new(source);
    let style = doc.style(&members);
    let nl = if source.contains("\r\n") {
        "\r\n"
    } else if source.contains('\r') && !source.contains('\n') {
        "\r"
    } else {
        "\n"
    };
    let block = render_member(m, &style, nl);

    // Byte offset to insert at, and whether a line break must come first.
    let (at, lead) = match members.items.last() {
        Some(last) => {
            let (_, end) = doc.item_lines(&lines, &members, last)?;
            let offset = lines.end_of(end);
            (offset, !lines.has_break(end))
        }
        // `members:` with nothing after it: the first item goes below the key line and
        // the comment lines indented under it (which removing the item would take along).
        None => {
            let mut last = members.key_line;
            for l in last + 1..=lines.count() {
                let (indent, blank, comment) = lines.shape(l);
                if blank {
                    continue;
                }
                if !(comment && indent > style.dash) {
                    break;
                }
                last = l;
            }
            (lines.end_of(last), !lines.has_break(last))
        }
    };
    let mut out = String::with_capacity(source.len() + block.len() + 2);
    out.push_str(&source[..at]);
    if lead {
        out.push_str(nl);
        out.push_str(block.strip_suffix(nl).unwrap_or(&block));
    } else {
        out.push_str(&block);
    }
    out.push_str(&source[at..]);

    verify_add(&doc, &out, m).map_err(|detail| EditError::Unsafe {
        action: "add",
        name: m.name.clone(),
        detail,
    })?;
    Ok(out)
}

/// Removes the block of member `name` (its `- name:` line through its last line, comment
/// lines inside it included). Everything else stays byte for byte.
pub fn remove_member(source: &str, name: &str) -> Result<String, EditError> {
    let doc = Doc::parse(source)?;
    let members = doc.members()?;
    let Some((index, item)) = members
        .items
        .iter()
        .enumerate()
        .find(|(_, it)| it.name.as_deref() == Some(name))
    else {
        let known: Vec<&str> = members
            .items
            .iter()
            .filter_map(|it| it.name.as_deref())
            .collect();
        return Err(EditError::UnknownMember {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    let lines = Lines::new(source);
    let (first, last) = doc.item_lines(&lines, &members, item)?;
    let mut start = lines.start_of(first);
    let end = lines.end_of(last);
    if !lines.has_break(last) && first > 1 {
        // The block ends the file without a line break: take the break before it instead,
        // so the line above keeps ending the file the same way.
        start = lines.end_of(first - 1) - lines.break_len(first - 1);
    }
    let out = format!("{}{}", &source[..start], &source[end..]);

    verify_remove(&doc, &out, index).map_err(|detail| EditError::Unsafe {
        action: "remove",
        name: name.to_string(),
        detail,
    })?;
    Ok(out)
}

fn check_new_member(m: &NewMember) -> Result<(), EditError> {
    let name_ok = |kind: &'static str, name: &str| {
        check_name(name).map_err(|reason| EditError::InvalidName {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    name_ok("member", &m.name)?;
    for (what, count) in [("validators", m.validators), ("tx_nodes", m.tx_nodes)] {
        if count > MAX_NODES_PER_ROLE {
            return Err(EditError::TooMany {
                name: m.name.clone(),
                what,
                count,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (account, balance) in &m.accounts {
        name_ok("account", account)?;
        if !seen.insert(account.as_str()) {
            return Err(EditError::DuplicateAccount {
                name: account.clone(),
            });
        }
        parse_balance(balance).map_err(|reason| EditError::InvalidBalance {
            account: account.clone(),
            balance: balance.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// The `-` (line, column) of the list item whose content starts at (`line`, `col`): on
/// the same line before it, or alone on the closest non-blank, non-comment line above.
fn find_dash(lines: &Lines, line: usize, col: usize) -> Option<(usize, usize)> {
    let dash_in = |text: &str, upto: usize| {
        let prefix: String = text.chars().take(upto).collect();
        let d = prefix.chars().take_while(|c| *c == ' ').count();
        let mut rest = prefix.chars().skip(d);
        (rest.next() == Some('-') && rest.all(|c| c == ' ')).then_some(d)
    };
    if let Some(d) = dash_in(lines.text(line), col) {
        return Some((line, d));
    }
    let above = (1..line).rev().find(|&l| {
        let (_, blank, comment) = lines.shape(l);
        !blank && !comment
    })?;
    let text = lines.text(above);
    let content = text.split(" #").next().unwrap_or(text).trim_end();
    dash_in(content, content.chars().count()).map(|d| (above, d))
}

/// Words YAML would read as something other than a string.
fn yaml_scalar(name: &str) -> String {
    const SPECIAL: &[&str] = &["null", "true", "false", "yes", "no", "on", "off"];
    if SPECIAL.contains(&name) {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

/// Columns (0-based) the file uses for member items and their accounts.
struct Style {
    dash: usize,
    key: usize,
    account_dash: usize,
    account_key: usize,
}

fn render_member(m: &NewMember, s: &Style, nl: &str) -> String {
    let pad = |n: usize| " ".repeat(n);
    let mut out = format!(
        "{}-{}name: {}{nl}",
        pad(s.dash),
        pad(s.key - s.dash - 1),
        yaml_scalar(&m.name)
    );
    out.push_str(&format!("{}validators: {}{nl}", pad(s.key), m.validators));
    out.push_str(&format!("{}tx_nodes: {}{nl}", pad(s.key), m.tx_nodes));
    if !m.accounts.is_empty() {
        out.push_str(&format!("{}accounts:{nl}", pad(s.key)));
        for (name, balance) in &m.accounts {
            out.push_str(&format!(
                "{}-{}name: {}{nl}{}balance: {}{nl}",
                pad(s.account_dash),
                pad(s.account_key - s.account_dash - 1),
                yaml_scalar(name),
                pad(s.account_key),
                super::balance::balance_text(balance)
            ));
            if let Some(ext) = &m.external {
                if let Some(a) = ext.account_addresses.get(out_accounts(&m.accounts, name)) {
                    out.push_str(&format!("{}address: {}{nl}", pad(s.account_key), a));
                }
            }
        }
    }
    if let Some(ext) = &m.external {
        out.push_str(&format!("{}external:{nl}", pad(s.key)));
        if let Some(id) = &ext.invitation {
            out.push_str(&format!("{}invitation: \"{id}\"{nl}", pad(s.key + 2)));
        }
        for (key, list) in [("signers", &ext.signers), ("enodes", &ext.enodes)] {
            if list.is_empty() {
                out.push_str(&format!("{}{key}: []{nl}", pad(s.key + 2)));
                continue;
            }
            out.push_str(&format!("{}{key}:{nl}", pad(s.key + 2)));
            for v in list {
                out.push_str(&format!("{}- {}{nl}", pad(s.key + 4), yaml_scalar(v)));
            }
        }
    }
    out
}

/// Index of account `name` in `accounts`.
fn out_accounts(accounts: &[(String, String)], name: &str) -> usize {
    accounts
        .iter()
        .position(|(n, _)| n == name)
        .unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------
// Lines of the source, with byte offsets.

struct Lines<'a> {
    src: &'a str,
    /// Byte offset where each line starts; line `n` (1-based) is `starts[n - 1]`.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(src: &'a str) -> Self {
        // Breaks as in `LineMap`: \n, \r\n and a lone \r.
        let mut starts = vec![0];
        let bytes = src.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            let is_break = *b == b'\n' || (*b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if is_break {
                starts.push(i + 1);
            }
        }
        if starts.last() == Some(&src.len()) && starts.len() > 1 {
            starts.pop();
        }
        Lines { src, starts }
    }

    fn count(&self) -> usize {
        self.starts.len()
    }

    fn start_of(&self, line: usize) -> usize {
        self.starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.src.len())
    }

    /// Offset just past `line`'s line break (or the end of the file).
    fn end_of(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.src.len())
    }

    /// Text of `line` without its line break.
    fn text(&self, line: usize) -> &'a str {
        let raw = self
            .src
            .get(self.start_of(line)..self.end_of(line))
            .unwrap_or("");
        &raw[..raw.len() - self.break_len(line)]
    }

    fn has_break(&self, line: usize) -> bool {
        self.break_len(line) > 0
    }

    fn break_len(&self, line: usize) -> usize {
        let raw = self
            .src
            .get(self.start_of(line)..self.end_of(line))
            .unwrap_or("");
        if raw.ends_with("\r\n") {
            2
        } else if raw.ends_with('\n') || raw.ends_with('\r') {
            1
        } else {
            0
        }
    }

    /// (indentation in columns, is blank, is a comment).
    fn shape(&self, line: usize) -> (usize, bool, bool) {
        let t = self.text(line);
        let indent = t.chars().take_while(|c| *c == ' ').count();
        let rest = t.trim_start();
        (indent, rest.is_empty(), rest.starts_with('#'))
    }
}

// ---------------------------------------------------------------------------------------
// The document as a tree of nodes with positions and event ranges.

#[derive(Debug)]
enum Kind {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

/// A position with lines counted as in [`LineMap`] (yaml-rust2's own line numbers count
/// breaks slightly differently; its char index is exact).
#[derive(Debug, Clone, Copy)]
struct Mark {
    index: usize,
    line: usize,
    col: usize,
}

impl Mark {
    fn index(&self) -> usize {
        self.index
    }
    /// 1-based.
    fn line(&self) -> usize {
        self.line
    }
    /// 0-based, in characters.
    fn col(&self) -> usize {
        self.col
    }
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    mark: Mark,
    /// Index range of this node's events in [`Doc::events`] (inclusive).
    first_event: usize,
    last_event: usize,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find_map(|(k, v)| match &k.kind {
                Kind::Scalar(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    fn key_of(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find_map(|(k, _)| match &k.kind {
                Kind::Scalar(s) if s == key => Some(k),
                _ => None,
            }),
            _ => None,
        }
    }

    fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Position of the first scalar inside (for a block mapping: its first key).
    fn first_mark(&self) -> Mark {
        match &self.kind {
            Kind::Map(entries) => entries.first().map_or(self.mark, |(k, _)| k.first_mark()),
            _ => self.mark,
        }
    }
}

#[derive(Default)]
struct Collect {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Collect {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.events.push((ev, mark));
    }
}

struct Doc<'a> {
    src: &'a str,
    events: Vec<(Event, Marker)>,
    root: Node,
}

struct MemberItem {
    name: Option<String>,
    name_line: usize,
    /// Where the item's content starts: 1-based line, 0-based column (the first key of a
    /// block mapping, else the node itself).
    first_line: usize,
    first_col: usize,
    index: usize,
}

struct Members {
    key_line: usize,
    key_col: usize,
    /// Column of the items' `-`; `None` while the list is empty.
    dash: Option<usize>,
    items: Vec<MemberItem>,
}

fn events_of(src: &str) -> Result<Vec<(Event, Marker)>, EditError> {
    if flow_too_deep(src).is_some() {
        return Err(EditError::Yaml {
            message: format!("brackets are nested more than {MAX_FLOW_DEPTH} levels deep"),
        });
    }
    // serde_yaml first: it bounds nesting depth before yaml-rust2 recurses.
    serde_yaml::from_str::<super::raw::Peek>(src).map_err(|e| EditError::Yaml {
        message: e.to_string(),
    })?;
    let mut rx = Collect::default();
    Parser::new_from_str(src)
        .load(&mut rx, false)
        .map_err(|e| EditError::Yaml {
            message: e.to_string(),
        })?;
    Ok(rx.events)
}

fn build(events: &[(Event, Marker)], lines: &LineMap, i: &mut usize) -> Option<Node> {
    let (ev, marker) = events.get(*i)?;
    let pos = lines.pos(marker.index());
    let mark = Mark {
        index: marker.index(),
        line: pos.line,
        col: pos.column - 1,
    };
    let first_event = *i;
    *i += 1;
    let kind = match ev {
        Event::Scalar(s, ..) => Kind::Scalar(s.clone()),
        Event::Alias(_) => Kind::Alias,
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            while !matches!(events.get(*i), Some((Event::SequenceEnd, _)) | None) {
                items.push(build(events, lines, i)?);
            }
            *i += 1;
            Kind::Seq(items)
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            while !matches!(events.get(*i), Some((Event::MappingEnd, _)) | None) {
                let k = build(events, lines, i)?;
                let v = build(events, lines, i)?;
                entries.push((k, v));
            }
            *i += 1;
            Kind::Map(entries)
        }
        _ => return None,
    };
    Some(Node {
        kind,
        mark,
        first_event,
        last_event: i.saturating_sub(1),
    })
}

impl<'a> Doc<'a> {
    fn parse(src: &'a str) -> Result<Self, EditError> {
        let events = events_of(src)?;
        let start = events
            .iter()
            .position(|(e, _)| *e == Event::DocumentStart)
            .map_or(events.len(), |p| p + 1);
        let mut i = start;
        let root = build(&events, &LineMap::new(src), &mut i).ok_or(EditError::NotBlockMapping)?;
        let is_flow = src.chars().nth(root.mark.index()).is_some_and(|c| c == '{');
        if !matches!(root.kind, Kind::Map(_)) || is_flow {
            return Err(EditError::NotBlockMapping);
        }
        Ok(Doc { src, events, root })
    }

    /// Whether only blanks or a comment follow the key `k` and its `:` on its line.
    fn rest_of_line_empty(&self, k: &Node) -> bool {
        let line = self
            .src
            .split('\n')
            .nth(k.mark.line().saturating_sub(1))
            .unwrap_or("");
        let after_key: String = line.chars().skip(k.mark.col()).collect();
        let rest = after_key.split_once(':').map_or("", |(_, r)| r).trim();
        rest.is_empty() || rest.starts_with('#')
    }

    fn char_at(&self, m: Mark) -> Option<char> {
        self.src.chars().nth(m.index())
    }

    fn members(&self) -> Result<Members, EditError> {
        let key = self.root.key_of("members").ok_or(EditError::NoMembers)?;
        let value = self.root.get("members").ok_or(EditError::NoMembers)?;
        let key_line = key.mark.line();
        let key_col = key.mark.col();
        let items = match &value.kind {
            Kind::Seq(items) => {
                if self.char_at(value.mark) == Some('[') {
                    return Err(EditError::FlowStyle { line: key_line });
                }
                items
            }
            // `members:` with nothing (or only a comment) after it on its line.
            Kind::Scalar(s) if s.is_empty() && self.rest_of_line_empty(key) => {
                return Ok(Members {
                    key_line,
                    key_col,
                    dash: None,
                    items: Vec::new(),
                })
            }
            Kind::Scalar(s) => {
                return Err(EditError::NotAList {
                    line: key_line,
                    found: if s.is_empty() || s == "~" || s == "null" {
                        "null".to_string()
                    } else {
                        format!("the text {s:?}")
                    },
                })
            }
            Kind::Map(_) => {
                return Err(EditError::NotAList {
                    line: key_line,
                    found: "a mapping".to_string(),
                })
            }
            Kind::Alias => {
                return Err(EditError::NotAList {
                    line: key_line,
                    found: "an alias".to_string(),
                })
            }
        };
        let members = items
            .iter()
            .enumerate()
            .map(|(index, it)| {
                let name = it.get("name");
                let start = self.content_mark(it);
                MemberItem {
                    name: name.and_then(Node::scalar).map(str::to_string),
                    name_line: name.map_or(start.line(), |n| n.mark.line()),
                    first_line: start.line(),
                    first_col: start.col(),
                    index,
                }
            })
            .collect::<Vec<_>>();
        let lines = Lines::new(self.src);
        let dash = members
            .first()
            .and_then(|it| find_dash(&lines, it.first_line, it.first_col))
            .map(|(_, d)| d);
        if dash.is_none() && !members.is_empty() {
            return Err(EditError::Unsafe {
                action: "edit",
                name: String::new(),
                detail: "could not find the `-` of the first member".into(),
            });
        }
        Ok(Members {
            key_line,
            key_col,
            dash,
            items: members,
        })
    }

    /// Where a list item's content starts: first key of a block mapping, else the node.
    fn content_mark(&self, n: &Node) -> Mark {
        match n.kind {
            Kind::Map(_) if self.char_at(n.mark) != Some('{') => n.first_mark(),
            _ => n.mark,
        }
    }

    fn member_nodes(&self) -> &[Node] {
        match self.root.get("members").map(|v| &v.kind) {
            Some(Kind::Seq(items)) => items,
            _ => &[],
        }
    }

    /// Indentation to copy: from the first member and the first list of accounts.
    fn style(&self, members: &Members) -> Style {
        let dash = members.dash.unwrap_or(members.key_col + 2);
        let nodes = self.member_nodes();
        let key = nodes
            .first()
            .filter(|n| matches!(n.kind, Kind::Map(_)) && self.char_at(n.mark) != Some('{'))
            .map(|n| n.first_mark().col())
            .filter(|k| *k >= dash + 2)
            .unwrap_or(dash + 2);
        let step = key - dash;
        let lines = Lines::new(self.src);
        let accounts = nodes.iter().find_map(|n| {
            let list = n.get("accounts")?;
            let Kind::Seq(items) = &list.kind else {
                return None;
            };
            if self.char_at(list.mark) == Some('[') {
                return None;
            }
            let first = items
                .first()
                .filter(|a| matches!(a.kind, Kind::Map(_)) && self.char_at(a.mark) != Some('{'))?;
            let akey = n.key_of("accounts")?.mark.col();
            let start = first.first_mark();
            let (_, adash) = find_dash(&lines, start.line(), start.col())?;
            let akk = start.col();
            (adash >= akey && akk >= adash + 2).then(|| (adash - akey, akk - adash))
        });
        let (adash_off, akey_off) =
            accounts.unwrap_or((dash.saturating_sub(members.key_col), step));
        Style {
            dash,
            key,
            account_dash: key + adash_off,
            account_key: key + adash_off + akey_off,
        }
    }

    /// First and last line of a member item's block: from its `-` line to the last line
    /// indented deeper than the `-` before the next line that is not (the next item or
    /// key). Blank and comment lines in between belong to it; after its last deeper line
    /// they do not.
    fn item_lines(
        &self,
        lines: &Lines,
        members: &Members,
        item: &MemberItem,
    ) -> Result<(usize, usize), EditError> {
        let unsafe_ = |detail: String| EditError::Unsafe {
            action: "edit",
            name: item.name.clone().unwrap_or_default(),
            detail,
        };
        let (dash_line, dash) = find_dash(lines, item.first_line, item.first_col)
            .ok_or_else(|| unsafe_(format!("no `-` found for member #{}", item.index + 1)))?;
        if Some(dash) != members.dash {
            return Err(unsafe_(format!(
                "the `-` of member #{} is not aligned with the first one",
                item.index + 1
            )));
        }
        let mut last = dash_line;
        for l in dash_line + 1..=lines.count() {
            let (indent, blank, comment) = lines.shape(l);
            if blank || (comment && indent <= dash) {
                // Inside the block only if deeper content follows; decided below.
                continue;
            }
            if !comment && indent <= dash {
                break;
            }
            last = l;
        }
        Ok((dash_line, last))
    }

    /// Events without positions, for comparing documents.
    fn plain_events(&self) -> Vec<Event> {
        self.events.iter().map(|(e, _)| e.clone()).collect()
    }
}

/// The event an empty `members:` reads as.
fn empty_scalar() -> Event {
    Event::Scalar(String::new(), TScalarStyle::Plain, 0, None)
}

fn verify_remove(before: &Doc, after_src: &str, index: usize) -> Result<(), String> {
    let nodes = before.member_nodes();
    let removed = nodes.get(index).ok_or("the member vanished")?;
    let mut expected = before.plain_events();
    if nodes.len() == 1 {
        // The only member gone: `members:` is left with nothing, an empty scalar.
        let seq = before.root.get("members").ok_or("members vanished")?;
        expected.splice(seq.first_event..=seq.last_event, [empty_scalar()]);
    } else {
        expected.drain(removed.first_event..=removed.last_event);
    }
    let after: Vec<Event> = events_of(after_src)
        .map_err(|e| format!("the result would not parse: {e}"))?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    (after == expected)
        .then_some(())
        .ok_or_else(|| "the rest of the document would change".to_string())
}

fn verify_add(before: &Doc, after_src: &str, m: &NewMember) -> Result<(), String> {
    let after = Doc::parse(after_src).map_err(|e| format!("the result would not parse: {e}"))?;
    let nodes = after.member_nodes();
    let n_before = before.member_nodes().len();
    if nodes.len() != n_before + 1 {
        return Err(format!(
            "expected {} members afterwards, found {}",
            n_before + 1,
            nodes.len()
        ));
    }
    let added = nodes.last().ok_or("no members afterwards")?;
    check_added(added, m)?;
    let mut rest = after.plain_events();
    if n_before == 0 {
        // An empty `members:` became a one-item list.
        let seq = after.root.get("members").ok_or("members vanished")?;
        rest.splice(seq.first_event..=seq.last_event, [empty_scalar()]);
    } else {
        rest.drain(added.first_event..=added.last_event);
    }
    (rest == before.plain_events())
        .then_some(())
        .ok_or_else(|| "the rest of the document would change".to_string())
}

/// The appended node says exactly what `m` asked for.
fn check_added(node: &Node, m: &NewMember) -> Result<(), String> {
    let text = |n: &Node, k: &str| n.get(k).and_then(Node::scalar).map(str::to_string);
    let ok = text(node, "name").as_deref() == Some(m.name.as_str())
        && text(node, "validators") == Some(m.validators.to_string())
        && text(node, "tx_nodes") == Some(m.tx_nodes.to_string());
    let accounts: Vec<(String, String)> = match node.get("accounts").map(|a| &a.kind) {
        Some(Kind::Seq(items)) => items
            .iter()
            .map(|a| {
                (
                    text(a, "name").unwrap_or_default(),
                    text(a, "balance").unwrap_or_default(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let wanted: Vec<(String, String)> = m
        .accounts
        .iter()
        .map(|(n, b)| (n.clone(), super::balance::balance_text(b)))
        .collect();
    (ok && accounts == wanted)
        .then_some(())
        .ok_or_else(|| "the new member did not read back as written".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::parse;
    use std::path::Path;

    const SRC: &str = "\
# A consortium.
network:
  name: tradelane   # the name
  chain_id: 707070
members:
  # first comes contoso
  - name: contoso
    validators: 2   # two signers
    # tx_nodes: 1
    accounts:
    - name: treasury
      balance: 5000000 ether

  - name: fabrikam
    validators: 1
    accounts: [{name: ops, balance: 1 ether}]
# provider below
provider:
  local: {}
";

    fn new_member(name: &str) -> NewMember {
        NewMember {
            name: name.into(),
            validators: 1,
            tx_nodes: 1,
            accounts: vec![
                ("ops".into(), "100 ether".into()),
                ("fees".into(), "21 gwei".into()),
            ],
            external: None,
        }
    }

    #[test]
    fn add_then_remove_gives_back_the_original_bytes() {
        let added = add_member(SRC, &new_member("northwind")).unwrap();
        assert_ne!(added, SRC);
        assert!(added.starts_with(&SRC[..SRC.find("# provider below").unwrap()]));
        assert!(added.contains("  - name: northwind\n    validators: 1\n    tx_nodes: 1\n    accounts:\n    - name: ops\n      balance: 100 ether\n    - name: fees\n      balance: 21 gwei\n# provider below\n"));
        assert_eq!(remove_member(&added, "northwind").unwrap(), SRC);
    }

    #[test]
    fn balances_typed_on_the_command_line_are_written_in_the_files_style() {
        let mut m = new_member("northwind");
        m.accounts = vec![
            ("ops".into(), "100ether".into()),
            ("fees".into(), "21GWEI".into()),
        ];
        let added = add_member(SRC, &m).unwrap();
        assert!(added.contains("balance: 100 ether\n"), "{added}");
        assert!(added.contains("balance: 21 gwei\n"), "{added}");
    }

    #[test]
    fn added_member_loads_with_its_nodes_and_accounts() {
        let added = add_member(SRC, &new_member("northwind")).unwrap();
        let loaded = parse(Path::new("t.yaml"), added.as_bytes()).unwrap();
        let m = loaded.topology.member("northwind").unwrap();
        assert_eq!((m.validators, m.tx_nodes), (1, 1));
        assert_eq!(m.accounts.len(), 2);
        assert_eq!(m.accounts[1].balance, crate::topology::Wei(21_000_000_000));
        assert_eq!(loaded.topology.members.len(), 3);
    }

    #[test]
    fn remove_keeps_comments_outside_the_block() {
        let out = remove_member(SRC, "contoso").unwrap();
        assert_eq!(
            out,
            SRC.replace(
                "  - name: contoso\n    validators: 2   # two signers\n    # tx_nodes: 1\n    accounts:\n    - name: treasury\n      balance: 5000000 ether\n",
                ""
            )
        );
        assert!(out.contains("# first comes contoso\n\n  - name: fabrikam"));
        let out = remove_member(SRC, "fabrikam").unwrap();
        assert!(out.ends_with(
            "      balance: 5000000 ether\n\n# provider below\nprovider:\n  local: {}\n"
        ));
    }

    #[test]
    fn remove_unknown_member_names_it() {
        let e = remove_member(SRC, "tailspin").unwrap_err();
        assert_eq!(
            e.to_string(),
            "there is no member named \"tailspin\" in the topology (members: contoso, fabrikam)"
        );
    }

    #[test]
    fn add_existing_member_is_refused() {
        let e = add_member(SRC, &new_member("fabrikam")).unwrap_err();
        assert_eq!(
            e,
            EditError::DuplicateMember {
                name: "fabrikam".into(),
                line: 14
            }
        );
    }

    #[test]
    fn flow_style_members_are_refused_not_corrupted() {
        let src = "network: {name: x, chain_id: 7}\nmembers: [{name: a, validators: 1}]\nprovider: {local: {}}\n";
        assert_eq!(
            add_member(src, &new_member("wingtip")).unwrap_err(),
            EditError::FlowStyle { line: 2 }
        );
        assert_eq!(
            remove_member(src, "a").unwrap_err(),
            EditError::FlowStyle { line: 2 }
        );
        let src = "members:\n  []\n";
        assert_eq!(
            add_member(src, &new_member("wingtip")).unwrap_err(),
            EditError::FlowStyle { line: 1 }
        );
        assert_eq!(
            add_member("{members: []}", &new_member("wingtip")).unwrap_err(),
            EditError::NotBlockMapping
        );
    }

    #[test]
    fn invalid_input_is_refused() {
        let deep = format!("members: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            add_member(&deep, &new_member("wingtip")),
            Err(EditError::Yaml { .. })
        ));
        assert!(matches!(
            add_member("a: [", &new_member("wingtip")),
            Err(EditError::Yaml { .. })
        ));
        assert_eq!(
            add_member("network: {}\n", &new_member("wingtip")).unwrap_err(),
            EditError::NoMembers
        );
        assert!(matches!(
            add_member("members: 3\n", &new_member("wingtip")),
            Err(EditError::NotAList { line: 1, .. })
        ));
        assert!(matches!(
            add_member(SRC, &new_member("Bad")),
            Err(EditError::InvalidName { .. })
        ));
        let mut m = new_member("ok");
        m.accounts[1].1 = "5 eth".into();
        assert!(matches!(
            add_member(SRC, &m),
            Err(EditError::InvalidBalance { .. })
        ));
        m.accounts[1] = ("ops".into(), "1".into());
        assert!(matches!(
            add_member(SRC, &m),
            Err(EditError::DuplicateAccount { .. })
        ));
        m.accounts.clear();
        m.validators = 1000;
        assert!(matches!(
            add_member(SRC, &m),
            Err(EditError::TooMany { .. })
        ));
    }

    #[test]
    fn matches_indentation_crlf_and_missing_final_newline() {
        let src = "members:\n- name: a\n  validators: 1\n  accounts:\n      -   name: t\n          balance: 1\nprovider:\n  local: {}";
        let out = add_member(src, &new_member("wingtip")).unwrap();
        assert!(out.contains("\n- name: wingtip\n  validators: 1\n  tx_nodes: 1\n  accounts:\n      -   name: ops\n          balance: 100 ether\n"), "{out}");
        assert_eq!(remove_member(&out, "wingtip").unwrap(), src);

        let src = "members:\r\n    -   name: a\r\n        validators: 1";
        let out = add_member(src, &new_member("wingtip")).unwrap();
        // No accounts anywhere yet: nested lists copy the members list's indentation.
        assert_eq!(out, format!("{src}\r\n    -   name: wingtip\r\n        validators: 1\r\n        tx_nodes: 1\r\n        accounts:\r\n            -   name: ops\r\n                balance: 100 ether\r\n            -   name: fees\r\n                balance: 21 gwei"));
        assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
        // Removing the first keeps the rest, line endings included.
        assert_eq!(remove_member(&out, "a").unwrap(), "members:\r\n    -   name: wingtip\r\n        validators: 1\r\n        tx_nodes: 1\r\n        accounts:\r\n            -   name: ops\r\n                balance: 100 ether\r\n            -   name: fees\r\n                balance: 21 gwei");
    }

    #[test]
    fn empty_members_list_gets_its_first_item() {
        let src = "members:   # none yet\nprovider:\n  local: {}\n";
        let out = add_member(src, &new_member("wingtip")).unwrap();
        assert!(
            out.starts_with("members:   # none yet\n  - name: wingtip\n    validators: 1\n"),
            "{out}"
        );
        assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
        assert!(matches!(
            add_member("members: ~\n", &new_member("wingtip")),
            Err(EditError::NotAList { .. })
        ));
    }

    #[test]
    fn lone_carriage_returns_are_line_breaks() {
        let src = "members:\r  - name: contoso\r    validators: 1\r    tx_nodes: 1\rprovider:\r  local: {}\r";
        let out = add_member(src, &new_member("wingtip")).unwrap();
        assert!(
            out.contains("\r  - name: wingtip\r    validators: 1\r"),
            "{out:?}"
        );
        assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
        // Mixed: a lone \r inside an otherwise \n file.
        let src = "members:\n  - name: contoso\n    validators: 1\r    tx_nodes: 1\nprovider:\n  local: {}\n";
        let out = add_member(src, &new_member("wingtip")).unwrap();
        assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
        assert_eq!(remove_member(&out, "contoso").unwrap(), src.replace("  - name: contoso\n    validators: 1\r    tx_nodes: 1\n", "").replace("provider:", "  - name: wingtip\n    validators: 1\n    tx_nodes: 1\n    accounts:\n      - name: ops\n        balance: 100 ether\n      - name: fees\n        balance: 21 gwei\nprovider:"));
    }

    #[test]
    fn dash_alone_on_its_line() {
        let src = "members:\n  -\n    name: contoso\n    validators: 1\n  -   # fabrikam\n    name: fabrikam\n    validators: 1\nprovider: {local: {}}\n";
        let out = remove_member(src, "fabrikam").unwrap();
        assert_eq!(
            out,
            "members:\n  -\n    name: contoso\n    validators: 1\nprovider: {local: {}}\n"
        );
        let out = add_member(src, &new_member("wingtip")).unwrap();
        assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
    }

    #[test]
    fn special_words_are_quoted() {
        let mut m = new_member("null");
        m.accounts = vec![("true".into(), "1 ether".into())];
        let out = add_member(SRC, &m).unwrap();
        assert!(out.contains("- name: \"null\"\n"));
        assert!(out.contains("- name: \"true\"\n"));
        let loaded = parse(Path::new("t.yaml"), out.as_bytes()).unwrap();
        assert!(loaded.topology.member("null").is_some());
    }
}
