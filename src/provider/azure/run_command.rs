//! Control of running VMs through VM Run Command: the shell scripts consort sends (each
//! talks to geth over its IPC socket on the VM, as root), and a VM as a Clique control
//! channel for `consensus::votes::vote` — so votes on Azure follow exactly the local rules
//! (majority, confirmation through `clique_getSigners`, discard, resume).
//!
//! Scripts honour `CONSORT_ROOT` like the bootstrap, so tests run them against real geth
//! under a directory. Everything they print that consort reads is on a line starting with
//! `consort-json=`; `arm::run_command::wrap` adds the exit status.

use super::arm::run_command::{wrap, RunOutput};
use super::arm::Arm;
use crate::consensus::control::{CliqueView, GovError, NodeControl};
use crate::crypto::Address;
use crate::render::vm_paths;
use crate::rpc::{self, CliqueProposal};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub(super) const JSON_MARKER: &str = "consort-json=";

/// What every script starts with: where geth and its IPC socket are, and `js` to run one
/// JavaScript expression in `geth attach`.
pub(super) fn prelude() -> String {
    format!(
        r#"ROOT="${{CONSORT_ROOT:-}}"
GETH="$ROOT/usr/local/bin/geth"
IPC="$ROOT{ipc}"
[ -S "$IPC" ] || {{ echo "geth is not running: no IPC socket at $IPC" >&2; exit 3; }}
js() {{ "$GETH" attach --exec "$1" "$IPC"; }}"#,
        ipc = vm_paths::IPC
    )
}

fn hex(a: &Address) -> String {
    rpc::hex_address(a)
}

/// Prints the signer set and pending proposals as one JSON line.
pub fn read_clique_script() -> String {
    wrap(&format!(
        "{}\njs 'console.log(\"{JSON_MARKER}\" + JSON.stringify({{signers: clique.getSigners(), proposals: clique.proposals}}))'",
        prelude()
    ))
}

/// A node's own view for the health check: head, peer count and the signer set.
pub fn node_status_script() -> String {
    wrap(&format!(
        "{}\njs 'console.log(\"{JSON_MARKER}\" + JSON.stringify({{block: eth.blockNumber, peers: net.peerCount, signers: clique.getSigners()}}))'",
        prelude()
    ))
}

/// `clique.propose(target, authorize)`.
pub fn propose_script(target: &Address, authorize: bool) -> String {
    wrap(&format!(
        "{}\njs 'clique.propose(\"{}\", {authorize})' >/dev/null\necho proposed",
        prelude(),
        hex(target)
    ))
}

/// `clique.discard(target)`.
pub fn discard_script(target: &Address) -> String {
    wrap(&format!(
        "{}\njs 'clique.discard(\"{}\")' >/dev/null\necho discarded",
        prelude(),
        hex(target)
    ))
}

/// A mesh change on a running VM: the new config (StaticNodes / TrustedNodes) replaces
/// the old one for the next start, and the live node adds and drops peers now.
pub fn peers_script(config_toml: &str, add: &[String], remove: &[String]) -> String {
    let mut s = prelude();
    s.push_str(&format!(
        "\ncat > \"$ROOT{cfg}.new\" <<'CONSORT_EOF'\n{config_toml}\nCONSORT_EOF\nchmod 0644 \"$ROOT{cfg}.new\"\nmv \"$ROOT{cfg}.new\" \"$ROOT{cfg}\"",
        cfg = vm_paths::CONFIG
    ));
    for e in add {
        s.push_str(&format!(
            "\njs 'admin.addTrustedPeer(\"{e}\") && admin.addPeer(\"{e}\")' >/dev/null"
        ));
    }
    for e in remove {
        s.push_str(&format!(
            "\njs 'admin.removeTrustedPeer(\"{e}\"); admin.removePeer(\"{e}\")' >/dev/null"
        ));
    }
    s.push_str(&format!(
        "\necho peers updated: {} added, {} removed",
        add.len(),
        remove.len()
    ));
    wrap(&s)
}

/// The `consort-json=` payload of a script's output.
pub fn json_line(out: &RunOutput) -> Result<Value, String> {
    let line = out
        .stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(JSON_MARKER))
        .ok_or_else(|| format!("no {JSON_MARKER} line in: {}", out.stdout.trim()))?;
    serde_json::from_str(line).map_err(|e| format!("bad JSON from the VM ({e}): {line}"))
}

/// Signers and pending proposals, from [`read_clique_script`]'s output.
pub fn parse_clique(v: &Value) -> Result<(Vec<Address>, Vec<CliqueProposal>), String> {
    let signers = v["signers"]
        .as_array()
        .ok_or("no signers")?
        .iter()
        .map(|a| {
            a.as_str()
                .and_then(rpc::parse_address)
                .ok_or_else(|| format!("bad signer {a}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let proposals = v["proposals"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(a, auth)| {
                    Some(CliqueProposal {
                        address: rpc::parse_address(a)?,
                        authorize: auth.as_bool()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((signers, proposals))
}

/// One VM reached through Run Command.
pub struct VmControl {
    pub arm: Arc<Arm>,
    pub rg: String,
    pub vm: String,
    pub runtime: tokio::runtime::Handle,
    pub poll: Duration,
}

impl VmControl {
    /// Runs a script and checks its exit status; errors name the VM.
    pub fn run(&self, script: &str) -> Result<RunOutput, String> {
        self.runtime
            .block_on(self.arm.run_shell(&self.rg, &self.vm, script))
            .map_err(|e| e.to_string())?
            .check(&self.vm)
    }

    pub fn clique(&self) -> Result<(Vec<Address>, Vec<CliqueProposal>), String> {
        let out = self.run(&read_clique_script())?;
        json_line(&out).and_then(|v| parse_clique(&v))
    }

    /// [`Self::clique`], telling a VM that could not be asked (Err: Run Command itself
    /// failed, e.g. the VM stayed busy) from one whose geth did not answer (Ok(None)).
    pub fn clique_read(&self) -> Result<Option<CliqueView>, String> {
        let out = self
            .runtime
            .block_on(
                self.arm
                    .run_shell(&self.rg, &self.vm, &read_clique_script()),
            )
            .map_err(|e| e.to_string())?;
        Ok(out
            .check(&self.vm)
            .and_then(|o| json_line(&o))
            .and_then(|v| parse_clique(&v))
            .ok())
    }
}

impl NodeControl for VmControl {
    fn signers(&self) -> Result<Vec<Address>, GovError> {
        self.clique().map(|c| c.0).map_err(GovError::Refused)
    }
    fn clique_view(&self) -> Result<CliqueView, GovError> {
        self.clique().map_err(GovError::Refused)
    }
    fn propose(&self, target: &Address, authorize: bool) -> Result<(), GovError> {
        self.run(&propose_script(target, authorize))
            .map(drop)
            .map_err(GovError::Refused)
    }
    fn discard(&self, target: &Address) -> Result<(), GovError> {
        self.run(&discard_script(target))
            .map(drop)
            .map_err(GovError::Refused)
    }
    fn poll_interval(&self) -> Duration {
        self.poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clique_reads_parse_and_scripts_carry_only_hex() {
        let a = rpc::parse_address("0x150d3f7209ab68efd96e71db61577d1395bb1a41").unwrap();
        let out = RunOutput {
            stdout: format!(
                "noise\n{JSON_MARKER}{}",
                json!({"signers": ["0x150d3f7209ab68efd96e71db61577d1395bb1a41"], "proposals": {"0x150d3f7209ab68efd96e71db61577d1395bb1a41": false}})
            ),
            stderr: String::new(),
            status: Some(0),
        };
        let (s, p) = parse_clique(&json_line(&out).unwrap()).unwrap();
        assert_eq!(s, vec![a]);
        assert_eq!(p.len(), 1);
        assert!(!p[0].authorize);
        let script = propose_script(&a, true);
        assert!(
            script.contains("clique.propose(\"0x150d3f7209ab68efd96e71db61577d1395bb1a41\", true)")
        );
        assert!(script.contains("geth.ipc"));
        assert!(json_line(&RunOutput::default()).is_err());
    }
}
