//! A running coordinator: the RocksDB store, the raft handle, the
//! materialized views, and what the node knows beside the log (who leads,
//! when hosts were last heard from). What it does is split by resource:
//! [`crate::jobs`], [`crate::hosts`], [`crate::log`], [`crate::membership`];
//! how a command is written is [`crate::writes`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{ServerState, SnapshotPolicy};
use rocksdb::DB;
use skyclaw_log_format::{Hash32, LogKey};
use skyclaw_state::Command;
use tokio::sync::Notify;

use crate::access::{peer_header, Credentials, Mode};
use crate::checkpoints::Checkpoints;
use crate::clock::NodeClock;
use crate::config::Config;
use crate::log_store::LogStore;
use crate::machine::StateMachine;
use crate::materialized::{Materialized, Shared};
use crate::metrics::Metrics;
use crate::network::Network;
use crate::proposer::Proposer;
use crate::raft::{node_id_of, Member, NodeId, Raft};
use crate::store::{self, META};
use crate::{Error, Result};

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
    pub(crate) proposer: Proposer,
    /// When each host was last heard from: soft state, never logged.
    pub(crate) liveness: Mutex<HashMap<String, u64>>,
    /// When this node last became leader (for the lease grace period).
    leader_since: Mutex<Option<Instant>>,
    /// What proposals are stamped with and host liveness is timed by.
    pub clock: NodeClock,
    /// What this node counts as it works, for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// What callers' credentials are checked against.
    pub credentials: Credentials,
    /// The seed of this node's log key, which signs checkpoints.
    log_seed: [u8; 32],
    /// The latest checkpoint the voters signed, and when it was made.
    pub(crate) checkpoints: Checkpoints,
}

// `INCARNATION` is a random id made when the data directory is created.
// The raft id derives from name and incarnation, so a node whose disk was
// wiped comes back as a new raft member, never as its old self with a
// shorter log.
use skyclaw_layout::meta::{INCARNATION, LOG_KEY, NODE_ID};

impl Coordinator {
    /// Opens the store, starts raft, and (for a one-member cluster)
    /// initializes it on first start.
    pub async fn start(config: Config, advertise_url: String) -> Result<Arc<Coordinator>> {
        config.validate()?;
        let db = store::open(&config.db_path)?;
        let incarnation = match (
            store::get::<String>(&db, META, NODE_ID)?,
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
                batch.put_cf(meta, NODE_ID, store::encode(&config.node_id));
                batch.put_cf(meta, INCARNATION, store::encode(&incarnation));
                let mut options = rocksdb::WriteOptions::default();
                options.set_sync(true);
                db.write_opt(batch, &options)?;
                incarnation
            }
        };
        let log_seed = log_seed(&db)?;
        crate::snapshot::remove_partial(&db).map_err(|source| Error::Io {
            context: "removing unfinished snapshot files".into(),
            source,
        })?;
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
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms,
            election_timeout_max: 2 * config.election_timeout_ms,
            install_snapshot_timeout: 10_000,
            snapshot_max_chunk_size: crate::network::SNAPSHOT_CHUNK_BYTES as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every / 10,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
        let id = node_id_of(&format!("{}/{incarnation}", config.node_id));
        let metrics = Arc::new(Metrics::new());
        Metrics::keep_up(Arc::downgrade(&metrics));
        let log = LogStore::new(db.clone(), metrics.clone());
        let appended = log.appended();
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            Network::new(peer_header(&config)),
            log,
            StateMachine::new(db.clone(), shared.clone(), work.clone(), metrics.clone()),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;

        let proposer = Proposer::start(raft.clone(), clock.clone(), metrics.clone(), appended);
        let me = Member {
            name: config.node_id.clone(),
            url: advertise_url,
            log_key: Some(Hash32(
                ed25519_dalek::SigningKey::from_bytes(&log_seed)
                    .verifying_key()
                    .to_bytes(),
            )),
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
        let credentials = Credentials::new(&config);
        let db_for_checkpoints = db.clone();
        if credentials.mode() == Mode::Compatibility {
            tracing::warn!(
                "COMPATIBILITY MODE: only SKYCLAW_TOKEN is set, so whoever holds that token is \
                 an admin and can act as a coordinator (raft messages, joins) and as any host \
                 without a key. Set SKYCLAW_PEER_SECRET (the same on every coordinator, known \
                 to no host) to leave it: then raft takes only the peer secret, and hosts \
                 register with their own keys."
            );
        }
        let coordinator = Arc::new(Coordinator {
            peers,
            credentials,
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
            metrics,
            log_seed,
            checkpoints: Checkpoints::load(&db_for_checkpoints)?,
        });
        tokio::spawn(watch_leadership(coordinator.clone()));
        tokio::spawn(crate::checkpoints::run(Arc::downgrade(&coordinator)));
        Ok(coordinator)
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

    /// This node's log key, for the cluster it belongs to.
    pub fn log_key(&self, cluster_id: &str) -> LogKey {
        LogKey::new(&self.log_seed, cluster_id)
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// The seed of this node's log key: made with the data directory (or on
/// the first start of a directory made before log keys), and kept.
fn log_seed(db: &DB) -> Result<[u8; 32]> {
    if let Some(seed) = store::get::<Hash32>(db, META, LOG_KEY)? {
        return Ok(seed.0);
    }
    let seed: [u8; 32] = crate::access::random_bytes();
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(store::cf(db, META), LOG_KEY, store::encode(&Hash32(seed)));
    db.write_opt(batch, &options)?;
    Ok(seed)
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
