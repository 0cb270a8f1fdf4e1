//! The command-line contract, through the real binary: plan is a side-effect-free dry run,
//! saved plans refuse to apply once anything moved on, exit codes, the lock, confirmation,
//! init and validate. None of these need geth: they stop before any node would start.

use consort::state::{State, StateDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_consort");

pub fn consort(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CONSORT_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("consort runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const TOPOLOGY: &str = "\
network:
  name: clinet
  chain_id: 717171
members:
  - name: contoso
    validators: 1
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 100 ether
  - name: fabrikam
    validators: 2
provider:
  local: {}
";

fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consort.yaml");
    std::fs::write(&file, TOPOLOGY).unwrap();
    (dir, file)
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(tree(&e.path()).into_iter().map(|s| format!("  {s}")));
        }
    }
    out.sort();
    out
}

#[test]
fn plan_is_a_dry_run_that_writes_and_generates_nothing() {
    let (dir, _) = workdir();
    let before = tree(dir.path());
    let o = consort(dir.path(), &["plan"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("+ genesis"), "{out}");
    assert!(out.contains("(enode known after apply)"), "{out}");
    assert!(
        out.ends_with("Plan: 17 to add, 0 to change, 0 to destroy.\n"),
        "{out}"
    );
    // Three signers: nothing to warn about.
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        tree(dir.path()),
        before,
        "plan must not create state, keys or dirs"
    );
}

#[test]
fn two_signers_warn_about_liveness_but_plan() {
    let (dir, file) = workdir();
    std::fs::write(&file, TOPOLOGY.replace("validators: 2", "validators: 1")).unwrap();
    let o = consort(dir.path(), &["plan"]);
    let (_, err) = text(&o);
    assert!(o.status.success());
    assert!(
        err.contains("warning") && err.contains("the chain halts"),
        "{err}"
    );
}

#[test]
fn plan_json_matches_the_human_summary() {
    let (dir, _) = workdir();
    let o = consort(dir.path(), &["plan", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["add"], 17);
    assert_eq!(v["network"], "clinet");
    let changes = v["changes"].as_array().unwrap();
    assert!(changes
        .iter()
        .all(|c| c["action"] == "create" && c["addr"].is_string()));
}

#[test]
fn detailed_exitcode_is_2_with_changes_and_0_without() {
    let (dir, _) = workdir();
    let o = consort(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2));
    // Nothing deployed: destroying changes nothing.
    let o = consort(dir.path(), &["plan", "--destroy", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.starts_with("No changes."));
}

#[test]
fn saved_plan_refuses_once_the_topology_changed() {
    let (dir, file) = workdir();
    let o = consort(dir.path(), &["plan", "--out", "p.json"]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("consort apply p.json"));
    std::fs::write(&file, TOPOLOGY.replace("100 ether", "200 ether")).unwrap();
    let o = consort(dir.path(), &["apply", "p.json", "--yes"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("different version of"), "{err}");
    assert!(!dir.path().join(".consort/clinet/state.json").exists());
}

#[test]
fn saved_plan_refuses_once_state_moved_on() {
    let (dir, _) = workdir();
    assert!(consort(dir.path(), &["plan", "--out", "p.json"])
        .status
        .success());
    // Someone else applied in between: state now exists with a newer serial.
    let sd = StateDir::new(&dir.path().join(".consort"), "clinet");
    let mut st = State::new("clinet", "local");
    sd.save(&mut st).unwrap();
    let o = consort(dir.path(), &["apply", "p.json", "--yes"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("is stale: state has moved on"), "{err}");
    assert_eq!(sd.load().unwrap().unwrap(), st, "state untouched");
}

#[test]
fn a_second_command_on_a_locked_network_fails_fast_naming_the_holder() {
    let (dir, _) = workdir();
    let sd = StateDir::new(&dir.path().join(".consort"), "clinet");
    let _held = sd.lock("apply").unwrap();
    // We hold the lock for the whole test: a consort that waited for it would never
    // finish (the deadline only stops a hang; it is no speed bound).
    let mut cmd = Command::new(BIN);
    cmd.args(["apply", "--yes"])
        .current_dir(dir.path())
        .env_remove("CONSORT_STATE_DIR");
    let o = crate::support::run_with_deadline(cmd, std::time::Duration::from_secs(120));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(sd.lock("apply").is_err(), "the holder lost its lock");
    assert!(
        err.contains("is locked by another consort command"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(!sd.state_file().exists());
}

#[test]
fn apply_without_yes_off_a_terminal_refuses_and_changes_nothing() {
    let (dir, _) = workdir();
    let o = consort(dir.path(), &["apply"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("pass --yes"), "{err}");
    assert!(!dir.path().join(".consort/clinet/state.json").exists());
    assert!(!dir.path().join(".consort/clinet/keys").exists());
}

#[test]
fn init_writes_a_topology_that_validates_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let o = consort(dir.path(), &["init", "--members", "4"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = consort(dir.path(), &["validate"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("is valid"), "{out}");
    assert!(out.contains("4 member(s)"), "{out}");
    let before = std::fs::read(dir.path().join("consort.yaml")).unwrap();
    let o = consort(dir.path(), &["init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("already exists"));
    assert_eq!(
        std::fs::read(dir.path().join("consort.yaml")).unwrap(),
        before
    );
}

#[test]
fn bad_topology_exits_1_naming_file_line_and_column() {
    let (dir, file) = workdir();
    std::fs::write(&file, TOPOLOGY.replace("chain_id: 717171", "chain_id: 1")).unwrap();
    for cmd in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
        let o = consort(dir.path(), cmd);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        assert!(err.contains("consort.yaml:3:13:"), "{cmd:?}: {err}");
        assert!(err.contains("chain_id 1"), "{err}");
    }
    assert!(!dir.path().join(".consort/clinet/state.json").exists());
}

#[test]
fn missing_topology_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let o = consort(dir.path(), &["plan"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("consort.yaml"), "{err}");
    assert!(err.contains("consort init"), "{err}");
}

#[test]
fn status_and_output_without_state_say_nothing_is_deployed() {
    let (dir, _) = workdir();
    for cmd in ["status", "output"] {
        let o = consort(dir.path(), &[cmd]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o).1.contains("nothing is deployed"), "{cmd}");
    }
    // With another file, the suggested command names it, so it runs as shown.
    std::fs::write(dir.path().join("two.yaml"), TOPOLOGY).unwrap();
    let o = consort(dir.path(), &["-f", "two.yaml", "status"]);
    let err = text(&o).1;
    assert!(err.contains("`consort -f two.yaml apply`"), "{err}");
}

/// Issue 22 item 8: success lines' hints name the file in use, so they run as shown.
#[test]
fn success_hints_name_the_file_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let o = consort(dir.path(), &["-f", "two.yaml", "init"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("Next: `consort -f two.yaml plan`, then `consort -f two.yaml apply`."),
        "{out}"
    );
    let o = consort(dir.path(), &["-f", "two.yaml", "plan", "--out", "p.json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("Apply exactly it with `consort -f two.yaml apply p.json`."),
        "{out}"
    );
    // The default file needs no -f.
    let o = consort(dir.path(), &["init"]);
    assert!(text(&o)
        .0
        .contains("Next: `consort plan`, then `consort apply`."));
}

/// What users read of `plan` for the shipped topologies, snapshotted.
#[test]
fn plan_output_of_shipped_topologies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["dev-single", "three-members"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::copy(root.join("topologies").join(format!("{name}.yaml")), &file).unwrap();
        let o = consort(dir.path(), &["plan", "-f", file.to_str().unwrap()]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{name}: {err}");
        // New nodes' ports depend on what else runs on this machine: numbers and busy
        // notes filtered, which ports each node gets kept.
        insta::with_settings!({filters => vec![
            (r"\b(p2p|http|ws|metrics) \d+", "$1 [port]"),
            (r" \(busy: [^)]*\)", ""),
        ]}, {
            insta::assert_snapshot!(format!("plan_{}", name.replace('-', "_")), out);
        });
    }
}
