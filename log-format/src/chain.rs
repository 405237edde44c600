//! Checking that records form one unbroken chain: seqs without gaps, each
//! record's hash matching its contents under the cluster id, and each
//! `prev_hash` naming the record before. Fed records in order, a
//! [`ChainVerifier`] keeps only the head, so it verifies a log of any length
//! in constant memory and allocates nothing per record. Records and the
//! heads they make belong to [`crate::record`], which names nothing here.

use crate::event::Hash32;
use crate::record::{genesis_hash, record_hash_prefix, ChainHead, Record};
use crate::{Error, Result};

/// Verifies records fed to it in order, from genesis or from an anchor.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    cluster_id: String,
    genesis: Hash32,
    head: ChainHead,
    verified: u64,
    /// A record's hash input, reused: it starts with the log's prefix, of
    /// `prefix_len` bytes, and each record writes the rest.
    hash_input: Vec<u8>,
    prefix_len: usize,
}

impl ChainVerifier {
    /// A verifier for `cluster_id`'s log from its first record (seq 1).
    pub fn from_genesis(cluster_id: &str) -> ChainVerifier {
        ChainVerifier::new(cluster_id, ChainHead::genesis(cluster_id))
    }

    /// A verifier for `cluster_id`'s log continuing after `anchor`: the head
    /// of a snapshot, or of records verified earlier. The caller vouches for
    /// the anchor; everything after it is checked.
    pub fn new(cluster_id: &str, anchor: ChainHead) -> ChainVerifier {
        let hash_input = record_hash_prefix(cluster_id);
        ChainVerifier {
            cluster_id: cluster_id.to_owned(),
            genesis: genesis_hash(cluster_id),
            head: anchor,
            verified: 0,
            prefix_len: hash_input.len(),
            hash_input,
        }
    }

    /// Checks that `record` follows the head and advances the head to it.
    ///
    /// Checks run from the most to the least specific diagnosis: the seq
    /// first (a missing, repeated or reordered record), then the hash (an
    /// altered record, or one from another cluster), then the link to the
    /// record before (an intact record that does not belong here). On error
    /// the head stays where it was.
    pub fn verify_next(&mut self, record: &Record) -> Result<()> {
        let expected = self.head.next_seq();
        if record.seq != expected || self.head.seq == u64::MAX {
            return Err(Error::SeqGap {
                expected,
                found: record.seq,
            });
        }
        if record.hash_in(&mut self.hash_input, self.prefix_len) != record.hash {
            return Err(Error::HashMismatch { seq: record.seq });
        }
        // Seq 1 must start from genesis whatever anchor the caller gave, so
        // no anchor can vouch for a log that begins anywhere else.
        let must_follow = if record.seq == 1 {
            self.genesis
        } else {
            self.head.hash
        };
        if record.prev_hash != must_follow {
            return Err(Error::ChainBroken { seq: record.seq });
        }
        self.head = record.head();
        self.verified += 1;
        Ok(())
    }

    /// The last verified record, or the anchor if none was.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// How many records this verifier has accepted.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;
    use crate::testing::chain;

    fn verify_all(verifier: &mut ChainVerifier, records: &[Record]) -> Result<()> {
        records.iter().try_for_each(|r| verifier.verify_next(r))
    }

    #[test]
    fn accepts_a_chain_from_genesis() {
        let records = chain("a", ChainHead::genesis("a"), 5);
        let mut verifier = ChainVerifier::from_genesis("a");
        verify_all(&mut verifier, &records).unwrap();
        assert_eq!(verifier.head(), records[4].head());
        assert_eq!(verifier.verified(), 5);
    }

    #[test]
    fn accepts_a_chain_from_an_anchor() {
        let records = chain("a", ChainHead::genesis("a"), 10);
        let mut verifier = ChainVerifier::new("a", records[5].head());
        verify_all(&mut verifier, &records[6..]).unwrap();
        assert_eq!(verifier.head(), records[9].head());
    }

    #[test]
    fn names_the_seq_of_each_break() {
        let records = chain("a", ChainHead::genesis("a"), 5);
        let check = |feed: Vec<Record>| {
            let mut verifier = ChainVerifier::from_genesis("a");
            verify_all(&mut verifier, &feed).unwrap_err()
        };

        let dropped = [&records[..2], &records[3..]].concat();
        assert!(matches!(
            check(dropped),
            Error::SeqGap {
                expected: 3,
                found: 4
            }
        ));

        let duplicated = [&records[..3], &records[2..]].concat();
        assert!(matches!(
            check(duplicated),
            Error::SeqGap {
                expected: 4,
                found: 3
            }
        ));

        let mut reordered = records.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            check(reordered),
            Error::SeqGap {
                expected: 2,
                found: 3
            }
        ));

        let mut altered = records.clone();
        altered[3].at += 1;
        assert!(matches!(check(altered), Error::HashMismatch { seq: 4 }));

        // Record 3 dropped and the rest renumbered and re-sealed: each is
        // intact, but the new record 3 does not follow record 2.
        let mut resealed = records[..2].to_vec();
        let mut prev = records[2].hash;
        for (seq, old) in (3..).zip(&records[3..]) {
            let record = Record::seal("a", seq, old.at, old.origin, prev, old.event.clone());
            prev = record.hash;
            resealed.push(record);
        }
        assert!(matches!(check(resealed), Error::ChainBroken { seq: 3 }));

        let other = chain("b", ChainHead::genesis("b"), 5);
        let spliced = vec![records[0].clone(), records[1].clone(), other[2].clone()];
        assert!(matches!(check(spliced), Error::HashMismatch { seq: 3 }));
    }

    #[test]
    fn a_failed_record_leaves_the_head_in_place() {
        let records = chain("a", ChainHead::genesis("a"), 3);
        let mut verifier = ChainVerifier::from_genesis("a");
        verifier.verify_next(&records[0]).unwrap();
        let mut bad = records[1].clone();
        bad.event.push(1);
        assert!(verifier.verify_next(&bad).is_err());
        assert_eq!(verifier.head(), records[0].head());
        verify_all(&mut verifier, &records[1..]).unwrap();
    }

    #[test]
    fn seq_one_must_start_from_genesis_whatever_the_anchor() {
        let forged_anchor = ChainHead {
            seq: 0,
            hash: Hash32([7; 32]),
        };
        let records = chain("a", forged_anchor, 2);
        let mut verifier = ChainVerifier::new("a", forged_anchor);
        assert!(matches!(
            verifier.verify_next(&records[0]),
            Err(Error::ChainBroken { seq: 1 })
        ));
    }

    #[test]
    fn a_head_at_the_last_seq_accepts_nothing() {
        let head = ChainHead {
            seq: u64::MAX,
            hash: Hash32::default(),
        };
        let record = Record::seal("a", 0, 0, Origin::default(), head.hash, vec![]);
        let mut verifier = ChainVerifier::new("a", head);
        assert!(matches!(
            verifier.verify_next(&record),
            Err(Error::SeqGap { .. })
        ));
    }
}
