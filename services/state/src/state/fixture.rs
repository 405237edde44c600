//! Helpers the unit tests of `State` share: a small state built through
//! the same commands a coordinator would run.

use std::collections::BTreeMap;

use skyclaw_log_format::event::{Hash32, JobSpec, Payload};

use super::State;
use crate::command::{Affected, Command, Decision, JobReport, Rejection};
use crate::view::JobStatus;
use crate::DEFAULT_MAX_ATTEMPTS;

pub(super) const LEASE_MS: u64 = 10_000;

pub(super) fn shell(command: &str) -> Payload {
    Payload::Shell {
        command: command.into(),
        args: vec![],
        cwd: None,
        env: BTreeMap::new(),
        timeout_ms: None,
    }
}

pub(super) fn spec(job_id: &str) -> JobSpec {
    JobSpec {
        job_id: job_id.into(),
        payload: shell("echo"),
        required_capabilities: vec![],
        priority: 0,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        idempotency_key: None,
        request_hash: None,
        account: None,
    }
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Decides `command` at `at` and applies what follows; the state changes
/// only when the command is accepted.
pub(super) fn run(state: &mut State, command: Command, at: u64) -> Result<Decision, Rejection> {
    let at = state.tick(at);
    let decision = state.decide(&command, at)?;
    for event in &decision.events {
        state.apply(event, at).expect("decided events apply");
    }
    Ok(decision)
}

pub(super) fn cluster() -> State {
    let mut state = State::new();
    run(
        &mut state,
        Command::CreateCluster {
            cluster_id: "test-cluster".into(),
        },
        1,
    )
    .unwrap();
    state
}

pub(super) fn register(state: &mut State, host_id: &str, capabilities: &[&str], max_parallel: u32) {
    run(
        state,
        Command::RegisterHost {
            host_id: host_id.into(),
            name: format!("{host_id} name"),
            capabilities: strings(capabilities),
            max_parallel,
            sandbox: None,
            key: None,
        },
        1,
    )
    .unwrap();
}

pub(super) fn enqueue(state: &mut State, spec: JobSpec, at: u64) {
    run(state, Command::Enqueue { jobs: vec![spec] }, at).unwrap();
}

pub(super) fn claim(state: &mut State, host_id: &str, max_jobs: u32, at: u64) -> Vec<String> {
    let decision = run(
        state,
        Command::Claim {
            host_id: host_id.into(),
            max_jobs,
            lease_ms: LEASE_MS,
            claim_key: None,
        },
        at,
    )
    .unwrap();
    match decision.affected {
        Affected::Jobs(ids) => ids,
        other => panic!("claim answered {other:?}"),
    }
}

pub(super) fn complete(
    job_id: &str,
    host_id: &str,
    lease_epoch: Option<u32>,
    success: bool,
) -> Command {
    Command::Complete(JobReport {
        job_id: job_id.into(),
        host_id: host_id.into(),
        lease_epoch,
        success,
        duration_ms: 5,
        exit_code: Some(if success { 0 } else { 2 }),
        stdout: "out".into(),
        stderr: "err".into(),
        error: None,
        receipt: None,
    })
}

pub(super) fn renew(host_id: &str, running: &[(&str, u32)]) -> Command {
    Command::Renew {
        host_id: host_id.into(),
        running: running.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
        lease_ms: LEASE_MS,
    }
}

pub(super) fn status(state: &State, job_id: &str) -> JobStatus {
    state.job(job_id).unwrap().status
}

pub(super) fn invalid_message(result: Result<Decision, Rejection>) -> String {
    match result {
        Err(Rejection::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A cluster with host `h` (capabilities shell, max 1) holding job `j` under
/// lease epoch 1, leased at time 100.
pub(super) fn leased() -> State {
    let mut state = cluster();
    register(&mut state, "h", &["shell"], 1);
    enqueue(&mut state, spec("j"), 10);
    assert_eq!(claim(&mut state, "h", 1, 100), ["j"]);
    state
}

pub(super) fn keyed(job_id: &str, key: &str, hash: u8) -> JobSpec {
    JobSpec {
        idempotency_key: Some(key.into()),
        request_hash: Some(Hash32([hash; 32])),
        ..spec(job_id)
    }
}
