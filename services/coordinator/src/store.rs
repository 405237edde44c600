//! The one RocksDB instance a coordinator keeps everything in, so the raft
//! log, the event log and the views share one write-ahead log. The layout
//! (column families, keys and their encodings) is `skyclaw-layout`'s,
//! re-exported here; this module opens the database and reads and writes
//! MessagePack values in it.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

pub use skyclaw_layout::{
    host_key, job_key, key_key, u64_key, u64_of_key, BLOBS, COMPLETIONS, EVENTS, FAMILIES, META,
    RAFT_LOG, RAFT_META, RETIRED, TREE, VIEWS,
};

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
