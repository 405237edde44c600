//! The daemon loop: register, claim work with long polls while slots are
//! free, run each job, heartbeat to renew leases and hear of cancellations,
//! report results until they are acknowledged, and on shutdown stop
//! claiming, let running jobs finish up to a deadline, then stop and report
//! what is left.
//!
//! A claim that is in flight when shutdown begins is abandoned: if the
//! coordinator leased a job in it, that lease expires and the job is queued
//! again, which costs a lease period but never runs the job twice at once.
//!
//! A host cut off from every coordinator stops each job before its lease
//! can run out, for the coordinator then leases it again elsewhere. The
//! coordinator renews a lease only once half of it is gone, so a heartbeat
//! it answered leaves at least half a lease from the moment it was sent;
//! a claim's answer likewise starts the count when it arrives. Past that
//! point without a newer answer, the job is stopped and not reported.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use skyclaw_api::{CompleteRequest, HeartbeatRequest, Job, RegisterHostRequest, RunningJob};
use skyclaw_client::{Backoff, Client};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::runner::{RunResult, Runner, StopReason};
use crate::{identity, reaper, Error, HostConfig, Result};

/// After the shutdown deadline and the kill grace, how long results may
/// still take to reach a coordinator before the host gives up on them.
const REPORT_BUDGET_AFTER_SHUTDOWN: Duration = Duration::from_secs(15);

/// Runs the host daemon until `shutdown` completes, then winds down as the
/// module says and returns. Fails early only on a bad configuration, an
/// unreadable host id, or a coordinator refusing to register the host (a
/// wrong token, say); unreachable coordinators are waited out.
pub async fn run(
    config: HostConfig,
    client: Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    protect_the_daemon()?;
    let runner = Runner::new(&config)?;
    let sandbox = runner.sandbox_level().to_string();
    tracing::info!("sandbox: {sandbox}");
    let host_id = identity::load_or_create(&config)?;
    let (stopping_tx, mut stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    });
    let daemon = Arc::new(Daemon {
        runner,
        sandbox,
        slots: Arc::new(Semaphore::new(config.max_parallel as usize)),
        host_id: Mutex::new(host_id),
        running: Mutex::new(HashMap::new()),
        give_up_reporting_at: Mutex::new(None),
        client,
        config,
    });

    let mut backoff = unreachable_backoff();
    loop {
        match daemon.register().await {
            Ok(()) => break,
            Err(error) if error.is_unavailable() => {
                tracing::warn!(%error, "cannot register yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = stopping.wait_for(|stop| *stop) => return Ok(()),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    tracing::info!(
        host_id = %daemon.host_id(),
        name = %daemon.config.name,
        capabilities = %daemon.config.capabilities.join(","),
        max_parallel = daemon.config.max_parallel,
        sandbox = %daemon.sandbox,
        "host registered"
    );

    let (heartbeats_done, heartbeats_done_rx) = watch::channel(false);
    let heartbeats = tokio::spawn(daemon.clone().heartbeat_loop(heartbeats_done_rx));
    let mut jobs = daemon.clone().claim_loop(stopping).await;
    daemon.wind_down(&mut jobs).await;
    let _ = heartbeats_done.send(true);
    let _ = heartbeats.await;
    tracing::info!("host stopped");
    Ok(())
}

struct Daemon {
    client: Client,
    config: HostConfig,
    runner: Runner,
    /// The sandbox level, as reported when registering.
    sandbox: String,
    /// One permit per job slot; a job holds its permit until its result is
    /// acknowledged, so the host never holds more leases than slots.
    slots: Arc<Semaphore>,
    host_id: Mutex<String>,
    /// Jobs whose process is running, by job id.
    running: Mutex<HashMap<String, Running>>,
    /// Set at shutdown: the moment unacknowledged results are abandoned.
    give_up_reporting_at: Mutex<Option<Instant>>,
}

struct Running {
    lease_epoch: u32,
    stop: watch::Sender<Option<StopReason>>,
    /// Unknown when the coordinator did not say how long leases last.
    lease: Option<LeaseClock>,
}

/// Until when a job's lease surely holds, as far as this host can know.
struct LeaseClock {
    /// What an answered heartbeat leaves of the lease at least.
    half_lease: Duration,
    holds_until: watch::Sender<Instant>,
}

impl LeaseClock {
    /// For a job just claimed, from the lease its claim gave; the count
    /// starts when the claim's answer arrived.
    fn for_claimed(job: &Job) -> Option<(LeaseClock, watch::Receiver<Instant>)> {
        let lease_ms = job.lease_expires_at?.checked_sub(job.updated_at)?;
        let half_lease = Duration::from_millis(lease_ms / 2);
        if half_lease.is_zero() {
            return None;
        }
        let (holds_until, receiver) = watch::channel(Instant::now() + half_lease);
        Some((
            LeaseClock {
                half_lease,
                holds_until,
            },
            receiver,
        ))
    }

    /// A heartbeat sent at `sent_at` was answered without losing the job.
    fn renewed(&self, sent_at: Instant) {
        let holds_until = sent_at + self.half_lease;
        self.holds_until.send_if_modified(|current| {
            let later = holds_until > *current;
            if later {
                *current = holds_until;
            }
            later
        });
    }
}

impl Daemon {
    fn host_id(&self) -> String {
        lock(&self.host_id).clone()
    }

    /// Registers (again): safe to repeat, the id is stable.
    async fn register(&self) -> skyclaw_client::Result<()> {
        let requested = self.host_id();
        let request = RegisterHostRequest {
            host_id: Some(requested.clone()),
            name: self.config.name.clone(),
            capabilities: Some(self.config.capabilities.clone()),
            max_parallel: Some(self.config.max_parallel),
            sandbox: Some(self.sandbox.clone()),
        };
        let host = self.client.register_host(&request).await?;
        if host.id != requested {
            tracing::warn!(requested = %requested, assigned = %host.id, "coordinator assigned another host id");
            *lock(&self.host_id) = host.id;
        }
        Ok(())
    }

    /// Claims while not stopping; returns the jobs still in progress.
    async fn claim_loop(self: Arc<Self>, mut stopping: watch::Receiver<bool>) -> JoinSet<()> {
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
                Err(error) if error.is_not_found() => {
                    tracing::warn!("coordinator does not know this host; registering again");
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
        tracing::info!(job = %job.id, lease_epoch, "job started");
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
        if matches!(
            result.stopped,
            Some(StopReason::LeaseLost | StopReason::LeaseExpired)
        ) {
            tracing::warn!(job = %job.id, lease_epoch, "lease lost: result not reported");
            return;
        }
        let request = self.completion(result, lease_epoch);
        self.report(&job.id, &request).await;
    }

    /// The report of `result`, within what a coordinator accepts: text
    /// made from non-UTF-8 output can be up to three times the bytes kept,
    /// and an error may quote a job's long command, so each field is cut
    /// again here rather than have the whole result refused.
    fn completion(&self, result: RunResult, lease_epoch: u32) -> CompleteRequest {
        use skyclaw_api::limits::{MAX_ERROR_BYTES, MAX_OUTPUT_BYTES};
        CompleteRequest {
            host_id: self.host_id(),
            success: result.success,
            duration_ms: result.duration.as_millis() as u64,
            exit_code: result.exit_code,
            stdout: crate::output::clip(result.stdout, MAX_OUTPUT_BYTES),
            stderr: crate::output::clip(result.stderr, MAX_OUTPUT_BYTES),
            error: result
                .error
                .map(|error| crate::output::clip(error, MAX_ERROR_BYTES)),
            lease_epoch: Some(lease_epoch),
        }
    }

    /// Reports a result until a coordinator acknowledges or refuses it.
    async fn report(&self, job_id: &str, request: &CompleteRequest) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let error = match self.client.complete_job(job_id, request).await {
                Ok(job) => {
                    tracing::info!(job = %job_id, status = job.status.as_str(), "result recorded");
                    return;
                }
                Err(error) => error,
            };
            match &error {
                skyclaw_client::Error::Api { status: 409, .. } => {
                    tracing::warn!(job = %job_id, %error, "result refused: the lease is no longer ours; dropped");
                    return;
                }
                skyclaw_client::Error::Api { .. } | skyclaw_client::Error::Config(_) => {
                    tracing::error!(job = %job_id, %error, "result refused; dropped");
                    return;
                }
                skyclaw_client::Error::InvalidResponse { .. } => {
                    tracing::warn!(job = %job_id, %error, "result accepted with an unreadable answer");
                    return;
                }
                skyclaw_client::Error::Unavailable { .. } => {}
            }
            let delay = backoff.next_delay();
            if let Some(deadline) = *lock(&self.give_up_reporting_at) {
                if Instant::now() + delay > deadline {
                    tracing::error!(job = %job_id, %error, "shutting down: result could not be reported");
                    return;
                }
            }
            tracing::warn!(job = %job_id, %error, "cannot report the result yet; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, mut done: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.config.heartbeat_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = done.wait_for(|done| *done) => return,
            }
            self.heartbeat().await;
        }
    }

    async fn heartbeat(&self) {
        let sent_at = Instant::now();
        let running: Vec<RunningJob> = lock(&self.running)
            .iter()
            .map(|(job_id, running)| RunningJob {
                job_id: job_id.clone(),
                lease_epoch: running.lease_epoch,
            })
            .collect();
        let request = HeartbeatRequest {
            active_leases: Some(running.len() as u32),
            running: Some(running),
        };
        let host_id = self.host_id();
        match self.client.heartbeat(&host_id, &request).await {
            Ok(reply) => {
                for job_id in reply.cancel {
                    tracing::info!(job = %job_id, "cancel requested");
                    self.stop(&job_id, StopReason::Cancelled);
                }
                for job_id in &reply.lost {
                    tracing::warn!(job = %job_id, "lease lost");
                    self.stop(job_id, StopReason::LeaseLost);
                }
                let held = lock(&self.running);
                for reported in request.running.iter().flatten() {
                    if reply.lost.contains(&reported.job_id) {
                        continue;
                    }
                    match held.get(&reported.job_id) {
                        Some(job) if job.lease_epoch == reported.lease_epoch => {
                            if let Some(lease) = &job.lease {
                                lease.renewed(sent_at);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(error) if error.is_not_found() => {
                tracing::warn!("coordinator does not know this host; registering again");
                if let Err(error) = self.register().await {
                    tracing::warn!(%error, "registering again failed");
                }
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed"),
        }
    }

    /// Asks a running job to stop; the first reason given wins.
    fn stop(&self, job_id: &str, reason: StopReason) {
        if let Some(running) = lock(&self.running).get(job_id) {
            first_stop(&running.stop, reason);
        }
    }

    /// Lets running jobs finish until the shutdown deadline, then stops
    /// the rest; returns once every job has ended and been reported.
    async fn wind_down(&self, jobs: &mut JoinSet<()>) {
        let deadline = Instant::now() + self.config.shutdown_grace();
        *lock(&self.give_up_reporting_at) =
            Some(deadline + self.config.kill_grace() + REPORT_BUDGET_AFTER_SHUTDOWN);
        while jobs.try_join_next().is_some() {}
        let in_progress = jobs.len();
        if in_progress > 0 {
            tracing::info!(
                jobs = in_progress,
                "shutting down: no new claims; letting running jobs finish"
            );
        }
        let all_done = async { while jobs.join_next().await.is_some() {} };
        if tokio::time::timeout_at(deadline, all_done).await.is_ok() {
            return;
        }
        let ids: Vec<String> = lock(&self.running).keys().cloned().collect();
        tracing::warn!(
            jobs = ids.len(),
            "shutdown deadline reached; stopping running jobs"
        );
        for job_id in &ids {
            self.stop(job_id, StopReason::Shutdown);
        }
        while jobs.join_next().await.is_some() {}
    }
}

/// Sets the stop reason unless one is set already; says whether it did.
fn first_stop(stop: &watch::Sender<Option<StopReason>>, reason: StopReason) -> bool {
    stop.send_if_modified(|current| {
        let unset = current.is_none();
        if unset {
            *current = Some(reason);
        }
        unset
    })
}

/// Completes once the lease may have run out: its last known renewal is
/// past and no newer one came. A dropped clock means the run is over.
async fn lease_runs_out(mut holds_until: watch::Receiver<Instant>) {
    loop {
        let deadline = *holds_until.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if *holds_until.borrow() <= Instant::now() {
                    return;
                }
            }
            changed = holds_until.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Keeps jobs from reading the daemon's memory and environment (its token
/// among them) through `/proc` or ptrace, and makes the daemon adopt what
/// its jobs leave behind so it can kill it (see [`crate::reaper`]).
fn protect_the_daemon() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::Protect(e.into()))?;
    reaper::adopt_orphans().map_err(Error::Protect)
}

fn unreachable_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section is a single insert, remove or read).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
