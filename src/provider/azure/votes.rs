//! Clique votes and live peer changes on Azure, through VM Run Command. The vote rules
//! are `consensus::votes::vote`'s, shared with the local provider; only the control channel
//! differs ([`VmControl`]).

use super::run_command::{peers_script, VmControl};
use super::AzureProvider;
use crate::consensus::votes::SignerNode;
use crate::events::Event;
use crate::plan::Change;
use crate::provider::signer;
use crate::provider::{ApplyCtx, ProviderError};
use crate::render;
use crate::rpc;
use crate::state::Kind;
use crate::state::{ResourceState, State};
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

    /// `signer.<n>` (see `signer::apply_signer`): votes by Run Command.
    pub(super) fn apply_signer(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let st = ctx.snapshot();
        signer::apply_signer(change, &st, ctx.topology, |node, a, authorize| {
            let target = rpc::parse_address(a).ok_or_else(|| {
                ProviderError::at(&change.addr, format!("{a:?} is not an address"))
            })?;
            self.vote(ctx, &change.addr, node, target, authorize)
                .map(|()| "vote")
        })
    }

    /// A Clique vote by every validator VM in state that is a current signer, through Run
    /// Command, with the local rules (`consensus::votes::vote`). A failed vote quotes the log
    /// tail of the VMs it names (else of the first signer).
    pub(super) fn vote(
        &self,
        ctx: &ApplyCtx,
        addr: &str,
        node: &str,
        target: crate::crypto::Address,
        authorize: bool,
    ) -> Result<(), ProviderError> {
        let st = ctx.snapshot();
        let candidates = self.signer_nodes(&st)?;
        if candidates.is_empty() {
            return Err(ProviderError::at(addr, "no validator VM in state can vote"));
        }
        let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
        ctx.emit(Event::Step {
            subject: node.to_string(),
            step: format!(
                "{} through Run Command on {}",
                if authorize { "vote in" } else { "vote out" },
                names.join(", ")
            ),
        });
        signer::vote_in_apply(ctx, &candidates, target, authorize, node)
            .map(drop)
            .map_err(|e| {
                let e = e.to_string();
                let named: Vec<&str> = names.iter().copied().filter(|n| names_in(&e, n)).collect();
                let quoted = if named.is_empty() {
                    &names[..1]
                } else {
                    &named[..]
                };
                ProviderError::at(addr, format!("{e}\n{}", self.log_tails(&st, quoted)))
            })
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
            ProviderError::at(addr, format!("{e}\n{}", self.log_tails(&st, &[node])))
        })?;
        Ok(ci.node.static_nodes)
    }
}

/// Whether `text` names node `name` (not merely a longer name that starts with it).
fn names_in(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        !text[i + name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_is_named_only_by_its_whole_name() {
        let e = "proposed by alpha-validator-10, beta-validator-1 but clique_getSigners";
        assert!(super::names_in(e, "beta-validator-1"));
        assert!(super::names_in(e, "alpha-validator-10"));
        assert!(!super::names_in(e, "alpha-validator-1"));
    }
}
