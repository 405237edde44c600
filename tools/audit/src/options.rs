//! [`VerifyOptions`]: what a verification checks beyond the chain and the
//! replay, and how it reads a coordinator.

use skyclaw_log_format::ChainHead;

/// The most records one `GET /v1/events` returns.
pub const MAX_PAGE: u64 = 10_000;

/// What to check beyond the chain and the replay, and how.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// A head recorded earlier (`--expect-head SEQ:HASH`): the record at its
    /// seq must carry its hash, and the log must reach it.
    /// Default: none.
    pub expect_head: Option<ChainHead>,
    /// Check that each completion's output in the blob store matches the
    /// hash and size the log recorded (data directories and coordinators).
    /// Default: false.
    pub blobs: bool,
    /// Compare the replayed digest with the coordinator's
    /// (`GET /v1/state/digest`) or with a data directory's stored views.
    /// Default: true.
    pub compare: bool,
    /// Shown to coordinators in `x-skyclaw-token`.
    /// Default: none.
    pub token: Option<String>,
    /// Records asked for per `GET /v1/events` (at most 10000).
    /// Default: 10000.
    pub page_size: u64,
    /// Draw a progress bar on stderr, if stderr is a terminal.
    /// Default: false.
    pub progress: bool,
    /// The log keys whose majority a checkpoint needs (C2SP vkeys).
    /// Default: none, the cluster's voters' keys as it lists them.
    pub trust: Option<Vec<String>>,
    /// Where the last checkpoint verified is kept, so the next run holds
    /// the log to it. Default: none.
    pub state: Option<std::path::PathBuf>,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions {
            expect_head: None,
            blobs: false,
            compare: true,
            token: None,
            page_size: MAX_PAGE,
            progress: false,
            trust: None,
            state: None,
        }
    }
}
