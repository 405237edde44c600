//! What a coordinator does with jobs: enqueue, claim (with its long poll),
//! complete, cancel, read them back with their output (one, a filtered
//! page, all), and sum them up. Each method takes what the request said,
//! owns the policy (defaults, key derivation, waiting, how much one read
//! may examine), and answers with typed records.

use std::time::{Duration, Instant};

use skyclaw_api::EnqueueRequest;
use skyclaw_log_format::{Hash32, JobSpec};
use skyclaw_state::state::decide::uncancellable;
use skyclaw_state::state::tally::Activity;
use skyclaw_state::{
    BlobRef, Command, HostAccess, JobReport, JobStatus, JobView, Payload, Rejection,
    DEFAULT_MAX_ATTEMPTS,
};

use crate::coordinator::Coordinator;
use crate::failure::Failure;
use crate::store::{self, RETIRED};

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

/// One page of jobs; `next` is the id to continue after.
pub struct Page {
    pub jobs: Vec<Job>,
    pub next: Option<String>,
}

/// Jobs one list request examines at most. The views are in memory and
/// read under the state's lock, so a filter that matches little must not
/// walk a million jobs per request: past this many the page ends early
/// and `next` says where to go on.
pub const MAX_EXAMINED: usize = 10_000;
/// Priorities and capabilities a summary lists at most.
pub const MAX_SUMMARY_GROUPS: usize = 100;

/// Which jobs a list shows; a field left `None` admits every job.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    /// Run (or running) by this host, in its latest attempt.
    pub host_id: Option<String>,
    /// Requiring this capability.
    pub capability: Option<String>,
    /// Text found in the command or one of its arguments.
    pub command: Option<String>,
    /// Enqueued by this account (an enqueuer sees its own jobs only).
    pub account: Option<String>,
}

impl JobFilter {
    fn admits(&self, job: &JobView) -> bool {
        self.status.is_none_or(|status| job.status == status)
            && self
                .host_id
                .as_ref()
                .is_none_or(|host| job.assigned_host_id.as_ref() == Some(host))
            && self
                .capability
                .as_ref()
                .is_none_or(|capability| job.required_capabilities.contains(capability))
            && self
                .command
                .as_deref()
                .is_none_or(|text| command_contains(&job.payload, text))
            && self
                .account
                .as_ref()
                .is_none_or(|account| job.account.as_ref() == Some(account))
    }
}

fn command_contains(payload: &Payload, text: &str) -> bool {
    match payload {
        Payload::Shell { command, args, .. } => {
            command.contains(text) || args.iter().any(|arg| arg.contains(text))
        }
        Payload::AutomatonRun { args, .. } => args.iter().flatten().any(|arg| arg.contains(text)),
    }
}

/// The order a list walks the jobs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// Jobs by status, the queue's depth and the last hour, as of `at` (the
/// log's time).
pub struct Summary {
    pub at: u64,
    pub counts: Vec<(JobStatus, u64)>,
    pub queued_by_priority: Vec<(i32, u64)>,
    pub queued_by_capability: Vec<(String, u64)>,
    /// Minutes with activity, oldest first, by their start.
    pub per_minute: Vec<(u64, Activity)>,
}

impl Coordinator {
    /// Enqueues one job. With an idempotency key, the same request under
    /// the same key answers with the job it made the first time.
    pub async fn enqueue(
        &self,
        request: EnqueueRequest,
        idempotency_key: Option<String>,
        account: Option<String>,
    ) -> Result<Job, Failure> {
        let command = Command::Enqueue {
            jobs: vec![job_spec(request, idempotency_key, account)],
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
        account: Option<String>,
    ) -> Result<Vec<Job>, Failure> {
        let jobs = requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                let key = idempotency_key.as_ref().map(|key| format!("{key}#{i}"));
                job_spec(request, key, account.clone())
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
            let (access, has_work) = self.read(|m| {
                (
                    m.state.host(host_id).map(|host| host.access),
                    m.state.has_work_for(host_id)
                        || claim_key
                            .as_deref()
                            .is_some_and(|key| !m.state.claimed_with(host_id, key).is_empty()),
                )
            });
            match access {
                None => {
                    return Err(Failure::not_found(format!(
                        "host {host_id} is not registered"
                    )))
                }
                // Said at once, not after a wait: the state would refuse
                // the claim the moment work appeared.
                Some(HostAccess::Pending) => {
                    return Err(Failure::forbidden(format!(
                        "host {host_id} is pending: an admin must approve it \
                         (skyclaw hosts approve {host_id})"
                    )))
                }
                Some(HostAccess::Revoked) => {
                    return Err(Failure::forbidden(format!("host {host_id} is revoked")))
                }
                Some(HostAccess::Active) => {}
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
        self.check_receipt_signature(&report)?;
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
        // A retired job ended long ago and stays as it ended.
        if let Some(retired) = self.retired_job(&job_id)? {
            return match retired.status {
                JobStatus::Cancelled => Ok(self.with_output(retired).await),
                _ => Err(Failure::Refused(uncancellable(&retired))),
            };
        }
        let job = self.perform(Command::Cancel { job_id }).await?.into_job()?;
        Ok(self.with_output(job).await)
    }

    /// One job as this node's state has it.
    pub async fn job(&self, job_id: &str) -> Result<Job, Failure> {
        Ok(self.with_output(self.job_view(job_id)?).await)
    }

    /// The job's view alone, its output left in the store: what deciding
    /// who may see or cancel it needs.
    /// Checks a keyed host's receipt signature before the completion is
    /// proposed, here on a request thread rather than on the state
    /// machine's one apply thread. `decide` then checks the rest of it
    /// against the same statement: the report names the lease epoch, and
    /// everything else the statement holds is fixed once the job and the
    /// host exist.
    fn check_receipt_signature(&self, report: &JobReport) -> Result<(), Failure> {
        let (Some(_), Some(lease_epoch)) = (&report.receipt, report.lease_epoch) else {
            return Ok(());
        };
        let done = report.completion(
            lease_epoch,
            BlobRef::of(report.stdout.as_bytes()),
            BlobRef::of(report.stderr.as_bytes()),
        );
        // Fails closed: a claim this node cannot make (its state behind the
        // log, say) is refused here, never left for `decide`, which does
        // not check signatures.
        let refused = |reason| Failure::Refused(Rejection::Forbidden(reason));
        match self.read(|m| m.state.receipt_claim(&done)) {
            Ok(Some(claim)) => claim.verify().map_err(refused),
            Ok(None) => Err(refused(format!(
                "host {} has no key to sign a receipt with",
                report.host_id
            ))),
            Err(reason) => Err(refused(reason)),
        }
    }

    pub fn job_view(&self, job_id: &str) -> Result<JobView, Failure> {
        if let Some(view) = self.read(|m| m.state.job(job_id).cloned()) {
            return Ok(view);
        }
        self.retired_job(job_id)?
            .ok_or_else(|| Failure::not_found(format!("job {job_id} not found")))
    }

    /// A job retired from the state, as it ended, read from disk. Apply
    /// moves a view there in the batch that takes it out of memory, so a
    /// job is always in one of the two.
    fn retired_job(&self, job_id: &str) -> Result<Option<JobView>, Failure> {
        store::get(&self.db, RETIRED, &store::job_key(job_id))
            .map_err(|e| Failure::Unavailable(format!("reading retired job {job_id}: {e}")))
    }

    /// Where `job_id` stands in enqueue order, whether live or retired.
    fn order_of(&self, job_id: &str) -> Result<u64, Failure> {
        if let Some(order) = self.read(|m| m.state.job(job_id).map(|job| job.order)) {
            return Ok(order);
        }
        self.retired_job(job_id)?
            .map(|job| job.order)
            .ok_or_else(|| Failure::invalid(format!("after names an unknown job {job_id}")))
    }

    /// Up to `limit` jobs that `filter` admits, in `order`, after the job
    /// `after`. At most [`MAX_EXAMINED`] jobs are looked at, so a page may
    /// hold fewer than `limit` and still have a `next`.
    pub async fn jobs_page(
        &self,
        filter: &JobFilter,
        order: Order,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, Failure> {
        // A page may go on after a job that was retired since.
        let after = after.map(|id| self.order_of(id)).transpose()?;
        let (views, next) = self.read(|m| {
            let walk: Box<dyn Iterator<Item = &JobView> + '_> = match order {
                Order::OldestFirst => Box::new(m.state.jobs_from_order(after.map_or(0, |o| o + 1))),
                Order::NewestFirst => {
                    Box::new(m.state.jobs_before_order(after.unwrap_or(u64::MAX)))
                }
            };
            let mut page = Vec::new();
            let mut last_examined = None;
            let mut more = false;
            for (examined, job) in walk.enumerate() {
                if examined == MAX_EXAMINED {
                    more = true;
                    break;
                }
                if filter.admits(job) {
                    if page.len() == limit {
                        more = true;
                        break;
                    }
                    page.push(job.clone());
                }
                last_examined = Some(job);
            }
            let next = last_examined.filter(|_| more).map(|job| job.id.clone());
            (page, next)
        });
        Ok(Page {
            jobs: self.with_outputs(views).await,
            next,
        })
    }

    /// Jobs by status, the queue's depth and the last hour's activity, from
    /// the counts the state keeps as it applies (no walk over the jobs).
    pub fn summary(&self) -> Summary {
        self.read(|m| {
            let tally = m.state.tally();
            let counts = m.state.status_counts();
            Summary {
                at: m.state.last_at(),
                counts: JobStatus::ALL
                    .into_iter()
                    .map(|status| (status, counts[status.index()]))
                    .collect(),
                queued_by_priority: tally
                    .queued_by_priority()
                    .take(MAX_SUMMARY_GROUPS)
                    .collect(),
                queued_by_capability: tally
                    .queued_by_capability()
                    .take(MAX_SUMMARY_GROUPS)
                    .map(|(capability, depth)| (capability.to_string(), depth))
                    .collect(),
                per_minute: tally.activity().collect(),
            }
        })
    }

    /// Every job, oldest first (the MVP's whole-state view).
    pub async fn all_jobs(&self) -> Vec<Job> {
        let views = self.read(|m| m.state.jobs_after(None).cloned().collect());
        self.with_outputs(views).await
    }

    pub async fn with_output(&self, view: JobView) -> Job {
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
fn job_spec(
    request: EnqueueRequest,
    idempotency_key: Option<String>,
    account: Option<String>,
) -> JobSpec {
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
        account,
    }
}
