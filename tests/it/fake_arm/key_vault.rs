//! Key Vault, managed identities and RBAC in the stand-in:
//! - `GET /subscriptions/{sub}` gives the tenant;
//! - a vault PUT gets `properties.vaultUri` = `{base}/kv/{vault}/`, served here as the
//!   data plane (`PUT/GET/DELETE secrets/{name}?api-version=7.4`); a deleted vault stays
//!   soft-deleted (its name refused with `ConflictError` unless `createMode: recover`);
//! - a VM with `identity.type: SystemAssigned` gets an `identity.principalId`;
//! - `GET /imds/{vm}/metadata/identity/oauth2/token` is that VM's IMDS (header
//!   `Metadata: true` required): a token for its principal;
//! - role assignments at any scope (`{scope}/providers/Microsoft.Authorization/
//!   roleAssignments/{guid}`), synchronous, checked: the principal must exist;
//! - the data plane authorises the ARM token (consort, as secrets officer) for everything
//!   and an IMDS token only to GET a secret it holds "Key Vault Secrets User" on (at the
//!   secret, the vault, or above); anything else is 403 `ForbiddenByRbac`.

use super::*;

pub const TENANT: &str = "99999999-8888-7777-6666-555555555555";
pub const SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
pub const SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";

/// An unsigned JWT-shaped ARM token carrying `oid` (what consort reads to grant itself
/// "Key Vault Secrets Officer"); the stand-in compares tokens as strings.
pub fn jwt_with_oid(oid: &str) -> String {
    let b64 = |v: &Value| azure_core::base64::encode_url_safe(v.to_string().as_bytes());
    format!(
        "{}.{}.sig",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"oid": oid, "aud": "https://management.azure.com/"}))
    )
}

/// The built-in Contributor role's permissions (as `Microsoft.Authorization/permissions`
/// lists them): everything but writing and deleting authorization, role assignments
/// included.
pub fn contributor() -> Value {
    json!([{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write", "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action"], "dataActions": [], "notDataActions": []}])
}

/// ARM's `*` wildcard match, case-insensitive (enough for the roles above).
fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == a,
        Some((head, tail)) => {
            a.starts_with(head) && a.len() >= head.len() + tail.len() && {
                let rest = &a[head.len()..];
                match tail.split_once('*') {
                    None => rest.ends_with(tail),
                    Some(_) => action_matches(&format!("*{tail}"), rest),
                }
            }
        }
    }
}

/// Whether the caller's roles (`caller_permissions`) allow `action`.
fn caller_may(g: &Inner, action: &str) -> bool {
    g.cfg
        .caller_permissions
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            let list = |k: &str| -> Vec<String> {
                p[k].as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            };
            list("actions").iter().any(|x| action_matches(x, action))
                && !list("notActions").iter().any(|x| action_matches(x, action))
        })
}

/// `GET {scope}/providers/Microsoft.Authorization/permissions` (Permissions_ListForResourceGroup
/// and the subscription's; specification/authorization/resource-manager/Microsoft.Authorization/
/// stable/2022-04-01/authorization-RoleDefinitionsCalls.json): the caller's roles'
/// actions and notActions; 404 `ResourceGroupNotFound` for a group that does not exist.
pub(super) fn permissions(g: &Inner, scope: &str, rg: Option<&str>) -> Response {
    if let Some(rg) = rg {
        if !g.resources.contains_key(&scope.to_ascii_lowercase()) {
            return arm_error(
                404,
                "ResourceGroupNotFound",
                &format!("Resource group '{rg}' could not be found."),
            );
        }
    }
    json_response(
        200,
        &json!({"value": g.cfg.caller_permissions}),
        HeaderMap::new(),
    )
}

#[derive(Debug, Clone)]
pub(super) struct Assignment {
    pub id: String,
    pub scope: String,
    pub role: String,
    pub principal: String,
    /// When (since the server started) it takes effect: `role_propagation` after its PUT.
    pub effective_at: Duration,
}

#[derive(Debug, Clone, Default)]
pub(super) struct VaultState {
    /// Vault key (lowercase ARM id) → secret name → value.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Soft-deleted vaults by name: (stored resource, its secrets).
    pub deleted: BTreeMap<String, (String, Stored, BTreeMap<String, String>)>,
    /// When each soft-deleted vault (by name) was deleted.
    pub deleted_on: BTreeMap<String, time::OffsetDateTime>,
    pub assignments: BTreeMap<String, Assignment>,
    /// VM key → principal id.
    pub principals: BTreeMap<String, String>,
    /// Soft-deleted secrets: vault key → secret name → value.
    pub deleted_secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Data-plane requests that came with the ARM token (refused 401, wrong audience).
    pub wrong_audience: usize,
    /// Data-plane requests refused 403 because a role had not taken effect yet.
    pub not_yet_effective: usize,
}

impl FakeArm {
    /// Key Vault requests that carried the ARM token, and 403s only due to propagation.
    pub fn key_vault_refusals(&self) -> (usize, usize) {
        let g = self.shared.lock().unwrap();
        (g.vaults.wrong_audience, g.vaults.not_yet_effective)
    }

    /// A secret's value as the vault holds it (tests read what consort wrote).
    pub fn vault_secret(&self, vault: &str, name: &str) -> Option<String> {
        let g = self.shared.lock().unwrap();
        g.vaults
            .secrets
            .iter()
            .find(|(k, _)| k.ends_with(&format!("/vaults/{}", vault.to_ascii_lowercase())))
            .and_then(|(_, s)| s.get(name).cloned())
    }

    /// Names of a vault's soft-deleted secrets.
    pub fn deleted_secrets(&self, vault: &str) -> Vec<String> {
        let g = self.shared.lock().unwrap();
        g.vaults
            .deleted_secrets
            .iter()
            .find(|(k, _)| k.ends_with(&format!("/vaults/{}", vault.to_ascii_lowercase())))
            .map(|(_, s)| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of soft-deleted vaults.
    pub fn soft_deleted_vaults(&self) -> Vec<String> {
        self.shared
            .lock()
            .unwrap()
            .vaults
            .deleted
            .keys()
            .cloned()
            .collect()
    }

    /// Every role assignment: (scope, role definition id, principal).
    pub fn role_assignments(&self) -> Vec<(String, String, String)> {
        let g = self.shared.lock().unwrap();
        g.vaults
            .assignments
            .values()
            .map(|a| (a.scope.clone(), a.role.clone(), a.principal.clone()))
            .collect()
    }

    /// The principal id of a VM's system-assigned identity.
    pub fn principal_of(&self, vm_id: &str) -> Option<String> {
        let g = self.shared.lock().unwrap();
        g.vaults
            .principals
            .get(&vm_id.to_ascii_lowercase())
            .cloned()
    }
}

pub(super) fn subscription(g: &Inner) -> Response {
    let sub = &g.cfg.subscription_id;
    json_response(
        200,
        &json!({"id": format!("/subscriptions/{sub}"), "subscriptionId": sub, "tenantId": TENANT, "state": "Enabled"}),
        HeaderMap::new(),
    )
}

/// `GET /subscriptions/{s}/providers/Microsoft.KeyVault/locations/{l}/deletedVaults/{name}`
/// (Vaults_GetDeleted, specification/keyvault/resource-manager/Microsoft.KeyVault/stable/
/// 2023-07-01/keyvault.json; shape as examples/listDeletedVaults.json there): a vault soft-
/// deleted in that location, with its old id, deletion and scheduled purge dates
/// (retention: the vault's softDeleteRetentionInDays, 90 by default); 404 otherwise.
pub(super) fn deleted_vault(g: &Inner, location: &str, name: &str) -> Response {
    let lname = name.to_ascii_lowercase();
    let norm = |l: &str| l.replace(' ', "").to_ascii_lowercase();
    let found = g.vaults.deleted.get(&lname).filter(|(_, s, _)| {
        s.body["location"]
            .as_str()
            .is_some_and(|l| norm(l) == norm(location))
    });
    let Some((_, stored, _)) = found else {
        return arm_error(
            404,
            "ResourceNotFound",
            &format!("The Resource 'Microsoft.KeyVault/deletedVaults/{name}' under location '{location}' was not found."),
        );
    };
    let fmt = &time::format_description::well_known::Rfc3339;
    let on = g.vaults.deleted_on[&lname];
    let days = stored.body["properties"]["softDeleteRetentionInDays"]
        .as_i64()
        .unwrap_or(90);
    json_response(
        200,
        &json!({
            "id": format!("/subscriptions/{}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}", g.cfg.subscription_id),
            "name": stored.name,
            "type": "Microsoft.KeyVault/deletedVaults",
            "properties": {
                "vaultId": stored.id,
                "location": stored.body["location"],
                "tags": stored.body.get("tags").cloned().unwrap_or(json!({})),
                "deletionDate": on.format(fmt).unwrap(),
                "scheduledPurgeDate": (on + time::Duration::days(days)).format(fmt).unwrap(),
                "purgeProtectionEnabled": stored.body["properties"]["enablePurgeProtection"].as_bool().unwrap_or(false),
            }
        }),
        HeaderMap::new(),
    )
}

/// Vault PUT pre-check: a soft-deleted name needs `createMode: recover`. Returns the
/// secrets to restore.
pub(super) fn vault_put_check(
    g: &mut Inner,
    key: &str,
    name: &str,
    body: &Value,
) -> Result<Option<BTreeMap<String, String>>, Box<Response>> {
    let lname = name.to_ascii_lowercase();
    if !g.vaults.deleted.contains_key(&lname) {
        return Ok(None);
    }
    if body["properties"]["createMode"].as_str() != Some("recover") {
        return Err(Box::new(arm_error(
            409,
            "ConflictError",
            &format!("Exist soft deleted vault with the same name {name}. Recover it (createMode: recover) or purge it."),
        )));
    }
    let (_, _, secrets) = g.vaults.deleted.remove(&lname).unwrap();
    g.vaults.deleted_on.remove(&lname);
    let _ = key;
    Ok(Some(secrets))
}

/// After a vault or VM PUT is stored: server-side fields.
pub(super) fn after_put(
    g: &mut Inner,
    key: &str,
    rtype: &str,
    name: &str,
    restored: Option<BTreeMap<String, String>>,
) {
    let base = g.base.clone();
    if rtype == "Microsoft.KeyVault/vaults" {
        if let Some(s) = g.resources.get_mut(key) {
            s.body["properties"]["vaultUri"] =
                json!(format!("{base}/kv/{}/", name.to_ascii_lowercase()));
            if let Some(o) = s.body["properties"].as_object_mut() {
                o.remove("createMode");
            }
        }
        let entry = g.vaults.secrets.entry(key.to_string()).or_default();
        if let Some(r) = restored {
            entry.extend(r);
        }
    }
    if rtype == "Microsoft.Compute/virtualMachines" {
        let system = g
            .resources
            .get(key)
            .and_then(|s| s.body["identity"]["type"].as_str().map(str::to_string));
        if system
            .as_deref()
            .is_some_and(|t| t.contains("SystemAssigned"))
        {
            let p = g
                .vaults
                .principals
                .entry(key.to_string())
                .or_insert_with(|| uuid::Uuid::new_v4().to_string())
                .clone();
            if let Some(s) = g.resources.get_mut(key) {
                s.body["identity"]["principalId"] = json!(p);
                s.body["identity"]["tenantId"] = json!(TENANT);
            }
        }
    }
}

/// After a DELETE completed: a vault goes soft-deleted, a VM's identity goes away.
pub(super) fn after_delete(g: &mut Inner, key: &str, stored: &Stored) {
    if stored.rtype == "Microsoft.KeyVault/vaults" {
        let secrets = g.vaults.secrets.remove(key).unwrap_or_default();
        g.vaults.deleted.insert(
            stored.name.to_ascii_lowercase(),
            (key.to_string(), stored.clone(), secrets),
        );
        g.vaults.deleted_on.insert(
            stored.name.to_ascii_lowercase(),
            time::OffsetDateTime::now_utc(),
        );
    }
    if stored.rtype == "Microsoft.Compute/virtualMachines" {
        g.vaults.principals.remove(key);
    }
}

pub(super) fn role_assignment(
    g: &mut Inner,
    method: &str,
    id: &str,
    scope: &str,
    body: &Value,
) -> Response {
    let key = id.to_ascii_lowercase();
    let view = |a: &Assignment| {
        json!({
            "id": a.id, "name": a.id.rsplit('/').next(), "type": "Microsoft.Authorization/roleAssignments",
            "properties": {"roleDefinitionId": a.role, "principalId": a.principal, "scope": a.scope}
        })
    };
    match method {
        // Writing a role assignment needs Microsoft.Authorization/roleAssignments/write,
        // which Contributor lacks: 403 AuthorizationFailed (roleAssignments.json,
        // RoleAssignments_Create, 2022-04-01; code and text as ARM answers).
        "PUT" if !caller_may(g, "Microsoft.Authorization/roleAssignments/write") => arm_error(
            403,
            "AuthorizationFailed",
            &format!("The client with object id '00000000-0000-0000-0000-000000000001' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
        ),
        // RoleAssignments_Delete, 2022-04-01: the same 403 without the delete action.
        "DELETE" if !caller_may(g, "Microsoft.Authorization/roleAssignments/delete") => arm_error(
            403,
            "AuthorizationFailed",
            &format!("The client with object id '00000000-0000-0000-0000-000000000001' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/delete' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
        ),
        "PUT" => {
            let role = body["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let principal = body["properties"]["principalId"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if role.is_empty() || principal.is_empty() {
                return arm_error(
                    400,
                    "InvalidRoleAssignmentRequest",
                    "roleDefinitionId and principalId are required",
                );
            }
            if !g.vaults.principals.values().any(|p| *p == principal)
                && g.cfg.caller_oid.as_deref() != Some(principal.as_str())
            {
                return arm_error(
                    400,
                    "PrincipalNotFound",
                    &format!("Principal {principal} does not exist in the directory {TENANT}."),
                );
            }
            // The scope's resource must exist (a vault secret: its vault and the secret).
            let lscope = scope.to_ascii_lowercase();
            let (res, secret) = match lscope.split_once("/secrets/") {
                Some((v, s)) => (v.to_string(), Some(s.to_string())),
                None => (lscope.clone(), None),
            };
            if !g.resources.contains_key(&res) {
                return arm_error(
                    404,
                    "ResourceNotFound",
                    &format!("The scope '{scope}' does not exist."),
                );
            }
            if let Some(s) = secret {
                let held = g
                    .vaults
                    .secrets
                    .get(&res)
                    .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(&s)));
                if !held {
                    return arm_error(
                        404,
                        "ResourceNotFound",
                        &format!("The scope '{scope}' does not exist."),
                    );
                }
            }
            if let Some(a) = g.vaults.assignments.values().find(|a| {
                a.id.to_ascii_lowercase() != key
                    && a.scope.eq_ignore_ascii_case(scope)
                    && a.role == role
                    && a.principal == principal
            }) {
                let _ = a;
                return arm_error(
                    409,
                    "RoleAssignmentExists",
                    "The role assignment already exists.",
                );
            }
            let existed = g.vaults.assignments.contains_key(&key);
            let a = Assignment {
                id: id.to_string(),
                scope: scope.to_string(),
                role,
                principal,
                // Azure: "role assignments can take up to 10 minutes to take effect"
                // (learn.microsoft.com/azure/role-based-access-control/troubleshooting,
                // "Symptom - Role assignment changes are not being detected"); modelled as
                // `role_propagation`, for the data plane (ARM itself sees it at once).
                effective_at: g.t0.elapsed() + g.cfg.role_propagation,
            };
            let v = view(&a);
            g.vaults.assignments.insert(key, a);
            json_response(if existed { 200 } else { 201 }, &v, HeaderMap::new())
        }
        "GET" => match g.vaults.assignments.get(&key) {
            Some(a) => json_response(200, &view(a), HeaderMap::new()),
            None => arm_error(
                404,
                "RoleAssignmentNotFound",
                "The role assignment was not found.",
            ),
        },
        "DELETE" => match g.vaults.assignments.remove(&key) {
            Some(a) => json_response(200, &view(&a), HeaderMap::new()),
            None => empty(204, HeaderMap::new()),
        },
        m => arm_error(
            405,
            "MethodNotAllowed",
            &format!("{m} is not supported here"),
        ),
    }
}

fn kv_error(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
        HeaderMap::new(),
    )
}

/// `GET /imds/{vm}/metadata/identity/oauth2/token?resource=…`.
pub(super) fn imds(g: &Inner, path: &str, headers: &HeaderMap) -> Response {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return kv_error(400, "bad_request", "Required metadata header not specified");
    }
    let vm = path
        .trim_start_matches("/imds/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let principal = g
        .vaults
        .principals
        .iter()
        .find(|(k, _)| k.ends_with(&format!("/virtualmachines/{vm}")))
        .map(|(_, p)| p.clone());
    match principal {
        Some(p) => json_response(
            200,
            &json!({"access_token": format!("imds.{p}"), "expires_in": "3600", "resource": "https://vault.azure.net", "token_type": "Bearer"}),
            HeaderMap::new(),
        ),
        None => kv_error(400, "invalid_request", "Identity not found"),
    }
}

/// `{base}/kv/{vault}/secrets/{name}?api-version=7.4`.
pub(super) fn data_plane(
    g: &mut Inner,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !query
        .iter()
        .any(|(k, v)| k == "api-version" && !v.is_empty())
    {
        return kv_error(
            400,
            "BadParameter",
            "The api-version query parameter is required",
        );
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (vault, name, deleted) = match segs.as_slice() {
        ["kv", v, "secrets", n] => (v.to_ascii_lowercase(), n.to_string(), None),
        ["kv", v, "deletedsecrets", n] => (v.to_ascii_lowercase(), n.to_string(), Some("")),
        ["kv", v, "deletedsecrets", n, "recover"] => {
            (v.to_ascii_lowercase(), n.to_string(), Some("recover"))
        }
        _ => return kv_error(404, "NotFound", &format!("no route for {path}")),
    };
    let Some(vkey) = g
        .vaults
        .secrets
        .keys()
        .find(|k| k.ends_with(&format!("/vaults/{vault}")))
        .cloned()
    else {
        return kv_error(404, "VaultNotFound", &format!("vault {vault} not found"));
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // One token per audience: a token for ARM (`https://management.azure.com/`) is refused
    // with 401 (learn.microsoft.com/azure/key-vault/general/rest-error-codes, "HTTP 401:
    // Unauthenticated Request" — token for the wrong resource; data plane 7.4,
    // specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.4/secrets.json,
    // default response KeyVaultError).
    if auth == format!("Bearer {}", g.cfg.token) {
        g.vaults.wrong_audience += 1;
        let mut h = HeaderMap::new();
        h.insert(
            "www-authenticate",
            format!("Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\"").parse().unwrap(),
        );
        return json_response(
            401,
            &json!({"error": {"code": "Unauthorized", "message": "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com/."}}),
            h,
        );
    }
    let now = g.t0.elapsed();
    let holds = |g: &Inner, principal: &str, role: &str, target: &str, any_effect: bool| {
        g.vaults.assignments.values().any(|a| {
            let scope = a.scope.to_ascii_lowercase();
            a.principal == principal
                && a.role.to_ascii_lowercase().ends_with(role)
                && target.starts_with(&scope)
                && (scope == target || !scope.contains("/secrets/"))
                && (any_effect || a.effective_at <= now)
        })
    };
    let vault_token = auth == format!("Bearer {}", g.cfg.vault_token);
    let caller = g.cfg.caller_oid.clone();
    let officer = vault_token
        && caller
            .as_deref()
            .is_none_or(|oid| holds(g, oid, SECRETS_OFFICER, &vkey, false));
    let principal = auth.strip_prefix("Bearer imds.").map(str::to_string);
    let secret_scope = format!("{vkey}/secrets/{}", name.to_ascii_lowercase());
    let reader = principal
        .as_ref()
        .is_some_and(|p| holds(g, p, SECRETS_USER, &secret_scope, false));
    // Refused only because an assignment has not taken effect yet (counted for tests).
    let pending = !officer
        && !reader
        && match (&principal, caller.as_deref()) {
            (Some(p), _) => holds(g, p, SECRETS_USER, &secret_scope, true),
            (None, Some(oid)) if vault_token => holds(g, oid, SECRETS_OFFICER, &vkey, true),
            _ => false,
        };
    if pending {
        g.vaults.not_yet_effective += 1;
    }
    let forbidden = || {
        json_response(
            403,
            &json!({"error": {"code": "Forbidden", "message": format!("Caller is not authorized to perform action on resource. Action: '{method}' on secret {name}"), "innererror": {"code": "ForbiddenByRbac"}}}),
            HeaderMap::new(),
        )
    };
    if !vault_token && principal.is_none() {
        return kv_error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
    }
    if let Some(op) = deleted {
        if !officer {
            return forbidden();
        }
        return deleted_secret(g, &vkey, &vault, &name, method, op);
    }
    if method == "PUT"
        && officer
        && g.vaults
            .deleted_secrets
            .get(&vkey)
            .is_some_and(|d| d.contains_key(&name))
    {
        // A soft-deleted name cannot be written until it is recovered or purged.
        return json_response(
            409,
            &json!({"error": {"code": "Conflict", "message": format!("Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."), "innererror": {"code": "ObjectIsDeletedButRecoverable"}}}),
            HeaderMap::new(),
        );
    }
    let base = g.base.clone();
    let secrets = g.vaults.secrets.get_mut(&vkey).unwrap();
    match method {
        "PUT" if officer => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(value) = v["value"].as_str() else {
                return kv_error(400, "BadParameter", "value is required");
            };
            secrets.insert(name.clone(), value.to_string());
            json_response(
                200,
                &json!({"id": format!("{}/kv/{vault}/secrets/{name}/1", g.base), "attributes": {"enabled": true}}),
                HeaderMap::new(),
            )
        }
        "GET" if officer || reader => match secrets.get(&name) {
            Some(v) => json_response(
                200,
                &json!({"value": v, "id": format!("{}/kv/{vault}/secrets/{name}/1", g.base)}),
                HeaderMap::new(),
            ),
            None => kv_error(
                404,
                "SecretNotFound",
                &format!("A secret with (name/id) {name} was not found in this key vault."),
            ),
        },
        "DELETE" if officer => match secrets.remove(&name) {
            Some(v) => {
                g.vaults
                    .deleted_secrets
                    .entry(vkey.clone())
                    .or_default()
                    .insert(name.clone(), v);
                json_response(
                    200,
                    &json!({"recoveryId": format!("{base}/kv/{vault}/deletedsecrets/{name}"), "id": format!("{base}/kv/{vault}/secrets/{name}/1")}),
                    HeaderMap::new(),
                )
            }
            None => kv_error(
                404,
                "SecretNotFound",
                &format!("A secret with (name/id) {name} was not found in this key vault."),
            ),
        },
        _ => forbidden(),
    }
}

/// Soft-deleted secrets (the vault has soft delete on, as every vault now must): `GET
/// deletedsecrets/{name}` (GetDeletedSecret), `POST deletedsecrets/{name}/recover`
/// (RecoverDeletedSecret: the secret and its value are back), `DELETE
/// deletedsecrets/{name}` (PurgeDeletedSecret, 204: the name is free). Key Vault data plane
/// 7.4, specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.4/secrets.json.
/// A PUT of a soft-deleted name answers 409 `Conflict` with innererror
/// `ObjectIsDeletedButRecoverable` (see `data_plane`).
fn deleted_secret(
    g: &mut Inner,
    vkey: &str,
    vault: &str,
    name: &str,
    method: &str,
    op: &str,
) -> Response {
    let base = g.base.clone();
    let not_found = || {
        kv_error(
            404,
            "SecretNotFound",
            &format!("Deleted Secret not found: {name}"),
        )
    };
    let deleted = g
        .vaults
        .deleted_secrets
        .entry(vkey.to_string())
        .or_default();
    match (method, op) {
        ("GET", "") => match deleted.get(name) {
            Some(_) => json_response(
                200,
                &json!({"recoveryId": format!("{base}/kv/{vault}/deletedsecrets/{name}"), "id": format!("{base}/kv/{vault}/secrets/{name}/1"), "attributes": {"enabled": true, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 7}}),
                HeaderMap::new(),
            ),
            None => not_found(),
        },
        ("POST", "recover") => match deleted.remove(name) {
            Some(v) => {
                g.vaults
                    .secrets
                    .entry(vkey.to_string())
                    .or_default()
                    .insert(name.to_string(), v);
                json_response(
                    200,
                    &json!({"id": format!("{base}/kv/{vault}/secrets/{name}/1"), "attributes": {"enabled": true}}),
                    HeaderMap::new(),
                )
            }
            None => not_found(),
        },
        ("DELETE", "") => match deleted.remove(name) {
            Some(_) => empty(204, HeaderMap::new()),
            None => not_found(),
        },
        _ => kv_error(
            405,
            "MethodNotAllowed",
            &format!("{method} is not supported here"),
        ),
    }
}
