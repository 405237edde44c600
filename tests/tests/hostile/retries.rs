//! A host whose answer was lost retries: with the same idempotency key it
//! gets the same lease again, so a lost answer burns none of the job's
//! attempts; the other mutating routes are safe to repeat as they are.

use serde_json::json;

use super::http::Http;
use crate::util::Cluster;

#[tokio::test]
async fn a_retried_claim_gets_the_same_lease_back() {
    let cluster = Cluster::start(60_000);
    let http = Http::ready(&cluster).await;
    let host = json!({"hostId": "h1", "name": "h1", "maxParallel": 4});
    assert_eq!(http.post("/v1/hosts/register", &host).await.status, 200);
    for _ in 0..3 {
        let job = json!({"payload": {"kind": "shell", "command": "echo"}});
        assert_eq!(http.post("/v1/jobs", &job).await.status, 200);
    }

    let first = http
        .post_keyed(
            "/v1/hosts/h1/claim",
            &json!({"maxJobs": 2}),
            Some("claim-1"),
        )
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let taken = first.body["jobs"].as_array().unwrap().clone();
    assert_eq!(taken.len(), 2);

    // The answer was lost; the host asks again with the same key.
    let index = http.raft_index().await;
    let again = http
        .post_keyed(
            "/v1/hosts/h1/claim",
            &json!({"maxJobs": 2}),
            Some("claim-1"),
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    let ids = |jobs: &[serde_json::Value]| {
        let mut ids: Vec<String> = jobs
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(again.body["jobs"].as_array().unwrap()), ids(&taken));
    for job in again.body["jobs"].as_array().unwrap() {
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(job["leaseEpoch"], 1, "{job}");
    }
    assert!(http.raft_index().await <= index + 1);

    // A new claim (a new key) takes the remaining job, not the same ones.
    let next = http
        .post_keyed(
            "/v1/hosts/h1/claim",
            &json!({"maxJobs": 2}),
            Some("claim-2"),
        )
        .await;
    let next = next.body["jobs"].as_array().unwrap().clone();
    assert_eq!(next.len(), 1);
    assert!(!ids(&taken).contains(&ids(&next)[0]));

    // Once completed, the key finds nothing held: a late retry gets new work
    // only if there is some, never the finished job.
    let done = json!({"hostId": "h1", "success": true, "durationMs": 1, "exitCode": 0,
        "stdout": "", "stderr": ""});
    for job in &taken {
        let id = job["id"].as_str().unwrap();
        let completed = http.post(&format!("/v1/jobs/{id}/complete"), &done).await;
        assert_eq!(completed.status, 200, "{completed:?}");
        let repeated = http.post(&format!("/v1/jobs/{id}/complete"), &done).await;
        assert_eq!(
            repeated.status, 200,
            "a repeated completion is answered again"
        );
    }
    let late = http
        .post_keyed(
            "/v1/hosts/h1/claim",
            &json!({"maxJobs": 2}),
            Some("claim-1"),
        )
        .await;
    assert_eq!(late.body["jobs"], json!([]), "{late:?}");
}
