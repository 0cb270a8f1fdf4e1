//! What the caller may do at a scope (`GET {scope}/providers/Microsoft.Authorization/
//! permissions`, api-version 2022-04-01: a list of `{actions, notActions, dataActions,
//! notDataActions}`, one per role the caller holds there), so `plan --refresh` and apply
//! refuse before any write when consort could not finish: it creates resources and role
//! assignments, and Contributor's notActions exclude `Microsoft.Authorization/*/Write`.

use super::identity::AUTHORIZATION_API;
use super::{Arm, ArmError};
use serde_json::Value;

/// The control-plane actions an apply performs (a representative one per kind of write).
pub const NEEDED: &[&str] = &[
    "Microsoft.Resources/subscriptions/resourceGroups/write",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/networkInterfaces/write",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/runCommand/action",
    "Microsoft.KeyVault/vaults/write",
    "Microsoft.Authorization/roleAssignments/write",
];

/// What to grant, for a caller that may not create role assignments.
pub const ROLE_ADVICE: &str = "Contributor plus User Access Administrator, or Owner, or Contributor plus Role Based Access Control Administrator, on the subscription or the resource group (Contributor alone cannot write Microsoft.Authorization/roleAssignments, and consort gives each VM's identity its own secrets)";

/// One role's share of the caller's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
}

/// `pattern` (ARM's `*` wildcards, case-insensitive) matches `action`.
fn matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == a;
    }
    let mut rest = a.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(j) => rest = &rest[j + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether some role grants `action` (its actions match, none of its notActions does).
pub fn allowed(perms: &[Permission], action: &str) -> bool {
    perms.iter().any(|p| {
        p.actions.iter().any(|a| matches(a, action))
            && !p.not_actions.iter().any(|n| matches(n, action))
    })
}

/// The actions of [`NEEDED`] the caller lacks.
pub fn missing(perms: &[Permission]) -> Vec<&'static str> {
    NEEDED
        .iter()
        .copied()
        .filter(|a| !allowed(perms, a))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Arm {
    /// The caller's permissions at `scope` (a subscription or resource group id); None
    /// when the scope does not exist.
    pub async fn permissions(&self, scope: &str) -> Result<Option<Vec<Permission>>, ArmError> {
        let path = format!("{scope}/providers/Microsoft.Authorization/permissions");
        let v = match self.get_json(&path, AUTHORIZATION_API).await? {
            Some(v) => v,
            None => return Ok(None),
        };
        Ok(Some(
            v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| Permission {
                    actions: strings(&p["actions"]),
                    not_actions: strings(&p["notActions"]),
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(actions: &[&str], not: &[&str]) -> Permission {
        Permission {
            actions: actions.iter().map(|s| s.to_string()).collect(),
            not_actions: not.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn contributor_lacks_role_assignments_and_owner_or_uaa_adds_them() {
        let contributor = p(
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
        );
        assert_eq!(
            missing(std::slice::from_ref(&contributor)),
            vec!["Microsoft.Authorization/roleAssignments/write"]
        );
        let uaa = p(&["*/read", "Microsoft.Authorization/*"], &[]);
        assert!(missing(&[contributor.clone(), uaa]).is_empty());
        assert!(missing(&[p(&["*"], &[])]).is_empty());
        let reader = p(&["*/read"], &[]);
        assert_eq!(missing(&[reader]).len(), NEEDED.len());
        assert!(matches(
            "Microsoft.Compute/*",
            "microsoft.compute/virtualMachines/write"
        ));
        assert!(!matches(
            "Microsoft.Compute/*/read",
            "Microsoft.Compute/virtualMachines/write"
        ));
    }
}
