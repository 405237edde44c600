//! The raft state machine: applies committed entries by running
//! `State::decide` and `State::apply`, seals each event into the hash chain,
//! and writes events, their Merkle tree hashes, the blobs they name,
//! changed views and the applied log id in one RocksDB batch. Snapshots are [`crate::snapshot`]'s.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rocksdb::{WriteBatch, DB};
use skyclaw_layout::meta::{
    APPLIED, CLUSTER_ID, HEAD, LAST_AT, LAST_STAMP, MEMBERSHIP, RETIREMENT,
};
use skyclaw_log_format::{ChainHead, Origin, Record};
use skyclaw_state::state::encode_view;
use skyclaw_state::{Affected, Command, Event, Rejection, State};
use tokio::sync::Notify;

use crate::materialized::{Materialized, Shared};
use crate::merkle;
use crate::metrics::Metrics;
use crate::raft::{
    Answer, Entry, LogId, Reply, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::snapshot::SnapshotFile;
use crate::store::{self, cf, BLOBS, COMPLETIONS, EVENTS, META, RETIRED, VIEWS};
use crate::Result;

#[derive(Clone)]
pub struct StateMachine {
    pub(crate) db: Arc<DB>,
    pub(crate) shared: Shared,
    /// Woken when work appears: long-polling claims wait on it.
    pub(crate) work: Arc<Notify>,
    pub(crate) metrics: Arc<Metrics>,
    /// Held while the kept snapshot file changes: a build runs in a task
    /// of its own and may overlap an install.
    pub(crate) keeping: Arc<std::sync::Mutex<()>>,
}

impl StateMachine {
    pub fn new(
        db: Arc<DB>,
        shared: Shared,
        work: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> StateMachine {
        StateMachine {
            db,
            shared,
            work,
            metrics,
            keeping: Arc::default(),
        }
    }

    pub(crate) fn write_error(e: impl std::fmt::Display) -> StorageError {
        StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
    }
}

/// Changes collected while applying one batch of entries.
#[derive(Default)]
struct Touched {
    jobs: BTreeSet<String>,
    hosts: BTreeSet<String>,
    keys: BTreeSet<String>,
    /// Jobs retired, with their views as they ended.
    retired: Vec<(String, Vec<u8>)>,
    wake: bool,
}

/// Runs one command against the state, sealing and staging its events.
// `StorageError` is what openraft's `apply` returns; see `log_store`.
#[allow(clippy::result_large_err)]
fn execute(
    machine: &StateMachine,
    m: &mut Materialized,
    batch: &mut WriteBatch,
    command: &Command,
    at: u64,
    origin: Origin,
    touched: &mut Touched,
) -> std::result::Result<std::result::Result<Answer, Rejection>, StorageError> {
    let decision = match m.state.decide(command, at) {
        Ok(decision) => decision,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let db = &*machine.db;
    let now = Instant::now();
    for event in &decision.events {
        if let Event::JobsRetired { finished_before } = event {
            let before = touched.retired.len();
            let leaving = m.state.retiring(*finished_before);
            touched
                .retired
                .extend(leaving.map(|job| (job.id.clone(), encode_view(job))));
            let retired = touched.retired.len() - before;
            machine.metrics.jobs_retired.increment(retired as u64);
        }
        m.state
            .apply(event, at)
            .map_err(|v| StateMachine::write_error(format!("decided event violates state: {v}")))?;
        count(&machine.metrics, event, &m.state, at);
        let cluster_id = m
            .state
            .cluster_id()
            .expect("applied events follow ClusterCreated");
        if let Event::ClusterCreated { .. } = event {
            m.head = ChainHead::genesis(cluster_id);
        }
        let seq = m.head.next_seq();
        let record = Record::seal(cluster_id, seq, at, origin, m.head.hash, event.encode());
        let bytes = record.encode();
        let (first, hashes) = m.tree.append(&bytes);
        merkle::stage(db, batch, first, &hashes);
        batch.put_cf(cf(db, EVENTS), store::u64_key(seq), bytes);
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
            Event::HostRegistered { host_id, .. } | Event::HostApproved { host_id, .. } => {
                touched.hosts.insert(host_id.clone());
                touched.wake = true;
                if let Event::HostApproved {
                    enrolled_with: Some(key_id),
                    ..
                } = event
                {
                    touched.keys.insert(key_id.clone());
                }
            }
            Event::HostRevoked { host_id } => {
                touched.hosts.insert(host_id.clone());
            }
            Event::KeyIssued(grant) => {
                touched.keys.insert(grant.key_id.clone());
            }
            Event::KeyRevoked { key_id } => {
                touched.keys.insert(key_id.clone());
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
                batch.put_cf(
                    cf(db, COMPLETIONS),
                    store::job_key(&done.job_id),
                    store::u64_key(seq),
                );
                touched.wake = true;
            }
            _ => {}
        }
        if let Some(job_id) = event.job_id() {
            touched.jobs.insert(job_id.to_string());
            // A job just enqueued is on no host: no lookup to find one.
            if matches!(event, Event::JobEnqueued(_)) {
                continue;
            }
            if let Some(host) = m.state.job(job_id).and_then(|j| j.assigned_host_id.clone()) {
                touched.hosts.insert(host);
            }
        }
    }
    Ok(Ok(answer(&m.state, decision.affected)))
}

/// Counts what an event applied at `at` did, for the node's metrics.
fn count(metrics: &Metrics, event: &Event, state: &State, at: u64) {
    match event {
        Event::JobEnqueued(_) => metrics.jobs_enqueued.increment(1),
        Event::JobLeased {
            job_id,
            lease_epoch,
            ..
        } => {
            metrics.leases_granted.increment(1);
            // Epochs count attempts: the first lease ends the job's wait.
            if let (1, Some(job)) = (*lease_epoch, state.job(job_id)) {
                let waited_ms = at.saturating_sub(job.created_at);
                metrics.pickup_seconds.record(waited_ms as f64 / 1000.0);
            }
        }
        Event::LeaseRenewed { .. } => metrics.leases_renewed.increment(1),
        Event::LeaseExpired { .. } => metrics.leases_expired.increment(1),
        _ => {}
    }
    if let Event::JobCompleted(_) | Event::LeaseExpired { .. } | Event::JobCancelled { .. } = event
    {
        if let Some(job) = event.job_id().and_then(|id| state.job(id)) {
            metrics.job_finished(job.status);
        }
    }
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
        let machine = &*self;
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
                        let result = execute(
                            machine,
                            &mut m,
                            &mut batch,
                            command,
                            at,
                            origin,
                            &mut touched,
                        )?;
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
        // A retired job's view moves out of the live views, so start-up
        // and snapshots never read it again.
        for (id, view) in &touched.retired {
            batch.delete_cf(cf(db, VIEWS), store::job_key(id));
            batch.put_cf(cf(db, RETIRED), store::job_key(id), view);
        }
        for id in &touched.hosts {
            if let Some(host) = m.state.host(id) {
                batch.put_cf(cf(db, VIEWS), store::host_key(id), encode_view(host));
            }
        }
        for id in &touched.keys {
            if let Some(key) = m.state.key(id) {
                batch.put_cf(cf(db, VIEWS), store::key_key(id), encode_view(key));
            }
        }
        let meta = cf(db, META);
        batch.put_cf(meta, APPLIED, store::encode(&m.applied));
        batch.put_cf(meta, MEMBERSHIP, store::encode(&m.membership));
        batch.put_cf(meta, HEAD, store::encode(&m.head));
        let clock = m.state.log_clock();
        batch.put_cf(meta, LAST_AT, store::encode(&clock.at));
        batch.put_cf(meta, LAST_STAMP, store::encode(&clock.stamp));
        batch.put_cf(meta, RETIREMENT, store::encode(&m.state.retirement()));
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        Ok(Box::new(self.receiving().await?))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        self.install(meta, *snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.current()
    }
}
