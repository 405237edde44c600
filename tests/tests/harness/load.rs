//! Steady load, and the ledger of what the cluster acknowledged under it.
//!
//! Enqueuers send jobs with idempotency keys and retry a key (on any node)
//! until it is acknowledged: only a 200 counts, and a key never
//! acknowledged is recorded as unsure, since its write may or may not have
//! happened. Simulated hosts claim and complete under the lease epoch the
//! claim gave them. Everyone goes round the nodes in turn, so followers
//! forward and a dead node is just a failed attempt. Retries wait 20 ms,
//! not the 503's `Retry-After`, so the load notices a new leader quickly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use skyclaw_api::{ClaimResponse, JobResponse};
use skyclaw_testkit::{wait_for, Api, Reply};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the cluster acknowledged, and what it left open.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Acknowledged enqueues: idempotency key to job id.
    pub enqueued: BTreeMap<String, String>,
    /// Keys sent but never acknowledged: at most one job each.
    pub unsure: BTreeSet<String>,
    /// Acknowledged completions: job id to every (host, lease epoch) a
    /// 200 was given for.
    pub completed: BTreeMap<String, BTreeSet<(String, u32)>>,
    /// Completions refused as stale (409): the lease had moved on.
    pub stale_completions: u64,
    /// Answers that should never happen (a 4xx other than a stale lease,
    /// a 500): each names the request.
    pub wrong_answers: Vec<String>,
}

impl Ledger {
    pub fn merge(&mut self, other: Ledger) {
        self.enqueued.extend(other.enqueued);
        self.unsure.extend(other.unsure);
        for (job, holders) in other.completed {
            self.completed.entry(job).or_default().extend(holders);
        }
        self.stale_completions += other.stale_completions;
        self.wrong_answers.extend(other.wrong_answers);
    }
}

/// The enqueue body for `key`: the key is in the job, so a job in the log
/// can be traced to the enqueue that made it.
pub fn job_body(key: &str) -> serde_json::Value {
    json!({ "payload": { "kind": "shell", "command": "true", "args": [key] } })
}

/// Enqueuers and hosts running until [`Load::stop`].
pub struct Load {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    ledger: Arc<Mutex<Ledger>>,
    acknowledged: Arc<AtomicU64>,
    last_failure: Arc<Mutex<String>>,
}

#[derive(Clone)]
struct Worker {
    api: Api,
    urls: Arc<Vec<String>>,
    ledger: Arc<Mutex<Ledger>>,
    acknowledged: Arc<AtomicU64>,
    /// The last enqueue attempt that failed, for a stalled load to explain.
    last_failure: Arc<Mutex<String>>,
    stop: watch::Receiver<bool>,
}

impl Worker {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn wrong(&self, what: String) {
        self.ledger.lock().unwrap().wrong_answers.push(what);
    }

    async fn pause(&self) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Load {
    /// Starts `enqueuers` enqueuers and `hosts` hosts against `urls`. Keys
    /// and host ids start with `run`, which must be unique per cluster.
    pub fn start(urls: Vec<String>, run: &str, enqueuers: usize, hosts: usize) -> Load {
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            // Longer than the coordinator's 10 s write timeout, so a
            // leader cut off from its quorum answers before we give up.
            api: Api::new(Duration::from_secs(15)),
            urls: Arc::new(urls),
            ledger: Arc::default(),
            acknowledged: Arc::default(),
            last_failure: Arc::default(),
            stop: stopped,
        };
        let mut tasks = JoinSet::new();
        for i in 0..enqueuers {
            tasks.spawn(enqueuer(worker.clone(), format!("{run}-e{i}"), i));
        }
        for i in 0..hosts {
            tasks.spawn(host(worker.clone(), format!("{run}-host-{i}"), i));
        }
        Load {
            stop,
            tasks,
            ledger: worker.ledger,
            acknowledged: worker.acknowledged,
            last_failure: worker.last_failure,
        }
    }

    /// Enqueues acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `more` enqueues beyond those acknowledged now are.
    pub async fn wait_acknowledged(&self, more: u64, limit: Duration) {
        let target = self.acknowledged() + more;
        wait_for(
            &format!("{target} acknowledged enqueues"),
            limit,
            || async {
                if self.acknowledged() >= target {
                    return Ok(());
                }
                Err(format!(
                    "{} acknowledged; the last failed attempt: {}",
                    self.acknowledged(),
                    self.last_failure.lock().unwrap()
                ))
            },
        )
        .await;
    }

    /// Stops everyone after the request they are making, and returns the
    /// ledger.
    pub async fn stop(mut self) -> Ledger {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        assert!(drained.is_ok(), "the load did not stop within 30 s");
        let ledger = self.ledger.lock().unwrap().clone();
        ledger
    }
}

async fn enqueuer(worker: Worker, prefix: String, first_target: usize) {
    let mut target = first_target;
    for n in 0.. {
        if worker.stopped() {
            return;
        }
        let key = format!("{prefix}-{n}");
        let body = job_body(&key);
        loop {
            let url = &worker.urls[target % worker.urls.len()];
            target += 1;
            match worker.api.post(url, "/v1/jobs", &body, Some(&key)).await {
                Ok(reply) if reply.status == 200 => {
                    let job: JobResponse = reply.json();
                    worker
                        .ledger
                        .lock()
                        .unwrap()
                        .enqueued
                        .insert(key, job.job.id);
                    worker.acknowledged.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(reply) if reply.status == 503 => {
                    *worker.last_failure.lock().unwrap() = describe("enqueue", &key, url, &reply);
                }
                Ok(reply) => {
                    worker.wrong(describe("enqueue", &key, url, &reply));
                    break;
                }
                Err(e) => {
                    *worker.last_failure.lock().unwrap() = format!("enqueue {key} at {url}: {e}")
                }
            }
            if worker.stopped() {
                worker.ledger.lock().unwrap().unsure.insert(key);
                return;
            }
            worker.pause().await;
        }
    }
}

async fn host(worker: Worker, host_id: String, first_target: usize) {
    let mut target = first_target;
    let mut next_url = || {
        target += 1;
        worker.urls[target % worker.urls.len()].clone()
    };
    let register = json!({ "hostId": host_id, "name": host_id, "maxParallel": 8 });
    loop {
        if worker.stopped() {
            return;
        }
        let url = next_url();
        match worker
            .api
            .post(&url, "/v1/hosts/register", &register, None)
            .await
        {
            Ok(reply) if reply.status == 200 => break,
            Ok(reply) if reply.status != 503 => {
                worker.wrong(describe("register", &host_id, &url, &reply));
                return;
            }
            _ => worker.pause().await,
        }
    }
    let claim_path = format!("/v1/hosts/{host_id}/claim");
    while !worker.stopped() {
        let url = next_url();
        let job = match worker
            .api
            .post(&url, &claim_path, &json!({ "waitMs": 250 }), None)
            .await
        {
            Ok(reply) if reply.status == 200 => reply.json::<ClaimResponse>().job,
            Ok(reply) if reply.status != 503 => {
                worker.wrong(describe("claim", &host_id, &url, &reply));
                return;
            }
            _ => {
                worker.pause().await;
                continue;
            }
        };
        let Some(job) = job else { continue };
        let epoch = job
            .lease_epoch
            .expect("a claimed job carries its lease epoch");
        let complete = json!({
            "hostId": host_id,
            "success": true,
            "durationMs": 1,
            "exitCode": 0,
            "stdout": format!("ran {}", job.id),
            "stderr": "",
            "leaseEpoch": epoch,
        });
        let path = format!("/v1/jobs/{}/complete", job.id);
        // Retried while the cluster cannot answer; given up when the load
        // stops (the lease then expires, and nobody was told it finished).
        while !worker.stopped() {
            let url = next_url();
            match worker.api.post(&url, &path, &complete, None).await {
                Ok(reply) if reply.status == 200 => {
                    worker
                        .ledger
                        .lock()
                        .unwrap()
                        .completed
                        .entry(job.id.clone())
                        .or_default()
                        .insert((host_id.clone(), epoch));
                    break;
                }
                Ok(reply) if reply.status == 409 => {
                    worker.ledger.lock().unwrap().stale_completions += 1;
                    break;
                }
                Ok(reply) if reply.status != 503 => {
                    worker.wrong(describe("complete", &job.id, &url, &reply));
                    break;
                }
                _ => worker.pause().await,
            }
        }
    }
}

fn describe(what: &str, id: &str, url: &str, reply: &Reply) -> String {
    format!("{what} {id} at {url}: {} {}", reply.status, reply.text())
}
