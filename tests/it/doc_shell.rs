//! Running the shell blocks of the project's Markdown documents as written, so a document
//! cannot drift from what the binary does. [`shell_blocks`] finds the blocks; [`DocShell`]
//! runs their commands one by one, each in the directory the previous command of the same
//! terminal left it in, with the real `consort` binary first on `PATH` and the test geth.
//! Path substitutions (`/tmp/…` to a temp dir, `/path/to/consort` to this checkout) keep
//! parallel runs apart; nothing else of a command is changed. The operators walkthrough test
//! runs examples/separate-operators.md with it; tests/it/docs.rs runs README.md and the
//! other examples.

use crate::support::{geth, log_output};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// One fenced ```sh (or bash, shell, console) block of a Markdown document.
#[derive(Debug, Clone)]
pub struct ShellBlock {
    /// The last heading above it (without the `#`s).
    pub heading: String,
    /// 1-based line of its opening fence.
    pub line: usize,
    /// Its commands: one per line, `\` continuations joined, blank lines dropped.
    pub commands: Vec<String>,
}

/// The shell blocks of `markdown`, in order. Blocks of other languages (```text, ```yaml,
/// output shown to the reader) are not commands and are skipped.
pub fn shell_blocks(markdown: &str) -> Vec<ShellBlock> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(bool, usize, Vec<String>)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(lang)) => {
                let shell = matches!(lang.trim(), "sh" | "bash" | "shell" | "console");
                open = Some((shell, i + 1, Vec::new()));
            }
            (Some(_), Some(_)) => {
                let (shell, at, lines) = open.take().unwrap();
                if shell {
                    out.push(ShellBlock {
                        heading: heading.clone(),
                        line: at,
                        commands: join_continuations(&lines),
                    });
                }
            }
            (Some((_, _, lines)), None) => lines.push(line.to_string()),
            (None, None) => {
                if let Some(h) = line.strip_prefix('#') {
                    heading = h.trim_start_matches('#').trim().to_string();
                }
            }
        }
    }
    out
}

fn join_continuations(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in lines {
        let l = l.trim_start_matches("$ ");
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(l);
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
        }
    }
    out
}

/// Runs a document's commands as a reader at several terminals would: one working
/// directory per terminal name, kept between commands.
pub struct DocShell {
    substitutions: Vec<(String, String)>,
    cwd: BTreeMap<String, PathBuf>,
    start: PathBuf,
    scratch: tempfile::TempDir,
}

impl DocShell {
    /// `start`: where every terminal begins. `substitutions`: (text in the document,
    /// replacement), applied in order to every command.
    pub fn new(start: &Path, substitutions: Vec<(String, String)>) -> DocShell {
        DocShell {
            substitutions,
            cwd: BTreeMap::new(),
            start: start.to_path_buf(),
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// The command as it is run: the document's text with the substitutions applied, in
    /// order, each to the document's text only (never to what an earlier one put in).
    pub fn substituted(&self, command: &str) -> String {
        let mark = |i: usize| format!("\u{0}{i}\u{0}");
        let marked = self
            .substitutions
            .iter()
            .enumerate()
            .fold(command.to_string(), |c, (i, (from, _))| {
                c.replace(from, &mark(i))
            });
        self.substitutions
            .iter()
            .enumerate()
            .fold(marked, |c, (i, (_, to))| c.replace(&mark(i), to))
    }

    /// Runs `command` with `sh` at `terminal` (its working directory follows any `cd`).
    pub fn run(&mut self, terminal: &str, command: &str) -> Output {
        let cwd = self
            .cwd
            .get(terminal)
            .cloned()
            .unwrap_or_else(|| self.start.clone());
        let pwd_file = self.scratch.path().join("pwd");
        let _ = std::fs::remove_file(&pwd_file);
        let script = format!(
            "{}\n__rc=$?\npwd > '{}'\nexit $__rc\n",
            self.substituted(command),
            pwd_file.display()
        );
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_consort")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(&cwd)
            .env("PATH", path)
            .env("CONSORT_GETH", &geth().path)
            .env_remove("CONSORT_STATE_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run sh");
        if let Ok(p) = std::fs::read_to_string(&pwd_file) {
            self.cwd
                .insert(terminal.to_string(), PathBuf::from(p.trim_end()));
        }
        log_output(&format!("{terminal}$ {command}"), &out);
        out
    }
}

#[test]
fn shell_blocks_skip_output_and_join_continuations() {
    let md = "# T\n## Terminal A: x\n```sh\ncd /tmp\nconsort apply \\\n  --yes\n\n```\n```text\nnot run\n```\n## B\n```bash\n$ echo hi\n```\n";
    let b = shell_blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].heading, "Terminal A: x");
    assert_eq!(b[0].line, 3);
    assert_eq!(b[0].commands, vec!["cd /tmp", "consort apply    --yes"]);
    assert_eq!(b[1].heading, "B");
    assert_eq!(b[1].commands, vec!["echo hi"]);
    let sh = DocShell::new(
        Path::new("/"),
        vec![
            ("/tmp/op-a".into(), "/tmp/x1".into()),
            ("/tmp/".into(), "/tmp/x2/".into()),
        ],
    );
    assert_eq!(
        sh.substituted("cd /tmp/op-a && cp /tmp/i.json ."),
        "cd /tmp/x1 && cp /tmp/x2/i.json ."
    );
}
