//! Claims: `{job}` for MVP hosts, `{jobs}` with `maxJobs`, priority then
//! age, capabilities, `maxParallel`, and the long poll.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyclaw_api::routes::TOKEN_HEADER;
use warp::http::StatusCode;

use crate::util::{bounded, decode, shell_job, TestNode, LEASE_MS, TOKEN};

fn ids(jobs: &Value) -> Vec<String> {
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_mvp_claim_answers_one_job_or_null() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let (status, body) = t.call("POST", "/v1/hosts/h/claim", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "job": null }));

    let job_id = t.enqueue_echo("x").await;
    let (status, body) = t.call("POST", "/v1/hosts/h/claim", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let job = &body["job"];
    assert_eq!(job["id"], job_id.as_str());
    assert_eq!(job["status"], "leased");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["leaseEpoch"], 1);
    assert_eq!(job["assignedHostId"], "h");
    let expires = job["leaseExpiresAt"].as_u64().unwrap();
    assert!(expires >= job["updatedAt"].as_u64().unwrap() + LEASE_MS);
    assert_eq!(job["payload"]["command"], "echo");
    t.stop().await;
}

#[tokio::test]
async fn a_claim_with_max_jobs_answers_a_list_within_max_parallel() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 3).await;
    let mut enqueued = Vec::new();
    for i in 0..5 {
        enqueued.push(t.enqueue_echo(&i.to_string()).await);
    }
    let (status, body) = t.post("/v1/hosts/h/claim", json!({ "maxJobs": 2 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body["jobs"]), enqueued[..2]);
    let (_, body) = t.post("/v1/hosts/h/claim", json!({ "maxJobs": 5 })).await;
    assert_eq!(
        ids(&body["jobs"]),
        enqueued[2..3],
        "maxParallel caps the claim"
    );
    let (_, body) = t.post("/v1/hosts/h/claim", json!({ "maxJobs": 5 })).await;
    assert_eq!(body, json!({ "jobs": [] }));
    let (_, hosts) = t.get("/v1/hosts").await;
    assert_eq!(hosts["hosts"][0]["activeLeases"], 3);
    t.stop().await;
}

#[tokio::test]
async fn claims_take_priority_first_then_age() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 10).await;
    let mut ids_by_name = std::collections::BTreeMap::new();
    for (name, priority) in [("low", -5), ("old", 0), ("urgent", 9), ("young", 0)] {
        let mut body = shell_job(name);
        body["priority"] = json!(priority);
        let job = t.enqueue(body).await;
        assert_eq!(job["priority"], priority);
        ids_by_name.insert(job["id"].as_str().unwrap().to_string(), name);
    }
    let (_, body) = t.post("/v1/hosts/h/claim", json!({ "maxJobs": 10 })).await;
    let order: Vec<&str> = ids(&body["jobs"])
        .iter()
        .map(|id| ids_by_name[id])
        .collect();
    assert_eq!(order, ["urgent", "old", "young", "low"]);
    t.stop().await;
}

#[tokio::test]
async fn a_host_gets_only_jobs_it_has_the_capabilities_for() {
    let t = TestNode::start().await;
    t.register("plain", &["shell"], 5).await;
    t.register("gpu", &["shell", "gpu"], 5).await;
    let mut body = shell_job("render");
    body["requirement"] = json!({ "requiredCapabilities": ["gpu"] });
    let gpu_job = t.enqueue(body).await;
    assert_eq!(
        gpu_job["requirement"]["requiredCapabilities"],
        json!(["gpu"])
    );
    assert_eq!(t.claim("plain").await, Value::Null);
    assert_eq!(t.claim("gpu").await["id"], gpu_job["id"]);
    t.stop().await;
}

#[tokio::test]
async fn a_waiting_claim_returns_as_soon_as_a_job_is_enqueued() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let wait_ms = 20_000;
    let claim = warp::test::request()
        .method("POST")
        .path("/v1/hosts/h/claim")
        .header(TOKEN_HEADER, TOKEN)
        .json(&json!({ "waitMs": wait_ms }))
        .reply(&t.routes);
    // The enqueue runs once the claim above is parked, waiting for work.
    let routes = t.routes.clone();
    let enqueue = tokio::spawn(async move {
        let response = warp::test::request()
            .method("POST")
            .path("/v1/jobs")
            .header(TOKEN_HEADER, TOKEN)
            .json(&shell_job("wake up"))
            .reply(&routes)
            .await;
        decode(response)
    });
    let started = Instant::now();
    let (status, body) = decode(bounded("the waiting claim", claim).await);
    let waited = started.elapsed();
    let (enqueued_status, enqueued) = enqueue.await.unwrap();
    assert_eq!(enqueued_status, StatusCode::OK);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["id"], enqueued["job"]["id"]);
    assert!(
        waited < Duration::from_millis(wait_ms / 4),
        "the claim took {waited:?}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_waiting_claim_gives_up_after_wait_ms() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let started = Instant::now();
    let (status, body) = t.post("/v1/hosts/h/claim", json!({ "waitMs": 200 })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "job": null }));
    assert!(started.elapsed() >= Duration::from_millis(200));
    let (_, body) = t
        .post("/v1/hosts/h/claim", json!({ "waitMs": 50, "maxJobs": 4 }))
        .await;
    assert_eq!(body, json!({ "jobs": [] }));
    t.stop().await;
}
