//! `skyclaw-bench all --quick` against the real binary: checks the tool
//! works end to end (the figures are for people, not for assertions).

use std::process::Command;

#[test]
fn all_scenarios_run_quick() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_skyclaw-bench"))
        .args(["all", "--quick", "--json"])
        .arg(&report)
        .output()
        .expect("skyclaw-bench runs");
    assert!(
        output.status.success(),
        "skyclaw-bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The tables, for `cargo test -- --nocapture`.
    println!("{}", String::from_utf8_lossy(&output.stdout));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    let scenarios = [
        "enqueue",
        "dispatch",
        "restart",
        "replication",
        "failover",
        "e2e",
        "audit",
        "memory",
        "history",
        "snapshot",
    ];
    for scenario in scenarios {
        assert!(
            report.get(scenario).is_some(),
            "{scenario} missing from {report}"
        );
    }
    let pickup = &report["dispatch"]["pickup"]["operations"];
    assert_eq!(pickup.as_u64(), Some(10), "every pickup sample completed");
}
