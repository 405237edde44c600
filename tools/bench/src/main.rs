//! `skyclaw-bench`: starts coordinators from the built `skyclaw` binary (or
//! targets a given URL), runs load scenarios, prints a table per scenario
//! and optionally writes every figure as JSON.
//!
//! Layout:
//! - [`server`]: coordinators started for the benchmark
//! - [`load`]: enqueuers, simulated hosts, latency statistics

mod load;
mod server;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

use load::{Api, Summary};
use server::Coordinator;

#[derive(Debug, Parser)]
#[command(name = "skyclaw-bench", version)]
struct Args {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Small sizes, for a smoke run that checks the tool works.
    #[arg(long)]
    quick: bool,
    /// Write every figure to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The `skyclaw` binary [default: the one beside this binary].
    #[arg(long)]
    skyclaw: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Scenario {
    /// Single and batch enqueue at several concurrencies, one node.
    Enqueue,
    /// Claim + complete with simulated hosts, and idle-host pickup latency.
    Dispatch,
    /// kill -9 a coordinator holding many events; time until it serves again.
    Restart,
    /// Every scenario above.
    All,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = server::skyclaw_bin(args.skyclaw.clone())?;
    let mut report = serde_json::Map::new();
    let run = |scenario| args.scenario == scenario || args.scenario == Scenario::All;
    if run(Scenario::Enqueue) {
        report.insert("enqueue".into(), enqueue(&bin, args.quick).await?);
    }
    if run(Scenario::Dispatch) {
        report.insert("dispatch".into(), dispatch(&bin, args.quick).await?);
    }
    if run(Scenario::Restart) {
        report.insert("restart".into(), restart(&bin, args.quick).await?);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&Value::Object(report))?)?;
    }
    Ok(())
}

fn row(label: &str, summary: &Summary) {
    println!(
        "{label:<28} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
        summary.jobs_per_s, summary.p50_ms, summary.p99_ms, summary.max_ms
    );
}

fn header(title: &str) {
    println!("\n{title}");
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>9}",
        "", "jobs/s", "p50 ms", "p99 ms", "max ms"
    );
}

async fn enqueue(bin: &std::path::Path, quick: bool) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = Coordinator::start(bin, dir.path()).await?;
    let api = Api::new(&node.url);
    let (levels, total): (&[usize], u64) = if quick {
        (&[1, 16], 400)
    } else {
        (&[1, 16, 64, 256], 20_000)
    };
    header("enqueue, 1 node, durable (one fsync per raft entry)");
    let mut out = Vec::new();
    for &concurrency in levels {
        let total = if concurrency == 1 { total / 4 } else { total };
        let single = load::enqueue(&api, concurrency, total, 1).await?;
        row(&format!("single, concurrency {concurrency}"), &single);
        let batch = load::enqueue(&api, concurrency, total * 5, 100).await?;
        row(&format!("batch of 100, concurrency {concurrency}"), &batch);
        out.push(json!({ "concurrency": concurrency, "single": single, "batch100": batch }));
    }
    Ok(Value::Array(out))
}

async fn dispatch(bin: &std::path::Path, quick: bool) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = Coordinator::start(bin, dir.path()).await?;
    let api = Api::new(&node.url);
    let total = if quick { 500 } else { 20_000 };
    let samples = if quick { 10 } else { 100 };
    header("dispatch, 1 node: claim + complete");
    let mut enqueued = 0;
    while enqueued < total {
        enqueued += api.enqueue_batch(500).await?.len() as u64;
    }
    let cycles = load::dispatch(&api, 4, 16, total).await?;
    row("4 hosts x 16 slots (per claim)", &cycles);
    let pickup = load::pickup(&api, samples).await?;
    row("idle-host pickup latency", &pickup);
    Ok(json!({ "cycles": cycles, "pickup": pickup }))
}

async fn restart(bin: &std::path::Path, quick: bool) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let mut node = Coordinator::start(bin, dir.path()).await?;
    let api = Api::new(&node.url);
    let events: u64 = if quick { 2_000 } else { 100_000 };
    let mut written = 0;
    while written < events {
        written += api.enqueue_batch(500).await?.len() as u64;
    }
    let rss = node.rss_bytes();
    let took: Duration = node.crash_and_restart().await?;
    println!("\nrestart, 1 node");
    println!(
        "{events} events: kill -9 to serving in {:.0} ms; RSS before the kill {} MiB",
        took.as_secs_f64() * 1e3,
        rss.map_or("?".into(), |b| (b >> 20).to_string())
    );
    Ok(json!({ "events": events, "restart_ms": took.as_secs_f64() * 1e3, "rss_bytes": rss }))
}
