//! The Skyclaw host daemon: what an OpenClaw owner runs to lend their
//! machine. It registers under a stable id, claims jobs with long polls up
//! to its number of slots, runs each one as a process it fully controls
//! (allow-listed command, an environment it builds, a sandbox, every
//! descendant tracked, time limit, bounded output), renews leases with
//! heartbeats and stops a job whose lease it cannot renew, acts on
//! cancellations, reports results until they are acknowledged, and shuts
//! down without losing track of what it holds. Its own memory is closed to
//! its jobs (the process is not dumpable). `skyclaw host` and `skyclaw dev`
//! call [`run`].
//!
//! Layout:
//! - [`config`]: [`HostConfig`], every setting with its default
//! - [`identity`]: the host id kept on disk
//! - [`daemon`]: registration and shutdown; under it the claim loop and
//!   slots, heartbeats, each held lease and its clock, and reports
//! - [`runner`]: one job's process, from checks to exit status: its policy
//!   (what may run, how, with what time limit) apart from its process-group
//!   mechanics, and the [`RunResult`] a run ends in
//! - [`sandbox`]: the directory, Landlock rules and limits a job runs under
//! - [`reaper`]: every process a job starts, found and killed when it ends
//! - [`output`]: bounded capture of stdout and stderr
//! - [`metrics`]: jobs by outcome, durations and slots, and the server
//!   that shows them (`--metrics-addr`)

pub mod config;
pub mod daemon;
pub mod identity;
pub mod metrics;
pub mod output;
pub mod reaper;
pub mod runner;
pub mod sandbox;

use std::path::PathBuf;

pub use config::{HostConfig, SandboxConfig};
pub use daemon::run;
pub use runner::{RunResult, Runner, StopReason};

/// What can stop the host daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or malformed.
    #[error("invalid host configuration: {0}")]
    Config(String),
    /// The daemon could not take the process-wide measures that keep jobs
    /// from reaching it.
    #[error("cannot protect the daemon from its jobs: {0}")]
    Protect(std::io::Error),
    /// The host id file could not be read or written.
    #[error("host id file {}: {source}", path.display())]
    Identity {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A coordinator refused the host (a wrong token, say).
    #[error("coordinator: {0}")]
    Client(#[from] skyclaw_client::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
