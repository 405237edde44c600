//! Snapshots: building one from a RocksDB snapshot of the stored views
//! (with the blobs they name) into a file, without holding the state, and
//! installing a received one in place of everything applied. The file's
//! format is [`file`]'s.

mod file;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use openraft::storage::Snapshot;
use openraft::{RaftSnapshotBuilder, StorageIOError};
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::Deserialize;
use skyclaw_layout::meta::{
    ANCHOR, APPLIED, CLUSTER_ID, HEAD, LAST_AT, LAST_STAMP, MEMBERSHIP, RETIREMENT, SNAPSHOT,
};
use skyclaw_log_format::event::BlobRef;
use skyclaw_log_format::ChainHead;
use skyclaw_state::state::Retirement;
use skyclaw_state::{HostView, JobView, KeyView, LogClock, State};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

pub use self::file::SnapshotFile;
use self::file::{Frame, Header, Reader, Writer};
use crate::lease_timers::LeaseTimers;
use crate::machine::StateMachine;
use crate::materialized::{Materialized, NO_HEAD};
use crate::raft::{LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::store::{self, cf, BLOBS, COMPLETIONS, EVENTS, META, TREE, VIEWS};

/// The file, in the data directory, that holds the last snapshot built or
/// installed. Files being built or received sit beside it, named after it.
const SNAPSHOT_FILE: &str = "raft-snapshot";

fn kept_path(db: &DB) -> PathBuf {
    db.path().join(SNAPSHOT_FILE)
}

/// Where a build writes, and a stream is received, before it is kept.
fn partial_path(db: &DB, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    db.path().join(format!("{SNAPSHOT_FILE}.{what}-{n}"))
}

/// Removes the files builds and streams left behind when the process
/// stopped; called at start-up, before any is made.
pub(crate) fn remove_partial(db: &DB) -> std::io::Result<()> {
    let prefix = format!("{SNAPSHOT_FILE}.");
    for entry in std::fs::read_dir(db.path())? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Keeps the synced snapshot file at `path` as the current snapshot,
/// unless the one kept is as new (then `path` is removed). Renamed over
/// the last, so a crash leaves one or the other. The caller holds
/// `StateMachine::keeping`.
fn keep(db: &DB, meta: &SnapshotMeta, path: &Path) -> std::io::Result<()> {
    if let Some(kept) = kept_meta(db)? {
        if kept.last_log_id >= meta.last_log_id {
            return std::fs::remove_file(path);
        }
    }
    std::fs::rename(path, kept_path(db))?;
    std::fs::File::open(db.path())?.sync_all()?;
    // A store from before the file kept its snapshot in `meta`.
    db.delete_cf(cf(db, META), SNAPSHOT)
        .map_err(std::io::Error::other)
}

/// Drops the kept snapshot file, durably: done before an install moves
/// the state past it, so a crash in between leaves no snapshot (openraft
/// builds one at start-up) rather than one behind the purged log.
fn forget_kept(db: &DB) -> std::io::Result<()> {
    match std::fs::remove_file(kept_path(db)) {
        Ok(()) => std::fs::File::open(db.path())?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The kept snapshot file, open, and its meta. A file an earlier version
/// kept (another format) counts as none: openraft builds a new one when it
/// needs one.
fn kept(db: &DB) -> std::io::Result<Option<(SnapshotMeta, std::fs::File)>> {
    let file = match std::fs::File::open(kept_path(db)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(file::meta(file.try_clone()?)?.map(|meta| (meta, file)))
}

fn kept_meta(db: &DB) -> std::io::Result<Option<SnapshotMeta>> {
    Ok(kept(db)?.map(|(meta, _)| meta))
}

/// What of a job's view names blobs: read from its stored bytes without
/// decoding the rest.
#[derive(Deserialize)]
struct Outputs {
    #[serde(default)]
    outcome: Option<OutputRefs>,
}

#[derive(Deserialize)]
struct OutputRefs {
    stdout: BlobRef,
    stderr: BlobRef,
}

/// Lowers the calling thread's CPU priority: a build shares two cores
/// with the requests it must not hold up.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls; on Linux a nice value is the thread's own.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, 10);
    }
}

/// A snapshot failed to read (`write: false`) or to write.
fn failed(meta: Option<&SnapshotMeta>, write: bool, e: impl std::fmt::Display) -> StorageError {
    let e = std::io::Error::other(e.to_string());
    let signature = meta.map(SnapshotMeta::signature);
    if write {
        StorageIOError::write_snapshot(signature, &e).into()
    } else {
        StorageIOError::read_snapshot(signature, &e).into()
    }
}

// The two run for `RaftStateMachine`'s methods, which answer openraft's own
// (large) error type.
#[allow(clippy::result_large_err)]
impl StateMachine {
    /// A new file to receive a snapshot into.
    pub(crate) async fn receiving(&self) -> Result<SnapshotFile, StorageError> {
        SnapshotFile::receive(partial_path(&self.db, "receiving"))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }

    /// Replaces views and meta with the received snapshot's in one synced
    /// batch, anchors this node's event log at the snapshot's head, and
    /// keeps the file. Nothing changes unless the whole file reads back
    /// with its hash.
    pub(crate) async fn install(
        &self,
        meta: &SnapshotMeta,
        mut snapshot: SnapshotFile,
    ) -> Result<(), StorageError> {
        let path = match snapshot.take_received() {
            Some(path) => path,
            // A snapshot not received into a file of its own (openraft's
            // storage suite installs one it had built) is copied into one.
            None => {
                let path = partial_path(&self.db, "receiving");
                let copied = async {
                    let mut copy = SnapshotFile::receive(path.clone()).await?;
                    snapshot.seek(std::io::SeekFrom::Start(0)).await?;
                    tokio::io::copy(&mut snapshot, &mut copy).await?;
                    copy.flush().await?;
                    copy.take_received();
                    std::io::Result::Ok(())
                };
                if let Err(e) = copied.await {
                    let _ = std::fs::remove_file(&path);
                    return Err(failed(Some(meta), false, e));
                }
                path
            }
        };
        drop(snapshot);
        let machine = self.clone();
        let installing = (meta.clone(), path.clone());
        let installed = tokio::task::spawn_blocking(move || {
            let (meta, path) = installing;
            machine.install_file(&meta, &path)
        })
        .await
        .unwrap_or_else(|e| Err(failed(Some(meta), true, e)));
        if installed.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        installed
    }

    fn install_file(&self, meta: &SnapshotMeta, path: &Path) -> Result<(), StorageError> {
        let read = |e: &dyn std::fmt::Display| failed(Some(meta), false, e);
        let db = &*self.db;
        let file = std::fs::File::open(path).map_err(|e| read(&e))?;
        let (file_meta, header, mut reader) = Reader::open(file).map_err(|e| read(&e))?;
        if file_meta.last_log_id != meta.last_log_id {
            return Err(read(&format!(
                "the file holds the snapshot at {:?}, not {:?}",
                file_meta.last_log_id, meta.last_log_id
            )));
        }
        let tree = header.tree;
        if tree.size() != header.head.seq || tree.check().is_err() {
            return Err(read(&format!(
                "the snapshot carries no Merkle tree edge for its {} records",
                header.head.seq
            )));
        }
        // Everything applied goes, in the batch, before what replaces it.
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf(db, META), SNAPSHOT);
        let everything = (vec![0u8], vec![0xffu8; 9]);
        for family in [VIEWS, EVENTS, TREE, COMPLETIONS] {
            batch.delete_range_cf(cf(db, family), &everything.0, &everything.1);
        }
        for (index, hash) in tree.edge() {
            batch.put_cf(cf(db, TREE), store::u64_key(*index), hash.0);
        }
        let (mut hosts, mut keys, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(frame) = reader.next_frame().map_err(|e| read(&e))? {
            match frame {
                Frame::View(key, value) => {
                    let corrupt = |e: rmp_serde::decode::Error| {
                        read(&format!("view {}: {e}", String::from_utf8_lossy(&key)))
                    };
                    match key.first() {
                        Some(b'h') => {
                            hosts.push(store::decode::<HostView>(&value).map_err(corrupt)?)
                        }
                        Some(b'k') => keys.push(store::decode::<KeyView>(&value).map_err(corrupt)?),
                        Some(b'j') => jobs.push(store::decode::<JobView>(&value).map_err(corrupt)?),
                        _ => {
                            return Err(corrupt(serde::de::Error::custom(
                                "an unknown kind of view",
                            )))
                        }
                    }
                    batch.put_cf(cf(db, VIEWS), &key, &value);
                }
                Frame::Blob(hash, content) => batch.put_cf(cf(db, BLOBS), hash.0, content),
            }
        }
        let membership = meta.last_membership.clone();
        let meta_cf = cf(db, META);
        batch.put_cf(meta_cf, APPLIED, store::encode(&meta.last_log_id));
        batch.put_cf(meta_cf, MEMBERSHIP, store::encode(&membership));
        batch.put_cf(meta_cf, HEAD, store::encode(&header.head));
        batch.put_cf(meta_cf, ANCHOR, store::encode(&header.head));
        let clock = LogClock {
            stamp: header.last_stamp,
            ..LogClock::resumed(header.last_at)
        };
        batch.put_cf(meta_cf, LAST_AT, store::encode(&clock.at));
        batch.put_cf(meta_cf, LAST_STAMP, store::encode(&clock.stamp));
        batch.put_cf(meta_cf, RETIREMENT, store::encode(&header.retirement));
        if let Some(cluster_id) = &header.cluster_id {
            batch.put_cf(meta_cf, CLUSTER_ID, store::encode(cluster_id));
        }
        let wrote = |e: &dyn std::fmt::Display| failed(Some(meta), true, e);
        let keeping = self.keeping.lock().expect("snapshot file lock");
        forget_kept(db).map_err(|e| wrote(&e))?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.write_opt(batch, &options).map_err(|e| wrote(&e))?;

        let mut m = self.shared.write().expect("state lock");
        let mut state = State::from_views(header.cluster_id, clock, hosts, keys, jobs);
        state.resume_retirement(header.retirement);
        *m = Materialized {
            lease_timers: LeaseTimers::start(&state, Instant::now()),
            state,
            applied: meta.last_log_id,
            membership,
            head: header.head,
            anchor: Some(header.head),
            tree,
        };
        drop(m);
        // Kept once installed; a crash before leaves none (see
        // `forget_kept`), and so, after a restart, does a failure here.
        std::fs::File::open(path)
            .and_then(|file| file.sync_all())
            .and_then(|()| keep(db, meta, path))
            .map_err(|e| wrote(&e))?;
        drop(keeping);
        self.metrics.snapshot_installs.increment(1);
        self.work.notify_waiters();
        Ok(())
    }

    /// The last snapshot built or installed, as kept.
    pub(crate) fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let kept = kept(&self.db).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(kept.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile::kept(file)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// Writes the views from a RocksDB snapshot taken under the state's
    /// lock into a file: apply writes its batch before it lets the lock go,
    /// so the stored views, meta and the tree's edge in memory are of one
    /// moment. The lock is held only while the snapshot is taken; the
    /// copy runs on a thread of its own at a lower priority, and stalls no
    /// apply.
    // `build` answers openraft's own (large) error type, like the trait.
    #[allow(clippy::result_large_err)]
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        let machine = self.clone();
        let (done, built) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                lower_priority();
                let _ = done.send(machine.build());
            })
            .map_err(|e| Self::write_error(format!("building a snapshot: {e}")))?;
        let (meta, file) = built
            .await
            .map_err(|e| Self::write_error(format!("building a snapshot: {e}")))??;
        self.metrics.snapshot_builds.increment(1);
        self.metrics
            .snapshot_build_seconds
            .record(started.elapsed().as_secs_f64());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile::kept(file)),
        })
    }
}

#[allow(clippy::result_large_err)]
impl StateMachine {
    fn build(&self) -> Result<(SnapshotMeta, std::fs::File), StorageError> {
        let db = &*self.db;
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
        let snapshot_id = match applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, head.seq),
            None => format!("empty-{}", head.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        let header = Header {
            cluster_id,
            last_at,
            last_stamp: last_stamp.unwrap_or(last_at),
            head,
            tree,
            retirement: retirement.unwrap_or_default(),
        };
        let path = partial_path(db, "building");
        let written = (|| {
            let wrote = |e: &dyn std::fmt::Display| failed(Some(&meta), true, e);
            let read = |e: &dyn std::fmt::Display| failed(None, false, e);
            let mut out = Writer::create(&path, &meta, &header).map_err(|e| wrote(&e))?;
            // Views go as stored; of a job's, only the blobs it names are read.
            let mut wanted = BTreeSet::new();
            // A build reads everything once: it must not push the blocks
            // the requests need out of the cache.
            let uncached = || {
                let mut options = rocksdb::ReadOptions::default();
                options.fill_cache(false);
                options
            };
            let mut options = uncached();
            options.set_snapshot(&view);
            for item in db.iterator_cf_opt(cf(db, VIEWS), options, rocksdb::IteratorMode::Start) {
                let (key, bytes) = item.map_err(|e| read(&e))?;
                if key.first() == Some(&b'j') {
                    let outputs: Outputs = store::decode(&bytes).map_err(|e| {
                        Self::write_error(format!("view {}: {e}", String::from_utf8_lossy(&key)))
                    })?;
                    if let Some(outcome) = outputs.outcome {
                        wanted.insert(outcome.stdout.hash);
                        wanted.insert(outcome.stderr.hash);
                    }
                }
                out.view(&key, &bytes).map_err(|e| wrote(&e))?;
            }
            // Blobs are immutable and content-addressed: the ones the
            // views name are there.
            for hash in wanted {
                let content = view
                    .get_cf_opt(cf(db, BLOBS), hash.0, uncached())
                    .map_err(|e| read(&e))?
                    .ok_or_else(|| Self::write_error(format!("blob {hash} is missing")))?;
                out.blob(&hash, &content).map_err(|e| wrote(&e))?;
            }
            out.finish().map_err(|e| wrote(&e))
        })();
        drop(view);
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let keeping = self.keeping.lock().expect("snapshot file lock");
        keep(db, &meta, &path)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        drop(keeping);
        Ok((meta, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(1, 0),
                index,
            )),
            last_membership: Default::default(),
            snapshot_id: format!("1-{index}"),
        }
    }

    pub(super) fn header() -> Header {
        Header {
            cluster_id: Some("c".into()),
            last_at: 7,
            last_stamp: 7,
            head: NO_HEAD,
            tree: Default::default(),
            retirement: Default::default(),
        }
    }

    /// Writes a snapshot at `index` holding one view named `name`.
    fn built(db: &DB, index: u64, name: &[u8]) -> PathBuf {
        let path = partial_path(db, "building");
        let mut out = Writer::create(&path, &meta(index), &header()).unwrap();
        out.view(b"h1", name).unwrap();
        out.finish().unwrap();
        path
    }

    fn kept_at(db: &DB) -> Option<(u64, Vec<u8>)> {
        let (meta, file) = kept(db).unwrap()?;
        let (_, _, mut reader) = Reader::open(file).unwrap();
        let Some(Frame::View(_, name)) = reader.next_frame().unwrap() else {
            panic!("no view");
        };
        Some((meta.last_log_id.unwrap().index, name))
    }

    #[test]
    fn the_kept_snapshot_only_moves_forward_and_an_install_forgets_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        assert_eq!(kept_at(&db), None);
        keep(&db, &meta(10), &built(&db, 10, b"ten")).unwrap();
        assert_eq!(kept_at(&db), Some((10, b"ten".to_vec())));
        // A build that finishes after a newer one was kept leaves it.
        keep(&db, &meta(5), &built(&db, 5, b"five")).unwrap();
        assert_eq!(kept_at(&db), Some((10, b"ten".to_vec())));
        keep(&db, &meta(20), &built(&db, 20, b"twenty")).unwrap();
        assert_eq!(kept_at(&db), Some((20, b"twenty".to_vec())));
        // What an install does first: no snapshot until the new one is kept.
        forget_kept(&db).unwrap();
        assert_eq!(kept_at(&db), None);
        forget_kept(&db).unwrap();
        keep(&db, &meta(3), &built(&db, 3, b"three")).unwrap();
        assert_eq!(kept_at(&db), Some((3, b"three".to_vec())));
        // Nothing else is left beside the kept file.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(SNAPSHOT_FILE))
            .collect();
        names.sort();
        assert_eq!(names, [SNAPSHOT_FILE]);
    }

    #[test]
    fn a_snapshot_an_earlier_version_kept_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        // The earlier file: meta length, meta, MessagePack content.
        let head = store::encode(&meta(10));
        let mut earlier = (head.len() as u32).to_be_bytes().to_vec();
        earlier.extend(head);
        earlier.extend(b"content");
        std::fs::write(kept_path(&db), earlier).unwrap();
        assert!(kept(&db).unwrap().is_none());
        keep(&db, &meta(5), &built(&db, 5, b"five")).unwrap();
        assert_eq!(kept_at(&db), Some((5, b"five".to_vec())));
    }

    #[test]
    fn files_left_by_a_stopped_build_or_stream_are_removed_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        keep(&db, &meta(10), &built(&db, 10, b"ten")).unwrap();
        let building = built(&db, 11, b"eleven");
        let receiving = partial_path(&db, "receiving");
        std::fs::write(&receiving, b"half").unwrap();
        remove_partial(&db).unwrap();
        assert!(!building.exists() && !receiving.exists());
        assert_eq!(kept_at(&db), Some((10, b"ten".to_vec())));
    }

    #[tokio::test]
    async fn a_received_file_is_removed_when_dropped_unless_taken() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        let path = partial_path(&db, "receiving");
        drop(SnapshotFile::receive(path.clone()).await.unwrap());
        assert!(!path.exists());
        let mut received = SnapshotFile::receive(path.clone()).await.unwrap();
        assert_eq!(received.take_received(), Some(path.clone()));
        drop(received);
        assert!(path.exists());
    }
}
