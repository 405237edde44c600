//! The lease sweeper: on the leader only, proposes `Expire` naming the
//! leases that ran out by this node's monotonic clock. A new leader first
//! waits one lease period, so hosts that renewed with the old leader are
//! not expired early.
//!
//! Expiry follows elapsed time as this node measures it, never a wall clock
//! or a stamp in the log: every node times each lease from the moment it
//! applied its grant or renewal ([`crate::lease_timers`]), so neither a step of the
//! leader's wall clock nor a proposal stamped far ahead can expire leases
//! wholesale. `decide` still expires only leases that are due by the log's
//! clock as well, so the log keeps saying that no lease ended early.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skyclaw_state::Command;

use crate::coordinator::Coordinator;

/// The sweeper looks at least this often, so a new lease or a change of
/// leadership is noticed.
const MAX_NAP: Duration = Duration::from_millis(250);

/// Leases one `Expire` names at most (about 40 bytes each, far within an
/// entry); more wait for the next round, which follows at once.
const MAX_EXPIRED_PER_ENTRY: usize = 8_192;

pub async fn run(node: Arc<Coordinator>) {
    let grace = Duration::from_millis(node.config.lease_ms);
    loop {
        let stamp = node.clock.now_ms();
        let now = Instant::now();
        // Of the leases this node's clock says ran out, those the log's
        // clock agrees on: a lease granted under a clock that was ahead
        // waits until the log's time catches up, which it does at the pace
        // of this leader's stamps.
        let (due, nap) = node.read(|m| {
            let (overdue, next) = m.lease_timers.due(now);
            let at = m.state.clock(stamp);
            let mut catching_up = None;
            let due: Vec<(String, u32)> = overdue
                .into_iter()
                .filter(|(job_id, _)| {
                    let expires_at = m
                        .state
                        .job(job_id)
                        .and_then(|job| job.lease.as_ref())
                        .map_or(0, |lease| lease.expires_at);
                    let behind = Duration::from_millis(expires_at.saturating_sub(at));
                    if behind.is_zero() {
                        return true;
                    }
                    catching_up = Some(catching_up.map_or(behind, |c: Duration| c.min(behind)));
                    false
                })
                .collect();
            let nap = [next, catching_up, Some(MAX_NAP)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(MAX_NAP);
            (due, nap)
        });
        if due.is_empty() {
            tokio::time::sleep(nap).await;
            continue;
        }
        match node.leading_for() {
            Some(leading) if leading >= grace => {}
            _ => {
                tokio::time::sleep(MAX_NAP).await;
                continue;
            }
        }
        // Named a batch at a time: every lease of a crowd of hosts cut off
        // at once would not fit one raft entry, and would be refused whole
        // again and again.
        let mut due = due;
        due.truncate(MAX_EXPIRED_PER_ENTRY);
        let command = Command::Expire {
            leases: due.clone(),
        };
        match node.write(command).await {
            Ok(Ok(_)) => {
                // None expired: the proposal got an earlier time than
                // predicted, so none was due by the log's time yet. Look
                // again after a nap rather than name them back to back.
                let now = Instant::now();
                let stuck = node.read(|m| {
                    due.iter()
                        .all(|(job_id, epoch)| m.lease_timers.overdue(job_id, *epoch, now))
                });
                if stuck {
                    tokio::time::sleep(MAX_NAP).await;
                }
            }
            Ok(Err(rejection)) => tracing::warn!("expiring leases refused: {rejection}"),
            Err(e) => {
                tracing::debug!("expiring leases: {e:?}");
                tokio::time::sleep(MAX_NAP).await;
            }
        }
    }
}
