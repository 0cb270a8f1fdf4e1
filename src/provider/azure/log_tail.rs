//! A VM's log tail in errors: when a vote, the start of sealing or a health check fails,
//! the error quotes the last lines of what the VM's geth (and its sealing step) wrote,
//! fetched through Run Command and labelled with the VM.
//!
//! Where the logs are: `consort-geth.service` appends geth's output to
//! `/var/lib/consort/geth/geth.log` and `consort-seal.service` the sealing step's to
//! `seal.log` next to it (without systemd, the bootstrap writes the same files), so the
//! script reads the same files on Azure and off it. A VM whose bootstrap has not finished
//! has no geth log yet: then it quotes the bootstrap's journal where there is one.
//!
//! What the logs can hold: geth logs addresses, enode URLs, block hashes and peer
//! addresses, never a key or password (the keystore password reaches geth as a file); the
//! bootstrap prints no secret value (Key Vault answers go straight to 0600 files). Still,
//! the tail is redacted before it goes into an error: every secret value consort holds for
//! that node, and anything shaped like an access token (a JWT), become `<redacted>`.

use super::arm::run_command::wrap;
use super::layout::vm_name;
use super::AzureProvider;
use crate::parallel;
use crate::render::vm_paths;
use crate::state::State;
use crate::topology::Role;

/// Lines of geth's log quoted per VM.
pub const LOG_TAIL: usize = 20;
/// VMs whose log one error quotes at most (each is a Run Command).
pub const MAX_VMS: usize = 6;

/// Prints the last `lines` of geth's log, the sealing step's last states and, before the
/// bootstrap finished, its journal.
pub fn log_tail_script(lines: usize) -> String {
    wrap(&format!(
        r#"ROOT="${{CONSORT_ROOT:-}}"
D="$ROOT{datadir}"
if [ -s "$D/geth.log" ]; then tail -n {lines} "$D/geth.log"; else echo "(geth has written no log yet)"; fi
if [ -s "$D/seal.log" ]; then echo "--- sealing step (seal.log):"; tail -n 5 "$D/seal.log"; fi
if [ ! -e "$ROOT{done}" ]; then
  echo "--- bootstrap not finished:"
  if [ -z "$ROOT" ] && command -v journalctl >/dev/null 2>&1; then
    journalctl -u consort-bootstrap.service -n {lines} --no-pager -o cat
  else
    echo "(no systemd journal here)"
  fi
fi"#,
        datadir = vm_paths::DATADIR,
        done = vm_paths::BOOTSTRAPPED
    ))
}

/// Prints the last `lines` of geth's log (`consort logs` on Azure).
pub fn geth_log_script(lines: usize) -> String {
    wrap(&format!(
        r#"ROOT="${{CONSORT_ROOT:-}}"
D="$ROOT{datadir}"
if [ -s "$D/geth.log" ]; then tail -n {lines} "$D/geth.log"; else echo "(geth has written no log yet: its bootstrap has not finished)" >&2; exit 3; fi"#,
        datadir = vm_paths::DATADIR,
    ))
}

/// `text` with every one of `secrets` (and each JWT-shaped token) replaced by `<redacted>`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().map(|s| s.trim()).filter(|s| s.len() >= 8) {
        out = out.replace(s, "<redacted>");
    }
    // Access tokens: `eyJ…` (base64url JSON header), two dots, long.
    let is_tok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut res = String::with_capacity(out.len());
    let mut word = String::new();
    let flush = |w: &mut String, res: &mut String| {
        if w.starts_with("eyJ") && w.matches('.').count() == 2 && w.len() > 40 {
            res.push_str("<redacted>");
        } else {
            res.push_str(w);
        }
        w.clear();
    };
    for c in out.chars() {
        if is_tok(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut res);
            res.push(c);
        }
    }
    flush(&mut word, &mut res);
    res
}

impl AzureProvider {
    /// The secret values consort holds for `node` (what its VM's logs must never show).
    fn secrets_of(&self, st: &State, node: &str) -> Vec<String> {
        let role = if st.resources.contains_key(&format!("key.signer.{node}")) {
            Role::Validator
        } else {
            Role::Tx
        };
        let mut v: Vec<String> = self
            .secret_values(st, node, role)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        // The keystore's ciphertext alone, should a log ever quote part of the file.
        let cipher = v.iter().find_map(|ks| {
            let js: serde_json::Value = serde_json::from_str(ks).ok()?;
            js["crypto"]["ciphertext"].as_str().map(str::to_string)
        });
        v.extend(cipher);
        v
    }

    /// `consort logs`: the last `lines` of each of `nodes`' geth logs, read on their VMs by
    /// Run Command (all at once), secrets redacted.
    pub(super) fn geth_logs(
        &self,
        st: &State,
        nodes: &[&str],
        lines: usize,
    ) -> Vec<Result<String, String>> {
        parallel::map(nodes, parallel::PROBE_CONCURRENCY, |node| {
            let out = self
                .control(node)
                .map_err(|e| e.to_string())?
                .run(&geth_log_script(lines))?;
            Ok(redact(&out.stdout, &self.secrets_of(st, node)))
        })
    }

    /// For a failed health check: the log tails of the tx nodes with problems, then of the
    /// validators (whose sealing moves the head; their sealing step's states are quoted).
    pub(super) fn unhealthy_logs(&self, st: &State, h: &crate::provider::Health) -> String {
        let mut nodes: Vec<&str> = h
            .nodes
            .iter()
            .filter(|n| !n.problems.is_empty())
            .map(|n| n.name.as_str())
            .collect();
        let validators = st
            .resources
            .keys()
            .filter_map(|a| a.strip_prefix("key.signer."))
            .filter(|n| st.resources.contains_key(&super::layout::vm_addr(n)));
        for v in validators {
            if !nodes.contains(&v) {
                nodes.push(v);
            }
        }
        self.log_tails(st, &nodes)
    }

    /// For an error message: the log tail of each of `nodes`' VMs (at most [`MAX_VMS`]),
    /// all fetched at once by Run Command, each labelled with its VM, secrets redacted.
    pub(super) fn log_tails(&self, st: &State, nodes: &[&str]) -> String {
        let shown = &nodes[..nodes.len().min(MAX_VMS)];
        let mut tails = parallel::map(shown, MAX_VMS, |node| {
            let body = match self.control(node) {
                Ok(vm) => vm
                    .run(&log_tail_script(LOG_TAIL))
                    .map(|out| out.stdout)
                    .unwrap_or_else(|e| format!("(log unavailable: {e})")),
                Err(e) => format!("(log unavailable: {e})"),
            };
            let body = redact(body.trim_end(), &self.secrets_of(st, node));
            format!(
                "last {LOG_TAIL} lines of geth's log on VM {} (node {node}, by Run Command):\n  {}",
                vm_name(node),
                body.replace('\n', "\n  ")
            )
        });
        if nodes.len() > shown.len() {
            tails.push(format!(
                "(logs of {} more VM(s) not shown: `consort logs <node>` or the VM's Run Command)",
                nodes.len() - shown.len()
            ));
        }
        tails.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_known_secrets_and_tokens_only() {
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        let jwt =
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0In0.c2lnbmF0dXJl";
        let log = format!(
            "INFO Started P2P networking self=enode://ab@10.0.0.4:30303\nkey={key} \"{jwt}\"\nhash=0x9f3e..1a2b"
        );
        let r = redact(&log, &[format!("{key}\n"), "short".into()]);
        assert!(!r.contains(key) && !r.contains(jwt), "{r}");
        assert_eq!(r.matches("<redacted>").count(), 2, "{r}");
        assert!(r.contains("self=enode://ab@10.0.0.4:30303") && r.contains("hash=0x9f3e..1a2b"));
        let script = log_tail_script(20);
        assert!(script.contains("tail -n 20 \"$D/geth.log\""), "{script}");
        assert!(script.contains("journalctl -u consort-bootstrap.service -n 20 --no-pager"));
    }
}
