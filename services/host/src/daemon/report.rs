//! Reporting a job's result: cut to what a coordinator accepts, then sent
//! until a coordinator acknowledges or refuses it, or until the shutdown's
//! reporting budget runs out.

use std::time::Duration;

use skyclaw_api::CompleteRequest;
use skyclaw_client::Backoff;
use tokio::time::Instant;

use super::{lock, Daemon};
use crate::runner::RunResult;

/// After the shutdown deadline and the kill grace, how long results may
/// still take to reach a coordinator before the host gives up on them.
pub(super) const REPORT_BUDGET_AFTER_SHUTDOWN: Duration = Duration::from_secs(15);

impl Daemon {
    /// The report of `result`, within what a coordinator accepts: text
    /// made from non-UTF-8 output can be up to three times the bytes kept,
    /// and an error may quote a job's long command, so each field is cut
    /// again here rather than have the whole result refused.
    pub(super) fn completion(&self, result: RunResult, lease_epoch: u32) -> CompleteRequest {
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
    pub(super) async fn report(&self, job_id: &str, request: &CompleteRequest) {
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
}
