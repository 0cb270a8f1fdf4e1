//! The dashboard's HTTP surface: the page, its snapshot, and `POST /api/rpc`, which sends
//! one of [`READ_METHODS`] to a running node over IPC and refuses every other method. The
//! server never forwards arbitrary RPC: no admin, miner, personal, debug, no
//! `eth_sendRawTransaction`, nothing that signs or changes a node. Requests must name
//! the loopback address they were sent to (`Host`), so a web page elsewhere cannot reach
//! the dashboard through DNS rebinding; a request carrying another page's `Origin` is
//! refused (403), and a POST must be `application/json` (415), which a cross-site form
//! cannot send without a CORS preflight the server never grants.

use super::{assets, Shared};
use crate::rpc::RpcClient;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Everything the page may ask a node: reads of blocks, transactions, receipts,
/// balances, nonces, code, Clique signers and the txpool's size.
pub const READ_METHODS: &[&str] = &[
    "eth_blockNumber",
    "eth_chainId",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "clique_getSigner",
    "clique_getSigners",
    "net_peerCount",
    "txpool_status",
];

/// Parameters a read method takes at most.
const MAX_PARAMS: usize = 3;
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(assets::INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(assets::APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(assets::STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { page(assets::FAVICON_SVG, "image/svg+xml") }),
        )
        .route("/api/snapshot", get(snapshot))
        .route("/api/graph.svg", get(graph_svg))
        .route("/api/methods", get(|| async { Json(json!(READ_METHODS)) }))
        .route("/api/rpc", post(rpc))
        .route("/api/failure/{hash}", get(failure))
        .layer(middleware::from_fn(guard))
        .with_state(shared)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
                ),
            ),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Refuses requests whose `Host` is not a loopback name (DNS rebinding), whose `Origin`
/// is not the dashboard's own, and POSTs that are not JSON.
async fn guard(req: Request, next: Next) -> Response {
    if let Err((status, message)) = check_request(&req) {
        return error(status, message);
    }
    next.run(req).await
}

/// The refusal (status and message) of a request [`guard`] turns away.
fn check_request(req: &Request) -> Result<(), (StatusCode, String)> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return Err((
            StatusCode::FORBIDDEN,
            format!("the dashboard answers on 127.0.0.1 only, not for host {host:?}"),
        ));
    }
    // Browsers send `Origin` on every cross-origin request and on same-origin POSTs; the
    // dashboard's own page is `http://<Host>`.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("http://{host}");
        if origin.to_str().ok() != Some(own.as_str()) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "refused a request from origin {origin:?}: the dashboard answers its own page ({own}) only"
                ),
            ));
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the request as Content-Type: application/json".into(),
            ));
        }
    }
    Ok(())
}

async fn snapshot(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot.read().unwrap().clone();
    match snap {
        Some(s) => Json(s.as_ref().clone()).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the first sample is being taken",
        ),
    }
}

async fn graph_svg(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot.read().unwrap().clone();
    match snap.as_ref().and_then(|s| s["graph_svg"].as_str()) {
        Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg.to_string()).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet"),
    }
}

#[derive(serde::Deserialize)]
struct RpcRequest {
    method: String,
    #[serde(default)]
    params: Value,
}

/// Whether the dashboard may send `method` to a node.
pub fn allowed(method: &str) -> bool {
    READ_METHODS.contains(&method)
}

async fn rpc(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<RpcRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON object {\"method\": …, \"params\": […]}",
        );
    };
    if !allowed(&req.method) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "method {:?} is not one of the dashboard's read methods ({}); the dashboard is read-only",
                req.method,
                READ_METHODS.join(", ")
            ),
        );
    }
    let params = match req.params {
        Value::Null => json!([]),
        Value::Array(a) if a.len() <= MAX_PARAMS => Value::Array(a),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("params must be a list of at most {MAX_PARAMS} values"),
            )
        }
    };
    let endpoints = shared.endpoints.read().unwrap().clone();
    if endpoints.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no node is running");
    }
    let method = req.method;
    let answer = tokio::task::spawn_blocking(move || {
        let mut last = String::new();
        for ep in endpoints {
            match RpcClient::ipc(&ep)
                .with_timeout(RPC_TIMEOUT)
                .call_raw(&method, params.clone())
            {
                Ok(v) => return Ok(v),
                // That node went away: the next one.
                Err(e) if e.is_unreachable() => last = e.to_string(),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(last)
    })
    .await;
    match answer {
        Ok(Ok(v)) => Json(json!({ "result": v })).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Why a mined transaction failed: it is replayed (`eth_call`) on the state before its
/// block, and geth's revert reason returned. Only a transaction whose receipt says failed
/// is replayed, with its own fields: the page cannot make the node run any other call.
async fn failure(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> Response {
    let is_hash = hash.len() == 66
        && hash.starts_with("0x")
        && hash[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hash {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a transaction hash (0x + 64 hex digits)",
        );
    }
    let endpoints = shared.endpoints.read().unwrap().clone();
    let Some(ep) = endpoints.first().cloned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no node is running");
    };
    let answer = tokio::task::spawn_blocking(move || -> Result<Value, String> {
        let node = RpcClient::ipc(&ep).with_timeout(RPC_TIMEOUT);
        let call = |m: &str, p: Value| node.call_raw(m, p).map_err(|e| e.to_string());
        let receipt = call("eth_getTransactionReceipt", json!([hash]))?;
        if receipt.is_null() || receipt["status"] != "0x0" {
            return Err(format!("{hash} is not a failed transaction in a block"));
        }
        let tx = call("eth_getTransactionByHash", json!([hash]))?;
        let number = u64::from_str_radix(
            tx["blockNumber"]
                .as_str()
                .unwrap_or("0x0")
                .trim_start_matches("0x"),
            16,
        )
        .unwrap_or(0);
        let mut msg = json!({
            "from": tx["from"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"],
        });
        if !tx["to"].is_null() {
            msg["to"] = tx["to"].clone();
        }
        let before = format!("{:#x}", number.saturating_sub(1));
        let reason = match node.call_raw("eth_call", json!([msg, before])) {
            Ok(_) if receipt["gasUsed"] == tx["gas"] => {
                "out of gas (it used all the gas it was given)".to_string()
            }
            Ok(_) => "reverted (geth gives no reason when it is replayed)".to_string(),
            Err(e) => {
                let e = e.to_string();
                match e.find("execution reverted") {
                    Some(i) => e[i..].to_string(),
                    None => e,
                }
            }
        };
        Ok(json!({ "reason": reason }))
    })
    .await;
    match answer {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_allowed() {
        for m in READ_METHODS {
            assert!(
                !["admin_", "miner_", "personal_", "debug_"]
                    .iter()
                    .any(|p| m.starts_with(p)),
                "{m}"
            );
            assert!(
                !m.contains("send") && !m.contains("sign") && !m.contains("propose"),
                "{m}"
            );
        }
        assert!(!allowed("eth_sendRawTransaction"));
        assert!(!allowed("admin_addPeer"));
        assert!(!allowed("clique_propose"));
        assert!(allowed("eth_getBlockByNumber"));
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri("/api/rpc");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    fn status(r: Result<(), (StatusCode, String)>) -> u16 {
        r.map_or_else(|(s, _)| s.as_u16(), |()| 200)
    }

    #[test]
    fn foreign_origins_and_non_json_posts_are_refused() {
        let host = ("host", "127.0.0.1:8600");
        let json = ("content-type", "application/json");
        let ok = |h: &[(&str, &str)]| status(check_request(&request("POST", h)));
        assert_eq!(ok(&[host, json]), 200);
        assert_eq!(ok(&[host, json, ("origin", "http://127.0.0.1:8600")]), 200);
        assert_eq!(
            ok(&[host, ("content-type", "application/json; charset=utf-8")]),
            200
        );
        assert_eq!(ok(&[host, json, ("origin", "http://evil.example")]), 403);
        assert_eq!(ok(&[host, json, ("origin", "null")]), 403);
        assert_eq!(ok(&[host, json, ("origin", "http://127.0.0.1:8601")]), 403);
        assert_eq!(ok(&[host, ("content-type", "text/plain")]), 415);
        assert_eq!(ok(&[host]), 415);
        assert_eq!(ok(&[("host", "evil.example"), json]), 403);
        let get = status(check_request(&request("GET", &[host])));
        assert_eq!(get, 200);
        let get = status(check_request(&request(
            "GET",
            &[host, ("origin", "http://evil.example")],
        )));
        assert_eq!(get, 403);
    }
}
