//! Cluster membership: who the members are, and changing them.
//!
//! Joining: the leader asks the joiner's URL who it is, and takes it only
//! if the answer is the name and raft id the request gave. It adds the node
//! as a learner, waits until it holds the whole log, then makes it a voter,
//! in place of a member of the same name only if that member's own URL now
//! answers as the joiner (an earlier incarnation whose disk was lost). A
//! join never evicts a member that still answers as itself, and removing
//! the last voter is refused: either would leave a cluster that cannot
//! write.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::metrics::WaitError;
use openraft::{ChangeMembers, ServerState};
use skyclaw_api::routes;
use skyclaw_api::{ClusterHello, JoinRequest, LogHead};
use skyclaw_log_format::Hash32;

use crate::access::peer_header;
use crate::coordinator::Coordinator;
use crate::proposer::WriteError;
use crate::raft::{Member, NodeId};

impl Coordinator {
    pub async fn hello(&self) -> ClusterHello {
        ClusterHello {
            name: self.me.name.clone(),
            url: self.me.url.clone(),
            raft_id: self.id,
            initialized: self.raft.is_initialized().await.unwrap_or(false),
            cluster_id: self.cluster_id(),
            log_key: self.me.log_key.map(|key| key.to_hex()),
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
        if let Some((header, value)) = peer_header(&self.config) {
            request = request.header(header, value);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Asks the coordinator at `url` who it is.
    pub async fn hello_of(&self, url: &str) -> Option<ClusterHello> {
        self.get_json(url, routes::HELLO.path).await
    }

    fn cluster_id(&self) -> Option<String> {
        self.read(|m| m.state.cluster_id().map(str::to_string))
    }

    /// Makes the node at `join.url` a voter, once it proved to be the node
    /// the request names and caught up with the log; an earlier incarnation
    /// of it (one whose URL now answers as the joiner) is replaced. Leader
    /// only. A request for a node that already votes changes nothing.
    pub async fn admit(&self, join: &JoinRequest) -> Result<(), MembershipError> {
        let hello = self.prove(&join.url, &join.name).await?;
        if hello.raft_id != join.raft_id {
            return Err(MembershipError::Invalid(format!(
                "the coordinator at {} is member {}, not {}",
                join.url, hello.raft_id, join.raft_id
            )));
        }
        if let (Some(theirs), Some(ours)) = (&hello.cluster_id, self.cluster_id()) {
            if *theirs != ours {
                return Err(MembershipError::Refused(format!(
                    "the coordinator at {} belongs to another cluster ({theirs})",
                    join.url
                )));
            }
        }
        let members = self.members();
        if members
            .iter()
            .any(|(id, _, voter)| *id == join.raft_id && *voter)
        {
            return Ok(());
        }
        let replaced = self.earlier_incarnations(join, &members).await?;
        let member = Member {
            name: join.name.clone(),
            url: join.url.clone(),
            log_key: hello.log_key.as_deref().and_then(Hash32::from_hex),
        };
        self.raft
            .add_learner(join.raft_id, member, false)
            .await
            .map_err(raft_write_error)?;
        if let Err(e) = self.wait_caught_up(join).await {
            // A learner that cannot keep up is not kept either: the leader
            // would replicate to it for ever, and each rogue join would add one.
            let learner = BTreeSet::from([join.raft_id]);
            if let Err(removing) = self
                .raft
                .change_membership(ChangeMembers::RemoveNodes(learner), false)
                .await
            {
                tracing::warn!("removing the learner {}: {removing}", join.name);
            }
            return Err(e);
        }
        let mut next: BTreeSet<NodeId> = self
            .members()
            .into_iter()
            .filter(|(id, _, voter)| *voter && !replaced.contains(id))
            .map(|(id, _, _)| id)
            .collect();
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

    /// Asks `url` who it is, and requires the answer to be `name`.
    pub async fn prove(&self, url: &str, name: &str) -> Result<ClusterHello, MembershipError> {
        let hello = self
            .hello_of(url)
            .await
            .ok_or_else(|| MembershipError::Invalid(format!("no coordinator answered at {url}")))?;
        if hello.name != name {
            return Err(MembershipError::Invalid(format!(
                "the coordinator at {url} is named {:?}, not {name:?}",
                hello.name
            )));
        }
        Ok(hello)
    }

    /// The members the joiner replaces: those of its name whose URL now
    /// answers as the joiner (a node that lost its disk and came back).
    /// A member of that name that still answers as itself, or not at all,
    /// is live or may be: the join is refused rather than evict it.
    async fn earlier_incarnations(
        &self,
        join: &JoinRequest,
        members: &[(NodeId, Member, bool)],
    ) -> Result<BTreeSet<NodeId>, MembershipError> {
        let mut replaced = BTreeSet::new();
        for (id, member, _) in members {
            if member.name != join.name || *id == join.raft_id {
                continue;
            }
            let now = self.hello_of(&member.url).await;
            if !now.is_some_and(|h| h.name == join.name && h.raft_id == join.raft_id) {
                return Err(MembershipError::Refused(format!(
                    "a member named {:?} (member {id} at {}) does not answer as the joiner; \
                     remove it first if it is gone",
                    join.name, member.url
                )));
            }
            replaced.insert(*id);
        }
        Ok(replaced)
    }

    /// Waits until the learner holds every entry the leader had once it was
    /// added. openraft's own wait (`add_learner` blocking) returns at once
    /// while the log is shorter than its lag threshold, reachable or not.
    async fn wait_caught_up(&self, join: &JoinRequest) -> Result<(), MembershipError> {
        let target = self.raft.metrics().borrow().last_log_index;
        let limit = Duration::from_millis(self.config.catch_up_ms);
        let caught_up = self
            .raft
            .wait(Some(limit))
            .metrics(
                |m| {
                    m.state != ServerState::Leader
                        || m.replication
                            .as_ref()
                            .and_then(|r| r.get(&join.raft_id).cloned().flatten())
                            .is_some_and(|matched| Some(matched.index) >= target)
                },
                "the new learner to catch up",
            )
            .await;
        match caught_up {
            Ok(m) if m.state == ServerState::Leader => Ok(()),
            Ok(_) => Err(MembershipError::Write(WriteError::NotLeader {
                leader: self.leader(),
            })),
            Err(WaitError::Timeout(..)) => {
                Err(MembershipError::Write(WriteError::Unavailable(format!(
                    "{} at {} did not catch up with the log within {limit:?}, so it was not \
                     made a member; check that the members can reach it at that URL",
                    join.name, join.url
                ))))
            }
            Err(WaitError::ShuttingDown) => Err(MembershipError::Write(WriteError::Unavailable(
                "the coordinator is shutting down".into(),
            ))),
        }
    }

    /// Makes the coordinator serving at `url`, which must answer as `name`,
    /// a voter (see [`Coordinator::admit`]).
    pub async fn add_member(&self, url: &str, name: &str) -> Result<(), MembershipError> {
        let hello = self.prove(url, name).await?;
        self.admit(&JoinRequest {
            name: hello.name,
            url: url.to_string(),
            raft_id: hello.raft_id,
        })
        .await
    }

    /// Removes every incarnation named `name` from the cluster. Leader only.
    pub async fn remove(&self, name: &str) -> Result<(), MembershipError> {
        let members = self.members();
        let removed: BTreeSet<NodeId> = members
            .iter()
            .filter(|(_, member, _)| member.name == name)
            .map(|(id, _, _)| *id)
            .collect();
        if removed.is_empty() {
            return Err(MembershipError::Unknown(format!(
                "no member is named {name:?}"
            )));
        }
        let voters: BTreeSet<NodeId> = members
            .iter()
            .filter(|(id, _, voter)| *voter && !removed.contains(id))
            .map(|(id, _, _)| *id)
            .collect();
        if voters.is_empty() {
            return Err(MembershipError::Refused(format!(
                "{name:?} is the last voter: a cluster without voters could never \
                 write again; add another member first"
            )));
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
        Ok(())
    }

    /// Every member with its log head and lag behind this node, as each
    /// answers now. Every other member is asked at once: one slow or dead
    /// member costs one timeout, not one each.
    pub async fn member_heads(&self) -> Vec<MemberHead> {
        let own = self.head();
        let asked = self.members().into_iter().map(|(raft_id, member, voter)| {
            let own = own.clone();
            async move {
                let head = if raft_id == self.id {
                    Some(own.clone())
                } else {
                    self.get_json::<LogHead>(&member.url, routes::LOG_HEAD.path)
                        .await
                };
                MemberHead {
                    lag: head.as_ref().map(|h| own.seq.saturating_sub(h.seq)),
                    head_seq: head.map(|h| h.seq),
                    raft_id,
                    member,
                    voter,
                }
            }
        });
        futures::future::join_all(asked).await
    }
}

/// Why a membership change did not happen.
#[derive(Clone, Debug)]
pub enum MembershipError {
    /// The request does not hold: its URL does not answer as the node it
    /// names.
    Invalid(String),
    /// The change would harm the cluster (evict a live member, leave no
    /// voter, take in another cluster's node); asking again will not help.
    Refused(String),
    /// No member has the name given.
    Unknown(String),
    /// Raft could not make the change now; asking again may.
    Write(WriteError),
}

/// One member as `GET /v1/cluster` shows it.
pub struct MemberHead {
    pub raft_id: NodeId,
    pub member: Member,
    pub voter: bool,
    /// Its log head, if it answered.
    pub head_seq: Option<u64>,
    /// How many records it is behind this node, if it answered.
    pub lag: Option<u64>,
}

impl From<WriteError> for MembershipError {
    fn from(error: WriteError) -> MembershipError {
        MembershipError::Write(error)
    }
}

fn raft_write_error<E>(e: openraft::error::RaftError<NodeId, E>) -> MembershipError
where
    E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<NodeId, Member>>,
{
    let error = match e.forward_to_leader() {
        Some(forward) => WriteError::NotLeader {
            leader: forward.leader_node.clone(),
        },
        None => WriteError::Unavailable(e.to_string()),
    };
    MembershipError::Write(error)
}
