//! `consort stop` / `consort start` on Azure: geth is stopped and started on each VM by
//! Run Command (the channel votes and status use), its data, keys and VM kept. Like the
//! local provider, every node is stopped at once (sealing stops with them, so the chain
//! halts at one head and nothing forks) and marked "stopped by consort"; the mark is a file
//! on the VM, so every view (refresh, status) reads it where the truth is. A geth process
//! that runs but does not answer is not restarted (a restart would not replace it). `start` is an
//! apply of only restarts: a refresh reports each VM whose geth is down as "restart (geth
//! not running on its VM)", the Update runs the start script, and the health wait follows.
//!
//! On a real VM geth and its sealer are the systemd units `consort-geth` and
//! `consort-seal` (`systemctl stop` keeps `Restart=always` from bringing them back); where
//! systemd is not running (`/run/systemd/system` absent, as `sd_booted(3)` checks; a VM
//! booted by the test stand-in) the bootstrap's pid files are used, the way it starts them.

use super::arm::run_command::wrap;
use super::layout::vm_name;
use super::run_command::json_line;
use super::AzureProvider;
use crate::events::{Event, EventSink};
use crate::parallel;
use crate::plan::Change;
use crate::provider::{ApplyCtx, Down, Health, ProviderError};
use crate::render::vm_paths;
use crate::state::Kind;
use crate::state::{ResourceState, State};
use std::collections::BTreeMap;

/// The VM-side mark of `consort stop` (removed by the start script).
pub const STOPPED_MARK: &str = "/var/lib/consort/stopped-by-consort";

/// What the stop/start scripts share: paths, `alive` (a pid that is not a zombie) and
/// `SYSTEMD` (set when systemd runs the VM).
fn prelude() -> String {
    format!(
        r#"ROOT="${{CONSORT_ROOT:-}}"
M="$ROOT/var/lib/consort"
DATA="$ROOT{data}"
MARK="$ROOT{mark}"
SYSTEMD=""
[ -d /run/systemd/system ] && [ -z "$ROOT" ] && SYSTEMD=1
alive() {{ [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }}
pid_of() {{ cat "$DATA/$1" 2>/dev/null || true; }}
answers() {{ [ -S "$DATA/geth.ipc" ] && "$ROOT/usr/local/bin/geth" attach --exec 1 "$DATA/geth.ipc" >/dev/null 2>&1; }}
geth_up() {{
  answers && return 0
  if [ -n "$SYSTEMD" ]; then systemctl is-active --quiet consort-geth.service; else alive "$(pid_of geth.pid)"; fi
}}
sealer_up() {{
  if [ -n "$SYSTEMD" ]; then systemctl is-active --quiet consort-seal.service; else alive "$(pid_of seal.pid)"; fi
}}
units() {{ for u in consort-seal consort-geth; do [ -e "$ROOT/etc/systemd/system/$u.service" ] && echo "$u.service"; done; }}"#,
        data = vm_paths::DATADIR,
        mark = STOPPED_MARK,
    )
}

/// Stops the sealer, then geth (SIGTERM, so geth writes its state; SIGKILL after 60 s),
/// marks the VM stopped by consort and prints `{was_running}`.
pub fn stop_script() -> String {
    wrap(&format!(
        r#"{}
running=false
geth_up && running=true
touch "$MARK"
if [ -n "$SYSTEMD" ]; then
  systemctl stop $(units)
else
  for f in seal.pid geth.pid; do
    pid=$(pid_of $f)
    alive "$pid" || continue
    running=true
    kill -TERM "$pid"
    i=0
    while alive "$pid"; do
      i=$((i + 1))
      [ "$i" -eq 600 ] && kill -KILL "$pid"
      sleep 0.1
    done
  done
fi
rm -f "$DATA/geth.ipc"
echo "consort-json={{\"was_running\": $running}}""#,
        prelude()
    ))
}

/// Starts geth again (nothing before the bootstrap finished: it starts geth and its sealer
/// itself) and removes the stop mark; prints `{started, was_up, sealer}` (`was_up`: geth
/// ran already; `sealer`: the VM has a seal.sh, a validator). Not the sealer: sealing starts in the order `super::sealing`
/// gives, then [`start_sealer_script`] starts seal.sh to keep watch.
pub fn start_script() -> String {
    wrap(&format!(
        r#"{}
if [ ! -e "$ROOT{boot}" ]; then
  echo 'consort-json={{"started": false, "sealer": false}}'
  exit 0
fi
rm -f "$MARK"
was_up=false
geth_up && was_up=true
if [ -n "$SYSTEMD" ]; then
  systemctl start consort-geth.service
elif ! alive "$(pid_of geth.pid)"; then
  nohup "$M/run-geth.sh" >>"$DATA/geth.log" 2>&1 </dev/null &
  echo $! >"$DATA/geth.pid"
fi
sealer=false
[ -x "$M/seal.sh" ] && sealer=true
echo "consort-json={{\"started\": true, \"was_up\": $was_up, \"sealer\": $sealer}}""#,
        prelude(),
        boot = vm_paths::BOOTSTRAPPED,
    ))
}

/// Starts the VM's seal.sh (unit `consort-seal`), which starts sealing once ready and
/// keeps watch (it finds `eth.mining` true where consort started sealing); prints
/// `{sealer}` (false: no seal.sh, not a validator).
pub fn start_sealer_script() -> String {
    wrap(&format!(
        r#"{}
if [ ! -x "$M/seal.sh" ]; then
  echo 'consort-json={{"sealer": false}}'
  exit 0
fi
if [ -n "$SYSTEMD" ]; then
  systemctl start consort-seal.service
elif ! alive "$(pid_of seal.pid)"; then
  nohup "$M/seal.sh" >>"$DATA/seal.log" 2>&1 </dev/null &
  echo $! >"$DATA/seal.pid"
fi
echo 'consort-json={{"sealer": true}}'"#,
        prelude(),
    ))
}

/// Prints `{running, stopped_by_consort, bootstrapped, sealer_down}` (`sealer_down`: a
/// validator whose geth runs without its seal.sh, e.g. a `consort start` interrupted
/// before sealing was started).
pub fn state_script() -> String {
    wrap(&format!(
        r#"{}
b() {{ if [ -e "$1" ]; then echo true; else echo false; fi; }}
running=false
geth_up && running=true
sealer_down=false
[ "$running" = true ] && [ -x "$M/seal.sh" ] && ! sealer_up && sealer_down=true
echo "consort-json={{\"running\": $running, \"stopped_by_consort\": $(b "$MARK"), \"bootstrapped\": $(b "$ROOT{boot}"), \"sealer_down\": $sealer_down}}""#,
        prelude(),
        boot = vm_paths::BOOTSTRAPPED,
    ))
}

/// geth on one VM, as [`state_script`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmGeth {
    pub running: bool,
    pub stopped_by_consort: bool,
    pub bootstrapped: bool,
    /// A validator's geth runs, its seal.sh does not.
    pub sealer_down: bool,
}

/// Every node with a VM in state.
fn vm_nodes(state: &State) -> Vec<String> {
    state
        .resources
        .iter()
        .filter(|(_, r)| r.kind == Kind::AzureVm)
        .filter_map(|(a, _)| a.strip_prefix("azure.vm.").map(str::to_string))
        .collect()
}

impl AzureProvider {
    /// `consort stop`: every VM's geth at once; returns the nodes whose geth was running.
    pub(super) fn stop_vms(
        &self,
        state: &State,
        events: &EventSink,
    ) -> Result<Vec<String>, ProviderError> {
        let nodes = vm_nodes(state);
        let script = stop_script();
        let results = parallel::map(&nodes, parallel::PROBE_CONCURRENCY, |node| {
            let r = self
                .control(node)
                .map_err(|e| e.to_string())
                .and_then(|vm| vm.run(&script))
                .and_then(|out| json_line(&out))
                .map(|v| v["was_running"].as_bool().unwrap_or(false));
            if r == Ok(true) {
                events(Event::Step {
                    subject: node.clone(),
                    step: "stopped".into(),
                });
            }
            r
        });
        let mut stopped = Vec::new();
        let mut failed = Vec::new();
        for (node, r) in nodes.into_iter().zip(results) {
            match r {
                Ok(true) => stopped.push(node),
                Ok(false) => {}
                Err(e) => failed.push(format!("node.{node} (VM {}): {e}", vm_name(&node))),
            }
        }
        if !failed.is_empty() {
            return Err(ProviderError::Other(format!(
                "could not stop every node (the others are stopped; `consort stop` again tries the rest):\n  {}",
                failed.join("\n  ")
            )));
        }
        Ok(stopped)
    }

    /// geth on each VM in state (None: Run Command could not tell).
    pub(super) fn vm_geth(&self, state: &State) -> BTreeMap<String, Option<VmGeth>> {
        let nodes = vm_nodes(state);
        let script = state_script();
        let reads = parallel::map(&nodes, parallel::PROBE_CONCURRENCY, |node| {
            let v = self
                .control(node)
                .ok()?
                .run(&script)
                .ok()
                .and_then(|o| json_line(&o).ok())?;
            Some(VmGeth {
                running: v["running"].as_bool()?,
                stopped_by_consort: v["stopped_by_consort"].as_bool()?,
                bootstrapped: v["bootstrapped"].as_bool()?,
                sealer_down: v["sealer_down"].as_bool().unwrap_or(false),
            })
        });
        nodes.into_iter().zip(reads).collect()
    }

    /// Refresh drift: a VM whose geth is down after its bootstrap finished (stopped by
    /// `consort stop`, or exited) is restarted by the next apply / `consort start`.
    pub(super) fn refresh_geth(&self, state: &State, drift: &mut BTreeMap<String, String>) {
        for (node, g) in self.vm_geth(state) {
            let Some(g) = g else { continue };
            let addr = format!("azure.vm.{node}");
            if drift.contains_key(&addr) {
                continue;
            }
            if g.running && g.sealer_down && g.bootstrapped {
                // A restart of geth's sealing: the Update starts it in order (`sealing`).
                drift.insert(
                    addr,
                    "restart sealing (its seal.sh not running on its VM, geth runs)".into(),
                );
                continue;
            }
            if g.running || !(g.bootstrapped || g.stopped_by_consort) {
                continue;
            }
            drift.insert(
                addr,
                if g.stopped_by_consort {
                    "restart (geth not running on its VM: stopped by `consort stop`)".into()
                } else {
                    "restart (geth not running on its VM: it exited, not by `consort stop`)".into()
                },
            );
        }
    }

    /// An unhealthy network's nodes whose geth is down on their VM, read there by Run
    /// Command: each says so (stopped by `consort stop` or not), and when none runs, the
    /// network is down ([`Down`]) like a local one.
    pub(super) fn mark_stopped(&self, state: &State, h: &mut Health) {
        let vms = self.vm_geth(state);
        for n in &mut h.nodes {
            if let Some(Some(g)) = vms.get(&n.name) {
                if !g.running && g.bootstrapped {
                    n.running = false;
                    n.problems = vec![if g.stopped_by_consort {
                        "geth not running on its VM (stopped by `consort stop`)".into()
                    } else {
                        "geth not running on its VM: it exited or was killed, not by `consort stop` (`consort start` or `consort apply` starts it again)".into()
                    }];
                }
            }
        }
        let known: Vec<VmGeth> = vms.values().flatten().copied().collect();
        if !known.is_empty() && known.len() == vms.len() && known.iter().all(|g| !g.running) {
            h.down = Some(if known.iter().all(|g| g.stopped_by_consort) {
                Down::Stopped
            } else {
                Down::Crashed
            });
        }
    }

    /// The Update of a VM a refresh found with geth down: the start script; the VM itself
    /// is unchanged (the health wait that follows checks geth).
    pub(super) fn start_vm(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let node = change
            .addr
            .strip_prefix("azure.vm.")
            .unwrap_or(&change.addr)
            .to_string();
        let recorded = ctx
            .snapshot()
            .resources
            .get(&change.addr)
            .cloned()
            .ok_or_else(|| ProviderError::at(&change.addr, "not in state"))?;
        let out = self
            .control(&node)?
            .run(&start_script())
            .and_then(|out| json_line(&out))
            .map_err(|e| ProviderError::at(&change.addr, e))?;
        if out["started"].as_bool() == Some(true) && out["sealer"].as_bool() == Some(true) {
            // Sealing starts once every restarted validator is up (`after_apply`).
            self.to_seal.lock().unwrap().insert(node.clone());
        }
        if out["was_up"].as_bool() != Some(true) {
            ctx.emit(Event::Step {
                subject: node,
                step: "started".into(),
            });
        }
        Ok(recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_hold_no_secret_and_use_the_vm_paths() {
        for s in [stop_script(), start_script(), state_script()] {
            assert!(s.contains(vm_paths::DATADIR), "{s}");
            assert!(s.contains(STOPPED_MARK), "{s}");
            assert!(!s.contains("password"), "{s}");
        }
        assert!(stop_script().contains("systemctl stop"));
        assert!(start_script().contains("systemctl start"));
    }
}
