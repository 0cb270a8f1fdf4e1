//! Role assignments (`Microsoft.Authorization/roleAssignments`, api 2022-04-01) at any
//! scope — here single Key Vault secrets, so a VM's managed identity reads its own
//! secrets and nothing else.

use super::{Arm, ArmError};
use serde_json::{json, Value};

pub const AUTHORIZATION_API: &str = "2022-04-01";
/// Built-in "Key Vault Secrets User": read secret contents.
pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
/// Built-in "Key Vault Secrets Officer": write secrets (consort's own identity, on the
/// vault it creates: RBAC vaults give even their creator no data-plane access).
pub const KEY_VAULT_SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";

/// A deterministic role-assignment name (a GUID) for (scope, principal, role), so a
/// re-run PUTs the same assignment instead of adding another.
pub fn assignment_name(scope: &str, principal_id: &str, role: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(
        format!(
            "{}|{}|{}",
            scope.to_ascii_lowercase(),
            principal_id.to_ascii_lowercase(),
            role
        )
        .as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

impl Arm {
    pub fn role_definition_id(&self, role: &str) -> String {
        format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}",
            self.subscription_id()
        )
    }

    pub fn role_assignment_id(&self, scope: &str, name: &str) -> String {
        format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
    }

    /// The body of a role assignment of `role` to a service principal (a managed identity).
    pub fn role_assignment_body(
        &self,
        role: &str,
        principal_id: &str,
        principal_type: &str,
    ) -> Value {
        json!({
            "properties": {
                "roleDefinitionId": self.role_definition_id(role),
                "principalId": principal_id,
                "principalType": principal_type,
            }
        })
    }

    /// Assigns `role` at `scope` to `principal_id`; returns the assignment's id. A
    /// `RoleAssignmentExists` answer (the same assignment under another name) counts as
    /// done; a fresh identity not yet replicated (`PrincipalNotFound`) is retried.
    pub async fn assign_role(
        &self,
        scope: &str,
        role: &str,
        principal_id: &str,
        principal_type: &str,
    ) -> Result<String, ArmError> {
        let name = assignment_name(scope, principal_id, role);
        let id = self.role_assignment_id(scope, &name);
        let body = self.role_assignment_body(role, principal_id, principal_type);
        let started = std::time::Instant::now();
        let mut wait = self.settings.retry_initial_delay;
        loop {
            match self.put_json_sync(&id, AUTHORIZATION_API, &body).await {
                Ok(_) => return Ok(id),
                Err(e) if e.code() == Some("RoleAssignmentExists") => return Ok(id),
                Err(e)
                    if e.code() == Some("PrincipalNotFound")
                        && started.elapsed() + wait < self.settings.retry_max_elapsed =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.settings.retry_max_delay);
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn delete_role_assignment(&self, id: &str) -> Result<(), ArmError> {
        self.delete_json(id, AUTHORIZATION_API).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_names_are_stable_guids() {
        let a = assignment_name("/s/x/secrets/a", "p1", KEY_VAULT_SECRETS_USER);
        assert_eq!(
            a,
            assignment_name("/S/X/secrets/A", "P1", KEY_VAULT_SECRETS_USER)
        );
        assert_ne!(
            a,
            assignment_name("/s/x/secrets/b", "p1", KEY_VAULT_SECRETS_USER)
        );
        assert!(uuid::Uuid::parse_str(&a).is_ok(), "{a}");
    }
}
