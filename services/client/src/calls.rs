//! The typed API calls, one method of [`Client`] per route a client uses:
//! each names its route from [`skyclaw_api::routes`], builds the request
//! body, and unwraps the answer to what the caller wants. Calls that make
//! something (an enqueue, a claim) carry an idempotency key, the same on
//! every retry, so that a retry never makes a second one.

use std::time::Duration;

use serde::Serialize;
use skyclaw_api::routes::{self, MEMBERSHIP_TIMEOUT};
use skyclaw_api::{
    AddMemberRequest, BatchEnqueueRequest, Challenge, ClaimRequest, ClaimResponse, ClusterStatus,
    CompleteRequest, ConsistencyProof, EnqueueRequest, Health, HeartbeatRequest, HeartbeatResponse,
    Host, HostResponse, HostsResponse, IssueKeyRequest, IssuedKey, Job, JobResponse, JobStatus,
    JobsPage, JobsResponse, JobsSummary, Key, KeyResponse, KeysResponse, LogHead, LogKeys,
    ReceiptResponse, RegisterHostRequest, RemoveMemberRequest, StateDigest, StateResponse, Status,
};

use crate::{Client, Result};

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

/// A fresh idempotency key.
pub fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Client {
    /// `GET /health` of whichever coordinator answers first.
    pub async fn health(&self) -> Result<Health> {
        self.get(routes::HEALTH, None).await
    }

    /// `GET /v1/status`: node, leader, log head, queue depth.
    pub async fn status(&self) -> Result<Status> {
        self.get(routes::STATUS, None).await
    }

    /// `GET /v1/state`: every host and job (the MVP's whole-state view).
    pub async fn state(&self) -> Result<StateResponse> {
        self.get(routes::STATE, None).await
    }

    /// `GET /v1/log/head`.
    pub async fn log_head(&self) -> Result<LogHead> {
        self.get(routes::LOG_HEAD, None).await
    }

    /// `GET /v1/jobs/:id/receipt`: a completed job's signed receipt, with
    /// its inclusion proof under the latest signed checkpoint.
    pub async fn receipt(&self, job_id: &str) -> Result<ReceiptResponse> {
        self.get(routes::RECEIPT, Some(job_id)).await
    }

    /// `GET /v1/log/keys`: the members' log keys.
    pub async fn log_keys(&self) -> Result<LogKeys> {
        self.get(routes::LOG_KEYS, None).await
    }

    /// `GET /v1/log/proof/consistency`: the tree of `to` records extends
    /// the tree of `from` records.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<ConsistencyProof> {
        #[derive(serde::Serialize)]
        struct Range {
            from: u64,
            to: u64,
        }
        self.get_with_query(routes::CONSISTENCY, &Range { from, to })
            .await
    }

    /// `GET /v1/cluster`: members, leader, term and each member's lag.
    pub async fn cluster(&self) -> Result<ClusterStatus> {
        self.get(routes::CLUSTER, None).await
    }

    /// `POST /v1/cluster/add`: the coordinator serving at `url` joins as a
    /// learner and becomes a voter once caught up, which may take a while
    /// (a snapshot); the call waits up to [`MEMBERSHIP_TIMEOUT`].
    pub async fn add_member(&self, name: &str, url: &str) -> Result<()> {
        let request = AddMemberRequest {
            name: name.to_string(),
            url: url.to_string(),
        };
        let route = routes::ADD_MEMBER;
        let _: serde_json::Value = self
            .post(route, None, &request, None, Some(MEMBERSHIP_TIMEOUT))
            .await?;
        Ok(())
    }

    /// `POST /v1/cluster/remove`: a 404 if no member has that name.
    pub async fn remove_member(&self, name: &str) -> Result<()> {
        let request = RemoveMemberRequest {
            name: name.to_string(),
        };
        let route = routes::REMOVE_MEMBER;
        let _: serde_json::Value = self
            .post(route, None, &request, None, Some(MEMBERSHIP_TIMEOUT))
            .await?;
        Ok(())
    }

    /// `GET /v1/state/digest`.
    pub async fn state_digest(&self) -> Result<StateDigest> {
        self.get(routes::STATE_DIGEST, None).await
    }

    /// `POST /v1/hosts/register`: safe to repeat with the same host id.
    pub async fn register_host(&self, request: &RegisterHostRequest) -> Result<Host> {
        Ok(self.register_host_with(request).await?.host)
    }

    /// `POST /v1/hosts/register`, answered in full: a host that signed
    /// with its key gets its session there.
    pub async fn register_host_with(&self, request: &RegisterHostRequest) -> Result<HostResponse> {
        self.post(routes::REGISTER, None, request, None, None).await
    }

    /// `POST /v1/hosts/challenge`: what a host signs to register with its key.
    pub async fn challenge(&self) -> Result<Challenge> {
        self.post(routes::CHALLENGE, None, &serde_json::json!({}), None, None)
            .await
    }

    /// `POST /v1/hosts/:id/approve`.
    pub async fn approve_host(&self, host_id: &str) -> Result<Host> {
        self.host_action(routes::APPROVE_HOST, host_id).await
    }

    /// `POST /v1/hosts/:id/revoke`.
    pub async fn revoke_host(&self, host_id: &str) -> Result<Host> {
        self.host_action(routes::REVOKE_HOST, host_id).await
    }

    /// An admin's action on one host, which answers with the host.
    async fn host_action(&self, route: routes::Route, host_id: &str) -> Result<Host> {
        let body = serde_json::json!({});
        let response: HostResponse = self.post(route, Some(host_id), &body, None, None).await?;
        Ok(response.host)
    }

    /// `POST /v1/keys`: the key and its secret, shown this once.
    pub async fn issue_key(&self, request: &IssueKeyRequest) -> Result<IssuedKey> {
        self.post(routes::ISSUE_KEY, None, request, None, None)
            .await
    }

    /// `GET /v1/keys`.
    pub async fn keys(&self) -> Result<Vec<Key>> {
        let response: KeysResponse = self.get(routes::KEYS, None).await?;
        Ok(response.keys)
    }

    /// `POST /v1/keys/:id/revoke`.
    pub async fn revoke_key(&self, key_id: &str) -> Result<Key> {
        let response: KeyResponse = self
            .post(
                routes::REVOKE_KEY,
                Some(key_id),
                &serde_json::json!({}),
                None,
                None,
            )
            .await?;
        Ok(response.key)
    }

    /// `POST /v1/hosts/:id/heartbeat`. A 404 means the coordinator does not
    /// know the host: register again.
    pub async fn heartbeat(
        &self,
        host_id: &str,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse> {
        let id = Some(host_id);
        self.post(routes::HEARTBEAT, id, request, None, None).await
    }

    /// `POST /v1/hosts/:id/claim` in the MVP's shape: one job or none,
    /// waiting up to `wait` for one to appear. Retries carry one
    /// idempotency key, so a lost answer costs the job no attempt.
    pub async fn claim(&self, host_id: &str, wait: Option<Duration>) -> Result<Option<Job>> {
        let response: ClaimResponse = self.claim_call(host_id, None, wait).await?;
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
        let response: JobsResponse = self.claim_call(host_id, Some(max_jobs), wait).await?;
        Ok(response.jobs)
    }

    /// A claim, long-polling up to `wait`; the answer's shape depends on
    /// whether `maxJobs` was given.
    async fn claim_call<T: serde::de::DeserializeOwned>(
        &self,
        host_id: &str,
        max_jobs: Option<u32>,
        wait: Option<Duration>,
    ) -> Result<T> {
        let request = ClaimRequest {
            wait_ms: wait.map(duration_ms),
            max_jobs,
        };
        let timeout = self.request_timeout() + wait.unwrap_or_default() + LONG_POLL_MARGIN;
        // One key for every retry of this call: a retry whose first answer
        // was lost gets the same lease back rather than a second one.
        let key = self.made_up_key();
        let id = Some(host_id);
        self.post(routes::CLAIM, id, &request, key.as_deref(), Some(timeout))
            .await
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
        let response: JobResponse = self.post(routes::ENQUEUE, None, request, key, None).await?;
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
        let route = routes::ENQUEUE_BATCH;
        let response: JobsResponse = self.post(route, None, request, key, None).await?;
        Ok(response.jobs)
    }

    /// `GET /v1/jobs/:id`.
    pub async fn job(&self, job_id: &str) -> Result<Job> {
        let response: JobResponse = self.get(routes::JOB, Some(job_id)).await?;
        Ok(response.job)
    }

    /// `GET /v1/jobs`: one page, oldest first.
    pub async fn list_jobs(&self, filter: &ListJobs) -> Result<JobsPage> {
        self.get_with_query(routes::JOBS, filter).await
    }

    /// `GET /v1/summary`: jobs by status, the queue's depth, the last hour.
    pub async fn summary(&self) -> Result<JobsSummary> {
        self.get(routes::SUMMARY, None).await
    }

    /// `POST /v1/jobs/:id/cancel`: a queued job ends at once, a leased one
    /// when its host has stopped it.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        let body = serde_json::json!({});
        let id = Some(job_id);
        let response: JobResponse = self.post(routes::CANCEL, id, &body, None, None).await?;
        Ok(response.job)
    }

    /// `POST /v1/jobs/:id/complete`. A 409 means the lease is no longer the
    /// caller's; the result is not recorded.
    pub async fn complete_job(&self, job_id: &str, request: &CompleteRequest) -> Result<Job> {
        let id = Some(job_id);
        let response: JobResponse = self.post(routes::COMPLETE, id, request, None, None).await?;
        Ok(response.job)
    }

    /// `GET /v1/hosts`.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        let response: HostsResponse = self.get(routes::HOSTS, None).await?;
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
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use skyclaw_api::routes::{IDEMPOTENCY_HEADER, TOKEN_HEADER};

    use super::*;
    use crate::fake_server::FakeCoordinator;
    use crate::ClientConfig;

    const JOB_JSON: &str = r#"{"id":"job-1","createdAt":1,"updatedAt":1,"status":"queued",
        "attempts":0,"maxAttempts":3,"priority":0,"requirement":{"requiredCapabilities":[]},
        "payload":{"kind":"shell","command":"true"}}"#;

    fn client_for(urls: Vec<String>) -> Client {
        let mut config = ClientConfig::new(urls, None);
        config.passes = 1;
        Client::new(config).unwrap()
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

    /// Every call, refused at once so that none is retried: what went on
    /// the wire, written out rather than derived from the routes.
    #[tokio::test]
    async fn each_call_sends_its_routes_method_and_path() {
        let refusing = FakeCoordinator::start(|_| (404, r#"{"error":"no"}"#.into())).await;
        let client = client_for(vec![refusing.url()]);
        let enqueue = EnqueueRequest::shell("true", Vec::new());
        let batch = BatchEnqueueRequest { jobs: Vec::new() };
        let register = RegisterHostRequest {
            host_id: None,
            name: "h".into(),
            capabilities: None,
            max_parallel: None,
            sandbox: None,
            ..RegisterHostRequest::default()
        };
        let heartbeat = HeartbeatRequest {
            active_leases: None,
            running: None,
        };
        let complete = CompleteRequest {
            host_id: "h".into(),
            success: true,
            duration_ms: 0,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            lease_epoch: None,
            receipt: None,
        };
        let wait = Some(Duration::ZERO);
        assert!(client.health().await.is_err());
        assert!(client.status().await.is_err());
        assert!(client.state().await.is_err());
        assert!(client.log_head().await.is_err());
        assert!(client.cluster().await.is_err());
        assert!(client.add_member("n2", "http://b:1").await.is_err());
        assert!(client.remove_member("n2").await.is_err());
        assert!(client.state_digest().await.is_err());
        assert!(client.register_host(&register).await.is_err());
        assert!(client.heartbeat("h 1", &heartbeat).await.is_err());
        assert!(client.claim("h 1", wait).await.is_err());
        assert!(client.claim_jobs("h 1", 2, wait).await.is_err());
        assert!(client.enqueue(&enqueue, None).await.is_err());
        assert!(client.enqueue_batch(&batch, None).await.is_err());
        assert!(client.job("j/1").await.is_err());
        assert!(client.list_jobs(&ListJobs::default()).await.is_err());
        assert!(client.cancel_job("j/1").await.is_err());
        assert!(client.complete_job("j/1", &complete).await.is_err());
        assert!(client.hosts().await.is_err());
        let sent: Vec<String> = refusing
            .requests()
            .iter()
            .map(|request| format!("{} {}", request.method, request.path))
            .collect();
        assert_eq!(
            sent,
            [
                "GET /health",
                "GET /v1/status",
                "GET /v1/state",
                "GET /v1/log/head",
                "GET /v1/cluster",
                "POST /v1/cluster/add",
                "POST /v1/cluster/remove",
                "GET /v1/state/digest",
                "POST /v1/hosts/register",
                "POST /v1/hosts/h%201/heartbeat",
                "POST /v1/hosts/h%201/claim",
                "POST /v1/hosts/h%201/claim",
                "POST /v1/jobs",
                "POST /v1/jobs/batch",
                "GET /v1/jobs/j%2F1",
                "GET /v1/jobs",
                "POST /v1/jobs/j%2F1/cancel",
                "POST /v1/jobs/j%2F1/complete",
                "GET /v1/hosts",
            ]
        );
    }
}
