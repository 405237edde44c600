//! Checkpoints of a real three-node cluster in the full trust model: the
//! served checkpoint carries the signatures of a majority of the voters
//! (each over the tree head its own log computed), and keeps being signed
//! with one voter down. A holder of the admin token cannot have a voter
//! sign anything (cosigning is a peer's route), and a peer asking a voter
//! to sign past what it holds gets no signature.

use std::time::{Duration, Instant};

use skyclaw_api::routes::{self, PEER_HEADER, TOKEN_HEADER};
use skyclaw_api::LogKeys;
use skyclaw_log_format::checkpoint;
use skyclaw_testkit::{Cluster, Options, Routing, TOKEN};

use crate::harness;

const PEER_SECRET: &str = "checkpoint-test-peer-secret";
const WAIT: Duration = Duration::from_secs(30);

async fn get(url: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .header(TOKEN_HEADER, TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("an answer");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Waits until node `i` serves a checkpoint of at least `size` records
/// that a majority of `trusted` signed; its tree head and note.
async fn signed_at_least(
    cluster: &Cluster,
    i: usize,
    size: u64,
    cluster_id: &str,
    trusted: &[String],
) -> (checkpoint::TreeHead, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, note) = get(&cluster.nodes[i].url, routes::CHECKPOINT.path).await;
        if status == 200 {
            let head = checkpoint::verify(note.as_bytes(), cluster_id, trusted)
                .unwrap_or_else(|e| panic!("node {i}'s checkpoint: {e}\n{note}"));
            if head.size >= size {
                return (head, note);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {size} records at node {i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn checkpoints_carry_a_majority_of_the_voters_and_only_peers_ask_for_them() {
    let mut cluster = Cluster::start(Options {
        routing: Routing::Direct,
        peer_secret: Some(PEER_SECRET.into()),
        ..Options::default()
    })
    .await;
    let leader = cluster.leader(WAIT).await;
    harness::enqueue_until_acknowledged(&cluster, &[leader], "first", WAIT).await;
    let (status, keys) = get(&cluster.nodes[leader].url, routes::LOG_KEYS.path).await;
    assert_eq!(status, 200, "{keys}");
    let keys: LogKeys = serde_json::from_str(&keys).unwrap();
    let trusted: Vec<String> = keys.keys.iter().map(|k| k.vkey.clone()).collect();
    assert_eq!(trusted.len(), 3, "{trusted:?}");
    let cluster_id = keys.origin.strip_prefix("skyclaw/").unwrap().to_string();

    let head = cluster.head(leader).await.expect("head").seq;
    let (signed, note) = signed_at_least(&cluster, leader, head, &cluster_id, &trusted).await;
    let signatures = note.lines().filter(|line| line.starts_with('—')).count();
    assert!(signatures >= 2, "{note}");
    // Each voter's signature is over that same text: any two verify alone.
    for key in &trusted {
        let alone = checkpoint::verify(note.as_bytes(), &cluster_id, std::slice::from_ref(key));
        assert!(
            alone.is_ok()
                || matches!(
                    alone,
                    Err(checkpoint::CheckpointError::TooFewSignatures { .. })
                ),
            "{alone:?}"
        );
    }

    // Only a peer asks for a cosignature: the admin token gets 403, and a
    // peer asking past what the voter holds gets no signature.
    let follower = (leader + 1) % 3;
    let cosign = |credential: (&'static str, &'static str), size: u64| {
        let url = format!("{}{}", cluster.nodes[follower].url, routes::COSIGN.path);
        async move {
            reqwest::Client::new()
                .post(url)
                .header(credential.0, credential.1)
                .json(&serde_json::json!({"size": size}))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(cosign((TOKEN_HEADER, TOKEN), 1).await, 403);
    assert_eq!(cosign((PEER_HEADER, PEER_SECRET), 1).await, 200);
    assert_eq!(
        cosign((PEER_HEADER, PEER_SECRET), head + 1_000_000).await,
        409
    );

    // One voter down: the other two still make a majority.
    let down = (leader + 2) % 3;
    cluster.kill(down).await;
    harness::enqueue_until_acknowledged(&cluster, &[leader], "second", WAIT).await;
    let grown = cluster.head(leader).await.expect("head").seq;
    let (later, _) = signed_at_least(&cluster, leader, grown, &cluster_id, &trusted).await;
    assert!(later.size > signed.size);
}
