//! The heart of a verification: an [`Auditor`] takes records whose chain a
//! source has already checked, makes sure each run of them continues the
//! chain held so far (same cluster, next seq, linked hash), replays every
//! event through `skyclaw_state::State` so its invariants are checked,
//! verifies every completion's receipt against the key of the host that
//! held the lease, rebuilds the log's Merkle tree as far as the tree heads
//! of checkpoints need it, and watches for a head pinned earlier and for
//! those tree heads. It does no I/O.

use std::collections::HashMap;

use skyclaw_log_format::segment::SegmentHeader;
use skyclaw_log_format::tree::record_leaf;
use skyclaw_log_format::{
    BlobRef, ChainHead, Error as FormatError, Event, Hash32, ReceiptKey, Record, Tree, TreeHead,
};
use skyclaw_state::State;

use crate::finding::{Finding, FindingKind, Stop};
use crate::Error;

/// Checks a log record by record, from genesis or from an anchor.
pub struct Auditor {
    cluster_id: String,
    /// The head the first record follows: the genesis head, or the anchor
    /// of a log restored from a snapshot.
    start: ChainHead,
    head: ChainHead,
    verified: u64,
    /// The replayed state; `None` for a log that starts after an anchor,
    /// since the state before its first record is unknown.
    state: Option<State>,
    last_at: u64,
    expect_head: Option<ChainHead>,
    /// Job output referenced by completions, kept when blobs are checked.
    outputs: Option<Vec<OutputRef>>,
    /// The Merkle tree over the records so far; like the replay, only for
    /// a log read from genesis, and only while a tree head to check lies
    /// ahead: its SHA-256 hashes (a leaf and about one node per record)
    /// are a large share of a replay's cost, and only those checks read it.
    tree: Option<Tree>,
    /// Tree heads (of signed checkpoints) the log must reach, by size.
    heads: Vec<TreeHead>,
    /// How many receipts verified.
    receipts: u64,
    /// The keys of the hosts whose receipts were checked, decoded once each.
    keys: HashMap<Hash32, ReceiptKey>,
}

/// The output a completion recorded: what `--blobs` checks against the
/// blob store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRef {
    /// The completion's record.
    pub seq: u64,
    pub job_id: String,
    pub stdout: BlobRef,
    pub stderr: BlobRef,
}

impl Auditor {
    /// An auditor of `cluster_id`'s log whose first record follows `start`
    /// (the genesis head for a whole log). Events are replayed only from
    /// genesis. With `expect_head`, the record at its seq must carry its
    /// hash; with `keep_blobs`, completions' output references are kept for
    /// [`Auditor::outputs`].
    pub fn new(
        cluster_id: &str,
        start: ChainHead,
        expect_head: Option<ChainHead>,
        keep_blobs: bool,
    ) -> Auditor {
        Auditor {
            cluster_id: cluster_id.to_owned(),
            start,
            head: start,
            verified: 0,
            state: (start.seq == 0).then(State::new),
            last_at: 0,
            expect_head,
            outputs: keep_blobs.then(Vec::new),
            tree: (start.seq == 0).then(Tree::empty),
            heads: Vec::new(),
            receipts: 0,
            keys: HashMap::new(),
        }
    }

    /// Requires the log's tree and chain to reach `head` (a checkpoint's)
    /// at its size. Only a log read from genesis can be held to one, and
    /// only before records pass that no head given so far reached (the
    /// tree is not built past the last head): `false` otherwise.
    pub fn expect_tree_head(&mut self, head: TreeHead) -> bool {
        if self.tree.is_none() || head.size <= self.head.seq {
            return false;
        }
        self.heads.push(head);
        true
    }

    /// The root of the Merkle tree over the records so far, for a log
    /// read from genesis while a tree head to check lies ahead.
    pub fn tree_root(&self) -> Option<Hash32> {
        self.tree.as_ref().map(Tree::root)
    }

    /// How many completions' receipts verified.
    pub fn receipts(&self) -> u64 {
        self.receipts
    }

    /// An auditor for the log a segment with this header starts.
    pub fn for_segment(
        header: &SegmentHeader,
        expect_head: Option<ChainHead>,
        keep_blobs: bool,
    ) -> Auditor {
        Auditor::new(&header.cluster_id, header.anchor(), expect_head, keep_blobs)
    }

    /// The same auditor, checking the chain and the pinned head but not
    /// replaying events: for copying a log that may break invariants.
    pub fn without_replay(mut self) -> Auditor {
        self.state = None;
        self.tree = None;
        self
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The head the first record followed.
    pub fn start(&self) -> ChainHead {
        self.start
    }

    /// The last record accepted, or the start before any.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// How many records were accepted.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// The replayed state, when the log starts at genesis.
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// The digest of the replayed state as of [`Auditor::head`].
    pub fn digest(&self) -> Option<Hash32> {
        self.state.as_ref().map(State::digest)
    }

    /// The output every completion recorded, when the auditor was asked
    /// to keep it.
    pub fn outputs(&self) -> &[OutputRef] {
        self.outputs.as_deref().unwrap_or_default()
    }

    /// Checks that a segment with this header continues the log held so
    /// far: same cluster, next seq, linked to the head.
    pub fn check_segment(&self, name: &str, header: &SegmentHeader) -> Result<(), Stop> {
        header
            .check_continues(&self.cluster_id, self.head)
            .map_err(|error| crate::finding::classify(name, error))
    }

    /// Takes the next record, whose hash and link to [`Auditor::head`] the
    /// caller has verified, and replays its event.
    pub fn accept(&mut self, record: &Record) -> Result<(), Stop> {
        debug_assert_eq!(record.seq, self.head.next_seq());
        self.head = record.head();
        self.verified += 1;
        if let Some(pinned) = self.expect_head {
            if pinned.seq == record.seq && pinned.hash != record.hash {
                return Err(Finding::new(
                    FindingKind::HeadMismatch,
                    Some(record.seq),
                    format!(
                        "record {} has hash {}, not the pinned {}",
                        record.seq, record.hash, pinned.hash
                    ),
                )
                .into());
            }
        }
        if self.state.is_some() {
            self.replay(record)?;
        }
        if !self.heads.iter().any(|head| head.size >= record.seq) {
            self.tree = None;
        }
        if let Some(tree) = self.tree.as_mut() {
            tree.append_leaf(record_leaf(record));
            self.check_tree_heads(record)?;
        }
        Ok(())
    }

    /// Checks the tree heads expected at this record's seq.
    fn check_tree_heads(&self, record: &Record) -> Result<(), Stop> {
        for head in self.heads.iter().filter(|head| head.size == record.seq) {
            let root = self.tree_root().expect("checked with a tree");
            let mismatch =
                |what: String| Finding::new(FindingKind::Checkpoint, Some(record.seq), what).into();
            if head.root != root {
                return Err(mismatch(format!(
                    "a checkpoint signs root {} for the first {} records, but the log's Merkle \
                     tree has root {root}",
                    head.root, head.size
                )));
            }
            if head.chain != record.hash {
                return Err(mismatch(format!(
                    "a checkpoint binds chain hash {} at record {}, but the record's hash is {}",
                    head.chain, head.size, record.hash
                )));
            }
        }
        Ok(())
    }

    fn replay(&mut self, record: &Record) -> Result<(), Stop> {
        let seq = record.seq;
        let event = match Event::decode(&record.event) {
            Ok(event) => event,
            Err(FormatError::UnsupportedVersion { what, version }) => {
                return Err(Error::UnsupportedVersion {
                    what: format!("record {seq}"),
                    part: what,
                    version,
                }
                .into())
            }
            Err(error) => {
                return Err(Finding::new(
                    FindingKind::UndecodableEvent,
                    Some(seq),
                    format!("record {seq}: {error}"),
                )
                .into())
            }
        };
        let violation = |reason: String| Finding::new(FindingKind::Invariant, Some(seq), reason);
        if record.at < self.last_at {
            return Err(violation(format!(
                "time goes backwards: at {} after {}",
                record.at, self.last_at
            ))
            .into());
        }
        self.last_at = record.at;
        if let Event::ClusterCreated { cluster_id } = &event {
            if *cluster_id != self.cluster_id {
                return Err(Finding::new(
                    FindingKind::ClusterMismatch,
                    Some(seq),
                    format!(
                        "the log of cluster {:?} creates cluster {cluster_id:?}",
                        self.cluster_id
                    ),
                )
                .into());
            }
        }
        let state = self.state.as_mut().expect("replay only with a state");
        if let Event::JobCompleted(done) = &event {
            let refused = |reason: String| {
                Finding::new(
                    FindingKind::Receipt,
                    Some(seq),
                    format!("job {}: {reason}", done.job_id),
                )
            };
            if let Some(claim) = state.receipt_claim(done).map_err(refused)? {
                let key = match self.keys.get(&claim.key) {
                    Some(key) => *key,
                    None => {
                        let key = ReceiptKey::decode(&claim.key)
                            .map_err(|error| refused(claim.refusal(error)))?;
                        self.keys.insert(claim.key, key);
                        key
                    }
                };
                claim.verify_with(&key).map_err(refused)?;
                self.receipts += 1;
            }
        }
        let output = match (&self.outputs, &event) {
            (Some(_), Event::JobCompleted(done)) => Some(OutputRef {
                seq,
                job_id: done.job_id.clone(),
                stdout: done.stdout,
                stderr: done.stderr,
            }),
            _ => None,
        };
        state
            .apply_owned(event, record.at)
            .map_err(|violated| violation(violated.0))?;
        if let (Some(outputs), Some(output)) = (self.outputs.as_mut(), output) {
            outputs.push(output);
        }
        Ok(())
    }

    /// Checks what can only be checked at the end: that the log reached the
    /// pinned head (or, for a pin at the log's start, that it is the start).
    pub fn finish(&self) -> Result<(), Stop> {
        if let Some(head) = self.heads.iter().find(|head| head.size > self.head.seq) {
            return Err(Finding::new(
                FindingKind::Checkpoint,
                Some(head.size),
                format!(
                    "the log ends at record {}, before the size {} a checkpoint signs",
                    self.head.seq, head.size
                ),
            )
            .into());
        }
        let Some(pinned) = self.expect_head else {
            return Ok(());
        };
        if pinned.seq > self.head.seq {
            return Err(Finding::new(
                FindingKind::HeadMismatch,
                Some(pinned.seq),
                format!(
                    "the log ends at record {}, before the pinned head {}",
                    self.head.seq, pinned.seq
                ),
            )
            .into());
        }
        if pinned.seq < self.start.seq {
            return Err(Error::Usage(format!(
                "the pinned head {} comes before this log's start at record {}; \
                 it cannot be checked here",
                pinned.seq,
                self.start.next_seq()
            ))
            .into());
        }
        if pinned.seq == self.start.seq && pinned.hash != self.start.hash {
            return Err(Finding::new(
                FindingKind::HeadMismatch,
                Some(pinned.seq),
                format!(
                    "the log continues from {} at record {}, not the pinned {}",
                    self.start.hash, pinned.seq, pinned.hash
                ),
            )
            .into());
        }
        Ok(())
    }
}
