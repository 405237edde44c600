//! The MVP's host and scripts, speaking its exact JSON: ids it
//! percent-encodes in paths, heartbeats without a `running` list, payloads
//! whose empty `args` mean something. They must keep working unchanged.

use std::time::Duration;

use serde_json::json;

use super::http::Http;
use crate::util::Cluster;

#[tokio::test]
async fn percent_encoded_ids_reach_the_same_host_on_every_route() {
    let cluster = Cluster::start(60_000);
    let http = Http::ready(&cluster).await;
    let registered = http
        .post(
            "/v1/hosts/register",
            &json!({"hostId": "openclaw:box-1", "name": "box"}),
        )
        .await;
    assert_eq!(registered.status, 200, "{registered:?}");
    let job = http
        .post(
            "/v1/jobs",
            &json!({"payload": {"kind": "shell", "command": "echo"}}),
        )
        .await;
    let job_id = job.body["job"]["id"].as_str().unwrap().to_string();

    let heartbeat = http
        .post("/v1/hosts/openclaw%3Abox-1/heartbeat", &json!({}))
        .await;
    assert_eq!(heartbeat.status, 200, "{heartbeat:?}");
    let claim = http
        .post("/v1/hosts/openclaw%3abox-1/claim", &json!({}))
        .await;
    assert_eq!(claim.status, 200, "{claim:?}");
    assert_eq!(claim.body["job"]["id"], job_id.as_str());
    assert_eq!(claim.body["job"]["assignedHostId"], "openclaw:box-1");

    let encoded_job: String = job_id.replace('-', "%2D");
    let shown = http.get(&format!("/v1/jobs/{encoded_job}")).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    let done = json!({"hostId": "openclaw:box-1", "success": true, "durationMs": 3,
        "exitCode": 0, "stdout": "hi\n", "stderr": ""});
    let completed = http
        .post(&format!("/v1/jobs/{encoded_job}/complete"), &done)
        .await;
    assert_eq!(completed.status, 200, "{completed:?}");
    assert_eq!(completed.body["job"]["status"], "completed");
}

#[tokio::test]
async fn an_mvp_heartbeat_without_running_keeps_the_hosts_leases() {
    const LEASE_MS: u64 = 1_500;
    let cluster = Cluster::start(LEASE_MS);
    let http = Http::ready(&cluster).await;
    let host = json!({"hostId": "mvp-host", "name": "mvp", "capabilities": ["shell"]});
    assert_eq!(http.post("/v1/hosts/register", &host).await.status, 200);
    let job = http
        .post(
            "/v1/jobs",
            &json!({"payload": {"kind": "shell", "command": "sleep"}}),
        )
        .await;
    let job_id = job.body["job"]["id"].as_str().unwrap().to_string();
    let claim = http.post("/v1/hosts/mvp-host/claim", &json!({})).await;
    assert_eq!(claim.body["job"]["id"], job_id.as_str(), "{claim:?}");

    // The MVP host heartbeats with its slot count only, for four lease
    // periods: the job must stay leased to it, on its first attempt.
    let until = std::time::Instant::now() + Duration::from_millis(4 * LEASE_MS);
    while std::time::Instant::now() < until {
        let beat = http
            .post("/v1/hosts/mvp-host/heartbeat", &json!({"activeLeases": 1}))
            .await;
        assert_eq!(beat.status, 200, "{beat:?}");
        tokio::time::sleep(Duration::from_millis(LEASE_MS / 5)).await;
    }
    let job = http.get(&format!("/v1/jobs/{job_id}")).await.body["job"].clone();
    assert_eq!(job["status"], "leased", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["assignedHostId"], "mvp-host", "{job}");
}

#[tokio::test]
async fn an_empty_args_list_is_kept_as_given() {
    let cluster = Cluster::start(60_000);
    let http = Http::ready(&cluster).await;
    let given = http
        .post(
            "/v1/jobs",
            &json!({"payload": {"kind": "automaton-run", "args": []}}),
        )
        .await;
    assert_eq!(given.status, 200, "{given:?}");
    assert_eq!(given.body["job"]["payload"]["args"], json!([]));
    let id = given.body["job"]["id"].as_str().unwrap();
    let stored = http.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        stored.body["job"]["payload"]["args"],
        json!([]),
        "{stored:?}"
    );

    let absent = http
        .post("/v1/jobs", &json!({"payload": {"kind": "automaton-run"}}))
        .await;
    assert!(
        absent.body["job"]["payload"].get("args").is_none(),
        "{absent:?}"
    );
}
