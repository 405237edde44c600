//! The scenarios, one module each. Every scenario starts the processes it
//! needs in a temporary directory, prints a table for people and returns
//! its figures as JSON for the report; `--quick` shrinks every size so that
//! all of them together finish in well under two minutes on a debug build.
//!
//! - [`enqueue`]: enqueue throughput and latency, 1 node and 3 nodes
//! - [`dispatch`]: claim + complete, pickup latency, shallow vs deep queue
//! - [`restart`]: kill -9 and time until serving again
//! - [`replication`]: bytes on the wire per enqueue vs the MVP's full-state push
//! - [`failover`]: kill -9 the leader; time until an enqueue is acknowledged,
//!   and elections under full load, with raft's default and tuned timeouts
//! - [`e2e`]: real `skyclaw host` daemons running real jobs
//! - [`audit`]: verify + replay rate of `skyclaw audit` over a segment file
//! - [`memory`]: a coordinator's RSS as its queue grows, and the fill rate
//! - [`history`]: a coordinator's RSS and restart time as finished jobs pile
//!   up behind steady live work, with finished jobs retired after 1 s and
//!   kept an hour
//! - [`snapshot`]: write latency while raft snapshots are built at a million
//!   jobs, one binary against another

pub mod audit;
pub mod dispatch;
pub mod e2e;
pub mod enqueue;
pub mod failover;
pub mod history;
pub mod memory;
pub mod replication;
pub mod restart;
pub mod snapshot;

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use skyclaw_testkit::{Cluster, Options, Routing};

use crate::load::Summary;

/// `nodes` coordinators from `bin` as the benchmark runs them: logging
/// only warnings, and reached as `routing` says.
pub async fn start_cluster(bin: &Path, nodes: usize, routing: Routing) -> Cluster {
    start_cluster_with(bin, nodes, routing, &[]).await
}

/// [`start_cluster`], with these settings besides.
pub async fn start_cluster_with(
    bin: &Path,
    nodes: usize,
    routing: Routing,
    env: &[(&str, String)],
) -> Cluster {
    let mut settings = vec![("RUST_LOG".to_string(), "warn".to_string())];
    settings.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Cluster::start(Options {
        nodes,
        routing,
        env: settings,
        bin: Some(bin.to_path_buf()),
        ..Options::default()
    })
    .await
}

/// kill -9 node `i`, then start it again on the same data: the time from
/// spawning it to its serving again.
pub async fn kill_and_restart(cluster: &mut Cluster, i: usize) -> Duration {
    cluster.kill(i).await;
    let started = Instant::now();
    cluster.restart(i).await;
    cluster.wait_serving(i, Duration::from_secs(300)).await;
    started.elapsed()
}

/// The column heads of a [`row`] table.
pub fn header(title: &str) {
    println!("\n{title}");
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>9}",
        "", "jobs/s", "p50 ms", "p99 ms", "max ms"
    );
}

/// One line of a [`header`] table.
pub fn row(label: &str, summary: &Summary) {
    println!(
        "{label:<32} {:>10.0} {:>9.2} {:>9.2} {:>9.2}{}",
        summary.jobs_per_s,
        summary.p50_ms,
        summary.p99_ms,
        summary.max_ms,
        failed(summary, "")
    );
}

/// Says how many requests failed (`place`), if any did: to end a
/// table's line.
pub fn failed(summary: &Summary, place: &str) -> String {
    match summary.errors {
        0 => String::new(),
        errors => format!("  ({errors} requests failed{place})"),
    }
}

/// Bytes as MiB, for tables.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

/// Percentiles of a set of durations given in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Spread {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    pub fn of(mut values_ms: Vec<f64>) -> Spread {
        values_ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            values_ms
                .get(((values_ms.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Spread {
            samples: values_ms.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}
