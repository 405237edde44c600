//! Property tests over random command sequences.
//!
//! Each case drives a `State` through registrations, enqueues (priorities,
//! capabilities, idempotency keys), claims, renewals, completions with the
//! live, a stale or no epoch, cancels and lease expiry as time advances.
//! Every decision is checked against what the rules say it must be, the
//! views against the invariants, and at the end the emitted events are
//! replayed from empty. Part way through, a second state is rebuilt from the
//! views and must decide everything that follows exactly alike.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use skyclaw_state::{
    Affected, Command, Decision, Event, Hash32, HostView, JobReport, JobSpec, JobStatus, JobView,
    Payload, Rejection, State,
};

const LEASE_MS: u64 = 1_000;
/// Host ids `h0`…`h2` may register; `h3` never does.
const HOSTS: usize = 4;
const CAPABILITIES: [&str; 3] = ["shell", "gpu", "net"];

fn host_id(index: usize) -> String {
    format!("h{index}")
}

fn capabilities(mask: u8) -> Vec<String> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Epoch {
    Live,
    Older,
    Newer,
    Missing,
}

#[derive(Clone, Copy, Debug)]
enum By {
    /// The lease holder, or for an unleased job the host that last ran it.
    Holder,
    Other,
}

#[derive(Clone, Debug)]
struct Draft {
    capabilities: u8,
    priority: i32,
    max_attempts: u32,
    /// `None` most of the time; otherwise one of a few keys, so they repeat.
    key: Option<u8>,
    /// Which of two request bodies the key comes with.
    body: u8,
    /// An invalid draft (no attempts allowed) must sink its whole enqueue.
    valid: bool,
}

/// Jobs and hosts are named by index and resolved against the state when
/// the step runs, so every step means something whatever came before.
#[derive(Clone, Debug)]
enum Op {
    Register {
        host: usize,
        capabilities: u8,
        max_parallel: u32,
    },
    Enqueue(Vec<Draft>),
    Claim {
        host: usize,
        max_jobs: u32,
    },
    /// A heartbeat: with `held`, the jobs the host holds under their live
    /// epochs (what a real host reports), then the jobs named by index.
    Renew {
        host: usize,
        held: bool,
        jobs: Vec<(usize, Epoch)>,
    },
    Complete {
        job: usize,
        by: By,
        epoch: Epoch,
        success: bool,
    },
    Cancel {
        job: usize,
    },
    /// With `on_the_dot`, time first moves to the earliest lease expiry.
    /// With `named`, the leader's command: every live lease named, plus
    /// the one before each (stale) epoch; otherwise the one older logs hold.
    Expire {
        on_the_dot: bool,
        named: bool,
    },
    /// The leader's retirement of jobs that ended `retention` ago.
    Retire {
        retention: u64,
    },
}

#[derive(Clone, Debug)]
struct Step {
    /// Milliseconds that pass before the step.
    elapse: u64,
    op: Op,
}

fn draft() -> impl Strategy<Value = Draft> {
    (
        0u8..8,
        -2i32..3,
        1u32..4,
        prop_oneof![3 => Just(None), 2 => (0u8..3).prop_map(Some)],
        0u8..2,
        prop::bool::weighted(0.95),
    )
        .prop_map(
            |(capabilities, priority, max_attempts, key, body, valid)| Draft {
                capabilities,
                priority,
                max_attempts,
                key,
                body,
                valid,
            },
        )
}

fn epoch() -> impl Strategy<Value = Epoch> {
    prop_oneof![
        4 => Just(Epoch::Live),
        1 => Just(Epoch::Older),
        1 => Just(Epoch::Newer),
        2 => Just(Epoch::Missing),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let host = 0..HOSTS;
    let job = 0usize..64;
    prop_oneof![
        2 => (0..HOSTS - 1, 0u8..8, 0u32..4).prop_map(|(host, capabilities, max_parallel)| {
            Op::Register { host, capabilities, max_parallel }
        }),
        4 => prop::collection::vec(draft(), 1..4).prop_map(Op::Enqueue),
        4 => (host.clone(), 1u32..4).prop_map(|(host, max_jobs)| Op::Claim { host, max_jobs }),
        3 => (host, any::<bool>(), prop::collection::vec((job.clone(), epoch()), 0..3))
            .prop_map(|(host, held, jobs)| Op::Renew { host, held, jobs }),
        3 => (
            job.clone(),
            prop_oneof![4 => Just(By::Holder), 1 => Just(By::Other)],
            epoch(),
            any::<bool>(),
        )
            .prop_map(|(job, by, epoch, success)| Op::Complete { job, by, epoch, success }),
        1 => job.prop_map(|job| Op::Cancel { job }),
        2 => (any::<bool>(), any::<bool>())
            .prop_map(|(on_the_dot, named)| Op::Expire { on_the_dot, named }),
        1 => (0u64..2 * LEASE_MS).prop_map(|retention| Op::Retire { retention }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        prop_oneof![3 => 0u64..LEASE_MS / 4, 1 => 0u64..2 * LEASE_MS],
        op(),
    )
        .prop_map(|(elapse, op)| Step { elapse, op });
    prop::collection::vec(step, 1..80)
}

fn shell() -> Payload {
    Payload::Shell {
        command: "true".into(),
        args: vec![],
        cwd: None,
        env: BTreeMap::new(),
        timeout_ms: None,
    }
}

/// What the test remembers on its own, from the events alone.
#[derive(Default)]
struct Model {
    /// Job → the host holding its live lease.
    holders: BTreeMap<String, String>,
    /// Idempotency key → (job, request hash) it was first used with.
    keys: BTreeMap<String, (String, Hash32)>,
    /// Host → the most leases it may hold: its `max_parallel`, or more while
    /// a re-registration lowered that below the leases it already held.
    allowed: BTreeMap<String, u32>,
    next_job: u64,
}

struct Run {
    state: State,
    model: Model,
    /// Every applied event with the time it applied at, for the replay.
    history: Vec<(Event, u64)>,
    now: u64,
}

impl Run {
    fn new() -> Run {
        let mut run = Run {
            state: State::new(),
            model: Model::default(),
            history: Vec::new(),
            now: 1_000,
        };
        let command = Command::CreateCluster {
            cluster_id: "prop".into(),
        };
        let decision = run.state.decide(&command, run.now).unwrap();
        run.apply(&decision, run.now);
        run
    }

    fn jobs(&self) -> Vec<&JobView> {
        self.state.jobs_after(None).collect()
    }

    /// The id of job number `index` (modulo how many exist), or an unknown
    /// id while none does.
    fn job_id(&self, index: usize) -> String {
        let jobs = self.jobs();
        if jobs.is_empty() {
            "no-such-job".into()
        } else {
            jobs[index % jobs.len()].id.clone()
        }
    }

    /// Turns a step into a command, naming real jobs, hosts and epochs.
    fn command(&mut self, op: &Op) -> Command {
        match op {
            Op::Register {
                host,
                capabilities: mask,
                max_parallel,
            } => Command::RegisterHost {
                host_id: host_id(*host),
                name: format!("host {host}"),
                capabilities: capabilities(*mask),
                max_parallel: *max_parallel,
                sandbox: None,
                key: None,
            },
            Op::Enqueue(drafts) => Command::Enqueue {
                jobs: drafts
                    .iter()
                    .map(|draft| {
                        self.model.next_job += 1;
                        JobSpec {
                            job_id: format!("job-{}", self.model.next_job),
                            payload: shell(),
                            required_capabilities: capabilities(draft.capabilities),
                            priority: draft.priority,
                            max_attempts: if draft.valid { draft.max_attempts } else { 0 },
                            idempotency_key: draft.key.map(|k| format!("key-{k}")),
                            request_hash: draft.key.map(|_| Hash32([draft.body; 32])),
                            account: None,
                        }
                    })
                    .collect(),
            },
            Op::Claim { host, max_jobs } => Command::Claim {
                host_id: host_id(*host),
                max_jobs: *max_jobs,
                lease_ms: LEASE_MS,
                claim_key: None,
            },
            Op::Renew { host, held, jobs } => {
                let host_id = host_id(*host);
                let holding = self.state.jobs_after(None).filter_map(|job| {
                    let lease = job.lease.as_ref().filter(|l| l.host_id == host_id)?;
                    Some((job.id.clone(), lease.epoch))
                });
                let mut running: Vec<(String, u32)> =
                    if *held { holding.collect() } else { vec![] };
                for (job, epoch) in jobs {
                    let id = self.job_id(*job);
                    let epoch = self.epoch(&id, *epoch).unwrap_or(1);
                    running.push((id, epoch));
                }
                Command::Renew {
                    host_id,
                    running,
                    lease_ms: LEASE_MS,
                }
            }
            Op::Complete {
                job,
                by,
                epoch,
                success,
            } => {
                let job_id = self.job_id(*job);
                let holder = self.state.job(&job_id).and_then(|job| {
                    job.lease
                        .as_ref()
                        .map(|lease| lease.host_id.clone())
                        .or_else(|| job.assigned_host_id.clone())
                });
                let holder = holder.unwrap_or_else(|| host_id(0));
                let host_id = match by {
                    By::Holder => holder,
                    By::Other => {
                        let index: usize = holder[1..].parse().unwrap();
                        host_id((index + 1) % HOSTS)
                    }
                };
                Command::Complete(JobReport {
                    lease_epoch: self.epoch(&job_id, *epoch),
                    job_id,
                    host_id,
                    success: *success,
                    duration_ms: 7,
                    exit_code: Some(i32::from(!success)),
                    stdout: "out".into(),
                    stderr: String::new(),
                    error: None,
                    receipt: None,
                })
            }
            Op::Cancel { job } => Command::Cancel {
                job_id: self.job_id(*job),
            },
            Op::Expire { on_the_dot, named } => {
                if let Some(expiry) = self.state.next_expiry().filter(|_| *on_the_dot) {
                    self.now = self.now.max(expiry);
                }
                if !named {
                    return Command::ExpireLeases;
                }
                let leases = self
                    .state
                    .leased_jobs()
                    .flat_map(|job| {
                        [
                            (job.id.clone(), job.attempts),
                            (job.id.clone(), job.attempts - 1),
                        ]
                    })
                    .collect();
                Command::Expire { leases }
            }
            Op::Retire { retention } => Command::Retire {
                retention_ms: *retention,
            },
        }
    }

    /// The epoch a step names, relative to the job's latest attempt.
    fn epoch(&self, job_id: &str, epoch: Epoch) -> Option<u32> {
        let attempts = self.state.job(job_id).map_or(0, |job| job.attempts);
        match epoch {
            Epoch::Live => Some(attempts),
            Epoch::Older => Some(attempts.wrapping_sub(1)),
            Epoch::Newer => Some(attempts + 1),
            Epoch::Missing => None,
        }
    }

    /// Applies a decision's events, keeping the model and the history.
    fn apply(&mut self, decision: &Decision, at: u64) {
        for event in &decision.events {
            let before = event.job_id().and_then(|id| self.state.job(id).cloned());
            self.state
                .apply(event, at)
                .unwrap_or_else(|v| panic!("decided event {event:?} violates the state: {v}"));
            self.history.push((event.clone(), at));
            self.follow(event, before.as_ref());
        }
    }

    /// Checks one event's effect on its job and updates the model.
    fn follow(&mut self, event: &Event, before: Option<&JobView>) {
        let holders = &mut self.model.holders;
        match event {
            Event::JobEnqueued(spec) => {
                if let (Some(key), Some(hash)) = (&spec.idempotency_key, spec.request_hash) {
                    let used = self
                        .model
                        .keys
                        .insert(key.clone(), (spec.job_id.clone(), hash));
                    assert_eq!(used, None, "idempotency key {key} enqueued twice");
                }
            }
            Event::JobLeased {
                job_id, host_id, ..
            } => {
                let previous = holders.insert(job_id.clone(), host_id.clone());
                assert_eq!(
                    previous, None,
                    "job {job_id} leased while held by {previous:?}"
                );
                let host = self.state.host(host_id).unwrap();
                let job = self.state.job(job_id).unwrap();
                assert!(host.can_run(job), "{host:?} cannot run {job:?}");
                assert!(
                    host.active_leases <= host.max_parallel,
                    "a claim took host {host_id} past maxParallel: {host:?}"
                );
            }
            Event::LeaseExpired { job_id, .. } => {
                assert!(holders.remove(job_id).is_some());
                let before = before.unwrap();
                let after = self.state.job(job_id).unwrap();
                let expected = if before.cancel_requested {
                    JobStatus::Cancelled
                } else if before.attempts >= before.max_attempts {
                    JobStatus::Failed
                } else {
                    JobStatus::Queued
                };
                assert_eq!(after.status, expected, "expiry of {before:?}");
                assert_eq!(after.attempts, before.attempts);
            }
            Event::JobCompleted(done) => {
                assert_eq!(holders.remove(&done.job_id), Some(done.host_id.clone()));
            }
            Event::HostRegistered { host_id, .. } => {
                let host = self.state.host(host_id).unwrap();
                self.model
                    .allowed
                    .insert(host_id.clone(), host.max_parallel.max(host.active_leases));
            }
            // A retired job's key may be used again.
            Event::JobsRetired { .. } => {
                let state = &self.state;
                self.model
                    .keys
                    .retain(|_, (job_id, _)| state.job(job_id).is_some());
            }
            _ => {}
        }
    }

    /// Decides `command` now, checks the decision against the rules, and
    /// applies it.
    fn step(&mut self, command: &Command) -> Result<Decision, Rejection> {
        let at = self.state.tick(self.now);
        let digest = self.state.digest();
        let result = self.state.decide(command, at);
        assert_eq!(self.state.digest(), digest, "decide changed the state");
        self.check_decision(command, at, &result);
        if let Ok(decision) = &result {
            self.apply(decision, at);
        }
        result
    }

    fn check_decision(&self, command: &Command, at: u64, result: &Result<Decision, Rejection>) {
        let state = &self.state;
        match command {
            Command::RegisterHost {
                host_id,
                max_parallel,
                ..
            } => match result {
                Err(Rejection::Invalid(message)) => {
                    assert_eq!(*max_parallel, 0);
                    assert!(message.contains("maxParallel"), "{message}");
                }
                Ok(decision) => {
                    assert!(*max_parallel > 0);
                    assert!(decision.events.len() <= 1);
                    assert_eq!(decision.affected, Affected::Host(host_id.clone()));
                }
                Err(other) => panic!("register refused: {other:?}"),
            },
            Command::Enqueue { jobs } => self.check_enqueue(jobs, result),
            Command::Claim {
                host_id, max_jobs, ..
            } => {
                let Some(host) = state.host(host_id) else {
                    assert!(matches!(result, Err(Rejection::NotFound(_))), "{result:?}");
                    return;
                };
                let mut queued: Vec<&JobView> = state
                    .jobs_after(None)
                    .filter(|job| job.status == JobStatus::Queued && host.can_run(job))
                    .collect();
                queued.sort_by_key(|job| (-job.priority, job.order));
                let take = (*max_jobs).min(host.max_parallel.saturating_sub(host.active_leases));
                let expected: Vec<String> = queued
                    .iter()
                    .take(take as usize)
                    .map(|job| job.id.clone())
                    .collect();
                let decision = result.as_ref().expect("a registered host may claim");
                assert_eq!(decision.affected, Affected::Jobs(expected.clone()));
                for (event, id) in decision.events.iter().zip(&expected) {
                    let epoch = state.job(id).unwrap().attempts + 1;
                    assert_eq!(
                        event,
                        &Event::JobLeased {
                            job_id: id.clone(),
                            host_id: host_id.clone(),
                            lease_epoch: epoch,
                            lease_expires_at: at + LEASE_MS,
                            claim_key: None,
                        }
                    );
                }
                assert_eq!(decision.events.len(), expected.len());
            }
            Command::Renew {
                host_id, running, ..
            } => {
                if state.host(host_id).is_none() {
                    assert!(matches!(result, Err(Rejection::NotFound(_))), "{result:?}");
                    return;
                }
                let decision = result.as_ref().expect("a registered host may renew");
                let mut seen = BTreeSet::new();
                let mut expected_lost = Vec::new();
                let mut expected_events = Vec::new();
                for (job_id, epoch) in running {
                    if !seen.insert(job_id) {
                        continue;
                    }
                    let lease = state.job(job_id).and_then(|job| job.lease.as_ref());
                    match lease.filter(|l| &l.host_id == host_id && l.epoch == *epoch) {
                        None => expected_lost.push(job_id.clone()),
                        Some(lease) if lease.expires_at.saturating_sub(at) < LEASE_MS / 2 => {
                            expected_events.push(Event::LeaseRenewed {
                                job_id: job_id.clone(),
                                lease_epoch: *epoch,
                                lease_expires_at: at + LEASE_MS,
                            })
                        }
                        Some(_) => {}
                    }
                }
                let expected_cancel: BTreeSet<String> = state
                    .jobs_after(None)
                    .filter(|job| {
                        job.cancel_requested
                            && job.lease.as_ref().is_some_and(|l| &l.host_id == host_id)
                    })
                    .map(|job| job.id.clone())
                    .collect();
                assert_eq!(decision.events, expected_events);
                let Affected::Renewed { cancel, lost, .. } = &decision.affected else {
                    panic!("renew answered {:?}", decision.affected);
                };
                assert_eq!(lost, &expected_lost);
                assert_eq!(
                    cancel.iter().cloned().collect::<BTreeSet<_>>(),
                    expected_cancel
                );
            }
            Command::Complete(JobReport {
                job_id,
                host_id,
                lease_epoch,
                ..
            }) => {
                let Some(job) = state.job(job_id) else {
                    assert!(matches!(result, Err(Rejection::NotFound(_))), "{result:?}");
                    return;
                };
                let epoch_fits = |live: u32| lease_epoch.is_none_or(|epoch| epoch == live);
                match &job.lease {
                    Some(lease) if &lease.host_id == host_id && epoch_fits(lease.epoch) => {
                        let decision = result.as_ref().expect("the live lease may complete");
                        assert!(matches!(
                            &decision.events[..],
                            [Event::JobCompleted(done)] if done.lease_epoch == lease.epoch
                        ));
                    }
                    None if job.status.is_final()
                        && job.outcome.is_some()
                        && job.assigned_host_id.as_ref() == Some(host_id)
                        && epoch_fits(job.attempts) =>
                    {
                        let decision = result.as_ref().expect("a repeat is answered again");
                        assert!(decision.events.is_empty());
                        assert_eq!(decision.affected, Affected::Job(job_id.clone()));
                    }
                    _ => assert!(
                        matches!(result, Err(Rejection::StaleLease(_))),
                        "completion of {job:?} by {host_id} epoch {lease_epoch:?}: {result:?}"
                    ),
                }
            }
            Command::Cancel { job_id } => {
                let Some(job) = state.job(job_id) else {
                    assert!(matches!(result, Err(Rejection::NotFound(_))), "{result:?}");
                    return;
                };
                let id = job_id.clone();
                match (job.status, job.cancel_requested) {
                    (JobStatus::Completed | JobStatus::Failed, _) => {
                        assert!(matches!(result, Err(Rejection::Conflict(_))), "{result:?}")
                    }
                    (status, requested) => {
                        let expected = match status {
                            JobStatus::Queued => vec![Event::JobCancelled { job_id: id }],
                            JobStatus::Leased if !requested => {
                                vec![Event::CancelRequested { job_id: id }]
                            }
                            _ => vec![],
                        };
                        assert_eq!(result.as_ref().unwrap().events, expected);
                    }
                }
            }
            Command::ApproveHost { .. }
            | Command::RevokeHost { .. }
            | Command::IssueKey(_)
            | Command::RevokeKey { .. } => {
                unreachable!("the model makes no access commands; their own tests cover them")
            }
            Command::ExpireLeases | Command::Expire { .. } => {
                let due: BTreeSet<(String, u32)> = state
                    .jobs_after(None)
                    .filter_map(|job| {
                        let lease = job.lease.as_ref()?;
                        (lease.expires_at <= at).then(|| (job.id.clone(), lease.epoch))
                    })
                    .filter(|lease| match command {
                        Command::Expire { leases } => leases.contains(lease),
                        _ => true,
                    })
                    .collect();
                let expired: BTreeSet<(String, u32)> = result
                    .as_ref()
                    .unwrap()
                    .events
                    .iter()
                    .map(|event| match event {
                        Event::LeaseExpired {
                            job_id,
                            lease_epoch,
                        } => (job_id.clone(), *lease_epoch),
                        other => panic!("expiry emitted {other:?}"),
                    })
                    .collect();
                assert_eq!(expired, due);
            }
            Command::Retire { retention_ms } => {
                let cutoff = at.saturating_sub(*retention_ms);
                let due: Vec<&JobView> = state
                    .jobs_after(None)
                    .filter(|job| job.status.is_final() && job.updated_at < cutoff)
                    .collect();
                let decision = result.as_ref().expect("retirement is never refused");
                let expected = match due.is_empty() {
                    true => vec![],
                    false => vec![Event::JobsRetired {
                        finished_before: cutoff,
                    }],
                };
                assert_eq!(decision.events, expected);
                let mut retiring: Vec<&str> = state.retiring(cutoff).map(|j| &*j.id).collect();
                let mut due: Vec<&str> = due.iter().map(|job| &*job.id).collect();
                retiring.sort_unstable();
                due.sort_unstable();
                assert_eq!(retiring, due);
            }
            Command::CreateCluster { .. } => unreachable!("steps never recreate the cluster"),
        }
    }

    /// Enqueue goes spec by spec: the first invalid one, or a reused key
    /// with another request, refuses the whole command.
    fn check_enqueue(&self, specs: &[JobSpec], result: &Result<Decision, Rejection>) {
        let mut in_request = BTreeSet::new();
        let mut ids = Vec::new();
        let mut new_ids = Vec::new();
        for spec in specs {
            if spec.max_attempts == 0 {
                assert!(
                    matches!(result, Err(Rejection::Invalid(m)) if m.contains("maxAttempts")),
                    "{result:?}"
                );
                return;
            }
            if let (Some(key), Some(hash)) = (&spec.idempotency_key, spec.request_hash) {
                if !in_request.insert(key) {
                    assert!(matches!(result, Err(Rejection::Invalid(_))), "{result:?}");
                    return;
                }
                match self.model.keys.get(key) {
                    Some((job_id, used)) if *used == hash => {
                        ids.push(job_id.clone());
                        continue;
                    }
                    Some(_) => {
                        assert!(matches!(result, Err(Rejection::Conflict(_))), "{result:?}");
                        return;
                    }
                    None => {}
                }
            }
            ids.push(spec.job_id.clone());
            new_ids.push(spec.job_id.clone());
        }
        let decision = result.as_ref().expect("a valid enqueue is accepted");
        assert_eq!(decision.affected, Affected::Jobs(ids));
        let enqueued: Vec<String> = decision
            .events
            .iter()
            .map(|event| match event {
                Event::JobEnqueued(spec) => spec.job_id.clone(),
                other => panic!("enqueue emitted {other:?}"),
            })
            .collect();
        assert_eq!(enqueued, new_ids);
    }

    /// The invariants every state keeps, checked after each step.
    fn check_views(&mut self) {
        let state = &self.state;
        let mut leases_per_host: BTreeMap<&str, u32> = BTreeMap::new();
        let mut holders = BTreeMap::new();
        let mut last_order = None;
        let (mut queued, mut leased) = (0, 0);
        for job in state.jobs_after(None) {
            assert!(last_order < Some(job.order), "jobs out of order");
            last_order = Some(job.order);
            assert!(job.attempts <= job.max_attempts, "{job:?}");
            assert_eq!(
                job.status == JobStatus::Leased,
                job.lease.is_some(),
                "{job:?}"
            );
            match job.status {
                JobStatus::Queued => {
                    queued += 1;
                    assert!(job.attempts < job.max_attempts, "{job:?}");
                }
                JobStatus::Leased => leased += 1,
                _ => {}
            }
            if let Some(lease) = &job.lease {
                assert_eq!(lease.epoch, job.attempts, "{job:?}");
                assert_eq!(job.assigned_host_id.as_ref(), Some(&lease.host_id));
                // Capabilities are checked when a lease is granted: a host
                // re-registering without one keeps the job it runs.
                assert!(state.host(&lease.host_id).is_some(), "{job:?}");
                *leases_per_host.entry(&lease.host_id).or_default() += 1;
                holders.insert(job.id.clone(), lease.host_id.clone());
            }
        }
        assert_eq!(
            holders, self.model.holders,
            "views and events disagree on leases"
        );
        assert_eq!(state.queued_count(), queued);
        assert_eq!(state.leased_count(), leased);
        assert_eq!(state.job_count(), state.jobs_after(None).count());
        // Retired or not, every job enqueued is counted once.
        let enqueued = self
            .history
            .iter()
            .filter(|(event, _)| matches!(event, Event::JobEnqueued(_)))
            .count() as u64;
        assert_eq!(state.status_counts().iter().sum::<u64>(), enqueued);
        let next_expiry = state
            .jobs_after(None)
            .filter_map(|job| job.lease.as_ref().map(|lease| lease.expires_at))
            .min();
        assert_eq!(state.next_expiry(), next_expiry);

        for host in state.hosts() {
            let held = leases_per_host.get(host.id.as_str()).copied().unwrap_or(0);
            assert_eq!(host.active_leases, held, "{host:?}");
            let allowed = self.model.allowed.get_mut(&host.id).unwrap();
            assert!(held <= *allowed, "{host:?} holds more than {allowed}");
            // Once leases end, the allowance shrinks back to maxParallel.
            *allowed = host.max_parallel.max(held.min(*allowed));
            let can_take = state
                .jobs_after(None)
                .any(|job| job.status == JobStatus::Queued && host.can_run(job))
                && held < host.max_parallel;
            assert_eq!(state.has_work_for(&host.id), can_take, "{host:?}");
        }
        assert!(!state.has_work_for(&host_id(HOSTS - 1)));
    }
}

fn views(state: &State) -> (Vec<HostView>, Vec<JobView>) {
    (
        state.hosts().cloned().collect(),
        state.jobs_after(None).cloned().collect(),
    )
}

fn restore(state: &State) -> State {
    let (hosts, jobs) = views(state);
    let mut restored = State::from_views(
        state.cluster_id().map(str::to_string),
        state.log_clock(),
        hosts,
        state.keys().cloned(),
        jobs,
    );
    restored.resume_retirement(state.retirement());
    restored
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_commands_keep_every_rule(steps in steps(), split in any::<prop::sample::Index>()) {
        let split = split.index(steps.len());
        let mut run = Run::new();
        let mut restored: Option<State> = None;
        for (i, step) in steps.iter().enumerate() {
            if i == split {
                let state = restore(&run.state);
                prop_assert_eq!(state.digest(), run.state.digest());
                restored = Some(state);
            }
            run.now += step.elapse;
            let command = run.command(&step.op);
            let at = run.state.clock(run.now);
            let live = run.step(&command);
            if let Some(restored) = &mut restored {
                let restored_at = restored.tick(run.now);
                let decided = restored.decide(&command, restored_at);
                prop_assert_eq!(&decided, &live, "a restored state decided {:?} otherwise", command);
                for event in decided.iter().flat_map(|d| &d.events) {
                    restored.apply(event, at).unwrap();
                }
                prop_assert_eq!(restored.digest(), run.state.digest());
            }
            run.check_views();
        }

        let mut replayed = State::new();
        // As an auditor replays: each event moved into the state.
        let mut moved_in = State::new();
        for (event, at) in &run.history {
            replayed.apply(event, *at).unwrap();
            moved_in.apply_owned(event.clone(), *at).unwrap();
        }
        prop_assert_eq!(views(&replayed), views(&run.state));
        prop_assert_eq!(replayed.digest(), run.state.digest());
        prop_assert_eq!(views(&moved_in), views(&run.state));
        prop_assert_eq!(moved_in.digest(), run.state.digest());
        // Replay sees the times of events only; a proposal that was refused
        // moved the live clock but left no event.
        let last_event_at = run.history.last().map_or(0, |(_, at)| *at);
        prop_assert_eq!(replayed.last_at(), last_event_at);
    }
}
