//! Raw HTTP against a coordinator, the way an attacker (or the MVP's own
//! host, which this client imitates byte for byte) sends it: no typed
//! client in the way, every status and body visible.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Cluster, TOKEN};

/// An answer: its status and its JSON body (`Null` when it had none).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The `error` text of a refusal.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

pub struct Http {
    client: reqwest::Client,
    url: String,
}

impl Http {
    /// A client for `cluster`, once it has a leader and has written its
    /// first event (until then every write is 503).
    pub async fn ready(cluster: &Cluster) -> Http {
        let http = Http {
            client: reqwest::Client::new(),
            url: cluster.url.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = http.get("/v1/status").await;
            if status.status == 200
                && !status.body["leader"].is_null()
                && status.body["head"]["seq"].as_u64() >= Some(1)
            {
                return http;
            }
            assert!(Instant::now() < deadline, "no leader in 30 s: {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let request = self.client.get(format!("{}{path}", self.url));
        send(request).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_keyed(path, body, None).await
    }

    pub async fn post_keyed(&self, path: &str, body: &Value, key: Option<&str>) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap());
        if let Some(key) = key {
            request = request.header("x-idempotency-key", key);
        }
        send(request).await
    }

    /// The coordinator's raft index: it moves with every proposal.
    pub async fn raft_index(&self) -> u64 {
        let status = self.get("/v1/status").await;
        assert_eq!(status.status, 200, "{status:?}");
        status.body["raftIndex"].as_u64().expect("raftIndex")
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request
        .header("x-skyclaw-token", TOKEN)
        .send()
        .await
        .expect("the coordinator answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "status {status}: not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer { status, body }
}
