//! `skyclaw host` daemons the e2e scenario starts from the built binary,
//! each in a directory the caller owns, killed when dropped.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use skyclaw_testkit::binary::clean_command;
use skyclaw_testkit::TOKEN;
use tokio::process::Child;

/// A `skyclaw host` daemon; killed when dropped.
pub struct HostDaemon {
    child: Option<Child>,
}

impl Drop for HostDaemon {
    /// Kills the process and waits (briefly) until it is gone, so that its
    /// directory can be removed after it.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl HostDaemon {
    /// Starts a host named `name` against `coordinator`, keeping its id in
    /// `dir`, running up to `max_parallel` jobs at once and allowing the
    /// shell commands `allowed` (matched exactly against the job's
    /// command). Does not wait until it registers.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        coordinator: &str,
        max_parallel: u32,
        allowed: &[&str],
    ) -> Result<HostDaemon> {
        std::fs::create_dir_all(dir)?;
        let log = std::fs::File::create(dir.join("host.log"))?;
        let child = clean_command(bin)
            .arg("host")
            .env("SKYCLAW_COORDINATOR_URL", coordinator)
            .env("SKYCLAW_TOKEN", TOKEN)
            .env("SKYCLAW_HOST_NAME", name)
            .env("SKYCLAW_HOST_STATE_DIR", dir)
            .env("SKYCLAW_MAX_PARALLEL", max_parallel.to_string())
            .env("SKYCLAW_ALLOWED_COMMANDS", allowed.join(","))
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} host", bin.display()))?;
        Ok(HostDaemon { child: Some(child) })
    }
}
