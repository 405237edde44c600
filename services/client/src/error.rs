//! The crate's one error type. It keeps "the server said no"
//! ([`Error::Api`]) apart from "could not reach a server"
//! ([`Error::Unavailable`]), because callers act on them differently: a
//! refusal is final, an outage is waited out.

use std::time::Duration;

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A coordinator answered and refused the request (4xx, or a 5xx other
    /// than the "try elsewhere" ones). Retrying elsewhere would not help.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// No coordinator could be reached, or every one said 503 (no leader).
    /// `detail` names what each one said on the last pass.
    #[error("no coordinator reachable: {detail}")]
    Unavailable {
        detail: String,
        /// The longest `Retry-After` a coordinator asked for, if any.
        retry_after: Option<Duration>,
    },
    /// A coordinator accepted the request but its answer did not parse.
    #[error("unexpected answer from {url}: {reason}")]
    InvalidResponse { url: String, reason: String },
    /// The configuration cannot work (a malformed URL, a token that is not
    /// a valid header value).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 401: no credential, or one the coordinator no longer takes (a
    /// host's expired session: register again).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// 409: a conflicting idempotency key, or a stale lease.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Whether the failure was reaching a coordinator, not a refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

pub type Result<T> = std::result::Result<T, Error>;
