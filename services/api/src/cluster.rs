//! The cluster routes' bodies: who a coordinator is, members and
//! membership changes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// The public half of the node's log key, which signs checkpoints
    /// (64 hex digits); the leader records it with the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
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
