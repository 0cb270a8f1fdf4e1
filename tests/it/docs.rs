//! Every `sh`, `js`/`mjs` and `python` block of README.md, docs/*.md and examples/*.md runs as written
//! against a real network: each document in a fresh directory holding a copy of the
//! repository's `topologies/` and, for the README, a deployed `consort.yaml` (its
//! application snippets assume one; docs/*.md likewise). `consort`, `cast`, `forge`, `solcjs` and ethers from
//! npm and web3.py are on hand as the README says to install them. forge gets one thing
//! the README does not say: its compiler. forge downloads a native solc from
//! binaries.soliditylang.org, which the test machine cannot reach (and no registry here
//! serves a native solc), so every block runs with foundry's own settings
//! `FOUNDRY_SOLC=<solc_shim.sh>` and `FOUNDRY_OFFLINE=true`: the shim (tests/it/solc_shim.sh)
//! answers native solc's command line with npm's solcjs 0.8.26, the compiler the other tests
//! use. The README's blocks themselves run unchanged. A block that is deliberately
//! not runnable carries `<!-- doc-test: skip (why) -->` on the line before it; any other
//! tag than the known ones fails the test, so a new block cannot slip past.
//!
//! examples/separate-operators.md is not run here: the operators test runs it.

use crate::support::{npm_tool, port_base, run_with_deadline, web3_python, NetworkHandle};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RUN: &[&str] = &["sh", "js", "mjs", "python"];
const NOT_CODE: &[&str] = &["text", "yaml"];
const SKIP: &str = "<!-- doc-test: skip (";
/// The network the add-a-member walkthrough deploys (topologies/three-members.yaml).
const THREE_MEMBERS: &str = "three-members";

#[derive(Debug)]
struct Block {
    line: usize,
    lang: String,
    code: String,
    skip: Option<String>,
}

fn blocks(md: &str, file: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(tag) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let lang = tag.trim().to_string();
        assert!(
            RUN.contains(&lang.as_str()) || NOT_CODE.contains(&lang.as_str()),
            "{file}:{}: a code block tagged {lang:?}: tag it one of {RUN:?} (run by this test) or {NOT_CODE:?}",
            i + 1
        );
        let skip = i
            .checked_sub(1)
            .and_then(|p| lines[p].trim().strip_prefix(SKIP))
            .map(|r| r.trim_end_matches(") -->").to_string());
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim_start() != "```" {
            end += 1;
        }
        assert!(end < lines.len(), "{file}:{}: unclosed code block", i + 1);
        out.push(Block {
            line: i + 1,
            lang,
            code: lines[start..end].join("\n") + "\n",
            skip,
        });
        i = end + 1;
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory on PATH holding `consort`, and the tools' bin directory.
fn path_with_tools() -> String {
    let consort = PathBuf::from(env!("CARGO_BIN_EXE_consort"));
    let tools = npm_tool("cast").parent().unwrap().to_path_buf();
    let py = web3_python().parent().unwrap().to_path_buf();
    format!(
        "{}:{}:{}:{}",
        consort.parent().unwrap().display(),
        tools.display(),
        py.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A block that ran: its line in the document and what it printed on stdout.
struct Ran {
    line: usize,
    stdout: String,
}

/// Writes tests/it/solc_shim.sh as an executable `solc` in a directory of its own (kept
/// out of the document's directory, which is the reader's project).
fn solc_shim() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let solc = dir.path().join("solc");
    std::fs::write(&solc, include_str!("solc_shim.sh")).unwrap();
    std::fs::set_permissions(&solc, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, solc)
}

/// Runs the runnable blocks of `doc` in order in `dir`; returns those that ran.
fn run_doc(doc: &str, dir: &Path, setup: &str) -> Vec<Ran> {
    let md = std::fs::read_to_string(repo().join(doc)).unwrap();
    let path = path_with_tools();
    let (_shim_dir, solc) = solc_shim();
    // ES modules resolve packages from node_modules above the file, not NODE_PATH.
    let modules = npm_tool("cast")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let link = dir.join("node_modules");
    if !link.exists() {
        std::os::unix::fs::symlink(&modules, &link).unwrap();
    }
    let mut ran = Vec::new();
    for (n, b) in blocks(&md, doc).into_iter().enumerate() {
        if !RUN.contains(&b.lang.as_str()) {
            continue;
        }
        if let Some(why) = &b.skip {
            eprintln!("[docs] {doc}:{} skipped: {why}", b.line);
            continue;
        }
        // js and python blocks are whole files, run as the README says: with the env of
        // `source <(consort output --format env)`.
        let script = match b.lang.as_str() {
            "sh" => b.code.clone(),
            "js" | "mjs" => {
                let f = format!("block-{n}.mjs");
                std::fs::write(dir.join(&f), &b.code).unwrap();
                format!("source <(consort output --format env)\nnode {f}\n")
            }
            "python" => {
                let f = format!("block-{n}.py");
                std::fs::write(dir.join(&f), &b.code).unwrap();
                format!("source <(consort output --format env)\npython3 {f}\n")
            }
            _ => unreachable!(),
        };
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(format!("set -euo pipefail\n{setup}{script}"))
            .current_dir(dir)
            .env("PATH", &path)
            .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1")
            // forge's compiler: the solcjs shim, never a download (see the module comment).
            .env("FOUNDRY_SOLC", &solc)
            .env("FOUNDRY_OFFLINE", "true")
            .env("SOLCJS", npm_tool("solcjs"))
            .env_remove("ETH_RPC_URL")
            .env_remove("ETH_KEYSTORE")
            .env_remove("ETH_PASSWORD");
        let out = run_with_deadline(c, Duration::from_secs(600));
        assert!(
            out.status.success(),
            "{doc}:{}: the {} block failed ({}):\n{}\n--- stdout\n{}\n--- stderr\n{}",
            b.line,
            b.lang,
            out.status,
            b.code,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("[docs] {doc}:{} ran:\n{stdout}", b.line);
        ran.push(Ran {
            line: b.line,
            stdout,
        });
    }
    ran
}

#[test]
fn markers_and_tags_are_read_as_the_doc_test_reads_them() {
    let md =
        "a\n<!-- doc-test: skip (needs Azure) -->\n```sh\nexit 1\n```\n```python\nprint(1)\n```\n";
    let b = blocks(md, "x.md");
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].skip.as_deref(), Some("needs Azure"));
    assert_eq!((b[1].lang.as_str(), b[1].skip.is_none()), ("python", true));
    let bad = std::panic::catch_unwind(|| blocks("```bash\nls\n```\n", "x.md"));
    assert!(bad.is_err(), "an unknown tag must fail the test");
}

/// The shim answers what foundry-compilers sends, as native solc would, and refuses the rest.
#[test]
fn solc_shim_speaks_what_forge_sends() {
    let (_keep, solc) = solc_shim();
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new(&solc)
            .args(args)
            .env("SOLCJS", npm_tool("solcjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The shim may refuse before reading: a closed pipe is its answer, not an error here.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    let v = run(&["--version"], "");
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{v:?}");
    // What foundry-compilers parses: the line "Version: X.Y.Z+commit.H…".
    let line = text.lines().find(|l| l.starts_with("Version: ")).unwrap();
    assert!(line.starts_with("Version: 0.8.26+commit."), "{text}");
    let src = tempfile::tempdir().unwrap();
    let input = serde_json::json!({
        "language": "Solidity",
        "sources": {"A.sol": {"content": "pragma solidity ^0.8.0; contract A { function f() external pure returns (uint) { return 7; } }"}},
        "settings": {"evmVersion": "london", "outputSelection": {"*": {"*": ["evm.deployedBytecode.object"]}}}
    });
    let base = src.path().to_str().unwrap();
    let out = run(
        &[
            "--allow-paths",
            base,
            "--base-path",
            base,
            "--standard-json",
        ],
        &input.to_string(),
    );
    assert!(out.status.success(), "{out:?}");
    // stdout is the JSON alone (solcjs' own note filtered), with the contract compiled.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = v["contracts"]["A.sol"]["A"]["evm"]["deployedBytecode"]["object"]
        .as_str()
        .unwrap_or_default();
    assert!(code.contains("26121ff0"), "no f() in {v}");
    let bad = run(&["--optimize", "--standard-json"], "{}");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported argument --optimize"));
}

/// A directory as the README's snippets assume it: the shipped topologies, and a deployed
/// dev-single network as `consort.yaml`.
fn deployed_devnet(handle: &NetworkHandle) -> PathBuf {
    let dir = handle.dir.path().canonicalize().unwrap();
    copy_dir(&repo().join("topologies"), &dir.join("topologies"));
    let topology = std::fs::read_to_string(repo().join("topologies/dev-single.yaml"))
        .unwrap()
        .replace("base_port: 30303", &format!("base_port: {}", port_base()));
    std::fs::write(dir.join("consort.yaml"), topology).unwrap();
    crate::support::consort_ok(&dir, &["apply", "--yes"]);
    dir
}

/// The README's blocks, against a deployed dev-single network as `consort.yaml`.
#[test]
fn readme_blocks_run_as_written() {
    let handle = NetworkHandle::new("devnet");
    let dir = deployed_devnet(&handle);
    let ran = run_doc("README.md", &dir, "");
    // cast, the contract, forge, ethers, web3.py (the two deploy blocks and operators' are
    // skipped).
    assert!(ran.len() >= 5, "only {} README blocks ran", ran.len());
    let out = crate::support::consort_ok(&dir, &["output", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rpc = consort::rpc::RpcClient::new(v["wallet"]["rpc_url"].as_str().unwrap().to_string());
    // forge really deployed the README's Counter: code at the address it printed, with
    // the selectors of `number()` (8381f58a) and `increment()` (d09de08a).
    let deployed: Vec<(usize, &str)> = ran
        .iter()
        .flat_map(|r| {
            r.stdout
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Deployed to:"))
                .map(move |a| (r.line, a.trim()))
        })
        .collect();
    assert_eq!(
        deployed.len(),
        1,
        "one README block (forge create) prints `Deployed to:`: {deployed:?}"
    );
    let (line, address) = deployed[0];
    let code: String = rpc
        .call("eth_getCode", serde_json::json!([address, "latest"]))
        .unwrap();
    assert!(
        code.len() > 2 && code.contains("8381f58a") && code.contains("d09de08a"),
        "README.md:{line}: no Counter code at {address} (forge's address): {code}"
    );
    // The snippets really sent: 1 ether each from cast, ethers and web3.py.
    let dead = consort::rpc::parse_address("0x000000000000000000000000000000000000dEaD").unwrap();
    let got = rpc
        .eth_get_balance(&dead, consort::rpc::BlockId::Latest)
        .unwrap();
    assert_eq!(got, 3 * 1_000_000_000_000_000_000u128);
    let toml = std::fs::read_to_string(dir.join("foundry.toml")).unwrap();
    assert!(toml.contains("[profile.devnet]"), "{toml}");
}

/// examples/*.md (but separate-operators.md, which the operators test runs), each in a
/// fresh directory with the shipped topologies, as a reader in a checkout would.
#[test]
fn example_blocks_run_as_written() {
    let mut ran = 0;
    for e in std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".md") || name == "separate-operators.md" {
            continue;
        }
        let handle = NetworkHandle::new(THREE_MEMBERS);
        let dir = handle.dir.path().canonicalize().unwrap();
        copy_dir(&repo().join("topologies"), &dir.join("topologies"));
        // The walkthroughs' networks get ports of their own (others run beside them).
        let base = port_base();
        for t in std::fs::read_dir(dir.join("topologies")).unwrap().flatten() {
            let text = std::fs::read_to_string(t.path()).unwrap();
            let text = text.replace("local: {}", &format!("local: {{ base_port: {base} }}"));
            let text = text.replace("base_port: 30303", &format!("base_port: {base}"));
            std::fs::write(t.path(), text).unwrap();
        }
        let doc = format!("examples/{name}");
        ran += run_doc(&doc, &dir, "").len();
        // Whatever a walkthrough left running goes with its directory.
        if dir.join("consort.yaml").exists() {
            let _ = crate::support::consort(&dir, &["destroy", "--yes"]);
        }
    }
    assert!(ran >= 3, "only {ran} example blocks ran");
}

/// docs/*.md (the sections the README links to, and the generated CLI reference): every
/// block's tag is one the test knows, and the runnable ones run as the README's do, against
/// a deployed dev-single network (deployed only when a document has a block to run).
#[test]
fn docs_blocks_run_as_written() {
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    assert!(
        docs.iter().any(|d| d == "docs/cli.md"),
        "docs/ holds no cli.md: {docs:?}"
    );
    let mut blocks_seen = 0;
    let mut network: Option<(NetworkHandle, PathBuf)> = None;
    for doc in &docs {
        let md = std::fs::read_to_string(repo().join(doc)).unwrap();
        let found = blocks(&md, doc);
        blocks_seen += found.len();
        let runnable = found
            .iter()
            .any(|b| RUN.contains(&b.lang.as_str()) && b.skip.is_none());
        if !runnable {
            continue;
        }
        let dir = match &network {
            Some((_, dir)) => dir.clone(),
            None => {
                let handle = NetworkHandle::new("devnet");
                let dir = deployed_devnet(&handle);
                network = Some((handle, dir.clone()));
                dir
            }
        };
        run_doc(doc, &dir, "");
    }
    // The CLI reference alone has a block per command.
    assert!(blocks_seen >= 20, "only {blocks_seen} blocks in {docs:?}");
}

/// Every relative link of README.md, docs/*.md and examples/*.md names a file that exists
/// (sections moved between them must not leave a link behind).
#[test]
fn relative_links_of_the_documents_resolve() {
    let mut docs = vec![repo().join("README.md")];
    for d in ["docs", "examples"] {
        for e in std::fs::read_dir(repo().join(d)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "md") {
                docs.push(e.path());
            }
        }
    }
    let mut links = 0;
    for doc in &docs {
        let md = std::fs::read_to_string(doc).unwrap();
        for (n, line) in md.lines().enumerate() {
            for part in line.split("](").skip(1) {
                let Some(target) = part.split(')').next() else {
                    continue;
                };
                if target.contains("://") || target.starts_with('#') || target.is_empty() {
                    continue;
                }
                let file = target.split('#').next().unwrap();
                let path = doc.parent().unwrap().join(file);
                assert!(
                    path.exists(),
                    "{}:{}: the link to {target} names {}, which does not exist",
                    doc.display(),
                    n + 1,
                    path.display()
                );
                links += 1;
            }
        }
    }
    assert!(links >= 10, "only {links} relative links found in {docs:?}");
}
