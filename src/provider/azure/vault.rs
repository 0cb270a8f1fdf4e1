//! Secrets in Key Vault instead of customData. Per network one vault (name derived from
//! the network within Key Vault's global 3–24 character rules); per node the secrets
//! `<node>-nodekey`, and for validators `<node>-keystore` and `<node>-password`, written
//! by consort through the vault's data plane. Each VM's system-assigned identity is given
//! "Key Vault Secrets User" on exactly its own secrets; its bootstrap fetches them with an
//! IMDS token at boot.

use super::arm::identity::{KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER};
use super::arm::vault::{vault_body, SecretWrite, SOFT_DELETE_DAYS};
use super::arm::Arm;
use super::layout::VAULT_ADDR;
use super::AzureProvider;
use super::{arm_err, attr, attrs_of, record, target};
use crate::events::Event;
use crate::plan::Change;
use crate::provider::ApplyCtx;
use crate::provider::ProviderError;
use crate::render::{vm_paths, CloudSecret};
use crate::state::ResourceState;
use crate::state::State;
use crate::state::{Action, Kind};
use crate::topology::Role;
use crate::topology::Topology;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The network's vault name: `<network prefix>-<8 hex>`, 3–24 characters of letters,
/// digits and single hyphens, starting with a letter. The suffix (from resource group,
/// network and location) keeps it globally unique; it is stable, so plan shows it offline.
pub fn vault_name(network: &str, resource_group: &str, location: &str) -> String {
    let h = hex::encode(Sha256::digest(
        format!("{resource_group}|{network}|{location}").to_ascii_lowercase(),
    ));
    let mut prefix = String::new();
    for c in network.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (prefix.is_empty() || prefix.ends_with('-')) {
            continue;
        }
        prefix.push(c);
    }
    if !prefix.starts_with(|c: char| c.is_ascii_alphabetic()) {
        prefix.insert_str(0, "kv");
    }
    prefix.truncate(15);
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}-{}", &h[..8])
}

/// One secret of a node: (vault secret name, path on the VM, content type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSecret {
    pub name: String,
    /// What it holds, for messages (`node key`, `signer keystore`, `keystore password`).
    pub what: &'static str,
}

/// The secrets of a node: its node key; a validator's keystore and password too.
pub fn node_secrets(node: &str, role: Role) -> Vec<NodeSecret> {
    let mut v = vec![NodeSecret {
        name: format!("{node}-nodekey"),
        what: "node key",
    }];
    if role == Role::Validator {
        v.push(NodeSecret {
            name: format!("{node}-keystore"),
            what: "signer keystore",
        });
        v.push(NodeSecret {
            name: format!("{node}-password"),
            what: "keystore password",
        });
    }
    v
}

impl AzureProvider {
    /// The vault's data-plane URL: as ARM returned it (state), else the public cloud's.
    pub(super) fn vault_uri(&self, state: &State, topology: &Topology) -> String {
        state
            .output_str(VAULT_ADDR, "uri")
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "https://{}.vault.azure.net/",
                    vault_name(
                        &topology.network.name,
                        &self.config.resource_group,
                        &self.config.location
                    )
                )
            })
    }

    /// Where the VM writes each of its secrets.
    pub(super) fn cloud_secrets(
        &self,
        state: &State,
        node: &str,
        role: Role,
    ) -> Result<Vec<CloudSecret>, ProviderError> {
        node_secrets(node, role)
            .into_iter()
            .map(|s| {
                let path = match s.what {
                    "node key" => vm_paths::NODEKEY.to_string(),
                    "keystore password" => vm_paths::PASSWORD.to_string(),
                    _ => format!(
                        "{}/{}",
                        vm_paths::KEYSTORE_DIR,
                        keystore_file_name(state, node)?
                    ),
                };
                Ok(CloudSecret { name: s.name, path })
            })
            .collect()
    }

    /// Each secret of a node with its value, read from the 0600 files of the state
    /// directory. The values go to Key Vault and nowhere else.
    pub(super) fn secret_values(
        &self,
        state: &State,
        node: &str,
        role: Role,
    ) -> Result<Vec<(NodeSecret, String)>, ProviderError> {
        let addr = super::layout::secrets_addr(node);
        let file = |res: &str, key: &str| -> Result<String, ProviderError> {
            let path = state.output_str(res, key).ok_or_else(|| {
                ProviderError::at(
                    &addr,
                    format!("{res} has no {key} in state; run apply again"),
                )
            })?;
            std::fs::read_to_string(path).map_err(|e| {
                ProviderError::at(
                    &addr,
                    format!("cannot read {path}: {e}; run apply again to restore it"),
                )
            })
        };
        node_secrets(node, role)
            .into_iter()
            .map(|s| {
                let v = match s.what {
                    "node key" => file(&format!("key.node.{node}"), "key_file")?
                        .trim()
                        .to_string(),
                    "keystore password" => file(&format!("key.signer.{node}"), "password_file")?
                        .trim_end()
                        .to_string(),
                    _ => file(&format!("key.signer.{node}"), "keystore")?,
                };
                Ok((s, v))
            })
            .collect()
    }
}

/// A node's role in the topology being applied.
fn role_of(ctx: &ApplyCtx, node: &str) -> Option<Role> {
    ctx.topology
        .nodes()
        .into_iter()
        .find(|n| n.name == node)
        .map(|n| n.role)
}

/// The keystore's file name (`UTC--…--<address>`: no secret in it).
fn keystore_file_name(state: &State, node: &str) -> Result<String, ProviderError> {
    let sk = format!("key.signer.{node}");
    let path = state.output_str(&sk, "keystore").ok_or_else(|| {
        ProviderError::at(
            &super::layout::vm_addr(node),
            format!("{sk} is not in state; run apply again"),
        )
    })?;
    std::path::Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| ProviderError::at(&sk, format!("{path} is not a file")))
}

impl AzureProvider {
    /// Creates the vault; a name still held by this network's soft-deleted vault (an
    /// earlier destroy) is recovered instead.
    pub(super) fn create_vault(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let (addr, a, name) = target(change, false);
        let at = arm_err(addr);
        let rg = self.rg();
        self.guard_change(ctx, arm, change, &a)?;
        let tenant = self.block_on(arm.tenant_id()).map_err(at)?;
        let mut body = vault_body(&self.config.location, &tenant, &self.apply_tags(ctx));
        let info = match self.block_on(arm.put_vault(rg, &name, &body)) {
            Err(e)
                if e.code() == Some("ConflictError") || e.code() == Some("VaultAlreadyExists") =>
            {
                if e.code() == Some("VaultAlreadyExists") {
                    return Err(ProviderError::at(
                        addr,
                        format!("{e}. Key Vault names are global: choose another network.name or provider.azure.resource_group (the vault name derives from both)"),
                    ));
                }
                ctx.emit(Event::Step {
                    subject: addr.to_string(),
                    step: format!("recovering soft-deleted key vault {name}"),
                });
                body["properties"]["createMode"] = json!("recover");
                self.block_on(arm.put_vault(rg, &name, &body)).map_err(at)?
            }
            r => r.map_err(at)?,
        };
        // RBAC vaults give even their creator no access to secrets.
        if let Some(oid) = self.block_on(arm.caller_object_id()).map_err(at)? {
            self.block_on(arm.assign_role(
                &info.id,
                KEY_VAULT_SECRETS_OFFICER,
                &oid,
                "ServicePrincipal",
            ))
            .or_else(|e| match e.code() {
                // A user signed in with `az login`: its principal type is User.
                Some("PrincipalTypeNotSupported") | Some("UnmatchedPrincipalType") => self
                    .block_on(arm.assign_role(&info.id, KEY_VAULT_SECRETS_OFFICER, &oid, "User")),
                _ => Err(e),
            })
            .map_err(at)?;
        }
        Ok(record(
            change,
            Kind::AzureVault,
            json!({"id": info.id, "uri": info.uri}),
        ))
    }

    pub(super) fn destroy_vault(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<(), ProviderError> {
        let (addr, a, name) = target(change, true);
        let rg = self.rg();
        if !self.guard_change(ctx, arm, change, &a)? {
            return Ok(());
        }
        self.block_on(arm.delete_vault(rg, &name))
            .map_err(arm_err(addr))?;
        ctx.emit(Event::Warning {
            message: format!(
                "{addr}: key vault {name} deleted; Azure keeps it soft-deleted for {SOFT_DELETE_DAYS} days (its secrets — node keys, keystores, passwords — stay recoverable by the subscription's owners and the name stays reserved). `az keyvault purge --name {name}` removes it for good now"
            ),
        });
        Ok(())
    }

    /// Writes one node's secrets through the vault's data plane (`apply` of
    /// `azure.secrets.<node>`), or deletes them when the node left the topology.
    pub(super) fn apply_secrets(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let addr = change.addr.as_str();
        let at = arm_err(addr);
        let a = attrs_of(change);
        let node = attr(&a, "node");
        let st = ctx.snapshot();
        let uri = st.output_str(VAULT_ADDR, "uri").map(str::to_string);
        if change.action == Action::Destroy {
            // A node that left the topology: its secrets go. With the whole network going
            // (`destroy`), the vault goes and takes them along.
            let removed = ctx.topology.nodes().iter().all(|n| n.name != node);
            if let (true, Some(uri)) = (removed, uri) {
                let names: Vec<String> = a["names"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                for n in names {
                    self.block_on(arm.delete_secret(&uri, &n)).map_err(at)?;
                }
            }
            return Ok(None);
        }
        let uri = uri.ok_or_else(|| {
            ProviderError::at(addr, "the key vault is not in state yet; run apply again")
        })?;
        let role = role_of(ctx, &node).ok_or_else(|| {
            ProviderError::at(addr, format!("node {node} is not in the topology"))
        })?;
        let values = self.secret_values(&st, &node, role)?;
        for (s, v) in &values {
            let content_type = match s.what {
                "signer keystore" => "application/json",
                _ => "text/plain",
            };
            let on_wait = |step: String| {
                ctx.emit(Event::Step {
                    subject: addr.to_string(),
                    step,
                })
            };
            let wrote = self
                .block_on(arm.put_secret(&uri, &s.name, v, content_type, &on_wait))
                .map_err(at)?;
            if wrote == SecretWrite::RecoveredThenWritten {
                ctx.emit(Event::Step {
                    subject: addr.to_string(),
                    step: format!(
                        "secret {} was soft-deleted (an earlier removal of {node}): recovered it, then wrote the new value over it",
                        s.name
                    ),
                });
            }
        }
        Ok(Some(record(
            change,
            Kind::AzureSecrets,
            json!({"names": values.iter().map(|(s, _)| s.name.clone()).collect::<Vec<_>>()}),
        )))
    }

    /// Lets the VM's managed identity read exactly its own secrets; returns the role
    /// assignment ids.
    pub(super) fn grant_secrets(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        addr: &str,
        node: &str,
        principal_id: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let st = ctx.snapshot();
        let vault_id = st.output_str(VAULT_ADDR, "id").ok_or_else(|| {
            ProviderError::at(addr, "the key vault is not in state yet; run apply again")
        })?;
        let role = role_of(ctx, node).unwrap_or(Role::Tx);
        node_secrets(node, role)
            .iter()
            .map(|s| {
                let scope = format!("{vault_id}/secrets/{}", s.name);
                self.block_on(arm.assign_role(
                    &scope,
                    KEY_VAULT_SECRETS_USER,
                    principal_id,
                    "ServicePrincipal",
                ))
                .map_err(|e| ProviderError::at(addr, e.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_follow_key_vault_rules() {
        for net in [
            "tradelane",
            "a",
            "9lives",
            "very-long-network-name-that-goes-on",
            "x--y",
        ] {
            let n = vault_name(net, "rg", "westeurope");
            assert!((3..=24).contains(&n.len()), "{n}");
            assert!(n.starts_with(|c: char| c.is_ascii_alphabetic()), "{n}");
            assert!(!n.contains("--") && !n.ends_with('-'), "{n}");
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{n}"
            );
        }
        assert_ne!(
            vault_name("tradelane", "rg1", "westeurope"),
            vault_name("tradelane", "rg2", "westeurope")
        );
        assert_eq!(node_secrets("a-validator-0", Role::Validator).len(), 3);
        assert_eq!(node_secrets("a-tx-0", Role::Tx).len(), 1);
    }
}
