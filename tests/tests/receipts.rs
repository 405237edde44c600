//! Proof of what ran where, end to end: a real host with its own key runs
//! a real job on a real coordinator, and `skyclaw receipt verify` proves
//! the receipt, its inclusion under a signed checkpoint and consistency
//! with the checkpoint it saw before; an independent checker in Python
//! (`tests/receipt_check.py`, sharing no code with ours) verifies the same
//! proof and signatures. Then the checker is shown a fork, a rewritten
//! log, keys it does not trust, and an altered receipt: each is disproven
//! with its reason (exit 1); no coordinator at all is exit 2.
//!
//! - `a_host_signed_receipt_is_proven_and_tampering_is_disproven`

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skyclaw_api::JobStatus;
use skyclaw_log_format::checkpoint;
use skyclaw_log_format::LogKey;
use util::{run_skyclaw, Cluster};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs the independent checker on a receipt file with these keys.
fn python_check(receipt: &Path, vkeys: &[String]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("receipt_check.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(receipt)
        .args(vkeys)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_host_signed_receipt_is_proven_and_tampering_is_disproven() {
    let cluster = Cluster::start(10_000);
    let _host = cluster.start_host("runner", &[]);
    let job = cluster.enqueue(&["sh", "-c", "echo proven"]);
    assert_eq!(cluster.wait_final(&job, LIMIT).status, JobStatus::Completed);

    let state = cluster.path().join("receipts.json");
    let state = state.to_str().unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["receipt", "verify", job.as_str(), "--state", state];
        args.extend_from_slice(extra);
        cluster.skyclaw(&args)
    };
    let proven = verify(&[]);
    assert_eq!(proven.code, Some(0), "{proven:?}");
    assert!(proven.stdout.starts_with("proven: job "), "{proven:?}");
    // Again, now against the pinned keys and the checkpoint seen.
    let again = verify(&[]);
    assert_eq!(again.code, Some(0), "{again:?}");

    // The same proof, checked by code that shares nothing with ours.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = cluster.client();
    let receipt = runtime.block_on(client.receipt(&job)).unwrap();
    let vkeys: Vec<String> = runtime
        .block_on(client.log_keys())
        .unwrap()
        .keys
        .into_iter()
        .map(|key| key.vkey)
        .collect();
    let file = cluster.path().join("receipt.json");
    std::fs::write(&file, serde_json::to_vec(&receipt).unwrap()).unwrap();
    let (code, said) = python_check(&file, &vkeys);
    assert_eq!(code, 0, "{said}");
    assert!(said.starts_with("ok: job "), "{said}");
    let mut altered = serde_json::to_value(&receipt).unwrap();
    altered["receipt"]["exitCode"] = 1.into();
    std::fs::write(&file, serde_json::to_vec(&altered).unwrap()).unwrap();
    let (code, said) = python_check(&file, &vkeys);
    assert_eq!(code, 1, "{said}");
    assert!(said.starts_with("disproven: "), "{said}");

    // A checkpoint of the size seen before but another root: a fork.
    let seen: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    let mut forked = seen.clone();
    forked["root"] = "11".repeat(32).into();
    std::fs::write(state, serde_json::to_vec(&forked).unwrap()).unwrap();
    let fork = verify(&[]);
    assert_eq!(fork.code, Some(1), "{fork:?}");
    assert!(fork.stdout.contains("a fork"), "{fork:?}");
    // A larger tree seen before that this log does not extend into.
    let mut rewritten = seen.clone();
    rewritten["size"] = (seen["size"].as_u64().unwrap() + 1).into();
    std::fs::write(state, serde_json::to_vec(&rewritten).unwrap()).unwrap();
    let ran = cluster.skyclaw(&["enqueue-shell", "--wait", "sh", "-c", "true"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let rewrite = verify(&[]);
    assert_eq!(rewrite.code, Some(1), "{rewrite:?}");
    // (Or a fork, should a checkpoint have landed on exactly that size.)
    assert!(
        rewrite.stdout.contains("rewritten") || rewrite.stdout.contains("a fork"),
        "{rewrite:?}"
    );
    std::fs::remove_file(state).unwrap();

    // Keys nobody asked it to trust, or a majority it cannot reach: one
    // coordinator's signature is not a majority of three keys.
    let cluster_id = &receipt.receipt.cluster_id;
    let stranger = |seed: u8| {
        let key = LogKey::new(&[seed; 32], cluster_id).public_key();
        checkpoint::vkey(cluster_id, &key).unwrap()
    };
    let trust = cluster.path().join("trust.txt");
    let lines = [vkeys[0].clone(), stranger(1), stranger(2)];
    std::fs::write(&trust, lines.join("\n")).unwrap();
    let outvoted = verify(&["--trust", trust.to_str().unwrap()]);
    assert_eq!(outvoted.code, Some(1), "{outvoted:?}");
    assert!(
        outvoted
            .stdout
            .contains("signed by 1 of the 3 trusted keys"),
        "{outvoted:?}"
    );
    std::fs::write(&trust, stranger(3)).unwrap();
    let untrusted = verify(&["--trust", trust.to_str().unwrap()]);
    assert_eq!(untrusted.code, Some(1), "{untrusted:?}");
    assert!(
        untrusted.stdout.contains("signed by 0 of the 1"),
        "{untrusted:?}"
    );

    // No coordinator at all.
    let unreachable = run_skyclaw(
        cluster.path(),
        &["receipt", "verify", &job, "--state", state],
        &[
            ("SKYCLAW_COORDINATOR_URL", "http://127.0.0.1:9"),
            ("SKYCLAW_TOKEN", util::TOKEN),
        ],
        LIMIT,
    );
    assert_eq!(unreachable.code, Some(2), "{unreachable:?}");
}
