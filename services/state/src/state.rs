//! `State`: the views of every host and job plus the indexes that make
//! claims and expiry cheap, and the read-only queries over them. `decide`
//! and `apply` (its only ways to change) and the digest live in the
//! submodules below.
//!
//! Layout:
//! - [`decide`]: `State::decide`, a command's events or its rejection
//! - [`apply`]: `State::apply` and the invariants it checks ([`Violation`])
//! - [`receipts`]: `State::receipt_claim` and `State::check_receipt`, a
//!   completion's signed receipt
//! - [`digest`]: `State::digest` and [`encode_view`], a view's canonical bytes
//! - [`tally`]: counts by status, queue depth and recent activity, for people
//! - [`retirement`]: ended jobs leaving the live state after their retention

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustc_hash::FxHashMap;

use skyclaw_log_format::event::Hash32;

use crate::clock::LogClock;
use crate::view::{HostView, JobStatus, JobView, KeyView};

pub mod apply;
pub mod decide;
pub mod digest;
pub mod receipts;
pub mod retirement;
pub mod tally;

pub use apply::Violation;
pub use digest::encode_view;
pub use retirement::{Retirement, MAX_RETIRED_PER_EVENT};
pub use tally::Tally;

/// Queue order: higher priority first, then older first.
type QueueKey = (Reverse<i32>, u64, String);

#[derive(Clone, Debug, Default)]
pub struct State {
    cluster_id: Option<String>,
    hosts: BTreeMap<String, HostView>,
    /// Job ids are UUIDs the coordinator makes, so a fast hash is safe.
    /// Boxed: a table slot is then 32 bytes, not a whole view, so the
    /// table's spare capacity costs little with a million jobs.
    jobs: FxHashMap<String, Box<JobView>>,
    /// Every job id by enqueue order.
    by_order: BTreeMap<u64, String>,
    queue: BTreeSet<QueueKey>,
    /// Live leases by expiry time.
    leases: BTreeSet<(u64, String)>,
    /// Live leases by holder: the jobs each host holds.
    held: HashMap<String, BTreeSet<String>>,
    /// Jobs by idempotency key, within their account ([`idempotency_slot`]).
    idempotency: HashMap<String, String>,
    /// API keys by id, and their ids by the hash of their secret.
    keys: BTreeMap<String, KeyView>,
    key_hashes: HashMap<Hash32, String>,
    /// Jobs that ended, by when: what retirement takes, oldest first.
    ended: BTreeSet<(u64, String)>,
    /// What retirement took out of the state so far (its `next_order` is
    /// kept here in `next_order`).
    retirement: Retirement,
    next_order: u64,
    clock: LogClock,
    tally: Tally,
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The time a proposal stamped `stamp` would be decided and applied at,
    /// were it next (see [`LogClock`]): never earlier than what came before.
    pub fn clock(&self, stamp: u64) -> u64 {
        self.clock.time_of(stamp)
    }

    /// Moves the log's clock on for the next proposal, stamped `stamp`, and
    /// returns the time to decide and apply its commands at.
    pub fn tick(&mut self, stamp: u64) -> u64 {
        self.clock.advance(stamp)
    }

    /// The time of a proposal made before the log's clock followed stamp
    /// differences: `max(stamp, last time)`, as it was applied then, so
    /// replaying an old entry gives the time it first got. The clock then
    /// counts on from there.
    pub fn tick_as_before(&mut self, stamp: u64) -> u64 {
        let at = stamp.max(self.clock.at);
        self.clock = LogClock::resumed(at);
        at
    }

    pub fn host(&self, id: &str) -> Option<&HostView> {
        self.hosts.get(id)
    }

    pub fn hosts(&self) -> impl Iterator<Item = &HostView> {
        self.hosts.values()
    }

    pub fn key(&self, id: &str) -> Option<&KeyView> {
        self.keys.get(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &KeyView> {
        self.keys.values()
    }

    /// The key whose secret hashes to `hash`, if one was issued.
    pub fn key_by_hash(&self, hash: &Hash32) -> Option<&KeyView> {
        self.keys.get(self.key_hashes.get(hash)?)
    }

    pub fn job(&self, id: &str) -> Option<&JobView> {
        self.jobs.get(id).map(Box::as_ref)
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    pub fn queued_count(&self) -> usize {
        self.queue.len()
    }

    pub fn leased_count(&self) -> usize {
        self.leases.len()
    }

    /// Jobs by status, the queue's depth and the last hour's activity:
    /// kept as jobs change, so reading it costs nothing at any size.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// How many jobs have each status, in the order of [`JobStatus::ALL`]:
    /// those in the state and those retired from it.
    pub fn status_counts(&self) -> [u64; 5] {
        JobStatus::ALL
            .map(|status| self.tally.count(status) + self.retirement.counts[status.index()])
    }

    /// Jobs in enqueue order, starting after the job `after` (exclusive).
    pub fn jobs_after<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a JobView> {
        let start = after
            .and_then(|id| self.jobs.get(id))
            .map_or(0, |job| job.order + 1);
        self.jobs_from_order(start)
    }

    /// Jobs newest first, starting before the job `before` (exclusive).
    pub fn jobs_before<'a>(&'a self, before: Option<&str>) -> impl Iterator<Item = &'a JobView> {
        let end = before
            .and_then(|id| self.jobs.get(id))
            .map_or(u64::MAX, |job| job.order);
        self.jobs_before_order(end)
    }

    /// Jobs in enqueue order, from enqueue order `start` on.
    pub fn jobs_from_order(&self, start: u64) -> impl Iterator<Item = &JobView> {
        self.by_order
            .range(start..)
            .filter_map(|(_, id)| self.job(id))
    }

    /// Jobs newest first, enqueued before enqueue order `end`.
    pub fn jobs_before_order(&self, end: u64) -> impl Iterator<Item = &JobView> {
        self.by_order
            .range(..end)
            .rev()
            .filter_map(|(_, id)| self.job(id))
    }

    /// The live leases `host_id` holds, as (job id, epoch).
    pub fn leases_held_by(&self, host_id: &str) -> Vec<(String, u32)> {
        self.held
            .get(host_id)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((id.clone(), self.jobs.get(id)?.lease.as_ref()?.epoch)))
            .collect()
    }

    /// The jobs `host_id` still holds that a claim with `claim_key` took.
    pub fn claimed_with(&self, host_id: &str, claim_key: &str) -> Vec<String> {
        self.held
            .get(host_id)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.jobs[*id]
                    .lease
                    .as_ref()
                    .is_some_and(|lease| lease.claim_key.as_deref() == Some(claim_key))
            })
            .cloned()
            .collect()
    }

    /// The earliest lease expiry, if any lease is live.
    pub fn next_expiry(&self) -> Option<u64> {
        self.leases.first().map(|(at, _)| *at)
    }

    /// Every leased job, the earliest expiry first.
    pub fn leased_jobs(&self) -> impl Iterator<Item = &JobView> {
        self.leases.iter().map(|(_, id)| &*self.jobs[id])
    }

    /// Whether a queued job exists that `host_id` could take now.
    pub fn has_work_for(&self, host_id: &str) -> bool {
        let Some(host) = self.hosts.get(host_id) else {
            return false;
        };
        host.active_leases < host.max_parallel
            && self
                .queue
                .iter()
                .any(|(_, _, id)| host.can_run(&self.jobs[id]))
    }

    /// Rebuilds a state from persisted views (a coordinator's restart, a
    /// snapshot install), without replaying history. Where jobs were
    /// retired, [`State::resume_retirement`] restores what the views no
    /// longer show.
    pub fn from_views<J: Into<Box<JobView>>>(
        cluster_id: Option<String>,
        clock: LogClock,
        hosts: impl IntoIterator<Item = HostView>,
        keys: impl IntoIterator<Item = KeyView>,
        jobs: impl IntoIterator<Item = J>,
    ) -> State {
        let mut state = State {
            cluster_id,
            clock,
            ..State::default()
        };
        for host in hosts {
            state.hosts.insert(host.id.clone(), host);
        }
        for key in keys {
            state.index_key(key);
        }
        // The same indexes as `index_job` builds one job at a time, built
        // here in bulk from jobs in enqueue order: a million sorted runs
        // collect far faster than a million scattered inserts.
        let mut jobs: Vec<Box<JobView>> = jobs.into_iter().map(Into::into).collect();
        jobs.sort_unstable_by_key(|job| job.order);
        state.next_order = jobs.last().map_or(0, |job| job.order + 1);
        state.by_order = jobs.iter().map(|j| (j.order, j.id.clone())).collect();
        state.queue = jobs
            .iter()
            .filter(|job| job.status == JobStatus::Queued)
            .map(|job| queue_key(job))
            .collect();
        state.ended = jobs
            .iter()
            .filter(|job| job.status.is_final())
            .map(|job| (job.updated_at, job.id.clone()))
            .collect();
        state.leases = jobs
            .iter()
            .filter(|job| job.status == JobStatus::Leased)
            .filter_map(|job| Some((job.lease.as_ref()?.expires_at, job.id.clone())))
            .collect();
        for job in jobs.iter().filter(|job| job.status == JobStatus::Leased) {
            if let Some(lease) = &job.lease {
                state.hold(&lease.host_id, &job.id);
            }
        }
        state.idempotency = jobs
            .iter()
            .filter_map(|job| {
                let key = job.idempotency_key.as_deref()?;
                Some((
                    idempotency_slot(job.account.as_deref(), key),
                    job.id.clone(),
                ))
            })
            .collect();
        state.tally = Tally::from_views(jobs.iter().map(Box::as_ref), state.clock.at);
        state.jobs.reserve(jobs.len());
        for job in jobs {
            state.jobs.insert(job.id.clone(), job);
        }
        state
    }

    pub fn last_at(&self) -> u64 {
        self.clock.at
    }

    /// Where the log's clock stands, to persist beside the views.
    pub fn log_clock(&self) -> LogClock {
        self.clock
    }

    fn index_key(&mut self, key: KeyView) {
        self.key_hashes
            .insert(key.grant.hash, key.grant.key_id.clone());
        self.keys.insert(key.grant.key_id.clone(), key);
    }

    fn hold(&mut self, host_id: &str, job_id: &str) {
        // A host that holds jobs already keeps its entry: no copy of its id.
        match self.held.get_mut(host_id) {
            Some(jobs) => {
                jobs.insert(job_id.to_string());
            }
            None => {
                let jobs = BTreeSet::from([job_id.to_string()]);
                self.held.insert(host_id.to_string(), jobs);
            }
        }
    }

    fn index_job(&mut self, job: &JobView) {
        self.by_order.insert(job.order, job.id.clone());
        if let Some(key) = &job.idempotency_key {
            let slot = idempotency_slot(job.account.as_deref(), key);
            self.idempotency.insert(slot, job.id.clone());
        }
        match job.status {
            JobStatus::Queued => {
                self.queue.insert(queue_key(job));
            }
            JobStatus::Leased => {
                if let Some(lease) = &job.lease {
                    self.leases.insert((lease.expires_at, job.id.clone()));
                    self.hold(&lease.host_id, &job.id);
                }
            }
            _ => {}
        }
    }
}

/// Where an idempotency key is kept: within its account, so one account's
/// keys never meet another's (neither taken nor seen). Jobs of no account
/// keep the key as it is, as logs before accounts have them. Ids and
/// accounts hold no U+001F.
fn idempotency_slot(account: Option<&str>, key: &str) -> String {
    match account {
        None => key.to_string(),
        Some(account) => format!("{account}\u{1f}{key}"),
    }
}

fn queue_key(job: &JobView) -> QueueKey {
    (Reverse(job.priority), job.order, job.id.clone())
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
