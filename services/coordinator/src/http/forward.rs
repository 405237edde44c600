//! Any node serves any request: a follower passes writes (and reads that
//! must be linearizable) to the leader and returns the leader's answer.

use std::time::Duration;

use bytes::Bytes;
use skyclaw_api::routes::{FORWARDED_HEADER, IDEMPOTENCY_HEADER, MEMBERSHIP_TIMEOUT, TOKEN_HEADER};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::error::ApiError;
use super::filters::Node;
use super::handlers::Outcome;
use crate::node::{WriteError, WRITE_TIMEOUT};

/// Headers a forwarded request keeps. The token is the cluster's own: this
/// node already checked the caller's.
const KEPT: [&str; 2] = [IDEMPOTENCY_HEADER, "content-type"];

/// Passes one request to the current leader. A request that was already
/// forwarded once is not passed on again (leadership moved meanwhile).
pub async fn to_leader(
    node: &Node,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Outcome {
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(ApiError::unavailable(
            "leadership moved while the request was forwarded; retry",
        ));
    }
    let Some(leader) = node.leader().filter(|leader| leader.name != node.me.name) else {
        return Err(WriteError::NotLeader { leader: None }.into());
    };
    let url = format!("{}{path_and_query}", leader.url.trim_end_matches('/'));
    let mut request = node
        .peers
        .request(method, &url)
        .header(FORWARDED_HEADER, node.me.name.as_str())
        .timeout(forward_timeout(node, path_and_query))
        .body(body);
    if let Some(token) = &node.config.token {
        request = request.header(TOKEN_HEADER, token);
    }
    for name in KEPT {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let response = request.send().await.map_err(|e| {
        ApiError::unavailable(format!("the leader {} did not answer: {e}", leader.name))
    })?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut kept = HeaderMap::new();
    for name in ["content-type", "retry-after"] {
        if let Some(value) = response.headers().get(name) {
            if let Ok(value) = warp::http::HeaderValue::from_bytes(value.as_bytes()) {
                kept.insert(name, value);
            }
        }
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable(format!("reading the leader's answer: {e}")))?;
    let mut reply = Response::new(body.into());
    *reply.status_mut() = status;
    *reply.headers_mut() = kept;
    Ok(reply)
}

/// How long the leader may take to answer what it was passed: a claim may
/// wait for work, a membership change waits for the new member to catch up,
/// anything else is one write (or a linearizable read) with its own bound.
fn forward_timeout(node: &Node, path_and_query: &str) -> Duration {
    const MARGIN: Duration = Duration::from_secs(5);
    let path = path_and_query.split('?').next().unwrap_or_default();
    if path.starts_with("/v1/cluster/") {
        MEMBERSHIP_TIMEOUT + MARGIN
    } else if path.ends_with("/claim") {
        Duration::from_millis(node.config.max_claim_wait_ms) + WRITE_TIMEOUT + MARGIN
    } else {
        WRITE_TIMEOUT + MARGIN
    }
}
