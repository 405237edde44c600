//! A hostile client's requests: oversized or malformed fields, ids for
//! things that do not exist. Each gets a 4xx naming the field, costs no
//! raft entry, and leaves nothing behind in memory.

use serde_json::{json, Value};

use super::http::Http;
use crate::util::Cluster;

const MIB: usize = 1024 * 1024;

fn shell(command: &str) -> Value {
    json!({"payload": {"kind": "shell", "command": command}})
}

async fn register(http: &Http, host_id: &str) {
    let answer = http
        .post(
            "/v1/hosts/register",
            &json!({"hostId": host_id, "name": host_id}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// Each request, with the status it must get and a word its error names.
fn oversized_and_malformed() -> Vec<(&'static str, Value, u16, &'static str)> {
    let big = |n: usize| "x".repeat(n);
    let many = |n: usize| (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>();
    let env: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("V{i}"), Value::from("v")))
        .collect();
    vec![
        (
            "/v1/hosts/register",
            json!({"hostId": "h-big", "name": big(7 * MIB)}),
            413,
            "name",
        ),
        (
            "/v1/hosts/register",
            json!({"hostId": "a/b", "name": "slash"}),
            400,
            "hostId",
        ),
        (
            "/v1/hosts/register",
            json!({"hostId": big(129), "name": "long id"}),
            413,
            "hostId",
        ),
        (
            "/v1/hosts/register",
            json!({"name": "x", "capabilities": ["shell", ""]}),
            400,
            "capabilities",
        ),
        (
            "/v1/hosts/register",
            json!({"name": "x", "maxParallel": 0}),
            400,
            "maxParallel",
        ),
        (
            "/v1/jobs",
            shell(&big(7 * MIB + MIB / 2)),
            413,
            "payload.command",
        ),
        (
            "/v1/jobs",
            json!({"payload": {"kind": "shell", "command": "echo", "args": many(10_000)}}),
            413,
            "payload.args",
        ),
        (
            "/v1/jobs",
            json!({"payload": {"kind": "shell", "command": "echo", "env": env}}),
            413,
            "payload.env",
        ),
        (
            "/v1/jobs",
            json!({"payload": {"kind": "shell", "command": "echo", "env": {"A=B": "c"}}}),
            400,
            "payload.env",
        ),
        (
            "/v1/jobs",
            json!({"payload": {"kind": "shell", "command": "echo", "cwd": big(5000)}}),
            413,
            "payload.cwd",
        ),
        (
            "/v1/jobs",
            json!({"payload": {"kind": "shell", "command": "echo"}, "maxAttempts": 0}),
            400,
            "maxAttempts",
        ),
        (
            "/v1/jobs/batch",
            json!({"jobs": [shell("echo"), shell(" ")]}),
            400,
            "jobs[1].payload.command",
        ),
        (
            "/v1/jobs/batch",
            json!({"jobs": (0..10_001).map(|_| shell("true")).collect::<Vec<_>>()}),
            413,
            "jobs",
        ),
    ]
}

#[tokio::test]
async fn oversized_fields_are_refused_by_name_and_change_nothing() {
    let cluster = Cluster::start(60_000);
    let http = Http::ready(&cluster).await;
    register(&http, "h1").await;
    let index = http.raft_index().await;
    let jobs_before = http.get("/v1/jobs?limit=1000").await.body["jobs"].clone();

    for (path, body, status, field) in oversized_and_malformed() {
        let answer = http.post(path, &body).await;
        assert_eq!(answer.status, status, "{path} {field}: {}", answer.error());
        assert!(
            answer.error().contains(field),
            "{path}: the error should name {field}: {}",
            answer.error()
        );
    }

    let job = json!({"hostId": "h1", "success": true, "durationMs": 1, "exitCode": 0,
        "stdout": "", "stderr": "", "error": "e".repeat(5000)});
    let answer = http.post("/v1/jobs/some-job/complete", &job).await;
    assert_eq!(
        (answer.status, answer.error().contains("error")),
        (413, true),
        "{answer:?}"
    );

    assert_eq!(
        http.raft_index().await,
        index,
        "a refused request reached raft"
    );
    assert_eq!(
        http.get("/v1/jobs?limit=1000").await.body["jobs"],
        jobs_before
    );
    let hosts = http.get("/v1/hosts").await.body["hosts"].clone();
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
}

#[tokio::test]
async fn requests_about_nothing_that_exists_cost_no_raft_entry() {
    let cluster = Cluster::start(60_000);
    let http = Http::ready(&cluster).await;
    register(&http, "h1").await;
    let index = http.raft_index().await;

    for i in 0..20 {
        let invalid = json!({"hostId": format!("h{i}"), "name": "  "});
        assert_eq!(http.post("/v1/hosts/register", &invalid).await.status, 400);
    }
    let completion = json!({"hostId": "h1", "success": true, "durationMs": 1, "exitCode": 0,
        "stdout": "", "stderr": ""});
    assert_eq!(
        http.post("/v1/jobs/nope/complete", &completion)
            .await
            .status,
        404
    );
    assert_eq!(
        http.post("/v1/jobs/nope/cancel", &json!({})).await.status,
        404
    );
    assert_eq!(
        http.post("/v1/hosts/ghost/heartbeat", &json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        http.post("/v1/hosts/ghost/claim", &json!({})).await.status,
        404
    );

    // A completion under a lease the host does not hold: refused by state.
    let job = http.post("/v1/jobs", &shell("echo")).await.body["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let index_after_enqueue = http.raft_index().await;
    assert!(index_after_enqueue > index);
    let stale = http
        .post(&format!("/v1/jobs/{job}/complete"), &completion)
        .await;
    assert_eq!(stale.status, 409, "{stale:?}");

    assert_eq!(
        http.raft_index().await,
        index_after_enqueue,
        "a refused request reached raft"
    );
}

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test]
async fn refused_requests_leave_nothing_in_memory() {
    let cluster = Cluster::start(60_000);
    let http = Http::ready(&cluster).await;
    let pid = cluster.coordinator.pid();
    // Each round: completions for an unknown job from hosts nobody
    // registered, with 1 MiB of id or 200 KiB of output each. The old coordinator kept
    // every such host id (~70 MB a round).
    let round = |round: usize| {
        let http = &http;
        async move {
            for i in 0..64 {
                let long_id = format!("{round}-{i}-{}", "h".repeat(MIB));
                let body = json!({"hostId": long_id, "success": true, "durationMs": 1,
                    "exitCode": 0, "stdout": "", "stderr": ""});
                let answer = http.post("/v1/jobs/unknown/complete", &body).await;
                assert_eq!(answer.status, 413, "{answer:?}");
                let body = json!({"hostId": format!("host-{round}-{i}"), "success": true,
                    "durationMs": 1, "exitCode": 0, "stdout": "o".repeat(200 * 1024), "stderr": ""});
                let answer = http.post("/v1/jobs/unknown/complete", &body).await;
                assert_eq!(answer.status, 404, "{answer:?}");
                let ghost = format!("/v1/hosts/ghost-{round}-{i}/heartbeat");
                assert_eq!(http.post(&ghost, &json!({})).await.status, 404);
            }
        }
    };
    round(0).await;
    let settled = rss_bytes(pid);
    for r in 1..4 {
        round(r).await;
    }
    let grown = rss_bytes(pid).saturating_sub(settled);
    assert!(
        grown < 40 * MIB as u64,
        "three more rounds of refused requests grew the coordinator by {} MiB",
        grown / MIB as u64
    );
    let hosts = http.get("/v1/hosts").await.body["hosts"].clone();
    assert_eq!(hosts.as_array().unwrap().len(), 0, "{hosts}");
}
