//! Cluster formation and membership.
//!
//! Bootstrap: a node with no raft state and configured peers asks each peer
//! who it is (`GET /v1/cluster/hello`). If any peer already belongs to a
//! cluster, the node asks to join it. If every peer answered and none
//! belongs to one, the node whose name sorts first initializes raft with all
//! of them; the others wait to hear from its leader. Since only one name
//! sorts first and all see the same set, two clusters cannot form from one
//! configuration. Once a cluster exists, its membership (in the raft log) is
//! the truth; the configured peer list only serves to find it.
//!
//! Joining: the leader adds the node as a learner, waits until it caught up,
//! then makes it a voter in place of any member with the same name (an
//! earlier incarnation whose disk was lost).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use skyclaw_api::routes::TOKEN_HEADER;
use skyclaw_api::{ClusterHello, JoinRequest};

use crate::node::{Coordinator, WriteError};
use crate::raft::{Member, NodeId};

/// Time between bootstrap rounds.
const RETRY: Duration = Duration::from_millis(500);

impl Coordinator {
    pub async fn hello(&self) -> ClusterHello {
        ClusterHello {
            name: self.me.name.clone(),
            url: self.me.url.clone(),
            raft_id: self.id,
            initialized: self.raft.is_initialized().await.unwrap_or(false),
        }
    }

    /// Whether this incarnation is a voter of the cluster it knows.
    pub fn is_voter(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == self.id)
    }

    pub fn members(&self) -> Vec<(NodeId, Member, bool)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, member)| (*id, member.clone(), voters.contains(id)))
            .collect()
    }

    /// GETs `path` from the coordinator at `url`; `None` if it does not answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        path: &str,
    ) -> Option<T> {
        let mut request = self
            .peers
            .get(format!("{}{path}", url.trim_end_matches('/')))
            .timeout(Duration::from_secs(2));
        if let Some(token) = &self.config.token {
            request = request.header(TOKEN_HEADER, token);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Asks the coordinator at `url` who it is.
    pub async fn hello_of(&self, url: &str) -> Option<ClusterHello> {
        self.get_json(url, "/v1/cluster/hello").await
    }

    /// Adds the node as a learner, waits for it to catch up, then makes it
    /// a voter in place of any member of the same name. Leader only.
    pub async fn admit(&self, join: &JoinRequest) -> Result<(), WriteError> {
        let voters: BTreeSet<NodeId> = self
            .members()
            .into_iter()
            .filter(|(_, _, voter)| *voter)
            .map(|(id, _, _)| id)
            .collect();
        if voters.contains(&join.raft_id) {
            return Ok(());
        }
        let member = Member {
            name: join.name.clone(),
            url: join.url.clone(),
        };
        self.raft
            .add_learner(join.raft_id, member, true)
            .await
            .map_err(raft_write_error)?;
        let replaced: BTreeSet<NodeId> = self
            .members()
            .into_iter()
            .filter(|(id, member, _)| member.name == join.name && *id != join.raft_id)
            .map(|(id, _, _)| id)
            .collect();
        let mut next: BTreeSet<NodeId> = voters.difference(&replaced).copied().collect();
        next.insert(join.raft_id);
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(next), false)
            .await
            .map_err(raft_write_error)?;
        if !replaced.is_empty() {
            tracing::info!("{} rejoined under a new incarnation", join.name);
        }
        Ok(())
    }

    /// Removes every incarnation named `name` from the cluster. Leader only.
    pub async fn remove(&self, name: &str) -> Result<bool, WriteError> {
        let members = self.members();
        let removed: BTreeSet<NodeId> = members
            .iter()
            .filter(|(_, member, _)| member.name == name)
            .map(|(id, _, _)| *id)
            .collect();
        if removed.is_empty() {
            return Ok(false);
        }
        let voters: BTreeSet<NodeId> = members
            .iter()
            .filter(|(id, _, voter)| *voter && !removed.contains(id))
            .map(|(id, _, _)| *id)
            .collect();
        if voters.is_empty() {
            return Err(WriteError::Unavailable(
                "refusing to remove the last voter".into(),
            ));
        }
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
            .await
            .map_err(raft_write_error)?;
        // Learners left behind (a removed node that was never promoted).
        let learners: BTreeSet<NodeId> = self
            .members()
            .into_iter()
            .filter(|(id, _, voter)| !*voter && removed.contains(id))
            .map(|(id, _, _)| id)
            .collect();
        if !learners.is_empty() {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(learners), false)
                .await
                .map_err(raft_write_error)?;
        }
        Ok(true)
    }
}

fn raft_write_error<E>(e: openraft::error::RaftError<NodeId, E>) -> WriteError
where
    E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<NodeId, Member>>,
{
    match e.forward_to_leader() {
        Some(forward) => WriteError::NotLeader {
            leader: forward.leader_node.clone(),
        },
        None => WriteError::Unavailable(e.to_string()),
    }
}

/// Forms or joins the cluster from the configured peers; see the module
/// documentation. Runs until this node is a voter.
pub async fn bootstrap(node: Arc<Coordinator>) {
    loop {
        if node.is_voter() {
            return;
        }
        // Raft answers an error only once it stopped: so does bootstrapping
        // (the loop would otherwise hold the node, and its database, forever).
        let Ok(initialized) = node.raft.is_initialized().await else {
            return;
        };
        let mut hellos = Vec::new();
        for url in &node.config.peer_urls {
            hellos.push((url.clone(), node.hello_of(url).await));
        }
        if let Some((url, _)) = hellos
            .iter()
            .find(|(_, hello)| hello.as_ref().is_some_and(|h| h.initialized))
        {
            join(&node, url).await;
        } else if !initialized && hellos.iter().all(|(_, hello)| hello.is_some()) {
            let hellos: Vec<ClusterHello> = hellos.into_iter().filter_map(|(_, h)| h).collect();
            let first = hellos.iter().all(|peer| node.me.name < peer.name);
            if hellos.iter().any(|peer| peer.name == node.me.name) {
                tracing::error!(
                    "a configured peer is also named {:?}; node names must differ",
                    node.me.name
                );
            } else if first {
                let mut members = BTreeMap::from([(node.id, node.me.clone())]);
                for peer in hellos {
                    members.insert(
                        peer.raft_id,
                        Member {
                            name: peer.name,
                            url: peer.url,
                        },
                    );
                }
                tracing::info!("initializing the cluster with {} members", members.len());
                if let Err(e) = node.raft.initialize(members).await {
                    tracing::warn!("initializing the cluster: {e}");
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Asks the cluster, through the member at `url`, to admit this node.
async fn join(node: &Coordinator, url: &str) {
    let request = JoinRequest {
        name: node.me.name.clone(),
        url: node.me.url.clone(),
        raft_id: node.id,
    };
    let mut call = node
        .peers
        .post(format!("{}/v1/cluster/join", url.trim_end_matches('/')))
        .timeout(Duration::from_secs(120))
        .json(&request);
    if let Some(token) = &node.config.token {
        call = call.header(TOKEN_HEADER, token);
    }
    match call.send().await {
        Ok(response) if response.status().is_success() => {
            tracing::info!("joined the cluster through {url}")
        }
        Ok(response) => tracing::warn!(
            "joining through {url}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ),
        Err(e) => tracing::warn!("joining through {url}: {e}"),
    }
}
