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
//! This file holds the daemon's state, registration and shutdown; its
//! parts are `claim` (the claim loop, slots and each job's run),
//! `heartbeat`, `lease` (each held lease and its clock) and `report`.

mod claim;
mod heartbeat;
mod lease;
mod report;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use skyclaw_api::{registration_message, RegisterHostRequest};
use skyclaw_client::{Backoff, Client};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::identity::{self, Identity};
use crate::metrics::{self, HostMetrics};
use crate::runner::{Runner, StopReason};
use crate::{reaper, Error, HostConfig, Result};
use lease::{first_stop, Running};
use report::REPORT_BUDGET_AFTER_SHUTDOWN;

/// Runs the host daemon until `shutdown` completes, then winds down as the
/// module says and returns. With `metrics_listener`, serves its metrics
/// there meanwhile. Fails early only on a bad configuration, an unreadable
/// host id, or a coordinator refusing to register the host (a wrong token,
/// say); unreachable coordinators are waited out.
pub async fn run(
    config: HostConfig,
    client: Client,
    metrics_listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    protect_the_daemon()?;
    let runner = Runner::new(&config)?;
    let sandbox = runner.sandbox_level().to_string();
    tracing::info!("sandbox: {sandbox}");
    let identity = identity::load_or_create(&config)?;
    let (stopping_tx, mut stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    });
    let host_metrics = Arc::new(HostMetrics::new(config.max_parallel));
    // Served until the daemon has wound down, so the last jobs are seen.
    let _metrics_server = metrics_listener
        .map(|listener| AbortOnDrop(tokio::spawn(metrics::serve(host_metrics.clone(), listener))));
    let daemon = Arc::new(Daemon {
        metrics: host_metrics,
        runner,
        sandbox,
        slots: Arc::new(Semaphore::new(config.max_parallel as usize)),
        host_id: Mutex::new(identity.host_id().to_string()),
        identity,
        session_expires_at: Mutex::new(None),
        cluster_id: Mutex::new(String::new()),
        running: Mutex::new(HashMap::new()),
        give_up_reporting_at: Mutex::new(None),
        client,
        config,
    });

    let mut backoff = unreachable_backoff();
    loop {
        match daemon.register().await {
            Ok(()) => break,
            // A conflict passes too: a host restarted within seconds
            // registers again once the coordinator lets it.
            Err(error) if error.is_unavailable() || error.is_conflict() => {
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

/// Ends a task when dropped, however the daemon returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Daemon {
    client: Client,
    metrics: Arc<HostMetrics>,
    config: HostConfig,
    runner: Runner,
    /// The sandbox level, as reported when registering.
    sandbox: String,
    /// One permit per job slot; a job holds its permit until its result is
    /// acknowledged, so the host never holds more leases than slots.
    slots: Arc<Semaphore>,
    host_id: Mutex<String>,
    identity: Identity,
    /// When the session a keyed host registered for runs out.
    session_expires_at: Mutex<Option<u64>>,
    /// The cluster a keyed host registered with, which its receipts name.
    cluster_id: Mutex<String>,
    /// Jobs whose process is running, by job id.
    running: Mutex<HashMap<String, Running>>,
    /// Set at shutdown: the moment unacknowledged results are abandoned.
    give_up_reporting_at: Mutex<Option<Instant>>,
}

impl Daemon {
    fn host_id(&self) -> String {
        lock(&self.host_id).clone()
    }

    /// Registers (again): safe to repeat, the id is stable. A keyed host
    /// signs a fresh challenge and sends its session from then on.
    async fn register(&self) -> skyclaw_client::Result<()> {
        let requested = self.host_id();
        let mut request = RegisterHostRequest {
            host_id: Some(requested.clone()),
            name: self.config.name.clone(),
            capabilities: Some(self.config.capabilities.clone()),
            max_parallel: Some(self.config.max_parallel),
            sandbox: Some(self.sandbox.clone()),
            ..RegisterHostRequest::default()
        };
        if let Identity::Keyed(key) = &self.identity {
            let challenge = self.client.challenge().await?;
            request.public_key = Some(key.public_key.clone());
            request.challenge = Some(challenge.challenge.clone());
            request.enroll_key = self.config.enroll_key.clone();
            request.signs_receipts = Some(true);
            let message = registration_message(
                &challenge.cluster_id,
                &key.host_id,
                &key.public_key,
                &challenge.challenge,
                &request,
            );
            request.signature = Some(key.sign(&message));
            *lock(&self.cluster_id) = challenge.cluster_id.clone();
        }
        let response = self.client.register_host_with(&request).await?;
        if let Some(session) = &response.session {
            self.client.set_session(session)?;
            *lock(&self.session_expires_at) = response.session_expires_at;
        }
        if response.host.access == "pending" {
            tracing::warn!(
                host_id = %response.host.id,
                "this host waits for an admin's approval (skyclaw hosts approve {}), or \
                 an enrollment key (SKYCLAW_ENROLL_KEY)",
                response.host.id
            );
        }
        let host = response.host;
        if host.id != requested {
            tracing::warn!(requested = %requested, assigned = %host.id, "coordinator assigned another host id");
            *lock(&self.host_id) = host.id;
        }
        Ok(())
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
