//! Between the wire (`skyclaw-api`'s camelCase JSON types) and the
//! coordinator's own types: the one place views become replies, and the
//! one place a request becomes a domain value.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use skyclaw_api as api;
use skyclaw_state::{HostView, JobReport, JobStatus, KeyView};

use crate::coordinator::Coordinator;
use crate::jobs::{Job, Summary};

pub fn job(job: Job) -> api::Job {
    let Job { view, output } = job;
    let lease = view.lease.as_ref();
    api::Job {
        lease_expires_at: lease.map(|lease| lease.expires_at),
        lease_epoch: lease.map(|lease| lease.epoch),
        result: view.outcome.as_ref().map(|outcome| {
            let output = output.unwrap_or_default();
            api::JobResult {
                finished_at: outcome.finished_at,
                duration_ms: outcome.duration_ms,
                exit_code: outcome.exit_code,
                stdout: output.stdout,
                stderr: output.stderr,
            }
        }),
        id: view.id,
        created_at: view.created_at,
        updated_at: view.updated_at,
        status: view.status,
        attempts: view.attempts,
        max_attempts: view.max_attempts,
        priority: view.priority,
        assigned_host_id: view.assigned_host_id,
        cancel_requested: view.cancel_requested,
        requirement: api::Requirement {
            required_capabilities: view.required_capabilities,
        },
        payload: view.payload,
        error: view.error,
    }
}

pub fn jobs(jobs: Vec<Job>) -> Vec<api::Job> {
    jobs.into_iter().map(job).collect()
}

pub fn summary(coordinator: &Coordinator, summary: Summary) -> api::JobsSummary {
    let mut jobs = api::StatusCounts::default();
    for (status, count) in summary.counts {
        let field = match status {
            JobStatus::Queued => &mut jobs.queued,
            JobStatus::Leased => &mut jobs.leased,
            JobStatus::Completed => &mut jobs.completed,
            JobStatus::Failed => &mut jobs.failed,
            JobStatus::Cancelled => &mut jobs.cancelled,
        };
        *field = count;
    }
    api::JobsSummary {
        node_id: coordinator.me.name.clone(),
        at: summary.at,
        jobs,
        queued_by_priority: summary
            .queued_by_priority
            .into_iter()
            .map(|(priority, depth)| api::PriorityDepth { priority, depth })
            .collect(),
        queued_by_capability: summary
            .queued_by_capability
            .into_iter()
            .map(|(capability, depth)| api::CapabilityDepth { capability, depth })
            .collect(),
        per_minute: summary
            .per_minute
            .into_iter()
            .map(|(minute, activity)| api::MinuteActivity {
                minute,
                enqueued: activity.enqueued,
                completed: activity.completed,
                failed: activity.failed,
                cancelled: activity.cancelled,
                picked_up: activity.picked_up,
                pickup_ms: activity.pickup_ms,
            })
            .collect(),
    }
}

/// A host, with when it was last heard from as this node knows it.
pub fn host(coordinator: &Coordinator, host: HostView) -> api::Host {
    api::Host {
        last_seen_at: coordinator.last_seen_at(&host),
        id: host.id,
        name: host.name,
        capabilities: host.capabilities,
        max_parallel: host.max_parallel,
        active_leases: host.active_leases,
        registered_at: host.registered_at,
        sandbox: host.sandbox,
        access: host.access.as_str().to_string(),
        public_key: host.public_key.map(|key| URL_SAFE_NO_PAD.encode(key.0)),
    }
}

pub fn key(key: KeyView) -> api::Key {
    let grant = key.grant;
    api::Key {
        id: grant.key_id,
        role: serde_json::to_value(grant.role)
            .ok()
            .and_then(|role| role.as_str().map(str::to_string))
            .unwrap_or_default(),
        account: grant.account,
        scopes: grant
            .scopes
            .into_iter()
            .map(|scope| crate::access::scope_name(scope).to_string())
            .collect(),
        issued_at: key.issued_at,
        expires_at: grant.expires_at,
        uses: grant.uses,
        revoked_at: key.revoked_at,
    }
}

pub fn hosts(coordinator: &Coordinator, hosts: Vec<HostView>) -> Vec<api::Host> {
    hosts
        .into_iter()
        .map(|view| host(coordinator, view))
        .collect()
}

/// A host's completion request for job `job_id`.
pub fn report(
    job_id: String,
    request: api::CompleteRequest,
) -> Result<JobReport, skyclaw_api::limits::Invalid> {
    Ok(JobReport {
        receipt: request.receipt.as_ref().map(|r| r.seal()).transpose()?,
        job_id,
        host_id: request.host_id,
        lease_epoch: request.lease_epoch,
        success: request.success,
        duration_ms: request.duration_ms,
        exit_code: request.exit_code,
        stdout: request.stdout,
        stderr: request.stderr,
        error: request.error,
    })
}

/// A record of the log as `GET /v1/events?format=json` shows it; an event
/// this build cannot decode shows as `null`.
pub fn record(record: skyclaw_log_format::Record) -> api::EventRecord {
    api::EventRecord {
        seq: record.seq,
        at: record.at,
        origin: api::RecordOrigin {
            term: record.origin.term,
            index: record.origin.index,
        },
        prev_hash: record.prev_hash.to_hex(),
        hash: record.hash.to_hex(),
        event: record
            .decode_event()
            .ok()
            .and_then(|event| serde_json::to_value(event).ok())
            .unwrap_or(serde_json::Value::Null),
    }
}
