//! Retirement: jobs that ended long enough ago leave the live state, so
//! memory, start-up and snapshots follow live work rather than history.
//!
//! A job that ended (completed, failed or cancelled) is kept in memory for
//! the retention period, then a `JobsRetired` event takes every job that
//! ended before its cutoff out of the views and indexes. What is left of
//! them here is counted ([`Retirement`]); the coordinator keeps their views
//! on disk for reads, and the log keeps everything they did. An idempotency
//! key lives as long as its job is in the state: a repeat after the job was
//! retired enqueues a new job.

use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::Event;

use super::{idempotency_slot, State};
use crate::command::{Affected, Decision};
use crate::view::{JobStatus, JobView};

/// Jobs one `JobsRetired` takes at most, unless more ended in the same
/// millisecond: an event is one apply, and one apply holds the state.
pub const MAX_RETIRED_PER_EVENT: usize = 10_000;

/// What retirement took out of the state: enough to keep totals whole and
/// enqueue order running once the views no longer show it.
// Format: MessagePack map { before: u64, counts: [u64; 5], nextOrder: u64 }
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retirement {
    /// Jobs that ended before this time (the log's) are retired.
    pub before: u64,
    /// Jobs retired, by the status they ended with, in the order of
    /// [`JobStatus::ALL`].
    pub counts: [u64; 5],
    /// The enqueue order the next job gets: retired jobs took theirs.
    pub next_order: u64,
}

impl State {
    /// What retirement took so far, to persist beside the views.
    pub fn retirement(&self) -> Retirement {
        Retirement {
            next_order: self.next_order,
            ..self.retirement
        }
    }

    /// Restores what retirement took, for a state rebuilt from the views
    /// that were left ([`State::from_views`]).
    pub fn resume_retirement(&mut self, retirement: Retirement) {
        self.next_order = self.next_order.max(retirement.next_order);
        self.retirement = Retirement {
            next_order: 0,
            ..retirement
        };
    }

    /// Whether a `Retire` with `retention_ms` at time `at` would retire
    /// anything.
    pub fn has_retirable(&self, retention_ms: u64, at: u64) -> bool {
        let cutoff = at.saturating_sub(retention_ms);
        self.ended.first().is_some_and(|(ended, _)| *ended < cutoff)
    }

    /// The jobs a `JobsRetired` with `finished_before` takes, oldest first.
    pub fn retiring(&self, finished_before: u64) -> impl Iterator<Item = &JobView> {
        self.ended
            .iter()
            .take_while(move |(ended, _)| *ended < finished_before)
            .map(|(_, id)| &*self.jobs[id])
    }

    pub(super) fn decide_retire(&self, retention_ms: u64, at: u64) -> Decision {
        let cutoff = at.saturating_sub(retention_ms);
        // The cutoff moves back to where the first job beyond the bound
        // ended, unless that leaves nothing: then all that ended in that
        // one millisecond go together.
        let first = self.ended.first().map(|(ended, _)| *ended);
        let finished_before = match self.ended.iter().nth(MAX_RETIRED_PER_EVENT) {
            Some((ended, _)) if *ended < cutoff && Some(*ended) != first => *ended,
            Some((ended, _)) if *ended < cutoff => *ended + 1,
            _ => cutoff,
        };
        let events = match first {
            Some(first) if first < finished_before => vec![Event::JobsRetired { finished_before }],
            _ => vec![],
        };
        Decision::new(events, Affected::Done)
    }

    /// Takes every job that ended before `finished_before` out of the views
    /// and indexes, counting them.
    pub(super) fn retire(&mut self, finished_before: u64) {
        while let Some((ended, _)) = self.ended.first() {
            if *ended >= finished_before {
                break;
            }
            let (_, id) = self.ended.pop_first().expect("looked at");
            let job = self.jobs.remove(&id).expect("an ended job is a job");
            self.by_order.remove(&job.order);
            if let Some(key) = &job.idempotency_key {
                let slot = idempotency_slot(job.account.as_deref(), key);
                if self.idempotency.get(&slot) == Some(&id) {
                    self.idempotency.remove(&slot);
                }
            }
            self.tally.retired(&job);
            self.retirement.counts[job.status.index()] += 1;
        }
        self.retirement.before = self.retirement.before.max(finished_before);
    }

    /// Notes that `job` just ended: from now on retirement may take it.
    pub(super) fn ended(&mut self, job_id: &str, before: Option<JobStatus>) {
        let Some(job) = self.jobs.get(job_id) else {
            return;
        };
        if job.status.is_final() && !before.is_some_and(JobStatus::is_final) {
            self.ended.insert((job.updated_at, job.id.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Rejection};
    use crate::state::fixture::*;

    fn retire(state: &mut State, retention_ms: u64, at: u64) -> Vec<Event> {
        run(state, Command::Retire { retention_ms }, at)
            .expect("retirement is never refused")
            .events
    }

    /// `done` completed at 200, `live` still leased, `queued` waiting.
    fn ended_and_live() -> State {
        let mut state = leased();
        run(&mut state, complete("j", "h", Some(1), true), 200).unwrap();
        enqueue(&mut state, keyed("done", "k", 1), 300);
        assert_eq!(claim(&mut state, "h", 1, 300), ["done"]);
        run(&mut state, complete("done", "h", Some(1), false), 400).unwrap();
        enqueue(&mut state, spec("queued"), 500);
        state
    }

    #[test]
    fn jobs_leave_once_ended_for_the_retention_and_only_then() {
        let mut state = ended_and_live();
        assert_eq!(state.status_counts(), [1, 0, 1, 1, 0]);
        assert!(
            retire(&mut state, 1_000, 1_200).is_empty(),
            "nothing ended 1 s ago"
        );
        assert!(!state.has_retirable(1_000, 1_200));
        assert!(state.has_retirable(1_000, 1_201));
        let events = retire(&mut state, 1_000, 1_250);
        assert_eq!(
            events,
            [Event::JobsRetired {
                finished_before: 250
            }]
        );
        assert!(state.job("j").is_none());
        assert!(
            state.job("done").is_some(),
            "ended at 400, after the cutoff"
        );
        assert!(state.job("queued").is_some());
        assert_eq!(state.job_count(), 2);
        // Totals stay whole; the summary counts only what is in memory.
        assert_eq!(state.status_counts(), [1, 0, 1, 1, 0]);
        assert_eq!(state.tally().count(JobStatus::Completed), 0);
        assert_eq!(state.retirement().counts, [0, 0, 1, 0, 0]);
        assert_eq!(state.retirement().before, 250);
    }

    #[test]
    fn a_retired_job_is_unknown_and_its_key_free_again() {
        let mut state = ended_and_live();
        retire(&mut state, 0, 1_000);
        assert_eq!(state.job_count(), 1);
        for command in [
            Command::Cancel {
                job_id: "done".into(),
            },
            complete("done", "h", Some(1), true),
        ] {
            let refused = run(&mut state, command, 1_100);
            assert!(
                matches!(refused, Err(Rejection::NotFound(_))),
                "{refused:?}"
            );
        }
        // The same key and request: within the state it answers the old
        // job; once that is retired, it is a new one.
        let decision = run(
            &mut state,
            Command::Enqueue {
                jobs: vec![keyed("again", "k", 1)],
            },
            1_200,
        )
        .unwrap();
        assert_eq!(decision.events.len(), 1);
        assert!(state.job("again").is_some());
    }

    #[test]
    fn enqueue_order_runs_on_past_retired_jobs_after_a_restore() {
        let mut state = ended_and_live();
        run(
            &mut state,
            Command::Cancel {
                job_id: "queued".into(),
            },
            600,
        )
        .unwrap();
        retire(&mut state, 0, 1_000);
        assert_eq!(state.job_count(), 0);
        let mut restored = State::from_views(
            state.cluster_id().map(str::to_string),
            state.log_clock(),
            state.hosts().cloned(),
            state.keys().cloned(),
            Vec::<JobView>::new(),
        );
        assert_ne!(
            restored.digest(),
            state.digest(),
            "retirement is in the digest"
        );
        restored.resume_retirement(state.retirement());
        assert_eq!(restored.digest(), state.digest());
        assert_eq!(restored.status_counts(), state.status_counts());
        enqueue(&mut state, spec("next"), 1_100);
        enqueue(&mut restored, spec("next"), 1_100);
        assert_eq!(state.job("next").unwrap().order, 3);
        assert_eq!(restored.digest(), state.digest());
    }

    #[test]
    fn one_event_retires_a_bounded_number_unless_they_ended_together() {
        let mut state = cluster();
        register(&mut state, "h", &["shell"], 1);
        let count = MAX_RETIRED_PER_EVENT + 5;
        let ids: Vec<String> = (0..count).map(|i| format!("job-{i:05}")).collect();
        for id in &ids {
            enqueue(&mut state, spec(id), 10);
        }
        for (i, id) in ids.into_iter().enumerate() {
            // The first five end together at 20, then one per millisecond.
            let at = 20 + i.saturating_sub(4) as u64;
            run(&mut state, Command::Cancel { job_id: id }, at).unwrap();
        }
        let events = retire(&mut state, 0, 1_000_000);
        let last = 20 + (MAX_RETIRED_PER_EVENT - 4) as u64;
        assert_eq!(
            events,
            [Event::JobsRetired {
                finished_before: last
            }]
        );
        assert_eq!(state.job_count(), 5);
        assert!(state.has_retirable(0, 1_000_000));
        retire(&mut state, 0, 1_000_000);
        assert_eq!(state.job_count(), 0);

        // More than the bound in one millisecond go together.
        let mut state = cluster();
        let ids: Vec<String> = (0..=MAX_RETIRED_PER_EVENT)
            .map(|i| format!("job-{i:05}"))
            .collect();
        for id in &ids {
            enqueue(&mut state, spec(id), 10);
        }
        for id in ids {
            run(&mut state, Command::Cancel { job_id: id }, 20).unwrap();
        }
        assert_eq!(
            retire(&mut state, 0, 1_000),
            [Event::JobsRetired {
                finished_before: 21
            }]
        );
        assert_eq!(state.job_count(), 0);
    }

    #[test]
    fn a_replay_refuses_retiring_what_could_not_have_ended() {
        let mut state = ended_and_live();
        let digest = state.digest();
        let future = Event::JobsRetired {
            finished_before: 2_000,
        };
        assert!(state.apply(&future, 1_000).is_err());
        assert_eq!(state.digest(), digest);
    }
}
