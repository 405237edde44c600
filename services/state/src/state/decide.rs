//! `State::decide`: what a command leads to, given the state, without
//! changing it: the events, or the rejection that says why none follow.

use std::collections::BTreeSet;

use skyclaw_log_format::event::{Event, JobSpec};

use super::{idempotency_slot, State};
use crate::command::{Affected, Blob, Command, Decision, JobReport, Rejection};
use crate::view::{HostAccess, JobStatus, JobView};

mod access;
mod shape;

use shape::check_spec;

/// Why a job that completed or failed cannot be cancelled.
pub fn uncancellable(job: &JobView) -> Rejection {
    Rejection::Conflict(format!(
        "job {} already {}; it cannot be cancelled",
        job.id,
        job.status.as_str()
    ))
}

impl State {
    /// What `command` leads to at time `at` (see [`State::clock`]). Pure: the
    /// state is unchanged until the events are applied.
    pub fn decide(&self, command: &Command, at: u64) -> Result<Decision, Rejection> {
        if self.cluster_id.is_none() && !matches!(command, Command::CreateCluster { .. }) {
            return Err(Rejection::NotInitialized);
        }
        match command {
            Command::CreateCluster { cluster_id } => {
                let events = match self.cluster_id {
                    None => vec![Event::ClusterCreated {
                        cluster_id: cluster_id.clone(),
                    }],
                    Some(_) => vec![],
                };
                Ok(Decision::new(events, Affected::Done))
            }
            Command::RegisterHost {
                host_id,
                name,
                capabilities,
                max_parallel,
                sandbox,
                key,
            } => self.decide_register(
                host_id,
                name,
                capabilities,
                *max_parallel,
                sandbox.as_deref(),
                key.as_ref(),
                at,
            ),
            Command::ApproveHost { host_id } => self.decide_approve(host_id),
            Command::RevokeHost { host_id } => self.decide_revoke(host_id),
            Command::IssueKey(grant) => self.decide_issue_key(grant),
            Command::RevokeKey { key_id } => self.decide_revoke_key(key_id),
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
            Command::Complete(report) => self.decide_complete(report),
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
                    JobStatus::Completed | JobStatus::Failed => return Err(uncancellable(job)),
                };
                Ok(Decision::new(events, Affected::Job(job_id)))
            }
            Command::Expire { leases } => {
                Ok(Decision::new(self.expirable(leases, at), Affected::Done))
            }
            Command::Retire { retention_ms } => Ok(self.decide_retire(*retention_ms, at)),
            Command::ExpireLeases => {
                let events = self
                    .leases
                    .iter()
                    .take_while(|(expires_at, _)| *expires_at <= at)
                    .map(|(_, job_id)| Event::LeaseExpired {
                        job_id: job_id.clone(),
                        lease_epoch: self.jobs[job_id].attempts,
                    })
                    .collect();
                Ok(Decision::new(events, Affected::Done))
            }
        }
    }

    fn decide_complete(&self, report: &JobReport) -> Result<Decision, Rejection> {
        let job = self.existing_job(&report.job_id)?;
        if let Some(done) = self.repeated_completion(job, &report.host_id, report.lease_epoch) {
            return Ok(done);
        }
        let lease_epoch = self.live_lease(job, &report.host_id, report.lease_epoch)?;
        let stdout = Blob::new(report.stdout.clone().into_bytes());
        let stderr = Blob::new(report.stderr.clone().into_bytes());
        let done = report.completion(lease_epoch, stdout.reference, stderr.reference);
        // The statement a receipt signs names the lease epoch: the report
        // must name it too, so that the signature checked before this
        // completion was proposed is over the statement decided here.
        if report.receipt.is_some() && report.lease_epoch.is_none() {
            return Err(Rejection::Invalid(
                "a completion with a receipt must name its leaseEpoch".into(),
            ));
        }
        self.receipt_claim(&done).map_err(Rejection::Forbidden)?;
        Ok(Decision {
            events: vec![Event::JobCompleted(Box::new(done))],
            blobs: vec![stdout, stderr],
            affected: Affected::Job(report.job_id.clone()),
        })
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
                let slot = idempotency_slot(spec.account.as_deref(), key);
                if let Some(existing) = self.idempotency.get(&slot) {
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
        Ok(Decision::new(events, Affected::Jobs(ids)))
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
        access::check_may_work(host)?;
        if let Some(key) = claim_key {
            let again = self.claimed_with(host_id, key);
            if !again.is_empty() {
                return Ok(Decision::new(vec![], Affected::Jobs(again)));
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
        Ok(Decision::new(events, Affected::Jobs(ids)))
    }

    fn decide_renew(
        &self,
        host_id: &str,
        running: &[(String, u32)],
        at: u64,
        lease_ms: u64,
    ) -> Result<Decision, Rejection> {
        let Some(host) = self.hosts.get(host_id) else {
            return Err(Rejection::NotFound(format!(
                "host {host_id} is not registered"
            )));
        };
        access::check_not_revoked(host)?;
        if host.access == HostAccess::Pending && !running.is_empty() {
            return Err(Rejection::Forbidden(format!(
                "host {host_id} is pending: it holds no leases to report"
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
        let affected = Affected::Renewed {
            host_id: host_id.to_string(),
            cancel,
            lost,
        };
        Ok(Decision::new(events, affected))
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
        repeated.then(|| Decision::new(vec![], Affected::Job(job.id.clone())))
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
}

#[cfg(test)]
mod tests;
