//! `Tally`: counts kept beside the views for people watching the system
//! (the dashboard's overview): jobs by status, the queue's depth by
//! priority and by required capability, and how many jobs were enqueued
//! and ended in each minute of the last hour of the log's time. Updated
//! as each job changes status, so reading it never walks the jobs. It is
//! derived, like the other indexes: not in the digest, rebuilt from the
//! views at start-up.

use std::collections::BTreeMap;

use crate::view::{JobStatus, JobView};

/// One minute, in milliseconds of the log's time.
pub const MINUTE_MS: u64 = 60_000;
/// Minutes of activity kept, the current one included.
pub const ACTIVITY_MINUTES: u64 = 60;

/// The queue key of a job that requires no capability.
pub const ANY_CAPABILITY: &str = "";

/// What happened to jobs in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    pub enqueued: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Jobs leased for the first time.
    pub picked_up: u64,
    /// Their time from enqueue to that first lease, summed (ms).
    pub pickup_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Tally {
    by_status: [u64; JobStatus::ALL.len()],
    queued_by_priority: BTreeMap<i32, u64>,
    /// A job requiring several capabilities counts under each; one that
    /// requires none under [`ANY_CAPABILITY`].
    queued_by_capability: BTreeMap<String, u64>,
    /// By minute (the log's time divided by [`MINUTE_MS`]); only the last
    /// [`ACTIVITY_MINUTES`] are kept.
    activity: BTreeMap<u64, Activity>,
}

impl Tally {
    /// Counts `views` as they stand, with the activity of the hour before
    /// `now` as far as the views still show it: when each job was created
    /// and, for a job that ended, when it was last updated.
    pub fn from_views<'a>(views: impl IntoIterator<Item = &'a JobView>, now: u64) -> Tally {
        let mut tally = Tally::default();
        let since = minute_of(now).saturating_sub(ACTIVITY_MINUTES - 1);
        for job in views {
            tally.enter(job.status, job);
            if minute_of(job.created_at) >= since {
                tally.note(job.created_at, None, JobStatus::Queued);
            }
            if job.status.is_final() && minute_of(job.updated_at) >= since {
                tally.note(job.updated_at, Some(JobStatus::Leased), job.status);
            }
        }
        tally
    }

    /// Records that `job` (as it is now) moved from `before` (`None`: it
    /// was just enqueued) to its current status at time `at`.
    pub fn moved(&mut self, job: &JobView, before: Option<JobStatus>, at: u64) {
        if before == Some(job.status) {
            return;
        }
        if let Some(before) = before {
            self.leave(before, job);
        }
        self.enter(job.status, job);
        self.note(at, before, job.status);
        // A first lease is a pickup; a lease again after expiry is not.
        if before == Some(JobStatus::Queued) && job.status == JobStatus::Leased && job.attempts == 1
        {
            let activity = self.activity.entry(minute_of(at)).or_default();
            activity.picked_up += 1;
            activity.pickup_ms += at.saturating_sub(job.created_at);
        }
    }

    /// Forgets `job`, which left the state: its count by status goes, its
    /// activity stays.
    pub fn retired(&mut self, job: &JobView) {
        self.leave(job.status, job);
    }

    /// Jobs in the state with `status` (retired ones are not).
    pub fn count(&self, status: JobStatus) -> u64 {
        self.by_status[status.index()]
    }

    /// Queued jobs by priority, highest first.
    pub fn queued_by_priority(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.queued_by_priority
            .iter()
            .rev()
            .map(|(&priority, &depth)| (priority, depth))
    }

    /// Queued jobs by required capability, in name order.
    pub fn queued_by_capability(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.queued_by_capability
            .iter()
            .map(|(capability, &depth)| (capability.as_str(), depth))
    }

    /// The minutes with activity, oldest first, as (start in ms, activity).
    pub fn activity(&self) -> impl Iterator<Item = (u64, Activity)> + '_ {
        self.activity
            .iter()
            .map(|(&minute, &activity)| (minute * MINUTE_MS, activity))
    }

    fn enter(&mut self, status: JobStatus, job: &JobView) {
        self.by_status[status.index()] += 1;
        if status == JobStatus::Queued {
            *self.queued_by_priority.entry(job.priority).or_default() += 1;
            for capability in capabilities(job) {
                // Looked up first: most jobs share a few capabilities, and
                // an owned key per enqueue would cost a replay dearly.
                match self.queued_by_capability.get_mut(capability) {
                    Some(depth) => *depth += 1,
                    None => {
                        self.queued_by_capability.insert(capability.to_string(), 1);
                    }
                }
            }
        }
    }

    fn leave(&mut self, status: JobStatus, job: &JobView) {
        let count = &mut self.by_status[status.index()];
        *count = count.saturating_sub(1);
        if status == JobStatus::Queued {
            decrement(&mut self.queued_by_priority, &job.priority);
            for capability in capabilities(job) {
                decrement(&mut self.queued_by_capability, capability);
            }
        }
    }

    /// Counts a change of status in its minute and forgets minutes that
    /// fell out of the hour.
    fn note(&mut self, at: u64, before: Option<JobStatus>, after: JobStatus) {
        let count: fn(&mut Activity) -> &mut u64 = match (before, after) {
            (None, _) => |activity| &mut activity.enqueued,
            (_, JobStatus::Completed) => |activity| &mut activity.completed,
            (_, JobStatus::Failed) => |activity| &mut activity.failed,
            (_, JobStatus::Cancelled) => |activity| &mut activity.cancelled,
            // A claim, or a lease that ran out: no end, and no new job.
            (Some(_), JobStatus::Queued | JobStatus::Leased) => return,
        };
        *count(self.activity.entry(minute_of(at)).or_default()) += 1;
        let newest = self
            .activity
            .last_key_value()
            .map_or(0, |(&minute, _)| minute);
        let oldest_kept = newest.saturating_sub(ACTIVITY_MINUTES - 1);
        while self
            .activity
            .first_key_value()
            .is_some_and(|(&first, _)| first < oldest_kept)
        {
            self.activity.pop_first();
        }
    }
}

fn minute_of(at: u64) -> u64 {
    at / MINUTE_MS
}

fn capabilities(job: &JobView) -> impl Iterator<Item = &str> {
    let any = job
        .required_capabilities
        .is_empty()
        .then_some(ANY_CAPABILITY);
    job.required_capabilities
        .iter()
        .map(String::as_str)
        .chain(any)
}

fn decrement<K, Q>(counts: &mut BTreeMap<K, u64>, key: &Q)
where
    K: Ord + std::borrow::Borrow<Q>,
    Q: Ord + ?Sized,
{
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use skyclaw_log_format::event::JobSpec;

    use super::*;
    use crate::command::Command;
    use crate::state::fixture::*;
    use crate::state::State;

    /// The queue's depth by priority and by capability.
    type Depths<'a> = (Vec<(i32, u64)>, Vec<(&'a str, u64)>);

    fn queue(state: &State) -> Depths<'_> {
        let tally = state.tally();
        (
            tally.queued_by_priority().collect(),
            tally.queued_by_capability().collect(),
        )
    }

    #[test]
    fn every_change_of_status_is_counted_by_status_queue_and_minute() {
        let mut state = cluster();
        register(&mut state, "h", &["gpu"], 2);
        let urgent = JobSpec {
            priority: 5,
            required_capabilities: strings(&["gpu"]),
            ..spec("urgent")
        };
        enqueue(&mut state, urgent, 1_000);
        enqueue(&mut state, spec("plain"), 2_000);
        assert_eq!(state.tally().count(JobStatus::Queued), 2);
        assert_eq!(
            queue(&state),
            (vec![(5, 1), (0, 1)], vec![(ANY_CAPABILITY, 1), ("gpu", 1)])
        );
        assert_eq!(claim(&mut state, "h", 2, MINUTE_MS), ["urgent", "plain"]);
        assert_eq!(queue(&state), (vec![], vec![]));
        assert_eq!(state.tally().count(JobStatus::Leased), 2);
        run(
            &mut state,
            complete("urgent", "h", Some(1), true),
            MINUTE_MS,
        )
        .unwrap();
        run(
            &mut state,
            complete("plain", "h", Some(1), false),
            2 * MINUTE_MS,
        )
        .unwrap();
        let tally = state.tally();
        assert_eq!(tally.count(JobStatus::Leased), 0);
        assert_eq!(tally.count(JobStatus::Completed), 1);
        assert_eq!(tally.count(JobStatus::Failed), 1);
        let minutes: Vec<_> = tally.activity().collect();
        let enqueued = Activity {
            enqueued: 2,
            ..Activity::default()
        };
        // Both were leased for the first time at one minute, 59 s and
        // 58 s after they were enqueued.
        let completed = Activity {
            completed: 1,
            picked_up: 2,
            pickup_ms: 59_000 + 58_000,
            ..Activity::default()
        };
        let failed = Activity {
            failed: 1,
            ..Activity::default()
        };
        assert_eq!(
            minutes,
            [
                (0, enqueued),
                (MINUTE_MS, completed),
                (2 * MINUTE_MS, failed)
            ]
        );
    }

    #[test]
    fn only_the_last_hour_of_activity_is_kept() {
        let mut state = cluster();
        for minute in 0..ACTIVITY_MINUTES * 3 {
            enqueue(&mut state, spec(&format!("j-{minute}")), minute * MINUTE_MS);
        }
        let tally = state.tally();
        assert_eq!(tally.activity().count() as u64, ACTIVITY_MINUTES);
        assert_eq!(
            tally.activity().next().map(|(at, _)| at),
            Some(ACTIVITY_MINUTES * 2 * MINUTE_MS)
        );
        assert_eq!(tally.count(JobStatus::Queued), ACTIVITY_MINUTES * 3);
    }

    #[test]
    fn a_state_rebuilt_from_its_views_counts_what_applying_counted() {
        let mut state = leased();
        enqueue(&mut state, spec("later"), 3 * MINUTE_MS);
        run(&mut state, complete("j", "h", Some(1), true), 4 * MINUTE_MS).unwrap();
        let jobs: Vec<_> = state.jobs_after(None).cloned().collect();
        let hosts: Vec<_> = state.hosts().cloned().collect();
        let rebuilt = State::from_views(
            state.cluster_id().map(str::to_string),
            state.log_clock(),
            hosts,
            state.keys().cloned(),
            jobs,
        );
        for status in JobStatus::ALL {
            assert_eq!(rebuilt.tally().count(status), state.tally().count(status));
        }
        assert_eq!(queue(&rebuilt), queue(&state));
        // The views keep no time of a first lease: pickups count again
        // from the rebuild on.
        let without_pickups = |tally: &Tally| -> Vec<_> {
            tally
                .activity()
                .map(|(at, activity)| {
                    let activity = Activity {
                        picked_up: 0,
                        pickup_ms: 0,
                        ..activity
                    };
                    (at, activity)
                })
                .collect()
        };
        assert_eq!(
            without_pickups(rebuilt.tally()),
            without_pickups(state.tally())
        );
        assert!(rebuilt.tally().activity().all(|(_, a)| a.picked_up == 0));
    }

    #[test]
    fn a_lease_again_after_expiry_is_no_pickup() {
        let mut state = leased();
        let first: u64 = state.tally().activity().map(|(_, a)| a.picked_up).sum();
        assert_eq!(first, 1);
        run(&mut state, Command::ExpireLeases, 10 * MINUTE_MS).unwrap();
        assert_eq!(claim(&mut state, "h", 1, 11 * MINUTE_MS), ["j"]);
        let after: u64 = state.tally().activity().map(|(_, a)| a.picked_up).sum();
        assert_eq!(after, 1, "the second lease is not a pickup");
    }
}
