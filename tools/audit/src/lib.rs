//! The Skyclaw auditor: replays a cluster's event log and proves it was not
//! altered, for someone who trusts none of the coordinators. It reads the
//! log from a coordinator (page by page over HTTP), a segment file or a
//! directory of them, or a stopped coordinator's data directory; checks the
//! framing, the format versions, the seqs, every hash in the chain and the
//! cluster id; replays every event through `skyclaw_state::State`, whose
//! invariants (one holder per job, live lease epochs, attempts, parallelism)
//! fail loudly on a log no coordinator could have written; verifies every
//! host's receipt; rebuilds the log's Merkle tree and holds it to the
//! checkpoints the coordinators signed; and compares the replayed digest
//! with the views the coordinator serves. Everything found
//! wrong is a [`Finding`] (exit 1); a source that cannot be read is an
//! [`Error`] (exit 2).
//!
//! Layout:
//! - [`auditor`]: [`Auditor`], the per-record core: continuity, replay,
//!   pinned heads
//! - `checkpoint`: the latest signed checkpoint (and the last one verified)
//!   the rebuilt Merkle tree must reach
//! - [`source`]: [`Source`] and the readers of each kind of source
//! - [`verify`]: [`verify`], [`verify_local`] and [`follow`]: a whole run,
//!   with digest comparison and output checks
//! - [`options`]: [`VerifyOptions`], what a run checks and how
//! - `pass`: one run under way, which every source feeds its records
//! - [`report`]: [`Report`], for people and as JSON, and the exit statuses
//! - [`finding`]: [`Finding`], what can be wrong with a log
//! - [`export`]: [`export_segment`], a coordinator's log range to a file
//! - [`generate`]: valid synthetic logs for the benchmark and the tests
//! - [`cli`]: the command line, shared with `skyclaw audit` and
//!   `skyclaw log export`
//! - [`error`]: [`Error`], why a source could not be read

pub mod auditor;
pub(crate) mod checkpoint;
pub mod cli;
pub mod error;
pub mod export;
pub mod finding;
pub mod generate;
pub mod options;
pub(crate) mod pass;
pub mod report;
pub mod source;
pub mod verify;

pub use auditor::{Auditor, OutputRef};
pub use error::{Error, Result};
pub use export::{export_segment, Exported};
pub use finding::{Finding, FindingKind, Stop};
pub use options::VerifyOptions;
pub use report::{Comparison, Report, EXIT_UNREADABLE, EXIT_VERIFIED, EXIT_VIOLATION};
pub use source::Source;
pub use verify::{follow, verify, verify_local, Batch, FollowEvent};
