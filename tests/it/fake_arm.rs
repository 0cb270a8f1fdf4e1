//! A stateful stand-in for Azure Resource Manager, for tests and benches.
//!
//! It speaks the protocol consort relies on, as ARM documents it:
//! - bearer auth (401 `AuthenticationFailed` / `InvalidAuthenticationToken` otherwise),
//!   `api-version` required (400 `MissingApiVersionParameter`), case-insensitive paths;
//! - PUT → 201 (200 on update) with the resource in a non-terminal `provisioningState`
//!   ("Creating" / "Updating") and an `Azure-AsyncOperation` URL; the operation answers
//!   `InProgress` for `polls_in_progress` polls and at least `latency`, then `Succeeded`
//!   (or `Failed` with an error, when injected); GETs of the resource show the state;
//! - DELETE → 202 with a `Location` URL that answers 202 until done, then 204;
//! - 429 / 503 with `Retry-After` (injected, for the first N matching requests);
//! - ARM error bodies `{"error":{"code","message","details"}}` (injectable per resource
//!   name, e.g. QuotaExceeded / SkuNotAvailable);
//! - referential integrity: a PUT that refers to a missing resource fails with
//!   `InvalidResourceReference`, to one not yet provisioned with
//!   `ReferencedResourceNotProvisioned`; DELETE of something in use fails with
//!   `InUseSubnetCannotBeDeleted`, `NicInUse`, `PublicIPAddressInUse`,
//!   `InUseNetworkSecurityGroupCannotBeDeleted`; a VNet PUT that drops a subnet deletes it
//!   (or fails if it is in use), like ARM;
//! - a VM whose OS disk is not `deleteOption: Delete` leaves a disk resource behind;
//! - `customData` is accepted but never returned (tests read it with [`FakeArm::custom_data`]);
//! - a request log (method, path) and the peak number of operations in flight;
//! - Key Vault (vaults, their data plane, soft delete), managed identities, IMDS and
//!   role assignments ([`key_vault`]), NAT gateways and any other tagged resource
//!   generically, VM Run Command ([`run_command`]), and VMs that really boot from their
//!   customData here ([`vm_host`]).
//!
//! It listens on 127.0.0.1:0 in its own thread and runtime, so it serves synchronous and
//! async tests alike, and stops on drop. Benches include it with `#[path]`.

#![allow(dead_code)]

// Explicit paths: benches include this file with #[path] too.
#[path = "fake_arm/key_vault.rs"]
mod key_vault;
// Benches include this file without using it.
#[allow(unused_imports)]
pub use key_vault::{contributor, jwt_with_oid};
#[path = "fake_arm/run_command.rs"]
mod run_command;
#[path = "fake_arm/vm_host.rs"]
pub mod vm_host;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "fake-arm-token";
/// The stand-in's Key Vault token (audience `https://vault.azure.net`).
pub const VAULT_TOKEN: &str = "fake-vault-token";
pub const SUBSCRIPTION: &str = "11111111-2222-3333-4444-555555555555";

/// How a PUT announces its long-running operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStyle {
    /// 201 + `Azure-AsyncOperation` (what the network and compute providers do).
    AsyncOperation,
    /// 201 with a non-terminal provisioningState and no header: poll the resource.
    ProvisioningState,
}

/// How a DELETE announces its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteStyle {
    /// 202 + `Location`.
    Location,
    /// 202 + `Azure-AsyncOperation`.
    AsyncOperation,
}

#[derive(Debug, Clone)]
pub struct FakeArmConfig {
    pub token: String,
    /// The token Key Vault's data plane accepts; the ARM token gets 401 there.
    pub vault_token: String,
    /// How long a new role assignment takes to take effect at Key Vault (Azure: up to
    /// ~10 minutes). Zero by default.
    pub role_propagation: Duration,
    /// The object id behind the caller's tokens, when the test gives one (the ARM token is
    /// then a JWT carrying it, see [`jwt_with_oid`]): Key Vault then lets the caller write
    /// secrets only once "Key Vault Secrets Officer" on the vault has taken effect for it.
    /// None: the vault token holder is officer everywhere.
    pub caller_oid: Option<String>,
    pub subscription_id: String,
    /// Polls (of the operation URL or of the resource) answered in progress before done.
    pub polls_in_progress: u32,
    /// Minimum duration of every operation.
    pub latency: Duration,
    /// An operation nobody polls completes on its own after this long (as in Azure).
    pub unattended_completion: Duration,
    pub put_style: PutStyle,
    pub delete_style: DeleteStyle,
    /// `retry-after-ms` on operation answers (None: no Retry-After at all).
    pub poll_retry_after_ms: Option<u64>,
    /// Resources per page of a group listing.
    pub page_size: usize,
    /// Public IPs are handed out as `<prefix><n>` (loopback by default, so even a stray
    /// health probe never leaves the machine).
    pub public_ip_prefix: String,
    /// Booted VMs' public IPs forward geth's RPC ports to their private IPs, as Azure's
    /// NAT does (see `vm_host`). Off by default: the default public IPs share the
    /// loopback VNet's addresses; a test turning it on picks a prefix of its own.
    pub public_ip_nat: bool,
    /// How long a NIC stays reserved for its VM once the VM is deleted (Azure: 180 s; see
    /// [`nic_reserved`]). Short here so tests stay fast; the error states it in seconds.
    pub nic_reservation: Duration,
    /// The caller's roles, as `Microsoft.Authorization/permissions` lists them (default:
    /// Owner's). [`contributor`] is Contributor's.
    pub caller_permissions: Value,
}

impl Default for FakeArmConfig {
    fn default() -> Self {
        FakeArmConfig {
            token: TOKEN.into(),
            vault_token: VAULT_TOKEN.into(),
            role_propagation: Duration::ZERO,
            caller_oid: None,
            subscription_id: SUBSCRIPTION.into(),
            polls_in_progress: 2,
            latency: Duration::ZERO,
            unattended_completion: Duration::from_secs(2),
            put_style: PutStyle::AsyncOperation,
            delete_style: DeleteStyle::Location,
            poll_retry_after_ms: Some(10),
            page_size: 100,
            public_ip_prefix: "127.0.0.".into(),
            public_ip_nat: false,
            nic_reservation: Duration::from_secs(1),
            caller_permissions: json!([{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}]),
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub at: Duration,
}

/// Answer the first `times` requests matching `method` / `path_contains` with `status`
/// (429 or 503) and `Retry-After: retry_after_secs`.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub method: Option<String>,
    pub path_contains: Option<String>,
    pub times: u32,
    pub retry_after_secs: u64,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Injection {
    name: String,
    method: String,
    status: u16,
    code: String,
    message: String,
    remaining: Option<u32>,
}

#[derive(Debug, Clone)]
struct Stored {
    id: String,
    rtype: String,
    name: String,
    body: Value,
    state: String,
    pending_op: Option<String>,
    custom_data: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Put,
    Delete,
    /// A POST action (runCommand): done once its result is in `action_results`.
    Action,
}

#[derive(Debug, Clone)]
struct Op {
    key: String,
    kind: OpKind,
    started: Instant,
    polls: u32,
    /// None while running; Some(None) succeeded; Some(Some((code, msg))) failed.
    result: Option<Option<(String, String)>>,
    fail_with: Option<(String, String)>,
}

struct Inner {
    cfg: FakeArmConfig,
    base: String,
    t0: Instant,
    resources: BTreeMap<String, Stored>,
    ops: HashMap<String, Op>,
    log: Vec<Logged>,
    throttles: Vec<Throttle>,
    injections: Vec<Injection>,
    failing_ops: HashMap<String, (String, String)>,
    next_op: u64,
    next_ip: u32,
    peak_ops: usize,
    vaults: key_vault::VaultState,
    hosts: vm_host::Hosts,
    action_results: HashMap<String, Value>,
    /// NIC key → (reserved until, the deleted VM's id).
    nic_reserved: HashMap<String, (Instant, String)>,
    /// VM key → a foreign Run Command keeps it busy until then (None: until released).
    run_busy: HashMap<String, Option<Instant>>,
    run_conflicts: usize,
}

type Shared = Arc<Mutex<Inner>>;

/// The running stand-in. Dropping it stops the server.
pub struct FakeArm {
    base: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        // Booted VMs' processes go with the stand-in.
        std::mem::take(&mut self.shared.lock().unwrap().hosts.vms)
            .into_values()
            .for_each(drop);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FakeArm {
    pub fn start() -> FakeArm {
        FakeArm::with_config(FakeArmConfig::default())
    }

    pub fn with_config(cfg: FakeArmConfig) -> FakeArm {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let shared: Shared = Arc::new(Mutex::new(Inner {
            cfg,
            base: base.clone(),
            t0: Instant::now(),
            resources: BTreeMap::new(),
            ops: HashMap::new(),
            log: Vec::new(),
            throttles: Vec::new(),
            injections: Vec::new(),
            failing_ops: HashMap::new(),
            next_op: 1,
            next_ip: 10,
            peak_ops: 0,
            vaults: Default::default(),
            hosts: Default::default(),
            action_results: HashMap::new(),
            nic_reserved: HashMap::new(),
            run_busy: HashMap::new(),
            run_conflicts: 0,
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("fake-arm".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake ARM runtime");
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        r = axum::serve(l, app) => { r.expect("fake ARM serve"); }
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn fake ARM thread");
        FakeArm {
            base,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.base
    }
    pub fn token(&self) -> String {
        self.shared.lock().unwrap().cfg.token.clone()
    }
    pub fn vault_token(&self) -> String {
        self.shared.lock().unwrap().cfg.vault_token.clone()
    }
    pub fn subscription_id(&self) -> String {
        self.shared.lock().unwrap().cfg.subscription_id.clone()
    }

    /// Changes the configuration of the running server.
    pub fn configure(&self, f: impl FnOnce(&mut FakeArmConfig)) {
        f(&mut self.shared.lock().unwrap().cfg)
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.lock().unwrap().log.clone()
    }

    /// Requests with this method whose path contains `path_contains` (case-insensitive).
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        let needle = path_contains.to_ascii_lowercase();
        self.requests()
            .iter()
            .filter(|l| {
                l.method.eq_ignore_ascii_case(method)
                    && l.path.to_ascii_lowercase().contains(&needle)
            })
            .count()
    }

    pub fn clear_log(&self) {
        self.shared.lock().unwrap().log.clear();
    }

    /// Most operations that were running at the same time.
    pub fn peak_concurrent_operations(&self) -> usize {
        self.shared.lock().unwrap().peak_ops
    }

    pub fn throttle(&self, t: Throttle) {
        self.shared.lock().unwrap().throttles.push(t);
    }

    /// Every PUT of a resource named `name` fails (`times`: the first N only) with an ARM
    /// error body.
    pub fn fail_put(&self, name: &str, status: u16, code: &str, message: &str, times: Option<u32>) {
        self.inject("PUT", name, status, code, message, times)
    }

    pub fn fail_delete(
        &self,
        name: &str,
        status: u16,
        code: &str,
        message: &str,
        times: Option<u32>,
    ) {
        self.inject("DELETE", name, status, code, message, times)
    }

    fn inject(
        &self,
        method: &str,
        name: &str,
        status: u16,
        code: &str,
        message: &str,
        times: Option<u32>,
    ) {
        self.shared.lock().unwrap().injections.push(Injection {
            name: name.to_ascii_lowercase(),
            method: method.into(),
            status,
            code: code.into(),
            message: message.into(),
            remaining: times,
        });
    }

    /// PUTs of `name` are accepted but their operation ends `Failed` with this error.
    pub fn fail_operation(&self, name: &str, code: &str, message: &str) {
        self.shared
            .lock()
            .unwrap()
            .failing_ops
            .insert(name.to_ascii_lowercase(), (code.into(), message.into()));
    }

    /// A resource consort did not create (e.g. someone's storage account), provisioned.
    pub fn add_foreign(&self, rg: &str, rtype: &str, name: &str) -> String {
        let mut g = self.shared.lock().unwrap();
        let id = format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/{rtype}/{name}",
            g.cfg.subscription_id
        );
        g.resources.insert(
            id.to_ascii_lowercase(),
            Stored {
                id: id.clone(),
                rtype: rtype.into(),
                name: name.into(),
                body: json!({"location": "westeurope", "properties": {}}),
                state: "Succeeded".into(),
                pending_op: None,
                custom_data: None,
            },
        );
        id
    }

    /// Deletes a resource behind consort's back (drift).
    pub fn remove(&self, id: &str) -> bool {
        let key = id.to_ascii_lowercase();
        let mut g = self.shared.lock().unwrap();
        let children: Vec<String> = g
            .resources
            .keys()
            .filter(|k| k.starts_with(&format!("{key}/")))
            .cloned()
            .collect();
        for c in children {
            g.resources.remove(&c);
        }
        g.resources.remove(&key).is_some()
    }

    /// ARM ids of every stored resource (groups included), in their original case.
    pub fn ids(&self) -> Vec<String> {
        let g = self.shared.lock().unwrap();
        g.resources.values().map(|s| s.id.clone()).collect()
    }

    /// The resource as a GET would show it (without counting as a poll).
    pub fn resource(&self, id: &str) -> Option<Value> {
        let g = self.shared.lock().unwrap();
        g.resources.get(&id.to_ascii_lowercase()).map(|s| g.view(s))
    }

    /// The VM's customData, base64-decoded.
    /// (Decompressed when it was sent gzip-compressed, as cloud-init reads it.)
    pub fn custom_data(&self, vm_id: &str) -> Option<String> {
        String::from_utf8(vm_host::gunzipped(self.custom_data_bytes(vm_id)?)).ok()
    }

    /// The VM's customData exactly as sent (base64-decoded, not decompressed).
    pub fn custom_data_bytes(&self, vm_id: &str) -> Option<Vec<u8>> {
        let g = self.shared.lock().unwrap();
        let raw = g
            .resources
            .get(&vm_id.to_ascii_lowercase())?
            .custom_data
            .clone()?;
        azure_core::base64::decode(raw).ok()
    }
}

// ----- protocol -----

fn arm_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "details": []}});
    json_response(status, &body, HeaderMap::new())
}

fn json_response(status: u16, body: &Value, mut headers: HeaderMap) -> Response {
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    (
        StatusCode::from_u16(status).expect("valid status"),
        headers,
        body.to_string(),
    )
        .into_response()
}

fn empty(status: u16, headers: HeaderMap) -> Response {
    (StatusCode::from_u16(status).expect("valid status"), headers).into_response()
}

/// Canonical casing of the types we know; others keep the request's casing.
fn canonical_type(lower: &str, given: &str) -> String {
    match lower {
        "microsoft.network/virtualnetworks" => "Microsoft.Network/virtualNetworks".into(),
        "microsoft.network/virtualnetworks/subnets" => {
            "Microsoft.Network/virtualNetworks/subnets".into()
        }
        "microsoft.network/networksecuritygroups" => {
            "Microsoft.Network/networkSecurityGroups".into()
        }
        "microsoft.network/publicipaddresses" => "Microsoft.Network/publicIPAddresses".into(),
        "microsoft.network/networkinterfaces" => "Microsoft.Network/networkInterfaces".into(),
        "microsoft.compute/virtualmachines" => "Microsoft.Compute/virtualMachines".into(),
        "microsoft.compute/disks" => "Microsoft.Compute/disks".into(),
        _ => given.into(),
    }
}

/// ARM ids a body refers to (every nested `"id"` that is not inside `own`).
fn references(body: &Value, own: &str) -> Vec<String> {
    fn walk(v: &Value, top: bool, own: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if !top && k.eq_ignore_ascii_case("id") {
                        if let Some(s) = x.as_str() {
                            let l = s.to_ascii_lowercase();
                            if l.starts_with("/subscriptions/")
                                && !(l == own || l.starts_with(&format!("{own}/")))
                            {
                                out.push(l);
                            }
                        }
                    } else {
                        walk(x, false, own, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, false, own, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(body, true, own, &mut out);
    out.sort();
    out.dedup();
    out
}

fn in_use_code(rtype_lower: &str) -> &'static str {
    match rtype_lower {
        "microsoft.network/virtualnetworks/subnets" | "microsoft.network/virtualnetworks" => {
            "InUseSubnetCannotBeDeleted"
        }
        "microsoft.network/networkinterfaces" => "NicInUse",
        "microsoft.network/publicipaddresses" => "PublicIPAddressInUse",
        "microsoft.network/networksecuritygroups" => "InUseNetworkSecurityGroupCannotBeDeleted",
        _ => "ResourceInUse",
    }
}

impl Inner {
    fn view(&self, s: &Stored) -> Value {
        let mut v = s.body.clone();
        if !v.is_object() {
            v = json!({});
        }
        v["id"] = json!(s.id);
        v["name"] = json!(s.name);
        v["type"] = json!(s.rtype);
        if !v["properties"].is_object() {
            v["properties"] = json!({});
        }
        v["properties"]["provisioningState"] = json!(s.state);
        if let Some(os) = v["properties"]
            .get_mut("osProfile")
            .and_then(Value::as_object_mut)
        {
            os.remove("customData");
        }
        if s.rtype
            .eq_ignore_ascii_case("Microsoft.Network/virtualNetworks")
        {
            let key = s.id.to_ascii_lowercase();
            let subnets: Vec<Value> = self
                .resources
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{key}/subnets/")))
                .map(|(_, c)| self.view(c))
                .collect();
            v["properties"]["subnets"] = json!(subnets);
        }
        v
    }

    fn op_url(&self, kind: &str, ns: &str, loc: &str, op: &str, api: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/{ns}/locations/{loc}/{kind}/{op}?api-version={api}",
            self.base, self.cfg.subscription_id
        )
    }

    fn running_ops(&self) -> usize {
        self.ops.values().filter(|o| o.result.is_none()).count()
    }

    fn new_op(&mut self, key: &str, kind: OpKind, fail_with: Option<(String, String)>) -> String {
        let id = format!("op-{:06}", self.next_op);
        self.next_op += 1;
        self.ops.insert(
            id.clone(),
            Op {
                key: key.to_string(),
                kind,
                started: Instant::now(),
                polls: 0,
                result: None,
                fail_with,
            },
        );
        let running = self.running_ops();
        self.peak_ops = self.peak_ops.max(running);
        id
    }

    /// Counts a poll of `op` and finishes it when its time has come.
    fn poll_op(&mut self, op_id: &str, counts: bool) {
        let (polls_needed, latency, unattended) = (
            self.cfg.polls_in_progress,
            self.cfg.latency,
            self.cfg.unattended_completion,
        );
        let Some(op) = self.ops.get_mut(op_id) else {
            return;
        };
        if op.result.is_some() {
            return;
        }
        if op.kind == OpKind::Action {
            if self.action_results.contains_key(op_id) {
                op.result = Some(None);
            }
            return;
        }
        let elapsed = op.started.elapsed();
        let due =
            (op.polls >= polls_needed && elapsed >= latency) || elapsed >= latency.max(unattended);
        if counts && !due {
            op.polls += 1;
            return;
        }
        if !due {
            return;
        }
        let op = op.clone();
        let result = op.fail_with.clone();
        self.ops.get_mut(op_id).unwrap().result = Some(result.clone());
        match op.kind {
            OpKind::Put => {
                if let Some(s) = self.resources.get_mut(&op.key) {
                    if s.pending_op.as_deref() == Some(op_id) {
                        s.state = if result.is_some() {
                            "Failed"
                        } else {
                            "Succeeded"
                        }
                        .into();
                        s.pending_op = None;
                    }
                }
            }
            OpKind::Action => {}
            OpKind::Delete => {
                let key = op.key.clone();
                if let Some(stored) = self.resources.get(&key).cloned() {
                    key_vault::after_delete(self, &key, &stored);
                    if stored.rtype == "Microsoft.Compute/virtualMachines" {
                        vm_host::shut_down(self, &stored.name);
                        reserve_nics(self, &stored);
                    }
                }
                let dropped_disk = self.resources.get(&key).and_then(|s| {
                    let del = s.body["properties"]["storageProfile"]["osDisk"]["deleteOption"]
                        .as_str()
                        .unwrap_or("Detach")
                        .to_string();
                    (s.rtype == "Microsoft.Compute/virtualMachines"
                        && del.eq_ignore_ascii_case("Delete"))
                    .then(|| disk_key(&s.id, &s.name, &s.body))
                });
                let doomed: Vec<String> = self
                    .resources
                    .keys()
                    .filter(|k| **k == key || k.starts_with(&format!("{key}/")))
                    .cloned()
                    .collect();
                for k in doomed {
                    self.resources.remove(&k);
                }
                if let Some(d) = dropped_disk {
                    self.resources.remove(&d);
                }
            }
        }
    }

    /// Finishes whatever is due (time-based completion) before answering anything.
    fn tick(&mut self) {
        let ids: Vec<String> = self
            .ops
            .iter()
            .filter(|(_, o)| o.result.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            self.poll_op(&id, false);
        }
    }

    fn retry_after(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ms) = self.cfg.poll_retry_after_ms {
            h.insert(
                "retry-after-ms",
                HeaderValue::from_str(&ms.to_string()).unwrap(),
            );
        }
        h
    }
}

fn disk_key(vm_id: &str, vm_name: &str, body: &Value) -> String {
    let disk_name = body["properties"]["storageProfile"]["osDisk"]["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{vm_name}_OsDisk_1"));
    let rg_prefix = vm_id
        .to_ascii_lowercase()
        .split("/providers/")
        .next()
        .unwrap_or_default()
        .to_string();
    format!(
        "{rg_prefix}/providers/microsoft.compute/disks/{}",
        disk_name.to_ascii_lowercase()
    )
}

enum Target {
    Group {
        rg: String,
    },
    List {
        rg: String,
    },
    Resource {
        rg: String,
        ns: String,
        type_lower: String,
        type_given: String,
        name: String,
    },
    Operation {
        kind: String,
        id: String,
    },
    Subscription,
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    RoleAssignment {
        scope: String,
    },
    RunCommand {
        vm: String,
    },
    /// `/subscriptions/{s}/providers/Microsoft.KeyVault/locations/{l}/deletedVaults/{name}`.
    DeletedVault {
        location: String,
        name: String,
    },
    /// `{scope}/providers/Microsoft.Authorization/permissions`.
    Permissions {
        scope: String,
        rg: Option<String>,
    },
}

/// Routes a path; Err is (status, ARM code, message).
fn parse(path: &str, sub: &str) -> Result<Target, (u16, &'static str, String)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let low: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    if low.len() < 2 || low[0] != "subscriptions" {
        return Err((404, "NotFound", format!("no route for {path}")));
    }
    if low[1] != sub.to_ascii_lowercase() {
        return Err((
            404,
            "SubscriptionNotFound",
            format!("The subscription '{}' could not be found.", segs[1]),
        ));
    }
    let l: Vec<&str> = low.iter().map(String::as_str).collect();
    if let Some(i) = l
        .windows(3)
        .position(|w| w == ["providers", "microsoft.authorization", "roleassignments"])
    {
        if i + 4 == l.len() && i >= 2 {
            return Ok(Target::RoleAssignment {
                scope: format!("/{}", segs[..i].join("/")),
            });
        }
    }
    if l.len() >= 5 && l[l.len() - 3..] == ["providers", "microsoft.authorization", "permissions"] {
        return Ok(Target::Permissions {
            scope: format!("/{}", segs[..l.len() - 3].join("/")),
            rg: (l.len() == 7 && l[2] == "resourcegroups").then(|| segs[3].to_string()),
        });
    }
    match l.as_slice() {
        [_, _] => Ok(Target::Subscription),
        [_, _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachines", _, "runcommand"] => {
            Ok(Target::RunCommand { vm: segs[7].into() })
        }
        [_, _, "resourcegroups", _] => Ok(Target::Group { rg: segs[3].into() }),
        [_, _, "resourcegroups", _, "resources"] => Ok(Target::List { rg: segs[3].into() }),
        [_, _, "resourcegroups", _, "providers", _, _, _] => Ok(Target::Resource {
            rg: segs[3].into(),
            ns: segs[5].into(),
            type_lower: format!("{}/{}", l[5], l[6]),
            type_given: format!("{}/{}", segs[5], segs[6]),
            name: segs[7].into(),
        }),
        [_, _, "resourcegroups", _, "providers", _, _, _, _, _] => Ok(Target::Resource {
            rg: segs[3].into(),
            ns: segs[5].into(),
            type_lower: format!("{}/{}/{}", l[5], l[6], l[8]),
            type_given: format!("{}/{}/{}", segs[5], segs[6], segs[8]),
            name: segs[9].into(),
        }),
        [_, _, "providers", "microsoft.keyvault", "locations", _, "deletedvaults", _] => {
            Ok(Target::DeletedVault {
                location: segs[5].into(),
                name: segs[7].into(),
            })
        }
        [_, _, "providers", _, "locations", _, kind @ ("operations" | "operationresults"), _] => {
            Ok(Target::Operation {
                kind: kind.to_string(),
                id: segs[7].into(),
            })
        }
        _ => Err((404, "NotFound", format!("no route for {path}"))),
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut g = shared.lock().unwrap();
    let path = uri.path().to_string();
    let at = g.t0.elapsed();
    g.log.push(Logged {
        method: method.as_str().into(),
        path: path.clone(),
        at,
    });

    // Key Vault's data plane and the VMs' IMDS have their own authentication.
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/kv/") || lower.starts_with("/imds/") {
        if let Some(r) = throttled(&mut g, method.as_str(), &path) {
            return r;
        }
        let query: Vec<(String, String)> = uri.query().map(url_pairs).unwrap_or_default();
        return if lower.starts_with("/kv/") {
            key_vault::data_plane(&mut g, method.as_str(), &path, &query, &headers, &body)
        } else {
            key_vault::imds(&g, &path, &headers)
        };
    }
    // Auth.
    let expected = format!("Bearer {}", g.cfg.token);
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => {
            return arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        }
        Some(v) if v != expected => {
            return arm_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
        }
        _ => {}
    }
    // api-version.
    let query: Vec<(String, String)> = uri.query().map(url_pairs).unwrap_or_default();
    let Some(api) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.clone())
    else {
        return arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    // Throttling.
    if let Some(r) = throttled(&mut g, method.as_str(), &path) {
        return r;
    }
    g.tick();

    let sub = g.cfg.subscription_id.clone();
    let target = match parse(&path, &sub) {
        Ok(t) => t,
        Err((status, code, message)) => return arm_error(status, code, &message),
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    &format!("The request content was invalid and could not be deserialized: {e}"),
                )
            }
        }
    };
    match (target, method.as_str()) {
        (Target::Subscription, "GET") => key_vault::subscription(&g),
        (Target::DeletedVault { location, name }, "GET") => {
            key_vault::deleted_vault(&g, &location, &name)
        }
        (Target::Permissions { scope, rg }, "GET") => {
            key_vault::permissions(&g, &scope, rg.as_deref())
        }
        (Target::RoleAssignment { scope }, m) => {
            key_vault::role_assignment(&mut g, m, &resource_path(&path), &scope, &body)
        }
        (Target::RunCommand { vm }, "POST") => {
            let id = resource_path(&path);
            let vm_id = id
                .rsplit_once('/')
                .map(|(v, _)| v.to_string())
                .unwrap_or_default();
            run_command::post(&mut g, &shared, &vm_id, &vm, &body, &api)
        }
        (Target::Operation { kind, id }, "GET") => op_status(&mut g, &kind, &id),
        (Target::Group { rg }, "PUT") => put_group(&mut g, &rg, &body),
        (Target::Group { rg }, "GET") => {
            get_any(&mut g, &group_id(&sub, &rg), "ResourceGroupNotFound")
        }
        (Target::Group { rg }, "DELETE") => {
            delete_any(&mut g, &group_id(&sub, &rg), "Microsoft.Resources", &api)
        }
        (Target::List { rg }, "GET") => list(&g, &rg, &query),
        (
            Target::Resource {
                rg,
                ns,
                type_lower,
                type_given,
                name,
            },
            m,
        ) => {
            let id = resource_path(&path);
            if !g
                .resources
                .contains_key(&group_id(&sub, &rg).to_ascii_lowercase())
            {
                return arm_error(
                    404,
                    "ResourceGroupNotFound",
                    &format!("Resource group '{rg}' could not be found."),
                );
            }
            match m {
                "PUT" => put_resource(
                    &mut g,
                    &id,
                    &ns,
                    &type_lower,
                    &type_given,
                    &name,
                    body,
                    &api,
                ),
                "GET" => get_any(&mut g, &id, "ResourceNotFound"),
                "DELETE" => {
                    if let Some(r) = injected(&mut g, "DELETE", &name) {
                        return r;
                    }
                    delete_any(&mut g, &id, &ns, &api)
                }
                _ => arm_error(405, "MethodNotAllowed", "method not allowed"),
            }
        }
        (_, m) => arm_error(
            405,
            "MethodNotAllowed",
            &format!("{m} is not supported here"),
        ),
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.replace("%24", "$"), v.replace("%24", "$"))
        })
        .collect()
}

fn group_id(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}")
}

/// The path as the resource id (trailing slash dropped).
fn resource_path(path: &str) -> String {
    path.trim_end_matches('/').to_string()
}

/// The answer of a matching [`Throttle`], if any, with `Retry-After` and the body the
/// service sends:
/// - ARM: 429 `TooManyRequests` (learn.microsoft.com/azure/azure-resource-manager/
///   management/request-limits-and-throttling) or 503 `ServiceUnavailable`;
/// - Key Vault (`/kv/`): 429 with error code `Throttled` and Retry-After
///   (learn.microsoft.com/azure/key-vault/general/overview-throttling; data plane 7.4,
///   specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.4/common.json
///   KeyVaultError body);
/// - IMDS (`/imds/`): 429 "Too many requests" (learn.microsoft.com/azure/virtual-machines/
///   instance-metadata-service, "Rate limiting": 5 requests per second).
fn throttled(g: &mut Inner, method: &str, path: &str) -> Option<Response> {
    let lpath = path.to_ascii_lowercase();
    let t = g.throttles.iter_mut().find(|t| {
        t.times > 0
            && t.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && t.path_contains
                .as_deref()
                .is_none_or(|p| lpath.contains(&p.to_ascii_lowercase()))
    })?;
    t.times -= 1;
    let mut h = HeaderMap::new();
    h.insert(
        "retry-after",
        HeaderValue::from_str(&t.retry_after_secs.to_string()).unwrap(),
    );
    let body = match (t.status, lpath.split('/').nth(1)) {
        (429, Some("kv")) => {
            json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received. Reason: A1"}})
        }
        (429, Some("imds")) => {
            json!({"error": "too_many_requests", "error_description": "Too many requests"})
        }
        (429, _) => {
            json!({"error": {"code": "TooManyRequests", "message": "The request is being throttled."}})
        }
        _ => {
            json!({"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable."}})
        }
    };
    Some(json_response(t.status, &body, h))
}

fn injected(g: &mut Inner, method: &str, name: &str) -> Option<Response> {
    let lname = name.to_ascii_lowercase();
    let inj = g
        .injections
        .iter_mut()
        .find(|i| i.name == lname && i.method == method && i.remaining != Some(0))?;
    if let Some(r) = inj.remaining.as_mut() {
        *r -= 1;
    }
    Some(arm_error(inj.status, &inj.code, &inj.message))
}

fn put_group(g: &mut Inner, rg: &str, body: &Value) -> Response {
    let Some(location) = body.get("location").and_then(Value::as_str) else {
        return arm_error(
            400,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    let id = group_id(&g.cfg.subscription_id, rg);
    let key = id.to_ascii_lowercase();
    let existed = g.resources.contains_key(&key);
    let stored_id = g.resources.get(&key).map(|s| s.id.clone()).unwrap_or(id);
    let s = Stored {
        id: stored_id,
        rtype: "Microsoft.Resources/resourceGroups".into(),
        name: rg.into(),
        body: json!({"location": location, "tags": body.get("tags").cloned().unwrap_or(json!({})), "properties": {}}),
        state: "Succeeded".into(),
        pending_op: None,
        custom_data: None,
    };
    let v = g.view(&s);
    g.resources.insert(key, s);
    json_response(if existed { 200 } else { 201 }, &v, HeaderMap::new())
}

fn get_any(g: &mut Inner, id: &str, not_found: &str) -> Response {
    let key = id.to_ascii_lowercase();
    let op = g.resources.get(&key).and_then(|s| s.pending_op.clone());
    if let Some(op) = op {
        g.poll_op(&op, true);
    }
    match g.resources.get(&key) {
        Some(s) => {
            let v = g.view(s);
            json_response(200, &v, HeaderMap::new())
        }
        None => arm_error(
            404,
            not_found,
            &format!("The Resource '{id}' was not found."),
        ),
    }
}

fn list(g: &Inner, rg: &str, query: &[(String, String)]) -> Response {
    let rg_key = group_id(&g.cfg.subscription_id, rg).to_ascii_lowercase();
    if !g.resources.contains_key(&rg_key) {
        return arm_error(
            404,
            "ResourceGroupNotFound",
            &format!("Resource group '{rg}' could not be found."),
        );
    }
    let prefix = format!("{rg_key}/providers/");
    let all: Vec<&Stored> = g
        .resources
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix) && k[prefix.len()..].split('/').count() == 3)
        .map(|(_, s)| s)
        .collect();
    let skip: usize = query
        .iter()
        .find(|(k, _)| k == "$skiptoken")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(g.cfg.page_size)
        .map(|s| json!({"id": s.id, "name": s.name, "type": s.rtype, "location": s.body.get("location").cloned().unwrap_or(json!("westeurope"))}))
        .collect();
    let mut body = json!({"value": page});
    if skip + g.cfg.page_size < all.len() {
        body["nextLink"] = json!(format!(
            "{}/subscriptions/{}/resourceGroups/{rg}/resources?api-version=2021-04-01&%24skiptoken={}",
            g.base,
            g.cfg.subscription_id,
            skip + g.cfg.page_size
        ));
    }
    json_response(200, &body, HeaderMap::new())
}

#[allow(clippy::too_many_arguments)]
fn put_resource(
    g: &mut Inner,
    id: &str,
    ns: &str,
    type_lower: &str,
    type_given: &str,
    name: &str,
    mut body: Value,
    api: &str,
) -> Response {
    if let Some(r) = injected(g, "PUT", name) {
        return r;
    }
    let key = id.to_ascii_lowercase();
    if !body.is_object() {
        return arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid: expected a JSON object.",
        );
    }
    let rtype = canonical_type(type_lower, type_given);
    let is_subnet = type_lower == "microsoft.network/virtualnetworks/subnets";
    if is_subnet {
        let parent = key.rsplitn(3, '/').nth(2).unwrap_or_default().to_string();
        if !g.resources.contains_key(&parent) {
            return arm_error(
                404,
                "ResourceNotFound",
                &format!(
                    "The Resource '{}' under resource group was not found.",
                    parent
                ),
            );
        }
    } else if body.get("location").and_then(Value::as_str).is_none() {
        return arm_error(
            400,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    }
    if let Some(s) = g.resources.get(&key) {
        if s.state == "Deleting" {
            return arm_error(
                409,
                "AnotherOperationInProgress",
                &format!("Operation on '{id}' cannot proceed: the resource is being deleted."),
            );
        }
    }
    // Referential integrity.
    for r in references(&body, &key) {
        match g.resources.get(&r) {
            None => {
                return arm_error(
                    400,
                    "InvalidResourceReference",
                    &format!("Resource {r} referenced by resource {id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
                )
            }
            Some(t) if t.state != "Succeeded" => {
                return arm_error(
                    400,
                    "ReferencedResourceNotProvisioned",
                    &format!("Cannot proceed with operation because resource {} used by resource {id} is not in Succeeded state. Resource is in {} state.", t.id, t.state),
                )
            }
            _ => {}
        }
    }
    // A VNet PUT replaces the subnet list: dropped subnets are deleted, unless in use.
    if type_lower == "microsoft.network/virtualnetworks" {
        let kept: Vec<String> = body["properties"]["subnets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("name").and_then(Value::as_str))
                    .map(|n| format!("{key}/subnets/{}", n.to_ascii_lowercase()))
                    .collect()
            })
            .unwrap_or_default();
        let existing: Vec<String> = g
            .resources
            .keys()
            .filter(|k| k.starts_with(&format!("{key}/subnets/")))
            .cloned()
            .collect();
        for s in existing.iter().filter(|s| !kept.contains(s)) {
            if let Some(user) = user_of(g, s) {
                return arm_error(400, "InUseSubnetCannotBeDeleted", &format!("Subnet {s} is in use by {user} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet."));
            }
        }
        for s in existing.iter().filter(|s| !kept.contains(s)) {
            g.resources.remove(s);
        }
        if let Some(obj) = body["properties"].as_object_mut() {
            obj.remove("subnets");
        }
    }
    // customData is write-only in ARM.
    let custom_data = body["properties"]["osProfile"]
        .get("customData")
        .and_then(Value::as_str)
        .map(str::to_string);
    // At most 65,535 bytes, i.e. 87,380 base64 characters (OSProfile.customData,
    // specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/
    // virtualMachine.json; the code and text are ARM's answer to a longer one).
    if custom_data.as_ref().is_some_and(|c| c.len() > 87_380) {
        return arm_error(
            400,
            "InvalidParameter",
            "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.",
        );
    }
    let existed = g
        .resources
        .get(&key)
        .map(|s| (s.id.clone(), s.custom_data.clone(), s.body.clone()));
    // Server-side fields.
    if type_lower == "microsoft.network/publicipaddresses" {
        let prev_ip = existed
            .as_ref()
            .and_then(|(_, _, b)| b["properties"]["ipAddress"].as_str().map(str::to_string));
        let ip = prev_ip.unwrap_or_else(|| {
            let n = g.next_ip;
            g.next_ip += 1;
            format!("{}{n}", g.cfg.public_ip_prefix)
        });
        if !body["properties"].is_object() {
            body["properties"] = json!({});
        }
        body["properties"]["ipAddress"] = json!(ip);
    }
    if type_lower == "microsoft.network/networkinterfaces" {
        if let Some(cfgs) = body["properties"]["ipConfigurations"].as_array_mut() {
            for c in cfgs {
                let n = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("ipconfig1")
                    .to_string();
                c["id"] = json!(format!("{id}/ipConfigurations/{n}"));
            }
        }
    }
    let restored = if rtype == "Microsoft.KeyVault/vaults" {
        match key_vault::vault_put_check(g, &key, name, &body) {
            Ok(r) => r,
            Err(resp) => return *resp,
        }
    } else {
        None
    };
    let state = if existed.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    let fail_with = g.failing_ops.get(&name.to_ascii_lowercase()).cloned();
    let op = g.new_op(&key, OpKind::Put, fail_with);
    let stored = Stored {
        id: existed
            .as_ref()
            .map(|(i, _, _)| i.clone())
            .unwrap_or_else(|| id.to_string()),
        rtype: rtype.clone(),
        name: name.to_string(),
        body: body.clone(),
        state: state.into(),
        pending_op: Some(op.clone()),
        custom_data: custom_data.or(existed.as_ref().and_then(|(_, c, _)| c.clone())),
    };
    // A VM's OS disk is its own resource in the group.
    if rtype == "Microsoft.Compute/virtualMachines" && existed.is_none() {
        let dk = disk_key(id, name, &body);
        let disk_name = dk.rsplit('/').next().unwrap_or_default().to_string();
        let rg_id = id
            .split("/providers/")
            .next()
            .unwrap_or_default()
            .to_string();
        g.resources.insert(
            dk,
            Stored {
                id: format!("{rg_id}/providers/Microsoft.Compute/disks/{disk_name}"),
                rtype: "Microsoft.Compute/disks".into(),
                name: disk_name,
                body: json!({"location": body["location"], "properties": {}}),
                state: "Succeeded".into(),
                pending_op: None,
                custom_data: None,
            },
        );
    }
    let new_vm = rtype == "Microsoft.Compute/virtualMachines" && existed.is_none();
    let boot_data = stored.custom_data.clone();
    g.resources.insert(key.clone(), stored);
    key_vault::after_put(g, &key, &rtype, name, restored);
    if let (true, Some(cd)) = (new_vm, boot_data) {
        vm_host::boot(g, name, &cd);
    }
    let v = g.view(&g.resources[&key]);
    let loc = body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("westeurope")
        .to_string();
    let mut h = g.retry_after();
    if g.cfg.put_style == PutStyle::AsyncOperation {
        let url = g.op_url("operations", ns, &loc, &op, api);
        h.insert("azure-asyncoperation", HeaderValue::from_str(&url).unwrap());
    }
    json_response(if existed.is_some() { 200 } else { 201 }, &v, h)
}

/// Some resource that refers to `key` or to something inside it.
fn user_of(g: &Inner, key: &str) -> Option<String> {
    g.resources.iter().find_map(|(k, s)| {
        if k == key || k.starts_with(&format!("{key}/")) {
            return None;
        }
        let refs = references(&s.body, k);
        refs.iter()
            .any(|r| r == key || r.starts_with(&format!("{key}/")))
            .then(|| s.id.clone())
    })
}

fn delete_any(g: &mut Inner, id: &str, ns: &str, api: &str) -> Response {
    let key = id.to_ascii_lowercase();
    let Some(s) = g.resources.get(&key).cloned() else {
        return empty(204, HeaderMap::new());
    };
    let is_group = s.rtype == "Microsoft.Resources/resourceGroups";
    if let Some(r) = nic_reserved(g, &key) {
        return r;
    }
    if !is_group {
        if let Some(user) = user_of(g, &key) {
            let code = in_use_code(&s.rtype.to_ascii_lowercase());
            return arm_error(
                400,
                code,
                &format!(
                    "{} {} is in use by {user} and cannot be deleted.",
                    s.rtype, s.id
                ),
            );
        }
    }
    let op = g.new_op(&key, OpKind::Delete, None);
    if let Some(s) = g.resources.get_mut(&key) {
        s.state = "Deleting".into();
        s.pending_op = Some(op.clone());
    }
    let loc = s
        .body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("westeurope")
        .to_string();
    let mut h = g.retry_after();
    match g.cfg.delete_style {
        DeleteStyle::Location => {
            let url = g.op_url("operationResults", ns, &loc, &op, api);
            h.insert("location", HeaderValue::from_str(&url).unwrap());
        }
        DeleteStyle::AsyncOperation => {
            let url = g.op_url("operations", ns, &loc, &op, api);
            h.insert("azure-asyncoperation", HeaderValue::from_str(&url).unwrap());
        }
    }
    empty(202, h)
}

fn op_status(g: &mut Inner, kind: &str, id: &str) -> Response {
    if !g.ops.contains_key(id) {
        return arm_error(
            404,
            "OperationNotFound",
            &format!("operation {id} not found"),
        );
    }
    g.poll_op(id, true);
    let op = g.ops[id].clone();
    let h = g.retry_after();
    let action = g.action_results.get(id).cloned();
    if kind == "operationresults" {
        return match &op.result {
            None => empty(202, h),
            Some(None) if action.is_some() => {
                json_response(200, action.as_ref().unwrap(), HeaderMap::new())
            }
            Some(None) => empty(204, HeaderMap::new()),
            Some(Some((code, msg))) => arm_error(400, code, msg),
        };
    }
    let body = match &op.result {
        None => json!({"name": id, "status": "InProgress"}),
        Some(None) => match action {
            Some(out) => json!({"name": id, "status": "Succeeded", "properties": {"output": out}}),
            None => json!({"name": id, "status": "Succeeded"}),
        },
        Some(Some((code, msg))) => {
            json!({"name": id, "status": "Failed", "error": {"code": code, "message": msg}})
        }
    };
    json_response(200, &body, h)
}

/// Once a VM is deleted, Azure keeps its NICs reserved for it for 180 seconds: a DELETE of
/// such a NIC answers 400 `NicReservedForAnotherVm`, "Nic(s) in request is reserved for
/// another Virtual Machine for 180 seconds. Please provide another nic(s) or retry after
/// 180 seconds. Reserved VM: <vm id>" (NetworkInterfaces_Delete, specification/network/
/// resource-manager/Microsoft.Network/stable/2024-03-01/networkInterface.json; the code
/// and text are what ARM returns, the spec only declares the CloudError shape). The time
/// here is `nic_reservation`, stated in the message as Azure states its own.
fn reserve_nics(g: &mut Inner, vm: &Stored) {
    let until = Instant::now() + g.cfg.nic_reservation;
    if let Some(nics) = vm.body["properties"]["networkProfile"]["networkInterfaces"].as_array() {
        for n in nics {
            if let Some(id) = n["id"].as_str() {
                g.nic_reserved
                    .insert(id.to_ascii_lowercase(), (until, vm.id.clone()));
            }
        }
    }
}

fn nic_reserved(g: &mut Inner, key: &str) -> Option<Response> {
    let (until, vm) = g.nic_reserved.get(key).cloned()?;
    if Instant::now() >= until {
        g.nic_reserved.remove(key);
        return None;
    }
    let secs = g.cfg.nic_reservation.as_secs().max(1);
    Some(arm_error(
        400,
        "NicReservedForAnotherVm",
        &format!(
            "Nic(s) in request is reserved for another Virtual Machine for {secs} seconds. Please provide another nic(s) or retry after {secs} seconds. Reserved VM: {vm}"
        ),
    ))
}
