//! Snapshots: what one holds, building it from the views (with the blobs
//! they name), and installing one in place of everything applied.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::time::Instant;

use openraft::storage::Snapshot;
use openraft::{RaftSnapshotBuilder, StorageIOError};
use rocksdb::{WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use skyclaw_layout::meta::{
    ANCHOR, APPLIED, CLUSTER_ID, HEAD, LAST_AT, LAST_STAMP, MEMBERSHIP, RETIREMENT, SNAPSHOT,
};
use skyclaw_log_format::event::Hash32;
use skyclaw_log_format::{ChainHead, Tree};
use skyclaw_state::state::encode_view;
use skyclaw_state::state::Retirement;
use skyclaw_state::{HostView, JobView, KeyView, LogClock, State};

use crate::lease_timers::LeaseTimers;
use crate::machine::StateMachine;
use crate::materialized::Materialized;
use crate::raft::{SnapshotMeta, StorageError, TypeConfig};
use crate::store::{self, cf, BLOBS, COMPLETIONS, EVENTS, META, TREE, VIEWS};

/// A snapshot's content: every view plus the blobs they reference and the
/// chain head they correspond to.
// Format: MessagePack map { clusterId, lastAt, lastStamp?, head, hosts, keys?, jobs, blobs,
//         tree?, retirement? }
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotData {
    cluster_id: Option<String>,
    last_at: u64,
    /// Absent in snapshots made before the log's clock kept its stamp.
    #[serde(default)]
    last_stamp: Option<u64>,
    head: ChainHead,
    hosts: Vec<HostView>,
    /// Absent in snapshots made before API keys existed.
    #[serde(default)]
    keys: Vec<KeyView>,
    jobs: Vec<JobView>,
    blobs: Vec<(Hash32, Vec<u8>)>,
    /// The Merkle tree's edge at `head`. Absent in snapshots made before
    /// the tree was kept, which cannot be installed.
    #[serde(default)]
    tree: Option<Tree>,
    /// What retirement took out of the state. Absent in snapshots made
    /// before retirement, which took nothing.
    #[serde(default)]
    retirement: Option<Retirement>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

// The two run for `RaftStateMachine`'s methods, which answer openraft's own
// (large) error type.
#[allow(clippy::result_large_err)]
impl StateMachine {
    /// Replaces views and meta with the snapshot's in one synced batch and
    /// anchors this node's event log at the snapshot's head.
    pub(crate) fn install(&self, meta: &SnapshotMeta, bytes: Vec<u8>) -> Result<(), StorageError> {
        let data: SnapshotData = store::decode(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let tree = data
            .tree
            .clone()
            .filter(|tree| tree.size() == data.head.seq && tree.check().is_ok())
            .ok_or_else(|| {
                let e = std::io::Error::other(format!(
                    "the snapshot carries no Merkle tree edge for its {} records",
                    data.head.seq
                ));
                StorageIOError::read_snapshot(Some(meta.signature()), &e)
            })?;
        let db = &*self.db;
        let mut batch = WriteBatch::default();
        let everything = (vec![0u8], vec![0xffu8; 9]);
        for family in [VIEWS, EVENTS, TREE, COMPLETIONS] {
            batch.delete_range_cf(cf(db, family), &everything.0, &everything.1);
        }
        for (index, hash) in tree.edge() {
            batch.put_cf(cf(db, TREE), store::u64_key(*index), hash.0);
        }
        for host in &data.hosts {
            batch.put_cf(cf(db, VIEWS), store::host_key(&host.id), encode_view(host));
        }
        for key in &data.keys {
            batch.put_cf(
                cf(db, VIEWS),
                store::key_key(&key.grant.key_id),
                encode_view(key),
            );
        }
        for job in &data.jobs {
            batch.put_cf(cf(db, VIEWS), store::job_key(&job.id), encode_view(job));
        }
        for (hash, content) in &data.blobs {
            batch.put_cf(cf(db, BLOBS), hash.0, content);
        }
        let membership = meta.last_membership.clone();
        let meta_cf = cf(db, META);
        batch.put_cf(meta_cf, APPLIED, store::encode(&meta.last_log_id));
        batch.put_cf(meta_cf, MEMBERSHIP, store::encode(&membership));
        batch.put_cf(meta_cf, HEAD, store::encode(&data.head));
        batch.put_cf(meta_cf, ANCHOR, store::encode(&data.head));
        let clock = LogClock {
            stamp: data.last_stamp.unwrap_or(data.last_at),
            ..LogClock::resumed(data.last_at)
        };
        batch.put_cf(meta_cf, LAST_AT, store::encode(&clock.at));
        batch.put_cf(meta_cf, LAST_STAMP, store::encode(&clock.stamp));
        let retirement = data.retirement.unwrap_or_default();
        batch.put_cf(meta_cf, RETIREMENT, store::encode(&retirement));
        if let Some(cluster_id) = &data.cluster_id {
            batch.put_cf(meta_cf, CLUSTER_ID, store::encode(cluster_id));
        }
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes.clone(),
        };
        batch.put_cf(meta_cf, SNAPSHOT, store::encode(&stored));
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.write_opt(batch, &options)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;

        let mut m = self.shared.write().expect("state lock");
        let mut state = State::from_views(data.cluster_id, clock, data.hosts, data.keys, data.jobs);
        state.resume_retirement(retirement);
        *m = Materialized {
            lease_timers: LeaseTimers::start(&state, Instant::now()),
            state,
            applied: meta.last_log_id,
            membership,
            head: data.head,
            anchor: Some(data.head),
            tree,
        };
        drop(m);
        self.metrics.snapshot_installs.increment(1);
        self.work.notify_waiters();
        Ok(())
    }

    /// The last snapshot built or installed, as stored.
    pub(crate) fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored: Option<StoredSnapshot> = store::get(&self.db, META, SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        let (meta, mut data) = {
            let m = self.shared.read().expect("state lock");
            let hosts: Vec<HostView> = m.state.hosts().cloned().collect();
            let keys: Vec<KeyView> = m.state.keys().cloned().collect();
            let jobs: Vec<JobView> = m.state.jobs_after(None).cloned().collect();
            let snapshot_id = match m.applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, m.head.seq),
                None => format!("empty-{}", m.head.seq),
            };
            let meta = SnapshotMeta {
                last_log_id: m.applied,
                last_membership: m.membership.clone(),
                snapshot_id,
            };
            let data = SnapshotData {
                cluster_id: m.state.cluster_id().map(str::to_string),
                last_at: m.state.last_at(),
                last_stamp: Some(m.state.log_clock().stamp),
                head: m.head,
                hosts,
                keys,
                jobs,
                blobs: Vec::new(),
                tree: Some(m.tree.clone()),
                retirement: Some(m.state.retirement()),
            };
            (meta, data)
        };
        // Blobs are immutable and content-addressed, so reading them after
        // the lock is released still gives what the views reference.
        let blobs = cf(&self.db, BLOBS);
        let mut wanted = BTreeSet::new();
        for job in &data.jobs {
            if let Some(outcome) = &job.outcome {
                wanted.insert(outcome.stdout.hash);
                wanted.insert(outcome.stderr.hash);
            }
        }
        for hash in wanted {
            let content = self
                .db
                .get_cf(blobs, hash.0)
                .map_err(|e| StorageIOError::read_snapshot(None, &e))?
                .ok_or_else(|| Self::write_error(format!("blob {hash} is missing")))?;
            data.blobs.push((hash, content));
        }
        let bytes = store::encode(&data);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes.clone(),
        };
        let mut options = WriteOptions::default();
        options.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, META), SNAPSHOT, store::encode(&stored));
        self.db
            .write_opt(batch, &options)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.metrics.snapshot_builds.increment(1);
        self.metrics
            .snapshot_build_seconds
            .record(started.elapsed().as_secs_f64());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}
