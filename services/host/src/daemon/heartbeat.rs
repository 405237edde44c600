//! Heartbeats: every interval the host tells a coordinator which leases
//! it holds; the answer renews their lease clocks and names the jobs to
//! stop (cancelled, or no longer this host's). A coordinator that does not
//! know the host gets it registered again.

use std::sync::Arc;

use skyclaw_api::{HeartbeatRequest, RunningJob};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{lock, Daemon};

/// How long before its session runs out a host registers again.
const SESSION_MARGIN_MS: u64 = 10 * 60_000;
use crate::runner::StopReason;

impl Daemon {
    pub(super) async fn heartbeat_loop(self: Arc<Self>, mut done: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.config.heartbeat_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = done.wait_for(|done| *done) => return,
            }
            self.renew_session().await;
            self.heartbeat().await;
        }
    }

    /// Registers again while the session has a while left, so claims and
    /// reports never meet an expired one.
    async fn renew_session(&self) {
        let Some(expires_at) = *lock(&self.session_expires_at) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        if expires_at.saturating_sub(now) > SESSION_MARGIN_MS {
            return;
        }
        if let Err(error) = self.register().await {
            tracing::warn!(%error, "renewing the host's session failed");
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
            Err(error) if error.is_not_found() || error.is_unauthorized() => {
                tracing::warn!(%error, "registering again");
                if let Err(error) = self.register().await {
                    tracing::warn!(%error, "registering again failed");
                }
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed"),
        }
    }
}
