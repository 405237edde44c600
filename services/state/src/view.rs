//! The records the state keeps for hosts and jobs. They are also what the
//! coordinator persists as views and what the digest covers, so their
//! encoding is part of what replicas must agree on.

use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::{BlobRef, Hash32, KeyGrant, Payload};

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
    /// The host's ed25519 public key; `None` for a host without one (the
    /// MVP's), which whoever holds the shared token speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Hash32>,
    /// The challenge time of its last registration (keyed hosts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub challenge_at: u64,
    /// It registered as signing a receipt of every run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signs_receipts: bool,
    // Views of hosts without keys encode as they did before keys existed.
    #[serde(default, skip_serializing_if = "HostAccess::is_active")]
    pub access: HostAccess,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Whether a host may work. A keyed host starts `Pending` until an admin
/// approves it or it enrolls with a key; a host without a key is `Active`
/// from the start, as in the MVP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostAccess {
    Pending,
    #[default]
    Active,
    Revoked,
}

impl HostAccess {
    fn is_active(&self) -> bool {
        *self == HostAccess::Active
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HostAccess::Pending => "pending",
            HostAccess::Active => "active",
            HostAccess::Revoked => "revoked",
        }
    }
}

/// An API key as the state keeps it: its grant, and whether it was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub grant: KeyGrant,
    pub issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl KeyView {
    /// Whether the key is honoured at time `at`: not revoked, not expired,
    /// and (an enrollment key) not used up.
    pub fn is_live(&self, at: u64) -> bool {
        self.revoked_at.is_none()
            && self.grant.expires_at.is_none_or(|expires| at < expires)
            && self.grant.uses != Some(0)
    }
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
    pub request_hash: Option<Hash32>,
    /// The enqueuer's account, if an enqueuer's key enqueued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}
