//! Claiming work: long polls for as many jobs as there are free slots
//! (one semaphore permit per slot, held by a job until its result is
//! acknowledged, so the host never holds more leases than slots), backing
//! off when no coordinator answers or one answers "nothing" at once; then
//! each claimed job's run, watched by its lease clock, up to its report.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use skyclaw_api::Job;
use skyclaw_client::Backoff;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::lease::{first_stop, lease_runs_out, LeaseClock, Running};
use super::report::{unix_ms, Ran};
use super::{lock, unreachable_backoff, Daemon};
use crate::runner::StopReason;

impl Daemon {
    /// Claims while not stopping; returns the jobs still in progress.
    pub(super) async fn claim_loop(
        self: Arc<Self>,
        mut stopping: watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let mut jobs = JoinSet::new();
        let mut backoff = unreachable_backoff();
        // A coordinator that answers "nothing" at once (a zero claim wait)
        // must not turn the long poll into a busy loop.
        let mut idle_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            while jobs.try_join_next().is_some() {}
            let first = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            let mut permits = vec![first];
            while let Ok(permit) = self.slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            let host_id = self.host_id();
            let asked_at = Instant::now();
            let claimed = tokio::select! {
                claimed = self.client.claim_jobs(&host_id, permits.len() as u32, Some(self.config.poll_wait())) => claimed,
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            let failure = match claimed {
                Ok(claimed) => {
                    backoff.reset();
                    let answered_early = asked_at.elapsed()
                        < (self.config.poll_wait() / 2).min(Duration::from_millis(50));
                    if claimed.is_empty() && answered_early {
                        drop(permits);
                        tokio::select! {
                            () = tokio::time::sleep(idle_backoff.next_delay()) => {}
                            _ = stopping.wait_for(|stop| *stop) => break,
                        }
                        continue;
                    }
                    idle_backoff.reset();
                    for job in claimed {
                        match permits.pop() {
                            Some(permit) => self.start(job, permit, &mut jobs),
                            None => tracing::error!(
                                job = %job.id,
                                "coordinator leased more jobs than asked for; leaving this one to expire"
                            ),
                        }
                    }
                    continue;
                }
                Err(error) if error.is_not_found() || error.is_unauthorized() => {
                    tracing::warn!(%error, "registering again");
                    match self.register().await {
                        Ok(()) => continue,
                        Err(error) => error,
                    }
                }
                Err(error) => error,
            };
            tracing::warn!(error = %failure, "claim failed; backing off");
            drop(permits);
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                _ = stopping.wait_for(|stop| *stop) => break,
            }
        }
        jobs
    }

    fn start(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit, jobs: &mut JoinSet<()>) {
        let lease_epoch = job.lease_epoch.unwrap_or(job.attempts);
        let (stop, stop_rx) = watch::channel(None);
        let (lease, lease_rx) = LeaseClock::for_claimed(&job).unzip();
        let running = Running {
            lease_epoch,
            stop: stop.clone(),
            lease,
        };
        let previous = lock(&self.running).insert(job.id.clone(), running);
        if let Some(previous) = previous {
            // Leased to us again under a new epoch: the old run's lease is gone.
            previous.stop.send_replace(Some(StopReason::LeaseLost));
        }
        let lease_runs_out = async move {
            match lease_rx {
                Some(holds_until) => lease_runs_out(holds_until).await,
                None => std::future::pending().await,
            }
        };
        let watchdog = async move {
            lease_runs_out.await;
            first_stop(&stop, StopReason::LeaseExpired)
        };
        jobs.spawn(
            self.clone()
                .run_job(job, lease_epoch, stop_rx, watchdog, permit),
        );
    }

    async fn run_job(
        self: Arc<Self>,
        job: Job,
        lease_epoch: u32,
        stop: watch::Receiver<Option<StopReason>>,
        lease_watchdog: impl Future<Output = bool>,
        _slot: OwnedSemaphorePermit,
    ) {
        let _in_use = self.metrics.slot_taken();
        tracing::info!(job = %job.id, lease_epoch, "job started");
        let started_at = unix_ms();
        let run = self.runner.run(&job.payload, stop);
        tokio::pin!(run);
        let result = tokio::select! {
            result = &mut run => result,
            stopped = lease_watchdog => {
                if stopped {
                    tracing::warn!(job = %job.id, lease_epoch, "no coordinator renewed the lease in time; stopping the job");
                }
                run.await
            }
        };
        {
            let mut running = lock(&self.running);
            if running.get(&job.id).map(|r| r.lease_epoch) == Some(lease_epoch) {
                running.remove(&job.id);
            }
        }
        tracing::info!(
            job = %job.id,
            success = result.success,
            exit_code = ?result.exit_code,
            error = result.error.as_deref().unwrap_or(""),
            duration_ms = result.duration.as_millis() as u64,
            "job ended"
        );
        self.metrics.job_ended(&result);
        if matches!(
            result.stopped,
            Some(StopReason::LeaseLost | StopReason::LeaseExpired)
        ) {
            tracing::warn!(job = %job.id, lease_epoch, "lease lost: result not reported");
            return;
        }
        let ran = Ran {
            job: &job,
            lease_epoch,
            started_at,
            finished_at: unix_ms(),
        };
        let request = self.completion(result, &ran);
        self.report(&job.id, &request).await;
    }
}
