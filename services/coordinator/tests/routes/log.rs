//! The log and the state: head, events as a segment and as JSON, digest,
//! and the MVP's whole-state view.

use serde_json::json;
use skyclaw_api::routes::{SEGMENT_CONTENT_TYPE, TOKEN_HEADER};
use skyclaw_log_format::{read_segment, ChainVerifier, Event};
use warp::http::StatusCode;

use crate::util::{decode, TestNode, TOKEN};

#[tokio::test]
async fn the_head_names_the_last_record() {
    let t = TestNode::start().await;
    let (status, head) = t.get("/v1/log/head").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(head["seq"], 1, "the cluster's creation is the first record");
    assert_eq!(head["hash"].as_str().unwrap().len(), 64);
    assert_eq!(head["nodeId"], "test-node");
    let cluster_id = head["clusterId"].as_str().unwrap();
    assert!(!cluster_id.is_empty());

    t.enqueue_echo("x").await;
    let (_, next) = t.get("/v1/log/head").await;
    assert_eq!(next["seq"], 2);
    assert_ne!(next["hash"], head["hash"]);
    assert_eq!(next["clusterId"], cluster_id);
    t.stop().await;
}

#[tokio::test]
async fn events_come_as_a_verifiable_segment() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    t.enqueue_echo("x").await;
    t.claim("h").await;
    let (_, head) = t.get("/v1/log/head").await;

    let response = warp::test::request()
        .path("/v1/events")
        .header(TOKEN_HEADER, TOKEN)
        .reply(&t.routes)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], SEGMENT_CONTENT_TYPE);
    let segment = read_segment(&response.body()[..]).expect("a well-formed segment");
    let cluster_id = head["clusterId"].as_str().unwrap();
    let mut chain = ChainVerifier::from_genesis(cluster_id);
    for record in &segment.records {
        chain.verify_next(record).expect("the chain links up");
    }
    assert_eq!(segment.records.len(), 4);
    assert_eq!(chain.head().seq, head["seq"].as_u64().unwrap());
    assert_eq!(chain.head().hash.to_hex(), head["hash"].as_str().unwrap());
    let kinds: Vec<Event> = segment
        .records
        .iter()
        .map(|record| record.decode_event().unwrap())
        .collect();
    assert!(matches!(kinds[0], Event::ClusterCreated { .. }));
    assert!(matches!(kinds[1], Event::HostRegistered { .. }));
    assert!(matches!(kinds[2], Event::JobEnqueued(_)));
    assert!(matches!(kinds[3], Event::JobLeased { .. }));

    // A window in the middle.
    let response = warp::test::request()
        .path("/v1/events?from=2&limit=2")
        .header(TOKEN_HEADER, TOKEN)
        .reply(&t.routes)
        .await;
    let window = read_segment(&response.body()[..]).unwrap();
    let seqs: Vec<u64> = window.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(window.records[0].prev_hash, segment.records[0].hash);
    t.stop().await;
}

#[tokio::test]
async fn events_come_as_json_on_request() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let (status, body) = t.get("/v1/events?format=json").await;
    assert_eq!(status, StatusCode::OK);
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["seq"], 1);
    assert_eq!(records[1]["seq"], 2);
    assert_eq!(records[1]["prevHash"], records[0]["hash"]);
    assert!(records[0]["event"]["clusterCreated"]["clusterId"].is_string());
    assert_eq!(records[1]["event"]["hostRegistered"]["hostId"], "h");

    let (_, past_the_end) = t.get("/v1/events?format=json&from=99").await;
    assert_eq!(past_the_end, json!({ "records": [] }));
    t.stop().await;
}

#[tokio::test]
async fn the_digest_matches_the_views_and_follows_changes() {
    let t = TestNode::start().await;
    let (status, first) = t.get("/v1/state/digest").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["seq"], 1);
    let own = t.node.read(|m| m.state.digest().to_hex());
    assert_eq!(first["digest"], own.as_str());

    t.enqueue_echo("x").await;
    let (_, second) = t.get("/v1/state/digest").await;
    assert_eq!(second["seq"], 2);
    assert_ne!(second["digest"], first["digest"]);
    let (_, again) = t.get("/v1/state/digest").await;
    assert_eq!(again, second);
    t.stop().await;
}

#[tokio::test]
async fn the_state_lists_every_host_and_job() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    let response = warp::test::request()
        .path("/v1/state")
        .header(TOKEN_HEADER, TOKEN)
        .reply(&t.routes)
        .await;
    let (status, state) = decode(response);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["nodeId"], "test-node");
    assert_eq!(state["hosts"][0]["id"], "h");
    assert_eq!(state["jobs"][0]["id"], job_id.as_str());
    let (_, stale) = t.get("/v1/state?stale=true").await;
    assert_eq!(stale["jobs"], state["jobs"]);
    t.stop().await;
}
