//! The openraft type configuration: what a log entry carries (a command
//! stamped with the leader's time) and what applying one answers.

use serde::{Deserialize, Serialize};
use skyclaw_log_format::Hash32;
use skyclaw_state::{Command, HostView, JobView, Rejection};

pub type NodeId = u64;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = Reply,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::snapshot::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;

/// A coordinator as raft knows it: its configured name, the URL its
/// peers, and requests forwarded to it, reach it at, and the public half
/// of its log key, which signs checkpoints (recorded in the raft log with
/// the membership that admits it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub url: String,
    /// Absent for members admitted before log keys existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<Hash32>,
}

/// One raft log entry's payload: commands stamped with the proposing
/// leader's clock. Several commands share an entry when requests arrive
/// together (group commit); each still gets its own reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub at: u64,
    pub commands: Vec<Command>,
    /// Whether `at` moves the log's clock by its difference from the last
    /// stamp (`State::tick`). Entries proposed before that rule carry
    /// `false` and keep the time they were first applied at,
    /// `max(at, last time)`, so a node that applies them again agrees with
    /// the nodes that applied them then.
    #[serde(default)]
    pub log_clock: bool,
}

/// What applying an entry answers, one result per command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub results: Vec<Result<Answer, Rejection>>,
}

/// The records a successful command's response is built from, as they
/// stood right after it applied.
// Built once per command and moved to its caller; the size difference
// between `Done` and a job record costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Done,
    Host(HostView),
    Job(JobView),
    Jobs(Vec<JobView>),
    Renewed {
        host: HostView,
        cancel: Vec<String>,
        lost: Vec<String>,
    },
}

/// Each command's answer has one shape; these take it out. An answer of
/// another shape is a fault of this node, never of the request.
impl Answer {
    /// What an enqueue or a claim answers: the jobs, in order.
    pub fn into_jobs(self) -> Result<Vec<JobView>, Unexpected> {
        match self {
            Answer::Jobs(jobs) => Ok(jobs),
            other => Err(Unexpected(Box::new(other))),
        }
    }

    /// What a completion or a cancellation answers: the job.
    pub fn into_job(self) -> Result<JobView, Unexpected> {
        match self {
            Answer::Job(job) => Ok(job),
            other => Err(Unexpected(Box::new(other))),
        }
    }

    /// What a registration answers: the host.
    pub fn into_host(self) -> Result<HostView, Unexpected> {
        match self {
            Answer::Host(host) => Ok(host),
            other => Err(Unexpected(Box::new(other))),
        }
    }

    /// What a renewal answers: the host, jobs to cancel, leases lost.
    pub fn into_renewed(self) -> Result<(HostView, Vec<String>, Vec<String>), Unexpected> {
        match self {
            Answer::Renewed { host, cancel, lost } => Ok((host, cancel, lost)),
            other => Err(Unexpected(Box::new(other))),
        }
    }
}

/// An answer of another shape than its command's: a fault of this node.
#[derive(Debug)]
pub struct Unexpected(pub Box<Answer>);

/// The raft node id for a configured node name: names are any string, raft
/// wants a number.
pub fn node_id_of(name: &str) -> NodeId {
    let hash = blake3::hash(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(bytes)
}

/// The bytes `value` takes in MessagePack as raft messages and the log
/// store write it; counted, not kept.
pub fn encoded_size<T: Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    rmp_serde::encode::write_named(&mut counter, value).expect("raft payloads encode");
    counter.0
}
