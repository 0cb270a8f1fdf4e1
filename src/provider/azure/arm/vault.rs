//! Key Vault: the vault itself through ARM (`Microsoft.KeyVault/vaults`, RBAC
//! authorization, soft delete on) and its secrets through the vault's own data plane at the
//! `vaultUri` ARM returns (`PUT {vaultUri}secrets/{name}?api-version=7.4`), with a token
//! for `https://vault.azure.net` — never the ARM token (`CONSORT_VAULT_TOKEN` when tokens
//! are given statically).
//!
//! The token only goes to a vault URI that is https on a Key Vault domain — or, when the
//! ARM endpoint itself is a loopback stand-in, to loopback.

use super::{Arm, ArmError};
use azure_core::{Method, Url};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const KEYVAULT_API: &str = "2023-07-01";
pub const SECRETS_API: &str = "7.4";
pub const SUBSCRIPTIONS_API: &str = "2022-12-01";
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
/// The shortest soft-delete retention Key Vault allows (7–90 days).
pub const SOFT_DELETE_DAYS: u32 = 7;
/// Key Vault domains of the Azure clouds.
const VAULT_DOMAINS: &[&str] = &[
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
];

/// The vault as ARM shows it once provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultInfo {
    pub id: String,
    /// `https://<name>.vault.azure.net/` (ends with `/`).
    pub uri: String,
    pub tags: BTreeMap<String, String>,
}

/// The body of a vault PUT: standard SKU, RBAC authorization (no access policies), soft
/// delete with the shortest retention, no purge protection (so `destroy` can be followed
/// by a purge when a user wants the name back).
pub fn vault_body(location: &str, tenant_id: &str, tags: &BTreeMap<String, String>) -> Value {
    json!({
        "location": location,
        "tags": tags,
        "properties": {
            "tenantId": tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": true,
            "enableSoftDelete": true,
            "softDeleteRetentionInDays": SOFT_DELETE_DAYS,
            "publicNetworkAccess": "Enabled",
            "accessPolicies": [],
        }
    })
}

fn tags_of(v: &Value) -> BTreeMap<String, String> {
    v.get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default()
}

impl Arm {
    pub fn vault_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.KeyVault", "vaults", name)
    }

    /// The subscription's Entra tenant (a vault is bound to one).
    pub async fn tenant_id(&self) -> Result<String, ArmError> {
        let id = format!("/subscriptions/{}", self.subscription_id());
        let v = self
            .get_json(&id, SUBSCRIPTIONS_API)
            .await?
            .ok_or_else(|| ArmError::Protocol {
                resource: id.clone(),
                message: "the subscription was not found".into(),
            })?;
        v.get("tenantId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ArmError::Protocol {
                resource: id,
                message: "the subscription has no tenantId".into(),
            })
    }

    pub async fn put_vault(
        &self,
        rg: &str,
        name: &str,
        body: &Value,
    ) -> Result<VaultInfo, ArmError> {
        let id = self.vault_id(rg, name);
        let v = self.put_json(&id, KEYVAULT_API, body).await?;
        self.vault_info(&id, &v)
    }

    pub async fn get_vault(&self, rg: &str, name: &str) -> Result<Option<VaultInfo>, ArmError> {
        let id = self.vault_id(rg, name);
        match self.get_json(&id, KEYVAULT_API).await? {
            Some(v) => self.vault_info(&id, &v).map(Some),
            None => Ok(None),
        }
    }

    fn vault_info(&self, id: &str, v: &Value) -> Result<VaultInfo, ArmError> {
        let uri = v["properties"]["vaultUri"]
            .as_str()
            .ok_or_else(|| ArmError::Protocol {
                resource: id.to_string(),
                message: "the vault has no properties.vaultUri".into(),
            })?;
        Ok(VaultInfo {
            id: v["id"].as_str().unwrap_or(id).to_string(),
            uri: if uri.ends_with('/') {
                uri.to_string()
            } else {
                format!("{uri}/")
            },
            tags: tags_of(v),
        })
    }

    /// Deletes the vault (Key Vault keeps it soft-deleted for [`SOFT_DELETE_DAYS`] days).
    pub async fn delete_vault(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        self.delete_json(&self.vault_id(rg, name), KEYVAULT_API)
            .await
    }

    /// The data-plane URL of a secret, refused unless the vault URI is one our token may
    /// go to.
    pub fn secret_url(&self, vault_uri: &str, name: &str) -> Result<Url, ArmError> {
        let bad = |why: String| ArmError::Protocol {
            resource: format!("{vault_uri}secrets/{name}"),
            message: why,
        };
        let base =
            Url::parse(vault_uri).map_err(|e| bad(format!("vaultUri is not a URL ({e})")))?;
        let host = base.host_str().unwrap_or("").to_ascii_lowercase();
        let ep = &self.settings.endpoint;
        let loopback_standin = ep.host_str() == base.host_str()
            && ep.scheme() == base.scheme()
            && super::parse_endpoint(super::ENDPOINT_ENV, ep.as_str()).is_ok()
            && (ep.scheme() == "http" || host == "localhost" || host.starts_with("127."));
        let vault_domain =
            base.scheme() == "https" && VAULT_DOMAINS.iter().any(|d| host.ends_with(d));
        if !(vault_domain || loopback_standin) {
            return Err(bad(format!(
                "vaultUri {vault_uri} is not an https Key Vault address; refusing to send credentials there"
            )));
        }
        let mut url = base
            .join(&format!("secrets/{name}"))
            .map_err(|e| bad(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("api-version", SECRETS_API);
        Ok(url)
    }

    /// Writes (a new version of) a secret. Retries while the vault answers 403, for up to
    /// `rbac_wait` (Azure: a role assignment can take up to 10 minutes to take effect),
    /// calling `on_wait` with a line saying so before each wait. A name soft-deleted earlier
    /// (409, `ObjectIsDeletedButRecoverable`: e.g. the member was removed, now it is back)
    /// is recovered first, then written: recovering needs no purge permission, and the new
    /// value becomes the current version.
    pub async fn put_secret(
        &self,
        vault_uri: &str,
        name: &str,
        value: &str,
        content_type: &str,
        on_wait: &dyn Fn(String),
    ) -> Result<SecretWrite, ArmError> {
        match self
            .put_secret_once(vault_uri, name, value, content_type, on_wait)
            .await
        {
            Err(e) if is_soft_deleted(&e) => {
                self.recover_secret(vault_uri, name).await?;
                self.put_secret_once(vault_uri, name, value, content_type, on_wait)
                    .await?;
                Ok(SecretWrite::RecoveredThenWritten)
            }
            r => r.map(|()| SecretWrite::Written),
        }
    }

    /// Recovers a soft-deleted secret (`POST {vault}deletedsecrets/{name}/recover`) and
    /// waits until it can be read again: Key Vault recovers in the background.
    pub async fn recover_secret(&self, vault_uri: &str, name: &str) -> Result<(), ArmError> {
        let url = self.deleted_secret_url(vault_uri, name, "/recover")?;
        let resource = format!("{vault_uri}deletedsecrets/{name}");
        self.send_json(&resource, Method::Post, url, None, Some(VAULT_SCOPE))
            .await?;
        let started = Instant::now();
        let mut wait = self.settings.retry_initial_delay;
        while !self.secret_exists(vault_uri, name).await? {
            if started.elapsed() > RECOVERY_WAIT {
                return Err(ArmError::Protocol {
                    resource,
                    message: format!(
                        "recovered, but still not readable after {}s; run the command again",
                        RECOVERY_WAIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.settings.retry_max_delay);
        }
        Ok(())
    }

    /// `{vault}deletedsecrets/{name}{suffix}`, to the same vault [`Arm::secret_url`] allows.
    fn deleted_secret_url(
        &self,
        vault_uri: &str,
        name: &str,
        suffix: &str,
    ) -> Result<Url, ArmError> {
        let mut url = self.secret_url(vault_uri, name)?;
        url.set_path(&url.path().replace(
            &format!("/secrets/{name}"),
            &format!("/deletedsecrets/{name}{suffix}"),
        ));
        Ok(url)
    }

    /// Whether `name` is held by a soft-deleted secret (`GET {vault}deletedsecrets/{name}`,
    /// GetDeletedSecret, data plane 7.4): writing it then means recovering it first.
    pub async fn secret_is_soft_deleted(
        &self,
        vault_uri: &str,
        name: &str,
    ) -> Result<bool, ArmError> {
        let url = self.deleted_secret_url(vault_uri, name, "")?;
        self.data_plane_exists(&format!("{vault_uri}deletedsecrets/{name}"), url)
            .await
    }

    /// A soft-deleted vault holding `name` in `location`, if any (`GET /subscriptions/{s}/
    /// providers/Microsoft.KeyVault/locations/{l}/deletedVaults/{name}`, Vaults_GetDeleted,
    /// 2023-07-01): a vault of that name can then only be created by recovering it.
    pub async fn deleted_vault(
        &self,
        location: &str,
        name: &str,
    ) -> Result<Option<DeletedVault>, ArmError> {
        let id = format!(
            "/subscriptions/{}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}",
            self.subscription_id()
        );
        Ok(self.get_json(&id, KEYVAULT_API).await?.map(|v| {
            let p = &v["properties"];
            let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            DeletedVault {
                vault_id: text("vaultId"),
                deletion_date: text("deletionDate"),
                scheduled_purge_date: text("scheduledPurgeDate"),
                purge_protection: p["purgeProtectionEnabled"].as_bool().unwrap_or(false),
            }
        }))
    }

    async fn put_secret_once(
        &self,
        vault_uri: &str,
        name: &str,
        value: &str,
        content_type: &str,
        on_wait: &dyn Fn(String),
    ) -> Result<(), ArmError> {
        let url = self.secret_url(vault_uri, name)?;
        let resource = format!("{vault_uri}secrets/{name}");
        let body = json!({"value": value, "contentType": content_type});
        let started = Instant::now();
        let mut wait = self.settings.retry_initial_delay;
        loop {
            match self
                .send_json(
                    &resource,
                    Method::Put,
                    url.clone(),
                    Some(&body),
                    Some(VAULT_SCOPE),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.status() == Some(403) => {
                    let waited = started.elapsed();
                    let limit = self.settings.rbac_wait;
                    if waited + wait > limit {
                        return Err(rbac_timeout(e, limit));
                    }
                    on_wait(format!(
                        "Key Vault refuses secret {name} (403): the role assignment may not have taken effect yet (Azure: up to 10 minutes); waited {}s of at most {}s ({}), retrying in {}s",
                        waited.as_secs(),
                        limit.as_secs(),
                        super::RBAC_WAIT_ENV,
                        wait.as_secs_f32().ceil() as u64,
                    ));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.settings.retry_max_delay);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a secret exists (its value is not read).
    pub async fn secret_exists(&self, vault_uri: &str, name: &str) -> Result<bool, ArmError> {
        let url = self.secret_url(vault_uri, name)?;
        self.data_plane_exists(&format!("{vault_uri}secrets/{name}"), url)
            .await
    }

    /// Whether a data-plane GET of `url` finds something (404: no).
    async fn data_plane_exists(&self, resource: &str, url: Url) -> Result<bool, ArmError> {
        match self
            .send_json(resource, Method::Get, url, None, Some(VAULT_SCOPE))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A soft-deleted vault, as Vaults_GetDeleted (2023-07-01) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedVault {
    /// The ARM id it had (its resource group is in it).
    pub vault_id: String,
    pub deletion_date: String,
    /// When Azure purges it and frees the name.
    pub scheduled_purge_date: String,
    /// Purge protection: it cannot be purged before `scheduled_purge_date` (recovery works).
    pub purge_protection: bool,
}

/// What writing a secret took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    Written,
    /// The name was soft-deleted: recovered, then the new value written over it.
    RecoveredThenWritten,
}

/// Key Vault's answer to writing a soft-deleted name: 409 `Conflict`, innererror
/// `ObjectIsDeletedButRecoverable`, "… is currently in a deleted but recoverable state, and
/// its name cannot be reused; in this state, the secret can only be recovered or purged."
fn is_soft_deleted(e: &ArmError) -> bool {
    e.status() == Some(409)
        && (e.code() == Some("ObjectIsDeletedButRecoverable")
            || e.to_string().contains("deleted but recoverable"))
}

/// How long a recovered secret may take to be readable again.
const RECOVERY_WAIT: Duration = Duration::from_secs(120);

/// The last 403 after waiting `limit` for a role assignment to take effect, saying so.
fn rbac_timeout(e: ArmError, limit: Duration) -> ArmError {
    match e {
        ArmError::Api {
            resource,
            status,
            code,
            message,
        } => ArmError::Api {
            resource,
            status,
            code,
            message: format!(
                "{message} (still refused after waiting {}s for the role assignment to take effect; \
                 check that consort's identity holds \"Key Vault Secrets Officer\" on the vault, or \
                 raise {} in seconds)",
                limit.as_secs(),
                super::RBAC_WAIT_ENV
            ),
        },
        other => other,
    }
}

impl Arm {
    /// Deletes a secret (Key Vault keeps it soft-deleted, like the vault); 404 is gone.
    pub async fn delete_secret(&self, vault_uri: &str, name: &str) -> Result<(), ArmError> {
        let url = self.secret_url(vault_uri, name)?;
        let resource = format!("{vault_uri}secrets/{name}");
        match self
            .send_json(&resource, Method::Delete, url, None, Some(VAULT_SCOPE))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The object id (`oid`) of the identity behind our ARM token, when the token is a
    /// JWT (a static test token is not): consort grants itself "Key Vault Secrets
    /// Officer" on the vault it creates.
    pub async fn caller_object_id(&self) -> Result<Option<String>, ArmError> {
        let bearer = self.bearer().await?;
        let token = bearer.trim_start_matches("Bearer ");
        let Some(payload) = token.split('.').nth(1) else {
            return Ok(None);
        };
        let Ok(bytes) = azure_core::base64::decode_url_safe(payload) else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("oid").and_then(Value::as_str).map(str::to_string)))
    }
}
