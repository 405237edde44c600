//! The lease sweeper: on the leader only, proposes `Expire` naming the
//! leases that ran out by this node's monotonic clock. A new leader first
//! waits one lease period, so hosts that renewed with the old leader are
//! not expired early.
//!
//! Expiry follows elapsed time as this node measures it, never a wall clock
//! or a stamp in the log: every node times each lease from the moment it
//! applied its grant or renewal ([`LeaseTimers`]), so neither a step of the
//! leader's wall clock nor a proposal stamped far ahead can expire leases
//! wholesale. `decide` still expires only leases that are due by the log's
//! clock as well, so the log keeps saying that no lease ended early.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyclaw_state::{Command, State};

use crate::coordinator::Coordinator;

/// The sweeper looks at least this often, so a new lease or a change of
/// leadership is noticed.
const MAX_NAP: Duration = Duration::from_millis(250);

/// When each live lease runs out by this node's monotonic clock. Kept
/// beside the state, under its lock, and changed with it as grants,
/// renewals, expiries and completions apply. Soft state: never logged.
#[derive(Debug, Default)]
pub struct LeaseTimers {
    by_deadline: BTreeSet<(Instant, String)>,
    /// Job id → (lease epoch, deadline).
    by_job: HashMap<String, (u32, Instant)>,
}

impl LeaseTimers {
    /// Times every live lease of `state` from `now` (start-up, a snapshot
    /// installed): each gets what is left of it by the log's clock, at most
    /// its full term. A leader adds one lease period of grace on top.
    pub fn start(state: &State, now: Instant) -> LeaseTimers {
        let mut timers = LeaseTimers::default();
        for job in state.leased_jobs() {
            if let Some(lease) = &job.lease {
                let left = lease.expires_at.saturating_sub(state.last_at());
                timers.granted(&job.id, lease.epoch, now + Duration::from_millis(left));
            }
        }
        timers
    }

    /// A lease granted or renewed: it runs out at `deadline`.
    pub fn granted(&mut self, job_id: &str, epoch: u32, deadline: Instant) {
        if let Some((_, old)) = self.by_job.insert(job_id.to_string(), (epoch, deadline)) {
            self.by_deadline.remove(&(old, job_id.to_string()));
        }
        self.by_deadline.insert((deadline, job_id.to_string()));
    }

    /// A lease that ended (expired or completed).
    pub fn ended(&mut self, job_id: &str) {
        if let Some((_, deadline)) = self.by_job.remove(job_id) {
            self.by_deadline.remove(&(deadline, job_id.to_string()));
        }
    }

    /// Whether `job_id` is timed under `epoch` with a deadline past `now`.
    fn overdue(&self, job_id: &str, epoch: u32, now: Instant) -> bool {
        self.by_job
            .get(job_id)
            .is_some_and(|(timed, deadline)| *timed == epoch && *deadline <= now)
    }

    /// The leases past their deadline at `now` (job id, epoch), earliest
    /// first, and how long until the next deadline ahead, if any.
    fn due(&self, now: Instant) -> (Vec<(String, u32)>, Option<Duration>) {
        let mut due = Vec::new();
        for (deadline, job_id) in &self.by_deadline {
            if *deadline > now {
                return (due, Some(*deadline - now));
            }
            due.push((job_id.clone(), self.by_job[job_id].0));
        }
        (due, None)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_follow_grants_renewals_and_ends() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut timers = LeaseTimers::default();
        timers.granted("a", 1, at(100));
        timers.granted("b", 1, at(200));
        assert_eq!(
            timers.due(at(50)),
            (vec![], Some(Duration::from_millis(50)))
        );
        assert_eq!(
            timers.due(at(150)),
            (vec![("a".into(), 1)], Some(Duration::from_millis(50)))
        );
        timers.granted("a", 1, at(300));
        assert_eq!(
            timers.due(at(250)),
            (vec![("b".into(), 1)], Some(Duration::from_millis(50)))
        );
        timers.ended("b");
        timers.granted("a", 2, at(400));
        assert!(!timers.overdue("a", 1, at(500)));
        assert!(timers.overdue("a", 2, at(500)));
        assert_eq!(timers.due(at(500)), (vec![("a".into(), 2)], None));
    }
}
