//! History: a coordinator's resident memory and restart time as finished
//! jobs pile up behind steady live work. About 10,000 jobs stay live
//! (queued or leased) throughout: enqueuers top the queue up (batches of
//! 200, 4 at a time) while simulated hosts, as the dispatch scenario's,
//! claim and complete as fast as they can. At milestones of finished jobs
//! it reads the coordinator's RSS, its data directory's size and the jobs/s
//! since the last milestone; at the last, it stops the load, kills the
//! coordinator with SIGKILL, starts it again on its data and times it
//! until it serves, then reads its RSS again.
//!
//! Two coordinators, one after the other: one that retires finished jobs
//! after 1 s (`SKYCLAW_RETENTION_MS=1000`), whose RSS and restart should
//! follow live work alone, and one with the default retention (an hour),
//! which keeps every finished job and so goes to 2 million at most.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use skyclaw_testkit::Routing;

use super::{kill_and_restart, mib, start_cluster_with};
use crate::load::{self, TopUp};

/// Simulated hosts: as the dispatch scenario's, 4 hosts, 16 slots each.
const HOSTS: usize = 4;
const SLOTS: u32 = 16;
/// The enqueuers: 4 workers, 200 jobs a request.
const ENQUEUERS: usize = 4;
const BATCH: usize = 200;
/// The last milestone of the run that keeps finished jobs an hour: they
/// all stay in memory.
const KEPT_AT_MOST: u64 = 2_000_000;

/// `finished` is the last milestone of the full run (`--finished`); the
/// quick run has its own.
pub async fn run(bin: &Path, quick: bool, finished: u64) -> Result<Value> {
    let (live, retired_at, kept_at) = if quick {
        (1_000, vec![2_000, 4_000], vec![2_000, 4_000])
    } else {
        (
            10_000,
            milestones(finished),
            milestones(finished.min(KEPT_AT_MOST)),
        )
    };
    let retired = measure(bin, live, Some(1_000), &retired_at).await?;
    let kept = measure(bin, live, None, &kept_at).await?;
    Ok(json!({
        "live": live,
        "hosts": HOSTS,
        "slots": SLOTS,
        "runs": [retired, kept],
    }))
}

/// 1, 2 and 5 million, 10, 20 and 50 million, … below `last`, then `last`.
fn milestones(last: u64) -> Vec<u64> {
    let mut points = Vec::new();
    let mut decade = 1_000_000;
    'ladder: loop {
        for step in [1, 2, 5] {
            let point = step * decade;
            if point >= last {
                break 'ladder;
            }
            points.push(point);
        }
        decade *= 10;
    }
    points.push(last);
    points
}

/// One coordinator (finished jobs retired after `retention_ms`, or after
/// its default), driven to each of `milestones` finished jobs in turn, then
/// killed and restarted.
async fn measure(
    bin: &Path,
    live: u64,
    retention_ms: Option<u64>,
    milestones: &[u64],
) -> Result<Value> {
    let env: Vec<(&str, String)> = retention_ms
        .iter()
        .map(|ms| ("SKYCLAW_RETENTION_MS", ms.to_string()))
        .collect();
    let mut cluster = start_cluster_with(bin, 1, Routing::Direct, &env).await;
    let api = load::client(&cluster.nodes[0].url);
    let retention = match retention_ms {
        Some(ms) => format!("finished jobs retired after {} s", ms as f64 / 1e3),
        None => "finished jobs kept an hour (the default retention)".to_string(),
    };
    println!(
        "\nhistory, 1 node, {retention}: ~{live} jobs live, \
         {HOSTS} hosts x {SLOTS} slots claim + complete"
    );
    println!(
        "{:>12} {:>10} {:>10} {:>10} {:>11} {:>14}",
        "finished", "RSS MiB", "disk MiB", "jobs/s", "restart ms", "RSS after MiB"
    );
    let filled = load::fill(&api, live).await?.operations * 500;
    let mut top_up = TopUp::start(&api, live, ENQUEUERS, BATCH);
    let hosts = load::token_hosts(&api, HOSTS, SLOTS).await?;
    let mut points = Vec::new();
    let mut finished = 0;
    for &milestone in milestones {
        let stretch = tokio::select! {
            run = load::dispatch_run(&hosts, SLOTS, milestone.saturating_sub(finished)) => run?,
            error = top_up.failed() => return Err(error),
        };
        finished += stretch.jobs;
        let jobs_per_s = stretch.jobs as f64 / stretch.elapsed.as_secs_f64();
        let rss = cluster.nodes[0].rss_bytes();
        let disk = cluster.nodes[0].disk_bytes();
        print!(
            "{finished:>12} {:>10} {:>10} {jobs_per_s:>10.0}",
            rss.map_or("?".into(), mib),
            mib(disk),
        );
        if milestone != *milestones.last().expect("at least one milestone") {
            println!(" {:>11} {:>14}", "-", "-");
        }
        points.push(json!({
            "finished": finished,
            "rss_bytes": rss,
            "disk_bytes": disk,
            "jobs_per_s": jobs_per_s,
        }));
    }
    // The last milestone: no more load, then kill -9 and start again.
    let enqueued = top_up.stop().await?;
    let took = kill_and_restart(&mut cluster, 0).await;
    let restart_ms = took.as_secs_f64() * 1e3;
    let rss_after = cluster.nodes[0].rss_bytes();
    println!(
        " {restart_ms:>11.0} {:>14}",
        rss_after.map_or("?".into(), mib)
    );
    Ok(json!({
        "retention_ms": retention_ms,
        "points": points,
        "enqueued": filled + enqueued,
        "restart_ms": restart_ms,
        "rss_after_restart_bytes": rss_after,
    }))
}

#[cfg(test)]
mod tests {
    use super::milestones;

    #[test]
    fn milestones_climb_to_the_last() {
        assert_eq!(
            milestones(10_000_000),
            [1_000_000, 2_000_000, 5_000_000, 10_000_000]
        );
        assert_eq!(milestones(3_000_000), [1_000_000, 2_000_000, 3_000_000]);
        assert_eq!(milestones(2_000_000), [1_000_000, 2_000_000]);
        assert_eq!(milestones(500_000), [500_000]);
    }
}
