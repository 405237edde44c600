//! What a verification concluded, for people and for machines: a
//! [`Report`] prints as a short text and serializes to JSON, and says which
//! exit status it stands for.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use skyclaw_log_format::{ChainHead, Hash32};

use crate::auditor::Auditor;
use crate::finding::Finding;

/// Exit status: the log verified.
pub const EXIT_VERIFIED: u8 = 0;
/// Exit status: something is wrong with the log.
pub const EXIT_VIOLATION: u8 = 1;
/// Exit status: the source could not be read, or the command line is wrong.
pub const EXIT_UNREADABLE: u8 = 2;

/// The replayed digest set against someone else's at the same seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// Whose digest: a coordinator's, or a data directory's stored views.
    pub against: String,
    pub seq: u64,
    /// Their digest.
    pub digest: Hash32,
    pub agrees: bool,
}

/// The outcome of one verification.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `verified` or `violation`.
    pub status: &'static str,
    pub source: String,
    pub cluster_id: Option<String>,
    /// Where the verified records start from when not at genesis: a
    /// snapshot anchor, or the head a segment continues, taken on trust.
    pub anchor: Option<ChainHead>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Records verified (and replayed, from genesis).
    pub events: u64,
    pub head_hash: Option<Hash32>,
    /// Whether the events were replayed through the state's invariants.
    pub replayed: bool,
    /// The replayed state's digest at `last_seq`.
    pub digest: Option<Hash32>,
    pub comparison: Option<Comparison>,
    #[serde(rename = "durationMs")]
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    pub events_per_second: u64,
    /// What is wrong, if anything: the first problem found.
    pub finding: Option<Finding>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

impl Report {
    pub(crate) fn new(
        source: String,
        auditor: Option<&Auditor>,
        comparison: Option<Comparison>,
        notes: Vec<String>,
        started: Instant,
        finding: Option<Finding>,
    ) -> Report {
        let events = auditor.map_or(0, Auditor::verified);
        let digest = auditor.and_then(Auditor::digest);
        let duration = started.elapsed();
        let seconds = duration.as_secs_f64();
        Report {
            status: if finding.is_some() {
                "violation"
            } else {
                "verified"
            },
            source,
            cluster_id: auditor.map(|a| a.cluster_id().to_owned()),
            anchor: auditor.map(Auditor::start).filter(|start| start.seq > 0),
            first_seq: auditor
                .filter(|a| a.verified() > 0)
                .map(|a| a.start().next_seq()),
            last_seq: auditor.filter(|a| a.verified() > 0).map(|a| a.head().seq),
            events,
            head_hash: auditor.filter(|a| a.verified() > 0).map(|a| a.head().hash),
            replayed: auditor.is_some_and(|a| a.state().is_some() && a.verified() > 0),
            digest,
            comparison,
            duration,
            events_per_second: if seconds > 0.0 {
                (events as f64 / seconds) as u64
            } else {
                0
            },
            finding,
            notes,
        }
    }

    /// The exit status this report stands for.
    pub fn exit_code(&self) -> u8 {
        if self.finding.is_some() {
            EXIT_VIOLATION
        } else {
            EXIT_VERIFIED
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "source:    {}", self.source)?;
        if let Some(cluster_id) = &self.cluster_id {
            writeln!(f, "cluster:   {cluster_id}")?;
        }
        match &self.anchor {
            Some(anchor) => writeln!(
                f,
                "start:     after record {} ({}), taken on trust",
                anchor.seq, anchor.hash
            )?,
            None if self.cluster_id.is_some() => writeln!(f, "start:     genesis")?,
            None => {}
        }
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => writeln!(
                f,
                "events:    {} verified, records {first} to {last}",
                self.events
            )?,
            _ => writeln!(f, "events:    none verified")?,
        }
        if let Some(hash) = &self.head_hash {
            writeln!(f, "head:      {hash}")?;
        }
        if let Some(digest) = &self.digest {
            writeln!(f, "digest:    {digest}")?;
        }
        if let Some(comparison) = &self.comparison {
            let verdict = if comparison.agrees {
                "agrees with"
            } else {
                "DIFFERS from"
            };
            writeln!(
                f,
                "compared:  {verdict} {} at record {}",
                comparison.against, comparison.seq
            )?;
        }
        writeln!(
            f,
            "duration:  {:.3} s ({} events/s)",
            self.duration.as_secs_f64(),
            self.events_per_second
        )?;
        for note in &self.notes {
            writeln!(f, "note:      {note}")?;
        }
        match &self.finding {
            None => write!(f, "result:    verified"),
            Some(finding) if finding.is_truncation() => {
                write!(f, "result:    TRUNCATED: {finding}")
            }
            Some(finding) => write!(f, "result:    VIOLATION at {finding}"),
        }
    }
}
