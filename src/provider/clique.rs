//! The `clique` resource of a plan, for every provider: one resource that stands for "the
//! live Clique signers are the topology's validators, with no stray proposal". What that
//! means and how apply gets there are the rules of [`crate::consensus::drift`]; this file
//! builds the plan resource, records it in state, and runs the reconciliation as a change
//! of an apply.

use super::{ApplyCtx, ProviderError};
use crate::consensus::control::Validators;
use crate::consensus::drift;
use crate::events::Event;
use crate::plan::{Change, Resource};
use crate::state::{Kind, ResourceState};
use serde_json::json;

/// The one resource of kind [`Kind::CliqueSigners`].
pub const CLIQUE_ADDR: &str = "clique";

/// The `clique` resource: after every vote of the same apply (`signer.*`), on nodes that
/// are up (`nodes`: the provider's node resources, e.g. `node.*`).
pub fn resource(nodes: &str) -> Resource {
    Resource {
        addr: CLIQUE_ADDR.into(),
        kind: Kind::CliqueSigners,
        attrs: json!({}),
        deps: vec!["signer.*".into(), nodes.into()],
        summary: "live Clique signers = the topology's validators, no stray proposal".into(),
    }
}

/// What state records for the `clique` resource once reconciled.
pub fn record(change: &Change, signers: Vec<String>) -> ResourceState {
    ResourceState {
        kind: Kind::CliqueSigners,
        attrs: change.after.clone().unwrap_or(json!({})),
        outputs: json!({ "signers": signers }),
        deps: change.deps.clone(),
    }
}

/// A vote of the reconciliation: (label for messages, target, authorize).
pub type Vote<'a> = drift::Vote<'a, ProviderError>;

/// Applies the `clique` resource ([`drift::reconcile`]) as a change of an apply: its
/// progress as events of `clique`, its refusals as errors of `clique`.
pub fn reconcile(
    ctx: &ApplyCtx,
    live: &dyn Validators,
    vote: &Vote,
) -> Result<Vec<String>, ProviderError> {
    drift::reconcile(
        ctx.topology,
        live,
        &|| ctx.snapshot(),
        &|step| {
            ctx.emit(Event::Step {
                subject: CLIQUE_ADDR.into(),
                step,
            })
        },
        vote,
        &|why| ProviderError::at(CLIQUE_ADDR, why),
    )
}
