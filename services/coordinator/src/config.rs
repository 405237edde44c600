//! The coordinator's configuration: one documented struct, validated once
//! before use. The CLI fills it from flags and `SKYCLAW_*` variables.

use std::path::PathBuf;

use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name; any string, fixed for the life of its data.
    /// Default: `node-1`.
    pub node_id: String,
    /// The URL peers and forwarded requests reach this node at.
    /// Default: `http://` + the listener's address (127.0.0.1 for 0.0.0.0).
    pub advertise_url: Option<String>,
    /// The other coordinators of the cluster. Default: none, a one-member
    /// cluster.
    pub peer_urls: Vec<String>,
    /// Where RocksDB keeps this node's data. Default: `.skyclaw/coordinator`.
    pub db_path: PathBuf,
    /// The admin token (`x-skyclaw-token`): the MVP's shared token, which
    /// may do everything but raft's own messages. Without a peer secret it
    /// is the peer credential too (compatibility mode). Default: none,
    /// which leaves the API open: the CLI then listens on loopback only.
    pub token: Option<String>,
    /// The secret only coordinators hold (`x-skyclaw-peer`): raft's
    /// messages, joins and hellos need it, and nothing else takes it.
    /// Default: none (compatibility or open mode).
    pub peer_secret: Option<String>,
    /// How long a keyed host's session lasts before it registers again.
    /// Default: 3600000 (an hour).
    pub session_ttl_ms: u64,
    /// Approve every keyed host when it registers, with no admin: for a
    /// coordinator and its own host on one machine (`skyclaw dev`).
    /// Default: false.
    pub approve_hosts: bool,
    /// Serve the log routes (head, events, digest) to anyone, with no
    /// credential: a log anyone may audit. Default: false (auditors' keys).
    pub public_log: bool,
    /// How long a claim's lease lasts without renewal. Default: 60000.
    pub lease_ms: u64,
    /// The largest request body accepted. Default: 8 MiB.
    pub max_body_bytes: u64,
    /// The longest a claim may wait for work. Default: 60000.
    pub max_claim_wait_ms: u64,
    /// Raft log entries between snapshots; the log before a snapshot is
    /// purged, and a follower that fell behind it gets the snapshot.
    /// Default: 10000.
    pub snapshot_every: u64,
    /// How long a joining node may take to hold the whole log before its
    /// join is refused (and it is dropped as a learner). Default: 60000,
    /// within the time a member's join request waits for its answer.
    pub catch_up_ms: u64,
    /// The longest the leader waits, once the log grew, before it has a
    /// new checkpoint signed. Default: 1000.
    pub checkpoint_ms: u64,
    /// How many new records make a checkpoint sooner than that. Default:
    /// 10000.
    pub checkpoint_every: u64,
    /// How often the leader sends heartbeats. Default: 100.
    pub heartbeat_ms: u64,
    /// How long a follower goes without hearing from a leader before it
    /// campaigns: a random time between this and twice this. openraft also
    /// has a follower honour its leader's lease (twice this) before it
    /// campaigns, so a dead leader is replaced after about three to four
    /// times this. At least three heartbeats. Default: 400.
    pub election_timeout_ms: u64,
    /// How long a job that ended (completed, failed, cancelled) stays in
    /// the live state, in lists and in memory; after that it is retired:
    /// `GET /v1/jobs/:id` still answers from disk, the log keeps it, and
    /// its idempotency key may enqueue a new job. At least 1000. Default:
    /// 3600000 (an hour).
    pub retention_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node_id: "node-1".into(),
            advertise_url: None,
            peer_urls: Vec::new(),
            db_path: PathBuf::from(".skyclaw/coordinator"),
            token: None,
            peer_secret: None,
            session_ttl_ms: 3_600_000,
            approve_hosts: false,
            public_log: false,
            lease_ms: 60_000,
            max_body_bytes: 8 << 20,
            max_claim_wait_ms: 60_000,
            snapshot_every: 10_000,
            catch_up_ms: 60_000,
            checkpoint_ms: 1_000,
            checkpoint_every: 10_000,
            heartbeat_ms: 100,
            election_timeout_ms: 400,
            retention_ms: 3_600_000,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let fail = |message: &str| Err(Error::Config(message.into()));
        if self.node_id.trim().is_empty() {
            return fail("node id must not be empty");
        }
        if self.lease_ms < 1_000 {
            return fail("lease must be at least 1000 ms");
        }
        if self.max_body_bytes < 1_024 {
            return fail("max body size must be at least 1024 bytes");
        }
        if self.snapshot_every < 10 {
            return fail("snapshots must be at least 10 entries apart");
        }
        if self.catch_up_ms == 0 || self.catch_up_ms >= 110_000 {
            return fail("catch-up time must be more than 0 and less than 110000 ms");
        }
        if !(50..=3_600_000).contains(&self.checkpoint_ms) {
            return fail("checkpoints must be 50 to 3600000 ms apart");
        }
        if !(10..=10_000).contains(&self.heartbeat_ms) {
            return fail("heartbeats must be 10 to 10000 ms apart");
        }
        if self.election_timeout_ms < 3 * self.heartbeat_ms || self.election_timeout_ms > 60_000 {
            return fail(
                "the election timeout must be at least three heartbeats, and at most 60000 ms",
            );
        }
        if self.retention_ms < 1_000 {
            return fail("finished jobs must be retained at least 1000 ms");
        }
        if self.checkpoint_every == 0 {
            return fail("checkpoints must be at least 1 record apart");
        }
        if self.token.as_deref() == Some("") {
            return fail("token must not be empty when set");
        }
        match (&self.token, &self.peer_secret) {
            (_, Some(secret)) if secret.len() < 16 => {
                return fail("the peer secret must be at least 16 characters")
            }
            (None, Some(_)) => {
                return fail("a peer secret needs an admin token (SKYCLAW_TOKEN) beside it")
            }
            (Some(token), Some(secret)) if token == secret => {
                return fail("the peer secret must differ from the admin token")
            }
            _ => {}
        }
        if !(60_000..=86_400_000).contains(&self.session_ttl_ms) {
            return fail("host sessions must last between 60000 ms and a day");
        }
        for url in self.peer_urls.iter().chain(&self.advertise_url) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "{url:?} is not an http:// or https:// URL"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(change: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        change(&mut config);
        match config.validate() {
            Err(Error::Config(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn raft_timing_and_checkpoints_are_bounded() {
        Config::default().validate().unwrap();
        let tuned = Config {
            heartbeat_ms: 50,
            election_timeout_ms: 150,
            ..Config::default()
        };
        tuned.validate().unwrap();
        assert!(refused(|c| c.heartbeat_ms = 5).contains("heartbeats"));
        assert!(refused(|c| c.election_timeout_ms = 250).contains("three heartbeats"));
        assert!(refused(|c| c.election_timeout_ms = 60_001).contains("60000"));
        assert!(refused(|c| c.checkpoint_ms = 10).contains("checkpoints"));
        assert!(refused(|c| c.checkpoint_every = 0).contains("1 record"));
        assert!(refused(|c| c.retention_ms = 999).contains("retained"));
    }
}
