//! When each live lease runs out by this node's monotonic clock: soft
//! state beside the views, timed from the moment each grant or renewal
//! applied, read by the lease sweeper.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use skyclaw_state::State;

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
    pub(crate) fn overdue(&self, job_id: &str, epoch: u32, now: Instant) -> bool {
        self.by_job
            .get(job_id)
            .is_some_and(|(timed, deadline)| *timed == epoch && *deadline <= now)
    }

    /// The leases past their deadline at `now` (job id, epoch), earliest
    /// first, and how long until the next deadline ahead, if any.
    pub(crate) fn due(&self, now: Instant) -> (Vec<(String, u32)>, Option<Duration>) {
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
