//! What the loader tells users: positioned diagnostics rendered like a compiler's.
//!
//! ```text
//! error: consort.yaml:7:11: invalid member name "Contoso": it must start with a lowercase letter
//!   |
//! 7 |   - name: Contoso
//!   |           ^^^^^^^
//!   = help: use lowercase letters, digits and '-', e.g. `name: contoso`
//! ```

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about a topology file. `line` and `column` are 1-based; `column` counts
/// characters. `snippet` is the text of `line` (without its line break).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub help: Option<String>,
    pub snippet: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        let gutter = self.line.map(|l| l.to_string().len()).unwrap_or(1);
        let pad = " ".repeat(gutter);
        if let (Some(line), Some(text)) = (self.line, &self.snippet) {
            let (shown, col) = window(text, self.column.unwrap_or(1));
            write!(f, "\n{pad} |\n{line} | {shown}")?;
            if self.column.is_some() {
                write!(f, "\n{pad} | {}", caret_line(&shown, col))?;
            }
        }
        if let Some(help) = &self.help {
            let mut lines = help.lines();
            if let Some(first) = lines.next() {
                write!(f, "\n{pad} = help: {first}")?;
            }
            for more in lines {
                write!(f, "\n{pad}         {more}")?;
            }
        }
        Ok(())
    }
}

/// At most `WINDOW` (100) characters of a long line, around `col`; returns the text and
/// the column within it.
fn window(text: &str, col: usize) -> (String, usize) {
    const WINDOW: usize = 100;
    let n = text.chars().count();
    if n <= WINDOW {
        return (text.to_string(), col);
    }
    let start = col.saturating_sub(WINDOW / 2).min(n - WINDOW);
    let mut shown: String = text.chars().skip(start).take(WINDOW).collect();
    let mut col = col - start;
    if start > 0 {
        shown.insert_str(0, "...");
        col += 3;
    }
    if start + WINDOW < n {
        shown.push_str("...");
    }
    (shown, col.max(1))
}

/// Spaces (tabs kept, so terminals align) up to `col`, then `^` under the token there.
fn caret_line(text: &str, col: usize) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    for _ in 1..col {
        match chars.next() {
            Some('\t') => out.push('\t'),
            Some(_) | None => out.push(' '),
        }
    }
    let rest: String = chars.collect();
    let len = token_len(&rest).max(1);
    out.push_str(&"^".repeat(len));
    out
}

/// Length in chars of the YAML token at the start of `rest`: a quoted string up to its
/// closing quote, else up to whitespace, a comment or a flow indicator.
fn token_len(rest: &str) -> usize {
    let mut chars = rest.chars();
    match chars.next() {
        None => 0,
        Some(q @ ('"' | '\'')) => match chars.position(|c| c == q) {
            Some(i) => i + 2,
            None => rest.chars().count(),
        },
        Some(_) => {
            let v: Vec<char> = rest.chars().collect();
            let key_colon =
                |i: usize| v.get(i) == Some(&':') && v.get(i + 1).is_none_or(|c| c.is_whitespace());
            let comment = |i: usize| v.get(i) == Some(&'#') && i > 0 && v[i - 1].is_whitespace();
            let n = (0..v.len())
                .take_while(|&i| {
                    !matches!(v[i], ',' | '[' | ']' | '{' | '}') && !key_colon(i) && !comment(i)
                })
                .count();
            let trailing = v[..n]
                .iter()
                .rev()
                .take_while(|c| c.is_whitespace())
                .count();
            n - trailing
        }
    }
}

/// The topology could not be loaded: every error found (and the warnings seen on the way).
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        let errors = self.errors().count();
        let warnings = self.diagnostics.len() - errors;
        if errors > 1 || warnings > 0 {
            let file = self
                .diagnostics
                .first()
                .map(|d| d.file.display().to_string())
                .unwrap_or_default();
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            write!(f, "\n\n{file}: {}", plural(errors, "error"))?;
            if warnings > 0 {
                write!(f, ", {}", plural(warnings, "warning"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: Option<usize>, column: Option<usize>, snippet: Option<&str>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: "consort.yaml".into(),
            line,
            column,
            message: "invalid member name \"Contoso\"".into(),
            help: Some("use lowercase\nsecond line".into()),
            snippet: snippet.map(str::to_string),
        }
    }

    #[test]
    fn renders_header_snippet_caret_and_help() {
        let d = diag(Some(7), Some(11), Some("  - name: Contoso # hi"));
        assert_eq!(
            d.to_string(),
            "error: consort.yaml:7:11: invalid member name \"Contoso\"\n  |\n7 |   - name: Contoso # hi\n  |           ^^^^^^^\n  = help: use lowercase\n          second line"
        );
    }

    #[test]
    fn renders_without_position() {
        let d = diag(None, None, None);
        assert_eq!(
            d.to_string(),
            "error: consort.yaml: invalid member name \"Contoso\"\n  = help: use lowercase\n          second line"
        );
    }

    #[test]
    fn long_lines_show_a_window_around_the_column() {
        let line = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let (shown, col) = window(&line, 301);
        assert_eq!(shown.chars().count(), 106);
        assert!(shown.starts_with("...") && shown.ends_with("..."));
        assert_eq!(shown.chars().nth(col - 1), Some('X'));
        let (shown, col) = window(&line, 1);
        assert_eq!((shown.chars().count(), col), (103, 1));
        let (shown, col) = window(&line, 601);
        assert_eq!(shown.chars().nth(col - 1), Some('b'));
        assert!(shown.starts_with("...") && !shown.ends_with("..."));
        assert_eq!(window("short", 99), ("short".to_string(), 99));
    }

    #[test]
    fn caret_handles_tabs_quotes_and_columns_past_the_end() {
        assert_eq!(caret_line("\tname: x", 8), "\t      ^");
        assert_eq!(caret_line("  name: \"a b\" # c", 9), "        ^^^^^");
        assert_eq!(caret_line("ab", 10), "         ^");
        assert_eq!(caret_line("", 1), "^");
        assert_eq!(caret_line("x", 0), "^");
        assert_eq!(caret_line("  validators: 2", 3), "  ^^^^^^^^^^");
        assert_eq!(caret_line("  balance: 5 eth  # x", 12), "           ^^^^^");
        assert_eq!(
            caret_line("  local: {base_port: 8, x: 1}", 22),
            "                     ^"
        );
        assert_eq!(caret_line("  url: http://x", 8), "       ^^^^^^^^");
    }
}
