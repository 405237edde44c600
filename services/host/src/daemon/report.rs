//! Reporting a job's result: cut to what a coordinator accepts, then sent
//! until a coordinator acknowledges or refuses it, or until the shutdown's
//! reporting budget runs out.

use std::time::Duration;

use skyclaw_api::{CompleteRequest, Job, SignedReceipt};
use skyclaw_client::Backoff;
use skyclaw_log_format::{BlobRef, Receipt};
use tokio::time::Instant;

use super::{lock, Daemon};
use crate::identity::Identity;
use crate::runner::RunResult;

/// After the shutdown deadline and the kill grace, how long results may
/// still take to reach a coordinator before the host gives up on them.
pub(super) const REPORT_BUDGET_AFTER_SHUTDOWN: Duration = Duration::from_secs(15);

/// Now by the wall clock, in ms since the Unix epoch.
pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Which run of which job a result is of, for its receipt.
pub(super) struct Ran<'a> {
    pub job: &'a Job,
    pub lease_epoch: u32,
    /// Wall-clock times (ms since the Unix epoch).
    pub started_at: u64,
    pub finished_at: u64,
}

impl Daemon {
    /// The report of `result`, within what a coordinator accepts: text
    /// made from non-UTF-8 output can be up to three times the bytes kept,
    /// and an error may quote a job's long command, so each field is cut
    /// again here rather than have the whole result refused.
    /// A host with a key signs a receipt of exactly what it reports.
    pub(super) fn completion(&self, result: RunResult, ran: &Ran<'_>) -> CompleteRequest {
        use skyclaw_api::limits::{MAX_ERROR_BYTES, MAX_OUTPUT_BYTES};
        let mut request = CompleteRequest {
            host_id: self.host_id(),
            success: result.success,
            duration_ms: result.duration.as_millis() as u64,
            exit_code: result.exit_code,
            stdout: crate::output::clip(result.stdout, MAX_OUTPUT_BYTES),
            stderr: crate::output::clip(result.stderr, MAX_OUTPUT_BYTES),
            error: result
                .error
                .map(|error| crate::output::clip(error, MAX_ERROR_BYTES)),
            lease_epoch: Some(ran.lease_epoch),
            receipt: None,
        };
        if let Identity::Keyed(key) = &self.identity {
            let receipt = Receipt {
                cluster_id: lock(&self.cluster_id).clone(),
                job_id: ran.job.id.clone(),
                lease_epoch: ran.lease_epoch,
                payload_hash: ran.job.payload.digest(),
                exit_code: request.exit_code,
                started_at: ran.started_at,
                finished_at: ran.finished_at.max(ran.started_at),
                stdout: BlobRef::of(request.stdout.as_bytes()),
                stderr: BlobRef::of(request.stderr.as_bytes()),
                host_id: request.host_id.clone(),
            };
            request.receipt = key.sign_receipt(&receipt).as_ref().map(SignedReceipt::of);
        }
        request
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
