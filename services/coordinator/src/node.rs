//! A running coordinator: the RocksDB store, the raft handle, the
//! materialized views, and the proposer that groups concurrent commands into
//! one raft entry (one fsync for many requests).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::{ServerState, SnapshotPolicy};
use rocksdb::DB;
use skyclaw_state::{Command, Rejection};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::config::Config;
use crate::log_store::LogStore;
use crate::machine::{Materialized, Shared, StateMachine};
use crate::network::Network;
use crate::raft::{encoded_size, node_id_of, Answer, Member, NodeId, Proposal, Raft};
use crate::store::{self, META};
use crate::{Error, Result};

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
/// How long a refusal waits for a quorum to confirm this node leads.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
/// Raft entries proposed but not yet answered, at most.
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

pub struct Coordinator {
    pub config: Config,
    /// For requests to other coordinators: forwarded writes, bootstrap.
    pub peers: reqwest::Client,
    pub me: Member,
    pub id: NodeId,
    pub raft: Raft,
    pub db: Arc<DB>,
    shared: Shared,
    /// Woken when work appears; long-polling claims wait on it.
    pub work: Arc<Notify>,
    proposer: mpsc::Sender<Pending>,
    /// When each host was last heard from: soft state, never logged.
    liveness: Mutex<HashMap<String, u64>>,
    /// When this node last became leader (for the lease grace period).
    leader_since: Mutex<Option<Instant>>,
    /// What proposals are stamped with and host liveness is timed by.
    pub clock: NodeClock,
}

/// This node's clock, in milliseconds since the Unix epoch (the unit of
/// every time in the log): the wall clock read when the clock is anchored,
/// advanced since by the monotonic clock.
///
/// It is anchored at start and whenever this node becomes leader, never
/// below the log's time then. So a step of the wall clock (an operator, a
/// resumed VM, NTP fixing a bad clock) changes no stamp of a sitting
/// leader: it counts from the next leadership on. Stamps of one node
/// therefore never go back, and a new leader whose wall clock is behind
/// goes on from the log's time instead of below it.
///
/// Tests move the wall clock with the hidden `SKYCLAW_CLOCK_OFFSET_FILE`:
/// a file holding a signed number of milliseconds added to every reading
/// of the wall clock (none when the file is absent or empty).
#[derive(Clone)]
pub struct NodeClock {
    /// Wall-clock milliseconds at the anchor, and the anchor's instant.
    anchor: Arc<Mutex<(u64, Instant)>>,
    offset_file: Option<Arc<PathBuf>>,
}

impl NodeClock {
    /// A clock anchored now, at `floor` if the wall clock reads earlier.
    pub fn new(floor: u64) -> NodeClock {
        let clock = NodeClock {
            anchor: Arc::new(Mutex::new((0, Instant::now()))),
            offset_file: std::env::var_os("SKYCLAW_CLOCK_OFFSET_FILE")
                .map(|path| Arc::new(PathBuf::from(path))),
        };
        clock.anchor(floor);
        clock
    }

    pub fn now_ms(&self) -> u64 {
        let (wall, since) = *self.anchor.lock().expect("clock lock");
        wall + since.elapsed().as_millis() as u64
    }

    /// Reads the wall clock again, never going below `floor`.
    pub fn anchor(&self, floor: u64) {
        let wall = self.wall_ms().max(floor);
        *self.anchor.lock().expect("clock lock") = (wall, Instant::now());
    }

    fn wall_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let offset = self.offset_file.as_ref().map_or(0, |path| {
            let text = std::fs::read_to_string(path.as_path()).unwrap_or_default();
            text.trim().parse::<i64>().unwrap_or_else(|_| {
                if !text.trim().is_empty() {
                    tracing::warn!("{}: not a number of milliseconds", path.display());
                }
                0
            })
        });
        wall.saturating_add_signed(offset)
    }
}

const NODE_NAME: &[u8] = b"node_id";
/// A random id made when the data directory is created. The raft id
/// derives from name and incarnation, so a node whose disk was wiped comes
/// back as a new raft member, never as its old self with a shorter log.
const INCARNATION: &[u8] = b"incarnation";

impl Coordinator {
    /// Opens the store, starts raft, and (for a one-member cluster)
    /// initializes it on first start.
    pub async fn start(config: Config, advertise_url: String) -> Result<Arc<Coordinator>> {
        config.validate()?;
        let db = store::open(&config.db_path)?;
        let incarnation = match (
            store::get::<String>(&db, META, NODE_NAME)?,
            store::get::<String>(&db, META, INCARNATION)?,
        ) {
            (Some(stored), _) if stored != config.node_id => {
                return Err(Error::IdentityMismatch {
                    stored,
                    configured: config.node_id.clone(),
                })
            }
            (Some(_), Some(incarnation)) => incarnation,
            _ => {
                let incarnation = uuid::Uuid::new_v4().to_string();
                let mut batch = rocksdb::WriteBatch::default();
                let meta = store::cf(&db, META);
                batch.put_cf(meta, NODE_NAME, store::encode(&config.node_id));
                batch.put_cf(meta, INCARNATION, store::encode(&incarnation));
                let mut options = rocksdb::WriteOptions::default();
                options.set_sync(true);
                db.write_opt(batch, &options)?;
                incarnation
            }
        };
        let loading = std::time::Instant::now();
        let materialized = Materialized::load(&db)?;
        tracing::info!(
            "loaded {} jobs and {} hosts in {:?}",
            materialized.state.job_count(),
            materialized.state.hosts().count(),
            loading.elapsed()
        );
        let clock = NodeClock::new(materialized.state.last_at());
        let shared: Shared = Arc::new(std::sync::RwLock::new(materialized));
        let work = Arc::new(Notify::new());
        let raft_config = openraft::Config {
            cluster_name: "skyclaw".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            install_snapshot_timeout: 10_000,
            snapshot_max_chunk_size: crate::network::SNAPSHOT_CHUNK_BYTES as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every / 10,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
        let id = node_id_of(&format!("{}/{incarnation}", config.node_id));
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            Network::new(config.token.clone()),
            LogStore::new(db.clone()),
            StateMachine::new(db.clone(), shared.clone(), work.clone()),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;

        let (proposer, proposals) = mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT);
        tokio::spawn(propose_loop(raft.clone(), clock.clone(), proposals));
        let me = Member {
            name: config.node_id.clone(),
            url: advertise_url,
        };
        // A single node initializes itself, once, ever. (Asking again on a
        // node that has a log would only be refused, noisily.)
        if config.peer_urls.is_empty() && !raft.is_initialized().await.unwrap_or(true) {
            let members = BTreeMap::from([(id, me.clone())]);
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!("raft already initialized: {e}");
            }
        }
        let peers = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("a plain HTTP client builds");
        let coordinator = Arc::new(Coordinator {
            peers,
            config,
            me,
            id,
            raft,
            db,
            shared,
            work,
            proposer,
            liveness: Mutex::new(HashMap::new()),
            leader_since: Mutex::new(None),
            clock,
        });
        tokio::spawn(watch_leadership(coordinator.clone()));
        if !coordinator.config.peer_urls.is_empty() {
            tokio::spawn(crate::cluster::bootstrap(coordinator.clone()));
        }
        Ok(coordinator)
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
        self.proposer
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

    /// Why the state would refuse `command` now, judged on this leader
    /// before anything is proposed: a refusal then costs no raft entry.
    /// A refusal is trusted only once a quorum has confirmed this node
    /// still leads and it has applied everything committed until then
    /// (`ensure_linearizable`): a node restarted as the leader of a term
    /// the cluster has left behind, or a new leader that has not applied
    /// its predecessor's last entries, would refuse what exists. Only a
    /// request its state refuses pays that round trip; for commands no
    /// state can refuse, for what the state accepts, and when leadership
    /// cannot be confirmed in time, the answer is `None` and the command
    /// goes through raft, where `decide` has the last word.
    pub async fn refusal(&self, command: &Command) -> Option<Rejection> {
        let could_be_refused = match command {
            Command::Enqueue { jobs } => jobs.iter().any(|job| job.idempotency_key.is_some()),
            // A claim's one refusal (an unknown host) the claim handler
            // already answers from the views, before it waits for work.
            Command::CreateCluster { .. }
            | Command::Claim { .. }
            | Command::ExpireLeases
            | Command::Expire { .. } => false,
            _ => true,
        };
        if !could_be_refused || !self.is_leader() {
            return None;
        }
        let judge = || {
            let now = self.clock.now_ms();
            self.read(|m| m.state.decide(command, m.state.clock(now)).err())
        };
        judge()?;
        match tokio::time::timeout(CONFIRM_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => judge(),
            _ => None,
        }
    }

    /// Reads the materialized state of one moment.
    pub fn read<T>(&self, f: impl FnOnce(&Materialized) -> T) -> T {
        f(&self.shared.read().expect("state lock"))
    }

    pub fn leader(&self) -> Option<Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// How long this node has led without interruption.
    pub fn leading_for(&self) -> Option<Duration> {
        self.leader_since
            .lock()
            .expect("leader lock")
            .map(|since| since.elapsed())
    }

    pub fn saw_host(&self, host_id: &str, at: u64) {
        self.liveness
            .lock()
            .expect("liveness lock")
            .insert(host_id.to_string(), at);
    }

    pub fn last_seen(&self, host_id: &str) -> Option<u64> {
        self.liveness
            .lock()
            .expect("liveness lock")
            .get(host_id)
            .copied()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// Groups whatever commands are waiting into one entry. While all in-flight
/// slots are busy, requests queue up and go out together in the next entry.
async fn propose_loop(raft: Raft, clock: NodeClock, mut proposals: mpsc::Receiver<Pending>) {
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
        let raft = raft.clone();
        let clock = clock.clone();
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
        });
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

/// Tracks when this node became leader, and creates the cluster (its first
/// event) once some node leads and none has yet.
async fn watch_leadership(coordinator: Arc<Coordinator>) {
    let mut metrics = coordinator.raft.metrics();
    loop {
        let leading = metrics.borrow().state == ServerState::Leader;
        let log_time = coordinator.read(|m| m.state.last_at());
        {
            let mut since = coordinator.leader_since.lock().expect("leader lock");
            match (leading, *since) {
                (true, None) => {
                    coordinator.clock.anchor(log_time);
                    *since = Some(Instant::now());
                }
                (false, Some(_)) => *since = None,
                _ => {}
            }
        }
        let created = coordinator.read(|m| m.state.cluster_id().is_some());
        if leading && !created {
            let cluster_id = uuid::Uuid::new_v4().to_string();
            match coordinator
                .write(Command::CreateCluster { cluster_id })
                .await
            {
                Ok(_) => tracing::info!("cluster created"),
                Err(e) => {
                    // Leadership is moving or raft is stopping: try again
                    // after a pause rather than spinning.
                    tracing::warn!("creating the cluster failed: {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
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
