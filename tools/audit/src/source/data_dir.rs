//! A stopped coordinator's data directory as a source, opened read-only
//! (only with the `rocksdb` feature). The `events` column family holds the
//! log (seq, big-endian, to encoded record) from genesis or from the
//! snapshot anchor kept in `meta`; the `views` family holds the host and
//! job views the node serves, which must be exactly what the replay
//! yields; `blobs` holds job output by hash. Names and key encodings are
//! `skyclaw-layout`'s, the same the coordinator writes with.

use std::path::Path;

use rocksdb::{IteratorMode, Options, DB};
use serde::de::DeserializeOwned;
use skyclaw_layout::{
    meta, u64_of_key, BLOBS, EVENTS, HOST_PREFIX, JOB_PREFIX, KEY_PREFIX, META, VIEWS,
};
use skyclaw_log_format::{ChainHead, ChainVerifier, Record};
use skyclaw_state::state::Retirement;
use skyclaw_state::{HostView, JobView, KeyView, LogClock, State};

use crate::finding::{classify, Finding, FindingKind, Stop};
use crate::pass::{check_output, Pass, Unit};
use crate::Error;

/// Records between progress bar updates.
const PROGRESS_EVERY: u64 = 1 << 14;

/// Verifies the log in the data directory at `path`, compares the replay
/// with the stored views and, when asked, checks job output.
pub(crate) fn verify(path: &Path, pass: &mut Pass<'_>) -> Result<(), Stop> {
    let store = Store::open(path)?;
    let Some(cluster_id) = store.meta::<String>(meta::CLUSTER_ID)? else {
        return Err(store
            .unreadable("it holds no cluster yet (no `cluster_id` in `meta`)")
            .into());
    };
    let anchor = store
        .meta::<ChainHead>(meta::ANCHOR)?
        .unwrap_or_else(|| ChainHead::genesis(&cluster_id));
    let recorded_head = store.meta::<ChainHead>(meta::HEAD)?;
    pass.show_progress(
        recorded_head.map_or(0, |head| head.seq.saturating_sub(anchor.seq)),
        Unit::Records,
    );
    pass.start(&cluster_id, anchor);

    let mut chain = ChainVerifier::new(&cluster_id, anchor);
    for item in store
        .db
        .iterator_cf(store.family(EVENTS)?, IteratorMode::Start)
    {
        let (key, bytes) = item.map_err(|e| store.unreadable(format!("reading `events`: {e}")))?;
        let expected = chain.head().next_seq();
        let Some(key) = u64_of_key(&key) else {
            return Err(Finding::new(
                FindingKind::Corrupt,
                Some(expected),
                format!("a key of {} bytes in `events`, where keys are 8", key.len()),
            )
            .into());
        };
        // The version byte is the one part of a record its hash does not
        // cover, so an unknown one is damage, as in a segment.
        let record = Record::decode(&bytes).map_err(|error| {
            Finding::new(
                FindingKind::Corrupt,
                Some(key),
                format!("record {key}: {error}"),
            )
        })?;
        if record.seq != key {
            return Err(Finding::new(
                FindingKind::Corrupt,
                Some(key),
                format!("record {} is stored under seq {key}", record.seq),
            )
            .into());
        }
        chain
            .verify_next(&record)
            .map_err(|error| classify(&path.display().to_string(), error))?;
        pass.accept(&record)?;
        if record.seq % PROGRESS_EVERY == 0 {
            pass.set_progress(record.seq - anchor.seq);
        }
    }
    pass.finish()?;

    let head = chain.head();
    if let Some(recorded) = recorded_head {
        if recorded != head {
            return Err(Finding::new(
                FindingKind::HeadMismatch,
                Some(recorded.seq.max(head.seq)),
                format!(
                    "the node records its head as record {} with hash {}, \
                     but its log ends at record {} with hash {}",
                    recorded.seq, recorded.hash, head.seq, head.hash
                ),
            )
            .into());
        }
    }
    if pass.options.compare {
        compare_views(&store, &cluster_id, head.seq, pass)?;
    }
    if pass.options.blobs {
        check_outputs(&store, pass)?;
    }
    Ok(())
}

/// Compares the replayed state with the views the node keeps, naming the
/// first host or job that differs.
fn compare_views(
    store: &Store,
    cluster_id: &str,
    seq: u64,
    pass: &mut Pass<'_>,
) -> Result<(), Stop> {
    let Some(replayed) = pass.auditor.as_ref().and_then(|auditor| auditor.state()) else {
        return Ok(());
    };
    let mut hosts = Vec::new();
    let mut keys = Vec::new();
    let mut jobs = Vec::new();
    for item in store
        .db
        .iterator_cf(store.family(VIEWS)?, IteratorMode::Start)
    {
        let (key, bytes) = item.map_err(|e| store.unreadable(format!("reading `views`: {e}")))?;
        let name = String::from_utf8_lossy(&key).into_owned();
        let undecodable =
            |e: rmp_serde::decode::Error| store.unreadable(format!("view {name}: {e}"));
        if key.starts_with(HOST_PREFIX) {
            hosts.push(rmp_serde::from_slice::<HostView>(&bytes).map_err(undecodable)?);
        } else if key.starts_with(KEY_PREFIX) {
            keys.push(rmp_serde::from_slice::<KeyView>(&bytes).map_err(undecodable)?);
        } else if key.starts_with(JOB_PREFIX) {
            jobs.push(rmp_serde::from_slice::<JobView>(&bytes).map_err(undecodable)?);
        } else {
            return Err(store
                .unreadable(format!("unknown view key {name:?}"))
                .into());
        }
    }
    let difference = first_difference(replayed, &hosts, &jobs);
    let mut stored = State::from_views(
        Some(cluster_id.to_owned()),
        LogClock::default(),
        hosts,
        keys,
        jobs,
    );
    if let Some(retirement) = store.meta::<Retirement>(meta::RETIREMENT)? {
        stored.resume_retirement(retirement);
    }
    pass.compare(
        "the data directory's views".into(),
        seq,
        stored.digest(),
        difference,
    )
}

/// The first host or job whose replayed view is not the stored one.
fn first_difference(replayed: &State, hosts: &[HostView], jobs: &[JobView]) -> Option<String> {
    for host in hosts {
        match replayed.host(&host.id) {
            None => return Some(format!("host {} is stored but never registered", host.id)),
            Some(ours) if ours != host => {
                return Some(format!("host {} differs from its replay", host.id))
            }
            Some(_) => {}
        }
    }
    if let Some(host) = replayed
        .hosts()
        .find(|ours| !hosts.iter().any(|h| h.id == ours.id))
    {
        return Some(format!("host {} is missing from the stored views", host.id));
    }
    for job in jobs {
        match replayed.job(&job.id) {
            None => return Some(format!("job {} is stored but never enqueued", job.id)),
            Some(ours) if ours.status != job.status => {
                return Some(format!(
                    "job {} is {} in the replay, {} in the stored views",
                    job.id,
                    ours.status.as_str(),
                    job.status.as_str()
                ))
            }
            Some(ours) if ours != job => {
                return Some(format!("job {} differs from its replay", job.id))
            }
            Some(_) => {}
        }
    }
    if replayed.job_count() != jobs.len() {
        return Some(format!(
            "the replay has {} jobs, the stored views {}",
            replayed.job_count(),
            jobs.len()
        ));
    }
    None
}

fn check_outputs(store: &Store, pass: &Pass<'_>) -> Result<(), Stop> {
    let Some(auditor) = &pass.auditor else {
        return Ok(());
    };
    let blobs = store.family(BLOBS)?;
    for output in auditor.outputs() {
        for (which, recorded) in [("stdout", output.stdout), ("stderr", output.stderr)] {
            let content = store
                .db
                .get_pinned_cf(blobs, recorded.hash.0)
                .map_err(|e| store.unreadable(format!("reading `blobs`: {e}")))?;
            check_output(output, which, recorded, content.as_deref())?;
        }
    }
    Ok(())
}

/// The database, opened read-only with the families the auditor reads.
struct Store {
    db: DB,
    path: String,
}

impl Store {
    fn open(path: &Path) -> Result<Store, Error> {
        let name = path.display().to_string();
        let unreadable = |reason: String| Error::DataDir {
            path: name.clone(),
            reason,
        };
        let options = Options::default();
        let families = DB::list_cf(&options, path).map_err(|e| unreadable(e.to_string()))?;
        if let Some(missing) = [EVENTS, META, VIEWS, BLOBS]
            .into_iter()
            .find(|wanted| !families.iter().any(|family| family == wanted))
        {
            return Err(unreadable(format!(
                "not a Skyclaw coordinator's data directory (no `{missing}` column family)"
            )));
        }
        let db = DB::open_cf_for_read_only(&options, path, &families, false)
            .map_err(|e| unreadable(e.to_string()))?;
        Ok(Store { db, path: name })
    }

    fn unreadable(&self, reason: impl Into<String>) -> Error {
        Error::DataDir {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily, Error> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| self.unreadable(format!("no `{name}` column family")))
    }

    /// A MessagePack value from `meta`, `None` when absent.
    fn meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, Error> {
        let name = String::from_utf8_lossy(key);
        let bytes = self
            .db
            .get_pinned_cf(self.family(META)?, key)
            .map_err(|e| self.unreadable(format!("reading meta {name}: {e}")))?;
        bytes
            .map(|bytes| {
                rmp_serde::from_slice(&bytes)
                    .map_err(|e| self.unreadable(format!("meta {name}: {e}")))
            })
            .transpose()
    }
}
