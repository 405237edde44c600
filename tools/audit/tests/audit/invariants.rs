//! Logs whose records are each well formed and correctly sealed, but that
//! no coordinator could have written: the replay reports the event that
//! breaks an invariant.

use skyclaw_audit::generate::LogBuilder;
use skyclaw_log_format::{BlobRef, Completion, Event, JobSpec, Payload, Record};
use skyclaw_state::Command;

use crate::util::*;

const T0: u64 = 1_700_000_000_000;

/// A cluster with one host and one job, the job leased, expired, and
/// leased again: its live lease is epoch 2.
fn second_attempt() -> (LogBuilder, Vec<Record>) {
    let (mut log, first) = LogBuilder::new(CLUSTER, T0);
    let mut records = vec![first];
    let mut run = |log: &mut LogBuilder, command: Command, at: u64| {
        records.extend(log.run(&command, at).unwrap());
    };
    run(
        &mut log,
        Command::RegisterHost {
            host_id: "h1".into(),
            name: "one".into(),
            capabilities: vec!["shell".into()],
            max_parallel: 1,
            sandbox: None,
            key: None,
        },
        T0,
    );
    let spec = JobSpec {
        job_id: "j1".into(),
        payload: Payload::Shell {
            command: "true".into(),
            args: vec![],
            cwd: None,
            env: Default::default(),
            timeout_ms: None,
        },
        required_capabilities: vec![],
        priority: 0,
        max_attempts: 3,
        idempotency_key: None,
        account: None,
        request_hash: None,
    };
    run(&mut log, Command::Enqueue { jobs: vec![spec] }, T0 + 1);
    let claim = || Command::Claim {
        host_id: "h1".into(),
        max_jobs: 1,
        lease_ms: 1_000,
        claim_key: None,
    };
    run(&mut log, claim(), T0 + 2);
    run(&mut log, Command::ExpireLeases, T0 + 5_000);
    run(&mut log, claim(), T0 + 5_001);
    assert_eq!(log.state().job("j1").unwrap().attempts, 2);
    (log, records)
}

fn completion(epoch: u32) -> Event {
    Event::JobCompleted(Box::new(Completion {
        job_id: "j1".into(),
        host_id: "h1".into(),
        lease_epoch: epoch,
        success: true,
        duration_ms: 10,
        exit_code: Some(0),
        stdout: BlobRef::of(b"ok"),
        stderr: BlobRef::of(b""),
        error: None,
        receipt: None,
    }))
}

fn verify_crafted(records: &[Record]) -> (String, Option<u64>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "crafted.seg", &segment(CLUSTER, records));
    finding_of(&path, &[])
}

#[test]
fn a_completion_under_a_stale_epoch_is_a_violation() {
    let (mut log, mut records) = second_attempt();
    let stale = log.seal_unchecked(&completion(1), T0 + 6_000);
    let seq = stale.seq;
    records.push(stale);
    let (kind, at, reason) = verify_crafted(&records);
    assert_eq!((kind.as_str(), at), ("invariant", Some(seq)));
    assert!(
        reason.contains("epoch 1 is not the live lease (epoch 2)"),
        "{reason}"
    );
}

#[test]
fn the_same_completion_under_the_live_epoch_verifies() {
    let (mut log, mut records) = second_attempt();
    records.push(log.seal_unchecked(&completion(2), T0 + 6_000));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "fine.seg", &segment(CLUSTER, &records));
    assert_eq!(audit(&["verify", path.to_str().unwrap()]).code, 0);
}

#[test]
fn a_job_completed_twice_is_a_violation() {
    let (mut log, mut records) = second_attempt();
    records.push(log.seal_unchecked(&completion(2), T0 + 6_000));
    let again = log.seal_unchecked(&completion(2), T0 + 6_001);
    let seq = again.seq;
    records.push(again);
    let (kind, at, reason) = verify_crafted(&records);
    assert_eq!((kind.as_str(), at), ("invariant", Some(seq)));
    assert!(reason.contains("no live lease"), "{reason}");
}

#[test]
fn a_job_leased_to_a_second_host_is_a_violation() {
    let (mut log, mut records) = second_attempt();
    records.extend(
        log.run(
            &Command::RegisterHost {
                host_id: "h2".into(),
                name: "two".into(),
                capabilities: vec!["shell".into()],
                max_parallel: 4,
                sandbox: None,
                key: None,
            },
            T0 + 5_500,
        )
        .unwrap(),
    );
    let double = log.seal_unchecked(
        &Event::JobLeased {
            job_id: "j1".into(),
            host_id: "h2".into(),
            lease_epoch: 3,
            lease_expires_at: T0 + 9_000,
            claim_key: None,
        },
        T0 + 5_600,
    );
    let seq = double.seq;
    records.push(double);
    let (kind, at, reason) = verify_crafted(&records);
    assert_eq!((kind.as_str(), at), ("invariant", Some(seq)));
    assert!(reason.contains("is leased while leased"), "{reason}");
}

#[test]
fn time_running_backwards_is_a_violation() {
    let (mut log, mut records) = second_attempt();
    let early = log.seal_unchecked(&completion(2), T0);
    let seq = early.seq;
    records.push(early);
    let (kind, at, reason) = verify_crafted(&records);
    assert_eq!((kind.as_str(), at), ("invariant", Some(seq)));
    assert!(reason.contains("time goes backwards"), "{reason}");
}

#[test]
fn a_log_that_creates_another_cluster_is_caught() {
    // Sealed for CLUSTER, but its first event names another cluster.
    let first = Record::seal(
        CLUSTER,
        1,
        T0,
        Default::default(),
        skyclaw_log_format::genesis_hash(CLUSTER),
        Event::ClusterCreated {
            cluster_id: "someone-else".into(),
        }
        .encode(),
    );
    let (kind, at, _) = verify_crafted(&[first]);
    assert_eq!((kind.as_str(), at), ("clusterMismatch", Some(1)));
}
