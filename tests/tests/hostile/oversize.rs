//! An enqueuer sends requests whose raft entries are large: one batch of
//! tens of thousands of small jobs, and several large batches at once that
//! group commit would put in one entry. Each gets a clean answer (accepted
//! and replicated, 413 naming the limit, or a timeout that says the write
//! may still happen, and then it does), followers take every entry, and
//! no election follows.

use std::time::Duration;

use serde_json::{json, Value};
use skyclaw_api::JobsResponse;
use skyclaw_testkit::{wait_for, Api, Cluster};

use crate::harness;

const TEST_LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

/// `count` jobs, each with an argument of `bytes` bytes.
fn batch(prefix: &str, count: usize, bytes: usize) -> Value {
    let jobs: Vec<Value> = (0..count)
        .map(|i| {
            let mut arg = format!("{prefix}-{i}-");
            arg.extend(std::iter::repeat_n('x', bytes.saturating_sub(arg.len())));
            json!({ "payload": { "kind": "shell", "command": "true", "args": [arg] } })
        })
        .collect();
    json!({ "jobs": jobs })
}

/// Every node names the same leader in the same term, and each one's log
/// reaches the leader's head.
async fn replicated_without_election(cluster: &Cluster, leader: usize, term: u64) {
    let head = cluster.head(leader).await.expect("the leader's head").seq;
    for i in 0..cluster.nodes.len() {
        cluster.wait_head_at_least(i, head, WAIT).await;
        let status = cluster.status(i).await.expect("cluster status");
        assert_eq!(status.term, term, "an election happened: {status:?}");
        assert_eq!(
            status.leader.as_deref(),
            Some(cluster.nodes[leader].name.as_str()),
            "{status:?}"
        );
    }
}

#[test]
fn a_batch_of_75k_small_jobs_gets_a_clean_answer_and_no_election() {
    harness::run(TEST_LIMIT, async {
        let cluster = Cluster::start(harness::options()).await;
        let leader = cluster.wait_ready().await;
        let term = cluster.status(leader).await.unwrap().term;
        let body = batch("small", 75_000, 12);
        let size = body.to_string().len();
        assert!((3_000_000..8 << 20).contains(&size), "{size} bytes of JSON");
        let api = Api::new(Duration::from_secs(60));
        let reply = api
            .post(&cluster.nodes[leader].url, "/v1/jobs/batch", &body, None)
            .await
            .expect("an answer to the batch");
        match reply.status {
            200 => {
                let jobs: JobsResponse = reply.json();
                assert_eq!(jobs.jobs.len(), 75_000);
            }
            // Refused by the batch's job count, or by its entry's size.
            413 => assert!(
                reply.text().contains("at most 10000 jobs") || reply.text().contains("limit of"),
                "{}",
                reply.text()
            ),
            other => panic!("answered {other}: {}", reply.text()),
        }
        // Within the job count, past what one entry holds: the entry's
        // size is what refuses it.
        let body = batch("wide", 9_000, 200);
        let reply = api
            .post(&cluster.nodes[leader].url, "/v1/jobs/batch", &body, None)
            .await
            .expect("an answer to the batch");
        assert_eq!(reply.status, 413, "{}", reply.text());
        assert!(reply.text().contains("limit of"), "{}", reply.text());
        replicated_without_election(&cluster, leader, term).await;
    });
}

#[test]
fn large_batches_at_once_are_split_into_entries_followers_take() {
    harness::run(TEST_LIMIT, async {
        let cluster = Cluster::start(harness::options()).await;
        let leader = cluster.wait_ready().await;
        let term = cluster.status(leader).await.unwrap().term;
        let api = Api::new(Duration::from_secs(60));
        // Each just under what one entry may hold, and far within the body
        // limit; grouped, sixteen would be more than any follower takes.
        const BATCHES: u64 = 16;
        const JOBS: u64 = 800;
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..BATCHES {
            let api = api.clone();
            let url = cluster.nodes[leader].url.clone();
            let body = batch(&format!("large{i}"), JOBS as usize, 1_000);
            requests.spawn(async move { api.post(&url, "/v1/jobs/batch", &body, None).await });
        }
        while let Some(reply) = requests.join_next().await {
            let reply = reply
                .expect("the request task")
                .expect("an answer to the batch");
            // The last batches wait for every entry before theirs; on a
            // slow machine in a debug build that can take longer than the
            // coordinator's write timeout, whose answer says the write may
            // still happen. Whether every one did is checked below.
            let timed_out = reply.status == 503 && reply.text().contains("may or may not");
            assert!(
                reply.status == 200 || timed_out,
                "{}: {}",
                reply.status,
                reply.text()
            );
        }
        // Every batch committed: none was lost between the entries.
        let url = &cluster.nodes[leader].url;
        wait_for("every batch to commit", WAIT, || async {
            let status = api.get(url, "/v1/status").await?;
            match status.json::<Value>()["queued"].as_u64() {
                Some(queued) if queued == BATCHES * JOBS => Ok(()),
                queued => Err(format!("{queued:?} jobs queued")),
            }
        })
        .await;
        replicated_without_election(&cluster, leader, term).await;
    });
}
