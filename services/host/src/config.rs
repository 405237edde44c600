//! The host daemon's settings: one documented struct, filled by the
//! `skyclaw` command from flags and environment, validated once before use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// The most jobs one claim may take, and so the most slots a host may have.
pub const MAX_PARALLEL_LIMIT: u32 = 256;

/// Everything the host daemon and its runner can be told.
#[derive(Clone, Debug, PartialEq)]
pub struct HostConfig {
    /// Shown in `skyclaw hosts list` (`SKYCLAW_HOST_NAME`).
    /// Default: the machine's hostname, or `skyclaw-host`.
    pub name: String,
    /// Makes this a host without a key, the MVP's kind, under this id,
    /// trusted as the holder of the admin token (`SKYCLAW_HOST_ID`).
    /// Default: none: the host's own key, kept in `state_dir`, names it.
    pub host_id: Option<String>,
    /// Where the host keeps its key between runs.
    /// Default: `.skyclaw/host`.
    pub state_dir: PathBuf,
    /// An enrollment key an admin issued (`SKYCLAW_ENROLL_KEY`): the
    /// coordinator approves the host at its first registration.
    /// Default: none: an admin approves it (`skyclaw hosts approve`).
    pub enroll_key: Option<String>,
    /// The host's OpenClaw device identity file: its key becomes the
    /// host's, so the host's id is its OpenClaw device id
    /// (`SKYCLAW_OPENCLAW_IDENTITY`, usually `~/.openclaw/identity/device.json`).
    /// Default: none: a key of its own, kept in `state_dir`.
    pub openclaw_identity: Option<PathBuf>,
    /// What this host offers; a job runs here only if it requires no more
    /// (`SKYCLAW_CAPABILITIES`). Shell jobs also need `shell`, Automaton
    /// runs `automaton`.
    /// Default: `shell`, `automaton`.
    pub capabilities: Vec<String>,
    /// The commands a shell job may name, compared as whole strings: `bash`
    /// allows `bash`, not `/tmp/x/bash` (`SKYCLAW_ALLOWED_COMMANDS`).
    /// Default: `automaton`, `node`, `bash`, `sh`.
    pub allowed_commands: Vec<String>,
    /// Jobs run at once (`SKYCLAW_MAX_PARALLEL`).
    /// Default: 1.
    pub max_parallel: u32,
    /// How long one claim waits at the coordinator for work to appear
    /// (long poll), in ms (`SKYCLAW_POLL_MS`).
    /// Default: 20000.
    pub poll_ms: u64,
    /// Interval between heartbeats, which renew the leases of running jobs
    /// and bring cancellations, in ms (`SKYCLAW_HEARTBEAT_MS`).
    /// Default: 5000.
    pub heartbeat_ms: u64,
    /// Time limit of a job that names none, in ms (`SKYCLAW_TIMEOUT_MS`).
    /// Default: 300000.
    pub timeout_ms: u64,
    /// Kept of each of stdout and stderr; the rest is dropped and the cut
    /// marked (`SKYCLAW_MAX_OUTPUT_BYTES`).
    /// Default: 128000.
    pub max_output_bytes: usize,
    /// The program an `automaton-run` job runs (`SKYCLAW_AUTOMATON_COMMAND`).
    /// Chosen by the host's owner, so it need not be on the allowlist.
    /// Default: `automaton`.
    pub automaton_command: String,
    /// Between SIGTERM and SIGKILL when a job is stopped, in ms
    /// (`SKYCLAW_KILL_GRACE_MS`).
    /// Default: 10000.
    pub kill_grace_ms: u64,
    /// On shutdown, how long running jobs may go on before they are killed
    /// and reported failed, in ms (`SKYCLAW_SHUTDOWN_GRACE_MS`).
    /// Default: 30000.
    pub shutdown_grace_ms: u64,
    /// How jobs are confined.
    pub sandbox: SandboxConfig,
    /// Where to serve the host's metrics, `GET /metrics` in Prometheus
    /// text format (`SKYCLAW_METRICS_ADDR`). It asks for no token: keep it
    /// on loopback (`127.0.0.1:9187`) or a private network.
    /// Default: none, no metrics served.
    pub metrics_addr: Option<SocketAddr>,
}

/// The sandbox strangers' jobs run in (see [`crate::sandbox`]). Each limit
/// applies to every process of a job; 0 means no limit.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    /// Confine jobs: a fresh directory each, Landlock where the kernel has
    /// it, `no_new_privs`, the limits below (`SKYCLAW_SANDBOX`, `on` or
    /// `off`). Off, a job runs with the daemon's rights, in the daemon's
    /// directory or the `cwd` it names.
    /// Default: on.
    pub enabled: bool,
    /// Run jobs as this unprivileged user; the daemon must run as root
    /// (`SKYCLAW_SANDBOX_USER`).
    /// Default: none, jobs run as the daemon's user.
    pub user: Option<String>,
    /// Paths jobs may read and execute besides the system ones, such as
    /// where the automaton command lives (`SKYCLAW_SANDBOX_READ_PATHS`).
    /// Default: none.
    pub read_paths: Vec<PathBuf>,
    /// CPU time, in seconds; SIGXCPU at the limit, SIGKILL a second later
    /// (`SKYCLAW_LIMIT_CPU_SECONDS`).
    /// Default: 300, the default job timeout.
    pub cpu_seconds: u64,
    /// Address space, in MiB (`SKYCLAW_LIMIT_MEMORY_MB`).
    /// Default: 4096.
    pub memory_mb: u64,
    /// Processes of the user the job runs as, all of them counted: give
    /// jobs a dedicated user for this to be a per-job limit; root ignores
    /// it (`SKYCLAW_LIMIT_PROCESSES`).
    /// Default: 1024.
    pub processes: u64,
    /// Largest file a job may write, in MiB (`SKYCLAW_LIMIT_FILE_SIZE_MB`).
    /// Default: 1024.
    pub file_size_mb: u64,
    /// Open files (`SKYCLAW_LIMIT_OPEN_FILES`).
    /// Default: 1024.
    pub open_files: u64,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            enabled: true,
            user: None,
            read_paths: Vec::new(),
            cpu_seconds: 300,
            memory_mb: 4096,
            processes: 1024,
            file_size_mb: 1024,
            open_files: 1024,
        }
    }
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            name: machine_hostname().unwrap_or_else(|| "skyclaw-host".to_string()),
            host_id: None,
            state_dir: PathBuf::from(".skyclaw/host"),
            enroll_key: None,
            openclaw_identity: None,
            capabilities: vec!["shell".into(), "automaton".into()],
            allowed_commands: ["automaton", "node", "bash", "sh"]
                .map(String::from)
                .to_vec(),
            max_parallel: 1,
            poll_ms: 20_000,
            heartbeat_ms: 5_000,
            timeout_ms: 300_000,
            max_output_bytes: 128_000,
            automaton_command: "automaton".into(),
            kill_grace_ms: 10_000,
            shutdown_grace_ms: 30_000,
            sandbox: SandboxConfig::default(),
            metrics_addr: None,
        }
    }
}

impl HostConfig {
    /// Checks every field; the daemon calls it before anything else.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::Config(message));
        if self.name.trim().is_empty() {
            return invalid("the host name is empty".into());
        }
        if let Some(id) = &self.host_id {
            crate::identity::check_host_id(id)?;
        }
        if self.capabilities.iter().any(|c| c.trim().is_empty()) {
            return invalid("a capability is empty".into());
        }
        if let Some(bad) = self
            .allowed_commands
            .iter()
            .find(|c| c.is_empty() || c.contains(char::is_whitespace))
        {
            return invalid(format!(
                "allowed command {bad:?} is empty or has spaces; list programs, not command lines"
            ));
        }
        if self.automaton_command.trim().is_empty() {
            return invalid("the automaton command is empty".into());
        }
        if !(1..=MAX_PARALLEL_LIMIT).contains(&self.max_parallel) {
            return invalid(format!(
                "max parallel must be 1 to {MAX_PARALLEL_LIMIT}, not {}",
                self.max_parallel
            ));
        }
        if self.heartbeat_ms < 10 {
            return invalid(format!(
                "heartbeat interval must be at least 10 ms, not {}",
                self.heartbeat_ms
            ));
        }
        if self.poll_ms > 600_000 {
            return invalid(format!(
                "poll wait must be at most 600000 ms, not {}",
                self.poll_ms
            ));
        }
        if self.timeout_ms == 0 {
            return invalid("the default job timeout must be above 0".into());
        }
        let most = skyclaw_api::limits::MAX_OUTPUT_BYTES;
        if !(1..=most).contains(&self.max_output_bytes) {
            return invalid(format!(
                "max output bytes must be 1 to {most} (what a coordinator accepts per stream)"
            ));
        }
        if self
            .sandbox
            .user
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return invalid("the sandbox user is empty".into());
        }
        if let Some(bad) = self.sandbox.read_paths.iter().find(|p| !p.is_absolute()) {
            return invalid(format!(
                "sandbox read path {} is not absolute",
                bad.display()
            ));
        }
        Ok(())
    }

    pub(crate) fn poll_wait(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub(crate) fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

fn machine_hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which outlives the call.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_match_the_design() {
        let config = HostConfig::default();
        config.validate().unwrap();
        assert_eq!(config.allowed_commands, ["automaton", "node", "bash", "sh"]);
        assert_eq!(config.capabilities, ["shell", "automaton"]);
        assert_eq!(config.max_output_bytes, 128_000);
        assert_eq!(config.timeout_ms, 300_000);
        assert_eq!(config.kill_grace_ms, 10_000);
        assert!(!config.name.is_empty());
        assert!(
            config.sandbox.enabled,
            "strangers' jobs are sandboxed by default"
        );
        assert_eq!(config.sandbox.cpu_seconds, 300);
    }

    #[test]
    fn bad_values_are_named() {
        type Breakage = fn(&mut HostConfig);
        let cases: [(Breakage, &str); 8] = [
            (|c| c.max_parallel = 0, "max parallel"),
            (|c| c.heartbeat_ms = 0, "heartbeat"),
            (|c| c.allowed_commands = vec!["sh -c".into()], "sh -c"),
            (|c| c.name = " ".into(), "name"),
            (|c| c.host_id = Some("a/b".into()), "a/b"),
            (|c| c.max_output_bytes = 0, "output"),
            (|c| c.max_output_bytes = 1 << 20, "output"),
            (|c| c.sandbox.read_paths = vec!["lib".into()], "lib"),
        ];
        for (breaks, named) in cases {
            let mut config = HostConfig::default();
            breaks(&mut config);
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(named), "{error:?} should name {named:?}");
        }
    }
}
