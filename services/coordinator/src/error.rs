//! The coordinator's error type.

/// Why the coordinator could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("event log: {0}")]
    Log(#[from] skyclaw_log_format::Error),
    #[error(
        "the data directory belongs to node {stored:?}, but this node is configured as {configured:?}"
    )]
    IdentityMismatch { stored: String, configured: String },
    #[error("raft: {0}")]
    Raft(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
