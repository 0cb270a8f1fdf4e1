//! Live Clique reconciliation on Azure ([`crate::consensus::drift`], the same rules as
//! locally): every validator VM is read through a Run Command script that asks its geth
//! over IPC (`clique.getSigners()`, `clique.proposals`), all VMs at once; stray proposals
//! are discarded and votes cast the same way. An apply cannot restart geth on a VM (systemd
//! on the VM does that), so only validators that answer count as able to vote.
//!
//! The `clique` resource is recorded without a read when it is created (with a new
//! network nothing can be stray yet, and one Run Command per validator would add a wave to
//! every first apply); from then on every refresh (`plan --refresh`, `apply`) reads the
//! live set and an Update reconciles it.

use super::AzureProvider;
use crate::consensus::control::{CliqueView, NodeControl, Validators};
use crate::consensus::drift;
use crate::plan::Change;
use crate::provider::clique::{self, CLIQUE_ADDR};
use crate::provider::{ApplyCtx, ProviderError};
use crate::state::{Action, Kind};
use crate::state::{ResourceState, State};
use crate::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};

impl Validators for AzureProvider {
    fn recorded(&self, st: &State) -> BTreeSet<String> {
        st.resources
            .iter()
            .filter(|(_, r)| r.kind == Kind::AzureVm)
            .filter_map(|(a, _)| a.strip_prefix("azure.vm.").map(str::to_string))
            .collect()
    }
    fn node_control<'a>(&'a self, _st: &State, node: &str) -> Option<Box<dyn NodeControl + 'a>> {
        Some(Box::new(self.control(node).ok()?))
    }
    /// Every VM through a Run Command script; a VM that could not be asked (Run Command
    /// itself failed) is remembered as unread, for `check_live`.
    fn read(&self, _st: &State, node: &str) -> Option<CliqueView> {
        let read = self
            .control(node)
            .map_err(|e| e.to_string())
            .and_then(|vm| vm.clique_read());
        match read {
            Ok(r) => r,
            Err(e) => {
                self.unread
                    .lock()
                    .unwrap()
                    .insert(node.to_string(), format!("validator {node}: {e}"));
                None
            }
        }
    }
}

impl AzureProvider {
    /// The `clique` drift of a refresh, into `drift`; remembers why apply could not fix
    /// it, for `check_live`.
    pub(super) fn refresh_clique(
        &self,
        topology: &Topology,
        state: &State,
        drift: &mut BTreeMap<String, String>,
    ) {
        self.unread.lock().unwrap().clear();
        if !state.resources.contains_key(CLIQUE_ADDR) {
            return;
        }
        let d = drift::signer_drift(topology, state, self);
        *self.signer_refusal.lock().unwrap() = d.refusal();
        if !d.is_empty() {
            drift.insert(CLIQUE_ADDR.into(), d.reason());
        }
    }

    /// `clique`: recorded at creation; an Update (a refresh found drift) discards stray
    /// proposals and votes by Run Command.
    pub(super) fn reconcile_signers(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        match change.action {
            Action::Destroy => Ok(None),
            Action::Create => Ok(Some(clique::record(change, vec![]))),
            Action::Update | Action::Replace => {
                let signers = clique::reconcile(ctx, self, &|label, a, authorize| {
                    self.vote(ctx, CLIQUE_ADDR, label, *a, authorize)
                })?;
                Ok(Some(clique::record(change, signers)))
            }
        }
    }
}
