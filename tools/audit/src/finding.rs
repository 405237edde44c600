//! What the auditor finds wrong in a log it could read: one [`Finding`],
//! naming the seq it concerns, its [`FindingKind`] and a reason a person can
//! act on. A finding ends a run with exit status 1. This module also sorts
//! the log-format crate's errors into findings (the log is wrong) and
//! [`Error`]s (the source could not be read).

use std::fmt;

use serde::Serialize;
use skyclaw_log_format::Error as FormatError;

use crate::Error;

/// The ways a log can be wrong, from the bytes up to the views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingKind {
    /// The log ends inside a record or before its trailer: a copy or a
    /// transfer was cut short. Kept apart from tampering; `seq` is the last
    /// record verified.
    Truncated,
    /// A record is missing, repeated or out of order; `seq` is the one
    /// expected.
    SeqGap,
    /// A record's hash does not match its contents: altered, or sealed for
    /// another cluster.
    HashMismatch,
    /// An intact record whose `prev_hash` does not name the record before.
    ChainBroken,
    /// Part of the log names another cluster.
    ClusterMismatch,
    /// Bytes that cannot be what they claim (a damaged header or frame, a
    /// trailer that disagrees with the records).
    Corrupt,
    /// A sealed event that does not decode.
    UndecodableEvent,
    /// An event that breaks an invariant of the job system when replayed.
    Invariant,
    /// The record at a pinned seq, or a coordinator's head, has another hash
    /// than expected, or the log ends before it.
    HeadMismatch,
    /// The replayed views differ from the ones the coordinator keeps.
    DigestMismatch,
    /// Job output whose content does not match the hash the log recorded,
    /// or that is missing.
    BlobMismatch,
    /// A completion whose receipt the host that held the lease did not
    /// sign, or that says something else than the completion.
    Receipt,
    /// A checkpoint that does not verify, or whose tree head the log's own
    /// Merkle tree and chain do not reach: a rewritten log, or a fork.
    Checkpoint,
}

impl FindingKind {
    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            FindingKind::Truncated => "truncated",
            FindingKind::SeqGap => "record missing, repeated or out of order",
            FindingKind::HashMismatch => "hash mismatch",
            FindingKind::ChainBroken => "chain broken",
            FindingKind::ClusterMismatch => "another cluster",
            FindingKind::Corrupt => "corrupt",
            FindingKind::UndecodableEvent => "undecodable event",
            FindingKind::Invariant => "invariant violated",
            FindingKind::HeadMismatch => "head mismatch",
            FindingKind::DigestMismatch => "digest mismatch",
            FindingKind::BlobMismatch => "blob mismatch",
            FindingKind::Receipt => "receipt does not verify",
            FindingKind::Checkpoint => "checkpoint mismatch",
        }
    }
}

/// One thing wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The record concerned, when there is one.
    pub seq: Option<u64>,
    pub reason: String,
}

impl Finding {
    pub fn new(kind: FindingKind, seq: Option<u64>, reason: impl Into<String>) -> Finding {
        Finding {
            kind,
            seq,
            reason: reason.into(),
        }
    }

    /// Whether this is the tail of a log cut short rather than a log
    /// altered.
    pub fn is_truncation(&self) -> bool {
        self.kind == FindingKind::Truncated
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}: {}", self.kind.describe(), self.reason),
            None => write!(f, "{}: {}", self.kind.describe(), self.reason),
        }
    }
}

/// Why a pass over a log stopped early: something found wrong in it, or
/// something that kept it from being read.
#[derive(Debug)]
pub enum Stop {
    Finding(Finding),
    Error(Error),
}

impl From<Finding> for Stop {
    fn from(finding: Finding) -> Stop {
        Stop::Finding(finding)
    }
}

impl From<Error> for Stop {
    fn from(error: Error) -> Stop {
        Stop::Error(error)
    }
}

/// Sorts an error from reading or verifying `name` (a file, a page) into a
/// finding about the log or an error about the source.
pub(crate) fn classify(name: &str, error: FormatError) -> Stop {
    let finding = |kind, seq| Stop::Finding(Finding::new(kind, seq, error.to_string()));
    match error {
        FormatError::HashMismatch { seq } => finding(FindingKind::HashMismatch, Some(seq)),
        FormatError::ChainBroken { seq } => finding(FindingKind::ChainBroken, Some(seq)),
        FormatError::SeqGap { expected, .. } => finding(FindingKind::SeqGap, Some(expected)),
        FormatError::ClusterMismatch { seq, .. } => {
            finding(FindingKind::ClusterMismatch, Some(seq))
        }
        FormatError::Truncated {
            after_seq: Some(seq),
            ..
        } => finding(FindingKind::Truncated, Some(seq)),
        FormatError::Corrupt { seq, .. } => finding(FindingKind::Corrupt, seq),
        FormatError::Event(_) => finding(FindingKind::UndecodableEvent, None),
        FormatError::Truncated {
            after_seq: None, ..
        } => Stop::Error(Error::NotALog {
            name: name.to_owned(),
            reason: "ends before a complete segment header (empty, or cut short at its start)"
                .into(),
        }),
        FormatError::BadMagic => Stop::Error(Error::NotALog {
            name: name.to_owned(),
            reason: "not a Skyclaw log segment (it does not start with the segment magic)".into(),
        }),
        FormatError::UnsupportedVersion { what, version } => {
            Stop::Error(Error::UnsupportedVersion {
                what: name.to_owned(),
                part: what,
                version,
            })
        }
        FormatError::Io(source) => Stop::Error(Error::io(format!("reading {name}"), source)),
        FormatError::RecordTooLarge { .. } | FormatError::ClusterIdTooLong { .. } => {
            Stop::Error(Error::NotALog {
                name: name.to_owned(),
                reason: error.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(error: FormatError) -> Option<(FindingKind, Option<u64>)> {
        match classify("input", error) {
            Stop::Finding(finding) => Some((finding.kind, finding.seq)),
            Stop::Error(_) => None,
        }
    }

    #[test]
    fn log_damage_is_a_finding_at_its_seq() {
        use FindingKind::*;
        let cases = [
            (
                FormatError::HashMismatch { seq: 4 },
                (HashMismatch, Some(4)),
            ),
            (FormatError::ChainBroken { seq: 5 }, (ChainBroken, Some(5))),
            (
                FormatError::SeqGap {
                    expected: 6,
                    found: 8,
                },
                (SeqGap, Some(6)),
            ),
            (
                FormatError::Truncated {
                    offset: 900,
                    after_seq: Some(7),
                },
                (Truncated, Some(7)),
            ),
            (
                FormatError::Corrupt {
                    seq: None,
                    reason: "header".into(),
                },
                (Corrupt, None),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(kind_of(error), Some(expected));
        }
    }

    #[test]
    fn what_is_not_a_log_is_an_error() {
        for error in [
            FormatError::BadMagic,
            FormatError::Truncated {
                offset: 3,
                after_seq: None,
            },
            FormatError::UnsupportedVersion {
                what: "segment",
                version: 2,
            },
        ] {
            assert_eq!(kind_of(error), None);
        }
    }
}
