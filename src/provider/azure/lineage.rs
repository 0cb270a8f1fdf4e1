//! Never touch another deployment. Every resource consort creates is tagged with the
//! state's lineage id (`consort-lineage`, fixed when the state is first created). Before
//! adopting, changing or deleting anything that already exists, consort reads its tags and
//! refuses when the lineage differs: two checkouts with the same network name and
//! subscription would otherwise adopt each other's resource group and delete each other's
//! VMs. Resources tagged before lineage tags existed (no `consort-lineage`) are adopted
//! when their `consort-network` matches.

use super::arm::{Arm, ArmError};
use crate::provider::ProviderError;
use std::collections::BTreeMap;

pub const LINEAGE_TAG: &str = "consort-lineage";
pub const NETWORK_TAG: &str = "consort-network";
pub const MANAGED_TAG: &str = "managed-by";

/// Whose a tagged resource is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Not tagged by consort at all (a resource group the user made, or a name clash).
    Foreign,
    /// This deployment (same lineage; or an untagged-lineage consort resource of this
    /// network).
    Ours,
    /// Another consort deployment: its lineage and network.
    Other { lineage: String, network: String },
}

pub fn owner(tags: &BTreeMap<String, String>, lineage: &str, network: &str) -> Owner {
    let managed = tags.get(MANAGED_TAG).map(String::as_str) == Some("consort");
    let net = tags.get(NETWORK_TAG).cloned().unwrap_or_default();
    match tags.get(LINEAGE_TAG) {
        Some(l) if l == lineage => Owner::Ours,
        Some(l) => Owner::Other {
            lineage: l.clone(),
            network: net,
        },
        None if managed && net == network => Owner::Ours,
        None if managed => Owner::Other {
            lineage: "(none)".into(),
            network: net,
        },
        None => Owner::Foreign,
    }
}

/// The refusal for a resource of another deployment.
pub fn refusal(addr: &str, what: &str, lineage: &str, other: &str, network: &str) -> ProviderError {
    ProviderError::at(
        addr,
        format!(
            "{what} belongs to another consort deployment (consort-lineage {other}, network {network:?}; this state's lineage is {lineage}). \
             consort never adopts, changes or deletes another deployment's resources: choose another network.name or provider.azure.resource_group \
             (or run consort from the checkout whose state created it)"
        ),
    )
}

/// Refuses unless the existing resource `id` (if any) is this deployment's (or carries no
/// consort tags and `foreign_ok`). Returns whether it exists.
pub async fn guard(
    arm: &Arm,
    addr: &str,
    id: &str,
    api: &str,
    lineage: &str,
    network: &str,
    foreign_ok: bool,
) -> Result<bool, ProviderError> {
    let tags = arm
        .tags_of(id, api)
        .await
        .map_err(|e: ArmError| ProviderError::at(addr, e.to_string()))?;
    let Some(tags) = tags else {
        return Ok(false);
    };
    match owner(&tags, lineage, network) {
        Owner::Ours => Ok(true),
        Owner::Foreign if foreign_ok => Ok(true),
        Owner::Foreign => Err(ProviderError::at(
            addr,
            format!(
                "{id} already exists and was not created by consort; refusing to adopt or change it. Delete or rename it, or choose another network.name or provider.azure.resource_group"
            ),
        )),
        Owner::Other { lineage: l, network: n } => Err(refusal(addr, id, lineage, &l, &n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn owner_by_lineage_then_network() {
        let ours = t(&[
            (MANAGED_TAG, "consort"),
            (NETWORK_TAG, "n"),
            (LINEAGE_TAG, "L1"),
        ]);
        assert_eq!(owner(&ours, "L1", "n"), Owner::Ours);
        assert!(matches!(owner(&ours, "L2", "n"), Owner::Other { .. }));
        let legacy = t(&[(MANAGED_TAG, "consort"), (NETWORK_TAG, "n")]);
        assert_eq!(owner(&legacy, "L2", "n"), Owner::Ours);
        assert!(matches!(owner(&legacy, "L2", "m"), Owner::Other { .. }));
        assert_eq!(owner(&t(&[("team", "x")]), "L", "n"), Owner::Foreign);
    }
}
