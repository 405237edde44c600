//! A host owner holding the admin token (or no credential at all) tries to
//! speak for a coordinator of a cluster in the full trust model: a forged
//! vote with a term far ahead, a forged AppendEntries, a heartbeat, a join
//! of an unreachable voter. Raft's routes take only the peer secret, so each
//! gets 401 or 403, and the term, the membership and the log stay as they
//! were while the cluster keeps writing.

use std::time::Duration;

use skyclaw_api::routes::{self, Route, PEER_HEADER, TOKEN_HEADER};
use skyclaw_testkit::{Cluster, Options, Routing, TOKEN};

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
