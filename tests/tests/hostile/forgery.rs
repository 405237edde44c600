//! A host owner holding the admin token (or no credential at all) tries to
//! speak for a coordinator of a cluster in the full trust model: a forged
//! vote with a term far ahead, a forged AppendEntries, a heartbeat, a join
//! of an unreachable voter. Raft's routes take only the peer secret, so each
//! gets 401 or 403, and the term, the membership and the log stay as they
//! were while the cluster keeps writing. And a host with its own key tries
//! to complete, read and claim another host's job.

use std::time::Duration;

use serde_json::json;
use skyclaw_api::routes::{self, Route, PEER_HEADER, TOKEN_HEADER};
use skyclaw_api::RegisterHostRequest;
use skyclaw_testkit::{Cluster, HostKey, Options, Routing, TOKEN};

use crate::harness;

const PEER_SECRET: &str = "forgery-test-peer-secret";
const WAIT: Duration = Duration::from_secs(20);

/// Sends `body` to `route` at `url` with these headers; the status.
async fn send(url: &str, route: Route, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{url}{}", route.path))
        .header("content-type", "application/msgpack")
        .timeout(Duration::from_secs(5))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("an answer").status().as_u16()
}

#[tokio::test]
async fn raft_messages_and_joins_without_the_peer_secret_change_nothing() {
    let mut cluster = Cluster::start(Options {
        routing: Routing::Direct,
        peer_secret: Some(PEER_SECRET.into()),
        ..Options::default()
    })
    .await;
    let leader = cluster.leader(WAIT).await;
    let follower = (leader + 1) % 3;
    harness::enqueue_until_acknowledged(&cluster, &[leader], "before", WAIT).await;
    let before = cluster.status(leader).await.expect("status");
    let head = cluster.head(leader).await.expect("head").seq;

    // A vote request with a term far ahead, an AppendEntries carrying
    // anything: neither is even read.
    let vote = br#"{"vote":{"leader_id":{"term":52,"node_id":1}},"last_log_id":null}"#.to_vec();
    let target = [("x-skyclaw-raft-target", "1")];
    for url in [
        cluster.nodes[leader].url.clone(),
        cluster.nodes[follower].url.clone(),
    ] {
        for route in routes::RAFT {
            let as_admin = [(TOKEN_HEADER, TOKEN), target[0]];
            assert_eq!(
                send(&url, route, &as_admin, vote.clone()).await,
                403,
                "{route:?}"
            );
            assert_eq!(
                send(&url, route, &target, vote.clone()).await,
                401,
                "{route:?}"
            );
            let wrong = [(PEER_HEADER, "guessed"), target[0]];
            assert_eq!(
                send(&url, route, &wrong, vote.clone()).await,
                401,
                "{route:?}"
            );
        }
        let join = serde_json::to_vec(&serde_json::json!({
            "name": "intruder", "url": "http://127.0.0.1:9", "raftId": 7,
        }))
        .unwrap();
        let as_admin = [(TOKEN_HEADER, TOKEN)];
        assert_eq!(send(&url, routes::JOIN, &as_admin, join.clone()).await, 403);
        assert_eq!(send(&url, routes::JOIN, &[], join).await, 401);
    }

    // The same leader in the same term, the same members, nothing written
    // by the forgeries, and writes still go through everywhere.
    let after = cluster.status(leader).await.expect("status");
    assert_eq!(after.term, before.term);
    assert_eq!(after.leader, before.leader);
    assert_eq!(after.members.len(), before.members.len());
    assert_eq!(cluster.head(leader).await.expect("head").seq, head);
    for i in 0..3 {
        harness::enqueue_until_acknowledged(&cluster, &[i], &format!("after-{i}"), WAIT).await;
    }
    assert_eq!(
        cluster.status(leader).await.expect("status").term,
        before.term
    );
    for i in 0..3 {
        cluster.stop(i).await;
    }
}

/// A JSON request to `path` at `url` with `credential`; status and body.
async fn call(
    url: &str,
    method: reqwest::Method,
    path: &str,
    credential: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .timeout(Duration::from_secs(10))
        .json(&body);
    if let Some(credential) = credential {
        request = request.header(TOKEN_HEADER, credential);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Registers the host of `seed` by signing a challenge, with the admin
/// token (so it is approved at once); its id and session.
async fn keyed_host(url: &str, seed: u8) -> (String, String) {
    use reqwest::Method;
    let (status, challenge) =
        call(url, Method::POST, routes::CHALLENGE.path, None, json!({})).await;
    assert_eq!(status, 200, "{challenge}");
    let key = HostKey::from_seed(seed);
    let request = key.sign(
        &serde_json::from_value(challenge).unwrap(),
        RegisterHostRequest {
            name: format!("host {seed}"),
            ..RegisterHostRequest::default()
        },
    );
    let body = serde_json::to_value(&request).unwrap();
    let (status, answer) = call(url, Method::POST, routes::REGISTER.path, Some(TOKEN), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["host"]["access"], "active");
    (key.id, answer["session"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_host_cannot_complete_or_read_another_hosts_job() {
    use reqwest::Method;
    let cluster = Cluster::start(Options {
        nodes: 1,
        routing: Routing::Direct,
        peer_secret: Some(PEER_SECRET.into()),
        ..Options::default()
    })
    .await;
    let url = cluster.nodes[0].url.clone();
    let (a, session_a) = keyed_host(&url, 1).await;
    let (b, session_b) = keyed_host(&url, 2).await;
    let (status, job) = call(
        &url,
        Method::POST,
        routes::ENQUEUE.path,
        Some(TOKEN),
        json!({"payload": {"kind": "shell", "command": "echo", "args": ["secret"]}}),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    let job_id = job["job"]["id"].as_str().unwrap().to_string();
    let (status, claimed) = call(
        &url,
        Method::POST,
        &routes::CLAIM.path_for(&a),
        Some(&session_a),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["job"]["id"], job_id.as_str());
    let head = cluster.head(0).await.expect("head").seq;

    let complete = routes::COMPLETE.path_for(&job_id);
    let report = |host: &str| {
        json!({
            "hostId": host, "leaseEpoch": 1, "success": true, "durationMs": 1,
            "stdout": "forged", "stderr": "",
        })
    };
    // B, as A: refused for who it is. B, as itself: B holds no lease.
    let (status, body) = call(&url, Method::POST, &complete, Some(&session_b), report(&a)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&url, Method::POST, &complete, Some(&session_b), report(&b)).await;
    assert_eq!(status, 409, "{body}");
    // Nor does B see the payload, or claim as A.
    let job_path = routes::JOB.path_for(&job_id);
    let (status, _) = call(&url, Method::GET, &job_path, Some(&session_b), json!(null)).await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &url,
        Method::POST,
        &routes::CLAIM.path_for(&a),
        Some(&session_b),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        cluster.head(0).await.expect("head").seq,
        head,
        "a refusal wrote"
    );

    // A, the holder, reports, with the receipt its key signs.
    let (status, challenge) =
        call(&url, Method::POST, routes::CHALLENGE.path, None, json!({})).await;
    assert_eq!(status, 200, "{challenge}");
    let cluster_id = challenge["clusterId"].as_str().unwrap();
    let leased: skyclaw_api::Job = serde_json::from_value(claimed["job"].clone()).unwrap();
    let signed = HostKey::from_seed(1).complete(cluster_id, &leased, 1, "done");
    let (status, body) = call(
        &url,
        Method::POST,
        &complete,
        Some(&session_a),
        serde_json::to_value(signed).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], "completed");
}
