//! Errors of the ARM client. Every message names the resource (its ARM id), what ARM said
//! (status, error code, message) and, for the codes we know, what to do about it.
//! Never carries a token, a request body or customData.

use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// ARM answered with an error status and (usually) an error body
    /// `{"error":{"code","message","details"}}`.
    #[error("{resource}: ARM returned {status} {code}: {message}{}", hint_suffix(.code))]
    Api {
        resource: String,
        status: u16,
        code: String,
        message: String,
    },
    /// A long-running operation ended as Failed or Canceled (the operation's own status
    /// body, or the resource's provisioningState).
    #[error("{resource}: {operation} ended {status}: {code}: {message}{}", hint_suffix(.code))]
    OperationFailed {
        resource: String,
        operation: String,
        status: String,
        code: String,
        message: String,
    },
    /// A long-running operation did not finish in time.
    #[error("{resource}: {operation} still {last_status} after {waited_secs}s; the resource may still be provisioning in Azure. Re-run the command later (state is saved), or raise the operation timeout")]
    Timeout {
        resource: String,
        operation: String,
        last_status: String,
        waited_secs: u64,
    },
    /// The request could not be sent or its answer not read (network, TLS, bad JSON).
    #[error("{resource}: {message}. Check that the ARM endpoint ({endpoint}) is reachable (CONSORT_ARM_ENDPOINT overrides it)")]
    Transport {
        resource: String,
        endpoint: String,
        message: String,
    },
    /// Getting a token failed.
    #[error("Azure credentials: {message}. Log in with `az login`, set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET for a service principal, run on a VM with a managed identity, or set CONSORT_ARM_TOKEN to a bearer token")]
    Credential { message: String },
    /// The ARM endpoint setting is unusable.
    #[error("{variable}={value:?}: {reason}")]
    Endpoint {
        variable: &'static str,
        value: String,
        reason: String,
    },
    /// ARM sent something our protocol handling cannot follow (e.g. a polling URL on
    /// another host, which would receive our bearer token).
    #[error("{resource}: {message}")]
    Protocol { resource: String, message: String },
}

impl ArmError {
    /// The ARM error code, if ARM gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Api { code, .. } | ArmError::OperationFailed { code, .. } => Some(code),
            _ => None,
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The resource (ARM id) the error is about, when there is one.
    pub fn resource(&self) -> Option<&str> {
        match self {
            ArmError::Api { resource, .. }
            | ArmError::OperationFailed { resource, .. }
            | ArmError::Timeout { resource, .. }
            | ArmError::Transport { resource, .. }
            | ArmError::Protocol { resource, .. } => Some(resource),
            _ => None,
        }
    }

    /// Maps an azure_core error from a request about `resource`.
    pub(crate) fn from_core(resource: &str, endpoint: &str, e: azure_core::Error) -> ArmError {
        if let Some(h) = e.as_http_error() {
            return ArmError::Api {
                resource: resource.to_string(),
                status: u16::from(h.status()),
                code: h.error_code().unwrap_or("(no error code)").to_string(),
                message: h.error_message().unwrap_or("(no message)").to_string(),
            };
        }
        match e.kind() {
            azure_core::error::ErrorKind::Credential => ArmError::Credential { message: chain(&e) },
            azure_core::error::ErrorKind::HttpResponse { status, error_code } => ArmError::Api {
                resource: resource.to_string(),
                status: u16::from(*status),
                code: error_code
                    .clone()
                    .unwrap_or_else(|| "(no error code)".into()),
                message: "(no error body)".into(),
            },
            _ => ArmError::Transport {
                resource: resource.to_string(),
                endpoint: endpoint.to_string(),
                message: chain(&e),
            },
        }
    }
}

/// An error and its sources on one line ("request failed: connection refused").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        cur = s.source();
    }
    out
}

/// What to do about the ARM error codes a consortium deployment meets.
pub fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "QuotaExceeded" | "OperationNotAllowed" => {
            "the subscription's vCPU or public IP quota is too small: request a quota increase for this region, or pick a smaller vm_size / another location"
        }
        "SkuNotAvailable" => {
            "this VM size is not offered in this location for the subscription: pick another vm_size (or validator_vm_size / tx_vm_size) or location"
        }
        "InvalidResourceReference" | "ReferencedResourceNotProvisioned" => {
            "a resource this one refers to is missing or not provisioned: run `consort plan --refresh` to see drift, then apply again"
        }
        "AuthorizationFailed" | "LinkedAuthorizationFailed" => {
            "the identity lacks permission: consort creates resources and role assignments, so it needs Contributor plus User Access Administrator, or Owner, or Contributor plus Role Based Access Control Administrator, on the subscription or resource group (Contributor alone cannot write Microsoft.Authorization/roleAssignments)"
        }
        "InvalidAuthenticationToken" | "ExpiredAuthenticationToken" | "AuthenticationFailed" => {
            "the bearer token was rejected: log in again (`az login`) or refresh CONSORT_ARM_TOKEN"
        }
        "SubscriptionNotFound" | "InvalidSubscriptionId" => {
            "check subscription_id in the topology (or AZURE_SUBSCRIPTION_ID)"
        }
        "TooManyRequests" => "ARM kept throttling after several retries: wait a minute and run apply again (state is saved, it resumes)",
        "InUseSubnetCannotBeDeleted" | "NicInUse" | "PublicIPAddressInUse" | "InUseNetworkSecurityGroupCannotBeDeleted" => {
            "something still uses this resource: delete its users first (consort destroys in dependency order; a foreign resource may be attached)"
        }
        "AnotherOperationInProgress" => "another operation on this resource is still running: wait for it and apply again",
        _ => return None,
    })
}

fn hint_suffix(code: &str) -> String {
    hint(code).map(|h| format!(" ({h})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_names_resource_code_message_and_fix() {
        let e = ArmError::Api {
            resource: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a-vm".into(),
            status: 409,
            code: "SkuNotAvailable".into(),
            message: "The requested size Standard_X is not available".into(),
        };
        let s = e.to_string();
        assert!(s.starts_with("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a-vm: ARM returned 409 SkuNotAvailable: The requested size"), "{s}");
        assert!(s.contains("pick another vm_size"), "{s}");
        assert_eq!(e.code(), Some("SkuNotAvailable"));
        assert!(!e.is_not_found());
    }
}
