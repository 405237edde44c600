//! Membership changes asked of a one-member cluster: a joiner must prove
//! who it is and catch up before it votes, a join never evicts the live
//! member of its name, and the last voter is never removed.

use std::net::SocketAddr;

use serde_json::json;
use skyclaw_api::routes::TOKEN_HEADER;
use warp::http::StatusCode;
use warp::Filter;

use crate::util::{bounded, decode, error_message, TestNode, TOKEN};

/// A server that answers `GET /v1/cluster/hello` as `name` with `raft_id`,
/// and 503 to everything else, raft's messages included: a node that says
/// the right things but never takes a log entry.
async fn impostor(name: &str, raft_id: u64) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let url = format!("http://{address}");
    let hello = json!({
        "name": name,
        "url": url,
        "raftId": raft_id,
        "initialized": false,
    });
    let hello = warp::path!("v1" / "cluster" / "hello")
        .map(move || warp::reply::with_status(warp::reply::json(&hello), StatusCode::OK));
    let refuse = warp::any().map(|| {
        warp::reply::with_status(
            warp::reply::json(&json!({ "error": "unavailable" })),
            StatusCode::SERVICE_UNAVAILABLE,
        )
    });
    let routes = hello.or(refuse).unify();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    url
}

/// The raft ids of the members, and which vote.
fn members(t: &TestNode) -> Vec<(u64, String, bool)> {
    let mut members: Vec<(u64, String, bool)> = t
        .node
        .members()
        .into_iter()
        .map(|(id, member, voter)| (id, member.name, voter))
        .collect();
    members.sort();
    members
}

#[tokio::test]
async fn a_joiner_that_never_catches_up_is_not_made_a_member() {
    let t = TestNode::start_with(|config| config.catch_up_ms = 1_000).await;
    let before = members(&t);
    let url = impostor("late", 777).await;
    let (status, body) = bounded(
        "the join",
        t.post(
            "/v1/cluster/join",
            json!({ "name": "late", "url": url, "raftId": 777 }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(error_message(&body).contains("did not catch up"), "{body}");
    assert_eq!(members(&t), before, "the learner was left behind");
    bounded("a write after the refused join", t.enqueue_echo("after")).await;
    t.stop().await;
}

#[tokio::test]
async fn a_join_under_the_live_members_name_is_refused() {
    let t = TestNode::start().await;
    let before = members(&t);
    let url = impostor("test-node", 777).await;
    let (status, body) = bounded(
        "the join",
        t.post(
            "/v1/cluster/join",
            json!({ "name": "test-node", "url": url, "raftId": 777 }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_message(&body).contains("test-node"), "{body}");
    assert_eq!(members(&t), before);
    bounded("a write after the refused join", t.enqueue_echo("after")).await;
    t.stop().await;
}

#[tokio::test]
async fn removing_the_last_voter_is_refused_for_good() {
    let t = TestNode::start().await;
    let before = members(&t);
    let response = warp::test::request()
        .method("POST")
        .path("/v1/cluster/remove")
        .header(TOKEN_HEADER, TOKEN)
        .json(&json!({ "name": "test-node" }))
        .reply(&t.routes)
        .await;
    assert!(
        response.headers().get("retry-after").is_none(),
        "a permanent refusal says not to retry"
    );
    let (status, body) = decode(response);
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_message(&body).contains("last voter"), "{body}");
    assert_eq!(members(&t), before);
    t.stop().await;
}
