//! The raft log on RocksDB: entries in `raft_log`, vote and purge marks in
//! `raft_meta`. Appends and votes are acknowledged only once the WAL is
//! synced; one synced batch per append is the group commit.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use skyclaw_layout::raft_meta::{COMMITTED, LAST_PURGED, VOTE};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::raft::{Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::store::{self, cf, RAFT_LOG, RAFT_META};

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    metrics: Arc<Metrics>,
    /// How many appends have finished (synced or failed): the proposer
    /// forms its next entry once the one before has reached the disk.
    appended: watch::Sender<u64>,
}

// openraft's storage traits fix `StorageError` as the error type; these
// helpers feed those methods, so boxing it here would only be undone there.
#[allow(clippy::result_large_err)]
impl LogStore {
    pub fn new(db: Arc<DB>, metrics: Arc<Metrics>) -> LogStore {
        LogStore {
            db,
            metrics,
            appended: watch::Sender::new(0),
        }
    }

    /// Counts the appends that have finished, synced or failed.
    pub fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
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
        // The fsync runs on a blocking thread: raft waits for it either way,
        // but one of the runtime's few threads stays free to serve HTTP.
        let db = self.db.clone();
        let started = Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            let mut options = WriteOptions::default();
            options.set_sync(true);
            db.write_opt(batch, &options)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("the log write failed: {e}"))));
        self.metrics
            .append_seconds
            .record(started.elapsed().as_secs_f64());
        self.metrics.append_entries.record(count as f64);
        self.appended.send_modify(|appended| *appended += 1);
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::new(e.kind(), e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
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
