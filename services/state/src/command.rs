//! Commands (what a request asks for), decisions (the events that follow,
//! the blobs they name and what to answer with), and rejections (why nothing
//! follows).

use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::{BlobRef, Completion, Event, Hash32, JobSpec, KeyGrant};
use skyclaw_log_format::ReceiptSeal;

/// A request for a state change. The leader stamps each with the time it is
/// proposed; commands carry every id they need, so applying one never
/// generates anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster; the first command of every log. Later ones are ignored.
    CreateCluster {
        cluster_id: String,
    },
    RegisterHost {
        host_id: String,
        name: String,
        capabilities: Vec<String>,
        max_parallel: u32,
        /// The sandbox level the host reports, if it reports one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<String>,
        /// The key the host proved it holds (the coordinator checked its
        /// signature over a challenge issued at `challenge_at`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<HostKey>,
    },
    /// An admin lets a pending host work.
    ApproveHost {
        host_id: String,
    },
    /// An admin shuts a host out: its leases end, its requests are refused.
    RevokeHost {
        host_id: String,
    },
    IssueKey(KeyGrant),
    RevokeKey {
        key_id: String,
    },
    /// All of `jobs` are enqueued, or none is.
    Enqueue {
        jobs: Vec<JobSpec>,
    },
    /// Lease up to `max_jobs` matching queued jobs to the host. A claim
    /// with a `claim_key` that already took jobs which the host still
    /// holds answers with those again: a host whose answer was lost
    /// retries without burning an attempt.
    Claim {
        host_id: String,
        max_jobs: u32,
        lease_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim_key: Option<String>,
    },
    /// Extend the leases the host reports running that have passed half
    /// their life.
    Renew {
        host_id: String,
        running: Vec<(String, u32)>,
        lease_ms: u64,
    },
    /// A host reports that a job it holds ended.
    Complete(JobReport),
    Cancel {
        job_id: String,
    },
    /// Expire every lease whose time has come by the log's clock. No longer
    /// proposed: a stamp far ahead would expire every lease at once. Kept so
    /// that logs written before `Expire` replay as they were decided.
    ExpireLeases,
    /// Expire these leases (job id, epoch): the leader names those that ran
    /// out by its own monotonic clock. A lease renewed, ended or granted
    /// again since it was named, or not yet due by the log's clock either,
    /// is left alone.
    Expire {
        leases: Vec<(String, u32)>,
    },
    /// Retire jobs that ended more than `retention_ms` before the log's
    /// time: they leave the live state (see `Event::JobsRetired`). The
    /// leader proposes it; at most [`crate::state::MAX_RETIRED_PER_EVENT`]
    /// jobs go at a time, the oldest first.
    Retire {
        retention_ms: u64,
    },
}

/// A keyed host's registration: its key, the challenge it signed, and
/// how it is let in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    pub public_key: Hash32,
    pub challenge_at: u64,
    /// The enrollment key it presented, by id (the coordinator found it by
    /// the hash of the secret the host sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_key: Option<String>,
    /// Approved at once: an admin registered it, or the coordinator
    /// approves its own loopback host (`skyclaw dev`).
    #[serde(default)]
    pub approved: bool,
    /// It signs a receipt of every run (hosts from before receipts do
    /// not, and keep completing without).
    #[serde(default)]
    pub signs_receipts: bool,
}

/// What a host reports when a job ends: the command `Complete` carries it.
// Format: MessagePack map { job_id, host_id, lease_epoch, success, duration_ms,
//         exit_code, stdout, stderr, error, receipt? } (snake_case names, `None` as nil):
//         inside `Command` the bytes are those of the struct variant
//         `Complete { … }` it replaced, which raft logs on disk hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub job_id: String,
    pub host_id: String,
    /// `None` for MVP hosts, which know no epochs: the live lease is meant.
    pub lease_epoch: Option<u32>,
    pub success: bool,
    pub duration_ms: u64,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    /// What a host with a key signed about the run (`State::check_receipt`);
    /// absent in reports of hosts without one, and in older entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptSeal>,
}

impl JobReport {
    /// The completion this report makes under lease `lease_epoch`, its
    /// output already hashed into `stdout` and `stderr`.
    pub fn completion(&self, lease_epoch: u32, stdout: BlobRef, stderr: BlobRef) -> Completion {
        Completion {
            job_id: self.job_id.clone(),
            host_id: self.host_id.clone(),
            lease_epoch,
            success: self.success,
            duration_ms: self.duration_ms,
            exit_code: self.exit_code,
            stdout,
            stderr,
            error: self.error.clone(),
            receipt: self.receipt.clone().map(Box::new),
        }
    }
}

/// What a command leads to: the events to append, the content of the blobs
/// they name, and what to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<Event>,
    /// The content of every blob the events name ([`Event::blobs`]), hashed
    /// once, when the events were made.
    pub blobs: Vec<Blob>,
    pub affected: Affected,
}

impl Decision {
    /// A decision whose events name no blob.
    pub fn new(events: Vec<Event>, affected: Affected) -> Decision {
        Decision {
            events,
            blobs: Vec::new(),
            affected,
        }
    }

    /// The content of the blob `reference` names, if this decision made it.
    pub fn blob(&self, reference: &BlobRef) -> Option<&[u8]> {
        self.blobs
            .iter()
            .find(|blob| blob.reference == *reference)
            .map(|blob| blob.content.as_slice())
    }
}

/// Content for the blob store, with the reference events name it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub reference: BlobRef,
    pub content: Vec<u8>,
}

impl Blob {
    pub fn new(content: Vec<u8>) -> Blob {
        Blob {
            reference: BlobRef::of(&content),
            content,
        }
    }
}

/// The records a command's answer is built from (by id), read after its
/// events apply. Never encoded: it lives from `decide` to the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affected {
    Done,
    Host(String),
    Job(String),
    Jobs(Vec<String>),
    /// A heartbeat's answer: jobs to cancel, and reported jobs whose lease
    /// the host no longer holds.
    Renewed {
        host_id: String,
        cancel: Vec<String>,
        lost: Vec<String>,
    },
}

/// Why a command changes nothing. Each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// 400: the request itself is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// 404: an unknown id.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// 409: the lease named is not the live one.
    #[error("{0}")]
    StaleLease(String),
    /// 503: the cluster has not written its first event yet.
    #[error("the cluster is not initialized yet")]
    NotInitialized,
    /// 403: the caller may not do this (a host not approved, or revoked).
    #[error("{0}")]
    Forbidden(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Command` as it was before `Complete` carried a [`JobReport`]: raft
    /// logs on disk hold completions in this shape. The variants before
    /// `Complete` are kept, in order, so that a variant's index matches too.
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum OldCommand {
        CreateCluster,
        RegisterHost,
        Enqueue,
        Claim,
        Renew,
        Complete {
            job_id: String,
            host_id: String,
            lease_epoch: Option<u32>,
            success: bool,
            duration_ms: u64,
            exit_code: Option<i32>,
            stdout: String,
            stderr: String,
            error: Option<String>,
        },
    }

    fn old_shape(report: &JobReport) -> OldCommand {
        let report = report.clone();
        OldCommand::Complete {
            job_id: report.job_id,
            host_id: report.host_id,
            lease_epoch: report.lease_epoch,
            success: report.success,
            duration_ms: report.duration_ms,
            exit_code: report.exit_code,
            stdout: report.stdout,
            stderr: report.stderr,
            error: report.error,
        }
    }

    #[test]
    fn a_completion_encodes_as_the_struct_variant_it_replaced() {
        let reports = [
            JobReport {
                job_id: "job-1".into(),
                host_id: "host-1".into(),
                lease_epoch: Some(3),
                success: true,
                duration_ms: 1_234,
                exit_code: Some(0),
                stdout: "out\n".into(),
                stderr: String::new(),
                error: None,
                receipt: None,
            },
            JobReport {
                job_id: "job-2".into(),
                host_id: "host-2".into(),
                lease_epoch: None,
                success: false,
                duration_ms: 0,
                exit_code: None,
                stdout: String::new(),
                stderr: "boom".into(),
                error: Some("killed".into()),
                receipt: None,
            },
        ];
        for report in reports {
            let old = rmp_serde::to_vec_named(&old_shape(&report)).unwrap();
            let command = Command::Complete(report);
            assert_eq!(rmp_serde::to_vec_named(&command).unwrap(), old);
            let decoded: Command = rmp_serde::from_slice(&old).unwrap();
            assert_eq!(decoded, command);
        }
    }
}
