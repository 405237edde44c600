//! What the host knows of each lease it holds: the job's lease epoch, how
//! to stop its run, and until when the lease surely holds.
//!
//! A host cut off from every coordinator stops each job before its lease
//! can run out, for the coordinator then leases it again elsewhere. The
//! coordinator renews a lease only once half of it is gone, so a heartbeat
//! it answered leaves at least half a lease from the moment it was sent;
//! a claim's answer likewise starts the count when it arrives. Past that
//! point without a newer answer, the job is stopped and not reported.

use std::time::Duration;

use skyclaw_api::Job;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::runner::StopReason;

/// A job whose process runs under a lease this host holds.
pub(super) struct Running {
    pub(super) lease_epoch: u32,
    pub(super) stop: watch::Sender<Option<StopReason>>,
    /// Unknown when the coordinator did not say how long leases last.
    pub(super) lease: Option<LeaseClock>,
}

/// Until when a job's lease surely holds, as far as this host can know.
pub(super) struct LeaseClock {
    /// What an answered heartbeat leaves of the lease at least.
    half_lease: Duration,
    holds_until: watch::Sender<Instant>,
}

impl LeaseClock {
    /// For a job just claimed, from the lease its claim gave; the count
    /// starts when the claim's answer arrived.
    pub(super) fn for_claimed(job: &Job) -> Option<(LeaseClock, watch::Receiver<Instant>)> {
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
    pub(super) fn renewed(&self, sent_at: Instant) {
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

/// Sets the stop reason unless one is set already; says whether it did.
pub(super) fn first_stop(stop: &watch::Sender<Option<StopReason>>, reason: StopReason) -> bool {
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
pub(super) async fn lease_runs_out(mut holds_until: watch::Receiver<Instant>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(updated_at: u64, lease_expires_at: Option<u64>) -> Job {
        let mut job: Job = serde_json::from_str(
            r#"{"id":"job-1","createdAt":1,"updatedAt":1,"status":"leased",
            "attempts":1,"maxAttempts":3,"priority":0,"requirement":{"requiredCapabilities":[]},
            "payload":{"kind":"shell","command":"true"}}"#,
        )
        .unwrap();
        job.updated_at = updated_at;
        job.lease_expires_at = lease_expires_at;
        job
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let (stop, receiver) = watch::channel(None);
        assert!(first_stop(&stop, StopReason::Cancelled));
        assert!(!first_stop(&stop, StopReason::LeaseLost));
        assert_eq!(*receiver.borrow(), Some(StopReason::Cancelled));
    }

    #[test]
    fn a_claim_without_a_usable_lease_starts_no_clock() {
        assert!(LeaseClock::for_claimed(&claimed(1_000, None)).is_none());
        assert!(LeaseClock::for_claimed(&claimed(1_000, Some(999))).is_none());
        assert!(LeaseClock::for_claimed(&claimed(1_000, Some(1_001))).is_none());
    }

    #[tokio::test]
    async fn a_claimed_lease_holds_for_half_its_length_and_renewals_only_extend_it() {
        let before = Instant::now();
        let (clock, holds_until) = LeaseClock::for_claimed(&claimed(1_000, Some(61_000))).unwrap();
        let first = *holds_until.borrow();
        assert!(first >= before + Duration::from_secs(30), "{first:?}");
        assert!(first <= Instant::now() + Duration::from_secs(30));

        clock.renewed(before);
        assert_eq!(
            *holds_until.borrow(),
            first,
            "an older heartbeat moves nothing"
        );
        clock.renewed(before + Duration::from_secs(10));
        assert_eq!(
            *holds_until.borrow(),
            before + Duration::from_secs(40),
            "a newer one leaves half a lease from when it was sent"
        );
    }

    #[tokio::test]
    async fn the_lease_runs_out_only_once_its_renewals_are_past() {
        let (clock, holds_until) = LeaseClock::for_claimed(&claimed(0, Some(3_600_000))).unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), lease_runs_out(holds_until));
        assert!(waiting.await.is_err(), "half an hour is left");

        let (past, holds_until) = watch::channel(Instant::now());
        tokio::time::timeout(Duration::from_secs(5), lease_runs_out(holds_until))
            .await
            .expect("a lease whose last renewal is past has run out");
        drop((clock, past));
    }
}
