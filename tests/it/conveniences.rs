//! Issue 10's CLI conveniences: completions, the topology's JSON Schema (shipped files valid,
//! bad ones not), `validate` reporting every problem in one run, warnings, and every example
//! in `--help` run for real on a local network.

use crate::support::{consort, consort_ok, run_with_deadline, NetworkHandle};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn completions_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef consort"),
        ("fish", "complete -c consort"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = consort_ok(dir.path(), &["completions", shell]);
        assert!(out.contains(marker), "{shell}: no {marker:?}");
        for sub in ["apply", "output", "logs", "stop", "start", "schema"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // The bash script parses.
    let script = dir.path().join("consort.bash");
    std::fs::write(&script, consort_ok(dir.path(), &["completions", "bash"])).unwrap();
    let mut c = Command::new("bash");
    c.arg("-n").arg(&script);
    assert!(run_with_deadline(c, Duration::from_secs(20))
        .status
        .success());
    let bad = consort(dir.path(), &["completions", "tcsh"]);
    assert!(!bad.status.success());
}

fn schema_validator(dir: &Path) -> jsonschema::Validator {
    let text = consort_ok(dir, &["schema"]);
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema["title"], "consort topology", "{schema}");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn yaml_as_json(text: &str) -> serde_json::Value {
    let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

#[test]
fn schema_accepts_every_shipped_topology_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let validator = schema_validator(dir.path());
    let mut checked = 0;
    for sub in ["topologies", "examples"] {
        for e in std::fs::read_dir(repo().join(sub)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                let v = yaml_as_json(&std::fs::read_to_string(&p).unwrap());
                let errors: Vec<String> =
                    validator.iter_errors(&v).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{}: {errors:?}", p.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "only {checked} shipped topologies found");
    // What `consort init` writes is valid too, and points at the schema beside it.
    consort_ok(dir.path(), &["init", "--members", "3"]);
    let written = std::fs::read_to_string(dir.path().join("consort.yaml")).unwrap();
    assert!(
        written.starts_with("# yaml-language-server: $schema=consort.schema.json\n"),
        "{written}"
    );
    let beside: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("consort.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(beside["title"], "consort topology");
    assert!(validator.is_valid(&yaml_as_json(&written)));
    // Bad ones: an unknown field, a wrong type, a malformed address, no provider.
    let good = std::fs::read_to_string(repo().join("topologies/dev-single.yaml")).unwrap();
    for (what, bad) in [
        (
            "unknown field",
            good.replace("tx_nodes: 1", "tx_nodes: 1\n    colour: red"),
        ),
        (
            "wrong type",
            good.replace("validators: 1", "validators: one"),
        ),
        (
            "bad address",
            good.replace(
                "balance: 1000000 ether",
                "balance: 1000000 ether\n        address: 0x1234",
            ),
        ),
        (
            "no provider",
            good.split("provider:").next().unwrap().to_string(),
        ),
    ] {
        assert_ne!(bad, good, "{what}: the edit did not apply");
        assert!(
            !validator.is_valid(&yaml_as_json(&bad)),
            "{what} passed the schema"
        );
    }
}

const MANY_PROBLEMS: &str = "network:
  name: Many
  chain_id: 1
  colour: blue
members:
  - name: contoso
    validators: 2
    accounts:
      - name: mine
        balance: 5 ether
        address: 0x52908400098527886E0F7030069857D2E4169Ee7
  - name: fabrikam
    validators: 2
    shape: round
provider:
  local: {}
";

#[test]
fn validate_reports_every_problem_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("consort.yaml"), MANY_PROBLEMS).unwrap();
    let out = consort(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // Two unknown fields (each section's), then what the semantic checks find elsewhere.
    for want in [
        "consort.yaml:4:3: unknown field `colour`",
        "consort.yaml:14:5: unknown field `shape`",
        "consort.yaml:2:9: invalid network name \"Many\"",
        "consort.yaml:3:13: chain_id 1 belongs to Ethereum Mainnet",
        "consort.yaml:11:18: invalid address",
        "checksum does not match",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(
        err.contains("consort.yaml: 5 errors\n") || err.ends_with("consort.yaml: 5 errors"),
        "{err}"
    );
    // Nothing is said about the members list as a whole while a member in it has a field
    // that was not understood (its validators may be what the author meant by it).
    assert!(!err.contains("even number"), "{err}");
}

#[test]
fn validate_reports_semantic_problems_beside_a_mistyped_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("topologies/three-members.yaml"))
        .unwrap()
        .replacen("validators: 1", "validators: two", 1)
        .replace("chain_id: 717171", "chain_id: 1")
        .replace("name: northwind", "name: North_Wind");
    std::fs::write(dir.path().join("consort.yaml"), text).unwrap();
    let out = consort(dir.path(), &["validate"]);
    let err = stderr(&out);
    assert!(err.contains("members[0].validators: invalid type"), "{err}");
    assert!(
        err.contains("chain_id 1 belongs to Ethereum Mainnet"),
        "{err}"
    );
    assert!(err.contains("invalid member name \"North_Wind\""), "{err}");
    assert!(err.contains("3 errors"), "{err}");
}

#[test]
fn warnings_print_once_and_are_never_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("topologies/dev-single.yaml"))
        .unwrap()
        .replace("validators: 1", "validators: 2");
    std::fs::write(dir.path().join("consort.yaml"), &text).unwrap();
    let out = consort(dir.path(), &["plan"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("2 validators").count(), 1, "{err}");
    assert!(err.starts_with("warning: "), "{err}");
    assert!(!err.contains("error"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("2 validators"));
    // -q: results only.
    let out = consort(dir.path(), &["-q", "plan"]);
    assert!(out.status.success());
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // A warning beside an error (above it in the file) is still a warning.
    let both = text.replace("chain_id: 1337001", "chain_id: 0");
    std::fs::write(dir.path().join("consort.yaml"), both).unwrap();
    let out = consort(dir.path(), &["validate"]);
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("error: warning"), "{}", stderr(&out));

    // 101 validators: refused for the limit, not called an even number.
    let over = text.replace("validators: 2", "validators: 101");
    std::fs::write(dir.path().join("consort.yaml"), over).unwrap();
    let out = consort(dir.path(), &["validate"]);
    let err = stderr(&out);
    assert!(
        err.contains("asks for 101 validators; the limit is 100"),
        "{err}"
    );
    assert!(!err.contains("even"), "{err}");
}

#[test]
fn address_accounts_are_checked_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(repo().join("topologies/dev-single.yaml")).unwrap();
    let with = |address: &str| {
        good.replace(
            "        balance: 1000000 ether\n",
            &format!(
                "        balance: 1000000 ether\n      - name: mine\n        balance: 1 ether\n        address: {address}\n"
            ),
        )
    };
    let line = with("X")
        .lines()
        .position(|l| l.contains("address: X"))
        .unwrap()
        + 1;
    for (address, why) in [
        (
            "0x52908400098527886E0F7030069857D2E4169Ee7",
            "checksum does not match",
        ),
        ("0x5290840009852788", "found 16 characters after 0x"),
        (
            "52908400098527886E0F7030069857D2E4169EE7",
            "must start with 0x",
        ),
        (
            "0xZZ908400098527886E0F7030069857D2E4169EE7",
            "not a hex digit",
        ),
    ] {
        std::fs::write(dir.path().join("consort.yaml"), with(address)).unwrap();
        let out = consort(dir.path(), &["validate"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{address} accepted");
        assert!(
            err.contains(&format!("consort.yaml:{line}:18: invalid address")),
            "{err}"
        );
        assert!(err.contains(why), "{address}: {err}");
    }
    // Right checksum, or all lower case: accepted, shown checksummed in the plan.
    for ok in [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x52908400098527886e0f7030069857d2e4169ee7",
    ] {
        std::fs::write(dir.path().join("consort.yaml"), with(ok)).unwrap();
        let out = consort_ok(dir.path(), &["plan"]);
        assert!(
            out.contains("your address 0x52908400098527886E0F7030069857D2E4169EE7 (no key held)"),
            "{out}"
        );
    }
    // The funding account signs transfers: it cannot be an address: account.
    let funding = with("0x52908400098527886E0F7030069857D2E4169EE7").replace(
        "funding_account: contoso/deployer",
        "funding_account: contoso/mine",
    );
    std::fs::write(dir.path().join("consort.yaml"), funding).unwrap();
    let out = consort(dir.path(), &["validate"]);
    assert!(
        stderr(&out).contains("is an `address:` account"),
        "{}",
        stderr(&out)
    );
}

/// The lines under "Examples:" in every command's long help.
fn help_examples() -> Vec<String> {
    use clap::CommandFactory;
    fn walk(cmd: &mut clap::Command, out: &mut Vec<String>) {
        let help = cmd.render_long_help().to_string();
        if let Some((_, ex)) = help.split_once("Examples:\n") {
            for l in ex.lines() {
                match l.trim().strip_prefix("consort ") {
                    Some(rest) => out.push(format!("consort {rest}")),
                    None if l.trim().is_empty() => continue,
                    None => break,
                }
            }
        }
        let mut subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
        for s in &mut subs {
            walk(s, out);
        }
    }
    let mut cmd = consort::cli::Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&mut cmd, &mut out);
    out
}

/// A `consort dashboard` example serves until Ctrl-C: it must print its URL, answer there,
/// and stop on SIGINT with exit 0.
fn dashboard_example(e: &str, dir: &Path, path: &str) {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; exec {e}"))
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("CONSORT_STATE_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = crate::support::stdout_lines(&mut child).recv_timeout(Duration::from_secs(60));
    let url = line
        .as_deref()
        .ok()
        .and_then(|l| l.strip_prefix("Dashboard: "))
        .map(str::to_string);
    let page = url.as_ref().and_then(|u| {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .ok()?
            .get(u)
            .send()
            .ok()?
            .text()
            .ok()
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(
        url.is_some(),
        "help example {e} printed {line:?}, not `Dashboard: URL`"
    );
    assert!(
        page.is_some_and(|p| p.contains("consort dashboard")),
        "help example {e}: no page at {url:?}"
    );
    assert!(
        status.success(),
        "help example {e}: Ctrl-C ended it with {status}"
    );
}

/// Every `--help` example, run through bash in one directory in the order of a session:
/// init, validate, plan, apply, status, output, logs, member add/remove, stop, start,
/// destroy, then the offline ones.
#[test]
fn every_help_example_works() {
    let examples = help_examples();
    let order = [
        "consort init",
        "consort validate",
        "consort plan",
        "consort apply",
        "consort status",
        "consort output",
        "consort graph",
        "consort dashboard",
        "consort logs",
        "consort member add",
        "consort member remove",
        "consort invite",
        "consort join",
        "consort admit",
        "consort stop",
        "consort start",
        "consort destroy",
        "consort completions",
        "consort schema",
    ];
    let rank = |e: &str| {
        order
            .iter()
            .position(|p| e.starts_with(&format!("{p} ")) || e == *p)
            .unwrap_or_else(|| panic!("help example {e:?} has no place in this test's order"))
    };
    let mut sorted = examples.clone();
    sorted.sort_by_key(|e| rank(e));
    assert!(sorted.len() >= 20, "{sorted:?}");
    assert!(sorted.iter().any(|e| e.contains("--account ops=100ether")));

    // The network `consort init` writes, which the examples deploy here (and Drop stops
    // every geth under this directory, delta's too, should an example fail).
    let net = NetworkHandle::new("tradelane");
    let dir = net.dir.path().canonicalize().unwrap();
    // `consort join … -f delta/consort.yaml` runs a second operator's nodes beside it.
    let delta = NetworkHandle {
        dir: tempfile::tempdir().unwrap(),
        base: dir.join("delta").join(".consort"),
        // The network `consort init` writes (the joiner joins that network).
        network: "tradelane".into(),
    };
    let path = format!(
        "{}:{}",
        Path::new(env!("CARGO_BIN_EXE_consort"))
            .parent()
            .unwrap()
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for e in &sorted {
        if e.starts_with("consort dashboard") {
            dashboard_example(e, &dir, &path);
            continue;
        }
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(format!("set -euo pipefail; {e}"))
            .current_dir(&dir)
            .env("PATH", &path)
            .env("CONSORT_GETH", &crate::support::geth().path)
            .env_remove("CONSORT_STATE_DIR");
        let out = run_with_deadline(c, Duration::from_secs(300));
        assert!(
            out.status.success(),
            "help example failed: {e}\n{}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("error"),
            "help example {e} printed an error:\n{}",
            stderr(&out)
        );
    }
    // The examples did what they say.
    let env = std::fs::read_to_string(dir.join(".env")).unwrap();
    assert!(
        env.contains("export ETH_RPC_URL=http://127.0.0.1:"),
        "{env}"
    );
    assert!(dir.join("plan.json").exists() && dir.join("consort.schema.json").exists());
    assert!(dir.join("other.yaml").exists());
    assert!(net.running().is_empty(), "destroy left nodes running");
    // The joined operator's nodes ran on their own until its own destroy.
    assert!(!delta.running().is_empty(), "join started delta's nodes");
    let mut c = Command::new(env!("CARGO_BIN_EXE_consort"));
    c.args(["-f", "delta/consort.yaml", "destroy", "--yes"])
        .current_dir(&dir)
        .env("CONSORT_GETH", &crate::support::geth().path)
        .env_remove("CONSORT_STATE_DIR");
    let out = run_with_deadline(c, Duration::from_secs(300));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        delta.running().is_empty(),
        "delta's destroy left nodes running"
    );
}
