//! The flags every client command shares: where the coordinators are and
//! the token to show them.

use anyhow::Context;
use skyclaw_client::{parse_url_list, Client, ClientConfig, DEFAULT_URL};

#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
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

impl ClientArgs {
    pub fn client_config(&self) -> ClientConfig {
        let mut urls: Vec<String> = self.urls.iter().flat_map(|u| parse_url_list(u)).collect();
        if urls.is_empty() {
            urls = self.url.iter().flat_map(|u| parse_url_list(u)).collect();
        }
        if urls.is_empty() {
            urls.push(DEFAULT_URL.to_string());
        }
        ClientConfig::new(urls, non_empty(self.token.clone()))
    }

    pub fn connect(&self) -> anyhow::Result<Client> {
        Client::new(self.client_config()).context("cannot set up the coordinator client")
    }
}

/// An empty `SKYCLAW_TOKEN=` means no token.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}
