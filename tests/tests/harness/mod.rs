//! A harness for tests that break coordinators on purpose. The cluster
//! itself is the testkit's (`skyclaw_testkit::Cluster`): N coordinators
//! from the built binary, each with its own data directory and behind a
//! loopback proxy the test owns, which it can kill -9, stop, pause,
//! resume, restart, wipe and isolate. What only these tests need is here.
//!
//! Layout:
//! - this file: [`run`], the [`options`] these tests start clusters with,
//!   and [`enqueue_until_acknowledged`], which times failover
//! - [`load`]: enqueuers and simulated hosts, and the ledger of what the
//!   cluster acknowledged to them
//! - [`checker`]: what must hold once the load stops

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod checker;
pub mod load;

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use skyclaw_testkit::{Api, Cluster, Options};

/// Runs one test body on its own runtime, within `limit`, and one test at
/// a time: three coordinators under load already keep both cores of a CI
/// machine busy, and two such tests side by side starve raft's heartbeats
/// until followers start elections the test did not cause.
pub fn run(limit: Duration, test: impl Future<Output = ()>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if tokio::time::timeout(limit, test).await.is_err() {
            panic!("the test did not finish within {limit:?}");
        }
    });
}

/// Three nodes behind proxies, with 3 s leases, so orphaned leases (a
/// claim whose answer was lost) come back within a test.
pub fn options() -> Options {
    Options {
        lease_ms: Some(3_000),
        ..Options::default()
    }
}

/// Enqueues one job through `nodes` in turn, retrying every 10 ms
/// until a node acknowledges it; returns the job id and when the
/// answer came. Fine-grained, as it measures failover: an attempt gets
/// one second (a write takes milliseconds), so one held by a node that
/// cannot answer (a follower still forwarding to a frozen leader) does
/// not hide that another node already could.
pub async fn enqueue_until_acknowledged(
    cluster: &Cluster,
    nodes: &[usize],
    key: &str,
    limit: Duration,
) -> (String, Instant) {
    let api = Api::new(Duration::from_secs(1));
    let body = load::job_body(key);
    let deadline = Instant::now() + limit;
    let mut turn = 0;
    loop {
        let node = &cluster.nodes[nodes[turn % nodes.len()]];
        turn += 1;
        let last = match api.post(&node.url, "/v1/jobs", &body, Some(key)).await {
            Ok(reply) if reply.status == 200 => {
                let job: skyclaw_api::JobResponse = reply.json();
                return (job.job.id, Instant::now());
            }
            Ok(reply) => {
                assert_eq!(reply.status, 503, "enqueue refused: {}", reply.text());
                format!("{}: 503 {}", node.name, reply.text())
            }
            Err(e) => format!("{}: {e}", node.name),
        };
        assert!(
            Instant::now() < deadline,
            "no enqueue through {} was acknowledged within {limit:?}; last answer: {last}",
            cluster.names(nodes)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
