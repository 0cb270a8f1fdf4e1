//! Names Azure still holds for what was deleted: Key Vault soft delete keeps a deleted
//! vault's name (and its secrets) and a deleted secret's name reserved until purged. A
//! refreshing plan reads them, so it says before apply that apply will recover them.

use super::arm::vault::DeletedVault;
use super::layout::VAULT_ADDR;
use super::{attr, attrs_of, AzureProvider};
use crate::plan::Change;
use crate::state::State;
use crate::state::{Action, Kind};
use serde_json::Value;
use std::collections::BTreeMap;

impl AzureProvider {
    /// For each vault or secrets create in `changes`: what apply will do about a
    /// soft-deleted name (see `Planning::held_names`).
    pub(super) fn soft_deleted_names(
        &self,
        state: Option<&State>,
        changes: &[Change],
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Ok(arm) = self.arm() else {
            return out;
        };
        let creates = changes
            .iter()
            .filter(|c| matches!(c.action, Action::Create | Action::Replace) && !c.record_only);
        let vault_uri = state.and_then(|s| s.output_str(VAULT_ADDR, "uri"));
        for c in creates {
            let a = attrs_of(c);
            let note = match c.kind {
                Kind::AzureVault => {
                    let name = attr(&a, "name");
                    match self.block_on(arm.deleted_vault(&self.config.location, &name)) {
                        Ok(Some(d)) => Some(vault_note(&name, &d)),
                        Ok(None) => None,
                        Err(e) => Some(format!(
                            "could not check for a soft-deleted key vault {name} ({e}); apply recovers one if Azure reports it"
                        )),
                    }
                }
                Kind::AzureSecrets => {
                    let Some(uri) = vault_uri else { continue };
                    let names: Vec<&str> = a["names"]
                        .as_array()
                        .map(|v| v.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let mut held = vec![];
                    let mut failed = None;
                    for n in names {
                        match self.block_on(arm.secret_is_soft_deleted(uri, n)) {
                            Ok(true) => held.push(n),
                            Ok(false) => {}
                            Err(e) => failed = Some(e.to_string()),
                        }
                    }
                    match (held.is_empty(), failed) {
                        (true, None) => None,
                        (true, Some(e)) => Some(format!(
                            "could not check for soft-deleted secrets ({e}); apply recovers any Key Vault reports"
                        )),
                        (false, _) => Some(format!(
                            "recover: soft-deleted secret(s) {} (an earlier removal) still hold the name(s); apply recovers each, then writes the new value over it",
                            held.join(", ")
                        )),
                    }
                }
                _ => None,
            };
            if let Some(n) = note {
                out.insert(c.addr.clone(), n);
            }
        }
        out
    }
}

fn vault_note(name: &str, d: &DeletedVault) -> String {
    format!(
        "recover: key vault {name} is soft-deleted (deleted {}, held until {}{}, was {}); apply recovers it (createMode: recover) with the secrets it held, then writes this network's over them. To start from an empty vault instead, purge it first: `az keyvault purge --name {name}`{}",
        d.deletion_date,
        d.scheduled_purge_date,
        if d.purge_protection {
            ", purge protection on"
        } else {
            ""
        },
        d.vault_id,
        if d.purge_protection {
            " (not possible before that date: purge protection)"
        } else {
            ""
        }
    )
}
