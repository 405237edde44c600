//! A caller with the cluster token asks for membership changes that do not
//! hold: a joiner whose URL does not answer as the node it names, or one
//! that takes a live member's name. Each gets a 4xx naming the problem, the
//! membership stays as it was, and the cluster keeps writing in the same
//! term.

use std::time::Duration;

use serde_json::{json, Value};
use skyclaw_api::ClusterStatus;
use skyclaw_testkit::{Cluster, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness;

const TEST_LIMIT: Duration = Duration::from_secs(90);
const WAIT: Duration = Duration::from_secs(20);

/// A server that answers `GET /v1/cluster/hello` with `hello`, when given,
/// and 503 to everything else: what a join's URL may point at.
async fn impostor(hello: Option<Value>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let hello = hello.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let asks_hello = head.starts_with(b"GET /v1/cluster/hello ");
                let (status, body) = match hello {
                    Some(hello) if asks_hello => ("200 OK", hello.to_string()),
                    _ => ("503 Service Unavailable", r#"{"error":"busy"}"#.into()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

/// Members as (name, raft id, voter), sorted, as node `i` sees them.
async fn members(cluster: &Cluster, i: usize) -> Vec<(String, u64, bool)> {
    let status: ClusterStatus = cluster.status(i).await.expect("cluster status");
    let mut members: Vec<(String, u64, bool)> = status
        .members
        .into_iter()
        .map(|m| (m.name, m.raft_id, m.voter))
        .collect();
    members.sort();
    members
}

/// Membership on every node is still `before`, the leader and term did not
/// change, and a write through each node is acknowledged.
async fn nothing_changed(cluster: &Cluster, before: &[(String, u64, bool)], term: u64, key: &str) {
    for i in 0..cluster.nodes.len() {
        assert_eq!(
            members(cluster, i).await,
            before,
            "on {}",
            cluster.nodes[i].name
        );
    }
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    for i in 0..cluster.nodes.len() {
        harness::enqueue_until_acknowledged(cluster, &[i], &format!("{key}-{i}"), WAIT).await;
    }
    cluster.wait_leader_among(&all, WAIT).await;
    for i in all {
        let status = cluster.status(i).await.expect("cluster status");
        assert_eq!(status.term, term, "an election happened: {status:?}");
    }
}

async fn join(cluster: &Cluster, through: usize, body: Value) -> (u16, String) {
    let reply = cluster
        .api
        .post(&cluster.nodes[through].url, "/v1/cluster/join", &body, None)
        .await
        .expect("an answer to the join");
    (reply.status, reply.text())
}

#[test]
fn a_join_whose_url_does_not_answer_as_the_joiner_changes_nothing() {
    harness::run(TEST_LIMIT, async {
        let cluster = Cluster::start(harness::options()).await;
        let leader = cluster.wait_ready().await;
        let follower = (leader + 1) % cluster.nodes.len();
        let before = members(&cluster, leader).await;
        let term = cluster.status(leader).await.unwrap().term;
        let busy = impostor(None).await;
        let someone_else = impostor(Some(json!({
            "name": "someone-else", "url": "http://127.0.0.1:9", "raftId": 777, "initialized": false
        })))
        .await;
        let real = &cluster.nodes[follower];
        let cases = [
            (
                leader,
                json!({ "name": "rogue", "url": busy, "raftId": 777 }),
                "no coordinator answered",
            ),
            (
                follower,
                json!({ "name": "rogue", "url": busy, "raftId": 777 }),
                "no coordinator answered",
            ),
            (
                leader,
                json!({ "name": "rogue", "url": someone_else, "raftId": 777 }),
                "is named",
            ),
            (
                leader,
                json!({ "name": real.name, "url": real.url, "raftId": 777 }),
                "not 777",
            ),
        ];
        for (through, body, says) in cases {
            let (status, text) = join(&cluster, through, body.clone()).await;
            assert_eq!(status, 400, "{body}: {text}");
            assert!(text.contains(says), "{body}: {text}");
        }
        nothing_changed(&cluster, &before, term, "after-rogue").await;
    });
}

#[test]
fn a_join_under_a_live_members_name_is_refused() {
    harness::run(TEST_LIMIT, async {
        let cluster = Cluster::start(harness::options()).await;
        let leader = cluster.wait_ready().await;
        let before = members(&cluster, leader).await;
        let term = cluster.status(leader).await.unwrap().term;
        for victim in 0..cluster.nodes.len() {
            let name = cluster.nodes[victim].name.clone();
            let url = impostor(Some(json!({
                "name": name, "url": "http://127.0.0.1:9", "raftId": 777, "initialized": false
            })))
            .await;
            let (status, text) = join(
                &cluster,
                leader,
                json!({ "name": name, "url": url, "raftId": 777 }),
            )
            .await;
            assert_eq!(status, 409, "joining as {name}: {text}");
            assert!(text.contains(&name), "{text}");
            let add = cluster
                .api
                .post(
                    &cluster.nodes[leader].url,
                    "/v1/cluster/add",
                    &json!({ "name": name, "url": url }),
                    None,
                )
                .await
                .expect("an answer to the add");
            assert_eq!(add.status, 409, "adding as {name}: {}", add.text());
        }
        nothing_changed(&cluster, &before, term, "after-impostor").await;
    });
}

#[test]
fn removing_the_last_voter_is_refused_for_good() {
    harness::run(TEST_LIMIT, async {
        let cluster = Cluster::start(Options {
            nodes: 1,
            ..harness::options()
        })
        .await;
        let before = members(&cluster, 0).await;
        let term = cluster.status(0).await.unwrap().term;
        let reply = cluster
            .api
            .post(
                &cluster.nodes[0].url,
                "/v1/cluster/remove",
                &json!({ "name": "node-a" }),
                None,
            )
            .await
            .expect("an answer to the removal");
        assert_eq!(reply.status, 409, "{}", reply.text());
        assert!(reply.text().contains("last voter"), "{}", reply.text());
        nothing_changed(&cluster, &before, term, "after-remove").await;
    });
}
