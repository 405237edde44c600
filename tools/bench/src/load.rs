//! The HTTP API as the benchmark uses it, and the load itself: enqueuers,
//! simulated hosts, and latency statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyclaw_api::{
    BatchEnqueueRequest, ClaimRequest, ClusterStatus, CompleteRequest, EnqueueRequest, Host,
    HostsResponse, Job, JobsPage, JobsResponse, LogHead, RegisterHostRequest, Status,
};

use crate::server::TOKEN;

/// A typed handle on one coordinator's API, with the benchmark's token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    /// For load: requests may take up to a minute.
    pub fn new(url: &str) -> Api {
        Api::with_timeout(url, Duration::from_secs(60))
    }

    /// Requests that get no answer within `timeout` fail.
    pub fn with_timeout(url: &str, timeout: Duration) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(512)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .build()
            .expect("a plain HTTP client builds");
        Api {
            http,
            url: url.trim_end_matches('/').to_string(),
        }
    }

    /// The body of a 2xx answer to `GET path`.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("x-skyclaw-token", TOKEN)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    }

    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        let body = self.get_bytes(path).await?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: unexpected JSON"))
    }

    pub async fn status(&self) -> Result<Status> {
        self.get("/v1/status").await
    }

    pub async fn head(&self) -> Result<LogHead> {
        self.get("/v1/log/head").await
    }

    pub async fn cluster(&self) -> Result<ClusterStatus> {
        self.get("/v1/cluster").await
    }

    pub async fn hosts(&self) -> Result<Vec<Host>> {
        let reply: HostsResponse = self.get("/v1/hosts").await?;
        Ok(reply.hosts)
    }

    /// The first page of jobs with `status` (queued, leased, completed…).
    pub async fn jobs_with_status(&self, status: &str, limit: usize) -> Result<Vec<Job>> {
        let page: JobsPage = self
            .get(&format!("/v1/jobs?status={status}&limit={limit}"))
            .await?;
        Ok(page.jobs)
    }

    /// Records `from..` of this node's event log as JSON (`{seq, at,
    /// event: {kind: fields}}`), at most `limit` of them.
    pub async fn records(&self, from: u64, limit: u64) -> Result<Vec<serde_json::Value>> {
        let mut page: serde_json::Value = self
            .get(&format!("/v1/events?format=json&from={from}&limit={limit}"))
            .await?;
        match page["records"].take() {
            serde_json::Value::Array(records) => Ok(records),
            other => bail!("GET /v1/events: no records in {other}"),
        }
    }

    async fn post<T: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("x-skyclaw-token", TOKEN)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "POST {path}: {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }

    pub async fn enqueue(&self) -> Result<Job> {
        let reply: skyclaw_api::JobResponse = self.post("/v1/jobs", &job()).await?;
        Ok(reply.job)
    }

    pub async fn enqueue_batch(&self, size: usize) -> Result<Vec<Job>> {
        let request = BatchEnqueueRequest {
            jobs: (0..size).map(|_| job()).collect(),
        };
        let reply: JobsResponse = self.post("/v1/jobs/batch", &request).await?;
        Ok(reply.jobs)
    }

    pub async fn register(&self, host_id: &str, max_parallel: u32) -> Result<()> {
        let request = RegisterHostRequest {
            host_id: Some(host_id.into()),
            name: host_id.into(),
            capabilities: None,
            max_parallel: Some(max_parallel),
            ..RegisterHostRequest::default()
        };
        let _: serde_json::Value = self.post("/v1/hosts/register", &request).await?;
        Ok(())
    }

    pub async fn claim(&self, host_id: &str, max_jobs: u32, wait_ms: u64) -> Result<Vec<Job>> {
        let request = ClaimRequest {
            wait_ms: Some(wait_ms),
            max_jobs: Some(max_jobs),
        };
        let reply: JobsResponse = self
            .post(&format!("/v1/hosts/{host_id}/claim"), &request)
            .await?;
        Ok(reply.jobs)
    }

    pub async fn complete(&self, host_id: &str, job: &Job) -> Result<()> {
        let request = CompleteRequest {
            host_id: host_id.into(),
            success: true,
            duration_ms: 1,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            lease_epoch: job.lease_epoch,
        };
        let _: serde_json::Value = self
            .post(&format!("/v1/jobs/{}/complete", job.id), &request)
            .await?;
        Ok(())
    }
}

fn job() -> EnqueueRequest {
    EnqueueRequest::shell("true", vec![])
}

/// Enqueues `jobs` jobs as fast as the node takes them: batches of 500
/// from 8 workers. Returns the fill's summary (jobs/s).
pub async fn fill(api: &Api, jobs: u64) -> Result<Summary> {
    enqueue(api, 8, jobs, 500).await
}

/// Latency summary of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Requests that succeeded; the latencies are theirs.
    pub operations: u64,
    /// Requests that failed (an overloaded cluster answers 503 to a write
    /// that waited too long for a quorum); they count for no jobs.
    pub errors: u64,
    pub jobs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn summarize(jobs: u64, elapsed: Duration, mut latencies: Vec<Duration>) -> Summary {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Summary {
        operations: latencies.len() as u64,
        errors: 0,
        jobs_per_s: jobs as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

/// `concurrency` workers enqueue `total` jobs, `batch` per request. A
/// failed request is counted and the load goes on; only a run in which
/// every request failed is an error.
pub async fn enqueue(api: &Api, concurrency: usize, total: u64, batch: usize) -> Result<Summary> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let api = api.clone();
        let issued = issued.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            while issued.fetch_add(batch as u64, Ordering::Relaxed) < total {
                let sent = Instant::now();
                let result = if batch == 1 {
                    api.enqueue().await.map(drop)
                } else {
                    api.enqueue_batch(batch).await.map(drop)
                };
                match result {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(error) => errors.push(error),
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for worker in workers {
        let (worker_latencies, worker_errors) = worker.await?;
        latencies.extend(worker_latencies);
        errors.extend(worker_errors);
    }
    if let Some(first) = errors.first() {
        if latencies.is_empty() {
            bail!("every enqueue failed; the first: {first:#}");
        }
        eprintln!(
            "warning: {} of {} enqueue requests failed; the first: {first:#}",
            errors.len(),
            errors.len() + latencies.len()
        );
    }
    let jobs = latencies.len() as u64 * batch as u64;
    let mut summary = summarize(jobs, started.elapsed(), latencies);
    summary.errors = errors.len() as u64;
    Ok(summary)
}

/// `hosts` simulated hosts claim (up to `slots` at a time, long-polling)
/// and complete until `total` jobs are done.
pub async fn dispatch(api: &Api, hosts: usize, slots: u32, total: u64) -> Result<Summary> {
    let run = dispatch_run(api, hosts, slots, total).await?;
    Ok(summarize(run.jobs, run.elapsed, run.latencies))
}

/// What one run of a load measured, before summing up; runs of several
/// rounds add theirs together.
#[derive(Default)]
pub struct Run {
    pub jobs: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Run {
    pub fn add(&mut self, other: Run) {
        self.jobs += other.jobs;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }
}

/// [`dispatch`], unsummarized: the latencies are per claim (claim, then
/// complete every job it returned).
pub async fn dispatch_run(api: &Api, hosts: usize, slots: u32, total: u64) -> Result<Run> {
    for host in 0..hosts {
        api.register(&format!("bench-host-{host}"), slots).await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for host in 0..hosts {
        let api = api.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let host_id = format!("bench-host-{host}");
            let mut latencies = Vec::new();
            while done.load(Ordering::Relaxed) < total {
                let sent = Instant::now();
                let jobs = api.claim(&host_id, slots, 100).await?;
                let claimed = jobs.len() as u64;
                let mut completions = tokio::task::JoinSet::new();
                for job in jobs {
                    let api = api.clone();
                    let host_id = host_id.clone();
                    completions.spawn(async move { api.complete(&host_id, &job).await });
                }
                while let Some(result) = completions.join_next().await {
                    result??;
                }
                if claimed > 0 {
                    latencies.push(sent.elapsed());
                }
                done.fetch_add(claimed, Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(Run {
        jobs: done.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Time from enqueue to an idle, long-polling host receiving the job.
pub async fn pickup(api: &Api, samples: usize) -> Result<Summary> {
    let host_id = "bench-idle-host";
    api.register(host_id, 1).await?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    for _ in 0..samples {
        let claimer = {
            let api = api.clone();
            tokio::spawn(async move {
                let jobs = api.claim(host_id, 1, 10_000).await?;
                anyhow::Ok((Instant::now(), jobs))
            })
        };
        // Let the claim reach the coordinator and park before enqueueing.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let enqueued = Instant::now();
        api.enqueue().await?;
        let (claimed, jobs) = claimer.await??;
        let job = jobs.first().context("the parked claim returned no job")?;
        latencies.push(claimed.saturating_duration_since(enqueued));
        api.complete(host_id, job).await?;
    }
    Ok(summarize(samples as u64, started.elapsed(), latencies))
}
