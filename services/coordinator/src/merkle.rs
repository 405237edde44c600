//! The log's Merkle tree as this node keeps it: every stored hash in the
//! `tree` column family (written in the same batch as the records they
//! cover), the edge in memory ([`Tree`]), and proofs read from the stored
//! hashes with `tlog_tiles`.

use rocksdb::{WriteBatch, DB};
use skyclaw_log_format::tree::{Hash, HashReader};
use skyclaw_log_format::{ChainHead, Hash32, Record, Tree};

use crate::failure::Failure;
use crate::store::{self, cf, EVENTS, TREE};
use crate::{Error, Result};

/// The stored hashes of this node's tree, read from RocksDB.
pub struct StoredHashes<'a>(pub &'a DB);

impl HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> std::result::Result<Vec<Hash>, tlog_tiles::Error> {
        let family = cf(self.0, TREE);
        let keys = indexes.iter().map(|index| (family, store::u64_key(*index)));
        self.0
            .multi_get_cf(keys)
            .into_iter()
            .map(|found| match found {
                Ok(Some(bytes)) => <[u8; 32]>::try_from(bytes.as_slice())
                    .map(Hash)
                    .map_err(|_| tlog_tiles::Error::MalformedHash),
                _ => Err(tlog_tiles::Error::IndexesNotInTree),
            })
            .collect()
    }
}

/// Stages the hashes [`Tree::append`] returned.
pub fn stage(db: &DB, batch: &mut WriteBatch, first: u64, hashes: &[Hash32]) {
    let family = cf(db, TREE);
    for (index, hash) in (first..).zip(hashes) {
        batch.put_cf(family, store::u64_key(index), hash.0);
    }
}

/// The tree over the `head.seq` records this node holds, resumed from the
/// stored hashes. A store written before the tree was kept has records
/// but no hashes: they are computed once, here, from the records (which
/// only a node that keeps its log from genesis can do).
pub fn load(db: &DB, head: ChainHead, anchor: Option<ChainHead>) -> Result<Tree> {
    if let Ok(tree) = Tree::resume(head.seq, &StoredHashes(db)) {
        return Ok(tree);
    }
    if anchor.is_some() {
        return Err(Error::Corrupt(format!(
            "the Merkle tree's hashes for {} records are missing and this node's log starts at a \
             snapshot, so they cannot be rebuilt",
            head.seq
        )));
    }
    tracing::info!("building the Merkle tree over {} records", head.seq);
    let mut tree = Tree::empty();
    let mut batch = WriteBatch::default();
    for item in db.iterator_cf(cf(db, EVENTS), rocksdb::IteratorMode::Start) {
        let (_, bytes) = item?;
        let (first, hashes) = tree.append(&bytes);
        stage(db, &mut batch, first, &hashes);
        if batch.len() >= 100_000 {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    db.write(batch)?;
    if tree.size() != head.seq {
        return Err(Error::Corrupt(format!(
            "the event log holds {} records but its head is seq {}",
            tree.size(),
            head.seq
        )));
    }
    Ok(tree)
}

/// Maps a proof's read error: hashes below this node's snapshot are not
/// here.
pub fn proof_failure(e: tlog_tiles::Error) -> Failure {
    match e {
        tlog_tiles::Error::IndexesNotInTree => Failure::Gone(
            "this node's log starts at a snapshot after the records this needs; ask another \
             member"
                .into(),
        ),
        e => Failure::Internal(format!("reading the Merkle tree: {e}")),
    }
}

/// The record with `seq` as stored, if this node holds it.
pub fn record_bytes(db: &DB, seq: u64) -> Result<Option<Vec<u8>>> {
    Ok(db.get_cf(cf(db, EVENTS), store::u64_key(seq))?)
}

/// The chain hash of record `seq`, read from its stored bytes.
pub fn chain_hash(db: &DB, seq: u64) -> std::result::Result<Hash32, Failure> {
    let bytes = record_bytes(db, seq)
        .map_err(|e| Failure::Unavailable(format!("reading the log: {e}")))?
        .ok_or_else(|| {
            Failure::Gone(format!(
                "record {seq} is not in this node's log (a snapshot)"
            ))
        })?;
    Record::decode(&bytes)
        .map(|record| record.hash)
        .map_err(|e| Failure::Internal(format!("corrupt record {seq}: {e}")))
}
