//! Retirement: a job that ended leaves the live state once its retention
//! passed, and everything a caller could ask of it still holds: it is read
//! by id from disk, counted in the summary, refused a cancel, and a page
//! may go on after it; it is gone from lists and from memory, and its
//! idempotency key enqueues a new job. A restart keeps all of that.

use serde_json::Value;
use skyclaw_coordinator::retirement;
use warp::http::StatusCode;

use crate::util::{
    config, error_message, shell_job, start_node, stop_node, success, wait_until, TestNode,
};

const RETENTION_MS: u64 = 1_000;

/// Enqueues `body` with idempotency key `key`; the job's id.
async fn enqueue_with_key(t: &TestNode, key: &str, body: &Value) -> String {
    let (status, answer) = t.enqueue_with_key(key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["job"]["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_retired_job_leaves_memory_and_lists_but_is_still_read_and_counted() {
    let t = TestNode::start_with(|config| config.retention_ms = RETENTION_MS).await;
    let retiring = tokio::spawn(retirement::run(t.node.clone()));
    t.register("h", &["shell"], 1).await;
    let body = shell_job("once");
    let done = enqueue_with_key(&t, "key-1", &body).await;
    assert_eq!(t.claim("h").await["id"], done.as_str());
    let (status, answer) = t.complete(&done, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let live = t.enqueue_echo("still queued").await;

    // Within its retention the key answers the same job.
    assert_eq!(enqueue_with_key(&t, "key-1", &body).await, done);
    wait_until("the ended job is retired", || {
        t.node.read(|m| m.state.job(&done).is_none())
    })
    .await;
    assert!(
        t.node.read(|m| m.state.job(&live).is_some()),
        "a live job stays"
    );

    // Read by id from disk, with its output.
    let job = t.job(&done).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["result"]["stdout"], "hello\n", "{job}");
    // Gone from lists, but a page may go on after it.
    let (status, list) = t.get("/v1/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&list), std::slice::from_ref(&live));
    let (status, page) = t.get(&format!("/v1/jobs?after={done}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), std::slice::from_ref(&live));
    let (status, page) = t.get(&format!("/v1/jobs?after={done}&order=newest")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(ids(&page).is_empty(), "{page}");
    // Counted still.
    let (_, summary) = t.get("/v1/summary").await;
    assert_eq!(summary["jobs"]["completed"], 1, "{summary}");
    assert_eq!(summary["jobs"]["queued"], 1, "{summary}");

    // What ended stays ended, and writes nothing.
    let head = t.head_seq().await;
    let (status, refused) = t
        .post(&format!("/v1/jobs/{done}/cancel"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        error_message(&refused).contains("already completed"),
        "{refused}"
    );
    let (status, refused) = t.complete(&done, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(t.head_seq().await, head);

    // Past its window the key enqueues a new job.
    let again = enqueue_with_key(&t, "key-1", &body).await;
    assert_ne!(again, done);

    retiring.abort();
    let _ = retiring.await;
    let before = t
        .node
        .read(|m| (m.state.digest(), m.state.status_counts(), m.head));
    let crate::util::TestNode { node, routes, dir } = t;
    drop(routes);
    stop_node(node).await;
    let node = start_node(config_with_retention(&dir)).await;
    assert_eq!(
        node.read(|m| (m.state.digest(), m.state.status_counts(), m.head)),
        before,
        "a restart reads back the live views and what retirement took"
    );
    assert!(node.read(|m| m.state.job(&done).is_none()));
    assert_eq!(node.job_view(&done).unwrap().id, done);
    stop_node(node).await;
}

fn config_with_retention(dir: &tempfile::TempDir) -> skyclaw_coordinator::Config {
    skyclaw_coordinator::Config {
        retention_ms: RETENTION_MS,
        ..config(dir)
    }
}

#[tokio::test]
async fn a_retired_job_is_still_its_own_accounts_alone() {
    let t = TestNode::start_with(|config| config.retention_ms = RETENTION_MS).await;
    let retiring = tokio::spawn(retirement::run(t.node.clone()));
    let mut secrets = Vec::new();
    for account in ["acct-x", "acct-y"] {
        let body = serde_json::json!({"role": "enqueuer", "account": account});
        let (status, answer) = t.post(skyclaw_api::routes::ISSUE_KEY.path, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        secrets.push(answer["secret"].as_str().unwrap().to_string());
    }
    let (x, y) = (&secrets[0], &secrets[1]);
    let (status, answer) = t.call_as(x, "POST", "/v1/jobs", Some(shell_job("x"))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["job"]["id"].as_str().unwrap().to_string();
    let (status, _) = t
        .call_as(x, "POST", &format!("/v1/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_until("the cancelled job is retired", || {
        t.node.read(|m| m.state.job(&id).is_none())
    })
    .await;
    let path = format!("/v1/jobs/{id}");
    let (status, job) = t.call_as(x, "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["job"]["status"], "cancelled");
    // Cancelling it again answers as the first time did.
    let (status, again) = t.call_as(x, "POST", &format!("{path}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["job"]["status"], "cancelled");
    // Another account finds nothing there, retired or not.
    for (method, path) in [("GET", path.clone()), ("POST", format!("{path}/cancel"))] {
        let (status, answer) = t.call_as(y, method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    retiring.abort();
    let _ = retiring.await;
    t.stop().await;
}
