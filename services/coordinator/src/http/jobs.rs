//! The job routes: enqueue (one or a batch), read, list and sum up,
//! cancel, and a host's claim and completion. Each handler parses, calls the
//! coordinator, and converts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use skyclaw_api::routes::{self, IDEMPOTENCY_HEADER};
use skyclaw_api::{self as api, limits};
use skyclaw_state::JobStatus;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::filters::{self, at, at_id, PathId};
use super::forward::{self, unless_leading, Deadline};
use super::json::{parse, parse_or_default, reply, Handled};
use super::{convert, finish};
use crate::coordinator::Coordinator;
use crate::jobs::{JobFilter, Order};

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let body = filters::body(coordinator.config.max_body_bytes);
    let key = warp::header::optional::<String>(IDEMPOTENCY_HEADER);
    let write = |route, deadline| unless_leading(coordinator, route, deadline);

    let enqueue = at(routes::ENQUEUE)
        .and(with.clone())
        .and(key)
        .and(body.clone())
        .then(enqueue);
    let batch = at(routes::ENQUEUE_BATCH)
        .and(with.clone())
        .and(key)
        .and(body.clone())
        .then(enqueue_batch);
    let claim = at_id(routes::CLAIM)
        .and(with.clone())
        .and(key)
        .and(body.clone())
        .then(claim);
    let complete = at_id(routes::COMPLETE)
        .and(with.clone())
        .and(body.clone())
        .then(complete);
    let cancel = at_id(routes::CANCEL).and(with.clone()).then(cancel);
    let job = at_id(routes::JOB)
        .and(with.clone())
        .and(filters::query::<ReadQuery>())
        .then(job);
    let list = at(routes::JOBS)
        .and(with.clone())
        .and(filters::query::<ListQuery>())
        .then(list);
    let summary = at(routes::SUMMARY).and(with).then(summary);

    write(routes::ENQUEUE, Deadline::Write)
        .or(enqueue.map(finish))
        .unify()
        .or(write(routes::ENQUEUE_BATCH, Deadline::Write))
        .unify()
        .or(batch.map(finish))
        .unify()
        .or(write(routes::CLAIM, Deadline::Claim))
        .unify()
        .or(claim.map(finish))
        .unify()
        .or(write(routes::COMPLETE, Deadline::Write))
        .unify()
        .or(complete.map(finish))
        .unify()
        .or(write(routes::CANCEL, Deadline::Write))
        .unify()
        .or(cancel.map(finish))
        .unify()
        .or(job.map(finish))
        .unify()
        .or(list.map(finish))
        .unify()
        .or(summary.map(finish))
        .unify()
        .boxed()
}

async fn enqueue(
    coordinator: Arc<Coordinator>,
    idempotency_key: Option<String>,
    body: Bytes,
) -> Handled {
    limits::idempotency_key(idempotency_key.as_deref())?;
    let request: api::EnqueueRequest = parse(&body)?;
    request.check()?;
    let job = coordinator.enqueue(request, idempotency_key).await?;
    reply(&api::JobResponse {
        job: convert::job(job),
    })
}

async fn enqueue_batch(
    coordinator: Arc<Coordinator>,
    idempotency_key: Option<String>,
    body: Bytes,
) -> Handled {
    limits::idempotency_key(idempotency_key.as_deref())?;
    let request: api::BatchEnqueueRequest = parse(&body)?;
    request.check()?;
    let jobs = coordinator
        .enqueue_batch(request.jobs, idempotency_key)
        .await?;
    reply(&api::JobsResponse {
        jobs: convert::jobs(jobs),
    })
}

/// Without `maxJobs` the answer has the MVP's shape: one job or null.
async fn claim(
    host: PathId,
    coordinator: Arc<Coordinator>,
    claim_key: Option<String>,
    body: Bytes,
) -> Handled {
    limits::idempotency_key(claim_key.as_deref())?;
    let request: api::ClaimRequest = parse_or_default(&body)?;
    request.check()?;
    let wait = Duration::from_millis(request.wait_ms.unwrap_or(0));
    let max_jobs = request.max_jobs.unwrap_or(1);
    let jobs = coordinator
        .claim(&host.0, max_jobs, wait, claim_key)
        .await?;
    let jobs = convert::jobs(jobs);
    if request.max_jobs.is_some() {
        reply(&api::JobsResponse { jobs })
    } else {
        reply(&api::ClaimResponse {
            job: jobs.into_iter().next(),
        })
    }
}

async fn complete(job: PathId, coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::CompleteRequest = parse(&body)?;
    request.check()?;
    let job = coordinator
        .complete(convert::report(job.0, request))
        .await?;
    reply(&api::JobResponse {
        job: convert::job(job),
    })
}

async fn cancel(job: PathId, coordinator: Arc<Coordinator>) -> Handled {
    let job = coordinator.cancel(job.0).await?;
    reply(&api::JobResponse {
        job: convert::job(job),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ReadQuery {
    /// Read this node's state as it is, without asking the leader.
    #[serde(default)]
    pub stale: bool,
}

async fn job(job: PathId, coordinator: Arc<Coordinator>, query: ReadQuery) -> Handled {
    if !query.stale {
        let path = routes::JOB.path_for(&job.0);
        if let Some(answer) = forward::linearize(&coordinator, &path).await? {
            return Ok(answer);
        }
    }
    let job = coordinator.job(&job.0).await?;
    reply(&api::JobResponse {
        job: convert::job(job),
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    host: Option<String>,
    capability: Option<String>,
    /// Text to find in the command line.
    command: Option<String>,
    /// `oldest` (the default) or `newest` first.
    order: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// An empty parameter is no parameter: a form's empty field sends one.
fn given(parameter: Option<String>) -> Option<String> {
    parameter.filter(|value| !value.is_empty())
}

async fn list(coordinator: Arc<Coordinator>, query: ListQuery) -> Handled {
    let status = match given(query.status) {
        None => None,
        Some(text) => Some(JobStatus::parse(&text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be one of queued, leased, completed, failed, cancelled; got {text:?}"
            ))
        })?),
    };
    let order = match given(query.order).as_deref() {
        None | Some("oldest") => Order::OldestFirst,
        Some("newest") => Order::NewestFirst,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order must be oldest or newest; got {other:?}"
            )))
        }
    };
    let filter = JobFilter {
        status,
        host_id: given(query.host),
        capability: given(query.capability),
        command: given(query.command),
    };
    limits::job_filter(
        filter.host_id.as_deref(),
        filter.capability.as_deref(),
        filter.command.as_deref(),
    )?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=limits::MAX_JOBS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {}",
            limits::MAX_JOBS_PAGE
        )));
    }
    let page = coordinator
        .jobs_page(&filter, order, given(query.after).as_deref(), limit)
        .await?;
    reply(&api::JobsPage {
        jobs: convert::jobs(page.jobs),
        next: page.next,
    })
}

async fn summary(coordinator: Arc<Coordinator>) -> Handled {
    let summary = coordinator.summary();
    reply(&convert::summary(&coordinator, summary))
}
