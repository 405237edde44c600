//! `GET /metrics` of a real coordinator and a real host daemon, scraped
//! over loopback as Prometheus would: the families are there, counters
//! move with the work, requests are counted by route template (never by a
//! raw path a caller chose), and the coordinator's asks for the token,
//! taking it as a bearer credential too.
//!
//! - `a_coordinator_counts_requests_jobs_and_leases_as_they_happen`
//! - `metrics_need_the_token_and_take_it_as_a_bearer_credential`
//! - `in_three_nodes_each_names_the_leader_and_the_leader_shows_its_followers_lag`
//! - `a_host_serves_its_own_metrics_and_counts_each_run_by_outcome`

mod util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyclaw_api::JobStatus;
use util::{Cluster, TOKEN};

/// One scrape: each series (name and labels as written) with its value.
struct Scrape {
    text: String,
    series: BTreeMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
                (series.to_string(), value)
            })
            .collect();
        Scrape { text, series }
    }

    /// The value of the series `name` whose labels include every one of
    /// `labels` (in any order); 0 when there is none, as for a counter not
    /// yet moved.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<f64> = self
            .series
            .iter()
            .filter(|(series, _)| {
                let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
                series_name == name
                    && labels
                        .iter()
                        .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")))
            })
            .map(|(_, value)| *value)
            .collect();
        assert!(matching.len() <= 1, "{name} {labels:?} is ambiguous");
        matching.first().copied().unwrap_or(0.0)
    }

    fn has_family(&self, name: &str) -> bool {
        self.text.contains(&format!("# TYPE {name} "))
    }
}

/// Scrapes `url` with `auth` as its only credential header; panics
/// unless the answer is 200.
async fn scrape(http: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> Scrape {
    let (status, text) = get(http, url, auth).await;
    assert_eq!(status, 200, "{text}");
    Scrape::parse(text)
}

async fn get(http: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let mut request = http.get(url);
    if let Some((header, value)) = auth {
        request = request.header(header, value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn post(http: &reqwest::Client, cluster: &Cluster, path: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{}{path}", cluster.url))
        .header("x-skyclaw-token", TOKEN)
        .json(&body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the coordinator leads and has created its cluster; returns
/// its name.
async fn ready(http: &reqwest::Client, cluster: &Cluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get(
            http,
            &format!("{}/v1/status", cluster.url),
            Some(("x-skyclaw-token", TOKEN)),
        )
        .await;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 && !body["leader"].is_null() && body["head"]["seq"].as_u64() >= Some(1) {
            return body["leader"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no leader in 30 s: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const COORDINATOR_FAMILIES: [&str; 26] = [
    "skyclaw_http_requests_total",
    "skyclaw_http_request_duration_seconds",
    "skyclaw_jobs",
    "skyclaw_queue_depth",
    "skyclaw_hosts",
    "skyclaw_jobs_enqueued_total",
    "skyclaw_jobs_retired_total",
    "skyclaw_jobs_finished_total",
    "skyclaw_leases_granted_total",
    "skyclaw_leases_renewed_total",
    "skyclaw_leases_expired_total",
    "skyclaw_job_pickup_seconds",
    "skyclaw_raft_term",
    "skyclaw_raft_is_leader",
    "skyclaw_raft_leader",
    "skyclaw_raft_last_log_index",
    "skyclaw_raft_committed_index",
    "skyclaw_raft_applied_index",
    "skyclaw_raft_log_append_seconds",
    "skyclaw_raft_log_append_entries",
    "skyclaw_raft_entry_commands",
    "skyclaw_snapshot_builds_total",
    "skyclaw_snapshot_build_seconds",
    "skyclaw_snapshot_installs_total",
    "skyclaw_rocksdb_sst_bytes",
    "skyclaw_rocksdb_memtable_bytes",
];

#[tokio::test]
async fn a_coordinator_counts_requests_jobs_and_leases_as_they_happen() {
    let cluster = Cluster::start(60_000);
    let http = reqwest::Client::new();
    let leader = ready(&http, &cluster).await;
    let metrics_url = format!("{}/metrics", cluster.url);
    let token = Some(("x-skyclaw-token", TOKEN));
    let before = scrape(&http, &metrics_url, token).await;
    for family in COORDINATOR_FAMILIES {
        assert!(
            before.has_family(family),
            "{family} missing:\n{}",
            before.text
        );
    }
    assert_eq!(before.value("skyclaw_raft_is_leader", &[]), 1.0);
    assert_eq!(
        before.value("skyclaw_raft_leader", &[("leader", &leader)]),
        1.0
    );
    assert!(before.value("skyclaw_raft_term", &[]) >= 1.0);

    // An enqueue, a claim and a completion, as a host would send them.
    let host = json!({"hostId": "h1", "name": "h1", "maxParallel": 1});
    assert_eq!(
        post(&http, &cluster, "/v1/hosts/register", host).await.0,
        200
    );
    let job = json!({"payload": {"kind": "shell", "command": "true"}});
    let (status, enqueued) = post(&http, &cluster, "/v1/jobs", job).await;
    assert_eq!(status, 200, "{enqueued}");
    let job_id = enqueued["job"]["id"].as_str().unwrap().to_string();
    let (status, claimed) = post(&http, &cluster, "/v1/hosts/h1/claim", json!({})).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["job"]["id"], json!(job_id));
    let done = json!({"hostId": "h1", "success": true, "durationMs": 1, "exitCode": 0,
        "stdout": "", "stderr": "", "leaseEpoch": 1});
    let path = format!("/v1/jobs/{job_id}/complete");
    assert_eq!(post(&http, &cluster, &path, done).await.0, 200);
    // Refusals, under their route's template and status: a job that does
    // not exist, a path no route serves. Neither raw path may show.
    let (status, _) = get(
        &http,
        &format!("{}/v1/jobs/no-such-job-5e1f", cluster.url),
        token,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&http, &format!("{}/v1/hidden-9c2d", cluster.url), token).await;
    assert_eq!(status, 404);

    let after = scrape(&http, &metrics_url, token).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "skyclaw_http_requests_total";
    let route = |method, route, status| [("method", method), ("route", route), ("status", status)];
    assert_eq!(moved(requests, &route("POST", "/v1/jobs", "200")), 1.0);
    assert_eq!(
        moved(requests, &route("POST", "/v1/hosts/{id}/claim", "200")),
        1.0
    );
    assert_eq!(
        moved(requests, &route("POST", "/v1/jobs/{id}/complete", "200")),
        1.0
    );
    assert_eq!(moved(requests, &route("GET", "/v1/jobs/{id}", "404")), 1.0);
    assert_eq!(
        moved(requests, &[("route", "unrouted"), ("status", "404")]),
        1.0
    );
    assert!(!after.text.contains("no-such-job") && !after.text.contains("hidden-9c2d"));
    assert!(!after.text.contains(&job_id), "a job id in a label");
    assert!(
        after.value(
            "skyclaw_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/v1/jobs")]
        ) >= 1.0
    );

    assert_eq!(moved("skyclaw_jobs_enqueued_total", &[]), 1.0);
    assert_eq!(moved("skyclaw_leases_granted_total", &[]), 1.0);
    assert_eq!(
        moved("skyclaw_jobs_finished_total", &[("status", "completed")]),
        1.0
    );
    assert_eq!(moved("skyclaw_job_pickup_seconds_count", &[]), 1.0);
    let completed = JobStatus::Completed.as_str();
    assert_eq!(after.value("skyclaw_jobs", &[("status", completed)]), 1.0);
    assert_eq!(after.value("skyclaw_queue_depth", &[]), 0.0);
    assert_eq!(after.value("skyclaw_hosts", &[]), 1.0);
    // Each write was one raft entry, appended and synced.
    assert!(moved("skyclaw_raft_log_append_seconds_count", &[]) >= 3.0);
    assert!(moved("skyclaw_raft_entry_commands_count", &[]) >= 3.0);
    assert!(moved("skyclaw_raft_committed_index", &[]) >= 3.0);
    assert_eq!(
        after.value("skyclaw_raft_applied_index", &[]),
        after.value("skyclaw_raft_last_log_index", &[])
    );
    assert!(
        after.value("skyclaw_rocksdb_memtable_bytes", &[("family", "events")]) > 0.0,
        "{}",
        after.text
    );
}

#[tokio::test]
async fn metrics_need_the_token_and_take_it_as_a_bearer_credential() {
    let cluster = Cluster::start(60_000);
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", cluster.url);
    let bearer = format!("Bearer {TOKEN}");
    let status = |auth: Option<(&'static str, String)>| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let auth = auth
                .as_ref()
                .map(|(header, value)| (*header, value.as_str()));
            get(&http, &url, auth).await.0
        }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(
        status(Some(("authorization", "Bearer wrong".into()))).await,
        401
    );
    assert_eq!(status(Some(("authorization", TOKEN.into()))).await, 401);
    assert_eq!(
        status(Some(("authorization", format!("Basic {TOKEN}")))).await,
        401
    );
    assert_eq!(status(Some(("authorization", bearer))).await, 200);
    assert_eq!(
        status(Some(("authorization", format!("bearer {TOKEN}")))).await,
        200
    );
    assert_eq!(status(Some(("x-skyclaw-token", TOKEN.into()))).await, 200);
    // Every route takes the bearer form, as API keys are sent by many
    // clients; a wrong bearer credential is refused like a wrong token.
    let (status, _) = get(
        &http,
        &format!("{}/v1/status", cluster.url),
        Some(("authorization", &format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &http,
        &format!("{}/v1/status", cluster.url),
        Some(("authorization", "Bearer wrong")),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn in_three_nodes_each_names_the_leader_and_the_leader_shows_its_followers_lag() {
    let cluster = skyclaw_testkit::Cluster::start(skyclaw_testkit::Options {
        routing: skyclaw_testkit::Routing::Direct,
        ..skyclaw_testkit::Options::default()
    })
    .await;
    let leader = cluster.wait_ready().await;
    let leader_name = cluster.nodes[leader].name.clone();
    let scrape_node = |i: usize| {
        let url = cluster.nodes[i].url.clone();
        let api = cluster.api.clone();
        async move {
            let reply = api.get(&url, "/metrics").await.expect("an answer");
            assert_eq!(reply.status, 200, "{}", reply.text());
            Scrape::parse(reply.text())
        }
    };
    for i in 0..cluster.nodes.len() {
        let scrape = scrape_node(i).await;
        let leads = if i == leader { 1.0 } else { 0.0 };
        assert_eq!(scrape.value("skyclaw_raft_is_leader", &[]), leads);
        assert_eq!(
            scrape.value("skyclaw_raft_leader", &[("leader", &leader_name)]),
            1.0
        );
        let lags = scrape.series.keys();
        let lag_series = lags
            .filter(|s| s.starts_with("skyclaw_raft_follower_lag_entries"))
            .count();
        assert_eq!(
            lag_series,
            if i == leader { 2 } else { 0 },
            "{}",
            scrape.text
        );
    }
    // Idle, every follower catches up: a lag of 0 each.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = scrape_node(leader).await;
        let caught_up = (0..cluster.nodes.len()).filter(|i| *i != leader).all(|i| {
            let follower = [("follower", cluster.nodes[i].name.as_str())];
            scrape
                .series
                .keys()
                .any(|s| s.contains(&format!("follower=\"{}\"", cluster.nodes[i].name)))
                && scrape.value("skyclaw_raft_follower_lag_entries", &follower) == 0.0
        });
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "followers still behind:\n{}",
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_host_serves_its_own_metrics_and_counts_each_run_by_outcome() {
    let cluster = Cluster::start(60_000);
    let host = cluster.start_host("host-a", &[("SKYCLAW_METRICS_ADDR", "127.0.0.1:0")]);
    let line = host.wait_for_line(Duration::from_secs(60), |line| {
        line.starts_with("skyclaw host metrics on http://")
    });
    let url = line.rsplit(' ').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let before = scrape(&http, &url, None).await;
    for family in [
        "skyclaw_host_jobs_total",
        "skyclaw_host_job_duration_seconds",
        "skyclaw_host_slots",
        "skyclaw_host_slots_in_use",
    ] {
        assert!(
            before.has_family(family),
            "{family} missing:\n{}",
            before.text
        );
    }
    assert_eq!(before.value("skyclaw_host_slots", &[]), 1.0);
    let succeeded = [("outcome", "succeeded")];
    let failed = [("outcome", "failed")];
    assert_eq!(before.value("skyclaw_host_jobs_total", &succeeded), 0.0);

    let ok = cluster.enqueue(&["sh", "-c", "true"]);
    let bad = cluster.enqueue(&["sh", "-c", "exit 3"]);
    assert_eq!(
        cluster.wait_final(&ok, Duration::from_secs(60)).status,
        JobStatus::Completed
    );
    assert_eq!(
        cluster.wait_final(&bad, Duration::from_secs(60)).status,
        JobStatus::Failed
    );
    // A run is counted when it ends, before its report is acknowledged;
    // its slot is free once the acknowledgement is in.
    let after = scrape(&http, &url, None).await;
    assert_eq!(after.value("skyclaw_host_jobs_total", &succeeded), 1.0);
    assert_eq!(after.value("skyclaw_host_jobs_total", &failed), 1.0);
    assert_eq!(
        after.value("skyclaw_host_job_duration_seconds_count", &succeeded),
        1.0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(&http, &url, None)
        .await
        .value("skyclaw_host_slots_in_use", &[])
        != 0.0
    {
        assert!(Instant::now() < deadline, "the slot stayed in use");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // It serves metrics and nothing else.
    let other = url.replace("/metrics", "/v1/status");
    assert_eq!(get(&http, &other, None).await.0, 404);
}
