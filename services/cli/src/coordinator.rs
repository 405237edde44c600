//! `skyclaw coordinator`: binds, says where, and serves until a signal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::connect::non_empty;
use crate::logging::LogArgs;
use crate::signals::Shutdown;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Address to listen on [default: 0.0.0.0 with a token; without one,
    /// 127.0.0.1, and only loopback addresses are allowed].
    #[arg(
        long = "host",
        value_name = "ADDRESS",
        env = "SKYCLAW_COORDINATOR_HOST"
    )]
    pub bind_host: Option<String>,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "SKYCLAW_COORDINATOR_PORT", default_value_t = 8787)]
    pub port: u16,
    /// Where RocksDB keeps this node's data [default: .skyclaw/coordinator].
    #[arg(long, env = "SKYCLAW_DB_PATH")]
    pub db_path: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Coordinator settings `skyclaw dev` shares with `skyclaw coordinator`.
/// Unset ones take the coordinator's defaults.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// This node's name, fixed for the life of its data [default: node-1].
    #[arg(long, env = "SKYCLAW_COORDINATOR_NODE_ID")]
    pub node_id: Option<String>,
    /// The other coordinators of the cluster, comma-separated.
    #[arg(
        long = "peer-urls",
        value_name = "URL",
        env = "SKYCLAW_PEER_URLS",
        value_delimiter = ','
    )]
    pub peer_urls: Vec<String>,
    /// The URL peers reach this node at [default: http:// + the bound address].
    #[arg(long, env = "SKYCLAW_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// The admin token (the MVP's shared token); none leaves the API open
    /// on loopback.
    #[arg(long, env = "SKYCLAW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The secret only coordinators hold, the same on each: raft, joins
    /// and hellos need it. Without it, the token serves (compatibility mode).
    #[arg(long, env = "SKYCLAW_PEER_SECRET", hide_env_values = true)]
    pub peer_secret: Option<String>,
    /// Serve the log (head, events, digest) to anyone, with no credential.
    #[arg(long, env = "SKYCLAW_PUBLIC_LOG")]
    pub public_log: bool,
    /// How long a lease lasts without renewal, in ms [default: 60000].
    #[arg(long, env = "SKYCLAW_LEASE_MS")]
    pub lease_ms: Option<u64>,
    /// The largest request body accepted, in bytes [default: 8 MiB].
    #[arg(long, env = "SKYCLAW_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<u64>,
    /// The longest a claim may wait for work, in ms [default: 60000].
    #[arg(long, env = "SKYCLAW_MAX_CLAIM_WAIT_MS")]
    pub max_claim_wait_ms: Option<u64>,
    /// Raft log entries between snapshots [default: 10000].
    #[arg(long, env = "SKYCLAW_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// The longest the log goes unsigned once it grew: the leader has a
    /// new checkpoint signed this often, in ms [default: 1000].
    #[arg(long, env = "SKYCLAW_CHECKPOINT_MS")]
    pub checkpoint_ms: Option<u64>,
    /// New records that make a checkpoint sooner [default: 10000].
    #[arg(long, env = "SKYCLAW_CHECKPOINT_EVERY")]
    pub checkpoint_every: Option<u64>,
    /// How often the raft leader sends heartbeats to the other
    /// coordinators, in ms [default: 100].
    #[arg(long, env = "SKYCLAW_RAFT_HEARTBEAT_MS")]
    pub raft_heartbeat_ms: Option<u64>,
    /// How long a follower waits to hear from a leader before it
    /// campaigns (randomly up to twice this), in ms; a dead leader is
    /// replaced after about three to four times this [default: 400].
    #[arg(long, env = "SKYCLAW_ELECTION_TIMEOUT_MS")]
    pub election_timeout_ms: Option<u64>,
    /// How long a finished job stays in the live state (lists, memory,
    /// its idempotency key) before it is retired, in ms; it can still be
    /// read by id [default: 3600000].
    #[arg(long, env = "SKYCLAW_RETENTION_MS")]
    pub retention_ms: Option<u64>,
}

impl ServerArgs {
    /// The coordinator's configuration: these flags over its defaults.
    pub fn config(&self, db_path: Option<PathBuf>) -> skyclaw_coordinator::Config {
        let mut config = skyclaw_coordinator::Config::default();
        if let Some(node_id) = &self.node_id {
            config.node_id = node_id.clone();
        }
        config.peer_urls = self
            .peer_urls
            .iter()
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
            .collect();
        config.advertise_url = self.advertise_url.clone();
        config.token = non_empty(self.token.clone());
        config.peer_secret = non_empty(self.peer_secret.clone());
        config.public_log = self.public_log;
        if let Some(db_path) = db_path {
            config.db_path = db_path;
        }
        if let Some(lease_ms) = self.lease_ms {
            config.lease_ms = lease_ms;
        }
        if let Some(max_body_bytes) = self.max_body_bytes {
            config.max_body_bytes = max_body_bytes;
        }
        if let Some(max_claim_wait_ms) = self.max_claim_wait_ms {
            config.max_claim_wait_ms = max_claim_wait_ms;
        }
        if let Some(snapshot_every) = self.snapshot_every {
            config.snapshot_every = snapshot_every;
        }
        if let Some(checkpoint_ms) = self.checkpoint_ms {
            config.checkpoint_ms = checkpoint_ms;
        }
        if let Some(checkpoint_every) = self.checkpoint_every {
            config.checkpoint_every = checkpoint_every;
        }
        if let Some(heartbeat_ms) = self.raft_heartbeat_ms {
            config.heartbeat_ms = heartbeat_ms;
        }
        if let Some(election_timeout_ms) = self.election_timeout_ms {
            config.election_timeout_ms = election_timeout_ms;
        }
        if let Some(retention_ms) = self.retention_ms {
            config.retention_ms = retention_ms;
        }
        config
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.server.config(args.db_path.clone());
    config.validate()?;
    let host = listen_host(args.bind_host.as_deref(), config.token.is_some()).await?;
    let shutdown = Shutdown::install()?;
    let listener = bind(&host, args.port).await?;
    announce(listener.local_addr()?)?;
    skyclaw_coordinator::run(config, listener, shutdown.wait()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Where to listen. With a token, anywhere. Without one, every request is
/// trusted (it may enqueue, complete others' jobs, change the membership),
/// so only where no one else can connect: loopback, by default; an
/// address others can reach is refused.
async fn listen_host(given: Option<&str>, has_token: bool) -> anyhow::Result<String> {
    let Some(host) = given else {
        let default = if has_token { "0.0.0.0" } else { "127.0.0.1" };
        return Ok(default.to_string());
    };
    if has_token {
        return Ok(host.to_string());
    }
    let mut addresses = tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .peekable();
    anyhow::ensure!(
        addresses.peek().is_some() && addresses.all(|address| address.ip().is_loopback()),
        "refusing to listen on {host} without a token: anyone who can connect could enqueue \
         jobs, complete other hosts' jobs and change the cluster; set SKYCLAW_TOKEN (or \
         --token), or listen on a loopback address such as 127.0.0.1"
    );
    Ok(host.to_string())
}

pub async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))
}

/// The one line tests and scripts wait for; flushed at once.
pub fn announce(address: SocketAddr) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "skyclaw coordinator listening on http://{address}")?;
    stdout.flush()?;
    Ok(())
}
