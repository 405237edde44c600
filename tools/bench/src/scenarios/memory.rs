//! A coordinator's resident memory as its queue grows: fill one node with
//! batch enqueues (500 a request, 8 at a time) and read its RSS (and its
//! data directory's size) at a few depths, with the fill rate of each step.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use skyclaw_testkit::{Cluster, Routing};

use super::{mib, start_cluster, start_cluster_with};
use crate::load;

/// A one-node cluster holding `jobs` queued jobs.
pub struct Filled {
    pub cluster: Cluster,
    pub jobs: u64,
}

/// The depths at which RSS is read; the last is the deepest queue.
fn checkpoints(quick: bool) -> &'static [u64] {
    if quick {
        &[1_000, 10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    }
}

/// The deepest queue this scenario builds.
pub fn deepest(quick: bool) -> u64 {
    *checkpoints(quick).last().expect("at least one checkpoint")
}

/// Fills a new coordinator checkpoint by checkpoint; returns the figures
/// and the filled coordinator, for the dispatch scenario to reuse.
pub async fn run(bin: &Path, quick: bool) -> Result<(Value, Filled)> {
    let cluster = start_cluster(bin, 1, Routing::Direct).await;
    let node = &cluster.nodes[0];
    let api = load::client(&node.url);
    println!("\nmemory, 1 node: RSS while filling the queue (batches of 500, 8 at a time)");
    println!(
        "{:>12} {:>10} {:>10} {:>14}",
        "jobs queued", "RSS MiB", "disk MiB", "fill jobs/s"
    );
    let empty_rss = node.rss_bytes();
    println!(
        "{:>12} {:>10} {:>10} {:>14}",
        0,
        empty_rss.map_or("?".into(), mib),
        mib(node.disk_bytes()),
        "-"
    );
    let mut points = Vec::new();
    let mut jobs = 0;
    let mut fill_seconds = 0.0;
    for &target in checkpoints(quick) {
        let step = load::fill(&api, target - jobs).await?;
        let step_jobs = step.operations * 500;
        jobs += step_jobs;
        fill_seconds += step_jobs as f64 / step.jobs_per_s;
        let rss = node.rss_bytes();
        let disk = node.disk_bytes();
        println!(
            "{jobs:>12} {:>10} {:>10} {:>14.0}",
            rss.map_or("?".into(), mib),
            mib(disk),
            step.jobs_per_s
        );
        points.push(json!({
            "jobs": jobs,
            "rss_bytes": rss,
            "disk_bytes": disk,
            "fill_jobs_per_s": step.jobs_per_s,
        }));
    }
    let fill_rate = jobs as f64 / fill_seconds;
    println!("fill rate overall: {fill_rate:.0} jobs/s");
    let report = json!({
        "empty_rss_bytes": empty_rss,
        "points": points,
        "fill_jobs_per_s": fill_rate,
    });
    let filled = Filled { cluster, jobs };
    Ok((report, filled))
}

/// A new coordinator, with these settings besides the benchmark's, holding
/// `jobs` queued jobs, without measuring.
pub async fn fill_to(bin: &Path, jobs: u64, env: &[(&str, String)]) -> Result<Filled> {
    let cluster = start_cluster_with(bin, 1, Routing::Direct, env).await;
    let step = load::fill(&load::client(&cluster.nodes[0].url), jobs).await?;
    Ok(Filled {
        cluster,
        jobs: step.operations * 500,
    })
}
