//! How fast `skyclaw audit` verifies and replays a log: a synthetic
//! segment file of N valid events (written by `skyclaw-audit
//! bench-generate`, a realistic mix of hosts, enqueues, claims, renewals,
//! completions, cancellations and expiries) is verified with `skyclaw
//! audit FILE --json`. Reports the tool's own rate (from its JSON report)
//! and the rate over the wall time of the whole command, process start
//! included.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use skyclaw_testkit::binary::clean_command;

use super::mib;

pub async fn run(skyclaw: &Path, skyclaw_audit: &Path, quick: bool) -> Result<Value> {
    let events: u64 = if quick { 20_000 } else { 1_000_000 };
    let limit = Duration::from_secs(if quick { 60 } else { 900 });
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.segment");

    let started = Instant::now();
    let count = events.to_string();
    let generate = ["bench-generate".as_ref(), count.as_ref(), file.as_os_str()];
    succeed(skyclaw_audit, &generate, limit).await?;
    let generated = started.elapsed();
    let file_bytes = std::fs::metadata(&file)?.len();

    let started = Instant::now();
    let output = succeed(
        skyclaw,
        &["audit".as_ref(), file.as_os_str(), "--json".as_ref()],
        limit,
    )
    .await?;
    let wall = started.elapsed();
    let report: Value =
        serde_json::from_slice(&output.stdout).context("`skyclaw audit --json` printed no JSON")?;
    ensure!(
        report["status"] == "verified" && report["events"] == events,
        "the synthetic log did not verify: {report}"
    );
    let tool_rate = report["eventsPerSecond"].as_u64().unwrap_or(0);
    let tool_ms = report["durationMs"].as_u64().unwrap_or(0);
    let wall_rate = events as f64 / wall.as_secs_f64();

    println!("\naudit: verify + replay of a synthetic segment file");
    println!(
        "{events} events ({} MiB, generated in {:.1} s): {tool_rate} events/s by the tool's \
         own clock ({tool_ms} ms); {wall_rate:.0} events/s over {:.0} ms wall, process start included",
        mib(file_bytes),
        generated.as_secs_f64(),
        wall.as_secs_f64() * 1e3
    );
    Ok(json!({
        "events": events,
        "file_bytes": file_bytes,
        "generate_ms": generated.as_secs_f64() * 1e3,
        "tool_events_per_s": tool_rate,
        "tool_duration_ms": tool_ms,
        "wall_events_per_s": wall_rate,
        "wall_ms": wall.as_secs_f64() * 1e3,
    }))
}

/// Runs `bin args`, within `limit`; fails unless it exits 0.
async fn succeed(bin: &Path, args: &[&std::ffi::OsStr], limit: Duration) -> Result<Output> {
    let child = clean_command(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("{} did not finish within {limit:?}", bin.display()))??;
    if !output.status.success() {
        bail!(
            "{} {args:?} exited with {}: {}{}",
            bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}
