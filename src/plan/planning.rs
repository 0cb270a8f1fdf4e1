//! What plan needs from a provider, as a trait of plan's own: a provider implements it
//! (`provider::Provider` builds on it), so plan never reaches up into provider code.

use super::build::PlanError;
use super::{Change, Resource};
use crate::state::State;
use crate::topology::Topology;
use std::collections::BTreeMap;

/// The planning side of a provider: its resources for a topology, and what it reads from
/// the live network before a plan is made.
pub trait Planning {
    /// The provider's name as state and plans record it (`local`, `azure`).
    fn name(&self) -> &'static str;

    /// The address of the resource that runs node `name` (`node.<name>` locally,
    /// `azure.vm.<name>` on Azure): signers and funding depend on it.
    fn node_addr(&self, name: &str) -> String {
        format!("node.{name}")
    }

    /// Provider resources (nodes, VMs, networks) for the topology; `core` are the
    /// provider-independent ones (keys, accounts, genesis, signers) to depend on.
    fn desired(
        &self,
        topology: &Topology,
        state: Option<&State>,
        core: &[Resource],
    ) -> Result<Vec<Resource>, PlanError>;

    /// Notes the plan shows before its changes (Azure: what the network costs to run).
    fn plan_notes(&self, _topology: &Topology, _desired: &[Resource]) -> Vec<String> {
        Vec::new()
    }

    /// Live drift of resources that state says exist: address → reason (e.g. a dead
    /// process: "restart (process not running)"). Offline providers return nothing.
    fn refresh(&self, _topology: &Topology, _state: &State) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// After `refresh`: creates in `changes` the live network already shows done (a
    /// funding transfer an interrupted run got mined): address → what was found. Plan
    /// marks them record-only; apply then only records them.
    fn already_done(
        &self,
        _topology: &Topology,
        _state: &State,
        _changes: &[Change],
    ) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// After `refresh`, on a plan that is not a destroy: creates whose name the platform
    /// still holds for something deleted earlier (Azure: a soft-deleted key vault or
    /// secret), address → what apply will do about it; the plan shows it beside the change.
    fn held_names(
        &self,
        _topology: &Topology,
        _state: Option<&State>,
        _changes: &[Change],
    ) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Before a refresh that may lead to writes (`plan --refresh`, `apply`), or before a
    /// `destroy` (`destroy`: true): why the caller could not make the changes at all
    /// (Azure: missing permissions), so nothing is written or deleted only to fail
    /// half-way.
    fn preflight(&self, _topology: &Topology, _destroy: bool) -> Result<(), String> {
        Ok(())
    }

    /// After `refresh`: what it could not read, each naming the resource and why (e.g. a
    /// validator whose Run Command stayed busy). A plan with any never says "No changes":
    /// it does not know.
    fn unread(&self) -> Vec<String> {
        Vec::new()
    }

    /// After `refresh`: why the live network cannot be brought to the topology at all (a
    /// plan refuses with this), e.g. a signer vote that too few signers could pass.
    fn check_live(&self, _topology: &Topology, _state: &State) -> Result<(), String> {
        Ok(())
    }
}
