//! How a client reaches the coordinators: [`ClientConfig`] with its
//! defaults, the comma-separated URL lists that flags and the environment
//! give, and the check every base URL passes before the first call.

use std::time::Duration;

use reqwest::Url;

use crate::{Error, Result};

/// The URL used when none is configured.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8787";

/// How a [`Client`](crate::Client) reaches the coordinators.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Coordinator base URLs (`http://host:port`). Any of them will do:
    /// followers forward writes to the leader.
    /// Default: `http://127.0.0.1:8787`.
    pub urls: Vec<String>,
    /// Sent in `x-skyclaw-token` on every request.
    /// Default: none.
    pub token: Option<String>,
    /// The limit on one request to one coordinator. A long-poll claim gets
    /// its wait on top of this.
    /// Default: 10 s.
    pub request_timeout: Duration,
    /// The limit on opening a connection, so a dead address fails fast.
    /// Default: 2 s.
    pub connect_timeout: Duration,
    /// Passes over the whole URL list before a call gives up with
    /// [`Error::Unavailable`]; between passes it backs off.
    /// Default: 3.
    pub passes: u32,
    /// Make up an idempotency key for every enqueue and claim that has
    /// none, so that a retry cannot make a second job or lease. Off only
    /// for load that never retries (`passes: 1`, one URL) and measures
    /// requests as they come without keys (the benchmark).
    /// Default: true.
    pub idempotency_keys: bool,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            urls: vec![DEFAULT_URL.to_string()],
            token: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            passes: 3,
            idempotency_keys: true,
        }
    }
}

impl ClientConfig {
    /// A configuration for these URLs and token, defaults otherwise.
    pub fn new(urls: Vec<String>, token: Option<String>) -> ClientConfig {
        ClientConfig {
            urls,
            token,
            ..ClientConfig::default()
        }
    }
}

/// Splits a comma-separated URL list (`SKYCLAW_COORDINATOR_URLS`), ignoring
/// blanks.
pub fn parse_url_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

/// A coordinator base URL: plain `http://` with a host, so that a route's
/// path segments can be appended to it.
pub(crate) fn parse_base_url(text: &str) -> Result<Url> {
    let url = Url::parse(text.trim()).map_err(|e| Error::Config(format!("{text:?}: {e}")))?;
    if url.scheme() != "http" {
        return Err(Error::Config(format!(
            "{text:?}: only http:// coordinator URLs are supported"
        )));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::Config(format!("{text:?} has no host")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lists_split_on_commas_and_skip_blanks() {
        assert_eq!(
            parse_url_list(" http://a:1, ,http://b:2,"),
            vec!["http://a:1".to_string(), "http://b:2".to_string()]
        );
    }

    #[test]
    fn only_plain_http_urls_with_a_host_are_bases() {
        for url in ["not a url", "https://a:1", "file:///tmp/x"] {
            assert!(
                matches!(parse_base_url(url), Err(Error::Config(_))),
                "{url}"
            );
        }
        assert!(parse_base_url(" http://a:1 ").is_ok());
    }
}
