//! The words every layer shares about a resource: what it is (`Kind`) and what a plan does
//! to it (`Action`). They live here, at the bottom, because state records a resource's kind
//! and everything above (plan, events, providers, views) speaks of both; no lower module
//! has to reach up for them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Fixed at first apply: chain id, Clique period/epoch, gas limit, signers, alloc.
    Genesis,
    /// A node's devp2p key (`nodekey`): gives the enode id.
    NodeKey,
    /// A validator's signer key, its keystore and password file.
    SignerKey,
    /// A funded application account: key, keystore, password file.
    Account,
    /// Funding of an account that joined after genesis (a signed transfer).
    Funding,
    /// "This validator is an authorised Clique signer": in genesis, or voted in/out.
    Signer,
    /// One per network (`clique`): the live Clique signer set equals the topology's
    /// validators and no proposal consort did not make is pending. Plan reads the chain
    /// for it; apply discards stray proposals and votes until the sets agree.
    CliqueSigners,
    /// A geth process on this machine.
    LocalNode,
    AzureResourceGroup,
    AzureVnet,
    AzureNsg,
    AzureSubnet,
    AzurePublicIp,
    AzureNic,
    AzureVm,
    /// The network's Key Vault (RBAC authorization, soft delete on).
    AzureVault,
    /// One node's secrets in the Key Vault (node key; keystore and password).
    AzureSecrets,
    /// The VNet's explicit outbound: a NAT gateway with its own public IP.
    AzureNatGateway,
}

impl Kind {
    /// Attributes whose change forces destroy-then-create rather than an in-place update.
    pub fn force_new(self) -> &'static [&'static str] {
        match self {
            Kind::NodeKey | Kind::SignerKey => &["node", "member", "name"],
            Kind::Account => &["member", "name", "address"],
            // A new geth is a rolling restart that keeps the chain, not a new node.
            Kind::LocalNode => &["role", "member"],
            Kind::AzureVm => &[
                "size",
                "image",
                "admin_username",
                "ssh_public_key",
                "custom_data_sha256",
                // geth's flags are in the VM's customData: a new list is a new tx VM.
                "cors_origins",
            ],
            Kind::AzureNic => &["private_ip", "subnet"],
            Kind::AzureSubnet => &["address_prefix"],
            Kind::AzureVnet => &["address_space"],
            Kind::AzureResourceGroup => &["location"],
            _ => &[],
        }
    }

    /// Kinds handled by the core (generated locally, identical for every provider).
    pub fn is_core(self) -> bool {
        matches!(
            self,
            Kind::Genesis | Kind::NodeKey | Kind::SignerKey | Kind::Account
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Destroy,
    Replace,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Destroy => "-",
            Action::Replace => "-/+",
        }
    }
}
