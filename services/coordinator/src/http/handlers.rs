//! One typed async function per route. Handlers never reject: every
//! outcome, failures included, is a response.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use skyclaw_api as api;
use skyclaw_log_format::{Hash32, JobSpec, Record};
use skyclaw_state::{Command, HostView, JobStatus, JobView, DEFAULT_MAX_ATTEMPTS};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::error::ApiError;
use super::filters::Node;
use crate::cluster::MembershipError;
use crate::raft::Answer;
use crate::store::{self, BLOBS, EVENTS};

pub type Outcome = Result<Response, ApiError>;

/// Jobs one claim may take at most.
const MAX_JOBS_PER_CLAIM: u32 = 256;
/// Jobs one list page holds at most.
const MAX_PAGE: usize = 1_000;
/// Records one `GET /v1/events` returns at most.
const MAX_EVENTS_PAGE: u64 = 10_000;
/// How long a linearizable read may wait to confirm leadership (or for the
/// leader's answer) before the caller is told to retry: openraft waits for
/// the apply without a bound, and a forward may reach a leader cut off
/// from this node, so without it a read on the minority side could hang.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn json<T: serde::Serialize>(body: &T) -> Outcome {
    Ok(warp::reply::json(body).into_response())
}

/// Parses a JSON body; the message names what was wrong and where.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |message: String| ApiError::bad_request(format!("invalid request body: {message}"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // serde_json alone names the field only when it is missing; a value of
    // the wrong type would be reported by line and column.
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(inner.to_string())
        } else {
            invalid(format!("{path}: {inner}"))
        }
    })?;
    deserializer.end().map_err(|e| invalid(e.to_string()))?;
    Ok(value)
}

/// Like `parse`, but an empty body means the defaults.
fn parse_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

/// Runs a command through raft and unwraps the domain's answer. A command
/// the leader's state already refuses is answered without an entry.
async fn write(node: &Node, command: Command) -> Result<Answer, ApiError> {
    if let Some(rejection) = node.refusal(&command).await {
        return Err(rejection.into());
    }
    Ok(node.write(command).await??)
}

fn host_json(node: &Node, host: &HostView) -> api::Host {
    api::Host {
        id: host.id.clone(),
        name: host.name.clone(),
        capabilities: host.capabilities.clone(),
        max_parallel: host.max_parallel,
        active_leases: host.active_leases,
        last_seen_at: node
            .last_seen(&host.id)
            .map_or(host.updated_at, |seen| seen.max(host.updated_at)),
        registered_at: host.registered_at,
        sandbox: host.sandbox.clone(),
    }
}

fn blob_text(node: &Node, blob: &skyclaw_log_format::BlobRef) -> String {
    match node.db.get_cf(store::cf(&node.db, BLOBS), blob.hash.0) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => {
            tracing::error!("blob {} is missing", blob.hash);
            String::new()
        }
        Err(e) => {
            tracing::error!("reading blob {}: {e}", blob.hash);
            String::new()
        }
    }
}

pub fn job_json(node: &Node, job: &JobView) -> api::Job {
    api::Job {
        id: job.id.clone(),
        created_at: job.created_at,
        updated_at: job.updated_at,
        status: job.status,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        priority: job.priority,
        lease_expires_at: job.lease.as_ref().map(|lease| lease.expires_at),
        lease_epoch: job.lease.as_ref().map(|lease| lease.epoch),
        assigned_host_id: job.assigned_host_id.clone(),
        cancel_requested: job.cancel_requested,
        requirement: api::Requirement {
            required_capabilities: job.required_capabilities.clone(),
        },
        payload: job.payload.clone(),
        result: job.outcome.as_ref().map(|outcome| api::JobResult {
            finished_at: outcome.finished_at,
            duration_ms: outcome.duration_ms,
            exit_code: outcome.exit_code,
            stdout: blob_text(node, &outcome.stdout),
            stderr: blob_text(node, &outcome.stderr),
        }),
        error: job.error.clone(),
    }
}

fn unexpected(answer: Answer) -> ApiError {
    tracing::error!("unexpected answer {answer:?}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: unexpected answer",
    )
}

fn one_job(node: &Node, answer: Answer) -> Outcome {
    match answer {
        Answer::Job(job) => json(&api::JobResponse {
            job: job_json(node, &job),
        }),
        Answer::Jobs(jobs) if jobs.len() == 1 => json(&api::JobResponse {
            job: job_json(node, &jobs[0]),
        }),
        other => Err(unexpected(other)),
    }
}

// ----- health and state ---------------------------------------------------

pub async fn health(node: Node) -> Outcome {
    json(&api::Health {
        ok: true,
        node_id: node.me.name.clone(),
    })
}

pub async fn state(node: Node) -> Outcome {
    let (hosts, jobs) = node.read(|m| {
        (
            m.state.hosts().cloned().collect::<Vec<_>>(),
            m.state.jobs_after(None).cloned().collect::<Vec<_>>(),
        )
    });
    json(&api::StateResponse {
        node_id: node.me.name.clone(),
        hosts: hosts.iter().map(|h| host_json(&node, h)).collect(),
        jobs: jobs.iter().map(|j| job_json(&node, j)).collect(),
    })
}

pub async fn status(node: Node) -> Outcome {
    let (term, raft_index) = {
        let metrics = node.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.current_term, metrics.last_log_index.unwrap_or(0))
    };
    let (head, queued, leased, hosts) = node.read(|m| {
        (
            log_head(&node, m),
            m.state.queued_count() as u64,
            m.state.leased_count() as u64,
            m.state.hosts().count() as u64,
        )
    });
    json(&api::Status {
        node_id: node.me.name.clone(),
        leader: node.leader().map(|leader| leader.name),
        term,
        head,
        queued,
        leased,
        hosts,
        raft_index,
    })
}

// ----- hosts --------------------------------------------------------------

pub async fn register(node: Node, body: Bytes) -> Outcome {
    let request: api::RegisterHostRequest = parse(&body)?;
    request.check()?;
    let host_id = request
        .host_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let command = Command::RegisterHost {
        host_id: host_id.clone(),
        name: request.name,
        capabilities: request
            .capabilities
            .unwrap_or_else(|| vec!["shell".into(), "automaton".into()]),
        max_parallel: request.max_parallel.unwrap_or(1),
        sandbox: request.sandbox,
    };
    let answer = write(&node, command).await?;
    match answer {
        Answer::Host(host) => {
            node.saw_host(&host.id, node.clock.now_ms());
            json(&api::HostResponse {
                host: host_json(&node, &host),
            })
        }
        other => Err(unexpected(other)),
    }
}

pub async fn hosts(node: Node) -> Outcome {
    let hosts: Vec<HostView> = node.read(|m| m.state.hosts().cloned().collect());
    json(&api::HostsResponse {
        hosts: hosts.iter().map(|h| host_json(&node, h)).collect(),
    })
}

/// Renews leases that passed half their life (through raft), and answers
/// from local state when nothing needs writing: a heartbeat that changes
/// nothing writes nothing. A heartbeat without `running` (the MVP's host
/// sends none) renews every lease the host holds, as the MVP did.
pub async fn heartbeat(node: Node, host_id: String, body: Bytes) -> Outcome {
    let request: api::HeartbeatRequest = parse_or_default(&body)?;
    request.check()?;
    let now = node.clock.now_ms();
    let running: Option<Vec<(String, u32)>> = request.running.map(|list| {
        list.into_iter()
            .map(|r| (r.job_id, r.lease_epoch))
            .collect()
    });
    let (command, dry_run) = node.read(|m| {
        let command = Command::Renew {
            host_id: host_id.clone(),
            running: running.unwrap_or_else(|| m.state.leases_held_by(&host_id)),
            lease_ms: node.config.lease_ms,
        };
        let at = m.state.clock(now);
        let dry_run = m.state.decide(&command, at).map(|decision| {
            let host = m.state.host(&host_id).cloned();
            (decision, host)
        });
        (command, dry_run)
    });
    // Only a registered host gets here: nothing a refused heartbeat
    // carries stays in memory.
    let dry_run = dry_run?;
    node.saw_host(&host_id, now);
    // Telling a host a lease is lost makes it kill the job, so that answer
    // comes only through raft, never from the views of a node that may be
    // a leader the cluster has left behind.
    let tells_lost = |affected: &skyclaw_state::Affected| {
        matches!(
            affected,
            skyclaw_state::Affected::Renewed { lost, .. } if !lost.is_empty()
        )
    };
    let answer = match dry_run {
        (decision, Some(host)) if decision.events.is_empty() && !tells_lost(&decision.affected) => {
            match decision.affected {
                skyclaw_state::Affected::Renewed { cancel, lost, .. } => {
                    Answer::Renewed { host, cancel, lost }
                }
                _ => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error",
                    ))
                }
            }
        }
        _ => write(&node, command).await?,
    };
    match answer {
        Answer::Renewed { host, cancel, lost } => json(&api::HeartbeatResponse {
            host: host_json(&node, &host),
            cancel,
            lost,
        }),
        other => Err(unexpected(other)),
    }
}

/// Leases matching work to the host, waiting up to `waitMs` for some to
/// appear. Waiting costs nothing in the log: only a claim that finds work
/// is proposed.
///
/// With an `x-idempotency-key`, a retried claim whose answer was lost gets
/// the same leases again instead of new ones (see `Command::Claim`).
pub async fn claim(node: Node, host_id: String, claim_key: Option<String>, body: Bytes) -> Outcome {
    api::limits::idempotency_key(claim_key.as_deref())?;
    let request: api::ClaimRequest = parse_or_default(&body)?;
    let max_jobs = request.max_jobs.unwrap_or(1);
    if !(1..=MAX_JOBS_PER_CLAIM).contains(&max_jobs) {
        return Err(ApiError::bad_request(format!(
            "maxJobs must be between 1 and {MAX_JOBS_PER_CLAIM}"
        )));
    }
    let wait = Duration::from_millis(
        request
            .wait_ms
            .unwrap_or(0)
            .min(node.config.max_claim_wait_ms),
    );
    let deadline = Instant::now() + wait;
    let jobs = loop {
        let notified = node.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (known, has_work) = node.read(|m| {
            (
                m.state.host(&host_id).is_some(),
                m.state.has_work_for(&host_id)
                    || claim_key
                        .as_deref()
                        .is_some_and(|key| !m.state.claimed_with(&host_id, key).is_empty()),
            )
        });
        if !known {
            return Err(ApiError::not_found(format!(
                "host {host_id} is not registered"
            )));
        }
        node.saw_host(&host_id, node.clock.now_ms());
        if has_work {
            let command = Command::Claim {
                host_id: host_id.clone(),
                max_jobs,
                lease_ms: node.config.lease_ms,
                claim_key: claim_key.clone(),
            };
            match write(&node, command).await? {
                Answer::Jobs(jobs) if !jobs.is_empty() => break jobs,
                Answer::Jobs(_) => {}
                other => return Err(unexpected(other)),
            }
        }
        let now = Instant::now();
        if now >= deadline
            || tokio::time::timeout(deadline - now, notified)
                .await
                .is_err()
        {
            break Vec::new();
        }
    };
    let jobs: Vec<api::Job> = jobs.iter().map(|job| job_json(&node, job)).collect();
    if request.max_jobs.is_some() {
        json(&api::JobsResponse { jobs })
    } else {
        json(&api::ClaimResponse {
            job: jobs.into_iter().next(),
        })
    }
}

// ----- jobs ---------------------------------------------------------------

/// Turns a request into the job it enqueues. The request hash lets a
/// repeated idempotency key tell "the same request again" from "another
/// request under a used key".
fn job_spec(request: api::EnqueueRequest, idempotency_key: Option<String>) -> JobSpec {
    let request_hash = idempotency_key.as_ref().map(|_| {
        let canonical = serde_json::to_vec(&request).expect("requests encode");
        Hash32(*blake3::hash(&canonical).as_bytes())
    });
    JobSpec {
        job_id: uuid::Uuid::new_v4().to_string(),
        required_capabilities: request
            .requirement
            .map(|r| r.required_capabilities)
            .unwrap_or_default(),
        priority: request.priority.unwrap_or(0),
        max_attempts: request.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        payload: request.payload,
        idempotency_key,
        request_hash,
    }
}

pub async fn enqueue(node: Node, idempotency_key: Option<String>, body: Bytes) -> Outcome {
    api::limits::idempotency_key(idempotency_key.as_deref())?;
    let request: api::EnqueueRequest = parse(&body)?;
    request.check()?;
    let spec = job_spec(request, idempotency_key);
    let answer = write(&node, Command::Enqueue { jobs: vec![spec] }).await?;
    one_job(&node, answer)
}

pub async fn enqueue_batch(node: Node, idempotency_key: Option<String>, body: Bytes) -> Outcome {
    api::limits::idempotency_key(idempotency_key.as_deref())?;
    let request: api::BatchEnqueueRequest = parse(&body)?;
    request.check()?;
    let jobs = request
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            job_spec(
                job,
                idempotency_key.as_ref().map(|key| format!("{key}#{i}")),
            )
        })
        .collect();
    match write(&node, Command::Enqueue { jobs }).await? {
        Answer::Jobs(jobs) => json(&api::JobsResponse {
            jobs: jobs.iter().map(|job| job_json(&node, job)).collect(),
        }),
        other => Err(unexpected(other)),
    }
}

pub async fn job(node: Node, job_id: String) -> Outcome {
    match node.read(|m| m.state.job(&job_id).cloned()) {
        Some(job) => json(&api::JobResponse {
            job: job_json(&node, &job),
        }),
        None => Err(ApiError::not_found(format!("job {job_id} not found"))),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

pub async fn list_jobs(node: Node, query: ListQuery) -> Outcome {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be one of queued, leased, completed, failed, cancelled; got {text:?}"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let (jobs, more) = node.read(|m| {
        if let Some(after) = &query.after {
            if m.state.job(after).is_none() {
                return Err(ApiError::bad_request(format!(
                    "after names an unknown job {after}"
                )));
            }
        }
        let mut matching = m
            .state
            .jobs_after(query.after.as_deref())
            .filter(|job| status.is_none_or(|s| job.status == s));
        let page: Vec<JobView> = matching.by_ref().take(limit).cloned().collect();
        Ok((page, matching.next().is_some()))
    })?;
    let next = if more {
        jobs.last().map(|job| job.id.clone())
    } else {
        None
    };
    let jobs = jobs.iter().map(|job| job_json(&node, job)).collect();
    json(&api::JobsPage { jobs, next })
}

pub async fn cancel(node: Node, job_id: String) -> Outcome {
    let answer = write(&node, Command::Cancel { job_id }).await?;
    one_job(&node, answer)
}

pub async fn complete(node: Node, job_id: String, body: Bytes) -> Outcome {
    let request: api::CompleteRequest = parse(&body)?;
    request.check()?;
    let host_id = request.host_id.clone();
    let command = Command::Complete(skyclaw_state::JobReport {
        job_id,
        host_id: request.host_id,
        lease_epoch: request.lease_epoch,
        success: request.success,
        duration_ms: request.duration_ms,
        exit_code: request.exit_code,
        stdout: request.stdout,
        stderr: request.stderr,
        error: request.error,
    });
    let answer = write(&node, command).await?;
    node.saw_host(&host_id, node.clock.now_ms());
    one_job(&node, answer)
}

// ----- the log ------------------------------------------------------------

fn log_head(node: &Node, m: &crate::machine::Materialized) -> api::LogHead {
    api::LogHead {
        seq: m.head.seq,
        hash: m.head.hash.to_hex(),
        cluster_id: m.state.cluster_id().unwrap_or("").to_string(),
        node_id: node.me.name.clone(),
    }
}

pub async fn head(node: Node) -> Outcome {
    json(&node.read(|m| log_head(&node, m)))
}

pub async fn digest(node: Node) -> Outcome {
    let (seq, digest) = node.read(|m| (m.head.seq, m.state.digest()));
    json(&api::StateDigest {
        seq,
        digest: digest.to_hex(),
    })
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    from: Option<u64>,
    limit: Option<u64>,
    format: Option<String>,
}

/// One record as `?format=json` shows it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordJson {
    seq: u64,
    at: u64,
    origin: skyclaw_log_format::Origin,
    prev_hash: Hash32,
    hash: Hash32,
    event: serde_json::Value,
}

/// A run of records from this node's own event log: a segment, or JSON
/// for people.
pub async fn events(node: Node, query: EventsQuery) -> Outcome {
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
    let (cluster_id, head, anchor) =
        node.read(|m| (m.state.cluster_id().map(str::to_string), m.head, m.anchor));
    let Some(cluster_id) = cluster_id else {
        return Err(ApiError::unavailable("the cluster is not initialized yet"));
    };
    if let Some(anchor) = anchor.filter(|anchor| from <= anchor.seq) {
        return Err(ApiError::new(
            StatusCode::GONE,
            format!(
                "this node's log starts after seq {} (restored from a snapshot); ask from {}",
                anchor.seq,
                anchor.seq + 1
            ),
        ));
    }
    let last = head.seq.min(from.saturating_add(limit - 1));
    let mut records = Vec::new();
    if from <= last {
        let start = store::u64_key(from);
        let iter = node.db.iterator_cf(
            store::cf(&node.db, EVENTS),
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, bytes) =
                item.map_err(|e| ApiError::unavailable(format!("reading the log: {e}")))?;
            if store::u64_of_key(&key).is_none_or(|seq| seq > last) {
                break;
            }
            let record = Record::decode(&bytes).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("corrupt record: {e}"),
                )
            })?;
            records.push(record);
        }
    }
    if as_json {
        let records: Vec<RecordJson> = records
            .into_iter()
            .map(|record| RecordJson {
                seq: record.seq,
                at: record.at,
                origin: record.origin,
                prev_hash: record.prev_hash,
                hash: record.hash,
                event: record
                    .decode_event()
                    .ok()
                    .and_then(|event| serde_json::to_value(event).ok())
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect();
        return json(&serde_json::json!({ "records": records }));
    }
    let prev_hash = match records.first() {
        Some(first) => first.prev_hash,
        None => head.hash,
    };
    let first_seq = records.first().map_or(head.seq + 1, |r| r.seq);
    let bytes =
        skyclaw_log_format::segment::write_segment(&cluster_id, first_seq, prev_hash, &records)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = Response::new(bytes.into());
    response.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static(api::routes::SEGMENT_CONTENT_TYPE),
    );
    Ok(response)
}

// ----- linearizable reads -------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct ReadQuery {
    /// Read this node's state as it is, without asking the leader.
    #[serde(default)]
    stale: bool,
}

/// Makes a read linearizable: on the leader, confirms leadership with a
/// quorum and waits until everything committed is applied; on a follower,
/// passes the read to the leader. `Some` is the leader's answer.
async fn linearize(
    node: &Node,
    query: &ReadQuery,
    path: &str,
) -> Result<Option<Response>, ApiError> {
    if query.stale {
        return Ok(None);
    }
    let confirmed = async {
        match node.raft.ensure_linearizable().await {
            Ok(_) => Ok(None),
            Err(e) => match e.forward_to_leader() {
                Some(_) => super::forward::to_leader(
                    node,
                    warp::http::Method::GET,
                    path,
                    &warp::http::HeaderMap::new(),
                    Bytes::new(),
                )
                .await
                .map(Some),
                None => Err(ApiError::unavailable(format!(
                    "cannot confirm leadership: {e}"
                ))),
            },
        }
    };
    tokio::time::timeout(READ_TIMEOUT, confirmed)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::unavailable(
                "timed out confirming leadership for a linearizable read; retry, or read with ?stale=true",
            ))
        })
}

pub async fn job_read(node: Node, job_id: String, query: ReadQuery) -> Outcome {
    if let Some(answer) = linearize(&node, &query, &format!("/v1/jobs/{job_id}")).await? {
        return Ok(answer);
    }
    job(node, job_id).await
}

pub async fn state_read(node: Node, query: ReadQuery) -> Outcome {
    if let Some(answer) = linearize(&node, &query, "/v1/state").await? {
        return Ok(answer);
    }
    state(node).await
}

// ----- the cluster --------------------------------------------------------

pub async fn hello(node: Node) -> Outcome {
    json(&node.hello().await)
}

impl From<MembershipError> for ApiError {
    fn from(error: MembershipError) -> ApiError {
        match error {
            MembershipError::Invalid(message) => ApiError::bad_request(message),
            MembershipError::Refused(message) => ApiError::new(StatusCode::CONFLICT, message),
            MembershipError::Write(error) => error.into(),
        }
    }
}

pub async fn join(node: Node, body: Bytes) -> Outcome {
    let request: api::JoinRequest = parse(&body)?;
    node.admit(&request).await?;
    json(&serde_json::json!({ "ok": true }))
}

pub async fn add_member(node: Node, body: Bytes) -> Outcome {
    let request: api::AddMemberRequest = parse(&body)?;
    let hello = node.prove(&request.url, &request.name).await?;
    node.admit(&api::JoinRequest {
        name: hello.name,
        url: request.url,
        raft_id: hello.raft_id,
    })
    .await?;
    json(&serde_json::json!({ "ok": true }))
}

pub async fn remove_member(node: Node, body: Bytes) -> Outcome {
    let request: api::RemoveMemberRequest = parse(&body)?;
    if node.remove(&request.name).await? {
        json(&serde_json::json!({ "ok": true }))
    } else {
        Err(ApiError::not_found(format!(
            "no member is named {:?}",
            request.name
        )))
    }
}

pub async fn cluster(node: Node) -> Outcome {
    let term = node.raft.metrics().borrow().current_term;
    let head_seq = node.read(|m| m.head.seq);
    // Ask every other member for its head at once: one slow or dead member
    // costs one timeout, not one each.
    let members =
        futures::future::join_all(node.members().into_iter().map(|(raft_id, member, voter)| {
            let node = node.clone();
            async move {
                let head: Option<api::LogHead> = if raft_id == node.id {
                    Some(node.read(|m| log_head(&node, m)))
                } else {
                    node.get_json(&member.url, "/v1/log/head").await
                };
                api::ClusterMember {
                    head_seq: head.as_ref().map(|h| h.seq),
                    lag: head.as_ref().map(|h| head_seq.saturating_sub(h.seq)),
                    name: member.name,
                    url: member.url,
                    raft_id,
                    voter,
                }
            }
        }))
        .await;
    json(&api::ClusterStatus {
        node_id: node.me.name.clone(),
        leader: node.leader().map(|leader| leader.name),
        term,
        head_seq,
        members,
    })
}
