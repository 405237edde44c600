//! Any node serves any request: a follower passes writes (and reads that
//! must be linearizable) to the leader and returns the leader's answer.
//! Each route that may be passed on declares how long the leader may take.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skyclaw_api::routes::{
    Route, FORWARDED_HEADER, IDEMPOTENCY_HEADER, MEMBERSHIP_TIMEOUT, PEER_HEADER,
    REQUEST_ID_HEADER, TOKEN_HEADER,
};
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::filters::{self, Caller};
use super::json::Handled;
use crate::coordinator::Coordinator;
use crate::failure::Failure;
use crate::log::READ_TIMEOUT;
use crate::proposer::{WriteError, WRITE_TIMEOUT};

/// Headers a forwarded request keeps: the caller's own credential among
/// them, so the leader judges the caller as this node did, and no request
/// gets more rights by taking the longer way.
const KEPT: [&str; 6] = [
    IDEMPOTENCY_HEADER,
    "content-type",
    REQUEST_ID_HEADER,
    TOKEN_HEADER,
    "authorization",
    PEER_HEADER,
];
/// Time on top of the leader's own bound for the round trip.
const MARGIN: Duration = Duration::from_secs(5);

/// How long the leader may take to answer what it was passed.
#[derive(Clone, Copy, Debug)]
pub enum Deadline {
    /// One write, or a linearizable read: each has its own bound.
    Write,
    /// A claim may first wait for work.
    Claim,
    /// A membership change waits for the new member to catch up.
    Membership,
}

impl Deadline {
    fn of(self, coordinator: &Coordinator) -> Duration {
        match self {
            Deadline::Write => WRITE_TIMEOUT + MARGIN,
            Deadline::Claim => {
                Duration::from_millis(coordinator.config.max_claim_wait_ms) + WRITE_TIMEOUT + MARGIN
            }
            Deadline::Membership => MEMBERSHIP_TIMEOUT + MARGIN,
        }
    }
}

/// On a follower, passes a request for `route` to the leader as it came;
/// on the leader, declines, so the route's own handler runs. Leadership is
/// checked before the body is read, so the handler still finds it.
pub fn unless_leading(
    coordinator: &Arc<Coordinator>,
    route: Route,
    deadline: Deadline,
) -> BoxedFilter<(Response,)> {
    let leading = coordinator.clone();
    // Leadership first: on the leader this declines without judging the
    // caller, which the route's own filter does next.
    filters::matching(route)
        .and_then(move || {
            let leading = leading.is_leader();
            async move {
                if leading {
                    Err(warp::reject::not_found())
                } else {
                    Ok(())
                }
            }
        })
        .untuple_one()
        .and(
            filters::authorized(coordinator, route.access)
                .map(drop)
                .untuple_one(),
        )
        .and(filters::with(coordinator.clone()))
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(filters::body(coordinator.config.max_body_bytes))
        .then(
            move |coordinator: Arc<Coordinator>,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: Bytes| async move {
                let target = if query.is_empty() {
                    path.as_str().to_string()
                } else {
                    format!("{}?{query}", path.as_str())
                };
                to_leader(
                    &coordinator,
                    Method::POST,
                    &target,
                    &headers,
                    body,
                    deadline,
                )
                .await
            },
        )
        .map(super::finish)
        .boxed()
}

/// Makes a read linearizable: on the leader, confirms leadership with a
/// quorum and waits until everything committed is applied (`None`: read
/// here); on a follower, passes the read to the leader (`Some`: its answer).
pub async fn linearize(
    coordinator: &Coordinator,
    path: &str,
    caller: &Caller,
) -> Result<Option<Response>, ApiError> {
    match coordinator.confirm_leadership().await {
        Ok(()) => Ok(None),
        Err(Failure::Write(WriteError::NotLeader { .. })) => {
            let mut headers = HeaderMap::new();
            if let Some(credential) = &caller.credential {
                headers.insert(TOKEN_HEADER, credential.clone());
            }
            let forwarded = to_leader(
                coordinator,
                Method::GET,
                path,
                &headers,
                Bytes::new(),
                Deadline::Write,
            );
            match tokio::time::timeout(READ_TIMEOUT, forwarded).await {
                Ok(answer) => Ok(Some(answer?)),
                Err(_) => Err(ApiError::unavailable(
                    "timed out waiting for the leader's answer to a linearizable read; retry, \
                     or read with ?stale=true",
                )),
            }
        }
        Err(failure) => Err(failure.into()),
    }
}

/// Passes one request to the current leader. A request that was already
/// forwarded once is not passed on again (leadership moved meanwhile).
async fn to_leader(
    coordinator: &Coordinator,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
    deadline: Deadline,
) -> Handled {
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(ApiError::unavailable(
            "leadership moved while the request was forwarded; retry",
        ));
    }
    let Some(leader) = coordinator
        .leader()
        .filter(|leader| leader.name != coordinator.me.name)
    else {
        return Err(WriteError::NotLeader { leader: None }.into());
    };
    let url = format!("{}{path_and_query}", leader.url.trim_end_matches('/'));
    let mut request = coordinator
        .peers
        .request(method, &url)
        .header(FORWARDED_HEADER, coordinator.me.name.as_str())
        .timeout(deadline.of(coordinator))
        .body(body);
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
