//! `skyclaw dev`: a single-node coordinator and a host in one process, with
//! everything kept under one directory so that a rerun picks up where the
//! last run stopped. On a signal the host winds down first (its results
//! still need the coordinator), then the coordinator.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use skyclaw_client::{Client, ClientConfig};
use skyclaw_host::HostConfig;
use tokio::sync::watch;

use crate::connect::non_empty;
use crate::coordinator::{announce, bind, ServerArgs};
use crate::host::{bind_metrics, HostArgs};
use crate::logging::LogArgs;
use crate::signals::Shutdown;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the coordinator's data, the host's id and the token are kept.
    #[arg(long, env = "SKYCLAW_DEV_DIR", default_value = ".skyclaw/dev")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(
        long = "host",
        value_name = "ADDRESS",
        env = "SKYCLAW_COORDINATOR_HOST",
        default_value = "127.0.0.1"
    )]
    pub bind_host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "SKYCLAW_COORDINATOR_PORT", default_value_t = 8787)]
    pub port: u16,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

const TOKEN_FILE: &str = "token";
const PEER_SECRET_FILE: &str = "peer-secret";

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let token = match non_empty(args.server.token.clone()) {
        Some(token) => token,
        None => load_or_create_secret(&args.dir.join(TOKEN_FILE))?,
    };
    let peer_secret = match non_empty(args.server.peer_secret.clone()) {
        Some(secret) => secret,
        None => load_or_create_secret(&args.dir.join(PEER_SECRET_FILE))?,
    };
    // The full trust model, with the coordinator approving its own host:
    // the host holds no admin token, only its key and then its session.
    let mut coordinator_config = args.server.config(Some(args.dir.join("coordinator")));
    coordinator_config.token = Some(token.clone());
    coordinator_config.peer_secret = Some(peer_secret);
    // Only while no one else can reach it: on an address others can,
    // strangers' hosts would be approved too.
    let approves_its_host = is_loopback(&args.bind_host);
    coordinator_config.approve_hosts = approves_its_host;
    coordinator_config.validate()?;
    let host_config = args.host.config(HostConfig {
        state_dir: args.dir.join("host"),
        ..HostConfig::default()
    });
    host_config.validate()?;

    let shutdown = Shutdown::install()?;
    let listener = bind(&args.bind_host, args.port).await?;
    let address = listener.local_addr()?;
    let url = if address.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", address.port())
    } else {
        format!("http://{address}")
    };
    announce(address)?;
    let host_metrics = bind_metrics(&host_config).await?;
    print_instructions(&args.dir, &url, &token, &host_config)?;

    let (stop_coordinator, coordinator_stopping) = watch::channel(false);
    let mut coordinator = tokio::spawn(skyclaw_coordinator::run(
        coordinator_config,
        listener,
        stopped(coordinator_stopping),
    ));
    // On loopback the coordinator approves its own host, which holds no
    // admin token; elsewhere the host registers with the token instead.
    let host_token = (!approves_its_host).then(|| token.clone());
    let client = Client::new(ClientConfig::new(vec![url], host_token))?;
    let (stop_host, host_stopping) = watch::channel(false);
    let mut host = tokio::spawn(skyclaw_host::run(
        host_config,
        client,
        host_metrics,
        stopped(host_stopping),
    ));

    tokio::select! {
        () = shutdown.wait() => {}
        ended = &mut coordinator => {
            let _ = stop_host.send(true);
            let _ = host.await;
            ended.context("the coordinator task failed")??;
            anyhow::bail!("the coordinator stopped unexpectedly");
        }
        ended = &mut host => {
            let _ = stop_coordinator.send(true);
            let _ = coordinator.await;
            ended.context("the host task failed")??;
            anyhow::bail!("the host stopped unexpectedly");
        }
    }
    let _ = stop_host.send(true);
    let host_result = host.await.context("the host task failed")?;
    let _ = stop_coordinator.send(true);
    coordinator.await.context("the coordinator task failed")??;
    host_result?;
    Ok(ExitCode::SUCCESS)
}

async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn print_instructions(dir: &Path, url: &str, token: &str, host: &HostConfig) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "skyclaw dev: data in {dir}; a host runs here with {slots} slot(s) ({capabilities}).\n\
         Use it from another shell with:\n  \
         export SKYCLAW_COORDINATOR_URL={url}\n  \
         export SKYCLAW_TOKEN={token}\n\
         The dashboard is at {url}/ui (sign in with the token).\n\
         Press Ctrl-C to stop; running again keeps the data.",
        dir = dir.display(),
        slots = host.max_parallel,
        capabilities = host.capabilities.join(","),
    )?;
    stdout.flush()?;
    Ok(())
}

/// The dev token: read from `path`, or made up and written there (readable
/// by its owner only) so that a rerun keeps the same one.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A secret kept in `path` (mode 0600), made on first use.
fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_dev_token_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let first = load_or_create_secret(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create_secret(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
