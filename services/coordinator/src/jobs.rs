//! What a coordinator does with jobs: enqueue, claim (with its long poll),
//! complete, cancel, and read them back with their output. Each method
//! takes what the request said, owns the policy (defaults, key
//! derivation, waiting), and answers with typed records.

use std::time::{Duration, Instant};

use skyclaw_api::EnqueueRequest;
use skyclaw_log_format::{Hash32, JobSpec};
use skyclaw_state::{BlobRef, Command, JobReport, JobStatus, JobView, DEFAULT_MAX_ATTEMPTS};

use crate::coordinator::Coordinator;
use crate::failure::Failure;

/// A job as the coordinator answers with it: its record and, once it
/// ended, the text of its output.
#[derive(Clone, Debug)]
pub struct Job {
    pub view: JobView,
    pub output: Option<Output>,
}

#[derive(Clone, Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// One page of jobs, oldest first; `next` is the id to continue after.
pub struct Page {
    pub jobs: Vec<Job>,
    pub next: Option<String>,
}

impl Coordinator {
    /// Enqueues one job. With an idempotency key, the same request under
    /// the same key answers with the job it made the first time.
    pub async fn enqueue(
        &self,
        request: EnqueueRequest,
        idempotency_key: Option<String>,
    ) -> Result<Job, Failure> {
        let command = Command::Enqueue {
            jobs: vec![job_spec(request, idempotency_key)],
        };
        let views = self.perform(command).await?.into_jobs()?;
        let [view] = <[JobView; 1]>::try_from(views).map_err(|_| {
            Failure::Internal("an enqueue of one job answered another number".into())
        })?;
        Ok(self.with_output(view).await)
    }

    /// Enqueues every job or none. Job `i` of a batch under key `k` has
    /// the key `k#i`.
    pub async fn enqueue_batch(
        &self,
        requests: Vec<EnqueueRequest>,
        idempotency_key: Option<String>,
    ) -> Result<Vec<Job>, Failure> {
        let jobs = requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                let key = idempotency_key.as_ref().map(|key| format!("{key}#{i}"));
                job_spec(request, key)
            })
            .collect();
        let views = self.perform(Command::Enqueue { jobs }).await?.into_jobs()?;
        Ok(self.with_outputs(views).await)
    }

    /// Leases up to `max_jobs` matching jobs to the host, waiting up to
    /// `wait` (capped by the configuration) for some to appear. Waiting
    /// costs nothing in the log: only a claim that finds work is proposed.
    ///
    /// With a `claim_key`, a retried claim whose answer was lost gets the
    /// same leases again instead of new ones (see `Command::Claim`).
    pub async fn claim(
        &self,
        host_id: &str,
        max_jobs: u32,
        wait: Duration,
        claim_key: Option<String>,
    ) -> Result<Vec<Job>, Failure> {
        let wait = wait.min(Duration::from_millis(self.config.max_claim_wait_ms));
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (known, has_work) = self.read(|m| {
                (
                    m.state.host(host_id).is_some(),
                    m.state.has_work_for(host_id)
                        || claim_key
                            .as_deref()
                            .is_some_and(|key| !m.state.claimed_with(host_id, key).is_empty()),
                )
            });
            if !known {
                return Err(Failure::not_found(format!(
                    "host {host_id} is not registered"
                )));
            }
            self.saw_host(host_id, self.clock.now_ms());
            if has_work {
                let command = Command::Claim {
                    host_id: host_id.to_string(),
                    max_jobs,
                    lease_ms: self.config.lease_ms,
                    claim_key: claim_key.clone(),
                };
                let jobs = self.perform(command).await?.into_jobs()?;
                if !jobs.is_empty() {
                    return Ok(self.with_outputs(jobs).await);
                }
            }
            let now = Instant::now();
            if now >= deadline
                || tokio::time::timeout(deadline - now, notified)
                    .await
                    .is_err()
            {
                return Ok(Vec::new());
            }
        }
    }

    /// Records how a job ended, as the host holding its lease reports.
    pub async fn complete(&self, report: JobReport) -> Result<Job, Failure> {
        let host_id = report.host_id.clone();
        let reported = Output {
            stdout: report.stdout.clone(),
            stderr: report.stderr.clone(),
        };
        let view = self.perform(Command::Complete(report)).await?.into_job()?;
        self.saw_host(&host_id, self.clock.now_ms());
        // The job's record names the output just reported, unless this
        // completion repeats one recorded with other output: then, and
        // only then, the recorded output is read back.
        let as_reported = view.outcome.as_ref().is_some_and(|outcome| {
            outcome.stdout == BlobRef::of(reported.stdout.as_bytes())
                && outcome.stderr == BlobRef::of(reported.stderr.as_bytes())
        });
        if as_reported {
            return Ok(Job {
                view,
                output: Some(reported),
            });
        }
        Ok(self.with_output(view).await)
    }

    /// Cancels a job: a queued one ends at once, a leased one once its
    /// host hears of it.
    pub async fn cancel(&self, job_id: String) -> Result<Job, Failure> {
        let job = self.perform(Command::Cancel { job_id }).await?.into_job()?;
        Ok(self.with_output(job).await)
    }

    /// One job as this node's state has it.
    pub async fn job(&self, job_id: &str) -> Result<Job, Failure> {
        match self.read(|m| m.state.job(job_id).cloned()) {
            Some(job) => Ok(self.with_output(job).await),
            None => Err(Failure::not_found(format!("job {job_id} not found"))),
        }
    }

    /// Up to `limit` jobs after the job `after`, with `status` if given.
    pub async fn jobs_page(
        &self,
        status: Option<JobStatus>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, Failure> {
        let (views, more) = self.read(|m| {
            if let Some(after) = after {
                if m.state.job(after).is_none() {
                    return Err(Failure::invalid(format!(
                        "after names an unknown job {after}"
                    )));
                }
            }
            let mut matching = m
                .state
                .jobs_after(after)
                .filter(|job| status.is_none_or(|s| job.status == s));
            let page: Vec<JobView> = matching.by_ref().take(limit).cloned().collect();
            Ok((page, matching.next().is_some()))
        })?;
        let next = views.last().filter(|_| more).map(|job| job.id.clone());
        Ok(Page {
            jobs: self.with_outputs(views).await,
            next,
        })
    }

    /// Every job, oldest first (the MVP's whole-state view).
    pub async fn all_jobs(&self) -> Vec<Job> {
        let views = self.read(|m| m.state.jobs_after(None).cloned().collect());
        self.with_outputs(views).await
    }

    async fn with_output(&self, view: JobView) -> Job {
        let mut jobs = self.with_outputs(vec![view]).await;
        jobs.pop().expect("one job in, one out")
    }

    /// Reads the output of every job that ended. Reads go to RocksDB, so
    /// they run off the async threads, once for the whole list.
    async fn with_outputs(&self, views: Vec<JobView>) -> Vec<Job> {
        if views.iter().all(|view| view.outcome.is_none()) {
            return views
                .into_iter()
                .map(|view| Job { view, output: None })
                .collect();
        }
        let db = self.db.clone();
        let read = move || {
            views
                .into_iter()
                .map(|view| {
                    let output = view.outcome.as_ref().map(|outcome| Output {
                        stdout: crate::log::blob_text(&db, &outcome.stdout.hash),
                        stderr: crate::log::blob_text(&db, &outcome.stderr.hash),
                    });
                    Job { view, output }
                })
                .collect()
        };
        tokio::task::spawn_blocking(read)
            .await
            .expect("reading outputs does not panic")
    }
}

/// Turns a request into the job it enqueues. The request hash lets a
/// repeated idempotency key tell "the same request again" from "another
/// request under a used key".
fn job_spec(request: EnqueueRequest, idempotency_key: Option<String>) -> JobSpec {
    let request_hash = idempotency_key.as_ref().map(|_| {
        let canonical = serde_json::to_vec(&request).expect("requests encode");
        Hash32(*blake3::hash(&canonical).as_bytes())
    });
    JobSpec {
        job_id: uuid::Uuid::new_v4().to_string(),
        required_capabilities: request
            .requirement
            .map(|r| r.required_capabilities)
            .unwrap_or_default(),
        priority: request.priority.unwrap_or(0),
        max_attempts: request.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        payload: request.payload,
        idempotency_key,
        request_hash,
    }
}
