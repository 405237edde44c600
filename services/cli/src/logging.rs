//! How `skyclaw` logs to stderr: readable text by default, or one JSON
//! object per line (`--log-format json`, `SKYCLAW_LOG_FORMAT`) for the
//! long-running roles, whose logs a collector reads. A JSON line carries
//! the span it was logged in: a coordinator's request span holds the
//! request's `request_id`.

/// The shape of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The flag the long-running roles take.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// How log lines on stderr look.
    #[arg(
        long,
        env = "SKYCLAW_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// Installs the subscriber: `RUST_LOG` if set, `default_filter` otherwise.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
