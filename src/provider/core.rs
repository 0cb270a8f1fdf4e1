//! Core resources every provider shares: node keys, signer keys, accounts, genesis.
//! Generated on this machine and stored under the state directory (0600).

use super::{ApplyCtx, ProviderError};
use crate::plan::Change;
use crate::state::ResourceState;

pub fn apply_change(
    ctx: &ApplyCtx,
    change: &Change,
) -> Result<Option<ResourceState>, ProviderError> {
    let _ = ctx;
    Err(ProviderError::at(
        &change.addr,
        "core resources: not implemented yet",
    ))
}
