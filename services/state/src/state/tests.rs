//! Unit tests of `State` itself: the log's clock, the queries, and a state
//! rebuilt from its views.

use skyclaw_log_format::event::{Event, JobSpec};

use super::fixture::*;
use super::State;
use crate::command::Command;
use crate::view::JobStatus;

#[test]
fn the_clock_never_goes_back() {
    let mut state = cluster();
    enqueue(&mut state, spec("a"), 500);
    assert_eq!(state.last_at(), 500);
    assert_eq!(state.clock(100), 500);
    assert_eq!(state.clock(900), 900);
    enqueue(&mut state, spec("b"), 100);
    assert_eq!(state.job("b").unwrap().created_at, 500);
}

#[test]
fn a_proposal_stamped_an_hour_ahead_neither_freezes_time_nor_expires_leases() {
    const HOUR: u64 = 3_600_000;
    let mut state = leased();
    enqueue(&mut state, spec("ahead"), 200 + HOUR);
    assert_eq!(state.job("ahead").unwrap().created_at, 200 + HOUR);
    // Stamps as time really goes on: time advances from the jump at their
    // pace, rather than standing still for an hour.
    enqueue(&mut state, spec("b"), 300);
    enqueue(&mut state, spec("c"), 1_300);
    enqueue(&mut state, spec("d"), 1_800);
    let created = |id: &str| state.job(id).unwrap().created_at;
    assert_eq!(created("b"), 200 + HOUR);
    assert_eq!(created("c"), 200 + HOUR + 1_000);
    assert_eq!(created("d"), 200 + HOUR + 1_500);
    // By the log's clock the lease of `j` ran out an hour ago, yet nothing
    // expires it but the leader naming it.
    assert!(state.next_expiry().unwrap() < state.last_at());
    let unnamed = run(&mut state, Command::Expire { leases: vec![] }, 1_900).unwrap();
    assert!(unnamed.events.is_empty());
    assert_eq!(status(&state, "j"), JobStatus::Leased);
    let named = Command::Expire {
        leases: vec![("j".into(), 1)],
    };
    let expired = run(&mut state, named, 2_000).unwrap();
    assert_eq!(
        expired.events,
        [Event::LeaseExpired {
            job_id: "j".into(),
            lease_epoch: 1,
        }]
    );
}

#[test]
fn a_stamp_an_hour_behind_stops_time_for_one_proposal_only() {
    const HOUR: u64 = 3_600_000;
    let mut state = cluster();
    enqueue(&mut state, spec("a"), HOUR + 500);
    enqueue(&mut state, spec("b"), 600);
    enqueue(&mut state, spec("c"), 1_600);
    let created = |id: &str| state.job(id).unwrap().created_at;
    assert_eq!(created("b"), HOUR + 500);
    assert_eq!(created("c"), HOUR + 1_500);
}

// ----- queries and restore ---------------------------------------------------

#[test]
fn jobs_are_listed_in_enqueue_order_after_a_cursor() {
    let mut state = cluster();
    for id in ["c", "a", "b"] {
        enqueue(&mut state, spec(id), 1);
    }
    let ids =
        |after| -> Vec<String> { state.jobs_after(after).map(|job| job.id.clone()).collect() };
    assert_eq!(ids(None), ["c", "a", "b"]);
    assert_eq!(ids(Some("c")), ["a", "b"]);
    assert_eq!(ids(Some("b")), Vec::<String>::new());
    assert_eq!(ids(Some("unknown")), ["c", "a", "b"]);
}

#[test]
fn jobs_are_counted_by_status_as_they_move() {
    let mut state = cluster();
    register(&mut state, "h", &["shell"], 2);
    for id in ["a", "b", "c"] {
        enqueue(&mut state, spec(id), 10);
    }
    assert_eq!(state.status_counts(), [3, 0, 0, 0, 0]);
    assert_eq!(claim(&mut state, "h", 2, 20), ["a", "b"]);
    assert_eq!(state.status_counts(), [1, 2, 0, 0, 0]);
    run(&mut state, complete("a", "h", Some(1), true), 30).unwrap();
    run(&mut state, complete("b", "h", Some(1), false), 30).unwrap();
    run(&mut state, Command::Cancel { job_id: "c".into() }, 40).unwrap();
    assert_eq!(state.status_counts(), [0, 0, 1, 1, 1]);
}

#[test]
fn a_state_rebuilt_from_its_views_decides_alike() {
    let mut state = cluster();
    register(&mut state, "h", &["shell"], 2);
    enqueue(&mut state, keyed("a", "k", 1), 10);
    enqueue(
        &mut state,
        JobSpec {
            priority: 3,
            ..spec("b")
        },
        20,
    );
    enqueue(&mut state, spec("c"), 30);
    assert_eq!(claim(&mut state, "h", 1, 40), ["b"]);
    run(&mut state, Command::Cancel { job_id: "c".into() }, 50).unwrap();

    let mut restored = State::from_views(
        state.cluster_id().map(str::to_string),
        state.log_clock(),
        state.hosts().cloned(),
        state.keys().cloned(),
        state.jobs_after(None).cloned(),
    );
    assert_eq!(restored.digest(), state.digest());
    assert_eq!(restored.next_expiry(), state.next_expiry());
    assert_eq!(restored.queued_count(), state.queued_count());
    assert_eq!(restored.status_counts(), state.status_counts());
    assert_eq!(restored.clock(0), state.clock(0));

    let commands = [
        Command::Enqueue {
            jobs: vec![keyed("a2", "k", 1), spec("d")],
        },
        Command::Enqueue {
            jobs: vec![keyed("a3", "k", 2)],
        },
        Command::Claim {
            host_id: "h".into(),
            max_jobs: 5,
            lease_ms: LEASE_MS,
            claim_key: None,
        },
        Command::ExpireLeases,
    ];
    for (i, command) in commands.into_iter().enumerate() {
        let at = 60 + i as u64 * LEASE_MS;
        assert_eq!(
            run(&mut restored, command.clone(), at),
            run(&mut state, command, at)
        );
        assert_eq!(restored.digest(), state.digest());
    }
}

#[test]
fn entries_from_before_the_log_clock_replay_at_the_times_they_first_got() {
    let mut state = State::new();
    let times: Vec<u64> = [10_000, 20_000, 10_100, 10_200]
        .into_iter()
        .map(|stamp| state.tick_as_before(stamp))
        .collect();
    assert_eq!(times, [10_000, 20_000, 20_000, 20_000]);
    // New entries count on from there: the first stamp, far behind, is
    // followed; time moves again with the next.
    assert_eq!(state.tick(10_300), 20_000);
    assert_eq!(state.tick(10_400), 20_100);
}
