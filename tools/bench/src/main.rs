//! `skyclaw-bench`: starts coordinators (and hosts) from the built
//! `skyclaw` binary, runs load scenarios, prints a table per scenario and
//! optionally writes every figure as JSON.
//!
//! Layout:
//! - [`scenarios`]: one module per scenario
//! - [`load`]: enqueuers and simulated hosts through `skyclaw-client`,
//!   latency statistics
//! - [`host`]: `skyclaw host` daemons, for the end-to-end scenario
//!
//! Coordinators, clusters and the byte-counting proxies in front of them
//! are `skyclaw-testkit`'s.

mod etcd;
mod host;
mod load;
mod scenarios;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use serde_json::Value;
use skyclaw_testkit::binary;

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
    /// The history scenario's last milestone of finished jobs in a full
    /// run; the others are 1, 2, 5 million, 10 million, … below it, and
    /// the run that keeps finished jobs an hour stops at 2 million. Other
    /// scenarios, and `--quick`, ignore it.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    finished: u64,
    /// The `skyclaw-audit` binary, for the audit scenario's log
    /// [default: the one beside this binary].
    #[arg(long)]
    skyclaw_audit: Option<PathBuf>,
    /// A `skyclaw` binary from before a change, which the snapshot scenario
    /// measures too and shows as "before" beside `--skyclaw` as "after".
    /// Other scenarios ignore it.
    #[arg(long)]
    skyclaw_before: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Scenario {
    /// Single and batch enqueue at several concurrencies, 1 node and 3 nodes.
    Enqueue,
    /// Claim + complete with simulated hosts, idle-host pickup latency,
    /// and a shallow against a deep queue.
    Dispatch,
    /// kill -9 a coordinator holding many events; time until it serves again.
    Restart,
    /// Bytes each follower receives per enqueue, against the MVP's
    /// full-state push, at several state sizes.
    Replication,
    /// kill -9 the leader of 3 nodes under load; time to the first
    /// acknowledged enqueue.
    Failover,
    /// Real host daemons running real jobs: jobs/s and pickup latency.
    E2e,
    /// Verify + replay rate of `skyclaw audit` over a segment file.
    Audit,
    /// RSS of a coordinator as its queue grows, and the fill rate.
    Memory,
    /// RSS and restart time as finished jobs pile up behind ~10k live ones,
    /// finished jobs retired after 1 s and kept an hour.
    History,
    /// Enqueue latency while raft snapshots are built at a million jobs
    /// queued: stalls over 50 ms, snapshots built and their build time.
    Snapshot,
    /// Every scenario above.
    All,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = binary::locate("skyclaw", args.skyclaw.clone());
    let before = args
        .skyclaw_before
        .clone()
        .map(|path| binary::locate("skyclaw", Some(path)));
    let quick = args.quick;
    let mut report = serde_json::Map::new();
    let run = |scenario| args.scenario == scenario || args.scenario == Scenario::All;
    if run(Scenario::Enqueue) {
        let figures = scenarios::enqueue::run(&bin, quick).await?;
        report.insert("enqueue".into(), figures);
    }
    // Memory runs before dispatch, which reuses its deep queue.
    let mut filled = None;
    if run(Scenario::Memory) {
        let (figures, node) = scenarios::memory::run(&bin, quick).await?;
        report.insert("memory".into(), figures);
        filled = Some(node);
    }
    if run(Scenario::Dispatch) {
        let figures = scenarios::dispatch::run(&bin, quick, filled.take()).await?;
        report.insert("dispatch".into(), figures);
    }
    drop(filled);
    if run(Scenario::Restart) {
        let figures = scenarios::restart::run(&bin, quick).await?;
        report.insert("restart".into(), figures);
    }
    if run(Scenario::Replication) {
        let figures = scenarios::replication::run(&bin, quick).await?;
        report.insert("replication".into(), figures);
    }
    if run(Scenario::Failover) {
        let figures = scenarios::failover::run(&bin, quick).await?;
        report.insert("failover".into(), figures);
    }
    if run(Scenario::E2e) {
        let figures = scenarios::e2e::run(&bin, quick).await?;
        report.insert("e2e".into(), figures);
    }
    if run(Scenario::Audit) {
        let audit_bin = binary::locate("skyclaw-audit", args.skyclaw_audit.clone());
        let figures = scenarios::audit::run(&bin, &audit_bin, quick).await?;
        report.insert("audit".into(), figures);
    }
    if run(Scenario::History) {
        let figures = scenarios::history::run(&bin, quick, args.finished).await?;
        report.insert("history".into(), figures);
    }
    if run(Scenario::Snapshot) {
        let figures = scenarios::snapshot::run(&bin, before.as_deref(), quick).await?;
        report.insert("snapshot".into(), figures);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&Value::Object(report))?)?;
    }
    Ok(())
}
