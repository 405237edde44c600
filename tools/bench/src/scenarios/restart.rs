//! Crash recovery: kill -9 a coordinator holding many events and time how
//! long the restarted process takes to serve again (start-up reads the
//! views back; it does not replay history).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::mib;
use crate::load::{self, Api};
use crate::server::Coordinator;

pub async fn run(bin: &Path, quick: bool) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let mut node = Coordinator::start(bin, dir.path()).await?;
    let events: u64 = if quick { 2_000 } else { 1_000_000 };
    load::fill(&Api::new(&node.url), events).await?;
    let rss = node.rss_bytes();
    let took: Duration = node.crash_and_restart().await?;
    println!("\nrestart, 1 node");
    println!(
        "{events} events: kill -9 to serving in {:.0} ms; RSS before the kill {} MiB",
        took.as_secs_f64() * 1e3,
        rss.map_or("?".into(), mib)
    );
    Ok(json!({ "events": events, "restart_ms": took.as_secs_f64() * 1e3, "rss_bytes": rss }))
}
