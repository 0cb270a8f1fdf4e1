//! Requests with plain JSON bodies, for what the generated clients we depend on do not
//! cover (Key Vault, role assignments, NAT gateways, Run Command) or cover badly (a VM PUT
//! whose generated model sends read-only fields as `null`). Same pipeline, retries,
//! credentials and long-running-operation polling as the typed operations.

use super::lro::Verb;
use super::{Arm, ArmError};
use azure_core::headers::{self, Headers};
use azure_core::{Context, Method, Request, StatusCode, Url};
use serde_json::Value;
use std::collections::BTreeMap;

/// Drops `null` members (recursively): ARM rejects or mis-reads read-only properties sent
/// as null (the generated VM model sends `timeCreated: null`).
pub fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(prune_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

impl Arm {
    /// The ARM URL of `path` (an id, or an id + `/action`) with an api-version.
    pub(crate) fn arm_url(&self, path: &str, api_version: &str) -> Url {
        self.resource_url(path, api_version)
    }

    /// One request with our bearer token (for `scope`: ARM's, or e.g. Key Vault's);
    /// an error status is an [`ArmError::Api`] naming `resource`.
    pub(crate) async fn send_json(
        &self,
        resource: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        scope: Option<&str>,
    ) -> Result<azure_core::Response, ArmError> {
        let mut req = Request::new(url, method);
        let token = match scope {
            Some(s) => self.bearer_for(s).await?,
            None => self.bearer().await?,
        };
        req.insert_header(headers::AUTHORIZATION, token);
        if let Some(b) = body {
            req.insert_header(headers::CONTENT_TYPE, "application/json");
            req.set_body(serde_json::to_vec(b).expect("JSON body serialises"));
        }
        self.pipeline
            .send(&Context::default(), &mut req)
            .await
            .map_err(|e| self.core_err(resource, e))
    }

    /// `send`, again with capped backoff while ARM answers "another operation is in
    /// progress" (throttling is retried by the pipeline already).
    pub(crate) async fn retrying<F, Fut, R>(&self, mut send: F) -> Result<R, ArmError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R, ArmError>>,
    {
        let mut attempt = 0u32;
        loop {
            match send().await {
                Err(e)
                    if e.code()
                        .is_some_and(|c| super::ops::RETRYABLE_CODES.contains(&c))
                        && attempt < self.settings.max_retries =>
                {
                    attempt += 1;
                    let backoff = self
                        .settings
                        .retry_initial_delay
                        .saturating_mul(1 << attempt.min(16))
                        .min(self.settings.retry_max_delay);
                    tokio::time::sleep(backoff.max(std::time::Duration::from_millis(1))).await;
                }
                r => return r,
            }
        }
    }

    /// `send_json` of `method` to `path` (an id, or an id + `/action`) about resource
    /// `id`, through [`Self::retrying`].
    async fn send_retried(
        &self,
        id: &str,
        path: &str,
        api_version: &str,
        method: Method,
        body: Option<&Value>,
    ) -> Result<azure_core::Response, ArmError> {
        let url = self.arm_url(path, api_version);
        self.retrying(|| self.send_json(id, method, url.clone(), body, None))
            .await
    }

    /// Reads an answer's body as JSON (an empty body is `null`).
    pub(crate) async fn body_json(
        &self,
        resource: &str,
        rsp: azure_core::Response,
    ) -> Result<(StatusCode, Headers, Value), ArmError> {
        let (status, headers, body) = rsp.deconstruct();
        let bytes = body
            .collect()
            .await
            .map_err(|e| self.core_err(resource, e))?;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ArmError::Protocol {
                resource: resource.to_string(),
                message: format!("answer is not JSON ({e})"),
            })?
        };
        Ok((status, headers, v))
    }

    /// PUT of a JSON body to an ARM resource, followed to the end; returns the resource as
    /// a GET then shows it.
    pub(crate) async fn put_json(
        &self,
        id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        let rsp = self
            .send_retried(id, id, api_version, Method::Put, Some(body))
            .await?;
        self.follow(id, api_version, Verb::Put, rsp).await?;
        self.get_json(id, api_version)
            .await?
            .ok_or_else(|| super::ops::vanished(id))
    }

    /// PUT of a JSON body to a resource ARM writes synchronously (role assignments answer
    /// 200/201 with the resource and no operation to follow); returns the answer's body.
    pub(crate) async fn put_json_sync(
        &self,
        id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        let rsp = self
            .send_retried(id, id, api_version, Method::Put, Some(body))
            .await?;
        Ok(self.body_json(id, rsp).await?.2)
    }

    /// GET of an ARM resource; `None` for 404.
    pub(crate) async fn get_json(
        &self,
        id: &str,
        api_version: &str,
    ) -> Result<Option<Value>, ArmError> {
        let url = self.arm_url(id, api_version);
        match self.send_json(id, Method::Get, url, None, None).await {
            Ok(rsp) => Ok(Some(self.body_json(id, rsp).await?.2)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DELETE of an ARM resource, followed to the end; 404 means already gone.
    pub(crate) async fn delete_json(&self, id: &str, api_version: &str) -> Result<(), ArmError> {
        match self
            .send_retried(id, id, api_version, Method::Delete, None)
            .await
        {
            Ok(rsp) => self
                .follow(id, api_version, Verb::Delete, rsp)
                .await
                .map(drop),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Any ARM resource's tags (None: it does not exist).
    pub async fn tags_of(
        &self,
        id: &str,
        api_version: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ArmError> {
        Ok(self.get_json(id, api_version).await?.map(|v| {
            v.get("tags")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default()
        }))
    }

    /// POST of an action (`{id}/{action}`), followed to the end; returns its result.
    pub(crate) async fn post_action(
        &self,
        id: &str,
        action: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        let path = format!("{id}/{action}");
        let rsp = self
            .send_retried(id, &path, api_version, Method::Post, Some(body))
            .await?;
        self.follow(id, api_version, Verb::Action, rsp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_are_pruned_everywhere() {
        let mut v = json!({"a": null, "b": {"timeCreated": null, "x": 1}, "c": [{"d": null}]});
        prune_nulls(&mut v);
        assert_eq!(v, json!({"b": {"x": 1}, "c": [{}]}));
    }
}
