//! What this node has applied, in memory: the state, the applied log id,
//! membership and the chain head, and reading them back at start-up.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use rocksdb::DB;
// A store without `LAST_STAMP` (written before it was kept) resumes as
// `LogClock::resumed(last_at)`.
use skyclaw_layout::meta::{
    ANCHOR, APPLIED, CLUSTER_ID, HEAD, LAST_AT, LAST_STAMP, MEMBERSHIP, RETIREMENT,
};
use skyclaw_log_format::event::Hash32;
use skyclaw_log_format::{ChainHead, Tree};
use skyclaw_state::{HostView, JobView, KeyView, LogClock, State};

use crate::lease_timers::LeaseTimers;
use crate::merkle;
use crate::raft::{LogId, StoredMembership};
use crate::store::{self, cf, META, VIEWS};
use crate::{Error, Result};

/// Everything applied so far, in memory; the views mirror the `views`
/// column family. Kept under one lock so a reader sees the state, the
/// applied id and the chain head of the same moment.
pub struct Materialized {
    pub state: State,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    pub head: ChainHead,
    /// Where this node's event log starts when it was restored from a
    /// snapshot: the records up to and including it are not here.
    pub anchor: Option<ChainHead>,
    /// When each live lease runs out by this node's monotonic clock.
    pub lease_timers: LeaseTimers,
    /// The right edge of the Merkle tree over the records up to `head`.
    pub tree: Tree,
}

pub type Shared = Arc<RwLock<Materialized>>;

/// The head before the cluster exists: nothing to follow yet.
pub const NO_HEAD: ChainHead = ChainHead {
    seq: 0,
    hash: Hash32([0; 32]),
};

impl Materialized {
    /// Reads the views back from disk: start-up cost grows with the number
    /// of live records (retired jobs are not read), not with the length of
    /// history. Jobs are decoded on
    /// several threads, each over a slice of the key space (job ids are
    /// UUIDs, so the slices come out even).
    pub fn load(db: &DB) -> Result<Materialized> {
        let hosts: Vec<HostView> = read_views(db, b"h/", b"h0")?;
        let keys: Vec<KeyView> = read_views(db, b"k/", b"k0")?;
        let parts = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let mut bounds = vec![b"j/".to_vec()];
        bounds.extend((1..parts).map(|i| format!("j/{:x}", 16 * i / parts).into_bytes()));
        bounds.push(b"j0".to_vec());
        let jobs = std::thread::scope(|scope| {
            let readers: Vec<_> = bounds
                .windows(2)
                .map(|range| scope.spawn(|| read_views::<Box<JobView>>(db, &range[0], &range[1])))
                .collect();
            readers
                .into_iter()
                .map(|reader| {
                    reader
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let cluster_id = store::get::<String>(db, META, CLUSTER_ID)?;
        let last_at = store::get::<u64>(db, META, LAST_AT)?.unwrap_or(0);
        let clock = LogClock {
            stamp: store::get::<u64>(db, META, LAST_STAMP)?.unwrap_or(last_at),
            ..LogClock::resumed(last_at)
        };
        let mut state =
            State::from_views(cluster_id, clock, hosts, keys, jobs.into_iter().flatten());
        if let Some(retirement) = store::get(db, META, RETIREMENT)? {
            state.resume_retirement(retirement);
        }
        let head = store::get(db, META, HEAD)?.unwrap_or(NO_HEAD);
        let anchor = store::get(db, META, ANCHOR)?;
        Ok(Materialized {
            lease_timers: LeaseTimers::start(&state, Instant::now()),
            state,
            applied: store::get(db, META, APPLIED)?,
            membership: store::get(db, META, MEMBERSHIP)?.unwrap_or_default(),
            tree: merkle::load(db, head, anchor)?,
            head,
            anchor,
        })
    }
}

/// Every view whose key lies in `[from, to)`.
fn read_views<T: serde::de::DeserializeOwned>(db: &DB, from: &[u8], to: &[u8]) -> Result<Vec<T>> {
    let mut options = rocksdb::ReadOptions::default();
    options.set_iterate_lower_bound(from.to_vec());
    options.set_iterate_upper_bound(to.to_vec());
    let mut views = Vec::new();
    for item in db.iterator_cf_opt(cf(db, VIEWS), options, rocksdb::IteratorMode::Start) {
        let (key, bytes) = item?;
        let view = store::decode(&bytes)
            .map_err(|e| Error::Corrupt(format!("view {}: {e}", String::from_utf8_lossy(&key))))?;
        views.push(view);
    }
    Ok(views)
}
