//! Enqueue throughput and latency, single requests and batches of 100, at
//! several concurrencies: on one node, then on a three-node cluster (load
//! on the leader, every write replicated to a majority before it is
//! acknowledged). The table shows both side by side. Where `etcd` is on
//! PATH, single enqueues are set against etcd puts of 256 bytes on the same
//! machine, at the same concurrencies, in the same run.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use skyclaw_client::Client;
use skyclaw_testkit::Routing;

use super::{failed, start_cluster};
use crate::etcd::{self, Etcd};
use crate::load::{self, Summary};

/// One concurrency level's figures on one setup.
struct Level {
    concurrency: usize,
    single: Summary,
    batch: Summary,
}

/// Measures one node, then three: never both at once, as they share the CPU.
pub async fn run(bin: &Path, quick: bool) -> Result<Value> {
    let (levels, total): (&[usize], u64) = if quick {
        (&[1, 16], 400)
    } else {
        (&[1, 16, 64, 256], 20_000)
    };
    let one = {
        let node = start_cluster(bin, 1, Routing::Direct).await;
        measure(&load::client(&node.nodes[0].url), levels, total).await?
    };
    let three = {
        let cluster = start_cluster(bin, 3, Routing::Direct).await;
        let leader = cluster.leader(Duration::from_secs(10)).await;
        measure(&load::client(&cluster.nodes[leader].url), levels, total).await?
    };

    // The smoke run (`--quick`) checks the tool, not etcd.
    let against_etcd = match etcd::on_path().filter(|_| !quick) {
        Some(bin) => Some(against_etcd(&bin, levels, total, &one, &three).await?),
        None if quick => None,
        None => {
            println!("(etcd is not on PATH: no comparison; `apt-get install etcd-server` adds it)");
            None
        }
    };
    println!(
        "\nenqueue, durable (one fsync per raft entry): 1 node vs 3 nodes (load on the leader)"
    );
    println!(
        "{:<30} {:>9} {:>8} {:>8}   {:>9} {:>8} {:>8}   {:>6}",
        "", "1 node/s", "p50 ms", "p99 ms", "3 nodes/s", "p50 ms", "p99 ms", "3n/1n"
    );
    let line = |label: String, one: &Summary, three: &Summary| {
        println!(
            "{label:<30} {:>9.0} {:>8.2} {:>8.2}   {:>9.0} {:>8.2} {:>8.2}   {:>6.2}{}{}",
            one.jobs_per_s,
            one.p50_ms,
            one.p99_ms,
            three.jobs_per_s,
            three.p50_ms,
            three.p99_ms,
            three.jobs_per_s / one.jobs_per_s,
            failed(one, " on 1 node"),
            failed(three, " on 3 nodes"),
        );
    };
    let mut out = Vec::new();
    for (one, three) in one.iter().zip(&three) {
        let concurrency = one.concurrency;
        line(
            format!("single, concurrency {concurrency}"),
            &one.single,
            &three.single,
        );
        line(
            format!("batch of 100, concurrency {concurrency}"),
            &one.batch,
            &three.batch,
        );
        out.push(json!({
            "concurrency": concurrency,
            "single": one.single,
            "batch100": one.batch,
            "single_3nodes": three.single,
            "batch100_3nodes": three.batch,
            "single_ratio_3_to_1": three.single.jobs_per_s / one.single.jobs_per_s,
            "batch100_ratio_3_to_1": three.batch.jobs_per_s / one.batch.jobs_per_s,
        }));
    }
    Ok(json!({ "levels": out, "etcd": against_etcd }))
}

/// etcd puts at the same levels, 1 member then 3 (load on the leader), and
/// a table of Skyclaw's single enqueues beside them with the ratios.
async fn against_etcd(
    bin: &std::path::PathBuf,
    levels: &[usize],
    total: u64,
    one: &[Level],
    three: &[Level],
) -> Result<Value> {
    let mut etcd_one = Vec::new();
    let mut etcd_three = Vec::new();
    for (nodes, out) in [(1, &mut etcd_one), (3, &mut etcd_three)] {
        let etcd = Etcd::start(bin, nodes).await?;
        let leader = etcd.leader().await?;
        for &concurrency in levels {
            let total = if concurrency == 1 { total / 4 } else { total };
            out.push(etcd::puts(&leader, concurrency, total).await?);
        }
    }
    println!(
        "
single enqueue vs etcd put of 256 bytes, both durable, same machine and load"
    );
    println!(
        "{:<20} {:>10} {:>9} {:>7}   {:>10} {:>9} {:>7}",
        "", "1 node/s", "etcd/s", "ratio", "3 nodes/s", "etcd/s", "ratio"
    );
    let mut out = Vec::new();
    for (i, &concurrency) in levels.iter().enumerate() {
        let (ours_one, ours_three) = (&one[i].single, &three[i].single);
        let (theirs_one, theirs_three) = (&etcd_one[i], &etcd_three[i]);
        println!(
            "{:<20} {:>10.0} {:>9.0} {:>7.2}   {:>10.0} {:>9.0} {:>7.2}",
            format!("concurrency {concurrency}"),
            ours_one.jobs_per_s,
            theirs_one.jobs_per_s,
            ours_one.jobs_per_s / theirs_one.jobs_per_s,
            ours_three.jobs_per_s,
            theirs_three.jobs_per_s,
            ours_three.jobs_per_s / theirs_three.jobs_per_s,
        );
        out.push(json!({
            "concurrency": concurrency,
            "etcd": theirs_one,
            "etcd_3nodes": theirs_three,
            "ratio": ours_one.jobs_per_s / theirs_one.jobs_per_s,
            "ratio_3nodes": ours_three.jobs_per_s / theirs_three.jobs_per_s,
        }));
    }
    Ok(Value::Array(out))
}

/// Single and batch enqueues at each concurrency level against `api`.
async fn measure(api: &Client, levels: &[usize], total: u64) -> Result<Vec<Level>> {
    let mut out = Vec::new();
    for &concurrency in levels {
        let total = if concurrency == 1 { total / 4 } else { total };
        out.push(Level {
            concurrency,
            single: load::enqueue(api, concurrency, total, 1).await?,
            batch: load::enqueue(api, concurrency, total * 5, 100).await?,
        });
    }
    Ok(out)
}
