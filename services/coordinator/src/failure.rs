//! Why a request to a running coordinator did not get what it asked for:
//! the one error type of its resource methods (`enqueue`, `claim`,
//! `records`, ...). The HTTP layer turns each into a status.

use skyclaw_state::Rejection;

use crate::proposer::WriteError;
use crate::raft::Unexpected;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Failure {
    /// The state refuses the request: it changes nothing.
    #[error("{0}")]
    Refused(#[from] Rejection),
    /// The caller did not prove who it is (a signature that does not
    /// verify, a challenge this cluster did not issue).
    #[error("{0}")]
    Unauthenticated(String),
    /// The write did not happen: no leader, no quorum, too large.
    #[error("{0:?}")]
    Write(WriteError),
    /// What was asked for is no longer here (a log compacted into a
    /// snapshot).
    #[error("{0}")]
    Gone(String),
    /// Not now: asking again may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of this node (a corrupt record, a broken invariant).
    #[error("{0}")]
    Internal(String),
}

impl From<WriteError> for Failure {
    fn from(error: WriteError) -> Failure {
        Failure::Write(error)
    }
}

impl From<Unexpected> for Failure {
    fn from(Unexpected(answer): Unexpected) -> Failure {
        tracing::error!("unexpected answer {answer:?}");
        Failure::Internal("internal error: unexpected answer".into())
    }
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::Refused(Rejection::Invalid(message.into()))
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::Refused(Rejection::NotFound(message.into()))
    }

    pub fn forbidden(message: impl Into<String>) -> Failure {
        Failure::Refused(Rejection::Forbidden(message.into()))
    }
}
