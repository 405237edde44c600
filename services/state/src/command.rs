//! Commands (what a request asks for), decisions (the events that follow and
//! what to answer with), and rejections (why nothing follows).

use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::{Event, JobSpec};

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
    Complete {
        job_id: String,
        host_id: String,
        /// `None` for MVP hosts, which know no epochs: the live lease is meant.
        lease_epoch: Option<u32>,
        success: bool,
        duration_ms: u64,
        exit_code: Option<i32>,
        stdout: String,
        stderr: String,
        error: Option<String>,
    },
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
}

/// What a command leads to: the events to append and what to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<Event>,
    pub outcome: Outcome,
}

/// The records a command's answer is built from, read after its events apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
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
}
