//! The log's Merkle tree (RFC 6962/9162, SHA-256) over the records' bytes
//! as stored: leaf index = seq − 1, leaf hash = SHA-256(0x00 ‖ record),
//! node hash = SHA-256(0x01 ‖ left ‖ right). Hashes are kept in the
//! tlog-tiles "stored hash" order (`tlog_tiles::stored_hash_index`), so a
//! store of them serves proofs and tiles with `tlog_tiles` as it is.
//!
//! [`Tree`] holds only the tree's right edge — the root of each complete
//! subtree the size splits into, at most 64 hashes — which is all that
//! appending a record and computing the root need. Whoever keeps the log
//! stores the hashes [`Tree::append`] returns; an auditor needs nothing
//! more than the edge.

use serde::{Deserialize, Serialize};
pub use tlog_tiles::{Hash, HashReader};

use sha2::{Digest, Sha256};

use crate::event::Hash32;
use crate::record::Record;

/// The right edge of the tree over the first `size` records.
// Format: MessagePack map { size: u64, edge: [[u64, bin(32)]] } (edge: stored
//         hash index and hash, in index order)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    size: u64,
    edge: Vec<(u64, Hash32)>,
}

/// A tree whose edge does not match its size: a damaged store or snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the Merkle tree's edge does not fit its size {0}")]
pub struct BadEdge(pub u64);

impl Tree {
    /// The tree over no records.
    pub fn empty() -> Tree {
        Tree::default()
    }

    /// A tree of `size` records whose edge `read` finds by stored hash
    /// index: how a store that kept every appended hash resumes.
    pub fn resume(size: u64, read: &impl HashReader) -> Result<Tree, tlog_tiles::Error> {
        let indexes = Tree::edge_indexes(size);
        let hashes = read.read_hashes(&indexes)?;
        Ok(Tree {
            size,
            edge: indexes
                .into_iter()
                .zip(hashes)
                .map(|(index, hash)| (index, Hash32(hash.0)))
                .collect(),
        })
    }

    /// Checks that the edge holds exactly the hashes a tree of its size
    /// needs (for one read back from a snapshot).
    pub fn check(&self) -> Result<(), BadEdge> {
        let indexes: Vec<u64> = self.edge.iter().map(|(index, _)| *index).collect();
        if indexes == Tree::edge_indexes(self.size) {
            Ok(())
        } else {
            Err(BadEdge(self.size))
        }
    }

    /// The stored hash indexes of the edge of a tree of `size` records.
    fn edge_indexes(size: u64) -> Vec<u64> {
        if size == 0 {
            return Vec::new();
        }
        tlog_tiles::sub_tree_index(0, size, Vec::new())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The edge: stored hash index and hash of each complete subtree.
    pub fn edge(&self) -> &[(u64, Hash32)] {
        &self.edge
    }

    /// Appends one record (its bytes as stored) and returns the hashes to
    /// store, from stored hash index `first` on: `(first, hashes)`.
    pub fn append(&mut self, record: &[u8]) -> (u64, Vec<Hash32>) {
        self.append_leaf(leaf_hash(record))
    }

    /// Appends a leaf by its hash ([`leaf_hash`], [`record_leaf`]); as
    /// [`Tree::append`].
    pub fn append_leaf(&mut self, leaf: Hash32) -> (u64, Vec<Hash32>) {
        let n = self.size;
        let hashes = tlog_tiles::stored_hashes_for_record_hash(n, Hash(leaf.0), &*self)
            .expect("the edge holds every hash an append reads");
        let first = tlog_tiles::stored_hash_index(0, n);
        // The leaf joined the edge's `merged` smallest subtrees (the last
        // ones) into one whose hash is stored last.
        let merged = hashes.len() - 1;
        self.edge.truncate(self.edge.len() - merged);
        self.edge
            .push((first + merged as u64, Hash32(hashes[merged].0)));
        self.size = n + 1;
        (
            first,
            hashes.into_iter().map(|hash| Hash32(hash.0)).collect(),
        )
    }

    /// The root hash (the empty tree's is SHA-256 of nothing).
    pub fn root(&self) -> Hash32 {
        let root =
            tlog_tiles::tree_hash(self.size, self).expect("the edge holds the root's hashes");
        Hash32(root.0)
    }
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|index| {
                self.edge
                    .iter()
                    .find(|(at, _)| at == index)
                    .map(|(_, hash)| Hash(hash.0))
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// The leaf hash of a record's bytes: SHA-256(0x00 ‖ record).
pub fn leaf_hash(record: &[u8]) -> Hash32 {
    Hash32(tlog_tiles::record_hash(record).0)
}

/// The leaf hash of a decoded record, as [`leaf_hash`] of its encoding,
/// without making the encoding.
pub fn record_leaf(record: &Record) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(record.encode_header());
    hasher.update(&record.event);
    Hash32(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The leaves and roots of RFC 6962's reference test (the Certificate
    /// Transparency project's `merkle_tree_test`): the root of the first
    /// `k` leaves for k = 1..8.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn roots_match_the_rfc_6962_test_vectors() {
        let mut tree = Tree::empty();
        assert_eq!(
            tree.root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (leaf, root) in LEAVES.iter().zip(ROOTS) {
            tree.append(&hex::decode(leaf).unwrap());
            assert_eq!(tree.root().to_hex(), root, "size {}", tree.size());
            tree.check().unwrap();
        }
    }

    /// Every stored hash, kept as a log's store keeps them.
    struct Store(BTreeMap<u64, Hash32>);

    impl HashReader for Store {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            indexes
                .iter()
                .map(|i| self.0.get(i).map(|h| Hash(h.0)))
                .collect::<Option<_>>()
                .ok_or(tlog_tiles::Error::IndexesNotInTree)
        }
    }

    #[test]
    fn stored_hashes_prove_inclusion_and_consistency_and_resume_the_edge() {
        let mut tree = Tree::empty();
        let mut store = Store(BTreeMap::new());
        let mut roots = vec![tree.root()];
        let records: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for record in &records {
            let (first, hashes) = tree.append(record);
            store.0.extend((first..).zip(hashes));
            roots.push(tree.root());
        }
        for size in [1u64, 2, 3, 7, 8, 9, 255, 256, 257, 300] {
            let root = Hash(roots[size as usize].0);
            assert_eq!(tlog_tiles::tree_hash(size, &store).unwrap(), root);
            assert_eq!(Tree::resume(size, &store).unwrap().root().0, root.0);
            for n in [0, size / 2, size - 1] {
                let proof = tlog_tiles::prove_record(size, n, &store).unwrap();
                let leaf = tlog_tiles::record_hash(&records[n as usize]);
                tlog_tiles::check_record(&proof, size, root, n, leaf).unwrap();
                let wrong = tlog_tiles::record_hash(b"not the record");
                assert!(tlog_tiles::check_record(&proof, size, root, n, wrong).is_err());
            }
            for old in [1, (size / 2).max(1), size] {
                let old_root = Hash(roots[old as usize].0);
                let proof = tlog_tiles::prove_tree(size, old, &store).unwrap();
                tlog_tiles::check_tree(&proof, size, root, old, old_root).unwrap();
            }
        }
    }

    #[test]
    fn a_records_leaf_is_the_leaf_of_its_bytes() {
        let record = Record::seal(
            "c",
            1,
            5,
            crate::record::Origin { term: 1, index: 2 },
            crate::genesis_hash("c"),
            vec![1, 2, 3],
        );
        assert_eq!(record_leaf(&record), leaf_hash(&record.encode()));
    }

    #[test]
    fn an_edge_that_does_not_fit_its_size_is_refused() {
        let mut tree = Tree::empty();
        for i in 0..5u8 {
            tree.append(&[i]);
        }
        assert_eq!(tree.check(), Ok(()));
        let mut bad = tree.clone();
        bad.edge.pop();
        assert_eq!(bad.check(), Err(BadEdge(5)));
        let mut wrong_size = tree;
        wrong_size.size = 6;
        assert_eq!(wrong_size.check(), Err(BadEdge(6)));
    }
}
