//! The Azure provider: ARM resources through azure_mgmt_* (our own LRO polling).

pub mod arm;

use super::{ApplyCtx, Health, Provider, ProviderError};
use crate::plan::{Change, Resource};
use crate::state::{ResourceState, State};
use crate::topology::{AzureConfig, Topology};

pub struct AzureProvider {
    pub config: AzureConfig,
}

impl AzureProvider {
    pub fn new(config: AzureConfig) -> Result<AzureProvider, ProviderError> {
        Ok(AzureProvider { config })
    }
}

impl Provider for AzureProvider {
    fn name(&self) -> &'static str {
        "azure"
    }
    fn desired(
        &self,
        _t: &Topology,
        _s: Option<&State>,
        _c: &[Resource],
    ) -> Result<Vec<Resource>, ProviderError> {
        Ok(vec![])
    }
    fn apply_change(
        &self,
        _ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        Err(super::unsupported("azure", change))
    }
    fn wait_healthy(&self, _ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        Err(ProviderError::Other(
            "azure health: not implemented yet".into(),
        ))
    }
    fn health(&self, _t: &Topology, _s: &State) -> Health {
        Health::default()
    }
}

/// Writes `azuredeploy.json` + `azuredeploy.parameters.json` into `out_dir`.
pub fn export_arm(
    _topology: &Topology,
    _out_dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, ProviderError> {
    Err(ProviderError::Unsupported {
        provider: "azure",
        what: "`export arm` yet (being built)".into(),
    })
}
