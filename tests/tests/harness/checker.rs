//! What must hold after a run, checked against the nodes' own logs:
//!
//! - every node answers with the same log head `{seq, hash}` and the same
//!   state digest (waited for, with a deadline, once writes stop);
//! - every node's event log verifies as a chain, page by page, from genesis
//!   or, on a node restored from a snapshot, from the anchor it reports,
//!   and holds the same records as a node with the whole log;
//! - every acknowledged enqueue is in the log exactly once, under its key,
//!   and in the state; a key never acknowledged made at most one job;
//! - at most one lease per job is live at a time, epochs only grow, a job
//!   completes at most once and only under its live lease, and every
//!   acknowledged completion is the one in the log.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;
use skyclaw_api::{LogHead, StateResponse};
use skyclaw_log_format::{read_segment, ChainHead, Event, Record};
use skyclaw_testkit::Cluster;

use super::load::Ledger;

/// Records one `GET /v1/events` asks for: the route's maximum.
const PAGE: u64 = 10_000;

/// What a check saw, for the test to print.
#[derive(Debug)]
pub struct Summary {
    pub head_seq: u64,
    pub jobs: usize,
    pub acknowledged: usize,
    pub unsure: usize,
    pub completed: usize,
    /// Nodes whose log starts at a snapshot's anchor, with its seq.
    pub anchored: Vec<(String, u64)>,
}

/// One node's event log as it served it.
struct NodeLog {
    name: String,
    /// The seq the log is anchored after, when restored from a snapshot.
    anchor: Option<u64>,
    records: Vec<Record>,
}

/// Waits until the live nodes agree, then checks everything above.
pub async fn check(cluster: &Cluster, ledger: &Ledger) -> Summary {
    assert!(
        ledger.wrong_answers.is_empty(),
        "answers that should never happen: {:#?}",
        ledger.wrong_answers
    );
    let head = converged(cluster).await;
    let mut logs = Vec::new();
    for i in cluster.live() {
        logs.push(fetch_log(cluster, i, &head).await);
    }
    let reference = logs
        .iter()
        .find(|log| log.anchor.is_none())
        .expect("at least one node keeps the whole log");
    for log in &logs {
        let start = log.anchor.unwrap_or(0) as usize;
        assert_eq!(
            log.records.as_slice(),
            &reference.records[start..],
            "{} and {} hold different records",
            log.name,
            reference.name
        );
    }
    let summary = audit(&reference.records, ledger);
    let state: StateResponse = cluster
        .api
        .get_json(
            &cluster.nodes[cluster.index_of(&reference.name)].url,
            "/v1/state?stale=true",
        )
        .await
        .expect("the state of the reference node");
    let jobs: BTreeMap<&str, &skyclaw_api::Job> = state
        .jobs
        .iter()
        .map(|job| (job.id.as_str(), job))
        .collect();
    // Jobs that ended may have been retired from the state: the counts
    // still hold them, and each is still read by id, as it ended.
    let url = &cluster.nodes[cluster.index_of(&reference.name)].url;
    let counts: Value = cluster
        .api
        .get_json(url, "/v1/summary")
        .await
        .expect("the summary of the reference node");
    let counted: u64 = counts["jobs"]
        .as_object()
        .expect("jobs by status")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(
        counted as usize, summary.jobs,
        "jobs counted and jobs enqueued in the log differ"
    );
    assert!(
        jobs.len() <= summary.jobs,
        "more jobs in the state than enqueued"
    );
    for (key, job_id) in &ledger.enqueued {
        if !jobs.contains_key(job_id.as_str()) {
            let path = format!("/v1/jobs/{job_id}?stale=true");
            let retired: Value = cluster
                .api
                .get_json(url, &path)
                .await
                .unwrap_or_else(|| panic!("acknowledged job {job_id} ({key}) is gone"));
            let status = retired["job"]["status"].as_str().unwrap_or_default();
            assert!(
                ["completed", "failed", "cancelled"].contains(&status),
                "acknowledged job {job_id} ({key}) left the state while {status}"
            );
        }
    }
    Summary {
        anchored: logs
            .iter()
            .filter_map(|log| log.anchor.map(|seq| (log.name.clone(), seq)))
            .collect(),
        ..summary
    }
}

/// The head every live node reports, once they report the same head and
/// digest. Leases expiring after the load stopped still write, so this
/// waits for a moment when nothing moved between the first node and the
/// last.
async fn converged(cluster: &Cluster) -> LogHead {
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    loop {
        let mut seen = Vec::new();
        for i in cluster.live() {
            let head = cluster.head(i).await;
            let digest = cluster.digest(i).await;
            seen.push((cluster.nodes[i].name.clone(), head, digest));
        }
        let first = &seen[0];
        let agree = seen.iter().all(|(_, head, digest)| {
            let head = head.as_ref().map(|h| (h.seq, &h.hash, &h.cluster_id));
            let digest = digest.as_ref();
            head.is_some()
                && head == first.1.as_ref().map(|h| (h.seq, &h.hash, &h.cluster_id))
                && digest.is_some_and(|d| Some(d.seq) == head.map(|h| h.0))
                && digest == first.2.as_ref()
        });
        if agree {
            return first.1.clone().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not converge within {limit:?}; last seen: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads node `i`'s whole log through `/v1/events` in pages, verifying the
/// chain across pages, up to the converged `head`.
async fn fetch_log(cluster: &Cluster, i: usize, head: &LogHead) -> NodeLog {
    let node = &cluster.nodes[i];
    let first = cluster
        .api
        .get(&node.url, "/v1/events?from=1&limit=1")
        .await
        .unwrap_or_else(|e| panic!("{}: /v1/events: {e}", node.name));
    let anchor = match first.status {
        200 => None,
        410 => Some(reported_anchor(&node.name, &first.text())),
        status => panic!(
            "{}: /v1/events answered {status}: {}",
            node.name,
            first.text()
        ),
    };
    let mut records = Vec::new();
    let mut from = anchor.unwrap_or(0) + 1;
    // A log restored from a snapshot is verified from the anchor its first
    // segment names; the comparison with a whole log vouches for it.
    let mut chain: Option<ChainHead> = match anchor {
        None => Some(ChainHead::genesis(&head.cluster_id)),
        Some(_) => None,
    };
    while from <= head.seq {
        // Up to the converged head, not past it: the leader may append
        // after the nodes agreed (a retirement, a lease running out).
        let limit = PAGE.min(head.seq - from + 1);
        let reply = cluster
            .api
            .get(&node.url, &format!("/v1/events?from={from}&limit={limit}"))
            .await
            .unwrap_or_else(|e| panic!("{}: /v1/events?from={from}: {e}", node.name));
        assert_eq!(reply.status, 200, "{}: {}", node.name, reply.text());
        let segment = read_segment(reply.body.as_slice())
            .unwrap_or_else(|e| panic!("{}: the segment from {from} is bad: {e}", node.name));
        let continues_from = chain.unwrap_or_else(|| segment.header.anchor());
        segment
            .header
            .check_continues(&head.cluster_id, continues_from)
            .unwrap_or_else(|e| {
                panic!("{}: the page from {from} does not continue: {e}", node.name)
            });
        assert!(
            !segment.records.is_empty(),
            "{}: no records from {from} though the head is {}",
            node.name,
            head.seq
        );
        chain = Some(segment.head());
        from = segment.head().seq + 1;
        records.extend(segment.records);
    }
    let last = chain.map_or(anchor.unwrap_or(0), |c| c.seq);
    assert_eq!(last, head.seq, "{}: its log ends elsewhere", node.name);
    if let Some(last) = records.last() {
        assert_eq!(
            last.hash.to_hex(),
            head.hash,
            "{}: its last record is not its head",
            node.name
        );
    }
    NodeLog {
        name: node.name.clone(),
        anchor,
        records,
    }
}

/// The seq a node restored from a snapshot says its log starts after, from
/// its 410 answer.
pub fn reported_anchor(name: &str, answer: &str) -> u64 {
    answer
        .split("starts after seq ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{name}: a 410 that names no anchor: {answer}"))
}

/// Where a job's lease stands while replaying the log.
#[derive(Default)]
struct JobTrack {
    enqueued: u32,
    /// The live lease: host and epoch.
    lease: Option<(String, u32)>,
    last_epoch: u32,
    completion: Option<(String, u32)>,
}

/// Replays the whole log and checks the ledger against it.
fn audit(records: &[Record], ledger: &Ledger) -> Summary {
    let mut jobs: HashMap<String, JobTrack> = HashMap::new();
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for record in records {
        let seq = record.seq;
        let event = record
            .decode_event()
            .unwrap_or_else(|e| panic!("seq {seq} does not decode: {e}"));
        match event {
            Event::JobEnqueued(spec) => {
                let track = jobs.entry(spec.job_id.clone()).or_default();
                track.enqueued += 1;
                assert_eq!(
                    track.enqueued, 1,
                    "seq {seq}: job {} enqueued again",
                    spec.job_id
                );
                if let Some(key) = spec.idempotency_key {
                    keys.entry(key).or_default().push(spec.job_id);
                }
            }
            Event::JobLeased {
                job_id,
                host_id,
                lease_epoch,
                ..
            } => {
                let track = jobs.get_mut(&job_id).expect("leased job was enqueued");
                assert!(
                    track.lease.is_none() && track.completion.is_none(),
                    "seq {seq}: job {job_id} leased to {host_id} while {:?} holds it or after it completed",
                    track.lease
                );
                assert!(
                    lease_epoch > track.last_epoch,
                    "seq {seq}: job {job_id} leased under epoch {lease_epoch} after {}",
                    track.last_epoch
                );
                track.last_epoch = lease_epoch;
                track.lease = Some((host_id, lease_epoch));
            }
            Event::LeaseRenewed {
                job_id,
                lease_epoch,
                ..
            } => {
                let track = &jobs[&job_id];
                assert_eq!(
                    track.lease.as_ref().map(|l| l.1),
                    Some(lease_epoch),
                    "seq {seq}: {job_id} renewed under a lease that is not live"
                );
            }
            Event::LeaseExpired {
                job_id,
                lease_epoch,
            } => {
                let track = jobs.get_mut(&job_id).expect("expired job was enqueued");
                assert_eq!(
                    track.lease.take().map(|l| l.1),
                    Some(lease_epoch),
                    "seq {seq}: {job_id} expired under a lease that is not live"
                );
            }
            Event::JobCompleted(completion) => {
                let job_id = &completion.job_id;
                let track = jobs.get_mut(job_id).expect("completed job was enqueued");
                let holder = (completion.host_id.clone(), completion.lease_epoch);
                assert!(
                    track.completion.is_none(),
                    "seq {seq}: {job_id} completed twice: {:?} then {holder:?}",
                    track.completion
                );
                assert_eq!(
                    track.lease.take(),
                    Some(holder.clone()),
                    "seq {seq}: {job_id} completed by {holder:?}, which does not hold its live lease"
                );
                track.completion = Some(holder);
            }
            Event::ClusterCreated { .. }
            | Event::HostRegistered { .. }
            | Event::HostApproved { .. }
            | Event::HostRevoked { .. }
            | Event::KeyIssued(_)
            | Event::KeyRevoked { .. }
            | Event::CancelRequested { .. }
            | Event::JobCancelled { .. }
            | Event::JobsRetired { .. } => {}
        }
    }
    for (key, job_id) in &ledger.enqueued {
        assert_eq!(
            keys.get(key),
            Some(&vec![job_id.clone()]),
            "acknowledged enqueue {key} (job {job_id}) is not in the log exactly once"
        );
    }
    for key in &ledger.unsure {
        let made = keys.get(key).map_or(0, Vec::len);
        assert!(made <= 1, "unacknowledged enqueue {key} made {made} jobs");
    }
    for (job_id, holders) in &ledger.completed {
        assert_eq!(
            holders.len(),
            1,
            "{job_id}: completions acknowledged to more than one lease: {holders:?}"
        );
        let logged = jobs.get(job_id).and_then(|track| track.completion.clone());
        assert_eq!(
            logged.as_ref(),
            holders.iter().next(),
            "{job_id}: the acknowledged completion is not the one in the log"
        );
    }
    Summary {
        head_seq: records.last().map_or(0, |r| r.seq),
        jobs: jobs.len(),
        acknowledged: ledger.enqueued.len(),
        unsure: ledger.unsure.len(),
        completed: jobs.values().filter(|t| t.completion.is_some()).count(),
        anchored: Vec::new(),
    }
}
