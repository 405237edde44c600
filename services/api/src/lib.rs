//! Skyclaw's HTTP wire types: the JSON bodies of every route, the route
//! paths, and the error body. Field names are camelCase and match the
//! TypeScript MVP; new fields are added beside the MVP's, never instead.
//!
//! Layout:
//! - [`routes`]: paths and header names
//! - [`limits`]: what a request may carry, checked before anything happens
//! - [`openapi`]: the OpenAPI document, generated from these types and the
//!   routes
//! - this file: request and response bodies, records

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use skyclaw_log_format::event::Payload;
pub use skyclaw_state::JobStatus;

pub mod limits;
pub mod openapi;
pub mod routes;

/// The body of every error response, whatever the status.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /health`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub ok: bool,
    pub node_id: String,
}

/// A host as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub max_parallel: u32,
    /// Jobs currently leased to this host.
    pub active_leases: u32,
    /// Last time the host was heard from (ms since the Unix epoch).
    pub last_seen_at: u64,
    pub registered_at: u64,
    /// How the host confines its jobs, as it reported at registration
    /// (`landlock+no_new_privs+rlimits`, `none (…)`); absent for hosts that
    /// do not say (the MVP's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

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
    #[schema(value_type = openapi::stand_in::JobStatus)]
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
    #[schema(value_type = openapi::stand_in::Payload)]
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/hosts/register`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterHostRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// How the host confines jobs, e.g. `landlock+no_new_privs+rlimits`
    /// or `none (turned off by the host's owner)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HostResponse {
    pub host: Host,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HostsResponse {
    pub hosts: Vec<Host>,
}

/// A job a host says it is running, with the lease it runs it under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningJob {
    pub job_id: String,
    pub lease_epoch: u32,
}

/// `POST /v1/hosts/:id/heartbeat`. `running` renews those leases.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_leases: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Vec<RunningJob>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    pub host: Host,
    /// Running jobs someone asked to cancel: stop them and report.
    #[serde(default)]
    pub cancel: Vec<String>,
    /// Reported jobs whose lease this host no longer holds: stop them, do
    /// not report (a completion would be rejected as stale).
    #[serde(default)]
    pub lost: Vec<String>,
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
    #[schema(value_type = openapi::stand_in::Payload)]
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
}

/// `GET /v1/state`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateResponse {
    pub node_id: String,
    pub hosts: Vec<Host>,
    pub jobs: Vec<Job>,
}

/// `GET /v1/log/head`: the last record of this node's event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogHead {
    pub seq: u64,
    pub hash: String,
    pub cluster_id: String,
    pub node_id: String,
}

/// `GET /v1/state/digest`: a hash of every view, as of event `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateDigest {
    pub seq: u64,
    pub digest: String,
}

/// `GET /v1/events?format=json`: a run of the event log, for people.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventRecords {
    pub records: Vec<EventRecord>,
}

/// One record of the event log as JSON (`log-format/FORMAT.md` has its
/// bytes).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub seq: u64,
    /// The log's time of the record (ms since the Unix epoch).
    pub at: u64,
    /// The raft entry the record was applied from.
    pub origin: RecordOrigin,
    /// 64 lowercase hex digits.
    pub prev_hash: String,
    /// 64 lowercase hex digits.
    pub hash: String,
    /// The event as `{kind: fields}` (`{"jobEnqueued": {…}}`); `null` if
    /// this build cannot decode it.
    pub event: serde_json::Value,
}

/// The raft entry a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordOrigin {
    pub term: u64,
    pub index: u64,
}

/// What a membership change answers once it is done.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

/// `GET /v1/status`: what `skyclaw status` prints.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub node_id: String,
    pub leader: Option<String>,
    pub term: u64,
    pub head: LogHead,
    pub queued: u64,
    pub leased: u64,
    pub hosts: u64,
    /// The index of this node's last raft entry: every proposal, refused
    /// or not, advances it.
    #[serde(default)]
    pub raft_index: u64,
}

/// `GET /v1/cluster/hello`: who a coordinator is, for bootstrap and joins.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHello {
    pub name: String,
    pub url: String,
    /// The raft id of this incarnation: a node whose data was wiped comes
    /// back under a new one.
    pub raft_id: u64,
    /// Whether this node belongs to a cluster (holds a raft log or vote).
    pub initialized: bool,
    /// The cluster whose log this node holds, once it holds its first entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// `POST /v1/cluster/join`: a node asks to become a voter, replacing any
/// earlier incarnation of the same name.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub name: String,
    pub url: String,
    pub raft_id: u64,
}

/// `POST /v1/cluster/add`: add the coordinator serving at `url`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AddMemberRequest {
    pub name: String,
    pub url: String,
}

/// `POST /v1/cluster/remove`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RemoveMemberRequest {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMember {
    pub name: String,
    pub url: String,
    pub raft_id: u64,
    pub voter: bool,
    /// The member's event log head, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    /// Events behind the answering node's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// `GET /v1/cluster`: members, leader, term, and how far each has applied.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub node_id: String,
    pub leader: Option<String>,
    pub term: u64,
    pub head_seq: u64,
    pub members: Vec<ClusterMember>,
}

impl ClusterStatus {
    /// The names of the voting members, sorted.
    pub fn voters(&self) -> Vec<&str> {
        let mut voters: Vec<&str> = self
            .members
            .iter()
            .filter(|member| member.voter)
            .map(|member| member.name.as_str())
            .collect();
        voters.sort_unstable();
        voters
    }
}
