//! Clique votes and live peer changes on Azure, through VM Run Command. The vote rules
//! are `governance::vote`'s, shared with the local provider; only the control channel
//! differs ([`VmControl`]).

use super::layout::vm_addr;
use super::run_command::{peers_script, VmControl};
use super::{record, AzureProvider};
use crate::plan::{Action, Change, Kind};
use crate::provider::events::Event;
use crate::provider::governance::{self, SignerNode};
use crate::provider::{ApplyCtx, ProviderError};
use crate::render;
use crate::rpc;
use crate::state::{ResourceState, State};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

impl AzureProvider {
    /// consort's control channel to a node's VM.
    pub(super) fn control(&self, node: &str) -> Result<VmControl, ProviderError> {
        let arm = self.arm()?;
        let poll = arm.settings().poll_interval;
        Ok(VmControl {
            arm,
            rg: self.rg().to_string(),
            vm: super::layout::vm_name(node),
            runtime: self.handle(),
            poll,
        })
    }

    /// Every validator VM in state that has a signer key: current signers first (they
    /// answer), newcomers after.
    fn signer_nodes(&self, st: &State) -> Result<Vec<SignerNode>, ProviderError> {
        let mut out = Vec::new();
        for (a, r) in &st.resources {
            let Some(node) = a.strip_prefix("azure.vm.") else {
                continue;
            };
            if r.kind != Kind::AzureVm {
                continue;
            }
            let Some(address) = st
                .output_str(&format!("key.signer.{node}"), "address")
                .and_then(rpc::parse_address)
            else {
                continue;
            };
            out.push(SignerNode {
                name: node.to_string(),
                control: Arc::new(self.control(node)?),
                address,
            });
        }
        out.sort_by_key(|s| !st.resources.contains_key(&format!("signer.{}", s.name)));
        Ok(out)
    }

    /// `signer.<n>`: a genesis signer is only recorded; otherwise the current signers vote
    /// the validator in (create) or out (its node left the topology), by Run Command.
    pub(super) fn apply_signer(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let addr = change.addr.as_str();
        let st = ctx.snapshot();
        let governance::SignerChange {
            node,
            in_genesis,
            address,
        } = governance::signer_change(change, &st);
        let vote = |authorize: bool| -> Result<(), ProviderError> {
            let target = address
                .as_deref()
                .and_then(rpc::parse_address)
                .ok_or_else(|| {
                    ProviderError::at(addr, format!("key.signer.{node} has no address in state"))
                })?;
            let candidates = self.signer_nodes(&st)?;
            if candidates.is_empty() {
                return Err(ProviderError::at(addr, "no validator VM in state can vote"));
            }
            ctx.emit(Event::Step {
                subject: node.clone(),
                step: format!(
                    "{} through Run Command on {}",
                    if authorize { "vote in" } else { "vote out" },
                    candidates
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            governance::vote(
                &candidates,
                target,
                authorize,
                ctx.health_timeout,
                &node,
                &ctx.events,
            )
            .map(drop)
            .map_err(|e| {
                // What the first signer's geth says helps more than the vote's summary.
                let tail = self
                    .control(&candidates[0].name)
                    .map(|c| c.log_tail())
                    .unwrap_or_default();
                ProviderError::at(
                    addr,
                    format!(
                        "{e}\nlast lines of geth.log on {}:\n{tail}",
                        vm_addr(&candidates[0].name)
                    ),
                )
            })
        };
        match change.action {
            Action::Update => Ok(st.resources.get(addr).cloned()),
            Action::Create | Action::Replace if in_genesis => Ok(Some(record(
                change,
                Kind::Signer,
                json!({"address": address, "via": "genesis"}),
            ))),
            Action::Create | Action::Replace => {
                vote(true)?;
                Ok(Some(record(
                    change,
                    Kind::Signer,
                    json!({"address": address, "via": "vote"}),
                )))
            }
            Action::Destroy => {
                // A validator removed from the topology is voted out by the others; one
                // still in it goes away with the whole network (`destroy`): no vote.
                if ctx.topology.nodes().iter().all(|n| n.name != node) {
                    vote(false)?;
                }
                Ok(None)
            }
        }
    }

    /// A mesh change on a running VM: rewrite its config (for the next start) and add /
    /// drop peers live, by Run Command, so existing VMs learn new nodes without being
    /// replaced. Returns the new StaticNodes.
    pub(super) fn update_peers(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        node: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let st = ctx.snapshot();
        let ci = self.vm_cloud_init(ctx.topology, &st, node)?;
        let before: BTreeSet<String> = st
            .resources
            .get(addr)
            .and_then(|r| r.outputs.get("static_nodes"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let after: BTreeSet<String> = ci.node.static_nodes.iter().cloned().collect();
        let add: Vec<String> = after.difference(&before).cloned().collect();
        let remove: Vec<String> = before.difference(&after).cloned().collect();
        let toml = render::geth_config_toml(&ci.node)
            .map_err(|e| ProviderError::at(addr, e.to_string()))?;
        ctx.emit(Event::Step {
            subject: node.to_string(),
            step: format!(
                "peers by Run Command: {} added, {} removed, config rewritten",
                add.len(),
                remove.len()
            ),
        });
        let vm = self.control(node)?;
        vm.run(&peers_script(&toml, &add, &remove)).map_err(|e| {
            ProviderError::at(
                addr,
                format!("{e}\nlast lines of geth.log:\n{}", vm.log_tail()),
            )
        })?;
        Ok(ci.node.static_nodes)
    }
}
