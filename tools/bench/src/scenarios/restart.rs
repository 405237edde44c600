//! Crash recovery: kill -9 a coordinator holding many events and time how
//! long the restarted process takes to serve again (start-up reads the
//! views back; it does not replay history).

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use skyclaw_testkit::Routing;

use super::{kill_and_restart, mib, start_cluster};
use crate::load;

pub async fn run(bin: &Path, quick: bool) -> Result<Value> {
    let mut cluster = start_cluster(bin, 1, Routing::Direct).await;
    let events: u64 = if quick { 2_000 } else { 1_000_000 };
    load::fill(&load::client(&cluster.nodes[0].url), events).await?;
    let rss = cluster.nodes[0].rss_bytes();
    let took = kill_and_restart(&mut cluster, 0).await;
    println!("\nrestart, 1 node");
    println!(
        "{events} events: kill -9 to serving in {:.0} ms; RSS before the kill {} MiB",
        took.as_secs_f64() * 1e3,
        rss.map_or("?".into(), mib)
    );
    Ok(json!({ "events": events, "restart_ms": took.as_secs_f64() * 1e3, "rss_bytes": rss }))
}
