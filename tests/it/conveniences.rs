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

/// `text` as an editor's YAML language server reads it: YAML 1.2 with the core schema, so
/// a plain `0x5290…` is an integer (however large), `true` a boolean, `~` null. (serde_yaml
/// and yaml-rust2's loader keep an overflowing hex integer as text, which no editor does.)
fn yaml_as_json(text: &str) -> serde_json::Value {
    use serde_json::Value;
    use yaml_rust2::parser::{Event, EventReceiver, Parser};
    use yaml_rust2::scanner::TScalarStyle;
    enum Open {
        Seq(Vec<Value>),
        Map(serde_json::Map<String, Value>, Option<String>),
    }
    #[derive(Default)]
    struct Builder {
        stack: Vec<Open>,
        done: Option<Value>,
    }
    fn core_scalar(s: &str) -> Value {
        match s {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            _ => {}
        }
        let digits = |d: &str, radix: u32| !d.is_empty() && d.chars().all(|c| c.is_digit(radix));
        let big = |d: &str, radix: u32| {
            d.chars().fold(0f64, |acc, c| {
                acc * radix as f64 + c.to_digit(radix).unwrap() as f64
            })
        };
        let unsigned = s.trim_start_matches(['-', '+']);
        if let Some(h) = s.strip_prefix("0x").filter(|h| digits(h, 16)) {
            return u64::from_str_radix(h, 16)
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(big(h, 16)));
        }
        if let Some(o) = s.strip_prefix("0o").filter(|o| digits(o, 8)) {
            return Value::from(big(o, 8));
        }
        if digits(unsigned, 10) {
            return s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(s.parse::<f64>().unwrap()));
        }
        let float = unsigned.chars().any(|c| c.is_ascii_digit())
            && unsigned
                .chars()
                .all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
            && s.parse::<f64>().is_ok();
        if float {
            return Value::from(s.parse::<f64>().unwrap());
        }
        Value::String(s.to_string())
    }
    impl Builder {
        fn put(&mut self, v: Value) {
            match self.stack.last_mut() {
                None => self.done = Some(v),
                Some(Open::Seq(items)) => items.push(v),
                Some(Open::Map(m, key)) => match key.take() {
                    None => *key = Some(v.as_str().map(str::to_string).unwrap_or(v.to_string())),
                    Some(k) => {
                        m.insert(k, v);
                    }
                },
            }
        }
    }
    impl EventReceiver for Builder {
        fn on_event(&mut self, ev: Event) {
            match ev {
                Event::Scalar(s, style, _, tag) => {
                    assert!(tag.is_none(), "tagged scalar {s:?}: not in shipped YAML");
                    let v = if style == TScalarStyle::Plain {
                        core_scalar(&s)
                    } else {
                        Value::String(s)
                    };
                    self.put(v);
                }
                Event::SequenceStart(..) => self.stack.push(Open::Seq(vec![])),
                Event::MappingStart(..) => self.stack.push(Open::Map(Default::default(), None)),
                Event::SequenceEnd | Event::MappingEnd => {
                    let v = match self.stack.pop().unwrap() {
                        Open::Seq(items) => Value::Array(items),
                        Open::Map(m, _) => Value::Object(m),
                    };
                    self.put(v);
                }
                Event::Alias(_) => panic!("an alias: not in shipped YAML"),
                _ => {}
            }
        }
    }
    let mut b = Builder::default();
    Parser::new_from_str(text)
        .load(&mut b, false)
        .unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"));
    b.done.unwrap_or(Value::Null)
}

/// The ```yaml blocks of a Markdown file, each with its line.
fn yaml_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match &mut open {
            None if line.trim_start() == "```yaml" => open = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start() == "```" => out.push(open.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    out
}

/// The errors of `v` against the topology schema; a fragment (no `network:` at its top,
/// like the README's `accounts:` example) is checked key by key against the definition
/// whose properties hold all its keys.
fn schema_errors(schema: &serde_json::Value, v: &serde_json::Value) -> Vec<String> {
    let check = |sub: &serde_json::Value, v: &serde_json::Value| -> Vec<String> {
        let mut sub = sub.clone();
        sub["$defs"] = schema["$defs"].clone();
        let val = jsonschema::validator_for(&sub).unwrap();
        val.iter_errors(v).map(|e| e.to_string()).collect()
    };
    let obj = v.as_object().expect("a mapping");
    if obj.contains_key("network") {
        return check(schema, v);
    }
    let defs = schema["$defs"].as_object().unwrap();
    let top = "topology".to_string();
    let (name, def) = std::iter::once((&top, schema))
        .chain(defs.iter())
        .find(|(_, d)| obj.keys().all(|k| d["properties"].get(k).is_some()))
        .unwrap_or_else(|| panic!("no definition has all of {:?}", obj.keys()));
    obj.iter()
        .flat_map(|(k, item)| {
            check(&def["properties"][k], item)
                .into_iter()
                .map(move |e| format!("{name}.{k}: {e}"))
        })
        .collect()
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
    // Every YAML block of the README, docs/ and the examples, read as an editor reads it.
    let schema: serde_json::Value =
        serde_json::from_str(&consort_ok(dir.path(), &["schema"])).unwrap();
    let mut blocks = 0;
    let mut docs = vec![repo().join("README.md")];
    for e in ["examples", "docs"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join(d)).unwrap().flatten())
    {
        if e.path().extension().is_some_and(|x| x == "md") {
            docs.push(e.path());
        }
    }
    for doc in docs {
        for (line, text) in yaml_blocks(&std::fs::read_to_string(&doc).unwrap()) {
            let v = yaml_as_json(&text);
            let errors = schema_errors(&schema, &v);
            assert!(errors.is_empty(), "{}:{line}: {errors:?}", doc.display());
            blocks += 1;
        }
    }
    assert!(blocks >= 2, "only {blocks} YAML blocks found");
    // rpc.cors_origins: full origins; a wildcard or a path is flagged in the editor too.
    let with_rpc = |origins: &str| {
        yaml_as_json(&format!(
            "network: {{name: n, chain_id: 707070}}\nprovider: {{local: {{}}}}\nmembers: [{{name: a, validators: 1}}]\nrpc:\n  cors_origins: {origins}\n"
        ))
    };
    assert!(validator.is_valid(&with_rpc(
        "[http://localhost:5173, \"https://app.example.com\"]"
    )));
    for bad in [
        "[\"*\"]",
        "[http://localhost:5173/]",
        "[localhost:5173]",
        "http://localhost",
    ] {
        assert!(
            !validator.is_valid(&with_rpc(bad)),
            "{bad} passed the schema"
        );
    }
    // The README's unquoted `address:` is a number to a YAML 1.2 reader, and the schema
    // takes it (consort reads the same text as the address).
    let unquoted = yaml_as_json("address: 0x52908400098527886E0F7030069857D2E4169EE7\n");
    assert!(unquoted["address"].is_number(), "{unquoted}");
    let account = "network: {name: nn, chain_id: 707070}\nprovider: {local: {}}\nmembers:\n  - name: aa\n    validators: 1\n    accounts:\n      - name: ww\n        balance: 1 ether\n        address: 0x52908400098527886E0F7030069857D2E4169EE7\n";
    assert!(validator.is_valid(&yaml_as_json(account)));
    let loaded = consort::topology::parse(Path::new("consort.yaml"), account.as_bytes()).unwrap();
    assert_eq!(
        loaded.topology.members[0].accounts[0].address.as_deref(),
        Some("0x52908400098527886E0F7030069857D2E4169EE7")
    );
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
                "balance: 1000000 ether\n        address: \"0x1234\"",
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
        // Here delta (another operator) shares the chain: the founder's plain destroy is
        // refused until the data-loss example has run; after it, nothing is left to destroy.
        "consort destroy --yes --allow-data-loss",
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
    // delta's signer and funded account stay on a chain the founder ran: its destroy is
    // refused until the data loss is accepted (the keys are then archived).
    let delta_destroy = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_consort"));
        c.args(["-f", "delta/consort.yaml", "destroy", "--yes"])
            .args(extra)
            .current_dir(&dir)
            .env("CONSORT_GETH", &crate::support::geth().path)
            .env_remove("CONSORT_STATE_DIR");
        run_with_deadline(c, Duration::from_secs(300))
    };
    let out = delta_destroy(&[]);
    assert!(
        !out.status.success() && stderr(&out).contains("--allow-data-loss"),
        "{}",
        stderr(&out)
    );
    let out = delta_destroy(&["--allow-data-loss"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        delta.running().is_empty(),
        "delta's destroy left nodes running"
    );
}
