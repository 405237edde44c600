//! What replication costs on the wire, next to what the MVP's would. The
//! MVP pushed its whole JSON state to every peer after every change, so its
//! cost per enqueue grew with the state; raft ships only the new entries.
//!
//! Three coordinators each advertise a byte-counting proxy (the testkit's
//! [`Routing::PeersProxied`]), so peers reach one another only through the
//! proxies, while the benchmark talks to the leader's own port. For each
//! state size: fill the state to that many jobs with batch enqueues, wait
//! until the followers have it all, reset the counters, make single
//! enqueues, wait until the followers have those too, and divide the bytes
//! each follower's proxy carried towards it (appends, heartbeats, HTTP
//! framing: everything) by the enqueues. The MVP's figure is the length of
//! `GET /v1/state` (the JSON it pushed), averaged over the run since the
//! state grows while it runs.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use skyclaw_testkit::proxy::Proxy;
use skyclaw_testkit::{Api, Cluster, Routing};

use super::start_cluster;
use crate::load;

/// Single enqueues in flight while measuring.
const CONCURRENCY: usize = 16;

pub async fn run(bin: &Path, quick: bool) -> Result<Value> {
    let (sizes, enqueues): (&[u64], u64) = if quick {
        (&[200, 1_000], 300)
    } else {
        (&[1_000, 10_000, 100_000], 2_000)
    };
    let cluster = start_cluster(bin, 3, Routing::PeersProxied).await;
    let proxies: Vec<&Proxy> = cluster
        .nodes
        .iter()
        .map(|node| {
            node.proxy()
                .expect("peers reach every node through its proxy")
        })
        .collect();
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let leader_url = &cluster.nodes[leader].url;
    let api = load::client(leader_url);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    println!(
        "\nreplication, 3 nodes, peers through counting proxies: \
         {enqueues} single enqueues at concurrency {CONCURRENCY} per state size"
    );
    println!(
        "{:>14} {:>16} {:>16} {:>14} {:>16} {:>10}",
        "jobs in state",
        format!("B/enq to {}", cluster.nodes[followers[0]].name),
        format!("B/enq to {}", cluster.nodes[followers[1]].name),
        "B/enq back",
        "MVP B/enq",
        "MVP/raft"
    );
    let mut out = Vec::new();
    for &size in sizes {
        let queued = api.status().await?.queued;
        if queued < size {
            load::enqueue(&api, 8, size - queued, 100).await?;
        }
        let before = api.status().await?.queued;
        caught_up(&cluster, leader, &followers).await?;
        let state_before = state_json_bytes(leader_url).await?;

        for proxy in &proxies {
            proxy.reset();
        }
        load::enqueue(&api, CONCURRENCY, enqueues, 1).await?;
        caught_up(&cluster, leader, &followers).await?;
        let to: Vec<u64> = followers
            .iter()
            .map(|&f| proxies[f].bytes_to_node())
            .collect();
        let back: u64 = followers
            .iter()
            .map(|&f| proxies[f].bytes_from_node())
            .sum();

        // Read after the counters: a linearizable read talks to the followers.
        let after = api.status().await?.queued;
        let state_after = state_json_bytes(leader_url).await?;
        let per_enqueue = |bytes: u64| bytes as f64 / enqueues as f64;
        let raft = per_enqueue(to.iter().sum::<u64>()) / followers.len() as f64;
        let mvp = (state_before + state_after) as f64 / 2.0;
        println!(
            "{:>14} {:>16.0} {:>16.0} {:>14.0} {:>16.0} {:>10.0}",
            format!("{before}-{after}"),
            per_enqueue(to[0]),
            per_enqueue(to[1]),
            per_enqueue(back) / followers.len() as f64,
            mvp,
            mvp / raft
        );
        out.push(json!({
            "jobs_before": before,
            "jobs_after": after,
            "enqueues": enqueues,
            "followers": followers.iter().zip(&to).map(|(&f, &bytes)| json!({
                "name": cluster.nodes[f].name,
                "bytes_to_node": bytes,
                "bytes_from_node": proxies[f].bytes_from_node(),
                "bytes_per_enqueue": per_enqueue(bytes),
            })).collect::<Vec<_>>(),
            "raft_bytes_per_enqueue_per_follower": raft,
            "state_json_bytes_before": state_before,
            "state_json_bytes_after": state_after,
            "mvp_bytes_per_enqueue_per_follower": mvp,
            "mvp_to_raft": mvp / raft,
        }));
    }
    Ok(Value::Array(out))
}

/// Waits until every follower's event log holds the leader's head.
async fn caught_up(cluster: &Cluster, leader: usize, followers: &[usize]) -> Result<()> {
    let head = cluster
        .head(leader)
        .await
        .context("the leader did not tell its head")?
        .seq;
    for &follower in followers {
        cluster
            .wait_head_at_least(follower, head, Duration::from_secs(60))
            .await;
    }
    Ok(())
}

/// The length of `GET /v1/state` at `url`: the JSON the MVP pushed.
async fn state_json_bytes(url: &str) -> Result<u64> {
    let reply = Api::new(Duration::from_secs(60))
        .get(url, "/v1/state")
        .await
        .map_err(|e| anyhow::anyhow!("GET /v1/state: {e}"))?;
    if reply.status != 200 {
        bail!("GET /v1/state: {}: {}", reply.status, reply.text());
    }
    Ok(reply.body.len() as u64)
}
