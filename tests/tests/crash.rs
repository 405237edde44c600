//! One coordinator killed with SIGKILL in the middle of a load, ten times:
//! whatever it acknowledged before dying is there after the restart,
//! exactly once, and its event log still verifies from genesis.
//!
//! - `every_acknowledged_enqueue_survives_ten_kill_9s`

mod harness;

use std::time::{Duration, Instant};

use harness::checker;
use harness::load::{Ledger, Load};
use skyclaw_testkit::{Cluster, Options};

const CYCLES: u64 = 10;
const ENQUEUERS: usize = 8;

#[test]
fn every_acknowledged_enqueue_survives_ten_kill_9s() {
    harness::run(Duration::from_secs(110), async {
        let started = Instant::now();
        let mut cluster = Cluster::start(Options {
            nodes: 1,
            ..harness::options()
        })
        .await;
        let mut ledger = Ledger::default();
        for cycle in 0..CYCLES {
            let load = Load::start(cluster.urls(), &format!("c{cycle}"), ENQUEUERS, 0);
            // A different point of the load each cycle, counted in
            // acknowledged writes rather than time.
            load.wait_acknowledged(40 + cycle * 13 % 50, Duration::from_secs(20))
                .await;
            cluster.kill(0).await;
            let acknowledged = load.acknowledged();
            ledger.merge(load.stop().await);
            cluster.restart(0).await;
            cluster.wait_ready().await;
            let summary = checker::check(&cluster, &ledger).await;
            println!(
                "cycle {cycle}: killed after {acknowledged} acknowledged enqueues; \
                 after restart {} jobs, head {}, {} unsure",
                summary.jobs, summary.head_seq, summary.unsure
            );
        }
        assert_eq!(ledger.completed.len(), 0);
        println!(
            "{CYCLES} kill -9 cycles, {} acknowledged enqueues, all present, in {:?}",
            ledger.enqueued.len(),
            started.elapsed()
        );
    });
}
