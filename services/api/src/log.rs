//! The bodies of the routes that read the record: status, the log's head
//! and events, the state's digest, the whole state.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Host, Job};

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
