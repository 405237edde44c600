//! One entry of the log: an event's exact bytes sealed at their place in the
//! chain (seq, time, Raft origin) by a BLAKE3 hash that commits to the cluster
//! and to the record before. This module owns the record's binary layout, its
//! hash, the genesis hash and the [`ChainHead`] a record makes; checking that
//! a run of records links up is the `chain` module's job.

use serde::{Deserialize, Serialize};

use crate::event::{Event, Hash32};
use crate::{Error, Result};

/// The version byte that starts every encoded record.
pub const RECORD_VERSION: u8 = 1;

/// Bytes before the event in an encoded record: version, four integers, two hashes.
pub const RECORD_HEADER_LEN: usize = 1 + 4 * 8 + 2 * 32;

/// Domain-separation prefix of a record's hash input.
const RECORD_DOMAIN: &[u8] = b"skyclaw.log.record.v1";

/// Domain-separation prefix of the genesis hash input.
const GENESIS_DOMAIN: &[u8] = b"skyclaw.log.genesis.v1";

/// The Raft log entry a record was applied from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub term: u64,
    pub index: u64,
}

/// The last record of a chain (or the anchor before its first record): what
/// a snapshot keeps and what the next record must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Hash32,
}

impl ChainHead {
    /// The head of an empty log: seq 0 and the cluster's genesis hash.
    pub fn genesis(cluster_id: &str) -> ChainHead {
        ChainHead {
            seq: 0,
            hash: genesis_hash(cluster_id),
        }
    }

    /// The seq of the record that follows this head. Saturates rather than
    /// wrapping, so a head at `u64::MAX` is followed by nothing valid.
    pub fn next_seq(&self) -> u64 {
        self.seq.saturating_add(1)
    }
}

/// One sealed entry of the log.
///
/// `event` holds the event exactly as it was sealed; the hash covers those
/// bytes, so verifying never re-encodes an event (MessagePack encodings are
/// not canonical).
// Format: { version: u8 = 1, seq: u64, at: u64, origin.term: u64,
//           origin.index: u64, prev_hash: [u8; 32], hash: [u8; 32],
//           event: [u8] (the rest) }, integers big-endian
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the log: 1 for the first record, no gaps.
    pub seq: u64,
    /// When the leader proposed the command, in milliseconds since the Unix
    /// epoch; never less than the `at` of the record before.
    pub at: u64,
    pub origin: Origin,
    /// The hash of record `seq - 1`, or the genesis hash for seq 1.
    pub prev_hash: Hash32,
    pub hash: Hash32,
    /// The encoded event ([`Event::encode`]), exactly as stored.
    pub event: Vec<u8>,
}

/// The `prev_hash` of record 1: commits the chain to its cluster id.
// Format: BLAKE3("skyclaw.log.genesis.v1" ‖ cluster_id_len: u64 ‖ cluster_id)
pub fn genesis_hash(cluster_id: &str) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(GENESIS_DOMAIN);
    hasher.update(&(cluster_id.len() as u64).to_be_bytes());
    hasher.update(cluster_id.as_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The hash of a record's contents within `cluster_id`'s log.
// Format: BLAKE3("skyclaw.log.record.v1" ‖ cluster_id_len: u64 ‖ cluster_id ‖
//                seq: u64 ‖ at: u64 ‖ origin.term: u64 ‖ origin.index: u64 ‖
//                prev_hash: [u8; 32] ‖ event_len: u64 ‖ event), integers big-endian
fn record_hash(
    cluster_id: &str,
    seq: u64,
    at: u64,
    origin: Origin,
    prev_hash: &Hash32,
    event: &[u8],
) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&record_hash_prefix(cluster_id));
    hasher.update(&record_hash_middle(seq, at, origin, prev_hash, event.len()));
    hasher.update(event);
    Hash32(*hasher.finalize().as_bytes())
}

/// What every record hash of `cluster_id`'s log starts with: the domain
/// and the cluster id.
pub(crate) fn record_hash_prefix(cluster_id: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(RECORD_DOMAIN.len() + 8 + cluster_id.len());
    prefix.extend_from_slice(RECORD_DOMAIN);
    prefix.extend_from_slice(&(cluster_id.len() as u64).to_be_bytes());
    prefix.extend_from_slice(cluster_id.as_bytes());
    prefix
}

/// The fixed-width middle of a record's hash input, between the prefix and
/// the event.
fn record_hash_middle(
    seq: u64,
    at: u64,
    origin: Origin,
    prev_hash: &Hash32,
    event_len: usize,
) -> [u8; 4 * 8 + 32 + 8] {
    let mut fixed = [0u8; 4 * 8 + 32 + 8];
    fixed[0..8].copy_from_slice(&seq.to_be_bytes());
    fixed[8..16].copy_from_slice(&at.to_be_bytes());
    fixed[16..24].copy_from_slice(&origin.term.to_be_bytes());
    fixed[24..32].copy_from_slice(&origin.index.to_be_bytes());
    fixed[32..64].copy_from_slice(&prev_hash.0);
    fixed[64..72].copy_from_slice(&(event_len as u64).to_be_bytes());
    fixed
}

impl Record {
    /// Seals `event` (encoded event bytes) as record `seq` of `cluster_id`'s
    /// log, following the record whose hash is `prev_hash`.
    pub fn seal(
        cluster_id: &str,
        seq: u64,
        at: u64,
        origin: Origin,
        prev_hash: Hash32,
        event: Vec<u8>,
    ) -> Record {
        let hash = record_hash(cluster_id, seq, at, origin, &prev_hash, &event);
        Record {
            seq,
            at,
            origin,
            prev_hash,
            hash,
            event,
        }
    }

    /// The hash this record's contents have within `cluster_id`'s log.
    pub fn compute_hash(&self, cluster_id: &str) -> Hash32 {
        record_hash(
            cluster_id,
            self.seq,
            self.at,
            self.origin,
            &self.prev_hash,
            &self.event,
        )
    }

    /// The hash of this record's contents, its input laid out in `input`
    /// after the log's [`record_hash_prefix`] (which `input` starts with):
    /// one contiguous input hashes in one call, without a hasher's
    /// per-update work, which counts when verifying millions of records.
    pub(crate) fn hash_in(&self, input: &mut Vec<u8>, prefix_len: usize) -> Hash32 {
        input.truncate(prefix_len);
        input.extend_from_slice(&record_hash_middle(
            self.seq,
            self.at,
            self.origin,
            &self.prev_hash,
            self.event.len(),
        ));
        input.extend_from_slice(&self.event);
        Hash32(*blake3::hash(input).as_bytes())
    }

    /// Checks the stored hash against the record's contents.
    pub fn verify_hash(&self, cluster_id: &str) -> Result<()> {
        if self.compute_hash(cluster_id) == self.hash {
            Ok(())
        } else {
            Err(Error::HashMismatch { seq: self.seq })
        }
    }

    /// Decodes the event this record carries.
    pub fn decode_event(&self) -> Result<Event> {
        Event::decode(&self.event)
    }

    /// The chain head this record makes: its seq and hash.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// The encoded record (see the `Format` comment on [`Record`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + self.event.len());
        bytes.extend_from_slice(&self.encode_header());
        bytes.extend_from_slice(&self.event);
        bytes
    }

    /// The bytes before the event, so writers can send header and event
    /// without joining them first.
    pub(crate) fn encode_header(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[0] = RECORD_VERSION;
        header[1..9].copy_from_slice(&self.seq.to_be_bytes());
        header[9..17].copy_from_slice(&self.at.to_be_bytes());
        header[17..25].copy_from_slice(&self.origin.term.to_be_bytes());
        header[25..33].copy_from_slice(&self.origin.index.to_be_bytes());
        header[33..65].copy_from_slice(&self.prev_hash.0);
        header[65..97].copy_from_slice(&self.hash.0);
        header
    }

    /// Decodes bytes written by [`Record::encode`]: all of `bytes` is the
    /// record. Does not check the hash; see [`Record::verify_hash`].
    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let Some((header, event)) = bytes.split_first_chunk::<RECORD_HEADER_LEN>() else {
            return Err(Error::Corrupt {
                seq: None,
                reason: format!(
                    "a record is at least {RECORD_HEADER_LEN} bytes, these are {}",
                    bytes.len()
                ),
            });
        };
        Record::from_parts(header, event.to_vec())
    }

    /// A record from its header bytes and its event bytes, read apart (so a
    /// reader can put the event straight into its own buffer, uncopied).
    pub fn from_parts(header: &[u8; RECORD_HEADER_LEN], event: Vec<u8>) -> Result<Record> {
        if header[0] != RECORD_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "record",
                version: u32::from(header[0]),
            });
        }
        Ok(Record {
            seq: be_u64(&header[1..9]),
            at: be_u64(&header[9..17]),
            origin: Origin {
                term: be_u64(&header[17..25]),
                index: be_u64(&header[25..33]),
            },
            prev_hash: hash_at(&header[33..65]),
            hash: hash_at(&header[65..97]),
            event,
        })
    }
}

/// The big-endian integer in `bytes`, which the caller sliced to 8 bytes.
pub(crate) fn be_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    u64::from_be_bytes(array)
}

/// The hash in `bytes`, which the caller sliced to 32 bytes.
pub(crate) fn hash_at(bytes: &[u8]) -> Hash32 {
    let mut array = [0u8; 32];
    array.copy_from_slice(bytes);
    Hash32(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Record {
        let event = Event::JobCancelled {
            job_id: "job-1".into(),
        };
        Record::seal(
            "cluster-a",
            7,
            1_700_000_000_000,
            Origin { term: 2, index: 40 },
            genesis_hash("cluster-a"),
            event.encode(),
        )
    }

    #[test]
    fn sealed_record_verifies_and_carries_its_event() {
        let record = sample();
        record.verify_hash("cluster-a").unwrap();
        assert_eq!(
            record.decode_event().unwrap(),
            Event::JobCancelled {
                job_id: "job-1".into()
            }
        );
    }

    #[test]
    fn hash_commits_to_every_field_and_the_cluster() {
        let record = sample();
        let mut altered = vec![
            Record {
                seq: 8,
                ..record.clone()
            },
            Record {
                at: record.at + 1,
                ..record.clone()
            },
            Record {
                origin: Origin {
                    term: 3,
                    ..record.origin
                },
                ..record.clone()
            },
            Record {
                origin: Origin {
                    index: 41,
                    ..record.origin
                },
                ..record.clone()
            },
            Record {
                prev_hash: Hash32([0; 32]),
                ..record.clone()
            },
        ];
        let mut event = record.event.clone();
        event.push(0);
        altered.push(Record {
            event,
            ..record.clone()
        });
        for changed in altered {
            assert!(matches!(
                changed.verify_hash("cluster-a"),
                Err(Error::HashMismatch { seq }) if seq == changed.seq
            ));
        }
        assert!(matches!(
            record.verify_hash("cluster-b"),
            Err(Error::HashMismatch { seq: 7 })
        ));
    }

    #[test]
    fn a_hash_in_one_input_is_the_records_hash() {
        let record = sample();
        let mut input = record_hash_prefix("cluster-a");
        let prefix_len = input.len();
        assert_eq!(record.hash_in(&mut input, prefix_len), record.hash);
        assert_eq!(record.hash_in(&mut input, prefix_len), record.hash);
    }

    #[test]
    fn cluster_id_is_length_prefixed() {
        // Without the length prefix these two would hash the same bytes.
        let a = Record::seal(
            "ab",
            1,
            0,
            Origin::default(),
            Hash32::default(),
            b"c".to_vec(),
        );
        let b = Record::seal(
            "a",
            1,
            0,
            Origin::default(),
            Hash32::default(),
            b"bc".to_vec(),
        );
        assert_ne!(a.hash, b.hash);
        assert_ne!(genesis_hash("a"), genesis_hash("b"));
    }

    #[test]
    fn layout_is_as_documented() {
        let record = sample();
        let bytes = record.encode();
        assert_eq!(bytes.len(), RECORD_HEADER_LEN + record.event.len());
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(bytes[1..9], 7u64.to_be_bytes());
        assert_eq!(bytes[9..17], record.at.to_be_bytes());
        assert_eq!(bytes[17..25], 2u64.to_be_bytes());
        assert_eq!(bytes[25..33], 40u64.to_be_bytes());
        assert_eq!(bytes[33..65], record.prev_hash.0);
        assert_eq!(bytes[65..97], record.hash.0);
        assert_eq!(bytes[97..], record.event[..]);
    }

    #[test]
    fn short_or_unknown_bytes_are_rejected() {
        for len in 0..RECORD_HEADER_LEN {
            assert!(matches!(
                Record::decode(&vec![RECORD_VERSION; len]),
                Err(Error::Corrupt { .. })
            ));
        }
        let mut bytes = sample().encode();
        bytes[0] = 9;
        assert!(matches!(
            Record::decode(&bytes),
            Err(Error::UnsupportedVersion {
                what: "record",
                version: 9
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trips(
            seq: u64,
            at: u64,
            term: u64,
            index: u64,
            prev: [u8; 32],
            event in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let record = Record::seal("c", seq, at, Origin { term, index }, Hash32(prev), event);
            let decoded = Record::decode(&record.encode()).unwrap();
            prop_assert_eq!(&decoded, &record);
            decoded.verify_hash("c").unwrap();
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(record) = Record::decode(&bytes) {
                let _ = record.verify_hash("c");
                let _ = record.decode_event();
            }
        }
    }
}
