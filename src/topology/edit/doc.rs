//! The topology source as lines with byte offsets, and as a tree of YAML nodes with
//! positions and event ranges: what edits locate members with.

use super::{find_dash, EditError, Style};
use crate::topology::spans::LineMap;
use crate::topology::validate::{flow_too_deep, MAX_FLOW_DEPTH};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

// ---------------------------------------------------------------------------------------
// Lines of the source, with byte offsets.

pub(super) struct Lines<'a> {
    pub(super) src: &'a str,
    /// Byte offset where each line starts; line `n` (1-based) is `starts[n - 1]`.
    pub(super) starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(src: &'a str) -> Self {
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

    pub(super) fn count(&self) -> usize {
        self.starts.len()
    }

    pub(super) fn start_of(&self, line: usize) -> usize {
        self.starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.src.len())
    }

    /// Offset just past `line`'s line break (or the end of the file).
    pub(super) fn end_of(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.src.len())
    }

    /// Text of `line` without its line break.
    pub(super) fn text(&self, line: usize) -> &'a str {
        let raw = self
            .src
            .get(self.start_of(line)..self.end_of(line))
            .unwrap_or("");
        &raw[..raw.len() - self.break_len(line)]
    }

    pub(super) fn has_break(&self, line: usize) -> bool {
        self.break_len(line) > 0
    }

    pub(super) fn break_len(&self, line: usize) -> usize {
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
    pub(super) fn shape(&self, line: usize) -> (usize, bool, bool) {
        let t = self.text(line);
        let indent = t.chars().take_while(|c| *c == ' ').count();
        let rest = t.trim_start();
        (indent, rest.is_empty(), rest.starts_with('#'))
    }
}

// ---------------------------------------------------------------------------------------
// The document as a tree of nodes with positions and event ranges.

#[derive(Debug)]
pub(super) enum Kind {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

/// A position with lines counted as in [`LineMap`] (yaml-rust2's own line numbers count
/// breaks slightly differently; its char index is exact).
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub(super) index: usize,
    pub(super) line: usize,
    pub(super) col: usize,
}

impl Mark {
    pub(super) fn index(&self) -> usize {
        self.index
    }
    /// 1-based.
    pub(super) fn line(&self) -> usize {
        self.line
    }
    /// 0-based, in characters.
    pub(super) fn col(&self) -> usize {
        self.col
    }
}

#[derive(Debug)]
pub(super) struct Node {
    pub(super) kind: Kind,
    pub(super) mark: Mark,
    /// Index range of this node's events in [`Doc::events`] (inclusive).
    pub(super) first_event: usize,
    pub(super) last_event: usize,
}

impl Node {
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find_map(|(k, v)| match &k.kind {
                Kind::Scalar(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub(super) fn key_of(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find_map(|(k, _)| match &k.kind {
                Kind::Scalar(s) if s == key => Some(k),
                _ => None,
            }),
            _ => None,
        }
    }

    pub(super) fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Position of the first scalar inside (for a block mapping: its first key).
    pub(super) fn first_mark(&self) -> Mark {
        match &self.kind {
            Kind::Map(entries) => entries.first().map_or(self.mark, |(k, _)| k.first_mark()),
            _ => self.mark,
        }
    }
}

#[derive(Default)]
pub(super) struct Collect {
    pub(super) events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Collect {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.events.push((ev, mark));
    }
}

pub(super) struct Doc<'a> {
    pub(super) src: &'a str,
    pub(super) events: Vec<(Event, Marker)>,
    pub(super) root: Node,
}

pub(super) struct MemberItem {
    pub(super) name: Option<String>,
    pub(super) name_line: usize,
    /// Where the item's content starts: 1-based line, 0-based column (the first key of a
    /// block mapping, else the node itself).
    pub(super) first_line: usize,
    pub(super) first_col: usize,
    pub(super) index: usize,
}

pub(super) struct Members {
    pub(super) key_line: usize,
    pub(super) key_col: usize,
    /// Column of the items' `-`; `None` while the list is empty.
    pub(super) dash: Option<usize>,
    pub(super) items: Vec<MemberItem>,
}

pub(super) fn events_of(src: &str) -> Result<Vec<(Event, Marker)>, EditError> {
    if flow_too_deep(src).is_some() {
        return Err(EditError::Yaml {
            message: format!("brackets are nested more than {MAX_FLOW_DEPTH} levels deep"),
        });
    }
    // serde_yaml first: it bounds nesting depth before yaml-rust2 recurses.
    serde_yaml::from_str::<crate::topology::raw::Peek>(src).map_err(|e| EditError::Yaml {
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

pub(super) fn build(events: &[(Event, Marker)], lines: &LineMap, i: &mut usize) -> Option<Node> {
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
    pub(super) fn parse(src: &'a str) -> Result<Self, EditError> {
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
    pub(super) fn rest_of_line_empty(&self, k: &Node) -> bool {
        let line = self
            .src
            .split('\n')
            .nth(k.mark.line().saturating_sub(1))
            .unwrap_or("");
        let after_key: String = line.chars().skip(k.mark.col()).collect();
        let rest = after_key.split_once(':').map_or("", |(_, r)| r).trim();
        rest.is_empty() || rest.starts_with('#')
    }

    pub(super) fn char_at(&self, m: Mark) -> Option<char> {
        self.src.chars().nth(m.index())
    }

    pub(super) fn members(&self) -> Result<Members, EditError> {
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
    pub(super) fn content_mark(&self, n: &Node) -> Mark {
        match n.kind {
            Kind::Map(_) if self.char_at(n.mark) != Some('{') => n.first_mark(),
            _ => n.mark,
        }
    }

    pub(super) fn member_nodes(&self) -> &[Node] {
        match self.root.get("members").map(|v| &v.kind) {
            Some(Kind::Seq(items)) => items,
            _ => &[],
        }
    }

    /// Indentation to copy: from the first member and the first list of accounts.
    pub(super) fn style(&self, members: &Members) -> Style {
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
    pub(super) fn item_lines(
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
    pub(super) fn plain_events(&self) -> Vec<Event> {
        self.events.iter().map(|(e, _)| e.clone()).collect()
    }
}
