//! Group commit: the proposer task takes whatever commands are waiting
//! into one raft entry (one fsync for many requests), within a bound on
//! the entry's size, and hands each command its own answer once its entry
//! is committed and applied.
//!
//! openraft 0.9 appends and syncs one entry at a time, so an entry formed
//! while the one before still waits for its sync only splits the waiting
//! commands into smaller entries, each with a sync of its own. The next
//! entry is formed once the one before has reached the disk (or been
//! answered): the commands that arrived during that sync go out together.
//! Applying, and in a cluster the followers' syncs, overlap the next
//! entry's, up to a few entries in flight.

use std::sync::Arc;
use std::time::Duration;

use skyclaw_state::{Command, Rejection};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::clock::NodeClock;
use crate::metrics::Metrics;
use crate::raft::{encoded_size, Answer, Member, Proposal, Raft};

/// Commands taken into one raft entry at most.
const MAX_BATCH: usize = 512;
/// The largest raft entry a proposal may encode to. Group commit stops
/// adding commands before an entry would pass it, and a command that alone
/// would is refused before it reaches raft. A follower must take any entry
/// in one AppendEntries within openraft's deadline of one heartbeat
/// (100 ms, the follower's decode and fsync included), or the entry never
/// commits and followers stop hearing from their leader. Decoding costs
/// by field more than by byte: a mebibyte of the smallest jobs takes a
/// release build about 10 ms each way, a debug build ten times that.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;
/// Room in an entry for what is not a command: log id, time stamp, framing.
const ENTRY_OVERHEAD: usize = 1 << 10;
/// How long a write may wait to be committed before the caller is told.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Raft entries proposed but not yet answered, at most: the one being
/// synced, and those being replicated or applied.
const MAX_IN_FLIGHT: usize = 4;

/// Why a write did not happen (as opposed to being refused by the domain).
#[derive(Clone, Debug)]
pub enum WriteError {
    /// This node does not lead; `leader` is who does, when known.
    NotLeader { leader: Option<Member> },
    /// Raft could not take the write (shutting down, storage failure).
    Unavailable(String),
    /// The command alone would make a raft entry of `size` bytes, more than
    /// [`MAX_ENTRY_BYTES`].
    TooLarge { size: usize },
}

pub type WriteResult = std::result::Result<std::result::Result<Answer, Rejection>, WriteError>;

struct Pending {
    command: Command,
    /// The command's encoded size: its share of the entry.
    size: usize,
    reply: oneshot::Sender<WriteResult>,
}

/// The handle commands are proposed through.
pub struct Proposer {
    sender: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the proposer task for `raft`, stamping entries by `clock`;
    /// `appended` counts the log store's finished appends.
    pub fn start(
        raft: Raft,
        clock: NodeClock,
        metrics: Arc<Metrics>,
        appended: watch::Receiver<u64>,
    ) -> Proposer {
        let (sender, proposals) = mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT);
        tokio::spawn(propose_loop(raft, clock, metrics, appended, proposals));
        Proposer { sender }
    }

    /// Proposes `command` and waits until it is committed and applied.
    pub async fn write(&self, command: Command) -> WriteResult {
        let size = encoded_size(&command);
        if size + ENTRY_OVERHEAD > MAX_ENTRY_BYTES {
            return Err(WriteError::TooLarge {
                size: size + ENTRY_OVERHEAD,
            });
        }
        let (reply, answer) = oneshot::channel();
        let closed = || WriteError::Unavailable("the coordinator is shutting down".into());
        self.sender
            .send(Pending {
                command,
                size,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        // A leader cut off from its quorum would hold the request forever.
        // The write may still commit later: clients retry with idempotency
        // keys, so the retry finds it rather than doubling it.
        match tokio::time::timeout(WRITE_TIMEOUT, answer).await {
            Ok(answer) => answer.map_err(|_| closed())?,
            Err(_) => Err(WriteError::Unavailable(
                "timed out waiting for a quorum; the write may or may not have happened".into(),
            )),
        }
    }
}

/// Groups whatever commands are waiting into one entry. While the entry
/// before is being synced, or all in-flight slots are busy, requests queue
/// up and go out together in the next entry.
async fn propose_loop(
    raft: Raft,
    clock: NodeClock,
    metrics: Arc<Metrics>,
    mut appended: watch::Receiver<u64>,
    mut proposals: mpsc::Receiver<Pending>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match proposals.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch;
        (batch, carried) = group(first, &mut proposals);
        metrics.entry_commands.record(batch.len() as f64);
        let raft = raft.clone();
        let clock = clock.clone();
        // Appends that finish from here on are this entry's (on a leader,
        // whose log grows only by its own proposals) or come before it.
        appended.mark_unchanged();
        let (done, mut answered) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (commands, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.command, p.reply)).unzip();
            let proposal = Proposal {
                at: clock.now_ms(),
                commands,
                log_clock: true,
            };
            match raft.client_write(proposal).await {
                Ok(response) => {
                    for (reply, result) in replies.into_iter().zip(response.data.results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    let error = match e.forward_to_leader() {
                        Some(forward) => WriteError::NotLeader {
                            leader: forward.leader_node.clone(),
                        },
                        None => WriteError::Unavailable(e.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
            drop(slot);
            drop(done);
        });
        // The next entry waits until this one's append has finished or it
        // was answered. A closed log store (shutting down) ends the wait at
        // once; the slots still bound the entries in flight.
        tokio::select! {
            _ = appended.changed() => {}
            _ = &mut answered => {}
        }
    }
}

/// One entry's commands: `first`, then whatever waits, up to [`MAX_BATCH`]
/// commands and [`MAX_ENTRY_BYTES`]. The first command that does not fit
/// is handed back to open the next entry.
fn group(
    first: Pending,
    proposals: &mut mpsc::Receiver<Pending>,
) -> (Vec<Pending>, Option<Pending>) {
    let mut bytes = ENTRY_OVERHEAD + first.size;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match proposals.try_recv() {
            Ok(pending) if bytes + pending.size <= MAX_ENTRY_BYTES => {
                bytes += pending.size;
                batch.push(pending);
            }
            Ok(pending) => return (batch, Some(pending)),
            Err(_) => break,
        }
    }
    (batch, None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::raft::Entry;
    use skyclaw_state::JobReport;

    /// A completion with `output_bytes` of output: a command whose size
    /// the test chooses.
    pub(crate) fn completion(output_bytes: usize) -> Command {
        Command::Complete(JobReport {
            job_id: "job".into(),
            host_id: "host".into(),
            lease_epoch: Some(1),
            success: true,
            duration_ms: 1,
            exit_code: Some(0),
            stdout: "x".repeat(output_bytes),
            stderr: String::new(),
            error: None,
            receipt: None,
        })
    }

    fn pending(command: Command) -> Pending {
        Pending {
            size: encoded_size(&command),
            command,
            reply: oneshot::channel().0,
        }
    }

    /// Groups everything queued on `proposals` into entries, as the
    /// proposer would.
    fn entries(proposals: &mut mpsc::Receiver<Pending>) -> Vec<Vec<Pending>> {
        let mut entries = Vec::new();
        let mut carried = None;
        while let Some(first) = carried.take().or_else(|| proposals.try_recv().ok()) {
            let batch;
            (batch, carried) = group(first, proposals);
            entries.push(batch);
        }
        entries
    }

    #[test]
    fn an_entry_takes_commands_only_while_its_encoding_stays_within_the_bound() {
        let (sender, mut proposals) = mpsc::channel(64);
        for _ in 0..7 {
            sender
                .try_send(pending(completion(MAX_ENTRY_BYTES / 3)))
                .unwrap();
        }
        let sizes: Vec<usize> = entries(&mut proposals).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
    }

    #[test]
    fn small_commands_share_an_entry_up_to_the_batch_limit() {
        let (sender, mut proposals) = mpsc::channel(1024);
        for _ in 0..MAX_BATCH + 10 {
            sender.try_send(pending(completion(10))).unwrap();
        }
        let sizes: Vec<usize> = entries(&mut proposals).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_BATCH, 10]);
    }

    /// The bound holds for the bytes that travel: the entry as encoded in
    /// AppendEntries (and the log store) is no larger than the commands'
    /// counted sizes plus the overhead allowed for.
    #[test]
    fn counted_sizes_bound_the_encoded_entry() {
        for (count, output) in [(1, 0), (2, MAX_ENTRY_BYTES / 3), (MAX_BATCH, 100)] {
            let commands: Vec<Command> = (0..count).map(|_| completion(output)).collect();
            let counted: usize = commands.iter().map(encoded_size).sum();
            let entry = Entry {
                log_id: openraft::LogId::new(
                    openraft::CommittedLeaderId::new(u64::MAX, 0),
                    u64::MAX,
                ),
                payload: openraft::EntryPayload::Normal(Proposal {
                    at: u64::MAX,
                    commands,
                    log_clock: true,
                }),
            };
            let encoded = rmp_serde::to_vec_named(&entry).unwrap().len();
            assert!(
                encoded <= counted + ENTRY_OVERHEAD,
                "{count} commands: entry of {encoded} bytes, counted {counted}"
            );
        }
    }
}
