//! Snapshot: whether building a raft snapshot stalls writes. A coordinator
//! builds one every `SKYCLAW_SNAPSHOT_EVERY` raft entries; a build that
//! copies the views under the state's lock holds up every apply, and so
//! every write, for as long as the copy takes, seconds at a million jobs.
//!
//! One coordinator is filled with 1,000,000 queued jobs (batches of 500,
//! 8 at a time, as the memory scenario's), then takes single enqueues at
//! concurrency 16 for 20 s, every request's latency kept. It snapshots
//! every 10,000 raft entries: group commit puts about 4 of these enqueues
//! in an entry (16 in flight, 4 entries at a time), so a few snapshots
//! fall in the stretch, while the fill makes too few entries for one. Its
//! `GET /metrics` before and after the stretch tell the raft entries the
//! load made, the snapshots built meanwhile (a build still going at the
//! end is not counted) and their mean build time. The figure to watch is
//! the requests over 50 ms, which snapshots should not cause.
//!
//! With `--skyclaw-before`, that binary is measured first in the same way,
//! and the table shows it and `--skyclaw`'s as "before" and "after". A
//! last row, "no snap", runs `--skyclaw` with snapshots too far apart to
//! happen: what stalls without them, the floor the others compare to.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use skyclaw_testkit::Api;

use super::failed;
use super::memory;
use crate::load;

/// Single enqueues in flight while measuring.
const CONCURRENCY: usize = 16;
/// Raft entries between snapshots in the row without them: more than any
/// run makes.
const NEVER: u64 = 1 << 40;
/// A request slower than this counts as stalled.
const STALL: Duration = Duration::from_millis(50);

/// Sizes of one run.
struct Sizes {
    jobs: u64,
    snapshot_every: u64,
    stretch: Duration,
}

/// `before`: the binary from before a change, measured too.
pub async fn run(bin: &Path, before: Option<&Path>, quick: bool) -> Result<Value> {
    let sizes = if quick {
        Sizes {
            jobs: 20_000,
            snapshot_every: 100,
            stretch: Duration::from_secs(2),
        }
    } else {
        Sizes {
            jobs: 1_000_000,
            snapshot_every: 10_000,
            stretch: Duration::from_secs(20),
        }
    };
    let mut binaries: Vec<(&str, &Path, u64)> = match before {
        Some(before) => vec![
            ("before", before, sizes.snapshot_every),
            ("after", bin, sizes.snapshot_every),
        ],
        None => vec![("skyclaw", bin, sizes.snapshot_every)],
    };
    binaries.push(("no snap", bin, NEVER));
    println!(
        "\nsnapshot, 1 node, {} jobs queued, a snapshot every {} raft entries: \
         single enqueues at concurrency {CONCURRENCY} for {} s",
        sizes.jobs,
        sizes.snapshot_every,
        sizes.stretch.as_secs()
    );
    println!(
        "{:<8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7} {:>10} {:>10} {:>8}",
        "",
        "enq/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        ">50 ms",
        "entries/s",
        "snapshots",
        "build s"
    );
    let mut runs = Vec::new();
    for (label, bin, snapshot_every) in binaries {
        runs.push(measure(label, bin, snapshot_every, &sizes).await?);
    }
    Ok(json!({
        "jobs": sizes.jobs,
        "snapshot_every": sizes.snapshot_every,
        "concurrency": CONCURRENCY,
        "seconds": sizes.stretch.as_secs_f64(),
        "stall_ms": STALL.as_secs_f64() * 1e3,
        "runs": runs,
    }))
}

/// One binary: fill, then the measured stretch; prints its line of the
/// table.
async fn measure(label: &str, bin: &Path, snapshot_every: u64, sizes: &Sizes) -> Result<Value> {
    let env = [("SKYCLAW_SNAPSHOT_EVERY", snapshot_every.to_string())];
    let filled = memory::fill_to(bin, sizes.jobs, &env).await?;
    let url = &filled.cluster.nodes[0].url;
    let api = load::client(url);
    let start = Scrape::of(url).await?;
    let stretch = load::enqueue_for(&api, CONCURRENCY, sizes.stretch, 1).await?;
    let end = Scrape::of(url).await?;
    let stalls = stretch.latencies.iter().filter(|&&l| l > STALL).count();
    let seconds = stretch.elapsed.as_secs_f64();
    let summary = stretch.summary();
    let entries = (end.last_log_index - start.last_log_index) as u64;
    let snapshots = (end.builds - start.builds) as u64;
    let build_count = end.build_count - start.build_count;
    let mean_build_s = (build_count > 0.0).then(|| (end.build_sum - start.build_sum) / build_count);
    println!(
        "{label:<8} {:>8.0} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {stalls:>7} {:>10.0} {snapshots:>10} {:>8}{}",
        summary.jobs_per_s,
        summary.p50_ms,
        summary.p99_ms,
        summary.p999_ms,
        summary.max_ms,
        entries as f64 / seconds,
        mean_build_s.map_or("-".into(), |s| format!("{s:.3}")),
        failed(&summary, ""),
    );
    Ok(json!({
        "label": label,
        "snapshot_every": snapshot_every,
        "jobs_queued": filled.jobs,
        "enqueue": summary,
        "over_stall": stalls,
        "raft_entries": entries,
        "raft_entries_per_s": entries as f64 / seconds,
        "snapshots_built": snapshots,
        "mean_build_seconds": mean_build_s,
    }))
}

/// What this scenario reads of a coordinator's `GET /metrics`.
struct Scrape {
    /// `skyclaw_snapshot_builds_total`.
    builds: f64,
    /// `skyclaw_snapshot_build_seconds`' sum and count.
    build_sum: f64,
    build_count: f64,
    /// `skyclaw_raft_last_log_index`.
    last_log_index: f64,
}

impl Scrape {
    async fn of(url: &str) -> Result<Scrape> {
        let reply = Api::new(Duration::from_secs(60))
            .get(url, "/metrics")
            .await
            .map_err(|e| anyhow!("GET /metrics: {e}"))?;
        if reply.status != 200 {
            bail!("GET /metrics: {}: {}", reply.status, reply.text());
        }
        let text = reply.text();
        // A sample without labels: `name value`.
        let sample = |name: &str| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(name)?.strip_prefix(' ')?;
                value.trim().parse::<f64>().ok()
            })
        };
        let required = |name: &str| sample(name).with_context(|| format!("no {name} in /metrics"));
        // A histogram without samples yet may not show at all.
        Ok(Scrape {
            builds: required("skyclaw_snapshot_builds_total")?,
            build_sum: sample("skyclaw_snapshot_build_seconds_sum").unwrap_or(0.0),
            build_count: sample("skyclaw_snapshot_build_seconds_count").unwrap_or(0.0),
            last_log_index: required("skyclaw_raft_last_log_index")?,
        })
    }
}
