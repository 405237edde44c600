//! The routes that prove what ran where: a job's receipt, the members' log
//! keys, the latest signed checkpoint, inclusion and consistency proofs,
//! and the leader's request to cosign a checkpoint. Each is answered from
//! this node's own log; a checker needs no more trust in it than in any
//! other member, since everything it answers is checked against a
//! checkpoint a majority of the voters signed.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use skyclaw_api::{self as api, routes};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::filters::{self, at, caller_at_id, Caller, PathId};
use super::finish;
use super::json::{parse, reply, Handled};
use crate::access::Principal;
use crate::coordinator::Coordinator;

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let receipt = caller_at_id(coordinator, routes::RECEIPT)
        .and(with.clone())
        .then(receipt);
    let keys = at(coordinator, routes::LOG_KEYS)
        .and(with.clone())
        .then(log_keys);
    let checkpoint = at(coordinator, routes::CHECKPOINT)
        .and(with.clone())
        .then(checkpoint);
    let inclusion = at(coordinator, routes::INCLUSION)
        .and(with.clone())
        .and(filters::query::<InclusionQuery>())
        .then(inclusion);
    let consistency = at(coordinator, routes::CONSISTENCY)
        .and(with.clone())
        .and(filters::query::<ConsistencyQuery>())
        .then(consistency);
    let tile = filters::at_rest(coordinator, routes::TILE)
        .and(with.clone())
        .then(tile);
    let cosign = at(coordinator, routes::COSIGN)
        .and(with)
        .and(filters::body(coordinator.config.max_body_bytes))
        .then(cosign);
    receipt
        .or(keys)
        .unify()
        .or(checkpoint)
        .unify()
        .or(inclusion)
        .unify()
        .or(consistency)
        .unify()
        .or(tile)
        .unify()
        .or(cosign)
        .unify()
        .map(finish)
        .boxed()
}

/// The receipt of a job the caller may read: its enqueuer's, or the host
/// that ran it.
async fn receipt(job: PathId, caller: Caller, coordinator: Arc<Coordinator>) -> Handled {
    let found = coordinator.job_view(&job.0)?;
    let ran_it = matches!(&caller.principal, Principal::Host(id)
        if found.assigned_host_id.as_deref() == Some(id.as_str()));
    if !caller.principal.may_see(&found) && !ran_it {
        // As for the job itself: another account's job is not there; a
        // host is told it has no right to it.
        return Err(match caller.principal {
            Principal::Host(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this host neither holds nor ran job {}", job.0),
            ),
            _ => ApiError::not_found(format!("job {} not found", job.0)),
        });
    }
    reply(&coordinator.receipt(&job.0).await?)
}

async fn log_keys(coordinator: Arc<Coordinator>) -> Handled {
    reply(&coordinator.log_keys()?)
}

async fn checkpoint(coordinator: Arc<Coordinator>) -> Handled {
    let mut response = Response::new(coordinator.checkpoint_note()?.into());
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct InclusionQuery {
    seq: Option<u64>,
    size: Option<u64>,
}

async fn inclusion(coordinator: Arc<Coordinator>, query: InclusionQuery) -> Handled {
    let (Some(seq), Some(size)) = (query.seq, query.size) else {
        return Err(ApiError::bad_request("seq and size are both required"));
    };
    reply(&coordinator.inclusion(seq, size).await?)
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    from: Option<u64>,
    to: Option<u64>,
}

async fn consistency(coordinator: Arc<Coordinator>, query: ConsistencyQuery) -> Handled {
    let (Some(from), Some(to)) = (query.from, query.to) else {
        return Err(ApiError::bad_request("from and to are both required"));
    };
    reply(&coordinator.consistency(from, to).await?)
}

async fn tile(path: String, coordinator: Arc<Coordinator>) -> Handled {
    let mut response = Response::new(coordinator.tile(&path).await?.into());
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

async fn cosign(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::CosignRequest = parse(&body)?;
    if request.size == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "size must be at least 1",
        ));
    }
    reply(&coordinator.cosign(request).await?)
}
