//! The command-line flags every client command shares (the `skyclaw`
//! subcommands and `skyclaw-audit`): where the coordinators are and the
//! token to show them, each also read from its environment variable.

use crate::{parse_url_list, Client, ClientConfig, Result, DEFAULT_URL};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// Coordinator URLs, comma-separated or repeated; any of them will do.
    #[arg(
        long = "url",
        value_name = "URL",
        env = "SKYCLAW_COORDINATOR_URLS",
        value_delimiter = ','
    )]
    pub urls: Vec<String>,
    /// A single coordinator URL, used when no --url is given.
    #[arg(
        long = "coordinator-url",
        value_name = "URL",
        env = "SKYCLAW_COORDINATOR_URL"
    )]
    pub url: Option<String>,
    /// The shared token, sent in x-skyclaw-token.
    #[arg(long, env = "SKYCLAW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ConnectArgs {
    /// The `--url` list, else `--coordinator-url`, else [`DEFAULT_URL`].
    pub fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.urls.iter().flat_map(|u| parse_url_list(u)).collect();
        if urls.is_empty() {
            urls = self.url.iter().flat_map(|u| parse_url_list(u)).collect();
        }
        if urls.is_empty() {
            urls.push(DEFAULT_URL.to_string());
        }
        urls
    }

    /// The token, unless none or a blank one (`SKYCLAW_TOKEN=`) was given.
    pub fn token(&self) -> Option<String> {
        non_empty(self.token.clone())
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.urls(), self.token())
    }

    pub fn connect(&self) -> Result<Client> {
        Client::new(self.client_config())
    }
}

/// An empty or blank value means none.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_from_the_list_then_the_single_url_then_the_default() {
        let args = |urls: &[&str], url: Option<&str>| ConnectArgs {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            url: url.map(str::to_owned),
            token: Some(" ".into()),
        };
        assert_eq!(
            args(&["http://a:1, http://b:2"], Some("http://c:3")).urls(),
            ["http://a:1", "http://b:2"]
        );
        assert_eq!(args(&[], Some("http://c:3")).urls(), ["http://c:3"]);
        assert_eq!(args(&[], None).urls(), [DEFAULT_URL]);
        assert_eq!(args(&[], None).token(), None);
    }
}
