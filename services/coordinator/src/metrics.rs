//! What a coordinator measures and how `GET /metrics` shows it, in
//! Prometheus text format. Events are counted where they happen through
//! handles registered once here (requests in [`crate::http`], leases and
//! jobs at apply in [`crate::machine`], the log's appends in
//! [`crate::log_store`], group commit in [`crate::proposer`], snapshots in
//! [`crate::snapshot`]); what is a view of the state, of raft or of
//! RocksDB is read at scrape time into a recorder made for that scrape, so
//! a member that left or a leader that stepped down leaves no stale series.
//! Each coordinator has its own recorder, none is installed globally: a
//! process running a coordinator and a host (`skyclaw dev`) keeps them apart.

use std::sync::RwLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use openraft::ServerState;
use skyclaw_api::routes::{self, Method};
use skyclaw_state::JobStatus;

use crate::coordinator::Coordinator;
use crate::raft::NodeId;
use crate::store::{cf, FAMILIES};

/// Bucket bounds of every `_seconds` histogram: from a fast fsync
/// (half a millisecond) to a job that waited an hour to be picked up.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
];
/// Bucket bounds of the group-commit histograms, up to the proposer's 512
/// commands per entry.
const COUNTS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const APPEND_ENTRIES: &str = "skyclaw_raft_log_append_entries";
const ENTRY_COMMANDS: &str = "skyclaw_raft_entry_commands";
/// How often histogram samples are folded into their buckets when nobody
/// scrapes, so unscraped samples do not pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The `route` label of a request no route serves (an unknown path, a
/// wrong method): never the raw path, which a caller chooses.
const UNROUTED: &str = "unrouted";

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// The coordinator's event metrics: counters and histograms registered
/// once, updated without allocating.
pub struct Metrics {
    recorder: PrometheusRecorder,
    /// One per route of `routes::ALL`, in its order, then one for
    /// requests no route serves.
    requests: Vec<RouteRequests>,
    pub(crate) jobs_enqueued: Counter,
    pub(crate) jobs_retired: Counter,
    /// Jobs that reached a final status, by it (indexed as `finished`).
    jobs_finished: [Counter; 3],
    pub(crate) leases_granted: Counter,
    pub(crate) leases_renewed: Counter,
    pub(crate) leases_expired: Counter,
    /// From enqueue to first lease, in the log's time.
    pub(crate) pickup_seconds: Histogram,
    pub(crate) append_seconds: Histogram,
    pub(crate) append_entries: Histogram,
    pub(crate) entry_commands: Histogram,
    pub(crate) committed_index: Gauge,
    pub(crate) snapshot_builds: Counter,
    pub(crate) snapshot_build_seconds: Histogram,
    pub(crate) snapshot_installs: Counter,
}

/// The requests of one route.
struct RouteRequests {
    latency: Histogram,
    method: &'static str,
    route: &'static str,
    /// Responses by status: the few a route answers with, registered on
    /// first use and then found by a short scan under a read lock.
    statuses: RwLock<Vec<(u16, Counter)>>,
}

const FINAL: [JobStatus; 3] = [
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = recorder();
        let counter = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
            recorder.register_counter(&Key::from_static_name(name), &METADATA)
        };
        let histogram = |name: &'static str, help: &'static str| {
            recorder.describe_histogram(KeyName::from_const_str(name), None, help.into());
            recorder.register_histogram(&Key::from_static_name(name), &METADATA)
        };
        recorder.describe_counter(
            KeyName::from_const_str("skyclaw_http_requests_total"),
            None,
            "HTTP requests answered, by method, route template and status.".into(),
        );
        recorder.describe_histogram(
            KeyName::from_const_str("skyclaw_http_request_duration_seconds"),
            None,
            "Time to answer a request, by method and route template (a claim's long poll included)."
                .into(),
        );
        let served = routes::ALL.iter().map(|route| {
            let method = match route.method {
                Method::Get => "GET",
                Method::Post => "POST",
            };
            (method, route.path)
        });
        let requests = served
            .chain([("", UNROUTED)])
            .map(|(method, route)| RouteRequests {
                latency: recorder.register_histogram(
                    &Key::from_parts(
                        "skyclaw_http_request_duration_seconds",
                        vec![
                            Label::from_static_parts("method", method),
                            Label::from_static_parts("route", route),
                        ],
                    ),
                    &METADATA,
                ),
                method,
                route,
                statuses: RwLock::new(Vec::new()),
            })
            .collect();
        recorder.describe_counter(
            KeyName::from_const_str("skyclaw_jobs_finished_total"),
            None,
            "Jobs that reached a final status, by it, as this node applied them.".into(),
        );
        let jobs_finished = FINAL.map(|status| {
            recorder.register_counter(
                &Key::from_parts(
                    "skyclaw_jobs_finished_total",
                    vec![Label::from_static_parts("status", status.as_str())],
                ),
                &METADATA,
            )
        });
        Metrics {
            requests,
            jobs_enqueued: counter(
                "skyclaw_jobs_enqueued_total",
                "Jobs enqueued, as this node applied them.",
            ),
            jobs_retired: counter(
                "skyclaw_jobs_retired_total",
                "Ended jobs retired from the live state, as this node applied it.",
            ),
            jobs_finished,
            leases_granted: counter(
                "skyclaw_leases_granted_total",
                "Leases granted (claims), as this node applied them.",
            ),
            leases_renewed: counter(
                "skyclaw_leases_renewed_total",
                "Leases renewed through the log (one per lease period of a running job).",
            ),
            leases_expired: counter(
                "skyclaw_leases_expired_total",
                "Leases that ran out without a report.",
            ),
            pickup_seconds: histogram(
                "skyclaw_job_pickup_seconds",
                "From a job's enqueue to its first lease, in the log's time.",
            ),
            append_seconds: histogram(
                "skyclaw_raft_log_append_seconds",
                "One raft log append: its synced RocksDB write.",
            ),
            append_entries: histogram(APPEND_ENTRIES, "Raft entries per log append."),
            entry_commands: histogram(
                ENTRY_COMMANDS,
                "Commands per raft entry this node proposed (group commit).",
            ),
            committed_index: {
                let name = "skyclaw_raft_committed_index";
                recorder.describe_gauge(
                    KeyName::from_const_str(name),
                    None,
                    "The last raft index this node knows committed.".into(),
                );
                recorder.register_gauge(&Key::from_static_name(name), &METADATA)
            },
            snapshot_builds: counter("skyclaw_snapshot_builds_total", "Snapshots built."),
            snapshot_build_seconds: histogram(
                "skyclaw_snapshot_build_seconds",
                "Building one snapshot, its synced write included.",
            ),
            snapshot_installs: counter(
                "skyclaw_snapshot_installs_total",
                "Snapshots received from a leader and installed.",
            ),
            recorder,
        }
    }

    /// Counts one answered request; `method` and `path` are the request's.
    pub fn request(&self, method: &warp::http::Method, path: &str, status: u16, took: Duration) {
        let method = match *method {
            warp::http::Method::GET => Some(Method::Get),
            warp::http::Method::POST => Some(Method::Post),
            _ => None,
        };
        let served = method.and_then(|method| routes::position(method, path));
        let requests = &self.requests[served.unwrap_or(routes::ALL.len())];
        requests.latency.record(took.as_secs_f64());
        let counted = requests
            .statuses
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|(code, _)| *code == status)
            .map(|(_, counter)| counter.increment(1));
        if counted.is_none() {
            self.status_counter(requests, status).increment(1);
        }
    }

    /// Registers the counter of a status a route had not answered with yet.
    fn status_counter(&self, requests: &RouteRequests, status: u16) -> Counter {
        let mut statuses = requests
            .statuses
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, counter)) = statuses.iter().find(|(code, _)| *code == status) {
            return counter.clone();
        }
        let key = Key::from_parts(
            "skyclaw_http_requests_total",
            vec![
                Label::from_static_parts("method", requests.method),
                Label::from_static_parts("route", requests.route),
                Label::new("status", status.to_string()),
            ],
        );
        let counter = self.recorder.register_counter(&key, &METADATA);
        statuses.push((status, counter.clone()));
        counter
    }

    /// Counts a job that reached `status`, if it is final.
    pub(crate) fn job_finished(&self, status: JobStatus) {
        if let Some(i) = FINAL.iter().position(|s| *s == status) {
            self.jobs_finished[i].increment(1);
        }
    }

    /// Folds histogram samples into their buckets every few seconds, for
    /// as long as the coordinator lives.
    pub(crate) fn keep_up(metrics: std::sync::Weak<Metrics>) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                match metrics.upgrade() {
                    Some(metrics) => metrics.recorder.handle().run_upkeep(),
                    None => return,
                }
            }
        });
    }

    fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// A recorder whose histograms render as Prometheus histograms (buckets),
/// not summaries.
fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(APPEND_ENTRIES.into()), COUNTS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(ENTRY_COMMANDS.into()), COUNTS))
        .expect("bucket lists are not empty")
        .build_recorder()
}

/// Gauges read at scrape time, set into a recorder of their own.
struct Sampled {
    recorder: PrometheusRecorder,
}

impl Sampled {
    fn gauge(&self, name: &'static str, help: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder
            .describe_gauge(KeyName::from_const_str(name), None, help.into());
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }
}

impl Coordinator {
    /// Every metric of this node in Prometheus text format: the event
    /// metrics, then the state, raft and RocksDB as they stand now.
    pub fn render_metrics(&self) -> String {
        let sampled = Sampled {
            recorder: PrometheusBuilder::new().build_recorder(),
        };
        let (counts, hosts) = self.read(|m| (m.state.status_counts(), m.state.hosts().count()));
        for (status, count) in JobStatus::ALL.iter().zip(counts) {
            sampled.gauge(
                "skyclaw_jobs",
                "Jobs by status.",
                vec![Label::from_static_parts("status", status.as_str())],
                count as f64,
            );
        }
        sampled.gauge(
            "skyclaw_queue_depth",
            "Jobs waiting to be claimed.",
            Vec::new(),
            counts[0] as f64,
        );
        sampled.gauge(
            "skyclaw_hosts",
            "Registered hosts.",
            Vec::new(),
            hosts as f64,
        );
        self.sample_raft(&sampled);
        self.sample_rocksdb(&sampled);
        let mut text = self.metrics.render();
        text.push_str(&sampled.recorder.handle().render());
        text
    }

    fn sample_raft(&self, sampled: &Sampled) {
        let metrics = self.raft.metrics().borrow().clone();
        let leading = metrics.state == ServerState::Leader;
        let name_of = |id: NodeId| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map_or_else(|| id.to_string(), |member| member.name.clone())
        };
        sampled.gauge(
            "skyclaw_raft_term",
            "The raft term this node is in.",
            Vec::new(),
            metrics.current_term as f64,
        );
        sampled.gauge(
            "skyclaw_raft_is_leader",
            "1 while this node leads, else 0.",
            Vec::new(),
            if leading { 1.0 } else { 0.0 },
        );
        if let Some(leader) = metrics.current_leader {
            sampled.gauge(
                "skyclaw_raft_leader",
                "1, labelled with the name of the member this node knows as leader.",
                vec![Label::new("leader", name_of(leader))],
                1.0,
            );
        }
        let last_index = metrics.last_log_index.unwrap_or(0);
        sampled.gauge(
            "skyclaw_raft_last_log_index",
            "The index of this node's last raft entry.",
            Vec::new(),
            last_index as f64,
        );
        sampled.gauge(
            "skyclaw_raft_applied_index",
            "The last raft index this node applied.",
            Vec::new(),
            metrics.last_applied.map_or(0, |id| id.index) as f64,
        );
        for (id, matched) in metrics.replication.iter().flatten() {
            if *id == self.id {
                continue;
            }
            let matched = matched.map_or(0, |log_id| log_id.index);
            sampled.gauge(
                "skyclaw_raft_follower_lag_entries",
                "On the leader: raft entries a follower lacks of the leader's log.",
                vec![Label::new("follower", name_of(*id))],
                last_index.saturating_sub(matched) as f64,
            );
        }
    }

    fn sample_rocksdb(&self, sampled: &Sampled) {
        for family in FAMILIES {
            let property = |name: &str| {
                self.db
                    .property_int_value_cf(cf(&self.db, family), name)
                    .ok()
                    .flatten()
                    .unwrap_or(0) as f64
            };
            let labels = || vec![Label::from_static_parts("family", family)];
            sampled.gauge(
                "skyclaw_rocksdb_sst_bytes",
                "Bytes of RocksDB table files, by column family.",
                labels(),
                property("rocksdb.total-sst-files-size"),
            );
            sampled.gauge(
                "skyclaw_rocksdb_memtable_bytes",
                "Bytes of RocksDB memtables, by column family.",
                labels(),
                property("rocksdb.cur-size-all-mem-tables"),
            );
        }
    }
}
