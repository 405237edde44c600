//! `--log-format json` and `SKYCLAW_LOG_FORMAT` on real processes: every
//! line on stderr is a JSON object, and a coordinator's lines about a
//! request carry the request's id, the one its answer names.
//!
//! - `a_coordinator_logs_json_lines_that_carry_request_ids`
//! - `a_host_logs_json_lines`

mod util;

use std::time::Duration;

use serde_json::Value;
use skyclaw_api::routes::{REQUEST_ID_HEADER, TOKEN_HEADER};
use util::{wait_until, Cluster, Process, TOKEN};

/// Every line of `log` as JSON; panics on one that is not an object.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(value.is_object(), "not an object: {line}");
            assert!(value["level"].is_string(), "no level: {line}");
            assert!(value["timestamp"].is_string(), "no timestamp: {line}");
            value
        })
        .collect()
}

/// GET `path` with `request_id`; the status and the answer's id.
fn get(url: &str, path: &str, request_id: &str) -> (u16, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{url}{path}"))
            .header(TOKEN_HEADER, TOKEN)
            .header(REQUEST_ID_HEADER, request_id)
            .send()
            .await
            .expect("the coordinator answers");
        let id = response.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_string();
        (response.status().as_u16(), id)
    })
}

#[test]
fn a_coordinator_logs_json_lines_that_carry_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let coordinator = Process::spawn(
        "coordinator",
        dir.path(),
        &["coordinator", "--log-format", "json"],
        &[
            ("SKYCLAW_COORDINATOR_HOST", "127.0.0.1"),
            ("SKYCLAW_COORDINATOR_PORT", "0"),
            ("SKYCLAW_DB_PATH", db.to_str().unwrap()),
            ("SKYCLAW_TOKEN", TOKEN),
        ],
    );
    let url = coordinator.listening_url();
    // A refused request is logged (at warn) in its span.
    let (status, id) = get(&url, "/v1/jobs/no-such-job", "logs-test-42");
    assert_eq!((status, id.as_str()), (404, "logs-test-42"));

    let line = wait_until(
        "a log line carrying the request's id",
        Duration::from_secs(20),
        || {
            json_lines(&coordinator.log_text())
                .into_iter()
                .find(|line| line["span"]["request_id"] == "logs-test-42")
        },
    );
    assert_eq!(line["span"]["name"], "request", "{line}");
    assert_eq!(line["span"]["path"], "/v1/jobs/no-such-job", "{line}");
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["fields"]["status"], 404, "{line}");
    // Start-up logged too, all as JSON.
    assert!(json_lines(&coordinator.log_text()).len() > 1);
}

#[test]
fn a_host_logs_json_lines() {
    let cluster = Cluster::start(60_000);
    let host = cluster.start_host("host-a", &[("SKYCLAW_LOG_FORMAT", "json")]);
    let registered = wait_until(
        "the host to log its registration",
        Duration::from_secs(20),
        || {
            json_lines(&host.log_text())
                .into_iter()
                .find(|line| line["fields"]["message"] == "host registered")
        },
    );
    assert_eq!(registered["level"], "INFO", "{registered}");
    assert_eq!(registered["fields"]["name"], "host-a", "{registered}");
    // The coordinator beside it keeps the default: text.
    let text = cluster.coordinator.log_text();
    assert!(
        text.lines().any(|line| !line.trim_start().starts_with('{')),
        "{text}"
    );
}
