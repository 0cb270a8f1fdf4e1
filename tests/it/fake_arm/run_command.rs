//! `POST {vm}/runCommand` (`RunShellScript`): 202 with `Azure-AsyncOperation` and
//! `Location`; the script runs (as the VM's root user would run it) on its own thread,
//! with `CONSORT_ROOT` set to the VM's boot root (an empty, missing root for a VM that did
//! not boot, so a script finds no geth there). The operation then reports `Succeeded` with
//! `properties.output = {"value": [{"code", "message"}]}`, the Location answers 200 with
//! the same result; `message` is Azure's Linux shape `Enable succeeded: \n[stdout]\n…
//! \n[stderr]\n…`, each stream cut to its last 4096 bytes as Azure does.

use super::*;

impl FakeArm {
    /// Makes VM `vm` (every VM: None) busy with a Run Command of someone else's, for `for_`
    /// (None: until [`FakeArm::release_run_commands`]).
    pub fn hold_run_commands(&self, vm: Option<&str>, for_: Option<Duration>) {
        let mut g = self.shared.lock().unwrap();
        let until = for_.map(|d| Instant::now() + d);
        let vms: Vec<String> = g
            .resources
            .iter()
            .filter(|(_, s)| s.rtype == "Microsoft.Compute/virtualMachines")
            .filter(|(_, s)| vm.is_none_or(|v| s.name.eq_ignore_ascii_case(v)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in vms {
            g.run_busy.insert(k, until);
        }
    }

    /// Ends every foreign Run Command [`FakeArm::hold_run_commands`] started.
    pub fn release_run_commands(&self) {
        self.shared.lock().unwrap().run_busy.clear();
    }

    /// Run Command POSTs answered 409 `Conflict` so far.
    pub fn run_command_conflicts(&self) -> usize {
        self.shared.lock().unwrap().run_conflicts
    }
}

/// Azure runs one Run Command at a time per VM: while one runs (ours, or one held by the
/// test for someone else), another POST answers 409 `Conflict` "Run command extension
/// execution is in progress. Please wait for completion before invoking a run command."
/// (VirtualMachines_RunCommand, specification/compute/resource-manager/Microsoft.Compute/
/// ComputeRP/stable/2024-07-01/virtualMachine.json: CloudError body; code and text as
/// ARM returns them).
fn busy(g: &mut Inner, key: &str) -> Option<Response> {
    let held = match g.run_busy.get(key) {
        Some(None) => true,
        Some(Some(until)) => Instant::now() < *until,
        None => false,
    };
    let ours = g.ops.iter().any(|(id, o)| {
        o.kind == OpKind::Action && o.key == key && !g.action_results.contains_key(id)
    });
    if !(held || ours) {
        return None;
    }
    g.run_conflicts += 1;
    Some(arm_error(
        409,
        "Conflict",
        "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
    ))
}

const OUTPUT_LIMIT: usize = 4096;

fn tail(s: &str) -> &str {
    if s.len() <= OUTPUT_LIMIT {
        return s;
    }
    let mut i = s.len() - OUTPUT_LIMIT;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

pub(super) fn post(
    g: &mut Inner,
    shared: &Shared,
    vm_id: &str,
    vm: &str,
    body: &Value,
    api: &str,
) -> Response {
    let key = vm_id.to_ascii_lowercase();
    match g.resources.get(&key) {
        None => {
            return arm_error(
                404,
                "ResourceNotFound",
                &format!("The Resource '{vm_id}' was not found."),
            )
        }
        Some(s) if s.state != "Succeeded" => {
            return arm_error(
                409,
                "OperationNotAllowed",
                &format!("VM {vm} is {}: Run Command needs a running VM.", s.state),
            )
        }
        _ => {}
    }
    if let Some(r) = busy(g, &key) {
        return r;
    }
    if body["commandId"].as_str() != Some("RunShellScript") {
        return arm_error(
            400,
            "InvalidParameter",
            "commandId must be RunShellScript on a Linux VM",
        );
    }
    let script: Vec<String> = body["script"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let script = script.join("\n");
    let host = g.hosts.vms.get(&vm.to_ascii_lowercase());
    let env = host.map(|h| h.env.clone()).unwrap_or_default();
    let root = host
        .map(|h| h.root.clone())
        .unwrap_or_else(|| std::path::PathBuf::from("/nonexistent/fake-arm-vm-without-boot"));
    let op = g.new_op(&key, OpKind::Action, None);
    let shared = shared.clone();
    let op_id = op.clone();
    std::thread::spawn(move || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .envs(env)
            .env("CONSORT_ROOT", &root)
            .output();
        let (stdout, stderr) = match out {
            Ok(o) => (
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
            Err(e) => (String::new(), format!("cannot run the script: {e}")),
        };
        let result = json!({"value": [{
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": format!("Enable succeeded: \n[stdout]\n{}\n[stderr]\n{}", tail(&stdout), tail(&stderr)),
        }]});
        shared.lock().unwrap().action_results.insert(op_id, result);
    });
    let loc = g
        .resources
        .get(&key)
        .and_then(|s| {
            s.body
                .get("location")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "westeurope".into());
    let mut h = g.retry_after();
    let async_url = g.op_url("operations", "Microsoft.Compute", &loc, &op, api);
    let loc_url = g.op_url("operationResults", "Microsoft.Compute", &loc, &op, api);
    h.insert(
        "azure-asyncoperation",
        HeaderValue::from_str(&async_url).unwrap(),
    );
    h.insert("location", HeaderValue::from_str(&loc_url).unwrap());
    empty(202, h)
}
