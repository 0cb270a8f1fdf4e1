//! Where things are in the file: a path -> position index built from yaml-rust2's event
//! parser, so semantic errors found after deserialising can still point at a line.
//!
//! Paths use serde_yaml's spelling (`network.chain_id`, `members[1].accounts[0].balance`),
//! so a path from a serde_yaml error can be looked up too.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line, 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Char index -> (line, column), with the line breaks both YAML parsers agree on: `\n`,
/// `\r\n` and a lone `\r`. (libyaml also breaks lines at U+0085, U+2028 and U+2029 and
/// yaml-rust2 does not, so their own line numbers can disagree; their char indices do not.)
#[derive(Debug, Default)]
pub struct LineMap {
    starts: Vec<usize>,
}

impl LineMap {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        let mut chars = text.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            let is_break = match c {
                '\n' => true,
                '\r' => chars.peek().map(|(_, n)| *n) != Some('\n'),
                _ => false,
            };
            if is_break {
                starts.push(i + 1);
            }
        }
        LineMap { starts }
    }

    pub fn pos(&self, char_index: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= char_index).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        Pos {
            line,
            column: char_index - start + 1,
        }
    }
}

/// Text of 1-based `line` (breaks as in [`LineMap`]), without its break or trailing blanks.
pub fn line_text(text: &str, line: usize) -> Option<&str> {
    let mut n = 1;
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let end = match c {
            '\n' => Some(i + 1),
            '\r' if iter.peek().map(|(_, n)| *n) == Some('\n') => None,
            '\r' => Some(i + 1),
            _ => None,
        };
        if let Some(next) = end {
            if n == line {
                return Some(text[start..i].trim_end());
            }
            n += 1;
            start = next;
        }
    }
    (n == line).then(|| text[start..].trim_end())
}

#[derive(Debug, Default)]
pub struct SpanIndex {
    /// Start of each value: a scalar, the first `-` of a block list, the first key of a
    /// block mapping.
    values: HashMap<String, Pos>,
    /// The key of each mapping entry, by the entry's path.
    keys: HashMap<String, Pos>,
    /// A key seen twice in one mapping: path -> (first, second) key positions.
    duplicates: HashMap<String, (Pos, Pos)>,
}

impl SpanIndex {
    /// Builds the index; on a syntax error it keeps what it saw before it (positions are a
    /// help, never a requirement).
    pub fn build(text: &str) -> SpanIndex {
        let mut rx = Receiver {
            lines: LineMap::new(text),
            ..Receiver::default()
        };
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rx, false);
        rx.index
    }

    /// Position of the value at `path`, else of its nearest ancestor that has one.
    pub fn value(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            p = parent(p)?;
        }
    }

    /// Position of the key of the entry at `path` (falls back like [`Self::value`]).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }

    /// Exactly the value at `path`, no fallback.
    pub fn value_exact(&self, path: &str) -> Option<Pos> {
        self.values.get(path).copied()
    }

    pub fn duplicate(&self, path: &str) -> Option<(Pos, Pos)> {
        self.duplicates.get(path).copied()
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> `` -> None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

pub fn child_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn child_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Mappings and lists nested deeper than this are not indexed.
const MAX_DEPTH: usize = 12;

enum Frame {
    Map {
        path: String,
        /// Key of the entry whose value comes next; `None` while a key is expected.
        key: Option<String>,
        seen: HashMap<String, Pos>,
        /// Position recorded once the first key is seen.
        positioned: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A complex (non-scalar) mapping key: nothing inside is indexed.
    Ignored {
        depth: usize,
    },
}

#[derive(Default)]
struct Receiver {
    index: SpanIndex,
    stack: Vec<Frame>,
    lines: LineMap,
}

impl Receiver {
    /// Path for the node about to start, or `None` if it is a mapping key.
    fn next_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map { path, key, .. }) => key.as_ref().map(|k| child_key(path, k)),
            Some(Frame::Seq { path, next }) => Some(child_index(path, *next)),
            Some(Frame::Ignored { .. }) => None,
        }
    }

    /// A node just finished: move the parent on to its next key or item.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => {
                // A finished complex key leaves the entry expecting its value under a
                // placeholder name; a finished value makes the map expect a key again.
                *key = match key {
                    None => Some("?".to_string()),
                    Some(_) => None,
                };
            }
            Some(Frame::Seq { next, .. }) => *next += 1,
            Some(Frame::Ignored { .. }) | None => {}
        }
    }

    fn on_scalar(&mut self, text: String, pos: Pos) {
        if let Some(Frame::Ignored { .. }) = self.stack.last() {
            return;
        }
        if let Some(Frame::Map {
            path,
            key: key @ None,
            seen,
            positioned,
        }) = self.stack.last_mut()
        {
            let entry = child_key(path, &text);
            if !*positioned {
                *positioned = true;
                self.index.values.entry(path.clone()).or_insert(pos);
            }
            if let Some(first) = seen.get(&text) {
                self.index
                    .duplicates
                    .entry(entry.clone())
                    .or_insert((*first, pos));
            } else {
                seen.insert(text.clone(), pos);
                self.index.keys.insert(entry, pos);
            }
            *key = Some(text);
            return;
        }
        if let Some(path) = self.next_path() {
            self.index.values.entry(path).or_insert(pos);
        }
        self.advance();
    }

    fn on_start(&mut self, is_map: bool, pos: Pos) {
        if let Some(Frame::Ignored { depth }) = self.stack.last_mut() {
            *depth += 1;
            return;
        }
        // Topology paths are a few levels deep; deeper nodes point at their ancestors
        // (which also keeps path strings from growing with the nesting).
        if self.stack.len() >= MAX_DEPTH {
            self.stack.push(Frame::Ignored { depth: 0 });
            return;
        }
        let Some(path) = self.next_path() else {
            self.stack.push(Frame::Ignored { depth: 0 });
            return;
        };
        if is_map {
            self.stack.push(Frame::Map {
                path,
                key: None,
                seen: HashMap::new(),
                positioned: false,
            });
        } else {
            self.index.values.entry(path.clone()).or_insert(pos);
            self.stack.push(Frame::Seq { path, next: 0 });
        }
    }

    fn on_end(&mut self, pos: Pos) {
        if let Some(Frame::Ignored { depth }) = self.stack.last_mut() {
            if *depth > 0 {
                *depth -= 1;
                return;
            }
        }
        if let Some(Frame::Map {
            path,
            positioned: false,
            ..
        }) = self.stack.last()
        {
            // `{}`: no key to point at, use where the mapping ended.
            self.index.values.entry(path.clone()).or_insert(pos);
        }
        self.stack.pop();
        self.advance();
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = self.lines.pos(mark.index());
        match ev {
            Event::Scalar(text, ..) => self.on_scalar(text, pos),
            Event::Alias(_) => self.on_scalar(String::from("*alias"), pos),
            Event::MappingStart(..) => self.on_start(true, pos),
            Event::SequenceStart(..) => self.on_start(false, pos),
            Event::MappingEnd | Event::SequenceEnd => self.on_end(pos),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "network:\n  name: tradelane # c\n  chain_id: 7\nmembers:\n  - name: contoso\n    accounts:\n    - name: t\n      balance: 5 ether\n  -\n    name: fab\n    name: again\nprovider:\n  local: {}\n  ? [complex]\n  : x\n";

    #[test]
    fn positions_of_values_keys_and_items() {
        let ix = SpanIndex::build(SRC);
        let p = |line, column| Some(Pos { line, column });
        assert_eq!(ix.value("network.name"), p(2, 9));
        assert_eq!(ix.key("network.chain_id"), p(3, 3));
        assert_eq!(ix.value("members"), p(5, 3));
        assert_eq!(ix.value("members[0]"), p(5, 5));
        assert_eq!(ix.value("members[0].accounts[0].balance"), p(8, 16));
        assert_eq!(ix.value("members[1].name"), p(10, 11));
        assert_eq!(ix.value("provider.local"), p(13, 11));
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(ix.value("members[1].tx_nodes"), p(10, 5));
        assert_eq!(ix.value_exact("members[1].tx_nodes"), None);
        assert_eq!(
            ix.duplicate("members[1].name"),
            Some((
                Pos {
                    line: 10,
                    column: 5
                },
                Pos {
                    line: 11,
                    column: 5
                }
            ))
        );
        // ...and at worst to the root.
        assert_eq!(ix.value("nowhere.at.all"), p(1, 1));
        assert_eq!(SpanIndex::default().value("network"), None);
    }

    #[test]
    fn broken_yaml_keeps_what_came_before() {
        let ix = SpanIndex::build("network:\n  name: x\n  bad: [\n");
        assert_eq!(ix.value("network.name"), Some(Pos { line: 2, column: 9 }));
    }

    #[test]
    fn line_map_and_text_agree() {
        let text = "a\r\nbé\rc\n\u{2028}d\n";
        let m = LineMap::new(text);
        assert_eq!(m.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(m.pos(4), Pos { line: 2, column: 2 });
        assert_eq!(m.pos(6), Pos { line: 3, column: 1 });
        assert_eq!(m.pos(9), Pos { line: 4, column: 2 });
        assert_eq!(
            m.pos(99),
            Pos {
                line: 5,
                column: 89
            }
        );
        let lines: Vec<_> = (1..=6).map(|l| line_text(text, l)).collect();
        assert_eq!(
            lines,
            [
                Some("a"),
                Some("bé"),
                Some("c"),
                Some("\u{2028}d"),
                Some(""),
                None
            ]
        );
        assert_eq!(line_text("x", 1), Some("x"));
        assert_eq!(line_text("", 1), Some(""));
        assert_eq!(line_text("x", 0), None);
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
