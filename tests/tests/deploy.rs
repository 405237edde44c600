//! The systemd units in `deploy/` are valid units for this `skyclaw`
//! binary, as `systemd-analyze verify` judges them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Writes `unit` with its `ExecStart` pointed at the built binary and its
/// settings file made optional, and verifies it.
fn verify(unit: &str) {
    let text = std::fs::read_to_string(deploy_dir().join(unit)).expect("the unit is in deploy/");
    let binary = skyclaw_testkit::binary::locate("skyclaw", None);
    let binary = binary.to_str().expect("the binary's path is UTF-8");
    assert!(
        text.contains("ExecStart=/usr/local/bin/skyclaw "),
        "{unit} starts the installed binary"
    );
    let local = text
        .replace("/usr/local/bin/skyclaw", binary)
        .replace("EnvironmentFile=/", "EnvironmentFile=-/");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(&path, local).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{unit}: {said}");
    assert!(said.trim().is_empty(), "{unit}: {said}");
}

#[test]
fn the_coordinator_unit_verifies() {
    verify("skyclaw-coordinator.service");
}

#[test]
fn the_host_unit_verifies() {
    verify("skyclaw-host.service");
}
