//! `State::apply`: folds one event into the views and indexes, after
//! checking it keeps every invariant a log must keep ([`Violation`]).

use std::borrow::Cow;

use skyclaw_log_format::event::{Event, JobSpec, KeyRole};

use super::{idempotency_slot, queue_key, State};
use crate::clock::LogClock;
use crate::view::{HostAccess, HostView, JobOutcome, JobStatus, JobView, KeyView, Lease};

/// An event that does not fit the state it is applied to. Events made by
/// `decide` never produce one; an auditor replaying a foreign log may.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

impl State {
    /// Folds one event into the views at time `at`. The event is checked
    /// against the state first, so a `Violation` leaves the state unchanged.
    pub fn apply(&mut self, event: &Event, at: u64) -> Result<(), Violation> {
        self.apply_event(Cow::Borrowed(event), at)
    }

    /// [`State::apply`] for an event the caller has no further use for (an
    /// auditor's replay): an enqueued job's strings move into its view
    /// rather than being copied.
    pub fn apply_owned(&mut self, event: Event, at: u64) -> Result<(), Violation> {
        self.apply_event(Cow::Owned(event), at)
    }

    fn apply_event(&mut self, event: Cow<'_, Event>, at: u64) -> Result<(), Violation> {
        self.check(&event, at)?;
        // A coordinator ticks before it applies, so this moves nothing; a
        // replay of events alone has no stamps, only the times they carry.
        if at > self.clock.at {
            self.clock = LogClock::resumed(at);
        }
        let event = match event {
            Cow::Owned(Event::JobEnqueued(spec)) => {
                self.enqueue(*spec, at);
                return Ok(());
            }
            Cow::Borrowed(Event::JobEnqueued(spec)) => {
                self.enqueue((**spec).clone(), at);
                return Ok(());
            }
            event => event,
        };
        let job_id = event.job_id();
        let before = job_id
            .and_then(|id| self.jobs.get(id))
            .map(|job| job.status);
        self.fold(&event, at);
        if let Some(id) = job_id {
            if let Some(job) = self.jobs.get(id) {
                self.tally.moved(job, before, at);
            }
            self.ended(id, before);
        }
        Ok(())
    }

    /// Adds the job `spec` enqueues at `at`; `check` made sure it fits.
    fn enqueue(&mut self, spec: JobSpec, at: u64) {
        let JobSpec {
            job_id,
            payload,
            required_capabilities,
            priority,
            max_attempts,
            idempotency_key,
            request_hash,
            account,
        } = spec;
        let job = JobView {
            id: job_id,
            created_at: at,
            updated_at: at,
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts,
            priority,
            order: self.next_order,
            required_capabilities,
            payload,
            lease: None,
            assigned_host_id: None,
            cancel_requested: false,
            outcome: None,
            error: None,
            idempotency_key,
            request_hash,
            account,
        };
        self.next_order += 1;
        self.index_job(&job);
        self.tally.moved(&job, None, at);
        self.jobs.insert(job.id.clone(), Box::new(job));
    }

    /// Changes the views and indexes as `event` says; `check` made sure
    /// it fits.
    fn fold(&mut self, event: &Event, at: u64) {
        match event {
            Event::ClusterCreated { cluster_id } => self.cluster_id = Some(cluster_id.clone()),
            Event::HostRegistered {
                host_id,
                name,
                capabilities,
                max_parallel,
                sandbox,
                public_key,
                challenge_at,
                signs_receipts,
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
                        public_key: *public_key,
                        challenge_at: 0,
                        signs_receipts: false,
                        // A keyed host waits for approval; one without a
                        // key is trusted as the token's holder, as before.
                        access: match public_key {
                            Some(_) => HostAccess::Pending,
                            None => HostAccess::Active,
                        },
                    });
                host.challenge_at = challenge_at.unwrap_or(host.challenge_at);
                host.signs_receipts = *signs_receipts;
                host.name = name.clone();
                host.sandbox = sandbox.clone();
                host.capabilities = capabilities.clone();
                host.max_parallel = *max_parallel;
                host.updated_at = at;
            }
            Event::HostApproved {
                host_id,
                enrolled_with,
            } => {
                self.hosts.get_mut(host_id).expect("checked").access = HostAccess::Active;
                if let Some(uses) = enrolled_with
                    .as_ref()
                    .and_then(|id| self.keys.get_mut(id))
                    .and_then(|key| key.grant.uses.as_mut())
                {
                    *uses -= 1;
                }
            }
            Event::HostRevoked { host_id } => {
                let host = self.hosts.get_mut(host_id).expect("checked");
                host.access = HostAccess::Revoked;
                host.updated_at = at;
            }
            Event::KeyIssued(grant) => self.index_key(KeyView {
                grant: (**grant).clone(),
                issued_at: at,
                revoked_at: None,
            }),
            Event::KeyRevoked { key_id } => {
                self.keys.get_mut(key_id).expect("checked").revoked_at = Some(at);
            }
            Event::JobEnqueued(_) => unreachable!("an enqueue applies on its own"),
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
                // The indexed id moves to the new expiry, uncopied.
                let (_, id) = self
                    .leases
                    .take(&(lease.expires_at, job_id.clone()))
                    .expect("a live lease is indexed");
                self.leases.insert((*lease_expires_at, id));
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
            Event::JobsRetired { finished_before } => self.retire(*finished_before),
        }
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
            Event::ClusterCreated { .. } => Ok(()),
            Event::HostRegistered {
                host_id,
                public_key,
                challenge_at,
                ..
            } => {
                let existing = self.hosts.get(host_id);
                if existing.is_some_and(|host| host.access == HostAccess::Revoked) {
                    return fail(format!("revoked host {host_id} registers again"));
                }
                let Some(key) = public_key else {
                    return match existing.and_then(|host| host.public_key) {
                        Some(_) => fail(format!("keyed host {host_id} registers without its key")),
                        None => Ok(()),
                    };
                };
                if *host_id != crate::host_id_for(key) {
                    return fail(format!("host {host_id} is not the id of its key"));
                }
                match existing {
                    Some(host) if host.public_key != Some(*key) => {
                        fail(format!("host {host_id} registers with another key"))
                    }
                    Some(host) if challenge_at.unwrap_or(0) <= host.challenge_at => {
                        fail(format!("host {host_id} registers with a used challenge"))
                    }
                    _ => Ok(()),
                }
            }
            Event::HostApproved {
                host_id,
                enrolled_with,
            } => {
                match self.hosts.get(host_id).map(|host| host.access) {
                    Some(HostAccess::Pending) => {}
                    Some(access) => {
                        return fail(format!(
                            "host {host_id} is approved while {}",
                            access.as_str()
                        ))
                    }
                    None => return fail(format!("host {host_id} is unknown")),
                }
                match enrolled_with.as_ref().map(|id| (id, self.keys.get(id))) {
                    Some((_, Some(key)))
                        if key.grant.role == KeyRole::Enroll && key.is_live(at) =>
                    {
                        Ok(())
                    }
                    Some((id, _)) => fail(format!(
                        "host {host_id} enrolled with key {id}, which may not enroll it"
                    )),
                    None => Ok(()),
                }
            }
            Event::HostRevoked { host_id } => match self.hosts.get(host_id) {
                Some(host) if host.access == HostAccess::Revoked => {
                    fail(format!("host {host_id} is revoked twice"))
                }
                Some(_) => Ok(()),
                None => fail(format!("host {host_id} is unknown")),
            },
            Event::KeyIssued(grant) => {
                if self.keys.contains_key(&grant.key_id)
                    || self.key_hashes.contains_key(&grant.hash)
                {
                    return fail(format!("key {} is issued twice", grant.key_id));
                }
                Ok(())
            }
            Event::KeyRevoked { key_id } => match self.keys.get(key_id) {
                Some(key) if key.revoked_at.is_none() => Ok(()),
                Some(_) => fail(format!("key {key_id} is revoked twice")),
                None => fail(format!("key {key_id} is unknown")),
            },
            Event::JobEnqueued(spec) => {
                if self.jobs.contains_key(&spec.job_id) {
                    return fail(format!("job {} is enqueued twice", spec.job_id));
                }
                if spec.max_attempts == 0 {
                    return fail(format!("job {} allows no attempt", spec.job_id));
                }
                match &spec.idempotency_key {
                    Some(key)
                        if self
                            .idempotency
                            .contains_key(&idempotency_slot(spec.account.as_deref(), key)) =>
                    {
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
                if host.access != HostAccess::Active {
                    return fail(format!(
                        "job {job_id} leased to {} host {host_id}",
                        host.access.as_str()
                    ));
                }
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
                // A revoked host's leases end at once.
                let revoked = self
                    .hosts
                    .get(&lease.host_id)
                    .is_some_and(|host| host.access == HostAccess::Revoked);
                if at < lease.expires_at && !revoked {
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
            Event::JobsRetired { finished_before } if *finished_before > at => fail(format!(
                "jobs that end up to {finished_before} are retired at {at}, before they could end"
            )),
            Event::JobsRetired { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixture::*;

    #[test]
    fn events_that_do_not_fit_the_state_are_refused_and_change_nothing() {
        let mut state = leased();
        let digest = state.digest();
        let bad = [
            Event::ClusterCreated {
                cluster_id: "again".into(),
            },
            Event::JobEnqueued(Box::new(spec("j"))),
            Event::JobLeased {
                job_id: "j".into(),
                host_id: "h".into(),
                lease_epoch: 2,
                lease_expires_at: 1,
                claim_key: None,
            },
            Event::LeaseRenewed {
                job_id: "j".into(),
                lease_epoch: 2,
                lease_expires_at: 1,
            },
            Event::LeaseExpired {
                job_id: "j".into(),
                lease_epoch: 1,
            },
            Event::JobCancelled { job_id: "j".into() },
            Event::CancelRequested {
                job_id: "nope".into(),
            },
        ];
        for event in &bad {
            assert!(state.apply(event, 101).is_err(), "{event:?} applied");
            assert_eq!(state.digest(), digest, "{event:?} changed the state");
        }
    }

    #[test]
    fn nothing_applies_before_the_cluster_is_created() {
        let mut state = State::new();
        let event = Event::HostRegistered {
            signs_receipts: false,
            host_id: "h".into(),
            name: "h".into(),
            capabilities: vec![],
            max_parallel: 1,
            sandbox: None,
            public_key: None,
            challenge_at: None,
        };
        assert!(state.apply(&event, 1).is_err());
        assert_eq!(state.hosts().count(), 0);
    }
}
