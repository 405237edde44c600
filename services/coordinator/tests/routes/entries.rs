//! The size of a raft entry: a request whose entry alone would be larger
//! than followers take is refused with 413 before it reaches raft.

use serde_json::{json, Value};
use skyclaw_coordinator::proposer::MAX_ENTRY_BYTES;
use warp::http::StatusCode;

use crate::util::{error_message, TestNode};

/// A batch of `count` jobs, each with an argument of `bytes` bytes.
fn batch(count: usize, bytes: usize) -> Value {
    let job = json!({
        "payload": { "kind": "shell", "command": "echo", "args": ["x".repeat(bytes)] }
    });
    json!({ "jobs": vec![job; count] })
}

#[tokio::test]
async fn a_request_whose_entry_would_pass_the_bound_gets_413_naming_it() {
    let t = TestNode::start_with(|config| config.max_body_bytes = 4 * MAX_ENTRY_BYTES as u64).await;
    let head = t.head_seq().await;
    // Within the body limit, but more than an entry may hold.
    let (status, body) = t
        .post("/v1/jobs/batch", batch(MAX_ENTRY_BYTES / 1_000, 1_000))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        error_message(&body).contains(&MAX_ENTRY_BYTES.to_string()),
        "{body}"
    );
    assert_eq!(t.head_seq().await, head, "nothing was written");

    let (status, body) = t
        .post("/v1/jobs/batch", batch(MAX_ENTRY_BYTES / 2_000, 1_000))
        .await;
    assert_eq!(status, StatusCode::OK, "{}", error_message(&body));
    t.stop().await;
}
