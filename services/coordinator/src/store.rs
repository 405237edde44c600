//! The one RocksDB instance a coordinator keeps everything in, so the raft
//! log, the event log and the views share one write-ahead log. The layout
//! (column families, keys and their encodings) is `skyclaw-layout`'s,
//! re-exported here; this module opens the database and reads and writes
//! MessagePack values in it.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

pub use skyclaw_layout::{
    host_key, job_key, key_key, u64_key, u64_of_key, BLOBS, COMPLETIONS, EVENTS, FAMILIES, META,
    RAFT_LOG, RAFT_META, RETIRED, TREE, VIEWS,
};

/// The block cache all column families share: table blocks read, and the
/// index and filter blocks of every table file.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

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
    // And what it holds of its files: one block cache for every column
    // family, with the index and filter blocks in it. Left alone, each
    // family gets a cache of its own (32 MiB), and the index of every
    // table file stays in memory outside any cache, growing with history.
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let mut tables = BlockBasedOptions::default();
    tables.set_block_cache(&cache);
    tables.set_cache_index_and_filter_blocks(true);
    tables.set_pin_l0_filter_and_index_blocks_in_cache(true);
    options.set_block_based_table_factory(&tables);
    let families = FAMILIES.iter().map(|name| {
        let mut family = Options::default();
        family.set_block_based_table_factory(&tables);
        ColumnFamilyDescriptor::new(*name, family)
    });
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
