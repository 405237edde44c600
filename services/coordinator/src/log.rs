//! What a coordinator answers about its record: the log's head, runs of
//! records, blobs (job output), the state's digest, and linearizable reads.
//! RocksDB reads run off the async threads.

use std::time::Duration;

use rocksdb::DB;
use skyclaw_api::{LogHead, StateDigest, Status};
use skyclaw_log_format::{Hash32, Record};

use crate::coordinator::Coordinator;
use crate::failure::Failure;
use crate::proposer::WriteError;
use crate::store::{self, BLOBS, EVENTS};

/// How long a linearizable read may wait to confirm leadership before the
/// caller is told to retry: openraft waits for the apply without a bound,
/// so without it a read on the minority side could hang.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A run of consecutive records of this node's log.
pub struct Records {
    pub cluster_id: String,
    /// The seq of the first record, or of the next one if the run is empty.
    pub first_seq: u64,
    /// The hash the run chains from.
    pub prev_hash: Hash32,
    pub records: Vec<Record>,
}

impl Coordinator {
    pub fn head(&self) -> LogHead {
        self.read(|m| LogHead {
            seq: m.head.seq,
            hash: m.head.hash.to_hex(),
            cluster_id: m.state.cluster_id().unwrap_or("").to_string(),
            node_id: self.me.name.clone(),
        })
    }

    pub fn digest(&self) -> StateDigest {
        let (seq, digest) = self.read(|m| (m.head.seq, m.state.digest()));
        StateDigest {
            seq,
            digest: digest.to_hex(),
        }
    }

    /// This node: who leads, its term, log head and queue depth.
    pub fn status(&self) -> Status {
        let (term, raft_index) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_term, metrics.last_log_index.unwrap_or(0))
        };
        let (queued, leased, hosts) = self.read(|m| {
            (
                m.state.queued_count() as u64,
                m.state.leased_count() as u64,
                m.state.hosts().count() as u64,
            )
        });
        Status {
            node_id: self.me.name.clone(),
            leader: self.leader().map(|leader| leader.name),
            term,
            head: self.head(),
            queued,
            leased,
            hosts,
            raft_index,
        }
    }

    /// Up to `limit` records from seq `from` on, as far as the head.
    pub async fn records(&self, from: u64, limit: u64) -> Result<Records, Failure> {
        let (cluster_id, head, anchor) =
            self.read(|m| (m.state.cluster_id().map(str::to_string), m.head, m.anchor));
        let Some(cluster_id) = cluster_id else {
            return Err(Failure::Unavailable(
                "the cluster is not initialized yet".into(),
            ));
        };
        if let Some(anchor) = anchor.filter(|anchor| from <= anchor.seq) {
            return Err(Failure::Gone(format!(
                "this node's log starts after seq {} (restored from a snapshot); ask from {}",
                anchor.seq,
                anchor.seq + 1
            )));
        }
        let last = head.seq.min(from.saturating_add(limit.saturating_sub(1)));
        let db = self.db.clone();
        let records = tokio::task::spawn_blocking(move || read_records(&db, from, last))
            .await
            .expect("reading records does not panic")?;
        Ok(Records {
            cluster_id,
            first_seq: records.first().map_or(head.seq + 1, |r| r.seq),
            prev_hash: records.first().map_or(head.hash, |r| r.prev_hash),
            records,
        })
    }

    /// Makes a read that follows linearizable: confirms with a quorum that
    /// this node leads and waits until everything committed is applied. A
    /// follower gets `Failure::Write(NotLeader)`: the read is the leader's.
    pub async fn confirm_leadership(&self) -> Result<(), Failure> {
        let confirmed = async {
            self.raft
                .ensure_linearizable()
                .await
                .map_err(|e| match e.forward_to_leader() {
                    Some(forward) => Failure::Write(WriteError::NotLeader {
                        leader: forward.leader_node.clone(),
                    }),
                    None => Failure::Unavailable(format!("cannot confirm leadership: {e}")),
                })
        };
        match tokio::time::timeout(READ_TIMEOUT, confirmed).await {
            Ok(confirmed) => confirmed.map(drop),
            Err(_) => Err(Failure::Unavailable(
                "timed out confirming leadership for a linearizable read; retry, or read with ?stale=true"
                    .into(),
            )),
        }
    }
}

/// The records `from..=last` of the events column family.
fn read_records(db: &DB, from: u64, last: u64) -> Result<Vec<Record>, Failure> {
    let mut records = Vec::new();
    if from > last {
        return Ok(records);
    }
    let start = store::u64_key(from);
    let iter = db.iterator_cf(
        store::cf(db, EVENTS),
        rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
    );
    for item in iter {
        let (key, bytes) =
            item.map_err(|e| Failure::Unavailable(format!("reading the log: {e}")))?;
        if store::u64_of_key(&key).is_none_or(|seq| seq > last) {
            break;
        }
        let record = Record::decode(&bytes)
            .map_err(|e| Failure::Internal(format!("corrupt record: {e}")))?;
        records.push(record);
    }
    Ok(records)
}

/// A blob's bytes as text (job output is UTF-8 as the host sent it). A
/// blob that cannot be read is logged and shown empty: the job's record
/// still holds its hash and size.
pub(crate) fn blob_text(db: &DB, hash: &Hash32) -> String {
    match db.get_cf(store::cf(db, BLOBS), hash.0) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => {
            tracing::error!("blob {hash} is missing");
            String::new()
        }
        Err(e) => {
            tracing::error!("reading blob {hash}: {e}");
            String::new()
        }
    }
}
