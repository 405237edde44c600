//! The one RocksDB instance a coordinator keeps everything in, so the raft
//! log, the event log and the views share one write-ahead log.
//!
//! Column families:
//! - `raft_log`: raft index (u64 BE) → MessagePack `Entry`
//! - `raft_meta`: `vote`, `last_purged`, `committed`
//! - `events`: seq (u64 BE) → encoded `Record` (the permanent hash chain)
//! - `views`: `h/<host id>` and `j/<job id>` → MessagePack view
//! - `blobs`: BLAKE3 hash → content (job output)
//! - `meta`: `node_id`, `applied`, `membership`, `head`, `anchor`, `last_at`,
//!   `last_stamp`, `snapshot`

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

pub const RAFT_LOG: &str = "raft_log";
pub const RAFT_META: &str = "raft_meta";
pub const EVENTS: &str = "events";
pub const VIEWS: &str = "views";
pub const BLOBS: &str = "blobs";
pub const META: &str = "meta";

const FAMILIES: [&str; 6] = [RAFT_LOG, RAFT_META, EVENTS, VIEWS, BLOBS, META];

/// Opens (or creates) the database with every column family.
pub fn open(path: &Path) -> Result<Arc<DB>> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        context: format!("creating {}", path.display()),
        source,
    })?;
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Bound what RocksDB holds outside its files. All memtables together
    // stay under 64 MiB, and the write-ahead log under 128 MiB: the
    // small column families (meta, raft_meta) would otherwise never
    // flush, pin every WAL file since start-up, and make a restart replay
    // all of them.
    options.set_db_write_buffer_size(64 << 20);
    options.set_max_total_wal_size(128 << 20);
    let families = FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let db = DB::open_cf_descriptors(&options, path, families)?;
    Ok(Arc::new(db))
}

/// A handle on a column family that exists once `open` returned.
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is opened by store::open"))
}

/// Big-endian, so byte order is numeric order.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub fn u64_of_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub fn host_key(id: &str) -> Vec<u8> {
    [b"h/", id.as_bytes()].concat()
}

pub fn job_key(id: &str) -> Vec<u8> {
    [b"j/", id.as_bytes()].concat()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("stored types encode")
}

pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

/// Reads and decodes one key, `None` when absent.
pub fn get<T: DeserializeOwned>(db: &DB, family: &str, key: &[u8]) -> Result<Option<T>> {
    match db.get_pinned_cf(cf(db, family), key)? {
        None => Ok(None),
        Some(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{family}/{}: {e}", String::from_utf8_lossy(key)))),
    }
}
