//! Coordinators the benchmark starts itself from the built `skyclaw`
//! binary, on free loopback ports with temporary data directories.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const TOKEN: &str = "bench-token";

/// One coordinator process; killed when dropped.
pub struct Coordinator {
    pub url: String,
    child: Child,
    bin: PathBuf,
    data: PathBuf,
}

/// The `skyclaw` binary beside this one, unless given.
pub fn skyclaw_bin(given: Option<PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(bin) => bin,
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's own directory")?
            .join("skyclaw"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (`cargo build --release -p skyclaw`) or pass --skyclaw",
            bin.display()
        );
    }
    Ok(bin)
}

impl Coordinator {
    /// Starts a one-node coordinator in `data` and waits until it serves.
    pub async fn start(bin: &Path, data: &Path) -> Result<Coordinator> {
        let (child, url) = spawn(bin, data).await?;
        let coordinator = Coordinator {
            url,
            child,
            bin: bin.to_path_buf(),
            data: data.to_path_buf(),
        };
        coordinator.wait_ready(Duration::from_secs(60)).await?;
        Ok(coordinator)
    }

    /// Waits until the coordinator answers and its cluster exists.
    pub async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        loop {
            let head = client
                .get(format!("{}/v1/log/head", self.url))
                .header("x-skyclaw-token", TOKEN)
                .send()
                .await;
            if let Ok(response) = head {
                if let Ok(head) = response.json::<skyclaw_api::LogHead>().await {
                    if head.seq > 0 {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("coordinator at {} not ready after {limit:?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// kill -9, then start again on the same data; returns the time from
    /// spawning to serving.
    pub async fn crash_and_restart(&mut self) -> Result<Duration> {
        self.child.kill().await?;
        let started = Instant::now();
        let (child, url) = spawn(&self.bin, &self.data).await?;
        self.child = child;
        self.url = url;
        self.wait_ready(Duration::from_secs(120)).await?;
        Ok(started.elapsed())
    }

    /// Resident memory of the process, in bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

async fn spawn(bin: &Path, data: &Path) -> Result<(Child, String)> {
    let mut child = Command::new(bin)
        .arg("coordinator")
        .env("SKYCLAW_COORDINATOR_HOST", "127.0.0.1")
        .env("SKYCLAW_COORDINATOR_PORT", "0")
        .env("SKYCLAW_DB_PATH", data)
        .env("SKYCLAW_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("coordinator stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("coordinator did not say where it listens")??
        .context("coordinator exited before listening")?;
    let url = line
        .rsplit(' ')
        .next()
        .filter(|url| url.starts_with("http://"))
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_string();
    Ok((child, url))
}
