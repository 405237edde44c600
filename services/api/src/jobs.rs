//! The job routes' bodies: enqueue, claim, completion, a job, pages of
//! jobs and the summary of them all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{JobStatus, Payload};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    #[serde(default)]
    pub required_capabilities: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub finished_at: u64,
    pub duration_ms: u64,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub created_at: u64,
    pub updated_at: u64,
    #[schema(value_type = crate::openapi::stand_in::JobStatus)]
    pub status: JobStatus,
    /// Claims so far; the live lease's epoch equals it.
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_host_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
    pub requirement: Requirement,
    #[schema(value_type = crate::openapi::stand_in::Payload)]
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/hosts/:id/claim`; the body may be empty.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    /// Wait up to this long for matching work (long poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Take up to this many jobs; the answer is then `{jobs: […]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jobs: Option<u32>,
}

/// The MVP's claim answer: one job or null.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    /// Always present, `null` when no work matched: that is what tells
    /// this answer from the `{jobs}` one.
    #[schema(required = true)]
    pub job: Option<Job>,
}

/// `POST /v1/jobs`. The idempotency key travels in a header.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueRequest {
    #[schema(value_type = crate::openapi::stand_in::Payload)]
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<Requirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

impl EnqueueRequest {
    /// A shell job with defaults for everything else.
    pub fn shell(command: impl Into<String>, args: Vec<String>) -> EnqueueRequest {
        EnqueueRequest {
            payload: Payload::Shell {
                command: command.into(),
                args,
                cwd: None,
                env: BTreeMap::new(),
                timeout_ms: None,
            },
            requirement: None,
            priority: None,
            max_attempts: None,
        }
    }
}

/// `POST /v1/jobs/batch`: all jobs are appended together or none is.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchEnqueueRequest {
    pub jobs: Vec<EnqueueRequest>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobResponse {
    pub job: Job,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobsResponse {
    pub jobs: Vec<Job>,
}

/// `GET /v1/jobs`: one page, oldest first; `next` is the `after` cursor of
/// the following page.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobsPage {
    pub jobs: Vec<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Jobs in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    pub queued: u64,
    pub leased: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// Queued jobs of one priority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PriorityDepth {
    pub priority: i32,
    pub depth: u64,
}

/// Queued jobs that require one capability; `""` counts the jobs that
/// require none. A job that requires several counts under each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapabilityDepth {
    pub capability: String,
    pub depth: u64,
}

/// What happened to jobs in one minute of the log's time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinuteActivity {
    /// The minute's start (ms since the Unix epoch).
    pub minute: u64,
    pub enqueued: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Jobs leased for the first time in this minute (after a restart,
    /// counted from then on: the views keep no time of a first lease).
    #[serde(default)]
    pub picked_up: u64,
    /// Their time from enqueue to that first lease, summed (ms): the
    /// pickup latency is `pickupMs / pickedUp`.
    #[serde(default)]
    pub pickup_ms: u64,
}

/// `GET /v1/summary`: what the dashboard's overview shows, from this
/// node's state.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsSummary {
    pub node_id: String,
    /// The log's time this summary is as of (ms since the Unix epoch).
    pub at: u64,
    pub jobs: StatusCounts,
    /// Highest priority first; at most 100 priorities.
    pub queued_by_priority: Vec<PriorityDepth>,
    /// By name; at most 100 capabilities.
    pub queued_by_capability: Vec<CapabilityDepth>,
    /// The minutes of the last hour in which something happened, oldest
    /// first.
    pub per_minute: Vec<MinuteActivity>,
}

/// `POST /v1/jobs/:id/complete`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRequest {
    pub host_id: String,
    pub success: bool,
    pub duration_ms: u64,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The lease the job ran under; a stale one is refused with 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<u32>,
    /// Required of a host with a key, refused from one without: what the
    /// host signed about the run (403 when it does not verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::SignedReceipt>,
}
