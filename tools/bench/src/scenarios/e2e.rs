//! End to end with real hosts: one coordinator and two `skyclaw host`
//! daemons (8 slots each) run shell jobs that execute `true`.
//!
//! First a backlog: enqueue N jobs at once (batches of 100) and time until
//! every one is final, for jobs/s end to end. Then idle hosts: enqueue one
//! job at a time and wait until it is final. Pickup latency is the time
//! from a job's enqueue to its claim, both as the coordinator recorded
//! them: the job views keep no claim time once a job has finished, so the
//! figures come from the event log (`JobEnqueued` and the first
//! `JobLeased` record of each job; record times are in milliseconds).
//! Under a backlog, pickup includes waiting for a free slot.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use skyclaw_api::JobStatus;
use skyclaw_client::{Client, ListJobs};
use skyclaw_testkit::{Api, Routing};

use super::{start_cluster, Spread};
use crate::host::HostDaemon;
use crate::load;

const HOSTS: usize = 2;
const SLOTS: u32 = 8;

pub async fn run(bin: &Path, quick: bool) -> Result<Value> {
    let (jobs, samples) = if quick { (50, 5) } else { (1_000, 50) };
    let dir = tempfile::tempdir()?;
    let cluster = start_cluster(bin, 1, Routing::Direct).await;
    let node = &cluster.nodes[0];
    let api = load::client(&node.url);
    let _hosts = (0..HOSTS)
        .map(|i| {
            let name = format!("bench-host-{i}");
            HostDaemon::start(
                bin,
                &dir.path().join(&name),
                &name,
                &node.url,
                SLOTS,
                &["true"],
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.hosts().await?.len() < HOSTS {
        if Instant::now() > deadline {
            bail!("the host daemons did not register within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A backlog of `jobs`, all enqueued at once.
    let first = api.log_head().await?.seq + 1;
    let started = Instant::now();
    let mut left = jobs;
    while left > 0 {
        let batch = left.min(100);
        load::enqueue_batch(&api, batch).await?;
        left -= batch;
    }
    all_final(&api, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();
    let backlog = pickups(&node.url, first).await?;

    // Idle hosts: one job at a time.
    let first = api.log_head().await?.seq + 1;
    for _ in 0..samples {
        load::enqueue_one(&api).await?;
        all_final(&api, Duration::from_secs(30)).await?;
    }
    let idle = pickups(&node.url, first).await?;

    let failed = api
        .list_jobs(&ListJobs {
            status: Some(JobStatus::Failed),
            limit: Some(1),
            after: None,
        })
        .await?;
    if let Some(job) = failed.jobs.first() {
        bail!("a job failed on the real hosts: {:?}", job.error);
    }
    let jobs_per_s = jobs as f64 / elapsed.as_secs_f64();
    println!("\ne2e, 1 node + {HOSTS} `skyclaw host` daemons x {SLOTS} slots, jobs running `true`");
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>9}",
        "", "jobs/s", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:<36} {jobs_per_s:>10.0} {:>9.0} {:>9.0} {:>9.0}",
        format!("{jobs} jobs at once: pickup"),
        backlog.p50_ms,
        backlog.p99_ms,
        backlog.max_ms
    );
    println!(
        "{:<36} {:>10} {:>9.0} {:>9.0} {:>9.0}",
        format!("{samples} jobs one by one: pickup"),
        "-",
        idle.p50_ms,
        idle.p99_ms,
        idle.max_ms
    );
    Ok(json!({
        "jobs": jobs,
        "seconds": elapsed.as_secs_f64(),
        "jobs_per_s": jobs_per_s,
        "pickup_backlog": backlog,
        "pickup_idle": idle,
    }))
}

/// Waits until no job is queued or leased.
async fn all_final(api: &Client, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let status = api.status().await?;
        if status.queued == 0 && status.leased == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "jobs still unfinished after {limit:?}: {} queued, {} leased",
                status.queued,
                status.leased
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Enqueue-to-claim times of the jobs enqueued from record `first` on,
/// read from the event log of the coordinator at `url`.
async fn pickups(url: &str, first: u64) -> Result<Spread> {
    let head = load::client(url).log_head().await?.seq;
    let mut enqueued: HashMap<String, u64> = HashMap::new();
    let mut latencies = Vec::new();
    let mut from = first;
    while from <= head {
        let records = records(url, from, 10_000).await?;
        if records.is_empty() {
            break;
        }
        for record in &records {
            let at = record["at"].as_u64().context("a record without `at`")?;
            let event = &record["event"];
            if let Some(id) = event["jobEnqueued"]["jobId"].as_str() {
                enqueued.insert(id.to_string(), at);
            } else if let Some(id) = event["jobLeased"]["jobId"].as_str() {
                // The first claim only: a job claimed again was re-queued.
                if let Some(since) = enqueued.remove(id) {
                    latencies.push(at.saturating_sub(since) as f64);
                }
            }
        }
        from = records
            .last()
            .and_then(|r| r["seq"].as_u64())
            .context("a record without `seq`")?
            + 1;
    }
    Ok(Spread::of(latencies))
}

/// Records `from..` of the event log at `url` as JSON (`{seq, at, event:
/// {kind: fields}}`), at most `limit` of them. The typed client has no
/// call for the JSON form, which only tools read.
async fn records(url: &str, from: u64, limit: u64) -> Result<Vec<Value>> {
    let path = format!("/v1/events?format=json&from={from}&limit={limit}");
    let reply = Api::new(Duration::from_secs(60))
        .get(url, &path)
        .await
        .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
    if reply.status != 200 {
        bail!("GET {path}: {}: {}", reply.status, reply.text());
    }
    match serde_json::from_slice::<Value>(&reply.body)?["records"].take() {
        Value::Array(records) => Ok(records),
        other => bail!("GET /v1/events: no records in {other}"),
    }
}
