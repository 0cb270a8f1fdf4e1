//! Our own long-running-operation polling (see the module doc of `arm`).
//!
//! After a PUT or DELETE, in ARM's documented order:
//! 1. `Azure-AsyncOperation` header: GET it until `status` is Succeeded / Failed / Canceled
//!    (the operation's `error` explains a failure);
//! 2. else `Location` header: GET it until it stops answering 202 (an error status carries
//!    the failure);
//! 3. else, for a PUT, GET the resource until `properties.provisioningState` is terminal;
//!    for a DELETE answered 202, GET the resource until it is gone (404).
//!
//! Each wait honours `Retry-After` / `retry-after-ms` of the last answer (capped), else the
//! configured poll interval; the whole operation is bounded by `operation_timeout`.
//! Polling URLs must point at the configured endpoint: we will not send our bearer token to
//! another host.

use super::{Arm, ArmError};
use azure_core::headers::{self, HeaderName, Headers};
use azure_core::{Context, Method, Request, StatusCode, Url};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Put,
    Delete,
    /// A POST action (e.g. a VM's runCommand): its result is the final answer's body.
    Action,
}

impl Verb {
    fn operation(self) -> &'static str {
        match self {
            Verb::Put => "create/update",
            Verb::Delete => "delete",
            Verb::Action => "action",
        }
    }
}

fn terminal(status: &str) -> Option<Outcome> {
    match status.to_ascii_lowercase().as_str() {
        "succeeded" => Some(Outcome::Succeeded),
        "failed" => Some(Outcome::Failed),
        "canceled" | "cancelled" => Some(Outcome::Canceled),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Canceled,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
            Outcome::Canceled => "Canceled",
        }
    }
}

/// `properties.provisioningState` of a resource body (ARM's camelCase).
pub(crate) fn provisioning_state(body: &Value) -> Option<&str> {
    body.get("properties")?.get("provisioningState")?.as_str()
}

/// `(code, message)` of an `{"error": {...}}` object.
fn error_of(body: &Value) -> (String, String) {
    let e = body.get("error").unwrap_or(&Value::Null);
    let code = e
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("(no error code)")
        .to_string();
    let mut message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_string();
    // ARM often puts the useful part in details.
    if let Some(details) = e.get("details").and_then(Value::as_array) {
        for d in details {
            if let (Some(c), Some(m)) = (
                d.get("code").and_then(Value::as_str),
                d.get("message").and_then(Value::as_str),
            ) {
                message.push_str(&format!(" [{c}: {m}]"));
            }
        }
    }
    (code, message)
}

/// One answer to a polling GET.
pub(crate) struct Answer {
    status: StatusCode,
    headers: Headers,
    body: Value,
}

impl Arm {
    /// Follows the operation `initial` (the answer to a PUT, DELETE or POST action of
    /// `resource_id`) until it is terminal; returns the body of the last answer (for an
    /// action: its result — the operation status body or the Location answer).
    pub(crate) async fn follow(
        &self,
        resource_id: &str,
        api_version: &str,
        verb: Verb,
        initial: azure_core::Response,
    ) -> Result<Value, ArmError> {
        let started = Instant::now();
        let (status, headers, body) = initial.deconstruct();
        let bytes = body
            .collect()
            .await
            .map_err(|e| self.core_err(resource_id, e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let first_wait = self.wait_after(&headers);

        if let Some(url) = self.poll_url(resource_id, &headers, &headers::AZURE_ASYNCOPERATION)? {
            return self
                .poll_async_operation(resource_id, verb, url, first_wait, started)
                .await;
        }
        if let Some(url) = self.poll_url(resource_id, &headers, &headers::LOCATION)? {
            return self
                .poll_location(resource_id, verb, url, first_wait, started)
                .await;
        }
        match verb {
            Verb::Action => Ok(body),
            Verb::Put => match provisioning_state(&body).map(|s| (s, terminal(s))) {
                Some((_, Some(Outcome::Succeeded))) => Ok(body),
                Some((s, Some(outcome))) => {
                    Err(self.state_failed(resource_id, verb, outcome, s, &body))
                }
                Some((_, None)) => {
                    self.poll_resource(resource_id, api_version, verb, first_wait, started)
                        .await
                }
                // No state in the answer: a 201/202 means "still working", 200 means done.
                None if status == StatusCode::Created || status == StatusCode::Accepted => {
                    self.poll_resource(resource_id, api_version, verb, first_wait, started)
                        .await
                }
                None => Ok(body),
            },
            Verb::Delete if status == StatusCode::Accepted => {
                self.poll_resource(resource_id, api_version, verb, first_wait, started)
                    .await
            }
            Verb::Delete => Ok(body),
        }
    }

    fn state_failed(
        &self,
        resource_id: &str,
        verb: Verb,
        outcome: Outcome,
        state: &str,
        body: &Value,
    ) -> ArmError {
        let (code, message) = if body.get("error").is_some() {
            error_of(body)
        } else {
            (
                "ProvisioningFailed".to_string(),
                format!("provisioningState is {state}"),
            )
        };
        ArmError::OperationFailed {
            resource: resource_id.to_string(),
            operation: verb.operation().into(),
            status: outcome.name().into(),
            code,
            message,
        }
    }

    /// A polling URL from `header`, refused unless it is on our endpoint.
    fn poll_url(
        &self,
        resource_id: &str,
        headers: &Headers,
        header: &HeaderName,
    ) -> Result<Option<Url>, ArmError> {
        let Some(raw) = headers.get_optional_str(header) else {
            return Ok(None);
        };
        let url = Url::parse(raw)
            .or_else(|_| self.settings.endpoint.join(raw))
            .map_err(|e| ArmError::Protocol {
                resource: resource_id.to_string(),
                message: format!("{} header {raw:?} is not a URL ({e})", header.as_str()),
            })?;
        let ep = &self.settings.endpoint;
        if url.scheme() != ep.scheme()
            || url.host_str() != ep.host_str()
            || url.port_or_known_default() != ep.port_or_known_default()
        {
            return Err(ArmError::Protocol {
                resource: resource_id.to_string(),
                message: format!(
                    "{} points at {}://{} rather than the ARM endpoint {}; refusing to send credentials there",
                    header.as_str(),
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    ep
                ),
            });
        }
        Ok(Some(url))
    }

    /// How long to wait before the next poll: the answer's Retry-After (any of ARM's three
    /// spellings) if present, else the configured interval; capped.
    fn wait_after(&self, headers: &Headers) -> Duration {
        let given = [
            headers::RETRY_AFTER_MS,
            headers::X_MS_RETRY_AFTER_MS,
            headers::RETRY_AFTER,
        ]
        .iter()
        .any(|h| headers.get_optional_str(h).is_some());
        let d = if given {
            azure_core::lro::get_retry_after(headers)
        } else {
            self.settings.poll_interval
        };
        d.min(self.settings.max_poll_interval)
    }

    /// Sleeps `wait` unless that would pass the operation's deadline.
    async fn pause(
        &self,
        resource_id: &str,
        verb: Verb,
        wait: Duration,
        started: Instant,
        last_status: &str,
    ) -> Result<(), ArmError> {
        if started.elapsed() + wait > self.settings.operation_timeout {
            return Err(ArmError::Timeout {
                resource: resource_id.to_string(),
                operation: verb.operation().into(),
                last_status: last_status.to_string(),
                waited_secs: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// A GET through the pipeline (retries included) with our bearer token.
    async fn get_url(&self, resource_id: &str, url: Url) -> Result<Answer, ArmError> {
        let mut req = Request::new(url, Method::Get);
        req.insert_header(headers::AUTHORIZATION, self.bearer().await?);
        let rsp = self
            .pipeline
            .send(&Context::default(), &mut req)
            .await
            .map_err(|e| self.core_err(resource_id, e))?;
        let (status, headers, body) = rsp.deconstruct();
        let bytes = body
            .collect()
            .await
            .map_err(|e| self.core_err(resource_id, e))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ArmError::Protocol {
                resource: resource_id.to_string(),
                message: format!("polling answer is not JSON ({e})"),
            })?
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `properties.provisioningState` of any resource by ARM id (None: it does not exist).
    pub async fn provisioning_state_of(
        &self,
        resource_id: &str,
        api_version: &str,
    ) -> Result<Option<String>, ArmError> {
        match self
            .get_url(resource_id, self.resource_url(resource_id, api_version))
            .await
        {
            Ok(a) => Ok(Some(
                provisioning_state(&a.body).unwrap_or("(none)").to_string(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The resource's own URL with an api-version.
    pub(crate) fn resource_url(&self, resource_id: &str, api_version: &str) -> Url {
        let mut url = self.settings.endpoint.clone();
        url.set_path(resource_id);
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        url
    }

    async fn poll_async_operation(
        &self,
        resource_id: &str,
        verb: Verb,
        url: Url,
        mut wait: Duration,
        started: Instant,
    ) -> Result<Value, ArmError> {
        let mut last = "InProgress".to_string();
        loop {
            self.pause(resource_id, verb, wait, started, &last).await?;
            let a = self.get_url(resource_id, url.clone()).await?;
            let status = a
                .body
                .get("status")
                .and_then(Value::as_str)
                .ok_or_else(|| ArmError::Protocol {
                    resource: resource_id.to_string(),
                    message: format!(
                        "Azure-AsyncOperation answer ({}) has no \"status\"",
                        a.status
                    ),
                })?;
            match terminal(status) {
                Some(Outcome::Succeeded) => return Ok(a.body),
                Some(outcome) => {
                    let (code, message) = error_of(&a.body);
                    return Err(ArmError::OperationFailed {
                        resource: resource_id.to_string(),
                        operation: verb.operation().into(),
                        status: outcome.name().into(),
                        code,
                        message,
                    });
                }
                None => {
                    last = status.to_string();
                    wait = self.wait_after(&a.headers);
                }
            }
        }
    }

    async fn poll_location(
        &self,
        resource_id: &str,
        verb: Verb,
        url: Url,
        mut wait: Duration,
        started: Instant,
    ) -> Result<Value, ArmError> {
        loop {
            self.pause(resource_id, verb, wait, started, "Accepted (202)")
                .await?;
            // Error statuses come back as ArmError::Api with ARM's code and message.
            let a = self.get_url(resource_id, url.clone()).await?;
            if a.status != StatusCode::Accepted {
                return Ok(a.body);
            }
            wait = self.wait_after(&a.headers);
        }
    }

    async fn poll_resource(
        &self,
        resource_id: &str,
        api_version: &str,
        verb: Verb,
        mut wait: Duration,
        started: Instant,
    ) -> Result<Value, ArmError> {
        let url = self.resource_url(resource_id, api_version);
        let mut last = "(unknown)".to_string();
        loop {
            self.pause(resource_id, verb, wait, started, &last).await?;
            let a = match self.get_url(resource_id, url.clone()).await {
                Ok(a) => a,
                Err(e) if e.is_not_found() && verb == Verb::Delete => return Ok(Value::Null),
                Err(e) => return Err(e),
            };
            let state = provisioning_state(&a.body).unwrap_or("(none)").to_string();
            match (verb, terminal(&state)) {
                (Verb::Put | Verb::Action, Some(Outcome::Succeeded)) => return Ok(a.body),
                (Verb::Put | Verb::Action, Some(outcome))
                | (Verb::Delete, Some(outcome @ (Outcome::Failed | Outcome::Canceled))) => {
                    return Err(self.state_failed(resource_id, verb, outcome, &state, &a.body))
                }
                _ => {
                    last = format!("provisioningState {state}");
                    wait = self.wait_after(&a.headers);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_details_are_kept() {
        let (c, m) = error_of(
            &json!({"status":"Failed","error":{"code":"DeploymentFailed","message":"At least one failed.","details":[{"code":"QuotaExceeded","message":"Need 2 more cores"}]}}),
        );
        assert_eq!(c, "DeploymentFailed");
        assert_eq!(m, "At least one failed. [QuotaExceeded: Need 2 more cores]");
    }

    #[test]
    fn terminal_states_are_case_insensitive() {
        assert_eq!(terminal("Succeeded"), Some(Outcome::Succeeded));
        assert_eq!(terminal("succeeded"), Some(Outcome::Succeeded));
        assert_eq!(terminal("Cancelled"), Some(Outcome::Canceled));
        assert_eq!(terminal("Creating"), None);
        assert_eq!(terminal("InProgress"), None);
    }
}
