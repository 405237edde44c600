//! Raw HTTP calls to coordinators with the kit's token, for tests that
//! need every status as it came (a 503 apart from a 409) and for the
//! kit's own waits. `Err` is "no answer" (refused, reset, timed out), kept
//! apart from an answer that says no. Typed calls with failover and
//! retries are `skyclaw-client`'s.

use std::time::Duration;

use serde::de::DeserializeOwned;
use skyclaw_api::routes::{IDEMPOTENCY_HEADER, LEADER_HEADER, TOKEN_HEADER};

/// The cluster token of every coordinator the kit starts.
pub const TOKEN: &str = "skyclaw-testkit-token-7d2e";

/// An HTTP answer, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The `x-skyclaw-leader` header.
    pub leader: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not the expected JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Calls to any coordinator, with [`TOKEN`].
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
}

impl Api {
    /// Requests that get no answer within `timeout` fail.
    pub fn new(timeout: Duration) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout)
            .build()
            .expect("an HTTP client");
        Api { http }
    }

    pub async fn get(&self, url: &str, path: &str) -> Result<Reply, String> {
        let request = self.http.get(format!("{url}{path}"));
        send(request).await
    }

    pub async fn post(
        &self,
        url: &str,
        path: &str,
        body: &serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, String> {
        let mut request = self.http.post(format!("{url}{path}")).json(body);
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        send(request).await
    }

    /// The JSON of a 200 answer; `None` for anything else.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, path: &str) -> Option<T> {
        let reply = self.get(url, path).await.ok()?;
        (reply.status == 200).then(|| reply.json())
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Reply, String> {
    let response = request
        .header(TOKEN_HEADER, TOKEN)
        .send()
        .await
        .map_err(|e| with_sources(&e))?;
    let status = response.status().as_u16();
    let leader = response
        .headers()
        .get(LEADER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response
        .bytes()
        .await
        .map_err(|e| with_sources(&e))?
        .to_vec();
    Ok(Reply {
        status,
        leader,
        body,
    })
}

/// An error and its causes, which reqwest's own message leaves out
/// ("error sending request" says little without "connection reset").
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
