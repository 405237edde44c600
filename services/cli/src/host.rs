//! `skyclaw host`: the host daemon, its settings from flags and
//! environment over [`HostConfig`]'s defaults.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use skyclaw_host::{HostConfig, SandboxConfig};
use tokio::net::TcpListener;

use crate::connect::ClientArgs;
use crate::logging::LogArgs;
use crate::signals::Shutdown;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Host settings, shared with `skyclaw dev`. Unset ones keep the defaults
/// documented on [`HostConfig`].
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// Name shown in `skyclaw hosts list` [default: the hostname].
    #[arg(long, env = "SKYCLAW_HOST_NAME")]
    pub name: Option<String>,
    /// Register without a key, under this id, as the MVP's hosts did
    /// (needs the admin token) [default: the id of the host's own key].
    #[arg(long, env = "SKYCLAW_HOST_ID")]
    pub host_id: Option<String>,
    /// Where the host keeps its key [default: .skyclaw/host].
    #[arg(long, env = "SKYCLAW_HOST_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// An enrollment key from `skyclaw hosts enroll-token`: approved at once.
    #[arg(long, env = "SKYCLAW_ENROLL_KEY", hide_env_values = true)]
    pub enroll_key: Option<String>,
    /// Use the key of this OpenClaw device identity file (usually
    /// ~/.openclaw/identity/device.json): the host's id is its device id.
    #[arg(long, env = "SKYCLAW_OPENCLAW_IDENTITY")]
    pub openclaw_identity: Option<PathBuf>,
    /// Capabilities offered, comma-separated [default: shell,automaton].
    #[arg(long, env = "SKYCLAW_CAPABILITIES", value_delimiter = ',')]
    pub capabilities: Option<Vec<String>>,
    /// Commands shell jobs may run, matched exactly [default: automaton,node,bash,sh].
    #[arg(long, env = "SKYCLAW_ALLOWED_COMMANDS", value_delimiter = ',')]
    pub allowed_commands: Option<Vec<String>>,
    /// Jobs run at once [default: 1].
    #[arg(long, env = "SKYCLAW_MAX_PARALLEL")]
    pub max_parallel: Option<u32>,
    /// How long each claim waits for work at the coordinator, in ms [default: 20000].
    #[arg(long, env = "SKYCLAW_POLL_MS")]
    pub poll_ms: Option<u64>,
    /// Interval between heartbeats, in ms [default: 5000].
    #[arg(long, env = "SKYCLAW_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Time limit of jobs that set none, in ms [default: 300000].
    #[arg(long, env = "SKYCLAW_TIMEOUT_MS")]
    pub timeout_ms: Option<u64>,
    /// Bytes kept of each of a job's stdout and stderr [default: 128000].
    #[arg(long, env = "SKYCLAW_MAX_OUTPUT_BYTES")]
    pub max_output_bytes: Option<usize>,
    /// Program that automaton-run jobs run [default: automaton].
    #[arg(long, env = "SKYCLAW_AUTOMATON_COMMAND")]
    pub automaton_command: Option<String>,
    /// Between SIGTERM and SIGKILL when stopping a job, in ms [default: 10000].
    #[arg(long, env = "SKYCLAW_KILL_GRACE_MS")]
    pub kill_grace_ms: Option<u64>,
    /// On shutdown, how long running jobs may finish, in ms [default: 30000].
    #[arg(long, env = "SKYCLAW_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// Sandbox jobs: own directory, Landlock, no_new_privs, limits [default: on].
    #[arg(long, env = "SKYCLAW_SANDBOX", value_parser = on_off)]
    pub sandbox: Option<bool>,
    /// Run jobs as this unprivileged user; the host must run as root [default: the host's user].
    #[arg(long, env = "SKYCLAW_SANDBOX_USER")]
    pub sandbox_user: Option<String>,
    /// Paths jobs may read and execute besides the system's, comma-separated.
    #[arg(long, env = "SKYCLAW_SANDBOX_READ_PATHS", value_delimiter = ',')]
    pub sandbox_read_paths: Option<Vec<PathBuf>>,
    /// CPU seconds per job process; 0 for none [default: 300].
    #[arg(long, env = "SKYCLAW_LIMIT_CPU_SECONDS")]
    pub limit_cpu_seconds: Option<u64>,
    /// Address space per job process, in MiB; 0 for none [default: 4096].
    #[arg(long, env = "SKYCLAW_LIMIT_MEMORY_MB")]
    pub limit_memory_mb: Option<u64>,
    /// Processes of the user jobs run as; 0 for none [default: 1024].
    #[arg(long, env = "SKYCLAW_LIMIT_PROCESSES")]
    pub limit_processes: Option<u64>,
    /// Largest file a job may write, in MiB; 0 for none [default: 1024].
    #[arg(long, env = "SKYCLAW_LIMIT_FILE_SIZE_MB")]
    pub limit_file_size_mb: Option<u64>,
    /// Open files per job process; 0 for none [default: 1024].
    #[arg(long, env = "SKYCLAW_LIMIT_OPEN_FILES")]
    pub limit_open_files: Option<u64>,
    /// Serve the host's metrics (GET /metrics, no token) at this address,
    /// e.g. 127.0.0.1:9187; port 0 picks a free one [default: none].
    #[arg(long, env = "SKYCLAW_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// `on` or `off` (also `true`/`false`, `1`/`0`).
fn on_off(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected on or off, not {value:?}")),
    }
}

impl HostArgs {
    /// These flags over `base`.
    pub fn config(&self, base: HostConfig) -> HostConfig {
        let trimmed = |list: &Vec<String>| -> Vec<String> {
            list.iter()
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect()
        };
        HostConfig {
            name: self.name.clone().unwrap_or(base.name),
            host_id: self.host_id.clone().or(base.host_id),
            state_dir: self.state_dir.clone().unwrap_or(base.state_dir),
            enroll_key: self.enroll_key.clone().or(base.enroll_key),
            openclaw_identity: self.openclaw_identity.clone().or(base.openclaw_identity),
            capabilities: self
                .capabilities
                .as_ref()
                .map(trimmed)
                .unwrap_or(base.capabilities),
            allowed_commands: self
                .allowed_commands
                .as_ref()
                .map(trimmed)
                .unwrap_or(base.allowed_commands),
            max_parallel: self.max_parallel.unwrap_or(base.max_parallel),
            poll_ms: self.poll_ms.unwrap_or(base.poll_ms),
            heartbeat_ms: self.heartbeat_ms.unwrap_or(base.heartbeat_ms),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            max_output_bytes: self.max_output_bytes.unwrap_or(base.max_output_bytes),
            automaton_command: self
                .automaton_command
                .clone()
                .unwrap_or(base.automaton_command),
            kill_grace_ms: self.kill_grace_ms.unwrap_or(base.kill_grace_ms),
            shutdown_grace_ms: self.shutdown_grace_ms.unwrap_or(base.shutdown_grace_ms),
            sandbox: self.sandbox_config(base.sandbox),
            metrics_addr: self.metrics_addr.or(base.metrics_addr),
        }
    }

    fn sandbox_config(&self, base: SandboxConfig) -> SandboxConfig {
        SandboxConfig {
            enabled: self.sandbox.unwrap_or(base.enabled),
            user: self
                .sandbox_user
                .clone()
                .filter(|user| !user.trim().is_empty())
                .or(base.user),
            read_paths: self
                .sandbox_read_paths
                .as_ref()
                .map(|paths| {
                    paths
                        .iter()
                        .filter(|p| !p.as_os_str().is_empty())
                        .cloned()
                        .collect()
                })
                .unwrap_or(base.read_paths),
            cpu_seconds: self.limit_cpu_seconds.unwrap_or(base.cpu_seconds),
            memory_mb: self.limit_memory_mb.unwrap_or(base.memory_mb),
            processes: self.limit_processes.unwrap_or(base.processes),
            file_size_mb: self.limit_file_size_mb.unwrap_or(base.file_size_mb),
            open_files: self.limit_open_files.unwrap_or(base.open_files),
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.host.config(HostConfig::default());
    config.validate()?;
    let client = args.client.connect()?;
    let shutdown = Shutdown::install()?;
    let metrics = bind_metrics(&config).await?;
    skyclaw_host::run(config, client, metrics, shutdown.wait()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Binds the metrics address, if one is set, and says where it listens
/// (the port when it was 0) in one line on stdout.
pub async fn bind_metrics(config: &HostConfig) -> anyhow::Result<Option<TcpListener>> {
    let Some(address) = config.metrics_addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot serve metrics on {address}"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "skyclaw host metrics on http://{}/metrics",
        listener.local_addr()?
    )?;
    stdout.flush()?;
    Ok(Some(listener))
}
