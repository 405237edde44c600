//! The Skyclaw domain, pure: no clock, no randomness, no I/O.
//!
//! A [`Command`] is what a request asks for. [`State::decide`] turns it into
//! the [`Event`]s that follow (or a [`Rejection`], which changes nothing), and
//! [`State::apply`] folds each event into the views. Both are deterministic,
//! so every coordinator, and every auditor replaying the log, reaches the same
//! views and the same [`State::digest`].
//!
//! Layout:
//! - [`clock`]: the log's clock, advanced by the stamps on proposals
//! - [`command`]: commands (a completion's [`JobReport`]), decisions (the
//!   events, their blobs and what is [`Affected`]), rejections
//! - [`view`]: the host and job records the state keeps
//! - [`state`]: `State`, its indexes and queries; in its submodules
//!   [`state::decide`], [`state::apply`] (with the invariants) and
//!   [`state::digest`]

pub mod clock;
pub mod command;
pub mod state;
pub mod view;

pub use clock::LogClock;
pub use command::{Affected, Blob, Command, Decision, HostKey, JobReport, Rejection};
pub use skyclaw_log_format::event::{BlobRef, Event, Hash32, JobSpec, Payload};
pub use state::{State, Violation};
pub use view::{HostAccess, HostView, JobOutcome, JobStatus, JobView, KeyView, Lease};

use sha2::{Digest, Sha256};

/// Attempts a job gets when the enqueuer does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most attempts a job may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// The most jobs one host may run at once.
pub const MAX_PARALLEL_LIMIT: u32 = 1024;

/// The id of the host whose ed25519 public key is `public_key`: the hex
/// SHA-256 of its 32 bytes, as OpenClaw derives a device id, so a host's
/// id and its OpenClaw device id are one, and no one registers under an
/// id whose key they do not hold.
pub fn host_id_for(public_key: &Hash32) -> String {
    hex::encode(Sha256::digest(public_key.0))
}
