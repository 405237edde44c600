//! Why the auditor could not judge a log: it could not read the source, the
//! source is not a Skyclaw log, or the command line asks for something
//! impossible. These end a run with exit status 2. What the auditor finds
//! wrong in a log it could read is a [`Finding`](crate::Finding), never an
//! error.

/// Why a source could not be read or judged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, directory or database could not be opened or read.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    /// The input is not a Skyclaw log at all: not a segment (bad magic, a
    /// header cut short, an empty file), or a directory without segments.
    #[error("{name}: {reason}")]
    NotALog { name: String, reason: String },

    /// A format version this build does not know; a newer auditor may.
    #[error(
        "{what}: unsupported {part} format version {version}; a newer skyclaw-audit may read it"
    )]
    UnsupportedVersion {
        what: String,
        part: &'static str,
        version: u32,
    },

    /// No coordinator could be reached (or each answered "try elsewhere").
    #[error("cannot reach a coordinator: {0}")]
    Unreachable(String),

    /// A coordinator answered and refused the request.
    #[error("{url} refused: {message} (HTTP {status})")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },

    /// A coordinator data directory that cannot be read as one.
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },

    /// The command line asks for something that cannot work.
    #[error("{0}")]
    Usage(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
