//! The CLI reference (docs/cli.md) is generated from `--help`; it must be current. The
//! README starts with the two set-up commands and links to it.

use consort::cli::reference;
use std::path::Path;

#[test]
fn cli_reference_in_docs_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("](docs/cli.md)"),
        "README.md must link to the CLI reference, docs/cli.md"
    );
    let generated = reference::markdown();
    let current = match (text.find(reference::BEGIN), text.find(reference::END)) {
        (Some(b), Some(e)) => &text[b..e + reference::END.len()],
        _ => "",
    };
    if current == generated {
        return;
    }
    // UPDATE_README is the name this had while the reference was in README.md.
    if std::env::var_os("UPDATE_DOCS").is_some() || std::env::var_os("UPDATE_README").is_some() {
        let updated = if current.is_empty() {
            format!("{}\n{generated}\n", text.trim_end())
        } else {
            text.replacen(current, &generated, 1)
        };
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/cli.md's CLI reference is stale: run `UPDATE_DOCS=1 cargo test --test it \
         cli_reference` (or the it binary with UPDATE_DOCS=1 and the filter cli_reference) and \
         commit docs/cli.md"
    );
}

#[test]
fn readme_starts_with_the_two_commands() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let first_block = text.split("```").nth(1).expect("a code block");
    assert!(
        first_block.contains("apply -f topologies/"),
        "{first_block}"
    );
    assert!(first_block.contains("cargo test"), "{first_block}");
    // The test command is the script that installs what the tests need and then runs
    // `cargo test`; CI runs the same script.
    assert!(first_block.contains("bash .ci/test"), "{first_block}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join(".ci/test")).unwrap();
    for needed in [
        "go install",
        "@foundry-rs/cast-linux-amd64",
        "@foundry-rs/forge-linux-amd64",
        "solc@",
        "ethers@",
        "web3==",
        "chromium-driver",
        "graphviz",
    ] {
        assert!(
            script.contains(needed),
            ".ci/test does not install {needed}"
        );
    }
    assert!(
        script.trim_end().ends_with("exec cargo test \"$@\""),
        ".ci/test must end by running cargo test"
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.contains("bash .ci/test"),
        ".ci/run must run the README's test command"
    );
    for line in first_block.lines().filter(|l| l.contains("topologies/")) {
        let file = line
            .split_whitespace()
            .find(|w| w.starts_with("topologies/"))
            .unwrap();
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(file).exists(),
            "README names {file}, which does not exist"
        );
    }
}
