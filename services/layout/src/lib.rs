//! How a coordinator lays its data out in its one RocksDB instance: the
//! column family names, the keys in each, and how keys are encoded. The
//! coordinator writes with these names and the auditor reads a stopped
//! coordinator's data directory with them, so they live here once, with no
//! RocksDB dependency of their own. Values are MessagePack (`rmp_serde`,
//! named fields) unless a family says otherwise.
//!
//! Column families:
//! - [`RAFT_LOG`]: raft index ([`u64_key`]) → MessagePack `Entry`
//! - [`RAFT_META`]: [`raft_meta`] keys → MessagePack values
//! - [`EVENTS`]: seq ([`u64_key`]) → encoded `Record` (the permanent hash
//!   chain; see `log-format/FORMAT.md`)
//! - [`VIEWS`]: [`host_key`], [`key_key`] and [`job_key`] → MessagePack view
//!   (the live state: hosts, keys, and jobs not yet retired)
//! - [`RETIRED`]: [`job_key`] → MessagePack view of a retired job, as it
//!   ended (what `GET /v1/jobs/:id` answers once the job left the state)
//! - [`BLOBS`]: BLAKE3 hash (32 bytes) → content (job output), stored raw
//! - [`TREE`]: stored hash index ([`u64_key`], `tlog_tiles` order) → the
//!   Merkle tree's hash (32 bytes, raw)
//! - [`COMPLETIONS`]: [`job_key`] → seq ([`u64_key`]) of the record that
//!   completed the job
//! - [`META`]: [`meta`] keys → MessagePack values

pub const RAFT_LOG: &str = "raft_log";
pub const RAFT_META: &str = "raft_meta";
pub const EVENTS: &str = "events";
pub const VIEWS: &str = "views";
pub const BLOBS: &str = "blobs";
pub const META: &str = "meta";
pub const TREE: &str = "tree";
pub const COMPLETIONS: &str = "completions";
pub const RETIRED: &str = "retired";

/// Every column family, as the coordinator opens them.
pub const FAMILIES: [&str; 9] = [
    RAFT_LOG,
    RAFT_META,
    EVENTS,
    VIEWS,
    BLOBS,
    META,
    TREE,
    COMPLETIONS,
    RETIRED,
];

/// The keys of [`RAFT_META`](crate::RAFT_META): what openraft asks the log
/// store to keep besides the entries.
pub mod raft_meta {
    /// The last vote cast.
    pub const VOTE: &[u8] = b"vote";
    /// The id of the last entry purged from `raft_log`.
    pub const LAST_PURGED: &[u8] = b"last_purged";
    /// The id of the last entry known committed.
    pub const COMMITTED: &[u8] = b"committed";
}

/// The keys of [`META`](crate::META): the node's identity and where its
/// state machine stands.
pub mod meta {
    /// The node's name, fixed when the data directory is created.
    pub const NODE_ID: &[u8] = b"node_id";
    /// Made when the data directory is created; with the name it gives the
    /// node's raft id.
    pub const INCARNATION: &[u8] = b"incarnation";
    /// The id of the cluster whose log this is (from `ClusterCreated`).
    pub const CLUSTER_ID: &[u8] = b"cluster_id";
    /// The id of the last raft entry applied.
    pub const APPLIED: &[u8] = b"applied";
    /// The last membership applied.
    pub const MEMBERSHIP: &[u8] = b"membership";
    /// The chain head: the last record in `events`.
    pub const HEAD: &[u8] = b"head";
    /// Where `events` starts after a snapshot was installed: the head the
    /// snapshot carried. Absent for a log kept from genesis.
    pub const ANCHOR: &[u8] = b"anchor";
    /// The log's time after the last entry applied.
    pub const LAST_AT: &[u8] = b"last_at";
    /// The last proposal stamp the log's time followed.
    pub const LAST_STAMP: &[u8] = b"last_stamp";
    /// What retirement took out of the state (`Retirement`: the cutoff,
    /// counts by status, the next enqueue order), written with every
    /// apply. Absent in stores from before retirement.
    pub const RETIREMENT: &[u8] = b"retirement";
    /// The last snapshot built or installed.
    pub const SNAPSHOT: &[u8] = b"snapshot";
    /// The ed25519 seed of this node's log key, which signs checkpoints;
    /// made with the data directory, never sent anywhere.
    pub const LOG_KEY: &[u8] = b"log_key";
    /// The latest checkpoint a majority of the voters signed, as a note.
    pub const CHECKPOINT: &[u8] = b"checkpoint";
}

// Format: { n: u64 big-endian } (8 bytes)
/// The key of a raft index or an event seq. Big-endian, so byte order is
/// numeric order.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// The number a [`u64_key`] encodes; `None` for a key of another length.
pub fn u64_of_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// What every host view's key starts with.
pub const HOST_PREFIX: &[u8] = b"h/";
/// What every job view's key starts with.
pub const JOB_PREFIX: &[u8] = b"j/";
/// What every API key's view's key starts with.
pub const KEY_PREFIX: &[u8] = b"k/";

// Format: { "h/", host id: UTF-8 }
/// The key of a host's view.
pub fn host_key(id: &str) -> Vec<u8> {
    [HOST_PREFIX, id.as_bytes()].concat()
}

// Format: { "k/", key id: UTF-8 }
/// The key of an API key's view.
pub fn key_key(id: &str) -> Vec<u8> {
    [KEY_PREFIX, id.as_bytes()].concat()
}

// Format: { "j/", job id: UTF-8 }
/// The key of a job's view.
pub fn job_key(id: &str) -> Vec<u8> {
    [JOB_PREFIX, id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_keys_sort_as_numbers_and_round_trip() {
        assert!(u64_key(255) < u64_key(256));
        assert_eq!(u64_of_key(&u64_key(42)), Some(42));
        assert_eq!(u64_of_key(b"short"), None);
    }

    #[test]
    fn view_keys_carry_their_prefix() {
        assert_eq!(host_key("a"), b"h/a");
        assert_eq!(job_key("b"), b"j/b");
    }
}
