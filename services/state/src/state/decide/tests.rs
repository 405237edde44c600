//! Unit tests of `decide`: one behaviour per test, each command decided and
//! its events applied on a small state (see `fixture`).

use std::collections::BTreeMap;

use skyclaw_log_format::event::{BlobRef, Event, JobSpec, Payload};

use crate::command::{Affected, Command, Rejection};
use crate::state::fixture::*;
use crate::state::State;
use crate::view::{JobStatus, Lease};
use crate::{MAX_ATTEMPTS_LIMIT, MAX_PARALLEL_LIMIT};

// ----- cluster ------------------------------------------------------------

#[test]
fn nothing_is_decided_before_the_cluster_exists() {
    let state = State::new();
    assert_eq!(
        state.decide(
            &Command::Enqueue {
                jobs: vec![spec("j")]
            },
            1
        ),
        Err(Rejection::NotInitialized)
    );
    assert_eq!(
        state.decide(&Command::ExpireLeases, 1),
        Err(Rejection::NotInitialized)
    );
}

#[test]
fn the_cluster_is_created_once() {
    let mut state = cluster();
    let again = run(
        &mut state,
        Command::CreateCluster {
            cluster_id: "another".into(),
        },
        5,
    )
    .unwrap();
    assert!(again.events.is_empty());
    assert_eq!(state.cluster_id(), Some("test-cluster"));
}

// ----- hosts ------------------------------------------------------------------

#[test]
fn registration_is_validated_field_by_field() {
    let state = cluster();
    let command = |host_id: &str, name: &str, capabilities: Vec<String>, max_parallel| {
        Command::RegisterHost {
            host_id: host_id.into(),
            name: name.into(),
            capabilities,
            max_parallel,
            sandbox: None,
            key: None,
        }
    };
    let cases = [
        (command("", "n", vec![], 1), "hostId"),
        (command(&"x".repeat(129), "n", vec![], 1), "hostId"),
        (command("h", " ", vec![], 1), "name"),
        (command("h", "n", vec![], 0), "maxParallel"),
        (
            command("h", "n", vec![], MAX_PARALLEL_LIMIT + 1),
            "maxParallel",
        ),
        (command("h", "n", strings(&[""]), 1), "capabilities"),
        (command("h", "n", vec!["c".repeat(65)], 1), "capabilities"),
        (command("h", "n", vec!["c".into(); 65], 1), "capabilities"),
    ];
    for (command, field) in cases {
        let message = invalid_message(state.decide(&command, 1));
        assert!(message.contains(field), "{message:?} names {field}");
    }
}

#[test]
fn re_registering_unchanged_writes_nothing_and_changes_keep_registered_at() {
    let mut state = cluster();
    run(
        &mut state,
        Command::RegisterHost {
            host_id: "h".into(),
            name: "first".into(),
            capabilities: strings(&["shell"]),
            max_parallel: 2,
            sandbox: None,
            key: None,
        },
        10,
    )
    .unwrap();
    let same = Command::RegisterHost {
        host_id: "h".into(),
        name: "first".into(),
        capabilities: strings(&["shell"]),
        max_parallel: 2,
        sandbox: None,
        key: None,
    };
    let decision = run(&mut state, same, 20).unwrap();
    assert!(decision.events.is_empty());
    assert_eq!(decision.affected, Affected::Host("h".into()));

    let changed = Command::RegisterHost {
        host_id: "h".into(),
        name: "second".into(),
        capabilities: strings(&["shell", "gpu"]),
        max_parallel: 4,
        sandbox: None,
        key: None,
    };
    assert_eq!(run(&mut state, changed, 30).unwrap().events.len(), 1);
    let host = state.host("h").unwrap();
    assert_eq!(host.name, "second");
    assert_eq!(host.capabilities, strings(&["shell", "gpu"]));
    assert_eq!(host.max_parallel, 4);
    assert_eq!(host.registered_at, 10);
    assert_eq!(host.updated_at, 30);
}

#[test]
fn re_registering_keeps_the_leases_a_host_holds() {
    let mut state = leased();
    register(&mut state, "h", &["shell", "gpu"], 3);
    assert_eq!(state.host("h").unwrap().active_leases, 1);
    assert_eq!(status(&state, "j"), JobStatus::Leased);
}

// ----- enqueue ----------------------------------------------------------------

#[test]
fn enqueue_is_validated_field_by_field() {
    let state = cluster();
    let with = |change: fn(&mut JobSpec)| {
        let mut spec = spec("j");
        change(&mut spec);
        Command::Enqueue { jobs: vec![spec] }
    };
    let cases = [
        (with(|s| s.job_id = String::new()), "job id"),
        (with(|s| s.max_attempts = 0), "maxAttempts"),
        (
            with(|s| s.max_attempts = MAX_ATTEMPTS_LIMIT + 1),
            "maxAttempts",
        ),
        (with(|s| s.payload = shell("  ")), "payload.command"),
        (
            with(|s| s.required_capabilities = strings(&[""])),
            "requirement.requiredCapabilities",
        ),
        (
            with(|s| {
                s.payload = Payload::AutomatonRun {
                    args: None,
                    automaton_dir: None,
                    env: BTreeMap::new(),
                    timeout_ms: Some(0),
                }
            }),
            "payload.timeoutMs",
        ),
        (
            with(|s| {
                s.payload = Payload::Shell {
                    command: "echo".into(),
                    args: vec![],
                    cwd: None,
                    env: BTreeMap::from([("A=B".into(), "x".into())]),
                    timeout_ms: None,
                }
            }),
            "payload.env",
        ),
        (Command::Enqueue { jobs: vec![] }, "jobs"),
    ];
    for (command, field) in cases {
        let message = invalid_message(state.decide(&command, 1));
        assert!(message.contains(field), "{message:?} names {field}");
    }
}

#[test]
fn enqueue_of_several_jobs_is_all_or_nothing() {
    let state = cluster();
    let mut bad = spec("b");
    bad.max_attempts = 0;
    let result = state.decide(
        &Command::Enqueue {
            jobs: vec![spec("a"), bad, spec("c")],
        },
        1,
    );
    assert!(matches!(result, Err(Rejection::Invalid(_))));

    let mut state = state;
    let decision = run(
        &mut state,
        Command::Enqueue {
            jobs: vec![spec("a"), spec("b"), spec("c")],
        },
        1,
    )
    .unwrap();
    assert_eq!(decision.affected, Affected::Jobs(strings(&["a", "b", "c"])));
    assert_eq!(state.queued_count(), 3);
}

#[test]
fn job_ids_are_never_reused() {
    let mut state = cluster();
    enqueue(&mut state, spec("a"), 1);
    assert!(matches!(
        state.decide(
            &Command::Enqueue {
                jobs: vec![spec("a")]
            },
            2
        ),
        Err(Rejection::Conflict(_))
    ));
    assert!(matches!(
        state.decide(
            &Command::Enqueue {
                jobs: vec![spec("b"), spec("b")]
            },
            2
        ),
        Err(Rejection::Conflict(_))
    ));
}

#[test]
fn an_idempotency_key_with_the_same_request_returns_the_same_job() {
    let mut state = cluster();
    enqueue(&mut state, keyed("first", "k", 1), 1);
    let again = run(
        &mut state,
        Command::Enqueue {
            jobs: vec![keyed("second", "k", 1)],
        },
        2,
    )
    .unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.affected, Affected::Jobs(vec!["first".into()]));
    assert!(state.job("second").is_none());
    assert_eq!(state.job_count(), 1);
}

#[test]
fn an_idempotency_key_with_another_request_conflicts() {
    let mut state = cluster();
    enqueue(&mut state, keyed("first", "k", 1), 1);
    let result = state.decide(
        &Command::Enqueue {
            jobs: vec![spec("other"), keyed("second", "k", 2)],
        },
        2,
    );
    match result {
        Err(Rejection::Conflict(message)) => assert!(message.contains("first"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn an_idempotency_key_twice_in_one_request_is_invalid() {
    let state = cluster();
    let result = state.decide(
        &Command::Enqueue {
            jobs: vec![keyed("a", "k", 1), keyed("b", "k", 1)],
        },
        1,
    );
    assert!(matches!(result, Err(Rejection::Invalid(_))));
}

// ----- claims -----------------------------------------------------------------

#[test]
fn claims_take_priority_first_then_age() {
    let mut state = cluster();
    register(&mut state, "h", &[], 10);
    for (id, priority) in [("low", -1), ("old", 0), ("urgent", 5), ("young", 0)] {
        enqueue(
            &mut state,
            JobSpec {
                priority,
                ..spec(id)
            },
            1,
        );
    }
    assert_eq!(claim(&mut state, "h", 3, 2), ["urgent", "old", "young"]);
    assert_eq!(claim(&mut state, "h", 3, 3), ["low"]);
    assert!(claim(&mut state, "h", 3, 4).is_empty());
}

#[test]
fn a_host_claims_only_jobs_it_has_every_capability_for() {
    let mut state = cluster();
    register(&mut state, "h", &["shell"], 5);
    let needs = |id: &str, caps: &[&str]| JobSpec {
        required_capabilities: strings(caps),
        ..spec(id)
    };
    enqueue(&mut state, needs("gpu", &["shell", "gpu"]), 1);
    enqueue(&mut state, needs("plain", &[]), 1);
    enqueue(&mut state, needs("shell", &["shell"]), 1);
    assert!(state.has_work_for("h"));
    assert_eq!(claim(&mut state, "h", 5, 2), ["plain", "shell"]);
    assert!(!state.has_work_for("h"));
    assert_eq!(status(&state, "gpu"), JobStatus::Queued);
}

#[test]
fn a_host_never_holds_more_than_max_parallel() {
    let mut state = cluster();
    register(&mut state, "h", &[], 2);
    for id in ["a", "b", "c"] {
        enqueue(&mut state, spec(id), 1);
    }
    assert_eq!(claim(&mut state, "h", 5, 2), ["a", "b"]);
    assert_eq!(state.host("h").unwrap().active_leases, 2);
    assert!(!state.has_work_for("h"));
    assert!(claim(&mut state, "h", 1, 3).is_empty());
}

#[test]
fn a_claim_leases_with_the_next_epoch_and_expiry() {
    let state = leased();
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Leased);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.assigned_host_id.as_deref(), Some("h"));
    assert_eq!(
        job.lease,
        Some(Lease {
            host_id: "h".into(),
            epoch: 1,
            expires_at: 100 + LEASE_MS,
            claim_key: None,
        })
    );
    assert_eq!(state.next_expiry(), Some(100 + LEASE_MS));
    assert_eq!(state.leased_count(), 1);
    assert_eq!(state.queued_count(), 0);
}

#[test]
fn an_unknown_host_cannot_claim_or_renew() {
    let state = cluster();
    let claim = Command::Claim {
        host_id: "ghost".into(),
        max_jobs: 1,
        lease_ms: LEASE_MS,
        claim_key: None,
    };
    assert!(matches!(
        state.decide(&claim, 1),
        Err(Rejection::NotFound(_))
    ));
    assert!(matches!(
        state.decide(&renew("ghost", &[]), 1),
        Err(Rejection::NotFound(_))
    ));
    assert!(!state.has_work_for("ghost"));
}

// ----- renewals ---------------------------------------------------------------

#[test]
fn a_lease_is_renewed_only_past_half_its_life() {
    let mut state = leased();
    let early = run(&mut state, renew("h", &[("j", 1)]), 100 + LEASE_MS / 2 - 1).unwrap();
    assert!(early.events.is_empty());

    let at = 100 + LEASE_MS / 2 + 1;
    let late = run(&mut state, renew("h", &[("j", 1)]), at).unwrap();
    assert_eq!(
        late.events,
        [Event::LeaseRenewed {
            job_id: "j".into(),
            lease_epoch: 1,
            lease_expires_at: at + LEASE_MS,
        }]
    );
    assert_eq!(state.next_expiry(), Some(at + LEASE_MS));
    assert_eq!(
        state.job("j").unwrap().lease.as_ref().unwrap().expires_at,
        at + LEASE_MS
    );
}

#[test]
fn a_job_reported_twice_is_renewed_once() {
    let mut state = leased();
    let at = 100 + LEASE_MS / 2 + 1;
    let decision = run(
        &mut state,
        renew("h", &[("j", 1), ("j", 1), ("x", 1), ("x", 1)]),
        at,
    )
    .unwrap();
    assert_eq!(decision.events.len(), 1);
    assert!(matches!(decision.affected, Affected::Renewed { lost, .. } if lost == ["x"]));
}

#[test]
fn a_renewal_reports_leases_the_host_no_longer_holds() {
    let mut state = leased();
    register(&mut state, "other", &["shell"], 1);
    let decision = run(&mut state, renew("h", &[("j", 7), ("unknown", 1)]), 101).unwrap();
    assert!(decision.events.is_empty());
    assert_eq!(
        decision.affected,
        Affected::Renewed {
            host_id: "h".into(),
            cancel: vec![],
            lost: strings(&["j", "unknown"]),
        }
    );
    let decision = run(&mut state, renew("other", &[("j", 1)]), 102).unwrap();
    assert!(matches!(decision.affected, Affected::Renewed { lost, .. } if lost == ["j"]));
}

#[test]
fn a_renewal_delivers_cancel_requests() {
    let mut state = leased();
    let decision = run(&mut state, Command::Cancel { job_id: "j".into() }, 101).unwrap();
    assert_eq!(
        decision.events,
        [Event::CancelRequested { job_id: "j".into() }]
    );
    let decision = run(&mut state, renew("h", &[("j", 1)]), 102).unwrap();
    assert_eq!(
        decision.affected,
        Affected::Renewed {
            host_id: "h".into(),
            cancel: strings(&["j"]),
            lost: vec![],
        }
    );
}

// ----- completion -------------------------------------------------------------

#[test]
fn a_completion_under_the_live_lease_finishes_the_job() {
    let mut state = leased();
    let decision = run(&mut state, complete("j", "h", Some(1), true), 200).unwrap();
    assert_eq!(decision.affected, Affected::Job("j".into()));
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.lease, None);
    assert_eq!(job.error, None);
    let outcome = job.outcome.as_ref().unwrap();
    assert_eq!(outcome.finished_at, 200);
    assert_eq!(outcome.duration_ms, 5);
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.stdout, BlobRef::of(b"out"));
    assert_eq!(outcome.stderr, BlobRef::of(b"err"));
    assert_eq!(state.host("h").unwrap().active_leases, 0);
    assert_eq!(state.next_expiry(), None);
}

#[test]
fn a_failed_completion_says_why() {
    let mut state = leased();
    run(&mut state, complete("j", "h", Some(1), false), 200).unwrap();
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("exited with code 2"));
}

#[test]
fn a_completion_without_an_epoch_means_the_live_lease() {
    let mut state = leased();
    let decision = run(&mut state, complete("j", "h", None, true), 200).unwrap();
    assert!(matches!(&decision.events[..], [Event::JobCompleted(done)] if done.lease_epoch == 1));
}

#[test]
fn a_completion_under_a_stale_epoch_is_refused() {
    let mut state = leased();
    run(&mut state, Command::ExpireLeases, 100 + LEASE_MS).unwrap();
    assert_eq!(claim(&mut state, "h", 1, 100 + LEASE_MS), ["j"]);
    for epoch in [1, 3] {
        assert!(matches!(
            state.decide(&complete("j", "h", Some(epoch), true), 100 + LEASE_MS),
            Err(Rejection::StaleLease(_))
        ));
    }
    assert_eq!(status(&state, "j"), JobStatus::Leased);
}

#[test]
fn a_completion_from_another_host_is_refused() {
    let mut state = leased();
    register(&mut state, "other", &["shell"], 1);
    match state.decide(&complete("j", "other", Some(1), true), 200) {
        Err(Rejection::StaleLease(message)) => assert!(message.contains("another host")),
        other => panic!("expected a stale lease, got {other:?}"),
    }
}

#[test]
fn a_completion_of_a_queued_or_unknown_job_is_refused() {
    let mut state = cluster();
    register(&mut state, "h", &[], 1);
    enqueue(&mut state, spec("j"), 1);
    assert!(matches!(
        state.decide(&complete("j", "h", None, true), 2),
        Err(Rejection::StaleLease(_))
    ));
    assert!(matches!(
        state.decide(&complete("nope", "h", None, true), 2),
        Err(Rejection::NotFound(_))
    ));
}

#[test]
fn a_repeated_completion_is_answered_again_without_an_event() {
    let mut state = leased();
    run(&mut state, complete("j", "h", Some(1), true), 200).unwrap();
    let digest = state.digest();
    for epoch in [Some(1), None] {
        let again = run(&mut state, complete("j", "h", epoch, true), 300).unwrap();
        assert!(again.events.is_empty());
        assert_eq!(again.affected, Affected::Job("j".into()));
    }
    assert_eq!(state.digest(), digest);
    assert!(matches!(
        state.decide(&complete("j", "h", Some(2), true), 300),
        Err(Rejection::StaleLease(_))
    ));
}

#[test]
fn a_completion_after_a_cancel_request_ends_cancelled() {
    let mut state = leased();
    run(&mut state, Command::Cancel { job_id: "j".into() }, 150).unwrap();
    run(&mut state, complete("j", "h", Some(1), true), 200).unwrap();
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.outcome.is_some());
}

// ----- cancel -----------------------------------------------------------------

#[test]
fn cancelling_a_queued_job_takes_it_out_of_the_queue() {
    let mut state = cluster();
    register(&mut state, "h", &[], 1);
    enqueue(&mut state, spec("j"), 1);
    let decision = run(&mut state, Command::Cancel { job_id: "j".into() }, 2).unwrap();
    assert_eq!(
        decision.events,
        [Event::JobCancelled { job_id: "j".into() }]
    );
    assert_eq!(status(&state, "j"), JobStatus::Cancelled);
    assert_eq!(state.queued_count(), 0);
    assert!(!state.has_work_for("h"));
    assert!(claim(&mut state, "h", 1, 3).is_empty());
    let again = run(&mut state, Command::Cancel { job_id: "j".into() }, 4).unwrap();
    assert!(again.events.is_empty());
}

#[test]
fn cancelling_a_leased_job_is_requested_once() {
    let mut state = leased();
    run(&mut state, Command::Cancel { job_id: "j".into() }, 101).unwrap();
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Leased);
    assert!(job.cancel_requested);
    let again = run(&mut state, Command::Cancel { job_id: "j".into() }, 102).unwrap();
    assert!(again.events.is_empty());
}

#[test]
fn a_finished_or_unknown_job_cannot_be_cancelled() {
    let mut state = leased();
    run(&mut state, complete("j", "h", Some(1), true), 200).unwrap();
    assert!(matches!(
        state.decide(&Command::Cancel { job_id: "j".into() }, 201),
        Err(Rejection::Conflict(_))
    ));
    assert!(matches!(
        state.decide(&Command::Cancel { job_id: "x".into() }, 201),
        Err(Rejection::NotFound(_))
    ));
}

// ----- expiry -----------------------------------------------------------------

#[test]
fn leases_expire_only_once_their_time_has_come() {
    let mut state = leased();
    let early = run(&mut state, Command::ExpireLeases, 100 + LEASE_MS - 1).unwrap();
    assert!(early.events.is_empty());
    let due = run(&mut state, Command::ExpireLeases, 100 + LEASE_MS).unwrap();
    assert_eq!(
        due.events,
        [Event::LeaseExpired {
            job_id: "j".into(),
            lease_epoch: 1,
        }]
    );
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.lease, None);
    assert_eq!(job.attempts, 1);
    assert_eq!(state.host("h").unwrap().active_leases, 0);
    assert_eq!(state.next_expiry(), None);
}

#[test]
fn expiry_requeues_until_max_attempts_then_fails() {
    let mut state = cluster();
    register(&mut state, "h", &[], 1);
    enqueue(
        &mut state,
        JobSpec {
            max_attempts: 2,
            ..spec("j")
        },
        1,
    );
    let mut at = 10;
    for attempt in 1..=2 {
        assert_eq!(claim(&mut state, "h", 1, at), ["j"]);
        assert_eq!(state.job("j").unwrap().attempts, attempt);
        at += LEASE_MS;
        run(&mut state, Command::ExpireLeases, at).unwrap();
    }
    let job = state.job("j").unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.error.as_deref().unwrap().contains("maxAttempts"),
        "{:?}",
        job.error
    );
    assert!(claim(&mut state, "h", 1, at).is_empty());
}

#[test]
fn expiry_of_a_job_with_a_cancel_request_cancels_it() {
    let mut state = leased();
    run(&mut state, Command::Cancel { job_id: "j".into() }, 101).unwrap();
    run(&mut state, Command::ExpireLeases, 100 + LEASE_MS).unwrap();
    assert_eq!(status(&state, "j"), JobStatus::Cancelled);
    assert_eq!(state.queued_count(), 0);
}

#[test]
fn a_late_renewal_keeps_a_lease_that_was_not_yet_swept() {
    let mut state = leased();
    let at = 100 + LEASE_MS + 5;
    run(&mut state, renew("h", &[("j", 1)]), at).unwrap();
    let swept = run(&mut state, Command::ExpireLeases, at).unwrap();
    assert!(swept.events.is_empty());
    assert_eq!(status(&state, "j"), JobStatus::Leased);
}

#[test]
fn a_named_lease_expires_only_if_still_live_under_that_epoch_and_due() {
    let mut state = leased();
    let expire = |leases: &[(&str, u32)]| Command::Expire {
        leases: leases.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
    };
    let early = run(&mut state, expire(&[("j", 1)]), 100 + LEASE_MS - 1).unwrap();
    assert!(early.events.is_empty(), "not due by the log's clock yet");
    let at = 100 + LEASE_MS;
    for stale in [expire(&[("j", 2)]), expire(&[("unknown", 1)])] {
        assert!(run(&mut state, stale, at).unwrap().events.is_empty());
    }
    let twice = run(&mut state, expire(&[("j", 1), ("j", 1)]), at).unwrap();
    assert_eq!(
        twice.events,
        [Event::LeaseExpired {
            job_id: "j".into(),
            lease_epoch: 1,
        }]
    );
    assert_eq!(status(&state, "j"), JobStatus::Queued);
    // Claimed again, the job's new lease is not the one named before.
    assert_eq!(claim(&mut state, "h", 1, at + 1), ["j"]);
    let again = run(&mut state, expire(&[("j", 1)]), at + 2 * LEASE_MS).unwrap();
    assert!(again.events.is_empty());
    assert_eq!(status(&state, "j"), JobStatus::Leased);
}

#[test]
fn a_renewal_after_a_lease_was_named_keeps_it() {
    let mut state = leased();
    let at = 100 + LEASE_MS + 5;
    run(&mut state, renew("h", &[("j", 1)]), at).unwrap();
    let expire = Command::Expire {
        leases: vec![("j".into(), 1)],
    };
    assert!(run(&mut state, expire, at + 1).unwrap().events.is_empty());
    assert_eq!(status(&state, "j"), JobStatus::Leased);
}
