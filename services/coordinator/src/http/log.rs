//! The routes that read the record: the node's status, the log's head, its
//! records (a segment, or JSON for people), the state's digest, and the
//! MVP's whole-state view.

use std::sync::Arc;

use serde::Deserialize;
use skyclaw_api::limits::MAX_EVENTS_PAGE;
use skyclaw_api::{self as api, routes};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::filters::{self, at, caller_at, Caller};
use super::forward;
use super::jobs::ReadQuery;
use super::json::{reply, Handled};
use super::{convert, finish};
use crate::coordinator::Coordinator;

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let status = at(coordinator, routes::STATUS)
        .and(with.clone())
        .then(status);
    let head = at(coordinator, routes::LOG_HEAD)
        .and(with.clone())
        .then(head);
    let digest = at(coordinator, routes::STATE_DIGEST)
        .and(with.clone())
        .then(digest);
    let events = at(coordinator, routes::EVENTS)
        .and(with.clone())
        .and(filters::query::<EventsQuery>())
        .then(events);
    let state = caller_at(coordinator, routes::STATE)
        .and(with)
        .and(filters::query::<ReadQuery>())
        .then(state);
    status
        .or(head)
        .unify()
        .or(digest)
        .unify()
        .or(events)
        .unify()
        .or(state)
        .unify()
        .map(finish)
        .boxed()
}

async fn status(coordinator: Arc<Coordinator>) -> Handled {
    reply(&coordinator.status())
}

async fn head(coordinator: Arc<Coordinator>) -> Handled {
    reply(&coordinator.head())
}

async fn digest(coordinator: Arc<Coordinator>) -> Handled {
    reply(&coordinator.digest())
}

/// Every host and job, linearizable unless `?stale=true`.
async fn state(caller: Caller, coordinator: Arc<Coordinator>, query: ReadQuery) -> Handled {
    if !query.stale {
        if let Some(answer) = forward::linearize(&coordinator, routes::STATE.path, &caller).await? {
            return Ok(answer);
        }
    }
    let hosts = coordinator.hosts();
    let jobs = coordinator.all_jobs().await;
    reply(&api::StateResponse {
        node_id: coordinator.me.name.clone(),
        hosts: convert::hosts(&coordinator, hosts),
        jobs: convert::jobs(jobs),
    })
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from: Option<u64>,
    limit: Option<u64>,
    format: Option<String>,
}

/// A run of records from this node's own event log: a segment, or JSON
/// for people.
async fn events(coordinator: Arc<Coordinator>, query: EventsQuery) -> Handled {
    let from = query.from.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(1_000);
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_EVENTS_PAGE}"
        )));
    }
    let as_json = match query.format.as_deref() {
        None | Some("segment") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be segment or json; got {other:?}"
            )))
        }
    };
    let run = coordinator.records(from, limit).await?;
    if as_json {
        return reply(&api::EventRecords {
            records: run.records.into_iter().map(convert::record).collect(),
        });
    }
    let bytes = skyclaw_log_format::segment::write_segment(
        &run.cluster_id,
        run.first_seq,
        run.prev_hash,
        &run.records,
    )
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = Response::new(bytes.into());
    response.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static(routes::SEGMENT_CONTENT_TYPE),
    );
    Ok(response)
}
