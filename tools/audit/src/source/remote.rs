//! A coordinator as a source: [`Remote`] fetches the log page by page from
//! `GET /v1/events` (a segment per page) and reads `GET /v1/log/head` and
//! `GET /v1/state/digest`, failing over between the URLs it was given; the
//! page loop resumes from the last verified record after a dropped
//! connection or a page cut short.

use std::ops::ControlFlow;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use skyclaw_api::routes::{SEGMENT_CONTENT_TYPE, TOKEN_HEADER};
use skyclaw_api::{Job, JobResponse, LogHead, StateDigest};
use skyclaw_log_format::{Error as FormatError, SegmentReader};

use crate::finding::{classify, Finding, FindingKind, Stop};
use crate::options::MAX_PAGE;
use crate::pass::Pass;
use crate::Error;

/// How many times one page is tried before the run gives up on it.
const PAGE_ATTEMPTS: u32 = 6;

/// A handle on the coordinators of one cluster. Any of them will do: they
/// hold the same log, and a digest is comparable at any seq.
pub struct Remote {
    http: reqwest::Client,
    urls: Vec<Url>,
    token: Option<HeaderValue>,
    /// Index into `urls` of the last coordinator that answered.
    preferred: usize,
}

impl Remote {
    /// A handle on the coordinators at `urls` (`http://host:port`), showing
    /// `token` in `x-skyclaw-token`.
    pub fn new(urls: &[String], token: Option<&str>) -> Result<Remote, Error> {
        if urls.is_empty() {
            return Err(Error::Usage("no coordinator URL given".into()));
        }
        let urls = urls
            .iter()
            .map(|text| {
                let url = Url::parse(text.trim())
                    .map_err(|e| Error::Usage(format!("{text:?} is not a URL: {e}")))?;
                if url.scheme() != "http" || url.host().is_none() {
                    return Err(Error::Usage(format!(
                        "{text:?}: coordinator URLs are http://host:port"
                    )));
                }
                Ok(url)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let token = token
            .map(|token| {
                let mut value = HeaderValue::from_str(token).map_err(|_| {
                    Error::Usage("the token must be printable ASCII without newlines".into())
                })?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up HTTP: {e}")))?;
        Ok(Remote {
            http,
            urls,
            token,
            preferred: 0,
        })
    }

    /// The URL of the coordinator that last answered.
    pub fn url(&self) -> String {
        self.urls[self.preferred]
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    /// One page of the log as segment bytes: up to `limit` records from
    /// `from`.
    pub async fn events(&mut self, from: u64, limit: u64) -> Result<Vec<u8>, Error> {
        let query = [("from", from.to_string()), ("limit", limit.to_string())];
        let response = self.get(&["v1", "events"], &query).await?;
        let url = response.url().to_string();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type.starts_with(SEGMENT_CONTENT_TYPE) {
            return Err(Error::NotALog {
                name: url,
                reason: format!("answered {content_type:?}, not a log segment"),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Unreachable(format!("{url}: reading the answer: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// `GET /v1/log/head`.
    pub async fn head(&mut self) -> Result<LogHead, Error> {
        self.get_json(&["v1", "log", "head"]).await
    }

    /// `GET /v1/state/digest`.
    pub async fn digest(&mut self) -> Result<StateDigest, Error> {
        self.get_json(&["v1", "state", "digest"]).await
    }

    /// `GET /v1/log/checkpoint`: the latest signed checkpoint, `None` if
    /// the cluster signed none yet.
    pub async fn checkpoint(&mut self) -> Result<Option<String>, Error> {
        match self.get(&["v1", "log", "checkpoint"], &[]).await {
            Ok(response) => {
                let url = response.url().to_string();
                let text = response
                    .text()
                    .await
                    .map_err(|e| Error::Unreachable(format!("{url}: reading the answer: {e}")))?;
                Ok(Some(text))
            }
            Err(Error::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/log/keys`: the voters' log keys (C2SP vkeys).
    pub async fn log_keys(&mut self) -> Result<Vec<String>, Error> {
        let keys: skyclaw_api::LogKeys = self.get_json(&["v1", "log", "keys"]).await?;
        Ok(keys
            .keys
            .into_iter()
            .filter(|key| key.voter)
            .map(|key| key.vkey)
            .collect())
    }

    /// `GET /v1/jobs/:id`.
    pub async fn job(&mut self, job_id: &str) -> Result<Job, Error> {
        let response: JobResponse = self.get_json(&["v1", "jobs", job_id]).await?;
        Ok(response.job)
    }

    async fn get_json<T: DeserializeOwned>(&mut self, path: &[&str]) -> Result<T, Error> {
        let response = self.get(path, &[]).await?;
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Unreachable(format!("{url}: reading the answer: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::NotALog {
            name: url,
            reason: format!("unexpected answer: {e}"),
        })
    }

    /// Sends a GET to each coordinator in turn, from the preferred one,
    /// until one answers. A refusal (4xx) is final; an unreachable
    /// coordinator or a 502/503/504 moves on to the next.
    async fn get(
        &mut self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, Error> {
        let mut failures = Vec::new();
        for step in 0..self.urls.len() {
            let index = (self.preferred + step) % self.urls.len();
            let mut url = self.urls[index].clone();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend(path);
            }
            let mut request = self.http.get(url.clone()).query(query);
            if let Some(token) = &self.token {
                request = request.header(TOKEN_HEADER, token.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    failures.push(format!(
                        "{}: {}",
                        self.urls[index],
                        transport_reason(&error)
                    ));
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                self.preferred = index;
                return Ok(response);
            }
            let message = error_message(response).await;
            if matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) {
                failures.push(format!(
                    "{}: {message} (HTTP {})",
                    self.urls[index],
                    status.as_u16()
                ));
                continue;
            }
            return Err(Error::Refused {
                url: url.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        Err(Error::Unreachable(failures.join("; ")))
    }
}

/// Fetches and verifies the log from the pass's head until the coordinator
/// has nothing more, the head reaches `until`, or `on_page` (called after
/// each page that held records, with its first and last seq) says to stop.
/// A page that could not be fetched or arrived cut short is asked for
/// again from its last verified record.
pub(crate) async fn catch_up(
    remote: &mut Remote,
    pass: &mut Pass<'_>,
    until: Option<u64>,
    on_page: &mut (dyn FnMut(&Pass<'_>, u64, u64) -> ControlFlow<()> + Send),
) -> Result<(), Stop> {
    let page_size = pass.options.page_size.clamp(1, MAX_PAGE);
    let mut attempts = 0;
    loop {
        let from = pass.next_seq();
        let limit = match until {
            Some(until) if until < from => return Ok(()),
            Some(until) => page_size.min(until - from + 1),
            None => page_size,
        };
        let page = match remote.events(from, limit).await {
            Ok(bytes) => read_page(&remote.url(), &bytes, pass)?,
            Err(Error::Unreachable(reason)) => {
                attempts += 1;
                if attempts >= PAGE_ATTEMPTS {
                    return Err(Error::Unreachable(format!(
                        "{reason} (the log is verified through record {})",
                        from - 1
                    ))
                    .into());
                }
                tokio::time::sleep(backoff(attempts)).await;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let head = pass.next_seq() - 1;
        pass.set_progress(head);
        if page.records > 0 && on_page(pass, from, head).is_break() {
            return Ok(());
        }
        if page.complete {
            attempts = 0;
            if page.records < limit {
                return Ok(());
            }
            continue;
        }
        // Cut short: progress resets the count, a page that brings
        // nothing new counts against it.
        attempts = if page.records > 0 { 1 } else { attempts + 1 };
        if attempts >= PAGE_ATTEMPTS {
            return Err(Finding::new(
                FindingKind::Truncated,
                Some(head),
                format!(
                    "{} keeps sending the log cut short after record {head}",
                    remote.url()
                ),
            )
            .into());
        }
        tokio::time::sleep(backoff(attempts)).await;
    }
}

/// How one page went.
struct Page {
    /// Records verified from it.
    records: u64,
    /// Whether it was read to its trailer, or was cut short.
    complete: bool,
}

/// Verifies one page into the pass.
fn read_page(url: &str, bytes: &[u8], pass: &mut Pass<'_>) -> Result<Page, Stop> {
    let mut reader = match SegmentReader::new(bytes) {
        Ok(reader) => reader,
        // An answer cut inside its header: nothing verified, ask again.
        Err(FormatError::Truncated { .. }) => {
            return Ok(Page {
                records: 0,
                complete: false,
            })
        }
        Err(error) => return Err(classify(url, error)),
    };
    pass.begin(url, reader.header())?;
    let mut count = 0;
    for item in reader.by_ref() {
        match item {
            Ok(record) => {
                pass.accept(&record)?;
                count += 1;
            }
            Err(FormatError::Truncated { .. }) => {
                return Ok(Page {
                    records: count,
                    complete: false,
                })
            }
            Err(error) => return Err(classify(url, error)),
        }
    }
    Ok(Page {
        records: count,
        complete: true,
    })
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.min(5))
}

/// The `error` of a JSON error body, or the status text.
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<skyclaw_api::ErrorBody>(&bytes) {
        Ok(body) => body.error,
        Err(_) => status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_owned(),
    }
}

fn transport_reason(error: &reqwest::Error) -> String {
    let mut reason = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}
