//! Helpers: a real coordinator in a temporary directory, requests through
//! `warp::test` without a socket, and waiting on conditions with a deadline.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use skyclaw_api::routes::{IDEMPOTENCY_HEADER, TOKEN_HEADER};
use skyclaw_coordinator::{http, Config, Coordinator};
use tempfile::TempDir;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

pub const TOKEN: &str = "test-token";
/// Short, so lease renewal can be seen within a test.
pub const LEASE_MS: u64 = 1_000;
pub const MAX_BODY_BYTES: u64 = 16 * 1024;
/// How long any wait in these tests may take before it counts as a hang.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn config(dir: &TempDir) -> Config {
    Config {
        node_id: "test-node".into(),
        db_path: dir.path().join("db"),
        token: Some(TOKEN.into()),
        lease_ms: LEASE_MS,
        max_body_bytes: MAX_BODY_BYTES,
        max_claim_wait_ms: 30_000,
        ..Config::default()
    }
}

/// Polls `condition` until it holds, failing the test after `PATIENCE`.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Fails the test if `future` takes longer than `PATIENCE`.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PATIENCE:?}"))
}

/// Starts a coordinator on `config` and waits until it leads and has
/// created its cluster.
pub async fn start_node(config: Config) -> Arc<Coordinator> {
    let node = Coordinator::start(config, "http://127.0.0.1:9".into())
        .await
        .expect("coordinator starts");
    wait_until("the cluster is created", || {
        node.read(|m| m.state.cluster_id().is_some())
    })
    .await;
    node
}

/// Shuts `node` down and waits until its database is closed, so the same
/// directory can be opened again in this process.
pub async fn stop_node(node: Arc<Coordinator>) {
    node.shutdown().await;
    let db: Weak<_> = Arc::downgrade(&node.db);
    drop(node);
    wait_until("the database is closed", || db.upgrade().is_none()).await;
}

/// A coordinator and its routes; the directory lives as long as it does.
pub struct TestNode {
    pub node: Arc<Coordinator>,
    pub routes: BoxedFilter<(Response,)>,
    pub dir: TempDir,
}

impl TestNode {
    pub async fn start() -> TestNode {
        TestNode::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = config(&dir);
        change(&mut config);
        let node = start_node(config).await;
        let routes = http::routes(node.clone());
        TestNode { node, routes, dir }
    }

    /// Stops the node and closes its database before the directory goes.
    pub async fn stop(self) {
        let TestNode { node, routes, dir } = self;
        drop(routes);
        stop_node(node).await;
        drop(dir);
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    /// A GET with the token, its answer as text (for `text/plain` routes).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = warp::test::request()
            .method("GET")
            .path(path)
            .header(TOKEN_HEADER, TOKEN)
            .reply(&self.routes)
            .await;
        let text = String::from_utf8_lossy(response.body()).into_owned();
        (response.status(), text)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body)).await
    }

    /// Sends a JSON request with the token and decodes the JSON answer;
    /// every error answer must be `{"error": "..."}`.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    /// [`TestNode::call`] with `credential` in place of the admin token.
    pub async fn call_as(
        &self,
        credential: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = warp::test::request()
            .method(method)
            .path(path)
            .header(TOKEN_HEADER, credential);
        if let Some(body) = body {
            request = request.json(&body);
        }
        decode(request.reply(&self.routes).await)
    }

    /// Enqueues `body` with idempotency key `key`, as the admin.
    pub async fn enqueue_with_key(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        let request = warp::test::request()
            .method("POST")
            .path("/v1/jobs")
            .header(TOKEN_HEADER, TOKEN)
            .header(IDEMPOTENCY_HEADER, key)
            .json(body);
        decode(request.reply(&self.routes).await)
    }

    // ----- the usual steps, each asserting success -------------------------

    pub async fn register(&self, host_id: &str, capabilities: &[&str], max_parallel: u32) -> Value {
        let (status, body) = self
            .post(
                "/v1/hosts/register",
                json!({
                    "hostId": host_id,
                    "name": format!("{host_id} name"),
                    "capabilities": capabilities,
                    "maxParallel": max_parallel,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["host"].clone()
    }

    pub async fn enqueue(&self, body: Value) -> Value {
        let (status, answer) = self.post("/v1/jobs", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["job"].clone()
    }

    /// Enqueues `echo <word>` and returns the job's id.
    pub async fn enqueue_echo(&self, word: &str) -> String {
        let job = self.enqueue(shell_job(word)).await;
        job["id"].as_str().unwrap().to_string()
    }

    /// Claims without waiting, in the MVP shape; `Value::Null` when no job.
    pub async fn claim(&self, host_id: &str) -> Value {
        let (status, body) = self
            .call("POST", &format!("/v1/hosts/{host_id}/claim"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["job"].clone()
    }

    pub async fn job(&self, job_id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/jobs/{job_id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["job"].clone()
    }

    pub async fn heartbeat(&self, host_id: &str, body: Value) -> Value {
        let (status, answer) = self
            .post(&format!("/v1/hosts/{host_id}/heartbeat"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    pub async fn complete(&self, job_id: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/jobs/{job_id}/complete"), body)
            .await
    }

    pub async fn head_seq(&self) -> u64 {
        self.node.read(|m| m.head.seq)
    }
}

/// Decodes a JSON answer and checks the shape of errors.
pub fn decode(response: warp::http::Response<bytes::Bytes>) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = serde_json::from_slice(response.body()).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(response.body())
        )
    });
    if !status.is_success() {
        assert_error_shape(&body);
    }
    (status, body)
}

pub fn assert_error_shape(body: &Value) {
    let object = body.as_object().expect("an error body is an object");
    assert_eq!(object.len(), 1, "an error body has one field: {body}");
    let message = object["error"].as_str().expect("error is a string");
    assert!(!message.is_empty(), "the error message is empty");
}

pub fn shell_job(word: &str) -> Value {
    json!({ "payload": { "kind": "shell", "command": "echo", "args": [word] } })
}

/// A completion body for a successful run.
pub fn success(host_id: &str, lease_epoch: Option<u64>) -> Value {
    let mut body = json!({
        "hostId": host_id,
        "success": true,
        "durationMs": 12,
        "exitCode": 0,
        "stdout": "hello\n",
        "stderr": "",
    });
    if let Some(epoch) = lease_epoch {
        body["leaseEpoch"] = json!(epoch);
    }
    body
}

pub fn error_message(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}
