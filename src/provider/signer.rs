//! The `signer.<n>` resource of an apply, for every provider: what a change is about (its
//! node, whether genesis authorised it, its address) and what state records around the
//! provider's vote. The vote itself follows the rules of [`crate::consensus::votes`].

use super::ProviderError;
use crate::consensus::control::GovError;
use crate::consensus::votes::{vote, SignerNode};
use crate::crypto::Address;
use crate::state::ResourceState;
use serde_json::{json, Value};

/// What a `signer.<n>` change is about: its node, whether genesis authorised it, and the
/// signer's address (from its key, else from what the resource recorded).
pub struct SignerChange {
    pub node: String,
    pub in_genesis: bool,
    pub address: Option<String>,
}

pub fn signer_change(change: &crate::plan::Change, st: &crate::state::State) -> SignerChange {
    let attrs = change
        .after
        .as_ref()
        .or(change.before.as_ref())
        .cloned()
        .unwrap_or_default();
    let node = attrs
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let address = st
        .output_str(&format!("key.signer.{node}"), "address")
        .map(str::to_string)
        .or_else(|| {
            st.resources
                .get(&change.addr)
                .and_then(|r| r.outputs.get("address"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    SignerChange {
        in_genesis: attrs
            .get("genesis")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        node,
        address,
    }
}

/// A `signer.<n>` change around the provider's vote: an Update keeps what state has; a
/// genesis signer is only recorded; a Create votes it in; a Destroy votes it out when its
/// node left the topology (one still in it goes away with the whole network, `destroy`: no
/// vote). `vote(node, address, authorize)` returns how the signer got in (`"vote"`, ...).
pub fn apply_signer(
    change: &crate::plan::Change,
    st: &crate::state::State,
    topology: &crate::topology::Topology,
    vote: impl FnOnce(&str, &str, bool) -> Result<&'static str, ProviderError>,
) -> Result<Option<ResourceState>, ProviderError> {
    use crate::state::{Action, Kind};
    let addr = change.addr.as_str();
    let SignerChange {
        node,
        in_genesis,
        address,
    } = signer_change(change, st);
    let record = |outputs: Value| ResourceState {
        kind: Kind::Signer,
        attrs: change.after.clone().unwrap_or(json!({})),
        outputs,
        deps: change.deps.clone(),
    };
    match change.action {
        Action::Update => Ok(st.resources.get(addr).cloned()),
        Action::Create | Action::Replace if in_genesis => Ok(Some(record(
            json!({ "address": address, "via": "genesis" }),
        ))),
        Action::Create | Action::Replace => {
            let a = address.ok_or_else(|| {
                ProviderError::at(addr, format!("key.signer.{node} has no address in state"))
            })?;
            let via = vote(&node, &a, true)?;
            Ok(Some(record(json!({ "address": a, "via": via }))))
        }
        Action::Destroy => {
            let removed = topology.nodes().iter().all(|n| n.name != node);
            if let (true, Some(a)) = (removed, address) {
                vote(&node, &a, false)?;
            }
            Ok(None)
        }
    }
}

/// [`vote`] as a change of an apply: with its timeout (`--timeout`) and events.
pub fn vote_in_apply(
    ctx: &super::ApplyCtx,
    candidates: &[SignerNode],
    target: Address,
    authorize: bool,
    subject: &str,
) -> Result<Vec<String>, GovError> {
    let t = ctx.health_timeout;
    vote(candidates, target, authorize, t, subject, &ctx.events)
}
