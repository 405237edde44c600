//! The one error type of the crate. Every way a log can be wrong has its own
//! variant, and those about a record name its seq, so an auditor's report says
//! where the log went wrong and how.

use crate::segment::MAX_RECORD_LEN;

/// What went wrong reading, verifying or writing the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record's hash is not the hash of its contents under the expected
    /// cluster id: the record was altered, or sealed for another cluster.
    #[error(
        "record {seq}: hash does not match its contents (altered, or sealed for another cluster)"
    )]
    HashMismatch { seq: u64 },

    /// The record is intact but its `prev_hash` is not the hash of the record
    /// before it (or, for seq 1, the cluster's genesis hash).
    #[error("record {seq}: prev_hash does not link to the record before it")]
    ChainBroken { seq: u64 },

    /// Records are missing, repeated or out of order.
    #[error("expected record {expected}, found record {found} (a record is missing, repeated or out of order)")]
    SeqGap { expected: u64, found: u64 },

    /// The log belongs to another cluster than the one expected.
    #[error("record {seq}: log belongs to cluster {found:?}, expected {expected:?}")]
    ClusterMismatch {
        seq: u64,
        expected: String,
        found: String,
    },

    /// The input ended before the segment did: inside its header, inside a
    /// frame, or before the trailer. Expected when a copy or a transfer was
    /// cut short, so it is kept apart from tampering; every record returned
    /// before it was verified.
    #[error("input ends at byte {offset} before the segment is complete{}", verified_through(*.after_seq))]
    Truncated {
        /// How many bytes the input held.
        offset: u64,
        /// The last record verified, or the anchor the segment continues
        /// from; `None` when the header itself is incomplete.
        after_seq: Option<u64>,
    },

    /// Bytes that cannot be what they claim to be: an impossible length, an
    /// unknown frame tag, a header whose check fails, a trailer that disagrees
    /// with the records before it.
    #[error("corrupt{}: {reason}", at_record(*.seq))]
    Corrupt {
        /// The record being read when the damage was found, if any.
        seq: Option<u64>,
        reason: String,
    },

    /// The input does not start with the segment magic.
    #[error("not a Skyclaw log segment (bad magic)")]
    BadMagic,

    /// A version this build does not know how to read.
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion { what: &'static str, version: u32 },

    /// A record too large for a segment frame.
    #[error("record {seq} is {len} bytes; a segment frame holds at most {MAX_RECORD_LEN}")]
    RecordTooLarge { seq: u64, len: u64 },

    /// A cluster id too long for a segment header.
    #[error(
        "cluster id is {len} bytes; a segment header holds at most {}",
        u16::MAX
    )]
    ClusterIdTooLong { len: usize },

    /// Event bytes that do not decode.
    #[error("event does not decode: {0}")]
    Event(String),

    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

fn verified_through(after_seq: Option<u64>) -> String {
    match after_seq {
        Some(seq) => format!(" (verified through record {seq})"),
        None => " (inside its header)".to_owned(),
    }
}

fn at_record(seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!(" at record {seq}"),
        None => String::new(),
    }
}
