//! The failover transport: a [`Client`] holds the coordinators' base URLs
//! and one connection pool, and sends each call to them in turn, starting
//! at the last one that answered. It builds every request from a route of
//! [`skyclaw_api::routes`] (its method, and its path with the id filled in
//! and escaped by the `url` crate), moves on when a coordinator cannot be
//! reached or says 502/503/504, backs off between passes over the list
//! (honouring `Retry-After`), and reads the answer. A refusal stops the
//! call at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyclaw_api::routes::{self, Access, Route, Segment, IDEMPOTENCY_HEADER, TOKEN_HEADER};
use skyclaw_api::ErrorBody;

use crate::config::parse_base_url;
use crate::{Backoff, ClientConfig, Error, Result};

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
    /// Sent with every request: the configured token.
    headers: HeaderMap,
    /// A keyed host's session, sent instead of the token on the host's own
    /// routes once it registered.
    session: std::sync::RwLock<Option<HeaderValue>>,
    request_timeout: Duration,
    passes: u32,
    idempotency_keys: bool,
    /// Index into `urls` of the last coordinator that answered.
    preferred: AtomicUsize,
}

/// One request, ready to send to any coordinator.
struct Call<'a> {
    route: Route,
    /// What goes where the route's path says `{id}`.
    id: Option<&'a str>,
    /// The query string, encoded.
    query: Option<String>,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a str>,
    timeout: Duration,
}

impl<'a> Call<'a> {
    fn new(route: Route, id: Option<&'a str>, timeout: Duration) -> Call<'a> {
        debug_assert_eq!(
            route.takes_id(),
            id.is_some(),
            "{route:?} is called with an id exactly when its path has one"
        );
        Call {
            route,
            id,
            query: None,
            body: None,
            idempotency_key: None,
            timeout,
        }
    }

    /// The route's path segments with the id in its place, unescaped:
    /// the `url` crate escapes each one as it appends it.
    fn path_segments(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.route.segments().map(|segment| match segment {
            Segment::Literal(literal) => literal,
            // The client calls no route that takes the rest of a path
            // (tiles are for transparency-log tooling).
            Segment::Id | Segment::Rest => self.id.unwrap_or_default(),
        })
    }

    fn method(&self) -> Method {
        match self.route.method {
            routes::Method::Get => Method::GET,
            routes::Method::Post => Method::POST,
        }
    }
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
                session: std::sync::RwLock::new(None),
                request_timeout: config.request_timeout,
                passes: config.passes.max(1),
                idempotency_keys: config.idempotency_keys,
                preferred: AtomicUsize::new(0),
            }),
        })
    }

    /// Sends `session` in `x-skyclaw-token` on the routes a host calls as
    /// itself (heartbeat, claim, completion, reading its job); every other
    /// route, registering again among them, keeps the configured token.
    pub fn set_session(&self, session: &str) -> Result<()> {
        let mut value = HeaderValue::from_str(session).map_err(|_| {
            Error::Config("a session must be printable ASCII without newlines".into())
        })?;
        value.set_sensitive(true);
        *self.inner.session.write().expect("session lock") = Some(value);
        Ok(())
    }

    fn headers_for(&self, route: Route) -> HeaderMap {
        let mut headers = self.inner.headers.clone();
        let as_host = matches!(
            route.access,
            Access::HostSelf | Access::LeaseHolder | Access::JobReader
        );
        if as_host {
            if let Some(session) = self.inner.session.read().expect("session lock").clone() {
                headers.insert(TOKEN_HEADER, session);
            }
        }
        headers
    }

    /// The URL calls start from: the last one that answered.
    pub fn current_url(&self) -> String {
        let index = self.inner.preferred.load(Ordering::Relaxed);
        self.inner.urls[index].to_string()
    }

    /// The configured limit on one request to one coordinator.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// A fresh key for a call the caller gave none, unless keys are off.
    pub(crate) fn made_up_key(&self) -> Option<String> {
        self.inner
            .idempotency_keys
            .then(crate::calls::new_idempotency_key)
    }

    /// A GET of `route`, with `id` for its `{id}`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        route: Route,
        id: Option<&str>,
    ) -> Result<T> {
        self.send(Call::new(route, id, self.inner.request_timeout))
            .await
    }

    /// A GET of `route` with `query` (a flat struct) as its query string.
    pub(crate) async fn get_with_query<T: DeserializeOwned>(
        &self,
        route: Route,
        query: &impl Serialize,
    ) -> Result<T> {
        let mut call = Call::new(route, None, self.inner.request_timeout);
        call.query = Some(serde_urlencoded::to_string(query).expect("flat queries encode"));
        self.send(call).await
    }

    /// A POST of `body` as JSON to `route`, with `id` for its `{id}`; the
    /// timeout is the configured one unless `timeout` says otherwise.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        route: Route,
        id: Option<&str>,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("request does not encode: {e}")))?;
        let timeout = timeout.unwrap_or(self.inner.request_timeout);
        let mut call = Call::new(route, id, timeout);
        call.body = Some(body);
        call.idempotency_key = idempotency_key;
        self.send(call).await
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
            segments.pop_if_empty().extend(call.path_segments());
        }
        let mut request = self
            .inner
            .http
            .request(call.method(), url)
            .headers(self.headers_for(call.route))
            .timeout(call.timeout);
        if let Some(query) = call.query.as_deref().filter(|q| !q.is_empty()) {
            request = request.query(&form_urlencoded_pairs(query));
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

/// An encoded query string as the pairs `reqwest` takes.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).expect("a query this client encoded decodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{closed_port_url, FakeCoordinator};
    use crate::DEFAULT_URL;

    fn client_for(urls: Vec<String>) -> Client {
        let mut config = ClientConfig::new(urls, None);
        config.passes = 1;
        Client::new(config).unwrap()
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

    #[test]
    fn only_gateway_statuses_move_on() {
        assert!(is_try_elsewhere(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_try_elsewhere(StatusCode::BAD_GATEWAY));
        assert!(!is_try_elsewhere(StatusCode::NOT_FOUND));
        assert!(!is_try_elsewhere(StatusCode::CONFLICT));
        assert!(!is_try_elsewhere(StatusCode::INTERNAL_SERVER_ERROR));
    }

    #[test]
    fn a_calls_path_is_its_routes_with_the_id_in_place() {
        let call = Call::new(routes::CLAIM, Some("a/b"), Duration::ZERO);
        let segments: Vec<&str> = call.path_segments().collect();
        assert_eq!(segments, ["v1", "hosts", "a/b", "claim"]);
        assert_eq!(call.method(), Method::POST);
        let call = Call::new(routes::HEALTH, None, Duration::ZERO);
        assert_eq!(call.path_segments().collect::<Vec<_>>(), ["health"]);
        assert_eq!(call.method(), Method::GET);
    }
}
