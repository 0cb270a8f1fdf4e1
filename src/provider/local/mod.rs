//! The local provider: real geth processes on 127.0.0.1.

pub mod process;

use super::{ApplyCtx, Health, Provider, ProviderError};
use crate::plan::{Change, Resource};
use crate::state::{ResourceState, State};
use crate::topology::{LocalConfig, Topology};

pub struct LocalProvider {
    pub config: LocalConfig,
}

impl LocalProvider {
    pub fn new(config: LocalConfig) -> LocalProvider {
        LocalProvider { config }
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
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
        Err(super::unsupported("local", change))
    }
    fn wait_healthy(&self, _ctx: &ApplyCtx) -> Result<Health, ProviderError> {
        Err(ProviderError::Other(
            "local health: not implemented yet".into(),
        ))
    }
    fn health(&self, _t: &Topology, _s: &State) -> Health {
        Health::default()
    }
}
