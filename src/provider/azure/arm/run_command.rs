//! VM Run Command (`POST {vm}/runCommand`, `RunShellScript`): how consort controls a
//! running VM without any open port. The call is a long-running operation, polled like the
//! others; its result is `{"value": [{"code", "message"}]}` (directly, or as
//! `properties.output` of the operation status), where a Linux VM's `message` reads
//! `Enable succeeded: \n[stdout]\n…\n[stderr]\n…`.
//!
//! Run Command reports no exit status, so [`wrap`] ends every script with a marker line
//! `consort-exit=<status>` on stdout, and [`RunOutput::check`] turns a non-zero (or missing)
//! status into an error that names the VM and quotes stderr.

use super::{Arm, ArmError, COMPUTE_API};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const EXIT_MARKER: &str = "consort-exit=";

/// What a script printed, and its exit status (None: the marker never came, e.g. the
/// script was killed by Run Command's timeout).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<i32>,
}

impl RunOutput {
    /// Ok when the script exited 0; else an error naming `vm` with stderr (or stdout).
    pub fn check(self, vm: &str) -> Result<RunOutput, String> {
        match self.status {
            Some(0) => Ok(self),
            s => {
                let detail = if self.stderr.trim().is_empty() {
                    self.stdout.trim()
                } else {
                    self.stderr.trim()
                };
                Err(format!(
                    "Run Command on VM {vm} {}: {}",
                    match s {
                        Some(c) => format!("exited {c}"),
                        None => "did not finish (no exit status)".into(),
                    },
                    if detail.is_empty() {
                        "(no output)"
                    } else {
                        detail
                    }
                ))
            }
        }
    }
}

/// `script` as a subshell whose status is printed as the last stdout line.
pub fn wrap(script: &str) -> String {
    format!("( set -eu\n{script}\n)\necho \"{EXIT_MARKER}$?\"\n")
}

/// The request body of a `RunShellScript` Run Command.
pub fn request_body(script: &str) -> Value {
    json!({
        "commandId": "RunShellScript",
        "script": script.lines().collect::<Vec<_>>(),
    })
}

/// Reads a Run Command result, from either place ARM puts it.
pub fn parse_result(body: &Value) -> Result<RunOutput, String> {
    let value = body
        .get("value")
        .or_else(|| body.pointer("/properties/output/value"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no value[] in the Run Command result: {body}"))?;
    let msg = |i: &Value| {
        i.get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let code = |i: &Value| {
        i.get("code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    // Windows-style: one entry per stream.
    let by_stream = |s: &str| value.iter().find(|i| code(i).contains(s)).map(msg);
    let (stdout, stderr) = match (by_stream("/stdout/"), by_stream("/stderr/")) {
        (Some(o), e) => (o, e.unwrap_or_default()),
        _ => {
            let m = value.first().map(msg).unwrap_or_default();
            split_streams(&m)
        }
    };
    let mut status = None;
    let mut kept = Vec::new();
    for line in stdout.lines() {
        match line.trim().strip_prefix(EXIT_MARKER) {
            Some(s) => status = s.trim().parse().ok(),
            None => kept.push(line),
        }
    }
    Ok(RunOutput {
        stdout: kept.join("\n"),
        stderr: stderr.trim_end().to_string(),
        status,
    })
}

/// `Enable succeeded: \n[stdout]\n…\n[stderr]\n…` → (stdout, stderr).
fn split_streams(m: &str) -> (String, String) {
    let out = m.find("[stdout]");
    let err = m.find("[stderr]");
    let after = |i: usize, tag: &str| m[i + tag.len()..].trim_start_matches('\n').to_string();
    match (out, err) {
        (Some(o), Some(e)) if o < e => (
            m[o + "[stdout]".len()..e].trim_matches('\n').to_string(),
            after(e, "[stderr]"),
        ),
        (Some(o), _) => (after(o, "[stdout]"), String::new()),
        (None, Some(e)) => (String::new(), after(e, "[stderr]")),
        (None, None) => (m.to_string(), String::new()),
    }
}

/// Azure runs one Run Command at a time per VM and answers another with 409 `Conflict`
/// ("Run command extension execution is in progress. Please wait for completion before
/// invoking a run command.").
pub fn is_busy(e: &ArmError) -> bool {
    e.status() == Some(409) && e.code() == Some("Conflict")
}

impl Arm {
    /// Runs `script` (already [`wrap`]ped) as root on the VM and returns what it printed.
    /// While the VM is busy with another Run Command, tries again with capped exponential
    /// backoff for up to `run_command_wait`; then the error says it stayed busy.
    pub async fn run_shell(&self, rg: &str, vm: &str, script: &str) -> Result<RunOutput, ArmError> {
        let id = self.vm_id(rg, vm);
        let started = Instant::now();
        let mut wait = self
            .settings
            .retry_initial_delay
            .max(Duration::from_millis(50));
        let body = loop {
            match self
                .post_action(&id, "runCommand", COMPUTE_API, &request_body(script))
                .await
            {
                Err(e) if is_busy(&e) => {
                    if started.elapsed() + wait > self.settings.run_command_wait {
                        let ArmError::Api {
                            resource,
                            status,
                            code,
                            message,
                        } = e
                        else {
                            unreachable!("is_busy is an API error")
                        };
                        return Err(ArmError::Api {
                            resource,
                            status,
                            code,
                            message: format!(
                                "{message} (the VM stayed busy with another Run Command for {}s; Azure runs one at a time per VM)",
                                started.elapsed().as_secs()
                            ),
                        });
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.settings.retry_max_delay);
                }
                r => break r?,
            }
        };
        parse_result(&body).map_err(|message| ArmError::Protocol {
            resource: id,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_message_is_split_into_streams_with_the_exit_marker() {
        let body = json!({"value": [{
            "code": "ProvisioningState/succeeded", "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": "Enable succeeded: \n[stdout]\n[\"0xab\"]\nconsort-exit=0\n\n[stderr]\nwarning: x\n"
        }]});
        let o = parse_result(&body).unwrap();
        assert_eq!(o.stdout, "[\"0xab\"]");
        assert_eq!(o.stderr, "warning: x");
        assert_eq!(o.status, Some(0));
        assert!(o.check("a-vm").is_ok());
    }

    #[test]
    fn operation_status_shape_and_failures_name_the_vm() {
        let body = json!({"status": "Succeeded", "properties": {"output": {"value": [{
            "code": "ProvisioningState/succeeded",
            "message": "Enable succeeded: \n[stdout]\nconsort-exit=3\n[stderr]\nFatal: no IPC at /var/lib/consort/geth/geth.ipc\n"
        }]}}});
        let e = parse_result(&body)
            .unwrap()
            .check("acme-validator-0-vm")
            .unwrap_err();
        assert!(
            e.contains("acme-validator-0-vm") && e.contains("exited 3") && e.contains("no IPC"),
            "{e}"
        );
        // Per-stream entries (as Windows VMs report them).
        let body = json!({"value": [
            {"code": "ComponentStatus/StdOut/succeeded", "message": "hi\nconsort-exit=0"},
            {"code": "ComponentStatus/StdErr/succeeded", "message": ""}
        ]});
        assert_eq!(parse_result(&body).unwrap().stdout, "hi");
        // No marker: killed by the timeout.
        let body = json!({"value": [{"code": "x", "message": "Enable succeeded: \n[stdout]\npartial\n[stderr]\n"}]});
        let e = parse_result(&body).unwrap().check("v").unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(parse_result(&json!({})).is_err());
    }

    #[test]
    fn request_is_run_shell_script_lines() {
        let b = request_body(&wrap("echo hi"));
        assert_eq!(b["commandId"], "RunShellScript");
        let lines = b["script"].as_array().unwrap();
        assert_eq!(lines.last().unwrap(), &json!("echo \"consort-exit=$?\""));
    }
}
