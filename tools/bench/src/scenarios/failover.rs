//! Failover: how long a three-node cluster under light load stays unable
//! to acknowledge an enqueue after its leader is killed with SIGKILL, and
//! how many elections full load alone causes (each should be none), with
//! raft's default timeouts and with ones tuned for a LAN, side by side.
//!
//! Full load first: 64 workers enqueue single jobs as fast as they are
//! answered, through every node in turn, for a while; the elections are
//! the rise of the highest term any node reports.
//!
//! A few enqueuers keep a steady trickle of writes going to every node in
//! turn, ignoring errors. Each round kills the leader, then probes every
//! survivor at once, each in a tight loop of enqueues with a one-second
//! timeout; the figure is the time from the kill to the first 2xx. The
//! killed node is then started again on its data and port, and the next
//! round waits until it has caught up with the leader's log.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use skyclaw_client::Client;
use skyclaw_testkit::Routing;
use tokio::task::JoinSet;

use super::start_cluster_with;
use crate::load;

/// Raft's timing for one run: what `SKYCLAW_RAFT_HEARTBEAT_MS` and
/// `SKYCLAW_ELECTION_TIMEOUT_MS` say.
struct Timing {
    name: &'static str,
    heartbeat_ms: u64,
    election_timeout_ms: u64,
}

const TIMINGS: [Timing; 2] = [
    Timing {
        name: "default",
        heartbeat_ms: 100,
        election_timeout_ms: 400,
    },
    Timing {
        name: "tuned",
        heartbeat_ms: 50,
        election_timeout_ms: 150,
    },
];

/// Full load: this many workers, for this long.
const FULL_LOAD_WORKERS: usize = 64;

/// Steady load: this many enqueuers, each pausing this long between tries.
const ENQUEUERS: usize = 4;
const PAUSE: Duration = Duration::from_millis(20);
/// How long one probe may wait for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a failover may take before the scenario gives up.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

pub async fn run(bin: &Path, quick: bool) -> Result<Value> {
    let mut report = serde_json::Map::new();
    for timing in &TIMINGS {
        report.insert(timing.name.into(), run_with(bin, quick, timing).await?);
    }
    Ok(Value::Object(report))
}

async fn run_with(bin: &Path, quick: bool, timing: &Timing) -> Result<Value> {
    let kills = if quick { 2 } else { 10 };
    let env = [
        ("SKYCLAW_RAFT_HEARTBEAT_MS", timing.heartbeat_ms.to_string()),
        (
            "SKYCLAW_ELECTION_TIMEOUT_MS",
            timing.election_timeout_ms.to_string(),
        ),
    ];
    let mut cluster = start_cluster_with(bin, 3, Routing::Direct, &env).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    println!(
        "\nfailover with {} timeouts: heartbeat {} ms, elections {}–{} ms",
        timing.name,
        timing.heartbeat_ms,
        timing.election_timeout_ms,
        2 * timing.election_timeout_ms
    );
    let full_load = Duration::from_secs(if quick { 2 } else { 20 });
    let (elections, rate) = elections_under_full_load(&cluster, &urls, full_load).await?;
    println!(
        "full load, {FULL_LOAD_WORKERS} workers for {} s: {rate:.0} enqueues/s, {elections} \
         elections without a failure",
        full_load.as_secs()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut load = JoinSet::new();
    for worker in 0..ENQUEUERS {
        let clients: Vec<Client> = urls
            .iter()
            .map(|url| load::client_with_timeout(url, Duration::from_secs(2)))
            .collect();
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        load.spawn(async move {
            let mut turn = worker;
            while !stop.load(Ordering::Relaxed) {
                if load::enqueue_one(&clients[turn % clients.len()])
                    .await
                    .is_ok()
                {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                turn += 1;
                tokio::time::sleep(PAUSE).await;
            }
        });
    }

    println!(
        "\nfailover, 3 nodes under light load ({ENQUEUERS} enqueuers): \
         kill -9 the leader, time to the first acknowledged enqueue"
    );
    println!(
        "{:>6} {:>10} {:>16} {:>18}",
        "kill", "leader", "to first ack ms", "restart+catch-up s"
    );
    let mut failovers = Vec::new();
    let mut catch_ups = Vec::new();
    for round in 1..=kills {
        steady(&acknowledged).await?;
        let leader = cluster.leader(Duration::from_secs(10)).await;
        let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let killed_at = Instant::now();
        cluster.kill(leader).await;
        let failover = first_ack(&survivors.iter().map(|&i| &urls[i]).collect::<Vec<_>>())
            .await?
            .saturating_duration_since(killed_at);

        let restarted_at = Instant::now();
        cluster.restart(leader).await;
        let new_leader = cluster.leader(Duration::from_secs(10)).await;
        let head = cluster
            .head(new_leader)
            .await
            .context("the new leader did not tell its head")?
            .seq;
        cluster
            .wait_head_at_least(leader, head, Duration::from_secs(120))
            .await;
        let catch_up = restarted_at.elapsed();
        println!(
            "{round:>6} {:>10} {:>16.0} {:>18.2}",
            cluster.nodes[leader].name,
            failover.as_secs_f64() * 1e3,
            catch_up.as_secs_f64()
        );
        failovers.push(failover.as_secs_f64() * 1e3);
        catch_ups.push(catch_up.as_secs_f64() * 1e3);
    }
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}

    let mut sorted = failovers.clone();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    };
    let worst = sorted[sorted.len() - 1];
    println!(
        "kill -9 to first ack: median {median:.0} ms, worst {worst:.0} ms; \
         {} enqueues acknowledged under the steady load",
        acknowledged.load(Ordering::Relaxed)
    );
    Ok(json!({
        "heartbeat_ms": timing.heartbeat_ms,
        "election_timeout_ms": timing.election_timeout_ms,
        "full_load_elections": elections,
        "full_load_enqueues_per_s": rate,
        "kills": kills,
        "median_ms": median,
        "worst_ms": worst,
        "failover_ms": failovers,
        "restart_catch_up_ms": catch_ups,
        "steady_load_acknowledged": acknowledged.load(Ordering::Relaxed),
    }))
}

/// The highest term any node of the cluster reports.
async fn highest_term(cluster: &skyclaw_testkit::Cluster) -> u64 {
    let mut highest = 0;
    for i in 0..cluster.nodes.len() {
        if let Some(status) = cluster.status(i).await {
            highest = highest.max(status.term);
        }
    }
    highest
}

/// Drives every node with full load for `span`; the elections meanwhile
/// (the rise of the highest term) and the enqueues acknowledged per second.
async fn elections_under_full_load(
    cluster: &skyclaw_testkit::Cluster,
    urls: &[String],
    span: Duration,
) -> Result<(u64, f64)> {
    cluster.leader(Duration::from_secs(10)).await;
    let before = highest_term(cluster).await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + span;
    let mut workers = JoinSet::new();
    for worker in 0..FULL_LOAD_WORKERS {
        let client = load::client_with_timeout(&urls[worker % urls.len()], Duration::from_secs(5));
        let acknowledged = acknowledged.clone();
        workers.spawn(async move {
            while Instant::now() < deadline {
                if load::enqueue_one(&client).await.is_ok() {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let rate = acknowledged.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let after = highest_term(cluster).await;
    Ok((after.saturating_sub(before), rate))
}

/// Waits until the steady load has had a few more enqueues acknowledged,
/// so that every kill happens under load.
async fn steady(acknowledged: &AtomicU64) -> Result<()> {
    let target = acknowledged.load(Ordering::Relaxed) + 10;
    let deadline = Instant::now() + Duration::from_secs(10);
    while acknowledged.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            bail!("the steady load got no enqueue acknowledged for 10 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Enqueues through each of `urls` at once, each in a tight loop, until
/// one is acknowledged; returns when that answer came.
async fn first_ack(urls: &[&String]) -> Result<Instant> {
    let deadline = Instant::now() + FAILOVER_LIMIT;
    let mut probes = JoinSet::new();
    for url in urls {
        let client = load::client_with_timeout(url, PROBE_TIMEOUT);
        probes.spawn(async move {
            while Instant::now() < deadline {
                if load::enqueue_one(&client).await.is_ok() {
                    return Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None
        });
    }
    while let Some(probe) = probes.join_next().await {
        if let Some(acknowledged) = probe? {
            probes.abort_all();
            return Ok(acknowledged);
        }
    }
    bail!("no survivor acknowledged an enqueue within {FAILOVER_LIMIT:?} of the kill")
}
