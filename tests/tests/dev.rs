//! `skyclaw dev`, the one-command local cluster, used as the README says.
//!
//! - `dev_runs_jobs_and_keeps_its_data_across_restarts`

mod util;

use std::time::Duration;

use skyclaw_api::JobStatus;
use util::{run_skyclaw, Process};

/// Starts `skyclaw dev` in `dir` on a free port; returns it with the URL
/// and token it printed.
fn start_dev(dir: &std::path::Path) -> (Process, String, String) {
    let dev = Process::spawn(
        "dev",
        dir,
        &["dev"],
        &[
            ("SKYCLAW_COORDINATOR_PORT", "0"),
            ("SKYCLAW_HEARTBEAT_MS", "200"),
        ],
    );
    let url = dev.listening_url();
    let export = dev.wait_for_line(Duration::from_secs(10), |line| {
        line.trim_start().starts_with("export SKYCLAW_TOKEN=")
    });
    let token = export
        .trim()
        .trim_start_matches("export SKYCLAW_TOKEN=")
        .to_string();
    let printed_url = dev.wait_for_line(Duration::from_secs(10), |line| {
        line.trim_start()
            .starts_with("export SKYCLAW_COORDINATOR_URL=")
    });
    assert!(printed_url.ends_with(&url), "{printed_url} vs {url}");
    (dev, url, token)
}

#[test]
fn dev_runs_jobs_and_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, url, token) = start_dev(dir.path());
    assert!(token.len() >= 32, "a generated token: {token:?}");
    let env = [
        ("SKYCLAW_COORDINATOR_URL", url.as_str()),
        ("SKYCLAW_TOKEN", token.as_str()),
    ];
    let limit = Duration::from_secs(60);

    let hello = run_skyclaw(
        dir.path(),
        &["enqueue-shell", "--wait", "sh", "-c", "echo hello"],
        &env,
        limit,
    );
    assert_eq!(hello.code, Some(0), "{hello:?}");
    assert_eq!(hello.stdout, "hello\n");
    let hello_id = hello
        .stderr
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("job ")
        .to_string();

    let three = run_skyclaw(
        dir.path(),
        &["enqueue-shell", "--wait", "sh", "-c", "exit 3"],
        &env,
        limit,
    );
    assert_eq!(three.code, Some(3), "{three:?}");

    dev.signal(libc::SIGINT);
    let status = dev.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", dev.log_text());
    drop(dev);

    let (_dev, url, token_again) = start_dev(dir.path());
    assert_eq!(token_again, token, "the dev token is kept");
    let env = [
        ("SKYCLAW_COORDINATOR_URL", url.as_str()),
        ("SKYCLAW_TOKEN", token.as_str()),
    ];
    let shown = run_skyclaw(
        dir.path(),
        &["jobs", "show", &hello_id, "--json"],
        &env,
        limit,
    );
    assert_eq!(shown.code, Some(0), "{shown:?}");
    let job: skyclaw_api::Job = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result.unwrap().stdout, "hello\n");
}
