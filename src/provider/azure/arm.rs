//! The ARM client the Azure provider drives.
//!
//! Requests are built with the generated azure_mgmt_* clients (models and URLs) and sent
//! with their `.send()`; we never await their built-in long-running-operation poller (it
//! reads `provisioning_state` in snake_case and reports a still-Creating VM as done, see
//! DESIGN.md). Instead `lro` polls as ARM documents it: the `Azure-AsyncOperation` URL
//! until its status is terminal, else the `Location` URL until it stops answering 202, else
//! the resource until `properties.provisioningState` is terminal. Those polling GETs are raw
//! requests through the same azure_core pipeline (the generated clients cannot poll an
//! arbitrary URL).
//!
//! Throttling (429) and unavailability (503) are retried by azure_core's exponential retry
//! policy, configured here: it waits at least the server's `Retry-After` (seconds, or
//! `retry-after-ms`), otherwise a capped exponential backoff, for a bounded number of
//! attempts.
//!
//! Endpoint and credentials: `CONSORT_ARM_ENDPOINT` overrides the ARM base URL (default
//! `https://management.azure.com`); `CONSORT_ARM_TOKEN` supplies a static bearer token
//! instead of azure_identity's default chain (environment service principal, managed
//! identity, az CLI login).

mod error;
pub mod identity;
mod lro;
pub mod nat;
mod ops;
pub mod permissions;
mod raw;
pub mod rules;
pub mod run_command;
pub mod vault;

pub use error::{hint, ArmError};
pub(crate) use ops::{nic_body, nsg_body, public_ip_body, subnet_body, vm_json, vnet_body};
pub use ops::{
    nic_private_ip, public_ip_address, CustomData, ImageRef, NicSpec, NsgSpec, PublicIpSpec,
    ResourceGroupInfo, ResourceInfo, SubnetSpec, VmSpec, VnetSpec,
};
pub use raw::prune_nulls;
pub use rules::{Access, Protocol, RuleSpec};

use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::{ExponentialRetryOptions, RetryOptions, Url};
use azure_mgmt_compute::package_2024_07_01 as compute;
use azure_mgmt_network::package_2024_03 as network;
use azure_mgmt_resources::package_resources_2021_04 as resources;
use std::sync::Arc;
use std::time::Duration;

pub const ENDPOINT_ENV: &str = "CONSORT_ARM_ENDPOINT";
pub const TOKEN_ENV: &str = "CONSORT_ARM_TOKEN";
pub const VAULT_TOKEN_ENV: &str = "CONSORT_VAULT_TOKEN";
pub const RBAC_WAIT_ENV: &str = "CONSORT_RBAC_WAIT";
pub const RUN_COMMAND_WAIT_ENV: &str = "CONSORT_RUN_COMMAND_WAIT";
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

/// api-versions of the generated packages we use (also used for our polling GETs).
pub const RESOURCES_API: &str = "2021-04-01";
pub const NETWORK_API: &str = "2024-03-01";
pub const COMPUTE_API: &str = "2024-07-01";

/// Fixed bearer tokens, one per audience: `CONSORT_ARM_TOKEN` for ARM and
/// `CONSORT_VAULT_TOKEN` for Key Vault's data plane (`https://vault.azure.net`). A token is
/// only ever handed out for its own audience: Key Vault refuses an ARM token (401, invalid
/// audience) and must never be sent one.
#[derive(Debug)]
pub struct StaticTokenCredential {
    /// `Secret`'s Debug is redacted.
    arm: Secret,
    vault: Option<Secret>,
}

impl StaticTokenCredential {
    /// An ARM token only: asking it for a Key Vault token is an error.
    pub fn new(arm_token: impl Into<String>) -> StaticTokenCredential {
        StaticTokenCredential {
            arm: Secret::new(arm_token.into()),
            vault: None,
        }
    }

    /// Adds the token for Key Vault's data plane.
    pub fn with_vault(mut self, vault_token: impl Into<String>) -> StaticTokenCredential {
        self.vault = Some(Secret::new(vault_token.into()));
        self
    }
}

/// Whether a token scope is Key Vault's data plane (`https://vault.azure.net/.default`, or a
/// sovereign cloud's vault audience).
pub fn is_vault_scope(scope: &str) -> bool {
    let s = scope.to_ascii_lowercase();
    s.starts_with("https://vault.") || s.contains("://vault.azure.")
}

#[async_trait::async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let token = if scopes.iter().any(|s| is_vault_scope(s)) {
            self.vault.clone().ok_or_else(|| {
                azure_core::Error::message(
                    azure_core::error::ErrorKind::Credential,
                    format!(
                        "{TOKEN_ENV} is a token for ARM, and Key Vault refuses a token of another audience; \
                         set {VAULT_TOKEN_ENV} to a token for https://vault.azure.net \
                         (e.g. `az account get-access-token --resource https://vault.azure.net`)"
                    ),
                )
            })?
        } else {
            self.arm.clone()
        };
        Ok(AccessToken::new(
            token,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

/// Tunables of the client. Defaults suit real ARM; tests shorten them.
#[derive(Debug, Clone)]
pub struct ArmSettings {
    /// Scheme, host and port only (the generated clients replace the path).
    pub endpoint: Url,
    pub subscription_id: String,
    /// Poll interval when ARM gives no `Retry-After` on an operation.
    pub poll_interval: Duration,
    /// Upper bound on any single poll wait, whatever `Retry-After` says.
    pub max_poll_interval: Duration,
    /// How long one long-running operation may take (VM creates take minutes).
    pub operation_timeout: Duration,
    /// First backoff of a retried request (429/503/5xx/io) without `Retry-After`.
    pub retry_initial_delay: Duration,
    /// Cap of the exponential backoff.
    pub retry_max_delay: Duration,
    /// Retries per request (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// Stop retrying a request once this long has passed since its first attempt.
    pub retry_max_elapsed: Duration,
    /// How long a Run Command waits for the VM's previous one: Azure runs one at a time per
    /// VM and answers 409 `Conflict` to another (`CONSORT_RUN_COMMAND_WAIT`, seconds).
    pub run_command_wait: Duration,
    /// How long consort's own secret writes wait out 403 while its fresh "Key Vault Secrets
    /// Officer" assignment propagates: Azure documents up to 10 minutes for a role
    /// assignment to take effect (`CONSORT_RBAC_WAIT`, seconds).
    pub rbac_wait: Duration,
}

impl ArmSettings {
    pub fn new(endpoint: Url, subscription_id: impl Into<String>) -> ArmSettings {
        ArmSettings {
            endpoint,
            subscription_id: subscription_id.into(),
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(30 * 60),
            retry_initial_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            max_retries: 8,
            retry_max_elapsed: Duration::from_secs(5 * 60),
            run_command_wait: Duration::from_secs(10 * 60),
            rbac_wait: Duration::from_secs(10 * 60),
        }
    }

    /// The endpoint from `CONSORT_ARM_ENDPOINT`, else the public cloud.
    pub fn endpoint_from_env() -> Result<Url, ArmError> {
        match std::env::var(ENDPOINT_ENV) {
            Ok(v) if !v.trim().is_empty() => parse_endpoint(ENDPOINT_ENV, v.trim()),
            _ => parse_endpoint(ENDPOINT_ENV, DEFAULT_ENDPOINT),
        }
    }
}

/// A whole number of seconds from `variable`, when set.
fn seconds_from_env(variable: &'static str) -> Result<Option<Duration>, ArmError> {
    match std::env::var(variable) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| ArmError::Endpoint {
                variable,
                value: v.clone(),
                reason: "expected a whole number of seconds".into(),
            }),
        _ => Ok(None),
    }
}

/// Checks an ARM base URL: http(s), no path/query, and plain http only on loopback (a
/// bearer token must not cross a network in clear text).
pub fn parse_endpoint(variable: &'static str, value: &str) -> Result<Url, ArmError> {
    let bad = |reason: &str| ArmError::Endpoint {
        variable,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(value).map_err(|e| {
        bad(&format!(
            "not a URL ({e}); expected e.g. {DEFAULT_ENDPOINT}"
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or("");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad(
                    "plain http is only allowed for a loopback stand-in (127.0.0.1); use https",
                ));
            }
        }
        _ => return Err(bad("scheme must be https (or http on 127.0.0.1)")),
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
        return Err(bad("give only scheme, host and port (no path or query)"));
    }
    Ok(url)
}

/// The ARM client: typed operations in `ops`, long-running-operation polling in `lro`.
pub struct Arm {
    settings: ArmSettings,
    credential: Arc<dyn TokenCredential>,
    scopes: Vec<String>,
    /// For our raw polling GETs: the same options as the generated clients'.
    pipeline: azure_core::Pipeline,
    resources: resources::Client,
    network: network::Client,
    compute: compute::Client,
}

impl std::fmt::Debug for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arm")
            .field("endpoint", &self.settings.endpoint.as_str())
            .field("subscription_id", &self.settings.subscription_id)
            .finish_non_exhaustive()
    }
}

impl Arm {
    pub fn new(
        settings: ArmSettings,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Arm, ArmError> {
        let endpoint = settings.endpoint.clone();
        let scope = endpoint
            .join(azure_core::auth::DEFAULT_SCOPE_SUFFIX)
            .map_err(|e| ArmError::Endpoint {
                variable: ENDPOINT_ENV,
                value: endpoint.to_string(),
                reason: e.to_string(),
            })?
            .to_string();
        let retry = RetryOptions::exponential(
            ExponentialRetryOptions::default()
                .initial_delay(settings.retry_initial_delay)
                .max_delay(settings.retry_max_delay)
                .max_retries(settings.max_retries)
                .max_total_elapsed(settings.retry_max_elapsed),
        );
        let options = azure_core::ClientOptions::default().retry(retry.clone());
        let pipeline = azure_core::Pipeline::new(
            Some("consort"),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            Vec::new(),
        );
        let build_err = |e: azure_core::Error| ArmError::Endpoint {
            variable: ENDPOINT_ENV,
            value: endpoint.to_string(),
            reason: e.to_string(),
        };
        let resources = resources::Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .scopes(&[&scope])
            .retry(retry.clone())
            .build()
            .map_err(build_err)?;
        let network = network::Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .scopes(&[&scope])
            .retry(retry.clone())
            .build()
            .map_err(build_err)?;
        let compute = compute::Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .scopes(&[&scope])
            .retry(retry)
            .build()
            .map_err(build_err)?;
        Ok(Arm {
            settings,
            credential,
            scopes: vec![scope],
            pipeline,
            resources,
            network,
            compute,
        })
    }

    /// Endpoint from `CONSORT_ARM_ENDPOINT`; token from `CONSORT_ARM_TOKEN`, else
    /// azure_identity's default chain (which only reaches out when a token is needed).
    pub fn from_env(subscription_id: &str) -> Result<Arm, ArmError> {
        let endpoint = ArmSettings::endpoint_from_env()?;
        let credential: Arc<dyn TokenCredential> = match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => {
                let c = StaticTokenCredential::new(t.trim());
                Arc::new(match std::env::var(VAULT_TOKEN_ENV) {
                    Ok(v) if !v.trim().is_empty() => c.with_vault(v.trim()),
                    _ => c,
                })
            }
            _ => azure_identity::create_credential().map_err(|e| ArmError::Credential {
                message: e.to_string(),
            })?,
        };
        let mut settings = ArmSettings::new(endpoint, subscription_id);
        settings.run_command_wait =
            seconds_from_env(RUN_COMMAND_WAIT_ENV)?.unwrap_or(settings.run_command_wait);
        settings.rbac_wait = seconds_from_env(RBAC_WAIT_ENV)?.unwrap_or(settings.rbac_wait);
        Arm::new(settings, credential)
    }

    pub fn settings(&self) -> &ArmSettings {
        &self.settings
    }

    pub fn subscription_id(&self) -> &str {
        &self.settings.subscription_id
    }

    fn sub(&self) -> String {
        self.settings.subscription_id.clone()
    }

    fn core_err(&self, resource: &str, e: azure_core::Error) -> ArmError {
        ArmError::from_core(resource, self.settings.endpoint.as_str(), e)
    }

    async fn bearer(&self) -> Result<String, ArmError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        self.bearer_scoped(&scopes).await
    }

    /// A bearer token for another audience (Key Vault's data plane:
    /// `https://vault.azure.net/.default`): never the ARM token.
    async fn bearer_for(&self, scope: &str) -> Result<String, ArmError> {
        self.bearer_scoped(&[scope]).await
    }

    async fn bearer_scoped(&self, scopes: &[&str]) -> Result<String, ArmError> {
        let token = self
            .credential
            .get_token(scopes)
            .await
            .map_err(|e| ArmError::Credential {
                message: e.to_string(),
            })?;
        Ok(format!("Bearer {}", token.token.secret()))
    }

    // ----- resource ids -----

    pub fn resource_group_id(&self, rg: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{rg}",
            self.settings.subscription_id
        )
    }

    /// `/subscriptions/…/resourceGroups/<rg>/providers/<namespace>/<type>/<name>`.
    pub fn resource_id(&self, rg: &str, namespace: &str, rtype: &str, name: &str) -> String {
        format!(
            "{}/providers/{namespace}/{rtype}/{name}",
            self.resource_group_id(rg)
        )
    }

    pub fn vnet_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.Network", "virtualNetworks", name)
    }
    pub fn subnet_id(&self, rg: &str, vnet: &str, name: &str) -> String {
        format!("{}/subnets/{name}", self.vnet_id(rg, vnet))
    }
    pub fn nsg_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.Network", "networkSecurityGroups", name)
    }
    pub fn public_ip_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.Network", "publicIPAddresses", name)
    }
    pub fn nic_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.Network", "networkInterfaces", name)
    }
    pub fn vm_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.Compute", "virtualMachines", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rules() {
        assert!(parse_endpoint(ENDPOINT_ENV, "https://management.azure.com").is_ok());
        assert!(parse_endpoint(ENDPOINT_ENV, "http://127.0.0.1:8080").is_ok());
        let e = parse_endpoint(ENDPOINT_ENV, "http://example.com")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CONSORT_ARM_ENDPOINT=\"http://example.com\""),
            "{e}"
        );
        assert!(e.contains("use https"), "{e}");
        let e = parse_endpoint(ENDPOINT_ENV, "https://x.example/sub/path")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no path"), "{e}");
        assert!(parse_endpoint(ENDPOINT_ENV, "not a url").is_err());
    }

    #[test]
    fn static_token_debug_is_redacted() {
        let c = StaticTokenCredential::new("very-secret-token");
        assert!(!format!("{c:?}").contains("very-secret-token"));
    }
}
