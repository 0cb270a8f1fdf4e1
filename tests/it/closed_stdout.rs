//! Issue 20: a closed stdout interrupts nothing. `consort destroy | head -1` used to panic
//! ("failed printing to stdout: Broken pipe") halfway through a destroy; now every command
//! stops printing at the first failed write and carries on. Each command here runs with
//! stdout a pipe whose reader closes after the first line, and must still finish its work.
//! Real geth 1.13.15.

use crate::support::*;
use std::io::{BufRead, Read, Seek};
use std::path::Path;
use std::time::Duration;

/// Runs `consort args` in `dir` with stdout a pipe whose reader closes after the first
/// line; returns the exit code and stderr.
fn with_stdout_closed_after_one_line(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let (mut child, stderr) = spawn_piped(dir, args);
    {
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "consort {args:?} printed nothing");
    } // the reader is gone: every later write to stdout fails with EPIPE
    let code = child.wait().unwrap().code();
    let err = text_of(stderr);
    eprintln!("[consort {}] exit {code:?}\n{err}", args.join(" "));
    (code, err)
}

/// `consort args` in `dir`, its stdout a pipe, its stderr a temporary file.
fn spawn_piped(dir: &Path, args: &[&str]) -> (std::process::Child, std::fs::File) {
    let stderr = tempfile::tempfile().unwrap();
    let child = consort_cmd(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .expect("run consort");
    (child, stderr)
}

fn text_of(mut f: std::fs::File) -> String {
    let mut text = String::new();
    f.rewind().unwrap();
    f.read_to_string(&mut text).unwrap();
    text
}

/// Runs `consort args` in `dir` with stdout a pipe whose reader is gone before consort
/// writes (`consort logs | head` once head has exited); returns the exit code and stderr.
fn with_stdout_closed(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let (mut child, stderr) = spawn_piped(dir, args);
    drop(child.stdout.take());
    let code = poll(
        &format!("consort {args:?} to end with its reader gone"),
        Duration::from_secs(60),
        || {
            Ok(child
                .try_wait()
                .map_err(|e| e.to_string())?
                .map(|s| s.code()))
        },
    );
    (code, text_of(stderr))
}

#[test]
fn a_closed_stdout_interrupts_no_command() {
    let net = NetworkHandle::new("headless");
    let dir = net.dir.path().canonicalize().unwrap();
    std::fs::write(
        dir.join("consort.yaml"),
        format!(
            "network:
  name: headless
  chain_id: 747420
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
  funding_account: contoso/treasury
members:
  - name: contoso
    validators: 1
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 1000 ether
provider:
  local:
    base_port: {}
",
            port_base()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let (code, err) = with_stdout_closed_after_one_line(&dir, args);
        assert_eq!(code, Some(0), "consort {args:?} with stdout closed:\n{err}");
        assert!(!err.contains("panicked"), "consort {args:?}:\n{err}");
    };
    let healthy = || {
        poll("the network to be healthy", Duration::from_secs(60), || {
            let o = consort(&dir, &["status", "--json"]);
            let h: serde_json::Value =
                serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
            Ok((h["healthy"] == true).then_some(()))
        })
    };
    let state = || net.state_dir().load().unwrap().expect("state");

    run(&["apply", "--yes"]);
    healthy();
    assert!(state().resources.contains_key("node.contoso-tx-0"));

    // logs only print: with nobody reading, they end at once, quietly (with -F too).
    for args in [&["logs"][..], &["logs", "-F"]] {
        let (code, err) = with_stdout_closed(&dir, args);
        assert_eq!(code, Some(0), "consort {args:?} with stdout closed:\n{err}");
        assert!(
            err.trim().is_empty(),
            "consort {args:?} printed an error:\n{err}"
        );
    }

    run(&["member", "add", "delta", "--validators", "1", "--yes"]);
    healthy();
    assert!(state().resources.contains_key("signer.delta-validator-0"));

    run(&["member", "remove", "delta", "--yes"]);
    healthy();
    assert!(!state().resources.keys().any(|k| k.contains("delta")));

    run(&["stop"]);
    assert!(processes_under(&dir).is_empty(), "geth runs after stop");
    let o = consort(&dir, &["status", "--json"]);
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h["down"], "stopped", "{h}");

    run(&["start"]);
    healthy();

    run(&["destroy", "--yes"]);
    assert!(processes_under(&dir).is_empty(), "geth left after destroy");
    assert!(
        !net.state_dir().state_file().exists(),
        "state left after destroy"
    );
    assert!(!net.base.exists(), "{} left", net.base.display());
}
