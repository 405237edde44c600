//! Jobs: enqueue (priority, maxAttempts, idempotency), batch (atomic), get,
//! list with pages and filters (bounded in what it looks at), the summary
//! (bounded in what it lists), cancel, complete (fencing, repeats).

use serde_json::{json, Value};
use warp::http::StatusCode;

use crate::util::{error_message, shell_job, success, TestNode};

#[tokio::test]
async fn enqueue_returns_the_queued_job() {
    let t = TestNode::start().await;
    let job = t.enqueue(shell_job("hello")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["maxAttempts"], 3);
    assert_eq!(job["priority"], 0);
    assert_eq!(job["requirement"], json!({ "requiredCapabilities": [] }));
    assert_eq!(
        job["payload"],
        json!({ "kind": "shell", "command": "echo", "args": ["hello"] })
    );
    assert_eq!(job["createdAt"], job["updatedAt"]);
    for absent in [
        "leaseEpoch",
        "leaseExpiresAt",
        "assignedHostId",
        "result",
        "error",
    ] {
        assert!(job.get(absent).is_none(), "{absent} in {job}");
    }

    let automaton = t
        .enqueue(json!({
            "payload": { "kind": "automaton-run", "timeoutMs": 5000 },
            "priority": 7,
            "maxAttempts": 9,
        }))
        .await;
    assert_eq!(automaton["priority"], 7);
    assert_eq!(automaton["maxAttempts"], 9);
    assert_eq!(
        automaton["payload"],
        json!({ "kind": "automaton-run", "timeoutMs": 5000 })
    );
    assert_eq!(t.job(automaton["id"].as_str().unwrap()).await, automaton);
    t.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_job_or_conflicts() {
    let t = TestNode::start().await;
    let body = shell_job("once");
    let (status, first) = t.enqueue_with_key("key-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let head = t.head_seq().await;

    let (status, again) = t.enqueue_with_key("key-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["job"]["id"], first["job"]["id"]);
    assert_eq!(t.head_seq().await, head, "a repeat writes nothing");

    let (status, conflict) = t.enqueue_with_key("key-1", &shell_job("twice")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert!(error_message(&conflict).contains("key-1"), "{conflict}");

    let (status, other) = t.enqueue_with_key("key-2", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(other["job"]["id"], first["job"]["id"]);

    let (status, _) = t.enqueue_with_key("", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = t.get("/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn a_batch_is_enqueued_whole_or_not_at_all() {
    let t = TestNode::start().await;
    let (status, body) = t
        .post(
            "/v1/jobs/batch",
            json!({ "jobs": [shell_job("a"), shell_job("b"), shell_job("c")] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|job| job["status"] == "queued"));
    assert_eq!(jobs[1]["payload"]["args"], json!(["b"]));
    let head = t.head_seq().await;

    let mut invalid = shell_job("bad");
    invalid["maxAttempts"] = json!(0);
    let (status, body) = t
        .post(
            "/v1/jobs/batch",
            json!({ "jobs": [shell_job("d"), invalid, shell_job("e")] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("maxAttempts"), "{body}");
    let (status, body) = t
        .post(
            "/v1/jobs/batch",
            json!({ "jobs": [shell_job("f"), { "payload": { "kind": "shell" } }] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    assert_eq!(t.head_seq().await, head);
    let (_, list) = t.get("/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 3);
    t.stop().await;
}

#[tokio::test]
async fn jobs_are_listed_in_pages_with_a_next_cursor() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 2).await;
    let mut enqueued = Vec::new();
    for i in 0..5 {
        enqueued.push(t.enqueue_echo(&i.to_string()).await);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?limit=2".to_string();
    loop {
        let (status, page) = t.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(
            jobs.iter()
                .map(|job| job["id"].as_str().unwrap().to_string()),
        );
        match page.get("next") {
            Some(next) => {
                assert_eq!(next, &jobs.last().unwrap()["id"]);
                path = format!("/v1/jobs?limit=2&after={}", next.as_str().unwrap());
            }
            None => break,
        }
    }
    assert_eq!(seen, enqueued);
    let (_, exact) = t.get("/v1/jobs?limit=5").await;
    assert!(exact.get("next").is_none(), "{exact}");

    t.post("/v1/hosts/h/claim", json!({ "maxJobs": 2 })).await;
    let (_, leased) = t.get("/v1/jobs?status=leased").await;
    let leased: Vec<&str> = leased["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(leased, [enqueued[0].as_str(), enqueued[1].as_str()]);
    let (_, queued) = t.get("/v1/jobs?status=queued&limit=1").await;
    assert_eq!(queued["jobs"][0]["id"], enqueued[2].as_str());
    assert_eq!(queued["next"], enqueued[2].as_str());
    let (_, rest) = t
        .get(&format!("/v1/jobs?status=queued&after={}", enqueued[2]))
        .await;
    assert_eq!(rest["jobs"].as_array().unwrap().len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_job_ends_it() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    let path = format!("/v1/jobs/{job_id}/cancel");
    let (status, body) = t.call("POST", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["status"], "cancelled");
    assert_eq!(t.claim("h").await, Value::Null);
    let (status, body) = t.call("POST", &path, None).await;
    assert_eq!(status, StatusCode::OK, "cancelling twice is fine: {body}");
    t.stop().await;
}

#[tokio::test]
async fn a_cancelled_leased_job_ends_cancelled_when_it_completes() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    t.claim("h").await;
    let (status, body) = t
        .call("POST", &format!("/v1/jobs/{job_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["job"]["cancelRequested"], true);
    assert_eq!(t.heartbeat("h", json!({})).await["cancel"], json!([job_id]));

    let (status, body) = t.complete(&job_id, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["status"], "cancelled");
    assert_eq!(t.heartbeat("h", json!({})).await["cancel"], json!([]));
    t.stop().await;
}

#[tokio::test]
async fn a_finished_job_cannot_be_cancelled() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    t.claim("h").await;
    let (status, _) = t.complete(&job_id, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t
        .call("POST", &format!("/v1/jobs/{job_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    t.stop().await;
}

#[tokio::test]
async fn a_completion_records_the_result() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    t.claim("h").await;
    let (status, body) = t.complete(&job_id, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = &body["job"];
    assert_eq!(job["status"], "completed");
    assert_eq!(job["result"]["stdout"], "hello\n");
    assert_eq!(job["result"]["stderr"], "");
    assert_eq!(job["result"]["exitCode"], 0);
    assert_eq!(job["result"]["durationMs"], 12);
    assert!(job.get("leaseEpoch").is_none(), "{job}");
    assert_eq!(&t.job(&job_id).await, job);

    let (_, hosts) = t.get("/v1/hosts").await;
    assert_eq!(hosts["hosts"][0]["activeLeases"], 0);

    let job_id = t.enqueue_echo("y").await;
    t.claim("h").await;
    let failure = json!({
        "hostId": "h", "success": false, "durationMs": 3, "exitCode": 7,
        "stdout": "", "stderr": "boom", "error": "exit 7",
    });
    let (status, body) = t.complete(&job_id, failure).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["status"], "failed");
    assert_eq!(body["job"]["error"], "exit 7");
    assert_eq!(body["job"]["result"]["stderr"], "boom");
    t.stop().await;
}

#[tokio::test]
async fn a_completion_under_a_stale_lease_or_from_another_host_gets_409() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    t.register("other", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    t.claim("h").await;
    let head = t.head_seq().await;
    for epoch in [0, 2] {
        let (status, body) = t.complete(&job_id, success("h", Some(epoch))).await;
        assert_eq!(status, StatusCode::CONFLICT, "epoch {epoch}: {body}");
        assert!(error_message(&body).contains("epoch"), "{body}");
    }
    let (status, body) = t.complete(&job_id, success("other", Some(1))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = t.complete(&job_id, success("other", None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(t.head_seq().await, head);
    assert_eq!(t.job(&job_id).await["status"], "leased");

    // An MVP host names no epoch: the live lease is meant.
    let (status, body) = t.complete(&job_id, success("h", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.stop().await;
}

#[tokio::test]
async fn a_repeated_completion_gets_the_same_answer() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    t.register("other", &["shell"], 1).await;
    let job_id = t.enqueue_echo("x").await;
    t.claim("h").await;
    let (status, first) = t.complete(&job_id, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::OK);
    let head = t.head_seq().await;
    for _ in 0..2 {
        let (status, again) = t.complete(&job_id, success("h", Some(1))).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, first);
    }
    assert_eq!(t.head_seq().await, head);
    let (status, _) = t.complete(&job_id, success("other", Some(1))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    t.stop().await;
}

/// With the lease sweeper running, an expired lease puts the job back in
/// the queue under a new epoch, until its attempts are used up.
#[tokio::test]
async fn expiry_requeues_until_max_attempts_then_fails() {
    let t = TestNode::start().await;
    let sweeper = tokio::spawn(skyclaw_coordinator::sweeper::run(t.node.clone()));
    t.register("h", &["shell"], 1).await;
    let mut body = shell_job("slow");
    body["maxAttempts"] = json!(2);
    let job_id = t.enqueue(body).await["id"].as_str().unwrap().to_string();

    let first = t.claim("h").await;
    assert_eq!(first["leaseEpoch"], 1);
    let status_of = |t: &TestNode| t.node.read(|m| m.state.job(&job_id).unwrap().status);
    crate::util::wait_until("the first lease expires", || {
        status_of(&t) == skyclaw_state::JobStatus::Queued
    })
    .await;
    let requeued = t.job(&job_id).await;
    assert_eq!(requeued["attempts"], 1);
    assert!(requeued.get("assignedHostId").is_some(), "{requeued}");

    let second = t.claim("h").await;
    assert_eq!(second["leaseEpoch"], 2);
    let (status, body) = t.complete(&job_id, success("h", Some(1))).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the first attempt's lease is stale: {body}"
    );

    crate::util::wait_until("the last lease expires", || {
        status_of(&t) == skyclaw_state::JobStatus::Failed
    })
    .await;
    let failed = t.job(&job_id).await;
    assert_eq!(failed["attempts"], 2);
    assert!(
        failed["error"].as_str().unwrap().contains("maxAttempts"),
        "{failed}"
    );
    assert_eq!(t.claim("h").await, Value::Null);
    sweeper.abort();
    let _ = sweeper.await;
    t.stop().await;
}

#[tokio::test]
async fn jobs_are_filtered_by_host_capability_and_command_newest_first_if_asked() {
    let t = TestNode::start().await;
    t.register("h-1", &["shell", "gpu"], 4).await;
    let plain = t.enqueue_echo("alpha").await;
    let gpu = t
        .enqueue(json!({
            "payload": { "kind": "shell", "command": "render", "args": ["--frames", "beta"] },
            "requirement": { "requiredCapabilities": ["gpu"] },
        }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = t.enqueue_echo("gamma").await;
    t.post("/v1/hosts/h-1/claim", json!({ "maxJobs": 1 })).await;
    let ids = |page: &Value| -> Vec<String> {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_string())
            .collect()
    };
    let [plain, gpu, other] = [&plain, &gpu, &other].map(|id| id.as_str());
    let (_, by_host) = t.get("/v1/jobs?host=h-1").await;
    assert_eq!(ids(&by_host), [plain]);
    let (_, by_capability) = t.get("/v1/jobs?capability=gpu").await;
    assert_eq!(ids(&by_capability), [gpu]);
    let (_, by_argument) = t.get("/v1/jobs?command=bet").await;
    assert_eq!(ids(&by_argument), [gpu]);
    let (_, by_command) = t.get("/v1/jobs?command=echo&status=queued").await;
    assert_eq!(ids(&by_command), [other]);
    // A form's empty fields filter nothing.
    let (_, newest) = t
        .get("/v1/jobs?order=newest&limit=2&host=&capability=&command=&status=")
        .await;
    assert_eq!(ids(&newest), [other, gpu]);
    assert_eq!(newest["next"], gpu);
    let (_, rest) = t.get(&format!("/v1/jobs?order=newest&after={gpu}")).await;
    assert_eq!(ids(&rest), [plain]);
    assert!(rest.get("next").is_none(), "{rest}");
    t.stop().await;
}

#[tokio::test]
async fn a_bad_list_filter_gets_a_4xx_naming_it() {
    let t = TestNode::start().await;
    let long = "x".repeat(skyclaw_api::limits::MAX_COMMAND_BYTES + 1);
    for (query, status, named) in [
        ("order=sideways", StatusCode::BAD_REQUEST, "order"),
        ("host=a/b", StatusCode::BAD_REQUEST, "host"),
        ("host=%3Cscript%3E", StatusCode::BAD_REQUEST, "host"),
        ("capability=a%20b", StatusCode::BAD_REQUEST, "capability"),
        ("command=a%00b", StatusCode::BAD_REQUEST, "command"),
        (
            &format!("command={long}"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "command",
        ),
        ("limit=0", StatusCode::BAD_REQUEST, "limit"),
        ("after=nobody", StatusCode::BAD_REQUEST, "after"),
    ] {
        let (got, body) = t.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(error_message(&body).contains(named), "{query}: {body}");
    }
    t.stop().await;
}

#[tokio::test]
async fn the_summary_counts_jobs_by_status_queue_and_minute() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let done = t.enqueue_echo("one").await;
    let cancelled = t.enqueue_echo("two").await;
    t.enqueue(json!({
        "payload": { "kind": "shell", "command": "nvidia-smi" },
        "requirement": { "requiredCapabilities": ["gpu"] },
        "priority": 9,
    }))
    .await;
    assert_eq!(t.claim("h").await["id"], done.as_str());
    let (status, _) = t.complete(&done, success("h", Some(1))).await;
    assert_eq!(status, StatusCode::OK);
    t.post(&format!("/v1/jobs/{cancelled}/cancel"), json!({}))
        .await;

    let (status, summary) = t.get("/v1/summary").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        summary["jobs"],
        json!({ "queued": 1, "leased": 0, "completed": 1, "failed": 0, "cancelled": 1 })
    );
    assert_eq!(
        summary["queuedByPriority"],
        json!([{ "priority": 9, "depth": 1 }])
    );
    assert_eq!(
        summary["queuedByCapability"],
        json!([{ "capability": "gpu", "depth": 1 }])
    );
    let minutes = summary["perMinute"].as_array().unwrap();
    let total = |field: &str| -> u64 { minutes.iter().map(|m| m[field].as_u64().unwrap()).sum() };
    assert_eq!(
        (
            total("enqueued"),
            total("completed"),
            total("failed"),
            total("cancelled")
        ),
        (3, 1, 0, 1)
    );
    // One job was leased: one pickup, its wait no longer than the test.
    assert_eq!(total("pickedUp"), 1);
    assert!(total("pickupMs") < 60_000, "{summary}");
    assert!(summary["at"].as_u64().unwrap() >= minutes[0]["minute"].as_u64().unwrap());
    t.stop().await;
}

#[tokio::test]
async fn a_list_looks_at_a_bounded_number_of_jobs_and_says_where_to_go_on() {
    let t = TestNode::start_with(|config| config.max_body_bytes = 4 * 1024 * 1024).await;
    let examined = skyclaw_coordinator::jobs::MAX_EXAMINED;
    let batch = json!({ "jobs": vec![shell_job("filler"); 4_000] });
    let mut enqueued = 0;
    while enqueued <= examined {
        let (status, body) = t.post("/v1/jobs/batch", batch.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        enqueued += 4_000;
    }
    let needle = t.enqueue_echo("needle").await;
    let (status, first) = t.get("/v1/jobs?command=needle").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["jobs"], json!([]), "nothing matched among the first");
    let next = first["next"]
        .as_str()
        .expect("a next cursor after the bound");
    let (_, second) = t
        .get(&format!("/v1/jobs?command=needle&after={next}"))
        .await;
    assert_eq!(second["jobs"][0]["id"], needle.as_str());
    t.stop().await;
}

#[tokio::test]
async fn a_summary_lists_a_bounded_number_of_capabilities() {
    let t = TestNode::start_with(|config| config.max_body_bytes = 1024 * 1024).await;
    let jobs: Vec<Value> = (0..150)
        .map(|i| {
            json!({
                "payload": { "kind": "shell", "command": "true" },
                "requirement": { "requiredCapabilities": [format!("cap-{i:03}")] },
                "priority": i,
            })
        })
        .collect();
    let (status, body) = t.post("/v1/jobs/batch", json!({ "jobs": jobs })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, summary) = t.get("/v1/summary").await;
    assert_eq!(summary["jobs"]["queued"], 150);
    let by_capability = summary["queuedByCapability"].as_array().unwrap();
    let by_priority = summary["queuedByPriority"].as_array().unwrap();
    assert_eq!(by_capability.len(), 100);
    assert_eq!(by_capability[0]["capability"], "cap-000");
    assert_eq!(by_priority.len(), 100);
    assert_eq!(by_priority[0], json!({ "priority": 149, "depth": 1 }));
    t.stop().await;
}
