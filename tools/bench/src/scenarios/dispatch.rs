//! Claim + complete with simulated hosts, idle-host pickup latency, and
//! whether claim + complete stays as fast with a deep queue as with a
//! shallow one.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use skyclaw_client::Client;
use skyclaw_testkit::Routing;

use super::memory::{self, Filled};
use super::{header, row, start_cluster};
use crate::load::{self, Run, Summary};

/// Simulated hosts for the throughput figures: 4 hosts, 16 slots each.
const HOSTS: usize = 4;
const SLOTS: u32 = 16;

/// `deep` is a coordinator already holding a deep queue (the memory
/// scenario's); without one, this fills its own to the same depth.
pub async fn run(bin: &Path, quick: bool, deep: Option<Filled>) -> Result<Value> {
    let node = start_cluster(bin, 1, Routing::Direct).await;
    let api = load::client(&node.nodes[0].url);
    let total = if quick { 500 } else { 20_000 };
    let samples = if quick { 10 } else { 100 };
    header("dispatch, 1 node: claim + complete");
    // Hosts without keys (the admin token) and with keys (their sessions),
    // in turns, so both see the same machine.
    let token_hosts = load::token_hosts(&api, HOSTS, SLOTS).await?;
    let keyed_hosts = load::keyed_hosts(&node.nodes[0].url, HOSTS, SLOTS).await?;
    let (mut token_run, mut keyed_run) = (Run::default(), Run::default());
    for _ in 0..2 {
        load::fill(&api, total / 2).await?;
        token_run.add(load::dispatch_run(&token_hosts, SLOTS, total / 2).await?);
        load::fill(&api, total / 2).await?;
        keyed_run.add(load::dispatch_run(&keyed_hosts, SLOTS, total / 2).await?);
    }
    let cycles = load::summarize(token_run.jobs, token_run.elapsed, token_run.latencies);
    row("4 hosts x 16 slots (per claim)", &cycles);
    let keyed = load::summarize(keyed_run.jobs, keyed_run.elapsed, keyed_run.latencies);
    row("same, hosts with keys (sessions)", &keyed);
    println!(
        "keyed / token hosts, claim + complete jobs/s: {:.2}",
        keyed.jobs_per_s / cycles.jobs_per_s
    );
    let pickup = load::pickup(&api, samples).await?;
    row("idle-host pickup latency", &pickup);

    let shallow_depth = 1_000;
    let shallow = at_depth(&api, shallow_depth, total).await?;
    row("~1k queued (per claim)", &shallow);
    drop(node);

    let deep = match deep {
        Some(filled) => filled,
        None => memory::fill_to(bin, memory::deepest(quick), &[]).await?,
    };
    let deep_api = load::client(&deep.cluster.nodes[0].url);
    let deep_depth = deep.jobs;
    let deep_cycles = at_depth(&deep_api, deep_depth, total).await?;
    row(&format!("{deep_depth} queued (per claim)"), &deep_cycles);
    println!(
        "deep / shallow queue, claim + complete jobs/s: {:.2}",
        deep_cycles.jobs_per_s / shallow.jobs_per_s
    );
    Ok(json!({
        "cycles": cycles,
        "keyed_cycles": keyed,
        "pickup": pickup,
        "depths": [
            { "queued": shallow_depth, "cycles": shallow },
            { "queued": deep_depth, "cycles": deep_cycles },
        ],
        "deep_to_shallow": deep_cycles.jobs_per_s / shallow.jobs_per_s,
    }))
}

/// Claim + complete `total` jobs while about `depth` jobs wait in the
/// queue: in rounds that each top the queue up to `depth` (not timed) and
/// then take at most half of it (timed), so the depth stays near `depth`.
async fn at_depth(api: &Client, depth: u64, total: u64) -> Result<Summary> {
    let mut run = Run::default();
    while run.jobs < total {
        let queued = api.status().await?.queued;
        if queued < depth {
            load::enqueue(api, 8, depth - queued, 100).await?;
        }
        let round = (depth / 2).max(1).min(total - run.jobs);
        let hosts = load::token_hosts(api, HOSTS, SLOTS).await?;
        run.add(load::dispatch_run(&hosts, SLOTS, round).await?);
    }
    Ok(load::summarize(run.jobs, run.elapsed, run.latencies))
}
