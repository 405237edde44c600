//! The raft log on RocksDB: entries in `raft_log`, vote and purge marks in
//! `raft_meta`. Appends and votes are acknowledged only once the WAL is
//! synced.
//!
//! An append writes its entries (readable at once) and returns; the
//! [`Syncer`] thread then syncs the write-ahead log and tells raft they are
//! durable. One sync covers every append written since the last, so raft
//! goes on with the next append (and replication) while the disk works,
//! and a busy log pays one sync for several appends: group commit below
//! raft, as openraft's `append` asks for.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{mpsc, Arc, Weak};
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use skyclaw_layout::raft_meta::{COMMITTED, LAST_PURGED, VOTE};

use crate::metrics::Metrics;
use crate::raft::{Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::store::{self, cf, RAFT_LOG, RAFT_META};

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    metrics: Arc<Metrics>,
    syncer: Syncer,
}

/// An append written but not yet durable.
struct Written {
    callback: LogFlushed<TypeConfig>,
    entries: usize,
    started: Instant,
}

/// The handle on the thread that makes appends durable.
#[derive(Clone)]
struct Syncer {
    sender: mpsc::Sender<Written>,
}

impl Syncer {
    /// Starts the thread. It holds the database weakly, so the database
    /// closes when the node lets go of it; the thread ends with the last
    /// log store.
    fn start(db: &Arc<DB>, metrics: Arc<Metrics>) -> Syncer {
        let (sender, written) = mpsc::channel::<Written>();
        let db = Arc::downgrade(db);
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || sync_loop(db, metrics, written))
            .expect("the log's sync thread starts");
        Syncer { sender }
    }
}

/// Syncs the write-ahead log for every append waiting, then completes
/// them: each sync covers all that were written before it.
fn sync_loop(db: Weak<DB>, metrics: Arc<Metrics>, written: mpsc::Receiver<Written>) {
    while let Ok(first) = written.recv() {
        let mut waiting = vec![first];
        waiting.extend(written.try_iter());
        let synced = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the database is closed".to_string()),
        };
        let entries: usize = waiting.iter().map(|w| w.entries).sum();
        metrics.append_entries.record(entries as f64);
        for append in waiting {
            metrics
                .append_seconds
                .record(append.started.elapsed().as_secs_f64());
            let result = synced.clone().map_err(std::io::Error::other);
            append.callback.log_io_completed(result);
        }
    }
}

// openraft's storage traits fix `StorageError` as the error type; these
// helpers feed those methods, so boxing it here would only be undone there.
#[allow(clippy::result_large_err)]
impl LogStore {
    pub fn new(db: Arc<DB>, metrics: Arc<Metrics>) -> LogStore {
        let syncer = Syncer::start(&db, metrics.clone());
        LogStore {
            db,
            metrics,
            syncer,
        }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        store::get(&self.db, RAFT_META, key).map_err(|e| StorageIOError::read(&e).into())
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), rocksdb::Error> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, RAFT_META), key, store::encode(value));
        self.db.write_opt(batch, &options)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut iter = self
            .db
            .iterator_cf(cf(&self.db, RAFT_LOG), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let entry: Entry =
                    store::decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let from = store::u64_key(start);
        let iter = self.db.iterator_cf(
            cf(&self.db, RAFT_LOG),
            IteratorMode::From(&from, Direction::Forward),
        );
        for item in iter {
            let (key, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = store::u64_of_key(&key).unwrap_or(u64::MAX);
            if !range.contains(&index) {
                break;
            }
            entries.push(store::decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(LAST_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote, true)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(committed) = committed {
            self.metrics.committed_index.set(committed.index as f64);
        }
        // Not synced: a lost committed mark only means less is re-applied
        // at start-up, and the next synced write carries it anyway.
        self.put_meta(COMMITTED, &committed, false)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let family = cf(&self.db, RAFT_LOG);
        let mut count = 0usize;
        for entry in entries {
            count += 1;
            batch.put_cf(
                family,
                store::u64_key(entry.log_id.index),
                store::encode(&entry),
            );
        }
        // Written without a sync: readable now, durable once the syncer
        // has synced the write-ahead log behind it.
        let started = Instant::now();
        if let Err(e) = self.db.write(batch) {
            let failed = std::io::Error::other(e.to_string());
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(StorageIOError::write_logs(&failed).into());
        }
        let written = Written {
            callback,
            entries: count,
            started,
        };
        if let Err(mpsc::SendError(written)) = self.syncer.sender.send(written) {
            let stopped = std::io::Error::other("the log's sync thread has stopped");
            written
                .callback
                .log_io_completed(Err(std::io::Error::other(stopped.to_string())));
            return Err(StorageIOError::write_logs(&stopped).into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.db
            .delete_range_cf(
                cf(&self.db, RAFT_LOG),
                store::u64_key(log_id.index),
                store::u64_key(u64::MAX),
            )
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, RAFT_META), LAST_PURGED, store::encode(&log_id));
        batch.delete_range_cf(
            cf(&self.db, RAFT_LOG),
            store::u64_key(0),
            store::u64_key(log_id.index + 1),
        );
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
