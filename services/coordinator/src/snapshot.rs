//! Snapshots: what one holds, building it from the stored views (with the
//! blobs they name) without holding the state, and installing one in
//! place of everything applied.

use std::collections::BTreeSet;
use std::io::{Cursor, Read, Write};
use std::time::Instant;

use openraft::storage::Snapshot;
use openraft::{RaftSnapshotBuilder, StorageIOError};
use rocksdb::{WriteBatch, WriteOptions, DB};
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
use crate::materialized::{Materialized, NO_HEAD};
use crate::raft::{LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
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

/// How stores from before the snapshot file kept the last snapshot, in
/// `meta`; read until a snapshot is kept in the file.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The file, in the data directory, that holds the last snapshot built or
/// installed.
// Format: meta length: u32 BE ‖ SnapshotMeta (MessagePack) ‖ SnapshotData bytes
const SNAPSHOT_FILE: &str = "raft-snapshot";

/// Keeps `bytes` as the current snapshot, unless the one kept is as new.
/// Written whole to a temporary file, synced, and renamed over the last,
/// so a crash leaves one or the other; a snapshot as large as the live
/// state never passes through RocksDB's write path, where it would hold up
/// every write behind it. The caller holds `StateMachine::keeping`.
fn keep(db: &DB, meta: &SnapshotMeta, bytes: &[u8]) -> std::io::Result<()> {
    if let Some((kept, _)) = kept_meta(db)? {
        if kept.last_log_id >= meta.last_log_id {
            return Ok(());
        }
    }
    let path = db.path().join(SNAPSHOT_FILE);
    let partial = path.with_extension("partial");
    let head = store::encode(meta);
    let length = u32::try_from(head.len()).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(&length.to_be_bytes())?;
    file.write_all(&head)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, &path)?;
    std::fs::File::open(db.path())?.sync_all()?;
    // A store from before the file kept its snapshot in `meta`.
    db.delete_cf(cf(db, META), SNAPSHOT)
        .map_err(std::io::Error::other)
}

/// Drops the kept snapshot file, durably: done before an install moves
/// the state past it, so a crash in between leaves no snapshot (openraft
/// builds one at start-up) rather than one behind the purged log.
fn forget_kept(db: &DB) -> std::io::Result<()> {
    match std::fs::remove_file(db.path().join(SNAPSHOT_FILE)) {
        Ok(()) => std::fs::File::open(db.path())?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The meta of the snapshot [`keep`] kept last, and the open file after it.
fn kept_meta(db: &DB) -> std::io::Result<Option<(SnapshotMeta, std::fs::File)>> {
    let mut file = match std::fs::File::open(db.path().join(SNAPSHOT_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut length = [0u8; 4];
    file.read_exact(&mut length)?;
    let mut head = vec![0u8; u32::from_be_bytes(length) as usize];
    file.read_exact(&mut head)?;
    let meta =
        store::decode(&head).map_err(|e| std::io::Error::other(format!("{SNAPSHOT_FILE}: {e}")))?;
    Ok(Some((meta, file)))
}

/// The snapshot [`keep`] kept last, if any.
fn kept(db: &DB) -> std::io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let Some((meta, mut file)) = kept_meta(db)? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(Some((meta, data)))
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
        let keeping = self.keeping.lock().expect("snapshot file lock");
        forget_kept(db).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf(db, META), SNAPSHOT);
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
        // Kept once installed; a crash before leaves none (see
        // `forget_kept`), and so, after a restart, does a failure here.
        keep(db, meta, &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        drop(keeping);
        self.metrics.snapshot_installs.increment(1);
        self.work.notify_waiters();
        Ok(())
    }

    /// The last snapshot built or installed, as kept.
    pub(crate) fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let kept = match kept(&self.db).map_err(|e| StorageIOError::read_snapshot(None, &e))? {
            Some(kept) => Some(kept),
            None => store::get::<StoredSnapshot>(&self.db, META, SNAPSHOT)
                .map_err(|e| StorageIOError::read_snapshot(None, &e))?
                .map(|stored| (stored.meta, stored.data)),
        };
        Ok(kept.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// Reads the views from a RocksDB snapshot taken under the state's
    /// lock: apply writes its batch before it lets the lock go, so the
    /// stored views, meta and the tree's edge in memory are of one moment.
    /// The lock is held only while the snapshot is taken; copying the
    /// views, on a blocking thread, stalls no apply.
    // `build` answers openraft's own (large) error type, like the trait.
    #[allow(clippy::result_large_err)]
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        let machine = self.clone();
        let (meta, bytes) = tokio::task::spawn_blocking(move || machine.build())
            .await
            .map_err(|e| Self::write_error(format!("building a snapshot: {e}")))??;
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

#[allow(clippy::result_large_err)]
impl StateMachine {
    fn build(&self) -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
        let db = &*self.db;
        let failed =
            |e: &rocksdb::Error| StorageError::from(StorageIOError::read_snapshot(None, e));
        let (view, tree) = {
            let m = self.shared.read().expect("state lock");
            (db.snapshot(), m.tree.clone())
        };
        fn meta_value<T: serde::de::DeserializeOwned>(
            db: &rocksdb::DB,
            view: &rocksdb::Snapshot<'_>,
            key: &[u8],
        ) -> Result<Option<T>, StorageError> {
            let read = |e: &dyn std::fmt::Display| {
                let e = std::io::Error::other(format!("{}: {e}", String::from_utf8_lossy(key)));
                StorageError::from(StorageIOError::read_snapshot(None, &e))
            };
            let bytes = view.get_cf(cf(db, META), key).map_err(|e| read(&e))?;
            bytes
                .map(|bytes| store::decode(&bytes))
                .transpose()
                .map_err(|e| read(&e))
        }
        let applied: Option<LogId> = meta_value(db, &view, APPLIED)?.flatten();
        let membership: StoredMembership = meta_value(db, &view, MEMBERSHIP)?.unwrap_or_default();
        let head: ChainHead = meta_value(db, &view, HEAD)?.unwrap_or(NO_HEAD);
        let last_at: u64 = meta_value(db, &view, LAST_AT)?.unwrap_or(0);
        let last_stamp: Option<u64> = meta_value(db, &view, LAST_STAMP)?;
        let cluster_id: Option<String> = meta_value(db, &view, CLUSTER_ID)?;
        let retirement: Option<Retirement> = meta_value(db, &view, RETIREMENT)?;
        if tree.size() != head.seq {
            // The state moved between the two reads (a snapshot being
            // installed); openraft asks again later.
            return Err(Self::write_error(format!(
                "the tree's edge ({} records) is not at the stored head ({})",
                tree.size(),
                head.seq
            )));
        }
        let mut hosts = Vec::new();
        let mut keys = Vec::new();
        let mut jobs: Vec<JobView> = Vec::new();
        let mut options = rocksdb::ReadOptions::default();
        options.set_snapshot(&view);
        for item in db.iterator_cf_opt(cf(db, VIEWS), options, rocksdb::IteratorMode::Start) {
            let (key, bytes) = item.map_err(|e| failed(&e))?;
            let corrupt = |e: rmp_serde::decode::Error| {
                Self::write_error(format!("view {}: {e}", String::from_utf8_lossy(&key)))
            };
            match key.first() {
                Some(b'h') => hosts.push(store::decode(&bytes).map_err(corrupt)?),
                Some(b'k') => keys.push(store::decode(&bytes).map_err(corrupt)?),
                Some(b'j') => jobs.push(store::decode(&bytes).map_err(corrupt)?),
                _ => return Err(corrupt(serde::de::Error::custom("an unknown kind of view"))),
            }
        }
        // Blobs are immutable and content-addressed: the ones the views
        // name are there.
        let mut wanted = BTreeSet::new();
        for job in &jobs {
            if let Some(outcome) = &job.outcome {
                wanted.insert(outcome.stdout.hash);
                wanted.insert(outcome.stderr.hash);
            }
        }
        let mut blobs = Vec::with_capacity(wanted.len());
        for hash in wanted {
            let content = view
                .get_cf(cf(db, BLOBS), hash.0)
                .map_err(|e| failed(&e))?
                .ok_or_else(|| Self::write_error(format!("blob {hash} is missing")))?;
            blobs.push((hash, content));
        }
        let snapshot_id = match applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, head.seq),
            None => format!("empty-{}", head.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        let data = SnapshotData {
            cluster_id,
            last_at,
            last_stamp,
            head,
            hosts,
            keys,
            jobs,
            blobs,
            tree: Some(tree),
            retirement,
        };
        drop(view);
        let bytes = store::encode(&data);
        drop(data);
        let keeping = self.keeping.lock().expect("snapshot file lock");
        keep(db, &meta, &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        drop(keeping);
        Ok((meta, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(1, 0),
                index,
            )),
            last_membership: Default::default(),
            snapshot_id: format!("1-{index}"),
        }
    }

    fn kept_at(db: &DB) -> Option<(u64, Vec<u8>)> {
        kept(db)
            .unwrap()
            .map(|(meta, data)| (meta.last_log_id.unwrap().index, data))
    }

    #[test]
    fn the_kept_snapshot_only_moves_forward_and_an_install_forgets_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        assert_eq!(kept_at(&db), None);
        keep(&db, &meta(10), b"ten").unwrap();
        assert_eq!(kept_at(&db), Some((10, b"ten".to_vec())));
        // A build that finishes after a newer one was kept leaves it.
        keep(&db, &meta(5), b"five").unwrap();
        assert_eq!(kept_at(&db), Some((10, b"ten".to_vec())));
        keep(&db, &meta(20), b"twenty").unwrap();
        assert_eq!(kept_at(&db), Some((20, b"twenty".to_vec())));
        assert!(!dir
            .path()
            .join(SNAPSHOT_FILE)
            .with_extension("partial")
            .exists());
        // What an install does first: no snapshot until the new one is kept.
        forget_kept(&db).unwrap();
        assert_eq!(kept_at(&db), None);
        forget_kept(&db).unwrap();
        keep(&db, &meta(3), b"three").unwrap();
        assert_eq!(kept_at(&db), Some((3, b"three".to_vec())));
    }

    #[test]
    fn a_cut_short_snapshot_file_is_an_error_not_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        keep(&db, &meta(10), b"ten").unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..6]).unwrap();
        assert!(kept(&db).is_err());
    }
}
