//! The records the state keeps for hosts and jobs. They are also what the
//! coordinator persists as views and what the digest covers, so their
//! encoding is part of what replicas must agree on.

use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::{BlobRef, Payload};

/// Job status. `Leased` jobs are held by a host; the last three are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Leased,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Leased,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Where this status is in [`JobStatus::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Leased => "leased",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Whether the job will never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub max_parallel: u32,
    /// Jobs leased to this host right now (derived, kept for speed).
    pub active_leases: u32,
    pub registered_at: u64,
    pub updated_at: u64,
    /// The sandbox level the host last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

impl HostView {
    pub fn can_run(&self, job: &JobView) -> bool {
        job.required_capabilities
            .iter()
            .all(|needed| self.capabilities.contains(needed))
    }
}

/// The lease a host holds on a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub host_id: String,
    pub epoch: u32,
    pub expires_at: u64,
    /// The idempotency key of the claim that took it (see `Command::Claim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_key: Option<String>,
}

/// What the lease holder reported when the job ended; output is in blobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutcome {
    pub finished_at: u64,
    pub duration_ms: u64,
    pub exit_code: Option<i32>,
    pub stdout: BlobRef,
    pub stderr: BlobRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub status: JobStatus,
    /// Claims so far; a live lease's epoch equals it.
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: i32,
    /// Position in enqueue order: ties in priority go to the older job.
    pub order: u64,
    pub required_capabilities: Vec<String>,
    pub payload: Payload,
    /// Present while leased.
    pub lease: Option<Lease>,
    /// The host that ran (or runs) the latest attempt.
    pub assigned_host_id: Option<String>,
    pub cancel_requested: bool,
    pub outcome: Option<JobOutcome>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<skyclaw_log_format::event::Hash32>,
}
