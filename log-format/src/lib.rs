//! The bytes of the Skyclaw event log: the events, the records that seal them
//! into a BLAKE3 hash chain, and the segments that carry runs of records
//! between nodes and to auditors. The crate has no async runtime and no
//! database, so an auditor can verify a log with it alone; `FORMAT.md` beside
//! it specifies every byte.
//!
//! # Layout
//!
//! * [`event`]: the [`Event`] enum and its versioned MessagePack encoding.
//! * [`record`]: a [`Record`], one event sealed at its place in the chain,
//!   its fixed binary layout, and the [`ChainHead`] it makes.
//! * [`chain`]: [`ChainVerifier`], which checks a run of records link up.
//! * [`segment`]: [`SegmentWriter`] and [`SegmentReader`], the portable file
//!   (and HTTP body) format for a run of records.
//! * [`receipt`]: the [`Receipt`] a host signs when it completes a job.
//! * [`tree`]: the log's RFC 6962 Merkle [`Tree`] over the records.
//! * [`checkpoint`]: signed tree heads ([`TreeHead`]) as C2SP notes.
//! * [`error`]: the crate's [`Error`], one variant per way a log can be wrong.

pub mod chain;
pub mod checkpoint;
pub mod error;
pub mod event;
pub mod receipt;
pub mod record;
pub mod segment;
#[cfg(test)]
mod testing;
pub mod tree;

pub use chain::ChainVerifier;
pub use checkpoint::{LogKey, TreeHead};
pub use error::{Error, Result};
pub use event::{BlobRef, Completion, Event, Hash32, JobSpec, Payload, EVENT_VERSION};
pub use receipt::{Receipt, ReceiptError, ReceiptKey, ReceiptSeal, Sig64};
pub use record::{genesis_hash, ChainHead, Origin, Record, RECORD_HEADER_LEN, RECORD_VERSION};
pub use segment::{
    read_segment, write_segment, Segment, SegmentHeader, SegmentReader, SegmentTrailer,
    SegmentWriter, MAX_RECORD_LEN, SEGMENT_MAGIC, SEGMENT_VERSION,
};
pub use tree::Tree;
