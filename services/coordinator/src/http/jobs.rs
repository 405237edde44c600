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
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::filters::{self, at, caller_at, caller_at_id, Caller, PathId};
use super::forward::{self, unless_leading, Deadline};
use super::json::{parse, parse_or_default, reply, Handled};
use super::{convert, finish};
use crate::access::Principal;
use crate::coordinator::Coordinator;
use crate::jobs::{JobFilter, Order};

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let body = filters::body(coordinator.config.max_body_bytes);
    let key = warp::header::optional::<String>(IDEMPOTENCY_HEADER);
    let write = |route, deadline| unless_leading(coordinator, route, deadline);

    let enqueue = caller_at(coordinator, routes::ENQUEUE)
        .and(with.clone())
        .and(key)
        .and(body.clone())
        .then(enqueue);
    let batch = caller_at(coordinator, routes::ENQUEUE_BATCH)
        .and(with.clone())
        .and(key)
        .and(body.clone())
        .then(enqueue_batch);
    let claim = caller_at_id(coordinator, routes::CLAIM)
        .and(with.clone())
        .and(key)
        .and(body.clone())
        .then(claim);
    let complete = caller_at_id(coordinator, routes::COMPLETE)
        .and(with.clone())
        .and(body.clone())
        .then(complete);
    let cancel = caller_at_id(coordinator, routes::CANCEL)
        .and(with.clone())
        .then(cancel);
    let job = caller_at_id(coordinator, routes::JOB)
        .and(with.clone())
        .and(filters::query::<ReadQuery>())
        .then(job);
    let list = caller_at(coordinator, routes::JOBS)
        .and(with.clone())
        .and(filters::query::<ListQuery>())
        .then(list);
    let summary = at(coordinator, routes::SUMMARY).and(with).then(summary);

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
    caller: Caller,
    coordinator: Arc<Coordinator>,
    idempotency_key: Option<String>,
    body: Bytes,
) -> Handled {
    limits::idempotency_key(idempotency_key.as_deref())?;
    let request: api::EnqueueRequest = parse(&body)?;
    request.check()?;
    let account = caller.principal.account().map(str::to_string);
    let job = coordinator
        .enqueue(request, idempotency_key, account)
        .await?;
    reply(&api::JobResponse {
        job: convert::job(job),
    })
}

async fn enqueue_batch(
    caller: Caller,
    coordinator: Arc<Coordinator>,
    idempotency_key: Option<String>,
    body: Bytes,
) -> Handled {
    limits::idempotency_key(idempotency_key.as_deref())?;
    let request: api::BatchEnqueueRequest = parse(&body)?;
    request.check()?;
    let account = caller.principal.account().map(str::to_string);
    let jobs = coordinator
        .enqueue_batch(request.jobs, idempotency_key, account)
        .await?;
    reply(&api::JobsResponse {
        jobs: convert::jobs(jobs),
    })
}

/// Without `maxJobs` the answer has the MVP's shape: one job or null.
async fn claim(
    host: PathId,
    caller: Caller,
    coordinator: Arc<Coordinator>,
    claim_key: Option<String>,
    body: Bytes,
) -> Handled {
    caller.acting_as(&coordinator, &host.0)?;
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

async fn complete(
    job: PathId,
    caller: Caller,
    coordinator: Arc<Coordinator>,
    body: Bytes,
) -> Handled {
    let request: api::CompleteRequest = parse(&body)?;
    request.check()?;
    // The state refuses a host that does not hold the lease; this refuses
    // a caller that is not the host it names.
    caller.acting_as(&coordinator, &request.host_id)?;
    let job = coordinator
        .complete(convert::report(job.0, request)?)
        .await?;
    reply(&api::JobResponse {
        job: convert::job(job),
    })
}

async fn cancel(job: PathId, caller: Caller, coordinator: Arc<Coordinator>) -> Handled {
    let seen = coordinator.job_view(&job.0)?;
    if !caller.principal.may_see(&seen) {
        return Err(not_found(&job.0));
    }
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

async fn job(
    job: PathId,
    caller: Caller,
    coordinator: Arc<Coordinator>,
    query: ReadQuery,
) -> Handled {
    if !query.stale {
        let path = routes::JOB.path_for(&job.0);
        if let Some(answer) = forward::linearize(&coordinator, &path, &caller).await? {
            return Ok(answer);
        }
    }
    // Judged on the view: another's job costs no read of its output.
    let found = coordinator.job_view(&job.0)?;
    if !caller.principal.may_see(&found) {
        // Another account's job is not there for this caller; a host
        // sees a job only while it holds the lease.
        return Err(match caller.principal {
            Principal::Host(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this host does not hold the lease of job {}", job.0),
            ),
            _ => not_found(&job.0),
        });
    }
    let job = coordinator.with_output(found).await;
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

async fn list(caller: Caller, coordinator: Arc<Coordinator>, query: ListQuery) -> Handled {
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
        account: caller.principal.account().map(str::to_string),
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

fn not_found(job_id: &str) -> ApiError {
    ApiError::not_found(format!("job {job_id} not found"))
}
