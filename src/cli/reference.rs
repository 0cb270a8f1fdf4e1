//! The CLI reference (docs/cli.md), generated from the clap definitions so it cannot drift.
//! `tests/it/readme.rs` checks docs/cli.md holds exactly this between the markers.

use clap::CommandFactory;

pub const BEGIN: &str =
    "<!-- cli-reference:begin (generated from --help; UPDATE_DOCS=1 cargo test --test it cli_reference) -->";
pub const END: &str = "<!-- cli-reference:end -->";

fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
    let name = if path.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{path} {}", cmd.get_name())
    };
    out.push_str(&format!("### `{name}`\n\n```text\n"));
    let help = cmd.render_long_help().to_string();
    let help: Vec<&str> = help.lines().map(str::trim_end).collect();
    out.push_str(help.join("\n").trim_end());
    out.push_str("\n```\n\n");
    let mut subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    for s in &mut subs {
        walk(s, &name, out);
    }
}

/// Markdown of every command's `--help`, between the markers.
pub fn markdown() -> String {
    let mut cmd = super::Cli::command().term_width(100);
    cmd.build();
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push_str("\n\n");
    walk(&mut cmd, "", &mut out);
    out.push_str(END);
    out
}
