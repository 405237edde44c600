//! The raft state machine: applies committed entries by running
//! `State::decide` and `State::apply`, seals each event into the hash chain,
//! and writes events, the blobs they name, changed views and the applied log
//! id in one RocksDB batch. Also builds and installs snapshots.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::Hash32;
use skyclaw_log_format::{ChainHead, Origin, Record};
use skyclaw_state::state::encode_view;
use skyclaw_state::{Affected, Command, Event, HostView, JobView, LogClock, Rejection, State};
use tokio::sync::Notify;

use crate::raft::{
    Answer, Entry, LogId, Reply, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::store::{self, cf, BLOBS, EVENTS, META, VIEWS};
use crate::sweeper::LeaseTimers;
use crate::{Error, Result};

/// Everything applied so far, in memory; the views mirror the `views`
/// column family. Kept under one lock so a reader sees the state, the
/// applied id and the chain head of the same moment.
pub struct Materialized {
    pub state: State,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    pub head: ChainHead,
    /// Where this node's event log starts when it was restored from a
    /// snapshot: the records up to and including it are not here.
    pub anchor: Option<ChainHead>,
    /// When each live lease runs out by this node's monotonic clock.
    pub lease_timers: LeaseTimers,
}

pub type Shared = Arc<RwLock<Materialized>>;

/// The head before the cluster exists: nothing to follow yet.
pub const NO_HEAD: ChainHead = ChainHead {
    seq: 0,
    hash: Hash32([0; 32]),
};

// `meta` keys; a store without `LAST_STAMP` (written before it was kept)
// resumes as `LogClock::resumed(last_at)`.
use skyclaw_layout::meta::{
    ANCHOR, APPLIED, CLUSTER_ID, HEAD, LAST_AT, LAST_STAMP, MEMBERSHIP, SNAPSHOT,
};

impl Materialized {
    /// Reads the views back from disk: start-up cost grows with the number
    /// of live records, not with the length of history. Jobs are decoded on
    /// several threads, each over a slice of the key space (job ids are
    /// UUIDs, so the slices come out even).
    pub fn load(db: &DB) -> Result<Materialized> {
        let hosts: Vec<HostView> = read_views(db, b"h/", b"h0")?;
        let parts = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let mut bounds = vec![b"j/".to_vec()];
        bounds.extend((1..parts).map(|i| format!("j/{:x}", 16 * i / parts).into_bytes()));
        bounds.push(b"j0".to_vec());
        let jobs = std::thread::scope(|scope| {
            let readers: Vec<_> = bounds
                .windows(2)
                .map(|range| scope.spawn(|| read_views::<Box<JobView>>(db, &range[0], &range[1])))
                .collect();
            readers
                .into_iter()
                .map(|reader| {
                    reader
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let cluster_id = store::get::<String>(db, META, CLUSTER_ID)?;
        let last_at = store::get::<u64>(db, META, LAST_AT)?.unwrap_or(0);
        let clock = LogClock {
            stamp: store::get::<u64>(db, META, LAST_STAMP)?.unwrap_or(last_at),
            ..LogClock::resumed(last_at)
        };
        let state = State::from_views(cluster_id, clock, hosts, jobs.into_iter().flatten());
        Ok(Materialized {
            lease_timers: LeaseTimers::start(&state, Instant::now()),
            state,
            applied: store::get(db, META, APPLIED)?,
            membership: store::get(db, META, MEMBERSHIP)?.unwrap_or_default(),
            head: store::get(db, META, HEAD)?.unwrap_or(NO_HEAD),
            anchor: store::get(db, META, ANCHOR)?,
        })
    }
}

/// Every view whose key lies in `[from, to)`.
fn read_views<T: serde::de::DeserializeOwned>(db: &DB, from: &[u8], to: &[u8]) -> Result<Vec<T>> {
    let mut options = rocksdb::ReadOptions::default();
    options.set_iterate_lower_bound(from.to_vec());
    options.set_iterate_upper_bound(to.to_vec());
    let mut views = Vec::new();
    for item in db.iterator_cf_opt(cf(db, VIEWS), options, rocksdb::IteratorMode::Start) {
        let (key, bytes) = item?;
        let view = store::decode(&bytes)
            .map_err(|e| Error::Corrupt(format!("view {}: {e}", String::from_utf8_lossy(&key))))?;
        views.push(view);
    }
    Ok(views)
}

/// A snapshot's content: every view plus the blobs they reference and the
/// chain head they correspond to.
// Format: MessagePack map { clusterId, lastAt, lastStamp?, head, hosts, jobs, blobs }
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
    jobs: Vec<JobView>,
    blobs: Vec<(Hash32, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    shared: Shared,
    /// Woken when work appears: long-polling claims wait on it.
    work: Arc<Notify>,
}

impl StateMachine {
    pub fn new(db: Arc<DB>, shared: Shared, work: Arc<Notify>) -> StateMachine {
        StateMachine { db, shared, work }
    }

    fn write_error(e: impl std::fmt::Display) -> StorageError {
        StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
    }
}

/// Changes collected while applying one batch of entries.
#[derive(Default)]
struct Touched {
    jobs: BTreeSet<String>,
    hosts: BTreeSet<String>,
    wake: bool,
}

/// Runs one command against the state, sealing and staging its events.
// `StorageError` is what openraft's `apply` returns; see `log_store`.
#[allow(clippy::result_large_err)]
fn execute(
    m: &mut Materialized,
    batch: &mut WriteBatch,
    db: &DB,
    command: &Command,
    at: u64,
    origin: Origin,
    touched: &mut Touched,
) -> std::result::Result<std::result::Result<Answer, Rejection>, StorageError> {
    let decision = match m.state.decide(command, at) {
        Ok(decision) => decision,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let now = Instant::now();
    for event in &decision.events {
        m.state
            .apply(event, at)
            .map_err(|v| StateMachine::write_error(format!("decided event violates state: {v}")))?;
        let cluster_id = m
            .state
            .cluster_id()
            .expect("applied events follow ClusterCreated");
        if let Event::ClusterCreated { .. } = event {
            m.head = ChainHead::genesis(cluster_id);
        }
        let seq = m.head.next_seq();
        let record = Record::seal(cluster_id, seq, at, origin, m.head.hash, event.encode());
        batch.put_cf(cf(db, EVENTS), store::u64_key(seq), record.encode());
        // Content was hashed once, when `decide` made the references.
        for blob in event.blobs() {
            let content = decision.blob(blob).ok_or_else(|| {
                StateMachine::write_error(format!(
                    "a decided event names blob {} but the decision lacks its content",
                    blob.hash
                ))
            })?;
            batch.put_cf(cf(db, BLOBS), blob.hash.0, content);
        }
        m.head = record.head();
        match event {
            Event::ClusterCreated { cluster_id } => {
                batch.put_cf(cf(db, META), CLUSTER_ID, store::encode(cluster_id));
            }
            Event::HostRegistered { host_id, .. } => {
                touched.hosts.insert(host_id.clone());
                touched.wake = true;
            }
            Event::JobEnqueued(_) => touched.wake = true,
            Event::JobLeased {
                job_id,
                lease_epoch,
                lease_expires_at,
                ..
            }
            | Event::LeaseRenewed {
                job_id,
                lease_epoch,
                lease_expires_at,
            } => {
                // The term the lease was given, timed from now on this
                // node's monotonic clock.
                let term = Duration::from_millis(lease_expires_at.saturating_sub(at));
                m.lease_timers.granted(job_id, *lease_epoch, now + term);
            }
            Event::LeaseExpired { job_id, .. } => {
                m.lease_timers.ended(job_id);
                touched.wake = true;
            }
            Event::JobCompleted(done) => {
                m.lease_timers.ended(&done.job_id);
                touched.wake = true;
            }
            _ => {}
        }
        if let Some(job_id) = event.job_id() {
            touched.jobs.insert(job_id.to_string());
            if let Some(host) = m.state.job(job_id).and_then(|j| j.assigned_host_id.clone()) {
                touched.hosts.insert(host);
            }
        }
    }
    Ok(Ok(answer(&m.state, decision.affected)))
}

/// The records a command affected, as they stand now.
fn answer(state: &State, affected: Affected) -> Answer {
    let job = |id: &String| state.job(id).cloned().expect("affected names a known job");
    let host = |id: &String| {
        state
            .host(id)
            .cloned()
            .expect("affected names a known host")
    };
    match affected {
        Affected::Done => Answer::Done,
        Affected::Host(id) => Answer::Host(host(&id)),
        Affected::Job(id) => Answer::Job(job(&id)),
        Affected::Jobs(ids) => Answer::Jobs(ids.iter().map(job).collect()),
        Affected::Renewed {
            host_id,
            cancel,
            lost,
        } => Answer::Renewed {
            host: host(&host_id),
            cancel,
            lost,
        },
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let m = self.shared.read().expect("state lock");
        Ok((m.applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let db = &*self.db;
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        let mut touched = Touched::default();
        let mut m = self.shared.write().expect("state lock");
        for entry in entries {
            m.applied = Some(entry.log_id);
            let origin = Origin {
                term: entry.log_id.leader_id.term,
                index: entry.log_id.index,
            };
            let mut reply = Reply::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(membership) => {
                    m.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
                EntryPayload::Normal(proposal) => {
                    let at = if proposal.log_clock {
                        m.state.tick(proposal.at)
                    } else {
                        m.state.tick_as_before(proposal.at)
                    };
                    for command in &proposal.commands {
                        let result =
                            execute(&mut m, &mut batch, db, command, at, origin, &mut touched)?;
                        reply.results.push(result);
                    }
                }
            }
            replies.push(reply);
        }
        for id in &touched.jobs {
            match m.state.job(id) {
                Some(job) => batch.put_cf(cf(db, VIEWS), store::job_key(id), encode_view(job)),
                None => batch.delete_cf(cf(db, VIEWS), store::job_key(id)),
            }
        }
        for id in &touched.hosts {
            if let Some(host) = m.state.host(id) {
                batch.put_cf(cf(db, VIEWS), store::host_key(id), encode_view(host));
            }
        }
        let meta = cf(db, META);
        batch.put_cf(meta, APPLIED, store::encode(&m.applied));
        batch.put_cf(meta, MEMBERSHIP, store::encode(&m.membership));
        batch.put_cf(meta, HEAD, store::encode(&m.head));
        let clock = m.state.log_clock();
        batch.put_cf(meta, LAST_AT, store::encode(&clock.at));
        batch.put_cf(meta, LAST_STAMP, store::encode(&clock.stamp));
        // Not synced: the entries are durable in the raft log, and a lost
        // tail of applies is re-applied from it at start-up, since the
        // applied id travels in this same batch.
        db.write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        drop(m);
        if touched.wake {
            self.work.notify_waiters();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = store::decode(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let db = &*self.db;
        let mut batch = WriteBatch::default();
        let everything = (vec![0u8], vec![0xffu8; 9]);
        for family in [VIEWS, EVENTS] {
            batch.delete_range_cf(cf(db, family), &everything.0, &everything.1);
        }
        for host in &data.hosts {
            batch.put_cf(cf(db, VIEWS), store::host_key(&host.id), encode_view(host));
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
        let state = State::from_views(data.cluster_id, clock, data.hosts, data.jobs);
        *m = Materialized {
            lease_timers: LeaseTimers::start(&state, Instant::now()),
            state,
            applied: meta.last_log_id,
            membership,
            head: data.head,
            anchor: Some(data.head),
        };
        drop(m);
        self.work.notify_waiters();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
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
        let (meta, mut data) = {
            let m = self.shared.read().expect("state lock");
            let hosts: Vec<HostView> = m.state.hosts().cloned().collect();
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
                jobs,
                blobs: Vec::new(),
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
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}
