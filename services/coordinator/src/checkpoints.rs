//! Signed checkpoints. Once the log grew, the leader has its tree head
//! signed every `checkpoint_ms` (sooner after `checkpoint_every` records):
//! it signs with its own log key and asks every other voter to sign the
//! head of the same size *as that voter's own log computes it*
//! (`POST /v1/log/cosign`). A signature over another root does not verify
//! against the leader's text, so a note with a majority of the voters'
//! signatures is one history a majority holds. The note is kept (in memory
//! and in `meta`) and handed to the voters with the next request.

use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skyclaw_api::routes;
use skyclaw_api::{CosignRequest, CosignResponse};
use skyclaw_layout::meta::CHECKPOINT;
use skyclaw_log_format::checkpoint::{self, TreeHead};
use skyclaw_log_format::Hash32;
use skyclaw_state::Rejection;

use crate::access::peer_header;
use crate::coordinator::Coordinator;
use crate::failure::Failure;
use crate::merkle::{self, StoredHashes};
use crate::raft::Member;
use crate::store::{self, META};
use crate::Result;

/// How often the leader looks whether a checkpoint is due.
const TICK: Duration = Duration::from_millis(25);
/// How long a voter waits to apply up to the size it is asked to sign.
const CATCH_UP: Duration = Duration::from_secs(2);
/// How long the leader waits for a voter's signature.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);

/// A checkpoint a majority of the voters signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub size: u64,
    pub root: Hash32,
    /// The note: the checkpoint's text and its signature lines.
    pub note: String,
}

/// The latest signed checkpoint this node knows.
pub struct Checkpoints {
    latest: Mutex<Option<Signed>>,
}

impl Checkpoints {
    pub fn load(db: &rocksdb::DB) -> Result<Checkpoints> {
        Ok(Checkpoints {
            latest: Mutex::new(store::get(db, META, CHECKPOINT)?),
        })
    }

    pub fn latest(&self) -> Option<Signed> {
        self.latest.lock().expect("checkpoint lock").clone()
    }

    /// Keeps `signed` if it is larger than the one kept.
    fn keep(&self, db: &rocksdb::DB, signed: Signed) {
        let mut latest = self.latest.lock().expect("checkpoint lock");
        if latest.as_ref().is_some_and(|l| l.size >= signed.size) {
            return;
        }
        // Not synced: a checkpoint lost to a crash is signed again.
        if let Err(e) = db.put_cf(store::cf(db, META), CHECKPOINT, store::encode(&signed)) {
            tracing::warn!("keeping checkpoint {}: {e}", signed.size);
        }
        *latest = Some(signed);
    }
}

impl Coordinator {
    /// The head of the tree over the first `size` records, as this node's
    /// own log has it.
    pub async fn tree_head(&self, size: u64) -> std::result::Result<TreeHead, Failure> {
        let (head, root, anchor) = self.read(|m| (m.head, m.tree.root(), m.anchor));
        if size == 0 || size > head.seq {
            return Err(Failure::Refused(Rejection::Conflict(format!(
                "this node holds {} records, not {size}",
                head.seq
            ))));
        }
        if size == head.seq {
            return Ok(TreeHead {
                size,
                root,
                chain: head.hash,
            });
        }
        if let Some(anchor) = anchor.filter(|anchor| size < anchor.seq) {
            return Err(Failure::Gone(format!(
                "this node's log starts after seq {} (restored from a snapshot)",
                anchor.seq
            )));
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let root =
                tlog_tiles::tree_hash(size, &StoredHashes(&db)).map_err(merkle::proof_failure)?;
            let chain = merkle::chain_hash(&db, size)?;
            Ok(TreeHead {
                size,
                root: Hash32(root.0),
                chain,
            })
        })
        .await
        .expect("reading the tree does not panic")
    }

    /// The cluster id, once the first event applied.
    pub fn cluster(&self) -> Option<String> {
        self.read(|m| m.state.cluster_id().map(str::to_string))
    }

    /// The voters' verifier keys (C2SP vkeys), for cluster `cluster_id`.
    pub fn voter_vkeys(&self, cluster_id: &str) -> Vec<String> {
        self.members()
            .into_iter()
            .filter(|(_, _, voter)| *voter)
            .filter_map(|(_, member, _)| checkpoint::vkey(cluster_id, &member.log_key?))
            .collect()
    }

    /// Signs the head of the first `size` records as this node computes
    /// it, once it applied that far (a voter asked by the leader), and
    /// keeps `latest` if the voters signed it.
    pub async fn cosign(
        &self,
        request: CosignRequest,
    ) -> std::result::Result<CosignResponse, Failure> {
        let cluster_id = self
            .cluster()
            .ok_or_else(|| Failure::Unavailable("the cluster is not initialized yet".into()))?;
        if let Some(note) = request.latest {
            self.accept_checkpoint(&cluster_id, note);
        }
        let deadline = Instant::now() + CATCH_UP;
        while self.read(|m| m.head.seq) < request.size && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let head = self.tree_head(request.size).await?;
        let signature = self.log_key(&cluster_id).sign(&head.text(&cluster_id));
        Ok(CosignResponse { signature })
    }

    /// Keeps a checkpoint another member gathered, if a majority of the
    /// voters signed it.
    fn accept_checkpoint(&self, cluster_id: &str, note: String) {
        match checkpoint::verify(note.as_bytes(), cluster_id, &self.voter_vkeys(cluster_id)) {
            Ok(head) => self.checkpoints.keep(
                &self.db,
                Signed {
                    size: head.size,
                    root: head.root,
                    note,
                },
            ),
            Err(e) => tracing::warn!("refusing a checkpoint from the leader: {e}"),
        }
    }

    /// Has the head of the first `size` records signed by a majority of
    /// the voters, and keeps it. Leader only.
    async fn checkpoint(&self, size: u64) -> std::result::Result<Signed, String> {
        let cluster_id = self.cluster().ok_or("the cluster is not initialized")?;
        let head = self.tree_head(size).await.map_err(|e| e.to_string())?;
        let text = head.text(&cluster_id);
        let voters: Vec<Member> = self
            .members()
            .into_iter()
            .filter(|(_, _, voter)| *voter)
            .map(|(_, member, _)| member)
            .collect();
        let latest = self.checkpoints.latest().map(|signed| signed.note);
        let asks = voters
            .iter()
            .filter(|member| member.name != self.me.name)
            .map(|member| self.ask_to_sign(member, size, latest.clone()));
        let mut signatures = vec![self.log_key(&cluster_id).sign(&text)];
        for (member, answer) in voters
            .iter()
            .filter(|member| member.name != self.me.name)
            .zip(futures::future::join_all(asks).await)
        {
            let Some(vkey) = member
                .log_key
                .and_then(|k| checkpoint::vkey(&cluster_id, &k))
            else {
                continue;
            };
            match answer {
                Ok(line) if checkpoint::signs(&vkey, &text, &line) => signatures.push(line),
                Ok(_) => tracing::warn!(
                    "{} signed another tree head of size {size} than this node's: its log differs",
                    member.name
                ),
                Err(e) => tracing::debug!("{} did not cosign checkpoint {size}: {e}", member.name),
            }
        }
        let needed = checkpoint::majority(voters.len());
        if signatures.len() < needed {
            return Err(format!(
                "{} of {} voters signed checkpoint {size}; {needed} are needed",
                signatures.len(),
                voters.len()
            ));
        }
        let note = checkpoint::note(&text, &signatures).map_err(|e| e.to_string())?;
        // Kept only as anyone will check it: this node's own signature
        // counts only if its key is a voter's on record.
        checkpoint::verify(&note, &cluster_id, &self.voter_vkeys(&cluster_id))
            .map_err(|e| format!("checkpoint {size} does not verify: {e}"))?;
        let signed = Signed {
            size,
            root: head.root,
            note: String::from_utf8(note).expect("notes are UTF-8"),
        };
        self.checkpoints.keep(&self.db, signed.clone());
        Ok(signed)
    }

    /// Records the log key of every member admitted before log keys
    /// existed (its hello names it), so that it can cosign: without them,
    /// a cluster upgraded in place could never gather a majority. The
    /// member keeps its URL, so the change moves no one. Leader only.
    async fn record_log_keys(&self) {
        let mut updated = std::collections::BTreeMap::new();
        for (id, member, _) in self.members() {
            if member.log_key.is_some() {
                continue;
            }
            let key = if id == self.id {
                self.me.log_key
            } else {
                self.hello_of(&member.url)
                    .await
                    .filter(|hello| hello.raft_id == id && hello.name == member.name)
                    .and_then(|hello| hello.log_key.as_deref().and_then(Hash32::from_hex))
            };
            if let Some(key) = key {
                updated.insert(
                    id,
                    Member {
                        log_key: Some(key),
                        ..member
                    },
                );
            }
        }
        if updated.is_empty() {
            return;
        }
        let change = openraft::ChangeMembers::SetNodes(updated);
        if let Err(e) = self.raft.change_membership(change, false).await {
            tracing::warn!("recording the members' log keys: {e}");
        }
    }

    async fn ask_to_sign(
        &self,
        member: &Member,
        size: u64,
        latest: Option<String>,
    ) -> std::result::Result<String, String> {
        let url = format!(
            "{}{}",
            member.url.trim_end_matches('/'),
            routes::COSIGN.path
        );
        let mut request = self
            .peers
            .post(url)
            .timeout(COSIGN_TIMEOUT)
            .json(&CosignRequest { size, latest });
        if let Some((header, value)) = peer_header(&self.config) {
            request = request.header(header, value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{}", response.status()));
        }
        let answer: CosignResponse = response.json().await.map_err(|e| e.to_string())?;
        Ok(answer.signature)
    }
}

/// Makes checkpoints while this node leads; see the module documentation.
/// Holds the coordinator only while it works, so a stopped one is dropped.
pub async fn run(coordinator: Weak<Coordinator>) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let Some(coordinator) = coordinator.upgrade() else {
            return;
        };
        if coordinator.raft.is_initialized().await.is_err() {
            return; // raft stopped
        }
        let period = Duration::from_millis(coordinator.config.checkpoint_ms);
        if !coordinator.is_leader() {
            continue;
        }
        let size = coordinator.read(|m| m.head.seq);
        let signed = coordinator.checkpoints.latest().map_or(0, |s| s.size);
        let grown = size.saturating_sub(signed);
        if grown == 0 || (grown < coordinator.config.checkpoint_every && last.elapsed() < period) {
            continue;
        }
        last = Instant::now();
        if coordinator
            .members()
            .iter()
            .any(|(_, member, _)| member.log_key.is_none())
        {
            coordinator.record_log_keys().await;
        }
        if let Err(e) = coordinator.checkpoint(size).await {
            tracing::warn!("{e}");
        }
    }
}
