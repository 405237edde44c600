//! Hosts: registration, the host list, and heartbeats that renew leases,
//! deliver cancel requests and report leases a host lost.

use std::time::Duration;

use serde_json::json;
use warp::http::StatusCode;

use crate::util::{TestNode, LEASE_MS};

#[tokio::test]
async fn register_returns_the_host_record() {
    let t = TestNode::start().await;
    let host = t.register("h1", &["shell", "gpu"], 4).await;
    assert_eq!(host["id"], "h1");
    assert_eq!(host["name"], "h1 name");
    assert_eq!(host["capabilities"], json!(["shell", "gpu"]));
    assert_eq!(host["maxParallel"], 4);
    assert_eq!(host["activeLeases"], 0);
    assert!(host["registeredAt"].as_u64().unwrap() > 0);
    assert!(host["lastSeenAt"].as_u64().unwrap() >= host["registeredAt"].as_u64().unwrap());

    // The MVP shape: no id, no capabilities, no maxParallel.
    let (status, body) = t
        .post("/v1/hosts/register", json!({ "name": "plain" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plain = &body["host"];
    assert!(!plain["id"].as_str().unwrap().is_empty());
    assert_eq!(plain["capabilities"], json!(["shell", "automaton"]));
    assert_eq!(plain["maxParallel"], 1);

    let (status, body) = t.get("/v1/hosts").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"h1") && ids.contains(&plain["id"].as_str().unwrap()));
    t.stop().await;
}

#[tokio::test]
async fn re_registering_unchanged_writes_nothing() {
    let t = TestNode::start().await;
    let first = t.register("h", &["shell"], 1).await;
    let head = t.head_seq().await;
    let again = t.register("h", &["shell"], 1).await;
    assert_eq!(t.head_seq().await, head);
    assert_eq!(again["registeredAt"], first["registeredAt"]);

    let changed = t.register("h", &["shell", "gpu"], 2).await;
    assert_eq!(t.head_seq().await, head + 1);
    assert_eq!(changed["registeredAt"], first["registeredAt"]);
    assert_eq!(changed["maxParallel"], 2);
    t.stop().await;
}

#[tokio::test]
async fn a_heartbeat_renews_leases_past_half_their_life() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    let claimed = t.claim("h").await;
    let expires = claimed["leaseExpiresAt"].as_u64().unwrap();
    let running = json!({ "running": [{ "jobId": job_id, "leaseEpoch": 1 }] });

    // Early in the lease a heartbeat writes nothing.
    let head = t.head_seq().await;
    let answer = t.heartbeat("h", running.clone()).await;
    assert_eq!(answer["host"]["activeLeases"], 1);
    assert_eq!(answer["cancel"], json!([]));
    assert_eq!(answer["lost"], json!([]));
    assert_eq!(t.head_seq().await, head);

    // The lease has to age: time passing is the point here, not readiness.
    tokio::time::sleep(Duration::from_millis(LEASE_MS / 2 + 50)).await;
    t.heartbeat("h", running).await;
    assert_eq!(t.head_seq().await, head + 1);
    let renewed = t.job(&job_id).await;
    assert!(
        renewed["leaseExpiresAt"].as_u64().unwrap() > expires,
        "{renewed} was not renewed past {expires}"
    );
    assert_eq!(renewed["leaseEpoch"], 1);
    t.stop().await;
}

#[tokio::test]
async fn a_heartbeat_delivers_cancel_requests() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    t.claim("h").await;
    let (status, cancelled) = t
        .call("POST", &format!("/v1/jobs/{job_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["job"]["status"], "leased");
    assert_eq!(cancelled["job"]["cancelRequested"], true);

    let answer = t.heartbeat("h", json!({})).await;
    assert_eq!(answer["cancel"], json!([job_id]));
    let answer = t
        .heartbeat(
            "h",
            json!({ "running": [{ "jobId": job_id, "leaseEpoch": 1 }] }),
        )
        .await;
    assert_eq!(answer["cancel"], json!([job_id]));
    t.stop().await;
}

#[tokio::test]
async fn a_heartbeat_reports_leases_the_host_lost() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 2).await;
    t.register("other", &["shell"], 1).await;
    let mine = t.enqueue_echo("a").await;
    let theirs = t.enqueue_echo("b").await;
    assert_eq!(t.claim("h").await["id"], mine);
    assert_eq!(t.claim("other").await["id"], theirs);

    let answer = t
        .heartbeat(
            "h",
            json!({
                "activeLeases": 3,
                "running": [
                    { "jobId": mine, "leaseEpoch": 1 },
                    { "jobId": mine, "leaseEpoch": 1 },
                    { "jobId": theirs, "leaseEpoch": 1 },
                    { "jobId": "no-such-job", "leaseEpoch": 1 },
                ],
            }),
        )
        .await;
    assert_eq!(answer["lost"], json!([theirs, "no-such-job"]));
    assert_eq!(answer["host"]["activeLeases"], 1);

    let answer = t
        .heartbeat(
            "h",
            json!({ "running": [{ "jobId": mine, "leaseEpoch": 2 }] }),
        )
        .await;
    assert_eq!(answer["lost"], json!([mine]));
    t.stop().await;
}
