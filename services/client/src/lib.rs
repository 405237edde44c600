//! A typed HTTP client for Skyclaw coordinators, used by the host daemon, the
//! `skyclaw` command and the benchmark. It holds a list of coordinator URLs,
//! starts each call at the last one that answered, and moves on to the next
//! when a coordinator cannot be reached or answers 503 (no leader). A 4xx is
//! the server saying no: it comes back as [`Error::Api`] at once, without
//! trying elsewhere. Every call has a timeout, and an enqueue carries an
//! idempotency key (unless [`ClientConfig::idempotency_keys`] is off) so
//! that a retry never makes a second job.
//!
//! Layout:
//! - `error`: [`Error`], keeping refusals apart from outages
//! - `config`: [`ClientConfig`] and URL lists
//! - `calls`: the typed API calls of [`Client`], one per route
//! - `transport`: [`Client`] itself, failover across URLs, retries,
//!   `Retry-After`, reading answers
//! - [`args`]: the `--url`/`--token` flags every client command shares
//! - [`backoff`]: delays with jitter between retries, shared with the host

pub mod args;
pub mod backoff;
mod calls;
mod config;
mod error;
#[cfg(test)]
mod fake_server;
mod transport;

pub use args::{non_empty, ConnectArgs};
pub use backoff::Backoff;
pub use calls::{new_idempotency_key, ListJobs};
pub use config::{parse_url_list, ClientConfig, DEFAULT_URL};
pub use error::{Error, Result};
pub use transport::Client;
