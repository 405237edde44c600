//! The load itself: enqueuers, simulated hosts, and latency statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use skyclaw_api::{
    BatchEnqueueRequest, ClaimRequest, CompleteRequest, EnqueueRequest, Job, JobsResponse,
    RegisterHostRequest,
};

use crate::server::TOKEN;

/// A typed handle on one coordinator's API, with the benchmark's token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    pub fn new(url: &str) -> Api {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a plain HTTP client builds");
        Api {
            http,
            url: url.trim_end_matches('/').to_string(),
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

/// Latency summary of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub operations: u64,
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
        jobs_per_s: jobs as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

/// `concurrency` workers enqueue `total` jobs, `batch` per request.
pub async fn enqueue(api: &Api, concurrency: usize, total: u64, batch: usize) -> Result<Summary> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let api = api.clone();
        let issued = issued.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while issued.fetch_add(batch as u64, Ordering::Relaxed) < total {
                let sent = Instant::now();
                if batch == 1 {
                    api.enqueue().await?;
                } else {
                    api.enqueue_batch(batch).await?;
                }
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let jobs = latencies.len() as u64 * batch as u64;
    Ok(summarize(jobs, started.elapsed(), latencies))
}

/// `hosts` simulated hosts claim (up to `slots` at a time, long-polling)
/// and complete until `total` jobs are done.
pub async fn dispatch(api: &Api, hosts: usize, slots: u32, total: u64) -> Result<Summary> {
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
    Ok(summarize(
        done.load(Ordering::Relaxed),
        started.elapsed(),
        latencies,
    ))
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
