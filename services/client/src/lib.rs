//! A typed HTTP client for Skyclaw coordinators, used by the host daemon, the
//! `skyclaw` command and the benchmark. It holds a list of coordinator URLs,
//! starts each call at the last one that answered, and moves on to the next
//! when a coordinator cannot be reached or answers 503 (no leader). A 4xx is
//! the server saying no: it comes back as [`Error::Api`] at once, without
//! trying elsewhere. Every call has a timeout, and an enqueue carries an
//! idempotency key (unless [`ClientConfig::idempotency_keys`] is off) so
//! that a retry never makes a second job.
//!
//! Layout:
//! - [`args`]: the `--url`/`--token` flags every client command shares
//! - [`backoff`]: delays with jitter between retries, shared with the host
//! - this file: [`ClientConfig`], [`Client`] and its calls, [`Error`]

pub mod args;
pub mod backoff;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyclaw_api::routes::{IDEMPOTENCY_HEADER, MEMBERSHIP_TIMEOUT, TOKEN_HEADER};
use skyclaw_api::{
    AddMemberRequest, BatchEnqueueRequest, ClaimRequest, ClaimResponse, ClusterStatus,
    CompleteRequest, EnqueueRequest, ErrorBody, Health, HeartbeatRequest, HeartbeatResponse, Host,
    HostResponse, HostsResponse, Job, JobResponse, JobStatus, JobsPage, JobsResponse, LogHead,
    RegisterHostRequest, RemoveMemberRequest, StateDigest, StateResponse, Status,
};

pub use args::{non_empty, ConnectArgs};
pub use backoff::Backoff;

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

/// The URL used when none is configured.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8787";

/// How a [`Client`] reaches the coordinators.
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

/// Filters for `GET /v1/jobs`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListJobs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Extra time a long-poll claim gets beyond its wait, for the answer to
/// travel back.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(5);

/// A handle on the coordinators. Cheap to clone; clones share the
/// connection pool and the memory of which URL last answered.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    urls: Vec<Url>,
    headers: HeaderMap,
    request_timeout: Duration,
    passes: u32,
    idempotency_keys: bool,
    /// Index into `urls` of the last coordinator that answered.
    preferred: AtomicUsize,
}

/// One request, ready to send to any coordinator.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Option<&'a ListJobs>,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a str>,
    timeout: Duration,
}

/// How one attempt at one coordinator went.
enum Attempt {
    Answered(reqwest::Response, usize),
    Refused(Error),
    TryElsewhere(String, Option<Duration>),
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client> {
        if config.urls.is_empty() {
            return Err(Error::Config("no coordinator URL given".into()));
        }
        let urls = config
            .urls
            .iter()
            .map(|url| parse_base_url(url))
            .collect::<Result<Vec<_>>>()?;
        let mut headers = HeaderMap::new();
        if let Some(token) = &config.token {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                Error::Config("the token must be printable ASCII without newlines".into())
            })?;
            value.set_sensitive(true);
            headers.insert(TOKEN_HEADER, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                urls,
                headers,
                request_timeout: config.request_timeout,
                passes: config.passes.max(1),
                idempotency_keys: config.idempotency_keys,
                preferred: AtomicUsize::new(0),
            }),
        })
    }

    /// The URL calls start from: the last one that answered.
    pub fn current_url(&self) -> String {
        let index = self.inner.preferred.load(Ordering::Relaxed);
        self.inner.urls[index].to_string()
    }

    /// `GET /health` of whichever coordinator answers first.
    pub async fn health(&self) -> Result<Health> {
        self.get(&["health"]).await
    }

    /// `GET /v1/status`: node, leader, log head, queue depth.
    pub async fn status(&self) -> Result<Status> {
        self.get(&["v1", "status"]).await
    }

    /// `GET /v1/state`: every host and job (the MVP's whole-state view).
    pub async fn state(&self) -> Result<StateResponse> {
        self.get(&["v1", "state"]).await
    }

    /// `GET /v1/log/head`.
    pub async fn log_head(&self) -> Result<LogHead> {
        self.get(&["v1", "log", "head"]).await
    }

    /// `GET /v1/cluster`: members, leader, term and each member's lag.
    pub async fn cluster(&self) -> Result<ClusterStatus> {
        self.get(&["v1", "cluster"]).await
    }

    /// `POST /v1/cluster/add`: the coordinator serving at `url` joins as a
    /// learner and becomes a voter once caught up, which may take a while
    /// (a snapshot); the call waits up to [`MEMBERSHIP_TIMEOUT`].
    pub async fn add_member(&self, name: &str, url: &str) -> Result<()> {
        let request = AddMemberRequest {
            name: name.to_string(),
            url: url.to_string(),
        };
        let path = ["v1", "cluster", "add"];
        let _: serde_json::Value = self
            .post(&path, &request, None, Some(MEMBERSHIP_TIMEOUT))
            .await?;
        Ok(())
    }

    /// `POST /v1/cluster/remove`: a 404 if no member has that name.
    pub async fn remove_member(&self, name: &str) -> Result<()> {
        let request = RemoveMemberRequest {
            name: name.to_string(),
        };
        let path = ["v1", "cluster", "remove"];
        let _: serde_json::Value = self
            .post(&path, &request, None, Some(MEMBERSHIP_TIMEOUT))
            .await?;
        Ok(())
    }

    /// `GET /v1/state/digest`.
    pub async fn state_digest(&self) -> Result<StateDigest> {
        self.get(&["v1", "state", "digest"]).await
    }

    /// `POST /v1/hosts/register`: safe to repeat with the same host id.
    pub async fn register_host(&self, request: &RegisterHostRequest) -> Result<Host> {
        let path = ["v1", "hosts", "register"];
        let response: HostResponse = self.post(&path, request, None, None).await?;
        Ok(response.host)
    }

    /// `POST /v1/hosts/:id/heartbeat`. A 404 means the coordinator does not
    /// know the host: register again.
    pub async fn heartbeat(
        &self,
        host_id: &str,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse> {
        let path = ["v1", "hosts", host_id, "heartbeat"];
        self.post(&path, request, None, None).await
    }

    /// `POST /v1/hosts/:id/claim` in the MVP's shape: one job or none,
    /// waiting up to `wait` for one to appear. Retries carry one
    /// idempotency key, so a lost answer costs the job no attempt.
    pub async fn claim(&self, host_id: &str, wait: Option<Duration>) -> Result<Option<Job>> {
        let request = ClaimRequest {
            wait_ms: wait.map(duration_ms),
            max_jobs: None,
        };
        let path = ["v1", "hosts", host_id, "claim"];
        let timeout = self.inner.request_timeout + wait.unwrap_or_default() + LONG_POLL_MARGIN;
        // One key for every retry of this call: a retry whose first answer
        // was lost gets the same lease back rather than a second one.
        let key = self.made_up_key();
        let response: ClaimResponse = self
            .post(&path, &request, key.as_deref(), Some(timeout))
            .await?;
        Ok(response.job)
    }

    /// `POST /v1/hosts/:id/claim` with `maxJobs`: up to `max_jobs` jobs,
    /// waiting up to `wait` for the first to appear.
    pub async fn claim_jobs(
        &self,
        host_id: &str,
        max_jobs: u32,
        wait: Option<Duration>,
    ) -> Result<Vec<Job>> {
        let request = ClaimRequest {
            wait_ms: wait.map(duration_ms),
            max_jobs: Some(max_jobs),
        };
        let path = ["v1", "hosts", host_id, "claim"];
        let timeout = self.inner.request_timeout + wait.unwrap_or_default() + LONG_POLL_MARGIN;
        let key = self.made_up_key();
        let response: JobsResponse = self
            .post(&path, &request, key.as_deref(), Some(timeout))
            .await?;
        Ok(response.jobs)
    }

    /// `POST /v1/jobs`. Without a key one is made up, so that the retries
    /// of this one call cannot make two jobs; pass your own to make retries
    /// of your own (a rerun script) safe too.
    pub async fn enqueue(
        &self,
        request: &EnqueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Job> {
        let generated = self.made_up_key();
        let key = idempotency_key.or(generated.as_deref());
        let response: JobResponse = self.post(&["v1", "jobs"], request, key, None).await?;
        Ok(response.job)
    }

    /// `POST /v1/jobs/batch`: all the jobs or none, with an idempotency key
    /// like [`Client::enqueue`].
    pub async fn enqueue_batch(
        &self,
        request: &BatchEnqueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Vec<Job>> {
        let generated = self.made_up_key();
        let key = idempotency_key.or(generated.as_deref());
        let path = ["v1", "jobs", "batch"];
        let response: JobsResponse = self.post(&path, request, key, None).await?;
        Ok(response.jobs)
    }

    /// `GET /v1/jobs/:id`.
    pub async fn job(&self, job_id: &str) -> Result<Job> {
        let response: JobResponse = self.get(&["v1", "jobs", job_id]).await?;
        Ok(response.job)
    }

    /// `GET /v1/jobs`: one page, oldest first.
    pub async fn list_jobs(&self, filter: &ListJobs) -> Result<JobsPage> {
        self.send(Call {
            method: Method::GET,
            path: &["v1", "jobs"],
            query: Some(filter),
            body: None,
            idempotency_key: None,
            timeout: self.inner.request_timeout,
        })
        .await
    }

    /// `POST /v1/jobs/:id/cancel`: a queued job ends at once, a leased one
    /// when its host has stopped it.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        let path = ["v1", "jobs", job_id, "cancel"];
        let response: JobResponse = self.post(&path, &serde_json::json!({}), None, None).await?;
        Ok(response.job)
    }

    /// `POST /v1/jobs/:id/complete`. A 409 means the lease is no longer the
    /// caller's; the result is not recorded.
    pub async fn complete_job(&self, job_id: &str, request: &CompleteRequest) -> Result<Job> {
        let path = ["v1", "jobs", job_id, "complete"];
        let response: JobResponse = self.post(&path, request, None, None).await?;
        Ok(response.job)
    }

    /// `GET /v1/hosts`.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        let response: HostsResponse = self.get(&["v1", "hosts"]).await?;
        Ok(response.hosts)
    }

    /// Polls a job until it reaches a final status, checking every
    /// `interval` at first and backing off to a second between checks.
    pub async fn wait_for_job(&self, job_id: &str, interval: Duration) -> Result<Job> {
        let mut delay = interval;
        loop {
            let job = self.job(job_id).await?;
            if job.status.is_final() {
                return Ok(job);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1)).max(interval);
        }
    }

    /// A fresh key for a call the caller gave none, unless keys are off.
    fn made_up_key(&self) -> Option<String> {
        self.inner.idempotency_keys.then(new_idempotency_key)
    }

    async fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<T> {
        self.send(Call {
            method: Method::GET,
            path,
            query: None,
            body: None,
            idempotency_key: None,
            timeout: self.inner.request_timeout,
        })
        .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &impl Serialize,
        idempotency_key: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("request does not encode: {e}")))?;
        self.send(Call {
            method: Method::POST,
            path,
            query: None,
            body: Some(body),
            idempotency_key,
            timeout: timeout.unwrap_or(self.inner.request_timeout),
        })
        .await
    }

    /// Sends `call` to the coordinators in turn, starting at the preferred
    /// one, for up to `passes` passes over the list.
    async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let count = self.inner.urls.len();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut failures = Vec::new();
        let mut retry_after = None;
        for pass in 0..self.inner.passes {
            if pass > 0 {
                let delay = retry_after
                    .map(|wait: Duration| wait.min(Duration::from_secs(5)))
                    .unwrap_or_else(|| backoff.next_delay());
                tokio::time::sleep(delay).await;
            }
            failures.clear();
            retry_after = None;
            let start = self.inner.preferred.load(Ordering::Relaxed);
            for step in 0..count {
                let index = (start + step) % count;
                match self.attempt(&call, index).await {
                    Attempt::Answered(response, index) => {
                        return self.read_answer(response, index).await;
                    }
                    Attempt::Refused(error) => {
                        self.inner.preferred.store(index, Ordering::Relaxed);
                        return Err(error);
                    }
                    Attempt::TryElsewhere(reason, wait) => {
                        tracing::debug!(url = %self.inner.urls[index], %reason, "coordinator unavailable");
                        failures.push(format!("{}: {reason}", self.inner.urls[index]));
                        retry_after = retry_after.max(wait);
                    }
                }
            }
        }
        Err(Error::Unavailable {
            detail: failures.join("; "),
            retry_after,
        })
    }

    async fn attempt(&self, call: &Call<'_>, index: usize) -> Attempt {
        let mut url = self.inner.urls[index].clone();
        // `parse_base_url` only admits URLs that can be a base, which are
        // exactly those with segments to extend.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(call.path);
        }
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url)
            .headers(self.inner.headers.clone())
            .timeout(call.timeout);
        if let Some(query) = call.query {
            request = request.query(query);
        }
        if let Some(body) = &call.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        if let Some(key) = call.idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::TryElsewhere(transport_reason(&error), None),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Answered(response, index);
        }
        if is_try_elsewhere(status) {
            let wait = retry_after_of(response.headers());
            let message = error_message(response).await;
            return Attempt::TryElsewhere(format!("{message} (HTTP {})", status.as_u16()), wait);
        }
        Attempt::Refused(Error::Api {
            status: status.as_u16(),
            message: error_message(response).await,
        })
    }

    async fn read_answer<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
        index: usize,
    ) -> Result<T> {
        self.inner.preferred.store(index, Ordering::Relaxed);
        let url = response.url().to_string();
        let bytes = response.bytes().await.map_err(|e| Error::InvalidResponse {
            url: url.clone(),
            reason: transport_reason(&e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
            url,
            reason: e.to_string(),
        })
    }
}

/// A fresh idempotency key.
pub fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parse_base_url(text: &str) -> Result<Url> {
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

/// 503 is "no leader right now"; 502 and 504 come from a proxy in front of
/// a coordinator that is down. Another coordinator may do better.
fn is_try_elsewhere(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

fn retry_after_of(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The `error` of a JSON error body, or the status text when the body is
/// something else.
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => body.error,
        Err(_) => status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_string(),
    }
}

fn transport_reason(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut reason = what.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
    fn bad_urls_are_refused_up_front() {
        for url in ["not a url", "https://a:1", "file:///tmp/x"] {
            let config = ClientConfig::new(vec![url.to_string()], None);
            assert!(
                matches!(Client::new(config), Err(Error::Config(_))),
                "{url}"
            );
        }
        let empty = ClientConfig::new(Vec::new(), None);
        assert!(matches!(Client::new(empty), Err(Error::Config(_))));
    }

    #[test]
    fn a_token_with_a_newline_is_refused() {
        let config = ClientConfig::new(vec![DEFAULT_URL.into()], Some("a\nb".into()));
        assert!(matches!(Client::new(config), Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn unreachable_and_503_fail_over_and_the_answering_url_sticks() {
        let dead = closed_port_url().await;
        let busy = FakeCoordinator::start(|_| (503, r#"{"error":"no leader"}"#.into())).await;
        let good = FakeCoordinator::start(|_| (200, r#"{"ok":true,"nodeId":"n2"}"#.into())).await;
        let client = client_for(vec![dead, busy.url(), good.url()]);

        let health = client.health().await.unwrap();
        assert_eq!(health.node_id, "n2");
        assert_eq!(
            client.current_url(),
            Url::parse(&good.url()).unwrap().to_string()
        );
        assert_eq!(busy.requests().len(), 1);

        client.health().await.unwrap();
        assert_eq!(
            busy.requests().len(),
            1,
            "the next call starts where the last worked"
        );
        assert_eq!(good.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried_elsewhere() {
        let refusing =
            FakeCoordinator::start(|_| (404, r#"{"error":"job nope not found"}"#.into())).await;
        let other = FakeCoordinator::start(|_| (200, "{}".into())).await;
        let client = client_for(vec![refusing.url(), other.url()]);

        let error = client.job("nope").await.unwrap_err();
        assert!(error.is_not_found(), "{error}");
        assert_eq!(error.to_string(), "job nope not found (HTTP 404)");
        assert!(other.requests().is_empty());
    }

    #[tokio::test]
    async fn an_enqueue_retried_elsewhere_keeps_its_idempotency_key() {
        let busy = FakeCoordinator::start(|_| (503, r#"{"error":"no leader"}"#.into())).await;
        let good = FakeCoordinator::start(|_| (200, format!(r#"{{"job":{JOB_JSON}}}"#))).await;
        let client = client_for(vec![busy.url(), good.url()]);

        let job = client
            .enqueue(&EnqueueRequest::shell("true", Vec::new()), None)
            .await
            .unwrap();
        assert_eq!(job.id, "job-1");
        let first = busy.requests()[0].header(IDEMPOTENCY_HEADER).unwrap();
        let second = good.requests()[0].header(IDEMPOTENCY_HEADER).unwrap();
        assert!(!first.is_empty());
        assert_eq!(first, second);
        assert_eq!(busy.requests()[0].path, "/v1/jobs");
    }

    #[tokio::test]
    async fn the_token_and_a_given_key_are_sent() {
        let good = FakeCoordinator::start(|_| (200, format!(r#"{{"job":{JOB_JSON}}}"#))).await;
        let mut config = ClientConfig::new(vec![good.url()], Some("s3cret".into()));
        config.passes = 1;
        let client = Client::new(config).unwrap();
        client
            .enqueue(&EnqueueRequest::shell("true", Vec::new()), Some("mine"))
            .await
            .unwrap();
        let request = &good.requests()[0];
        assert_eq!(request.header(TOKEN_HEADER).as_deref(), Some("s3cret"));
        assert_eq!(request.header(IDEMPOTENCY_HEADER).as_deref(), Some("mine"));
    }

    #[tokio::test]
    async fn without_made_up_keys_an_enqueue_carries_none() {
        let good = FakeCoordinator::start(|_| (200, format!(r#"{{"job":{JOB_JSON}}}"#))).await;
        let mut config = ClientConfig::new(vec![good.url()], None);
        config.passes = 1;
        config.idempotency_keys = false;
        let client = Client::new(config).unwrap();
        client
            .enqueue(&EnqueueRequest::shell("true", Vec::new()), None)
            .await
            .unwrap();
        assert_eq!(good.requests()[0].header(IDEMPOTENCY_HEADER), None);
    }

    #[tokio::test]
    async fn when_nobody_answers_the_error_says_so_with_retry_after() {
        let busy = FakeCoordinator::start(|_| (503, r#"{"error":"no leader"}"#.into())).await;
        let mut config = ClientConfig::new(vec![busy.url()], None);
        config.passes = 2;
        let client = Client::new(config).unwrap();
        let error = client.status().await.unwrap_err();
        match &error {
            Error::Unavailable {
                detail,
                retry_after,
            } => {
                assert!(detail.contains("no leader (HTTP 503)"), "{detail}");
                assert_eq!(*retry_after, Some(Duration::ZERO));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert_eq!(busy.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_silent_coordinator_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ClientConfig::new(vec![url], None);
        config.request_timeout = Duration::from_millis(200);
        config.passes = 1;
        let client = Client::new(config).unwrap();
        let started = std::time::Instant::now();
        let error = client.health().await.unwrap_err();
        assert!(error.to_string().contains("timed out"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[tokio::test]
    async fn list_filters_travel_as_a_query_and_ids_are_escaped() {
        let good = FakeCoordinator::start(|_| (200, r#"{"jobs":[],"next":"j9"}"#.into())).await;
        let client = client_for(vec![good.url()]);
        let page = client
            .list_jobs(&ListJobs {
                status: Some(JobStatus::Queued),
                limit: Some(5),
                after: None,
            })
            .await
            .unwrap();
        assert_eq!(page.next.as_deref(), Some("j9"));
        assert_eq!(good.requests()[0].path, "/v1/jobs?status=queued&limit=5");

        let _ = client.job("a/b c").await;
        assert_eq!(good.requests()[1].path, "/v1/jobs/a%2Fb%20c");
    }

    const JOB_JSON: &str = r#"{"id":"job-1","createdAt":1,"updatedAt":1,"status":"queued",
        "attempts":0,"maxAttempts":3,"priority":0,"requirement":{"requiredCapabilities":[]},
        "payload":{"kind":"shell","command":"true"}}"#;

    fn client_for(urls: Vec<String>) -> Client {
        let mut config = ClientConfig::new(urls, None);
        config.passes = 1;
        Client::new(config).unwrap()
    }

    /// A URL on which nothing listens.
    async fn closed_port_url() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    #[derive(Clone, Debug)]
    struct SeenRequest {
        path: String,
        headers: Vec<(String, String)>,
    }

    impl SeenRequest {
        fn header(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        }
    }

    /// A one-request-per-connection HTTP server answering every request
    /// with what `answer` says, and remembering what it was asked.
    struct FakeCoordinator {
        addr: std::net::SocketAddr,
        seen: Arc<std::sync::Mutex<Vec<SeenRequest>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl FakeCoordinator {
        async fn start(
            answer: impl Fn(&SeenRequest) -> (u16, String) + Send + Sync + 'static,
        ) -> FakeCoordinator {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let answer = Arc::new(answer);
            let log = seen.clone();
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    stream.read_line(&mut line).await.unwrap();
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    loop {
                        line.clear();
                        stream.read_line(&mut line).await.unwrap();
                        let Some((key, value)) = line.trim_end().split_once(':') else {
                            break;
                        };
                        headers.push((key.trim().to_string(), value.trim().to_string()));
                    }
                    let request = SeenRequest { path, headers };
                    let length: usize = request
                        .header("content-length")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let (status, body) = answer(&request);
                    log.lock().unwrap().push(request);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         retry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.get_mut().write_all(reply.as_bytes()).await.unwrap();
                }
            });
            FakeCoordinator { addr, seen, task }
        }

        fn url(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn requests(&self) -> Vec<SeenRequest> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for FakeCoordinator {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    #[test]
    fn only_gateway_statuses_move_on() {
        assert!(is_try_elsewhere(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_try_elsewhere(StatusCode::BAD_GATEWAY));
        assert!(!is_try_elsewhere(StatusCode::NOT_FOUND));
        assert!(!is_try_elsewhere(StatusCode::CONFLICT));
        assert!(!is_try_elsewhere(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
