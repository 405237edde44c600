//! Receipts in a log: a completion by a host that signs receipts must carry a
//! receipt that key signed over exactly what the completion records. A
//! receipt signed by another host's key, or with one bit flipped, or none
//! at all, is found (kind `receipt`) at its record.

use ed25519_dalek::SigningKey;
use skyclaw_audit::generate::LogBuilder;
use skyclaw_log_format::{BlobRef, Completion, Event, Hash32, JobSpec, Payload, Receipt, Record};
use skyclaw_state::{host_id_for, Command, HostKey, JobReport};

use crate::util::*;

const T0: u64 = 1_700_000_000_000;

fn payload() -> Payload {
    Payload::Shell {
        command: "true".into(),
        args: vec![],
        cwd: None,
        env: Default::default(),
        timeout_ms: None,
    }
}

/// The enqueue of `job_id`, which any host may run once.
fn enqueue(job_id: &str) -> Command {
    Command::Enqueue {
        jobs: vec![JobSpec {
            job_id: job_id.into(),
            payload: payload(),
            required_capabilities: vec![],
            priority: 0,
            max_attempts: 1,
            idempotency_key: None,
            request_hash: None,
            account: None,
        }],
    }
}

/// `host_id` claims one job.
fn claim(host_id: &str) -> Command {
    Command::Claim {
        host_id: host_id.into(),
        max_jobs: 1,
        lease_ms: 60_000,
        claim_key: None,
    }
}

/// A keyed host holding job j1 under epoch 1, and the host's id.
fn leased(key: &SigningKey) -> (LogBuilder, Vec<Record>, String) {
    let (mut log, first) = LogBuilder::new(CLUSTER, T0);
    let mut records = vec![first];
    let public_key = Hash32(key.verifying_key().to_bytes());
    let host_id = host_id_for(&public_key);
    let commands = [
        Command::RegisterHost {
            host_id: host_id.clone(),
            name: "keyed".into(),
            capabilities: vec!["shell".into()],
            max_parallel: 1,
            sandbox: None,
            key: Some(HostKey {
                public_key,
                challenge_at: T0,
                enroll_key: None,
                approved: true,
                signs_receipts: true,
            }),
        },
        enqueue("j1"),
        claim(&host_id),
    ];
    for (i, command) in commands.iter().enumerate() {
        records.extend(log.run(command, T0 + i as u64).unwrap());
    }
    (log, records, host_id)
}

/// The completion of j1 by `host_id`, its receipt signed by `signer`.
fn completion(host_id: &str, signer: &SigningKey) -> Completion {
    completion_of("j1", host_id, signer)
}

/// The completion of `job_id` (leased in epoch 1) by `host_id`, its receipt
/// signed by `signer`.
fn completion_of(job_id: &str, host_id: &str, signer: &SigningKey) -> Completion {
    let mut done = Completion {
        job_id: job_id.into(),
        host_id: host_id.into(),
        lease_epoch: 1,
        success: true,
        duration_ms: 5,
        exit_code: Some(0),
        stdout: BlobRef::of(b"ok\n"),
        stderr: BlobRef::of(b""),
        error: None,
        receipt: None,
    };
    let receipt = Receipt {
        cluster_id: CLUSTER.into(),
        job_id: job_id.into(),
        lease_epoch: 1,
        payload_hash: payload().digest(),
        exit_code: Some(0),
        started_at: T0,
        finished_at: T0 + 5,
        stdout: done.stdout,
        stderr: done.stderr,
        host_id: host_id.into(),
    };
    done.receipt = receipt.sign(signer).map(Box::new);
    done
}

fn audit_with(done: Completion, mut log: LogBuilder, mut records: Vec<Record>) -> Run {
    records.push(log.seal_unchecked(&Event::JobCompleted(Box::new(done)), T0 + 10));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "receipts.seg", &segment(CLUSTER, &records));
    audit(&["verify", "--json", path.to_str().unwrap()])
}

#[test]
fn a_receipt_signed_by_the_lease_holder_verifies() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (log, records, host_id) = leased(&key);
    let run = audit_with(completion(&host_id, &key), log, records);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("1 receipts verified"), "{}", run.stdout);
}

#[test]
fn a_receipt_signed_by_another_hosts_key_is_found() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (log, records, host_id) = leased(&key);
    let other = SigningKey::from_bytes(&[2; 32]);
    let run = audit_with(completion(&host_id, &other), log, records);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("\"receipt\""), "{}", run.stdout);
    assert!(run.stdout.contains("signature"), "{}", run.stdout);
}

#[test]
fn a_receipt_with_one_flipped_bit_or_none_at_all_is_found() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (log, records, host_id) = leased(&key);
    let mut flipped = completion(&host_id, &key);
    flipped.receipt.as_mut().unwrap().signature.0[17] ^= 0x04;
    let run = audit_with(flipped, log, records);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("\"receipt\""), "{}", run.stdout);

    let (log, records, host_id) = leased(&key);
    let mut unsigned = completion(&host_id, &key);
    unsigned.receipt = None;
    let run = audit_with(unsigned, log, records);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("signs receipts, so its completion must carry one"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_forged_receipt_is_found_after_its_hosts_key_verified_another() {
    // The auditor decodes a host's key once and keeps it: a later receipt
    // of the same host is still checked against it, signature and all.
    let key = SigningKey::from_bytes(&[1; 32]);
    let (mut log, mut records, host_id) = leased(&key);
    let honest = completion(&host_id, &key);
    let seal = honest.receipt.as_deref().cloned();
    let report = JobReport {
        job_id: "j1".into(),
        host_id: host_id.clone(),
        lease_epoch: Some(1),
        success: true,
        duration_ms: 5,
        exit_code: Some(0),
        stdout: "ok\n".into(),
        stderr: String::new(),
        error: None,
        receipt: seal,
    };
    let next = [Command::Complete(report), enqueue("j2"), claim(&host_id)];
    for (i, command) in next.iter().enumerate() {
        records.extend(log.run(command, T0 + 5 + i as u64).unwrap());
    }
    let other = SigningKey::from_bytes(&[2; 32]);
    let run = audit_with(completion_of("j2", &host_id, &other), log, records);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("\"receipt\""), "{}", run.stdout);
    assert!(run.stdout.contains("job j2"), "{}", run.stdout);
}
