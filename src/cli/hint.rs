//! Hints: every `consort …` command consort suggests, in errors, warnings and success
//! lines alike, names the topology file in use when it is not the default, so it runs as
//! shown (`` `consort -f two.yaml start` ``). Human output goes through `say!`,
//! `say_err!` or `say_raw!` (or [`hint`]); machine output (JSON, env, TOML) does not.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The topology file when none is given.
const DEFAULT_FILE: &str = "consort.yaml";

static FILE: OnceLock<PathBuf> = OnceLock::new();

/// The topology file of this command (`-f`), set once as the command line is parsed.
pub(super) fn set_file(file: &Path) {
    let _ = FILE.set(file.to_path_buf());
}

/// `text` with its suggested commands naming the file in use (see [`name_the_file`]).
pub(super) fn hint(text: &str) -> String {
    match FILE.get() {
        Some(f) => name_the_file(text, f),
        None => text.to_string(),
    }
}

/// `println!` (through [`outln!`]) for human output: suggested commands name the file in use.
macro_rules! say {
    ($($arg:tt)*) => { outln!("{}", $crate::cli::hint::hint(&format!($($arg)*))) };
}

/// `eprintln!` for human output: suggested commands name the file in use.
macro_rules! say_err {
    ($($arg:tt)*) => { eprintln!("{}", $crate::cli::hint::hint(&format!($($arg)*))) };
}

/// `print!` (through [`out!`]) for human output: suggested commands name the file in use.
macro_rules! say_raw {
    ($($arg:tt)*) => { out!("{}", $crate::cli::hint::hint(&format!($($arg)*))) };
}

/// A message's suggested commands (`` `consort apply` ``) with the topology file in use, so
/// they run as shown: `` `consort -f two.yaml apply` ``. Commands that name a file already
/// are left as they are.
fn name_the_file(msg: &str, file: &std::path::Path) -> String {
    if is_default(file) {
        return msg.to_string();
    }
    let file = file.display().to_string();
    let quoted = if file.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
        format!("'{}'", file.replace('\'', r"'\''"))
    } else {
        file
    };
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("`consort ") {
        let (before, cmd) = rest.split_at(i + "`consort".len());
        out.push_str(before);
        let end = cmd.find('`').unwrap_or(cmd.len());
        let names_file = cmd[..end].contains(" -f ") || cmd[..end].contains(" --file");
        if !names_file {
            out.push_str(&format!(" -f {quoted}"));
        }
        rest = cmd;
    }
    out.push_str(rest);
    out
}

/// `consort.yaml` in the current directory, however it was written (`./consort.yaml`, an
/// absolute path): commands without -f read it.
fn is_default(file: &Path) -> bool {
    if file == Path::new(DEFAULT_FILE) {
        return true;
    }
    if file.file_name() != Some(DEFAULT_FILE.as_ref()) {
        return false;
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(dir), std::env::current_dir()) {
        (Ok(dir), Ok(cwd)) => std::fs::canonicalize(cwd).is_ok_and(|cwd| cwd == dir),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::name_the_file;
    use std::path::Path;

    #[test]
    fn suggested_commands_name_the_file_in_use() {
        let msg = "nothing is deployed (run `consort apply`); or `consort init -f x.yaml --force`";
        assert_eq!(name_the_file(msg, Path::new("consort.yaml")), msg);
        assert_eq!(name_the_file(msg, Path::new("./consort.yaml")), msg);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(name_the_file(msg, &cwd.join("consort.yaml")), msg);
        assert_eq!(
            name_the_file("`consort plan`", Path::new("/nowhere/consort.yaml")),
            "`consort -f /nowhere/consort.yaml plan`"
        );
        assert_eq!(
            name_the_file(msg, Path::new("two.yaml")),
            "nothing is deployed (run `consort -f two.yaml apply`); or `consort init -f x.yaml --force`"
        );
        assert_eq!(
            name_the_file("`consort plan`", Path::new("my dir/t.yaml")),
            "`consort -f 'my dir/t.yaml' plan`"
        );
    }
}
