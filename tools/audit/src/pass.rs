//! [`Pass`]: one verification under way, which every source feeds the
//! records it read: the auditor once the log names its cluster, the
//! progress bar, the digest comparison and the notes for the report; and
//! [`check_output`], which checks a completion's output wherever a source
//! found it.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use skyclaw_log_format::segment::SegmentHeader;
use skyclaw_log_format::{BlobRef, ChainHead, Hash32, Record, TreeHead};

use crate::auditor::{Auditor, OutputRef};
use crate::finding::{Finding, FindingKind, Stop};
use crate::options::VerifyOptions;
use crate::report::{Comparison, Report};
use crate::Error;

/// Checks one piece of a completion's output against what its record says.
pub(crate) fn check_output(
    output: &OutputRef,
    which: &str,
    recorded: BlobRef,
    content: Option<&[u8]>,
) -> Result<(), Finding> {
    let fail = |reason: String| {
        Err(Finding::new(
            FindingKind::BlobMismatch,
            Some(output.seq),
            reason,
        ))
    };
    match content {
        None => fail(format!(
            "the {which} of job {} (blob {}) is missing",
            output.job_id, recorded.hash
        )),
        Some(content) if BlobRef::of(content) != recorded => fail(format!(
            "the {which} of job {} does not match the blob {} ({} bytes) its completion recorded",
            output.job_id, recorded.hash, recorded.size
        )),
        Some(_) => Ok(()),
    }
}

/// One verification under way: the auditor once the first segment header
/// (or data directory) names the cluster, the progress bar, and what the
/// report will say besides.
pub(crate) struct Pass<'a> {
    pub(crate) options: &'a VerifyOptions,
    pub(crate) auditor: Option<Auditor>,
    pub(crate) comparison: Option<Comparison>,
    pub(crate) notes: Vec<String>,
    progress: Option<ProgressBar>,
    /// The seq the first record must have, when a range was asked for
    /// (pages from a coordinator); a file may start anywhere.
    pub(crate) first_seq: Option<u64>,
    /// Whether events are replayed (when the log starts at genesis).
    pub(crate) replay: bool,
    /// Gets every accepted record, with the cluster id.
    pub(crate) sink: Option<Sink<'a>>,
    /// Tree heads of verified checkpoints the log must reach.
    pub(crate) tree_heads: Vec<TreeHead>,
}

/// What a progress bar counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Bytes,
    Records,
}

/// Where a pass hands each accepted record, besides the auditor.
pub(crate) type Sink<'a> = Box<dyn FnMut(&str, &Record) -> Result<(), Stop> + Send + 'a>;

impl<'a> Pass<'a> {
    pub(crate) fn new(options: &'a VerifyOptions) -> Pass<'a> {
        Pass {
            options,
            auditor: None,
            comparison: None,
            notes: Vec::new(),
            progress: None,
            first_seq: None,
            replay: true,
            sink: None,
            tree_heads: Vec::new(),
        }
    }

    /// Shows a progress bar towards `total` bytes or records, when asked
    /// to and stderr is a terminal.
    pub(crate) fn show_progress(&mut self, total: u64, unit: Unit) {
        if !self.options.progress || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = match unit {
            Unit::Bytes => "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec})",
            Unit::Records => "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} records",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        self.progress = Some(bar);
    }

    pub(crate) fn set_progress(&self, position: u64) {
        if let Some(bar) = &self.progress {
            bar.set_position(position);
        }
    }

    /// Starts the log with a segment's header, or checks that the segment
    /// continues the log held so far.
    pub(crate) fn begin(&mut self, name: &str, header: &SegmentHeader) -> Result<(), Stop> {
        match &self.auditor {
            Some(auditor) => auditor.check_segment(name, header),
            None if self
                .first_seq
                .is_some_and(|first| first != header.first_seq) =>
            {
                let asked = self.first_seq.unwrap_or(1);
                Err(Finding::new(
                    FindingKind::SeqGap,
                    Some(asked),
                    format!(
                        "{name} starts at record {}, where record {asked} was asked for",
                        header.first_seq
                    ),
                )
                .into())
            }
            None => {
                self.start(&header.cluster_id, header.anchor());
                Ok(())
            }
        }
    }

    /// Starts the log of `cluster_id` after `anchor`.
    pub(crate) fn start(&mut self, cluster_id: &str, anchor: ChainHead) {
        if anchor.seq > 0 && self.replay {
            self.notes.push(format!(
                "the log starts after an anchor, record {} with hash {}, taken on trust; \
                 events are not replayed, since the state before it is unknown",
                anchor.seq, anchor.hash
            ));
        }
        let auditor = Auditor::new(
            cluster_id,
            anchor,
            self.options.expect_head,
            self.options.blobs,
        );
        let mut auditor = if self.replay {
            auditor
        } else {
            auditor.without_replay()
        };
        for head in &self.tree_heads {
            if !auditor.expect_tree_head(*head) {
                self.notes.push(format!(
                    "the checkpoint of {} records is not checked: the log is not read from \
                     its first record",
                    head.size
                ));
            }
        }
        self.auditor = Some(auditor);
    }

    /// Takes the next chain-verified record.
    pub(crate) fn accept(&mut self, record: &Record) -> Result<(), Stop> {
        let auditor = self.auditor.as_mut().expect("a pass begins before records");
        auditor.accept(record)?;
        match &mut self.sink {
            Some(sink) => sink(auditor.cluster_id(), record),
            None => Ok(()),
        }
    }

    /// The seq the next record must have.
    pub(crate) fn next_seq(&self) -> u64 {
        self.auditor
            .as_ref()
            .map_or(self.first_seq.unwrap_or(1), |auditor| {
                auditor.head().next_seq()
            })
    }

    pub(crate) fn head(&self) -> ChainHead {
        self.auditor.as_ref().map_or(
            ChainHead {
                seq: 0,
                hash: Hash32::default(),
            },
            Auditor::head,
        )
    }

    /// Records a comparison of the replayed digest with `theirs` at `seq`;
    /// a difference is a finding, explained by `difference` when the caller
    /// could name it.
    pub(crate) fn compare(
        &mut self,
        against: String,
        seq: u64,
        theirs: Hash32,
        difference: Option<String>,
    ) -> Result<(), Stop> {
        let Some(ours) = self.auditor.as_ref().and_then(Auditor::digest) else {
            return Ok(());
        };
        let agrees = ours == theirs;
        self.comparison = Some(Comparison {
            against: against.clone(),
            seq,
            digest: theirs,
            agrees,
        });
        if agrees {
            return Ok(());
        }
        let mut reason =
            format!("the replayed state hashes to {ours}; {against} says {theirs} at record {seq}");
        if let Some(difference) = difference {
            reason = format!("{reason}: {difference}");
        }
        Err(Finding::new(FindingKind::DigestMismatch, Some(seq), reason).into())
    }

    /// The end-of-log checks.
    pub(crate) fn finish(&mut self) -> Result<(), Stop> {
        match &self.auditor {
            Some(auditor) => auditor.finish(),
            None => Ok(()),
        }
    }

    pub(crate) fn into_report(
        mut self,
        source: String,
        started: Instant,
        outcome: Result<(), Stop>,
    ) -> Result<Report, Error> {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        if let Some(receipts) = self.auditor.as_ref().map(Auditor::receipts) {
            if receipts > 0 {
                self.notes.push(format!(
                    "{receipts} receipts verified, each against the key of the host that held \
                     the lease"
                ));
            }
        }
        let finding = match outcome {
            Ok(()) => None,
            Err(Stop::Finding(finding)) => Some(finding),
            Err(Stop::Error(error)) => return Err(error),
        };
        let report = Report::new(
            source,
            self.auditor.as_ref(),
            self.comparison,
            self.notes,
            started,
            finding,
        );
        // The replayed state of a long log is millions of small
        // allocations; freeing them takes as long as a good part of the
        // replay, and nobody waits for it.
        if let Some(auditor) = self.auditor {
            let _ = std::thread::Builder::new()
                .name("audit-cleanup".into())
                .spawn(move || drop(auditor));
        }
        Ok(report)
    }
}
