//! `State`: the views of every host and job plus the indexes that make
//! claims and expiry cheap; `decide` and `apply` are its only ways to change.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustc_hash::FxHashMap;
use skyclaw_log_format::event::{BlobRef, Completion, Event, Hash32, JobSpec, Payload};

use crate::clock::LogClock;
use crate::command::{Command, Decision, Outcome, Rejection};
use crate::view::{HostView, JobOutcome, JobStatus, JobView, Lease};
use crate::{MAX_ATTEMPTS_LIMIT, MAX_PARALLEL_LIMIT};

/// An event that does not fit the state it is applied to. Events made by
/// `decide` never produce one; an auditor replaying a foreign log may.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

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
    idempotency: HashMap<String, String>,
    next_order: u64,
    clock: LogClock,
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

    /// Jobs in enqueue order, starting after the job `after` (exclusive).
    pub fn jobs_after<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a JobView> {
        let start = after
            .and_then(|id| self.jobs.get(id))
            .map_or(0, |job| job.order + 1);
        self.by_order
            .range(start..)
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

    /// A BLAKE3 hash over the cluster id and every host and job view in a
    /// fixed order. Replicas (and auditors) that applied the same events
    /// agree on it.
    pub fn digest(&self) -> Hash32 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"skyclaw.state.digest.v1\0");
        let cluster_id = self.cluster_id.as_deref().unwrap_or("");
        hasher.update(&(cluster_id.len() as u64).to_be_bytes());
        hasher.update(cluster_id.as_bytes());
        // One buffer for every view: the digest covers millions of them.
        let mut bytes = Vec::with_capacity(512);
        for host in self.hosts.values() {
            digest_view(&mut hasher, &mut bytes, b'h', host);
        }
        for id in self.by_order.values() {
            digest_view(&mut hasher, &mut bytes, b'j', &self.jobs[id]);
        }
        Hash32(*hasher.finalize().as_bytes())
    }

    /// Rebuilds a state from persisted views (a coordinator's restart, a
    /// snapshot install), without replaying history.
    pub fn from_views<J: Into<Box<JobView>>>(
        cluster_id: Option<String>,
        clock: LogClock,
        hosts: impl IntoIterator<Item = HostView>,
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
            .filter_map(|job| Some((job.idempotency_key.clone()?, job.id.clone())))
            .collect();
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

    fn hold(&mut self, host_id: &str, job_id: &str) {
        self.held
            .entry(host_id.to_string())
            .or_default()
            .insert(job_id.to_string());
    }

    fn index_job(&mut self, job: &JobView) {
        self.by_order.insert(job.order, job.id.clone());
        if let Some(key) = &job.idempotency_key {
            self.idempotency.insert(key.clone(), job.id.clone());
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

    // ----- decide -------------------------------------------------------

    /// What `command` leads to at time `at` (see [`State::clock`]). Pure: the
    /// state is unchanged until the events are applied.
    pub fn decide(&self, command: &Command, at: u64) -> Result<Decision, Rejection> {
        if self.cluster_id.is_none() && !matches!(command, Command::CreateCluster { .. }) {
            return Err(Rejection::NotInitialized);
        }
        match command {
            Command::CreateCluster { cluster_id } => Ok(Decision {
                events: match self.cluster_id {
                    None => vec![Event::ClusterCreated {
                        cluster_id: cluster_id.clone(),
                    }],
                    Some(_) => vec![],
                },
                outcome: Outcome::Done,
            }),
            Command::RegisterHost {
                host_id,
                name,
                capabilities,
                max_parallel,
                sandbox,
            } => self.decide_register(
                host_id,
                name,
                capabilities,
                *max_parallel,
                sandbox.as_deref(),
            ),
            Command::Enqueue { jobs } => self.decide_enqueue(jobs),
            Command::Claim {
                host_id,
                max_jobs,
                lease_ms,
                claim_key,
            } => self.decide_claim(host_id, *max_jobs, at + lease_ms, claim_key.as_deref()),
            Command::Renew {
                host_id,
                running,
                lease_ms,
            } => self.decide_renew(host_id, running, at, *lease_ms),
            Command::Complete {
                job_id,
                host_id,
                lease_epoch,
                success,
                duration_ms,
                exit_code,
                stdout,
                stderr,
                error,
            } => {
                let job = self.existing_job(job_id)?;
                if let Some(done) = self.repeated_completion(job, host_id, *lease_epoch) {
                    return Ok(done);
                }
                let epoch = self.live_lease(job, host_id, *lease_epoch)?;
                Ok(Decision {
                    events: vec![Event::JobCompleted(Box::new(Completion {
                        job_id: job_id.clone(),
                        host_id: host_id.clone(),
                        lease_epoch: epoch,
                        success: *success,
                        duration_ms: *duration_ms,
                        exit_code: *exit_code,
                        stdout: BlobRef::of(stdout.as_bytes()),
                        stderr: BlobRef::of(stderr.as_bytes()),
                        error: error.clone(),
                    }))],
                    outcome: Outcome::Job(job_id.clone()),
                })
            }
            Command::Cancel { job_id } => {
                let job = self.existing_job(job_id)?;
                let job_id = job_id.clone();
                let events = match job.status {
                    JobStatus::Queued => vec![Event::JobCancelled {
                        job_id: job_id.clone(),
                    }],
                    JobStatus::Leased if !job.cancel_requested => vec![Event::CancelRequested {
                        job_id: job_id.clone(),
                    }],
                    JobStatus::Leased | JobStatus::Cancelled => vec![],
                    JobStatus::Completed | JobStatus::Failed => {
                        return Err(Rejection::Conflict(format!(
                            "job {job_id} already {}; it cannot be cancelled",
                            job.status.as_str()
                        )))
                    }
                };
                Ok(Decision {
                    events,
                    outcome: Outcome::Job(job_id),
                })
            }
            Command::Expire { leases } => Ok(Decision {
                events: self.expirable(leases, at),
                outcome: Outcome::Done,
            }),
            Command::ExpireLeases => Ok(Decision {
                events: self
                    .leases
                    .iter()
                    .take_while(|(expires_at, _)| *expires_at <= at)
                    .map(|(_, job_id)| Event::LeaseExpired {
                        job_id: job_id.clone(),
                        lease_epoch: self.jobs[job_id].attempts,
                    })
                    .collect(),
                outcome: Outcome::Done,
            }),
        }
    }

    /// The named leases that are still live under the epoch named and whose
    /// time has come by the log's clock too; the others were renewed, ended
    /// or replaced since they were named, or are not due yet.
    fn expirable(&self, leases: &[(String, u32)], at: u64) -> Vec<Event> {
        let mut named = BTreeSet::new();
        leases
            .iter()
            .filter(|(job_id, epoch)| named.insert((job_id.as_str(), *epoch)))
            .filter(|(job_id, epoch)| {
                self.jobs
                    .get(job_id)
                    .and_then(|job| job.lease.as_ref())
                    .is_some_and(|lease| lease.epoch == *epoch && lease.expires_at <= at)
            })
            .map(|(job_id, epoch)| Event::LeaseExpired {
                job_id: job_id.clone(),
                lease_epoch: *epoch,
            })
            .collect()
    }

    fn decide_register(
        &self,
        host_id: &str,
        name: &str,
        capabilities: &[String],
        max_parallel: u32,
        sandbox: Option<&str>,
    ) -> Result<Decision, Rejection> {
        if host_id.is_empty() || host_id.len() > 128 {
            return Err(Rejection::Invalid(
                "hostId must be 1 to 128 characters".into(),
            ));
        }
        if name.trim().is_empty() {
            return Err(Rejection::Invalid("name must not be empty".into()));
        }
        if !(1..=MAX_PARALLEL_LIMIT).contains(&max_parallel) {
            return Err(Rejection::Invalid(format!(
                "maxParallel must be between 1 and {MAX_PARALLEL_LIMIT}"
            )));
        }
        check_capabilities("capabilities", capabilities)?;
        let unchanged = self.hosts.get(host_id).is_some_and(|host| {
            host.name == name
                && host.capabilities == capabilities
                && host.max_parallel == max_parallel
                && host.sandbox.as_deref() == sandbox
        });
        let events = if unchanged {
            vec![]
        } else {
            vec![Event::HostRegistered {
                host_id: host_id.to_string(),
                name: name.to_string(),
                capabilities: capabilities.to_vec(),
                max_parallel,
                sandbox: sandbox.map(str::to_string),
            }]
        };
        Ok(Decision {
            events,
            outcome: Outcome::Host(host_id.to_string()),
        })
    }

    fn decide_enqueue(&self, specs: &[JobSpec]) -> Result<Decision, Rejection> {
        if specs.is_empty() {
            return Err(Rejection::Invalid("jobs must not be empty".into()));
        }
        let mut events = Vec::with_capacity(specs.len());
        let mut ids = Vec::with_capacity(specs.len());
        let mut new_ids = BTreeSet::new();
        let mut new_keys = BTreeSet::new();
        for spec in specs {
            check_spec(spec)?;
            if let Some(key) = &spec.idempotency_key {
                if !new_keys.insert(key.as_str()) {
                    return Err(Rejection::Invalid(format!(
                        "idempotency key {key:?} appears twice in one request"
                    )));
                }
                if let Some(existing) = self.idempotency.get(key) {
                    let job = &self.jobs[existing];
                    if job.request_hash != spec.request_hash {
                        return Err(Rejection::Conflict(format!(
                            "idempotency key {key:?} was already used for job {existing} with a different request"
                        )));
                    }
                    ids.push(existing.clone());
                    continue;
                }
            }
            if self.jobs.contains_key(&spec.job_id) || !new_ids.insert(spec.job_id.as_str()) {
                return Err(Rejection::Conflict(format!(
                    "job id {} is already taken",
                    spec.job_id
                )));
            }
            ids.push(spec.job_id.clone());
            events.push(Event::JobEnqueued(Box::new(spec.clone())));
        }
        Ok(Decision {
            events,
            outcome: Outcome::Jobs(ids),
        })
    }

    fn decide_claim(
        &self,
        host_id: &str,
        max_jobs: u32,
        lease_expires_at: u64,
        claim_key: Option<&str>,
    ) -> Result<Decision, Rejection> {
        let host = self
            .hosts
            .get(host_id)
            .ok_or_else(|| Rejection::NotFound(format!("host {host_id} is not registered")))?;
        if let Some(key) = claim_key {
            let again = self.claimed_with(host_id, key);
            if !again.is_empty() {
                return Ok(Decision {
                    events: vec![],
                    outcome: Outcome::Jobs(again),
                });
            }
        }
        let free = host.max_parallel.saturating_sub(host.active_leases);
        let take = max_jobs.min(free) as usize;
        let mut ids = Vec::with_capacity(take);
        let events = self
            .queue
            .iter()
            .map(|(_, _, id)| &*self.jobs[id])
            .filter(|job| host.can_run(job))
            .take(take)
            .map(|job| {
                ids.push(job.id.clone());
                Event::JobLeased {
                    job_id: job.id.clone(),
                    host_id: host_id.to_string(),
                    lease_epoch: job.attempts + 1,
                    lease_expires_at,
                    claim_key: claim_key.map(str::to_string),
                }
            })
            .collect();
        Ok(Decision {
            events,
            outcome: Outcome::Jobs(ids),
        })
    }

    fn decide_renew(
        &self,
        host_id: &str,
        running: &[(String, u32)],
        at: u64,
        lease_ms: u64,
    ) -> Result<Decision, Rejection> {
        if !self.hosts.contains_key(host_id) {
            return Err(Rejection::NotFound(format!(
                "host {host_id} is not registered"
            )));
        }
        let mut events = Vec::new();
        let mut lost = Vec::new();
        let mut seen = BTreeSet::new();
        for (job_id, epoch) in running {
            // A job reported twice is still one lease: one renewal at most.
            if !seen.insert(job_id.as_str()) {
                continue;
            }
            let lease = self
                .jobs
                .get(job_id)
                .and_then(|job| job.lease.as_ref())
                .filter(|lease| lease.host_id == host_id && lease.epoch == *epoch);
            match lease {
                None => lost.push(job_id.clone()),
                // Renew once a lease is past half its life: one event per
                // lease period instead of one per heartbeat.
                Some(lease) if lease.expires_at.saturating_sub(at) < lease_ms / 2 => {
                    events.push(Event::LeaseRenewed {
                        job_id: job_id.clone(),
                        lease_epoch: *epoch,
                        lease_expires_at: at + lease_ms,
                    })
                }
                Some(_) => {}
            }
        }
        let cancel = self
            .held
            .get(host_id)
            .into_iter()
            .flatten()
            .filter(|id| self.jobs[*id].cancel_requested)
            .cloned()
            .collect();
        Ok(Decision {
            events,
            outcome: Outcome::Renewed {
                host_id: host_id.to_string(),
                cancel,
                lost,
            },
        })
    }

    fn existing_job(&self, job_id: &str) -> Result<&JobView, Rejection> {
        self.job(job_id)
            .ok_or_else(|| Rejection::NotFound(format!("job {job_id} not found")))
    }

    /// A completion the log already holds (a host retrying after a lost
    /// answer) is answered again, not refused.
    fn repeated_completion(
        &self,
        job: &JobView,
        host_id: &str,
        lease_epoch: Option<u32>,
    ) -> Option<Decision> {
        let repeated = job.status.is_final()
            && job.outcome.is_some()
            && job.assigned_host_id.as_deref() == Some(host_id)
            && lease_epoch.is_none_or(|epoch| epoch == job.attempts);
        repeated.then(|| Decision {
            events: vec![],
            outcome: Outcome::Job(job.id.clone()),
        })
    }

    /// The epoch of the live lease `host_id` holds on `job`, or why not.
    fn live_lease(
        &self,
        job: &JobView,
        host_id: &str,
        lease_epoch: Option<u32>,
    ) -> Result<u32, Rejection> {
        let id = &job.id;
        let Some(lease) = &job.lease else {
            return Err(match job.status {
                JobStatus::Queued => Rejection::StaleLease(format!(
                    "job {id} is not leased: its lease expired and it was queued again"
                )),
                status => Rejection::StaleLease(format!("job {id} is already {}", status.as_str())),
            });
        };
        if lease.host_id != host_id {
            return Err(Rejection::StaleLease(format!(
                "job {id} is leased to another host"
            )));
        }
        match lease_epoch {
            Some(epoch) if epoch != lease.epoch => Err(Rejection::StaleLease(format!(
                "lease epoch {epoch} of job {id} is stale; the live lease is epoch {}",
                lease.epoch
            ))),
            _ => Ok(lease.epoch),
        }
    }

    // ----- apply --------------------------------------------------------

    /// Folds one event into the views at time `at`. The event is checked
    /// against the state first, so a `Violation` leaves the state unchanged.
    pub fn apply(&mut self, event: &Event, at: u64) -> Result<(), Violation> {
        self.check(event, at)?;
        // A coordinator ticks before it applies, so this moves nothing; a
        // replay of events alone has no stamps, only the times they carry.
        if at > self.clock.at {
            self.clock = LogClock::resumed(at);
        }
        match event {
            Event::ClusterCreated { cluster_id } => self.cluster_id = Some(cluster_id.clone()),
            Event::HostRegistered {
                host_id,
                name,
                capabilities,
                max_parallel,
                sandbox,
            } => {
                let host = self
                    .hosts
                    .entry(host_id.clone())
                    .or_insert_with(|| HostView {
                        id: host_id.clone(),
                        name: String::new(),
                        capabilities: vec![],
                        max_parallel: 1,
                        active_leases: 0,
                        registered_at: at,
                        updated_at: at,
                        sandbox: None,
                    });
                host.name = name.clone();
                host.sandbox = sandbox.clone();
                host.capabilities = capabilities.clone();
                host.max_parallel = *max_parallel;
                host.updated_at = at;
            }
            Event::JobEnqueued(spec) => {
                let job = JobView {
                    id: spec.job_id.clone(),
                    created_at: at,
                    updated_at: at,
                    status: JobStatus::Queued,
                    attempts: 0,
                    max_attempts: spec.max_attempts,
                    priority: spec.priority,
                    order: self.next_order,
                    required_capabilities: spec.required_capabilities.clone(),
                    payload: spec.payload.clone(),
                    lease: None,
                    assigned_host_id: None,
                    cancel_requested: false,
                    outcome: None,
                    error: None,
                    idempotency_key: spec.idempotency_key.clone(),
                    request_hash: spec.request_hash,
                };
                self.next_order += 1;
                self.index_job(&job);
                self.jobs.insert(job.id.clone(), Box::new(job));
            }
            Event::JobLeased {
                job_id,
                host_id,
                lease_epoch,
                lease_expires_at,
                claim_key,
            } => {
                self.hold(host_id, job_id);
                let job = self.jobs.get_mut(job_id).expect("checked");
                self.queue.remove(&queue_key(job));
                self.leases.insert((*lease_expires_at, job_id.clone()));
                job.status = JobStatus::Leased;
                job.attempts = *lease_epoch;
                job.assigned_host_id = Some(host_id.clone());
                job.lease = Some(Lease {
                    host_id: host_id.clone(),
                    epoch: *lease_epoch,
                    expires_at: *lease_expires_at,
                    claim_key: claim_key.clone(),
                });
                job.updated_at = at;
                self.hosts.get_mut(host_id).expect("checked").active_leases += 1;
            }
            Event::LeaseRenewed {
                job_id,
                lease_expires_at,
                ..
            } => {
                let job = self.jobs.get_mut(job_id).expect("checked");
                let lease = job.lease.as_mut().expect("checked");
                self.leases.remove(&(lease.expires_at, job_id.clone()));
                self.leases.insert((*lease_expires_at, job_id.clone()));
                lease.expires_at = *lease_expires_at;
                job.updated_at = at;
            }
            Event::LeaseExpired { job_id, .. } => {
                self.release_lease(job_id);
                let job = self.jobs.get_mut(job_id).expect("checked");
                job.updated_at = at;
                if job.cancel_requested {
                    job.status = JobStatus::Cancelled;
                    job.error = Some("cancelled; the host stopped answering".into());
                } else if job.attempts >= job.max_attempts {
                    job.status = JobStatus::Failed;
                    job.error = Some(format!(
                        "lease expired on attempt {} of {} (maxAttempts reached)",
                        job.attempts, job.max_attempts
                    ));
                } else {
                    job.status = JobStatus::Queued;
                    let key = queue_key(job);
                    self.queue.insert(key);
                }
            }
            Event::JobCompleted(done) => {
                self.release_lease(&done.job_id);
                let job = self.jobs.get_mut(&done.job_id).expect("checked");
                job.updated_at = at;
                job.outcome = Some(JobOutcome {
                    finished_at: at,
                    duration_ms: done.duration_ms,
                    exit_code: done.exit_code,
                    stdout: done.stdout,
                    stderr: done.stderr,
                });
                job.error = done.error.clone();
                job.status = if job.cancel_requested {
                    JobStatus::Cancelled
                } else if done.success {
                    JobStatus::Completed
                } else {
                    if job.error.is_none() {
                        job.error = Some(match done.exit_code {
                            Some(code) => format!("exited with code {code}"),
                            None => "failed".into(),
                        });
                    }
                    JobStatus::Failed
                };
            }
            Event::CancelRequested { job_id } => {
                let job = self.jobs.get_mut(job_id).expect("checked");
                job.cancel_requested = true;
                job.updated_at = at;
            }
            Event::JobCancelled { job_id } => {
                let job = self.jobs.get_mut(job_id).expect("checked");
                self.queue.remove(&queue_key(job));
                job.status = JobStatus::Cancelled;
                job.cancel_requested = true;
                job.updated_at = at;
            }
        }
        Ok(())
    }

    /// Drops the live lease of `job_id` from the job, the index and its host.
    fn release_lease(&mut self, job_id: &str) {
        let job = self.jobs.get_mut(job_id).expect("checked");
        let lease = job.lease.take().expect("checked");
        self.leases.remove(&(lease.expires_at, job_id.to_string()));
        if let Some(held) = self.held.get_mut(&lease.host_id) {
            held.remove(job_id);
            if held.is_empty() {
                self.held.remove(&lease.host_id);
            }
        }
        if let Some(host) = self.hosts.get_mut(&lease.host_id) {
            host.active_leases -= 1;
        }
    }

    /// Whether `event` may follow the current state: the invariants every
    /// log must keep, checked before anything changes.
    fn check(&self, event: &Event, at: u64) -> Result<(), Violation> {
        let fail = |message: String| Err(Violation(message));
        if self.cluster_id.is_none() && !matches!(event, Event::ClusterCreated { .. }) {
            return fail("an event precedes the cluster's creation".into());
        }
        let job = |id: &str| {
            self.job(id)
                .ok_or_else(|| Violation(format!("job {id} is unknown")))
        };
        let live_lease = |id: &str, epoch: u32| -> Result<&Lease, Violation> {
            let job = job(id)?;
            match &job.lease {
                Some(lease) if lease.epoch == epoch => Ok(lease),
                Some(lease) => Err(Violation(format!(
                    "job {id}: epoch {epoch} is not the live lease (epoch {})",
                    lease.epoch
                ))),
                None => Err(Violation(format!("job {id} has no live lease"))),
            }
        };
        match event {
            Event::ClusterCreated { .. } if self.cluster_id.is_some() => {
                fail("the cluster is created twice".into())
            }
            Event::ClusterCreated { .. } | Event::HostRegistered { .. } => Ok(()),
            Event::JobEnqueued(spec) => {
                if self.jobs.contains_key(&spec.job_id) {
                    return fail(format!("job {} is enqueued twice", spec.job_id));
                }
                if spec.max_attempts == 0 {
                    return fail(format!("job {} allows no attempt", spec.job_id));
                }
                match &spec.idempotency_key {
                    Some(key) if self.idempotency.contains_key(key) => {
                        fail(format!("idempotency key {key:?} is used twice"))
                    }
                    _ => Ok(()),
                }
            }
            Event::JobLeased {
                job_id,
                host_id,
                lease_epoch,
                ..
            } => {
                let job = job(job_id)?;
                if job.status != JobStatus::Queued {
                    return fail(format!(
                        "job {job_id} is leased while {}",
                        job.status.as_str()
                    ));
                }
                if *lease_epoch != job.attempts + 1 {
                    return fail(format!(
                        "job {job_id} leased with epoch {lease_epoch} after {} attempts",
                        job.attempts
                    ));
                }
                if *lease_epoch > job.max_attempts {
                    return fail(format!(
                        "job {job_id} leased for attempt {lease_epoch} of {}",
                        job.max_attempts
                    ));
                }
                let host = self
                    .hosts
                    .get(host_id)
                    .ok_or_else(|| Violation(format!("host {host_id} is unknown")))?;
                if host.active_leases >= host.max_parallel {
                    return fail(format!(
                        "host {host_id} would hold more than {} leases",
                        host.max_parallel
                    ));
                }
                if !host.can_run(job) {
                    return fail(format!(
                        "host {host_id} lacks a capability job {job_id} requires"
                    ));
                }
                Ok(())
            }
            Event::LeaseRenewed {
                job_id,
                lease_epoch,
                ..
            } => live_lease(job_id, *lease_epoch).map(drop),
            Event::LeaseExpired {
                job_id,
                lease_epoch,
            } => {
                let lease = live_lease(job_id, *lease_epoch)?;
                if at < lease.expires_at {
                    return fail(format!(
                        "job {job_id}: lease epoch {lease_epoch} expired before its time"
                    ));
                }
                Ok(())
            }
            Event::JobCompleted(done) => {
                let lease = live_lease(&done.job_id, done.lease_epoch)?;
                if lease.host_id != done.host_id {
                    return fail(format!(
                        "job {} completed by {}, but leased to {}",
                        done.job_id, done.host_id, lease.host_id
                    ));
                }
                Ok(())
            }
            Event::CancelRequested { job_id } => match job(job_id)?.status {
                JobStatus::Leased => Ok(()),
                status => fail(format!(
                    "cancel requested for job {job_id} while {}",
                    status.as_str()
                )),
            },
            Event::JobCancelled { job_id } => match job(job_id)?.status {
                JobStatus::Queued => Ok(()),
                status => fail(format!(
                    "job {job_id} cancelled from the queue while {}",
                    status.as_str()
                )),
            },
        }
    }
}

fn queue_key(job: &JobView) -> QueueKey {
    (Reverse(job.priority), job.order, job.id.clone())
}

/// The canonical bytes of a view, for the digest and for persistence.
pub fn encode_view<T: serde::Serialize>(view: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(view).expect("views encode")
}

/// Adds `tag ‖ len: u64 ‖ encode_view(view)` to the digest, encoding into
/// `buffer`.
fn digest_view<T: serde::Serialize>(
    hasher: &mut blake3::Hasher,
    buffer: &mut Vec<u8>,
    tag: u8,
    view: &T,
) {
    buffer.clear();
    rmp_serde::encode::write_named(buffer, view).expect("views encode");
    hasher.update(&[tag]);
    hasher.update(&(buffer.len() as u64).to_be_bytes());
    hasher.update(buffer);
}

fn check_capabilities(field: &str, capabilities: &[String]) -> Result<(), Rejection> {
    if capabilities.len() > 64 {
        return Err(Rejection::Invalid(format!(
            "{field} may list at most 64 entries"
        )));
    }
    match capabilities.iter().find(|c| c.is_empty() || c.len() > 64) {
        Some(bad) => Err(Rejection::Invalid(format!(
            "{field} contains an invalid entry {bad:?} (1 to 64 characters)"
        ))),
        None => Ok(()),
    }
}

/// Checks what an enqueuer controls; the message names the field.
fn check_spec(spec: &JobSpec) -> Result<(), Rejection> {
    let invalid = |message: String| Err(Rejection::Invalid(message));
    if spec.job_id.is_empty() || spec.job_id.len() > 128 {
        return invalid("job id must be 1 to 128 characters".into());
    }
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&spec.max_attempts) {
        return invalid(format!(
            "maxAttempts must be between 1 and {MAX_ATTEMPTS_LIMIT}"
        ));
    }
    check_capabilities(
        "requirement.requiredCapabilities",
        &spec.required_capabilities,
    )?;
    let (env, timeout_ms) = match &spec.payload {
        Payload::Shell {
            command,
            env,
            timeout_ms,
            ..
        } => {
            if command.trim().is_empty() {
                return invalid("payload.command must not be empty".into());
            }
            (env, timeout_ms)
        }
        Payload::AutomatonRun {
            env, timeout_ms, ..
        } => (env, timeout_ms),
    };
    if *timeout_ms == Some(0) {
        return invalid("payload.timeoutMs must be positive".into());
    }
    if let Some(key) = env
        .keys()
        .find(|key| key.is_empty() || key.contains('=') || key.contains('\0'))
    {
        return invalid(format!("payload.env has an invalid name {key:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
