//! The Skyclaw coordinator: serves the HTTP API, keeps the authoritative
//! record in RocksDB, and replicates it with openraft. A single coordinator
//! is a one-member raft cluster: the same code path as three.
//!
//! Layout:
//! - [`coordinator`]: a running coordinator: store, raft handle, views
//! - [`access`]: who is calling (credentials, keys, host sessions) and
//!   whether each route's rule lets them
//! - what it does, by resource (typed methods on `Coordinator`):
//!   [`jobs`], [`hosts`], [`keys`], [`log`], [`proofs`], [`membership`];
//!   their error, [`failure`]
//! - [`merkle`]: the log's Merkle tree on disk; [`checkpoints`]: signing
//!   its head with the other voters
//! - [`writes`]: the write path: refusals before raft, then the proposer
//! - [`proposer`]: group commit of commands into raft entries
//! - [`http`]: the API, one file per resource: parse, call, convert
//! - [`metrics`]: what the node measures, and `GET /metrics`'s text
//! - [`config`]: the documented, validated configuration
//! - [`clock`]: this node's clock, for stamps and liveness
//! - [`store`]: the RocksDB instance and its column families
//! - [`log_store`]: the raft log (durable appends and votes)
//! - [`machine`]: the state machine: decide, seal, apply
//! - [`materialized`]: what is applied, in memory, and loading it
//! - [`snapshot`]: building and installing snapshots
//! - [`raft`]: openraft type configuration, proposals and answers
//! - [`network`]: raft RPCs to peers over HTTP
//! - [`bootstrap`]: forming or joining the cluster from configured peers
//! - [`sweeper`]: expires leases, on the leader
//! - [`retirement`]: retires jobs that ended long enough ago, on the leader
//! - [`lease_timers`]: when each live lease runs out by this node's clock

pub mod access;
pub mod bootstrap;
pub mod checkpoints;
pub mod clock;
pub mod config;
pub mod coordinator;
mod error;
pub mod failure;
pub mod hosts;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod lease_timers;
pub mod log;
pub mod log_store;
pub mod machine;
pub mod materialized;
pub mod membership;
pub mod merkle;
pub mod metrics;
pub mod network;
pub mod proofs;
pub mod proposer;
pub mod raft;
pub mod retirement;
pub mod snapshot;
pub mod store;
pub mod sweeper;
pub mod writes;

use std::future::Future;
use std::time::Duration;

pub use config::Config;
pub use coordinator::Coordinator;
pub use error::{Error, Result};
pub use failure::Failure;

/// How long requests in flight may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Runs a coordinator on an already-bound listener until `shutdown`
/// completes.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the listener's address".into(),
        source,
    })?;
    let advertise_url = config.advertise_url.clone().unwrap_or_else(|| {
        let host = if address.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            address.ip().to_string()
        };
        format!("http://{host}:{}", address.port())
    });
    let coordinator = Coordinator::start(config, advertise_url).await?;
    if !coordinator.config.peer_urls.is_empty() {
        tokio::spawn(bootstrap::run(coordinator.clone()));
    }
    let sweeper = tokio::spawn(sweeper::run(coordinator.clone()));
    let retirement = tokio::spawn(retirement::run(coordinator.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let signalled = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let server = http::serve(coordinator.clone(), listener, signalled());
    // Graceful shutdown waits for requests in flight, long-polling claims
    // among them; past a short grace they are cut off.
    let grace = async {
        signalled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = server => {}
        _ = grace => tracing::info!("requests still open after the shutdown grace were cut off"),
    }
    sweeper.abort();
    retirement.abort();
    // Their handles on the store are gone once the aborted tasks have ended.
    let _ = sweeper.await;
    let _ = retirement.await;
    coordinator.shutdown().await;
    Ok(())
}
