//! The load itself, driven through `skyclaw-client`: enqueuers, simulated
//! hosts, and latency statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use skyclaw_api::{BatchEnqueueRequest, CompleteRequest, EnqueueRequest, Job, RegisterHostRequest};
use skyclaw_client::{Client, ClientConfig};
use skyclaw_testkit::{HostKey, TOKEN};
use tokio::task::JoinHandle;

/// A client for load on the coordinator at `url`, whose requests may take
/// up to a minute.
pub fn client(url: &str) -> Client {
    client_with_timeout(url, Duration::from_secs(60))
}

/// A client on the coordinator at `url` that makes one attempt per call
/// (no failover, no retry: a failed request is counted, not hidden) and no
/// idempotency keys (the load measures requests as they come without
/// them); requests that get no answer within `timeout` fail.
pub fn client_with_timeout(url: &str, timeout: Duration) -> Client {
    let config = ClientConfig {
        request_timeout: timeout,
        connect_timeout: timeout.min(Duration::from_secs(2)),
        passes: 1,
        idempotency_keys: false,
        ..ClientConfig::new(vec![url.to_string()], Some(TOKEN.to_string()))
    };
    Client::new(config).expect("a loopback URL and the kit's token make a valid client")
}

/// One shell job that runs `true`.
fn job() -> EnqueueRequest {
    EnqueueRequest::shell("true", vec![])
}

/// `POST /v1/jobs` of one job.
pub async fn enqueue_one(client: &Client) -> Result<Job> {
    Ok(client.enqueue(&job(), None).await?)
}

/// `POST /v1/jobs/batch` of `size` jobs.
pub async fn enqueue_batch(client: &Client, size: usize) -> Result<Vec<Job>> {
    let request = BatchEnqueueRequest {
        jobs: (0..size).map(|_| job()).collect(),
    };
    Ok(client.enqueue_batch(&request, None).await?)
}

/// A simulated host: the client it calls with, and its id.
#[derive(Clone)]
pub struct SimHost {
    client: Client,
    id: String,
    /// A keyed host's key and cluster, to sign its receipts with.
    key: Option<Arc<(HostKey, String)>>,
}

/// `count` hosts without keys, as the MVP's: named `bench-host-<i>`, each
/// acting through the kit's token.
pub async fn token_hosts(client: &Client, count: usize, slots: u32) -> Result<Vec<SimHost>> {
    let mut hosts = Vec::new();
    for host in 0..count {
        let id = format!("bench-host-{host}");
        register(client, &id, slots).await?;
        hosts.push(SimHost {
            client: client.clone(),
            id,
            key: None,
        });
    }
    Ok(hosts)
}

/// `count` hosts with keys, each registered by signing a challenge (with
/// the kit's token, so approved at once) and acting through its session:
/// what the host daemon does.
pub async fn keyed_hosts(url: &str, count: usize, slots: u32) -> Result<Vec<SimHost>> {
    let mut hosts = Vec::new();
    for host in 0..count {
        let client = client(url);
        let key = HostKey::from_seed(host as u8 + 1);
        let challenge = client.challenge().await?;
        let request = RegisterHostRequest {
            name: format!("bench keyed host {host}"),
            max_parallel: Some(slots),
            ..RegisterHostRequest::default()
        };
        let registered = client
            .register_host_with(&key.sign(&challenge, request))
            .await?;
        let session = registered
            .session
            .context("a keyed registration answers with a session")?;
        client.set_session(&session)?;
        hosts.push(SimHost {
            client,
            id: key.id.clone(),
            key: Some(Arc::new((key, challenge.cluster_id))),
        });
    }
    Ok(hosts)
}

async fn register(client: &Client, host_id: &str, max_parallel: u32) -> Result<()> {
    let request = RegisterHostRequest {
        host_id: Some(host_id.into()),
        name: host_id.into(),
        capabilities: None,
        max_parallel: Some(max_parallel),
        ..RegisterHostRequest::default()
    };
    client.register_host(&request).await?;
    Ok(())
}

async fn claim(client: &Client, host_id: &str, max_jobs: u32, wait_ms: u64) -> Result<Vec<Job>> {
    let wait = Some(Duration::from_millis(wait_ms));
    Ok(client.claim_jobs(host_id, max_jobs, wait).await?)
}

/// Completes `job`; a keyed host (`key`: its key and cluster) signs its
/// receipt, as the host daemon does.
async fn complete(
    client: &Client,
    host_id: &str,
    job: &Job,
    key: Option<&(HostKey, String)>,
) -> Result<()> {
    if let Some((key, cluster_id)) = key {
        let epoch = job.lease_epoch.context("a leased job names its epoch")?;
        let request = key.complete(cluster_id, job, epoch, "");
        client.complete_job(&job.id, &request).await?;
        return Ok(());
    }
    let request = CompleteRequest {
        host_id: host_id.into(),
        success: true,
        duration_ms: 1,
        exit_code: Some(0),
        stdout: String::new(),
        stderr: String::new(),
        error: None,
        lease_epoch: job.lease_epoch,
        receipt: None,
    };
    client.complete_job(&job.id, &request).await?;
    Ok(())
}

/// Enqueues `jobs` jobs as fast as the node takes them: batches of 500
/// from 8 workers. Returns the fill's summary (jobs/s).
pub async fn fill(client: &Client, jobs: u64) -> Result<Summary> {
    enqueue(client, 8, jobs, 500).await
}

/// Enqueuers that keep about `live` jobs queued or leased on a
/// coordinator, whatever its hosts take: over and over they read its
/// status and enqueue what is missing (at least a batch; `concurrency`
/// workers, `batch` per request, as [`enqueue`]), until stopped.
pub struct TopUp {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<u64>>,
}

impl TopUp {
    pub fn start(client: &Client, live: u64, concurrency: usize, batch: usize) -> TopUp {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let client = client.clone();
            let stop = stop.clone();
            async move {
                let mut enqueued = 0;
                while !stop.load(Ordering::Relaxed) {
                    let status = client.status().await?;
                    let missing = live.saturating_sub(status.queued + status.leased);
                    if missing < batch as u64 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    let round = enqueue(&client, concurrency, missing, batch).await?;
                    enqueued += round.operations * batch as u64;
                }
                anyhow::Ok(enqueued)
            }
        });
        TopUp { stop, task }
    }

    /// Waits until the enqueuers give up (a status read failed, or every
    /// request of a round did): why they did. For `select!` against the
    /// load they feed, which would wait for jobs forever without them.
    pub async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.task).await {
            Ok(Ok(_)) => anyhow::anyhow!("the enqueuers stopped unasked"),
            Ok(Err(error)) => error.context("the enqueuers gave up"),
            Err(error) => anyhow::Error::new(error).context("the enqueuers panicked"),
        }
    }

    /// Stops the enqueuers once their round is done; returns how many
    /// jobs they enqueued.
    pub async fn stop(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        (&mut self.task).await?
    }
}

impl Drop for TopUp {
    fn drop(&mut self) {
        self.task.abort();
    }
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
    pub p999_ms: f64,
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
        p999_ms: at(0.999),
        max_ms: at(1.0),
    }
}

/// `concurrency` workers enqueue `total` jobs, `batch` per request. A
/// failed request is counted and the load goes on; only a run in which
/// every request failed is an error.
pub async fn enqueue(
    client: &Client,
    concurrency: usize,
    total: u64,
    batch: usize,
) -> Result<Summary> {
    let run = enqueue_until(client, concurrency, batch, Until::Jobs(total)).await?;
    Ok(run.summary())
}

/// [`enqueue`] for `span` rather than a number of jobs: what it measured,
/// every request's latency kept.
pub async fn enqueue_for(
    client: &Client,
    concurrency: usize,
    span: Duration,
    batch: usize,
) -> Result<Run> {
    let until = Until::Deadline(Instant::now() + span);
    enqueue_until(client, concurrency, batch, until).await
}

/// When an enqueue load stops sending.
#[derive(Clone, Copy)]
enum Until {
    /// Once requests for this many jobs have been sent.
    Jobs(u64),
    /// At this moment; requests in flight then are still waited for.
    Deadline(Instant),
}

impl Until {
    /// Whether a worker sends another request of `batch` jobs, counting
    /// it in `issued`.
    fn another(self, issued: &AtomicU64, batch: usize) -> bool {
        match self {
            Until::Jobs(total) => issued.fetch_add(batch as u64, Ordering::Relaxed) < total,
            Until::Deadline(at) => Instant::now() < at,
        }
    }
}

/// [`enqueue`] and [`enqueue_for`]: their workers, and what they measured.
async fn enqueue_until(
    client: &Client,
    concurrency: usize,
    batch: usize,
    until: Until,
) -> Result<Run> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let issued = issued.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            while until.another(&issued, batch) {
                let sent = Instant::now();
                let result = if batch == 1 {
                    enqueue_one(&client).await.map(drop)
                } else {
                    enqueue_batch(&client, batch).await.map(drop)
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
    Ok(Run {
        jobs: latencies.len() as u64 * batch as u64,
        errors: errors.len() as u64,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// What one run of a load measured, before summing up; runs of several
/// rounds add theirs together.
#[derive(Default)]
pub struct Run {
    pub jobs: u64,
    /// Requests that failed; the latencies are the others'.
    pub errors: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Run {
    pub fn add(&mut self, other: Run) {
        self.jobs += other.jobs;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    /// Its latencies summed up, its failed requests counted.
    pub fn summary(self) -> Summary {
        let mut summary = summarize(self.jobs, self.elapsed, self.latencies);
        summary.errors = self.errors;
        summary
    }
}

/// The `hosts` claim (up to `slots` at a time, long-polling) and complete
/// until `total` jobs are done; the latencies are per claim (claim, then
/// complete every job it returned).
pub async fn dispatch_run(hosts: &[SimHost], slots: u32, total: u64) -> Result<Run> {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for host in hosts {
        let SimHost {
            client,
            id: host_id,
            key,
        } = host.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while done.load(Ordering::Relaxed) < total {
                let sent = Instant::now();
                let jobs = claim(&client, &host_id, slots, 100).await?;
                let claimed = jobs.len() as u64;
                let mut completions = tokio::task::JoinSet::new();
                for job in jobs {
                    let client = client.clone();
                    let host_id = host_id.clone();
                    let key = key.clone();
                    completions.spawn(async move {
                        complete(&client, &host_id, &job, key.as_deref()).await
                    });
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
        errors: 0,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Time from enqueue to an idle, long-polling host receiving the job.
pub async fn pickup(client: &Client, samples: usize) -> Result<Summary> {
    let host_id = "bench-idle-host";
    register(client, host_id, 1).await?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    for _ in 0..samples {
        let claimer = {
            let client = client.clone();
            tokio::spawn(async move {
                let jobs = claim(&client, host_id, 1, 10_000).await?;
                anyhow::Ok((Instant::now(), jobs))
            })
        };
        // Let the claim reach the coordinator and park before enqueueing.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let enqueued = Instant::now();
        enqueue_one(client).await?;
        let (claimed, jobs) = claimer.await??;
        let job = jobs.first().context("the parked claim returned no job")?;
        latencies.push(claimed.saturating_duration_since(enqueued));
        complete(client, host_id, job, None).await?;
    }
    Ok(summarize(samples as u64, started.elapsed(), latencies))
}
