//! What every route shares: health without a token, 401 without the right
//! one, 404 for unknown routes and ids, 400 naming the bad field, 413 past
//! the body limit. Error bodies are `{"error": "..."}` (checked in
//! `util::decode`).

use serde_json::json;
use skyclaw_api::routes::TOKEN_HEADER;
use warp::http::StatusCode;

use crate::util::{decode, error_message, shell_job, TestNode, MAX_BODY_BYTES, TOKEN};

#[tokio::test]
async fn health_answers_without_a_token() {
    let t = TestNode::start().await;
    let response = warp::test::request().path("/health").reply(&t.routes).await;
    let (status, body) = decode(response);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "ok": true, "nodeId": "test-node" }));
    t.stop().await;
}

#[tokio::test]
async fn requests_without_the_right_token_get_401_and_change_nothing() {
    let t = TestNode::start().await;
    let head = t.head_seq().await;
    let routes = [
        ("GET", "/v1/jobs"),
        ("GET", "/v1/state"),
        ("GET", "/v1/log/head"),
        ("POST", "/v1/jobs"),
        ("POST", "/v1/replicate/vote"),
    ];
    for (method, path) in routes {
        for token in [None, Some("wrong-token"), Some("")] {
            let mut request = warp::test::request().method(method).path(path);
            if let Some(token) = token {
                request = request.header(TOKEN_HEADER, token);
            }
            if method == "POST" {
                request = request.json(&shell_job("hi"));
            }
            let (status, body) = decode(request.reply(&t.routes).await);
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(error_message(&body).contains(TOKEN_HEADER), "{body}");
        }
    }
    assert_eq!(t.head_seq().await, head);
    t.stop().await;
}

#[tokio::test]
async fn unknown_routes_jobs_and_hosts_get_404() {
    let t = TestNode::start().await;
    let cases = [
        ("GET", "/v1/no-such-route", None),
        ("GET", "/v2/jobs", None),
        ("POST", "/v1/jobs/a/b/c", Some(json!({}))),
        ("GET", "/v1/jobs/no-such-job", None),
        ("POST", "/v1/jobs/no-such-job/cancel", None),
        (
            "POST",
            "/v1/jobs/no-such-job/complete",
            Some(crate::util::success("h", Some(1))),
        ),
        ("POST", "/v1/hosts/no-such-host/claim", None),
        ("POST", "/v1/hosts/no-such-host/heartbeat", Some(json!({}))),
    ];
    for (method, path, body) in cases {
        let (status, answer) = t.call(method, path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let (_, answer) = t.get("/v1/jobs/no-such-job").await;
    assert!(error_message(&answer).contains("no-such-job"), "{answer}");
    let (_, answer) = t.post("/v1/hosts/ghost/claim", json!({})).await;
    assert!(error_message(&answer).contains("ghost"), "{answer}");
    t.stop().await;
}

#[tokio::test]
async fn bad_input_gets_400_naming_the_field() {
    let t = TestNode::start().await;
    t.register("h", &["shell"], 1).await;
    let job = t.enqueue_echo("x").await;
    let shell = |extra: serde_json::Value| {
        let mut body = shell_job("x");
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let cases = [
        ("/v1/hosts/register", json!({ "hostId": "h2" }), "name"),
        (
            "/v1/hosts/register",
            json!({ "name": "n", "maxParallel": 0 }),
            "maxParallel",
        ),
        (
            "/v1/hosts/register",
            json!({ "name": "n", "maxParallel": "lots" }),
            "maxParallel",
        ),
        (
            "/v1/hosts/register",
            json!({ "name": "n", "capabilities": [""] }),
            "capabilities",
        ),
        ("/v1/jobs", json!({ "requirement": {} }), "payload"),
        (
            "/v1/jobs",
            json!({ "payload": { "kind": "shell" } }),
            "command",
        ),
        (
            "/v1/jobs",
            json!({ "payload": { "kind": "shell", "command": " " } }),
            "payload.command",
        ),
        (
            "/v1/jobs",
            json!({ "payload": { "kind": "python", "command": "x" } }),
            "kind",
        ),
        (
            "/v1/jobs",
            shell(json!({ "maxAttempts": 0 })),
            "maxAttempts",
        ),
        ("/v1/jobs", shell(json!({ "priority": "high" })), "priority"),
        (
            "/v1/jobs",
            shell(json!({ "requirement": { "requiredCapabilities": [""] } })),
            "requiredCapabilities",
        ),
        ("/v1/jobs/batch", json!({ "jobs": [] }), "jobs"),
        ("/v1/hosts/h/claim", json!({ "maxJobs": 0 }), "maxJobs"),
        ("/v1/hosts/h/claim", json!({ "waitMs": -1 }), "waitMs"),
        (
            "/v1/hosts/h/heartbeat",
            json!({ "running": [{ "jobId": "j" }] }),
            "leaseEpoch",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = t.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert!(
            error_message(&answer).contains(field),
            "{path} {body}: {answer} does not name {field}"
        );
    }
    let (status, answer) = t
        .complete(&job, json!({ "hostId": "h", "success": true }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(error_message(&answer).contains("durationMs"), "{answer}");

    let queries = [
        ("/v1/jobs?status=bogus", "status"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=many", "limit"),
        ("/v1/jobs?after=no-such-job", "after"),
        ("/v1/events?format=xml", "format"),
        ("/v1/events?limit=0", "limit"),
    ];
    for (path, field) in queries {
        let (status, answer) = t.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(error_message(&answer).contains(field), "{path}: {answer}");
    }

    let request = warp::test::request()
        .method("POST")
        .path("/v1/jobs")
        .header(TOKEN_HEADER, TOKEN)
        .body("{not json");
    let (status, _) = decode(request.reply(&t.routes).await);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_change_nothing() {
    let t = TestNode::start().await;
    let head = t.head_seq().await;
    let big = json!({
        "payload": {
            "kind": "shell",
            "command": "echo",
            "args": ["x".repeat(MAX_BODY_BYTES as usize)],
        }
    });
    for path in ["/v1/jobs", "/v1/jobs/batch", "/v1/hosts/register"] {
        let (status, answer) = t.post(path, big.clone()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {answer}");
    }
    // A body longer than its declared length is cut off while it streams.
    let request = warp::test::request()
        .method("POST")
        .path("/v1/jobs")
        .header(TOKEN_HEADER, TOKEN)
        .body(serde_json::to_vec(&big).unwrap())
        .header("content-length", "100");
    let (status, _) = decode(request.reply(&t.routes).await);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(t.head_seq().await, head);

    // Just under the limit is fine.
    let fits = json!({
        "payload": {
            "kind": "shell",
            "command": "echo",
            "args": ["x".repeat(MAX_BODY_BYTES as usize - 200)],
        }
    });
    let (status, answer) = t.post("/v1/jobs", fits).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    t.stop().await;
}

/// A node whose peers never answer has no leader: writes are refused with
/// 503 and a `Retry-After`, and the process keeps serving.
#[tokio::test]
async fn writes_without_a_leader_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::util::config(&dir);
    // Nothing listens on the discard port; the cluster can never form.
    config.peer_urls = vec!["http://127.0.0.1:9".into()];
    let node = skyclaw_coordinator::Coordinator::start(config, "http://127.0.0.1:1".into())
        .await
        .unwrap();
    let routes = skyclaw_coordinator::http::routes(node.clone());
    for (method, path) in [("POST", "/v1/jobs"), ("POST", "/v1/hosts/register")] {
        let response = warp::test::request()
            .method(method)
            .path(path)
            .header(TOKEN_HEADER, TOKEN)
            .json(&json!({ "name": "n", "payload": { "kind": "shell", "command": "x" } }))
            .reply(&routes)
            .await;
        assert_eq!(response.headers()["retry-after"], "1");
        let (status, body) = decode(response);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert!(error_message(&body).contains("leader"), "{body}");
    }
    let response = warp::test::request().path("/health").reply(&routes).await;
    assert_eq!(response.status(), StatusCode::OK);
    drop(routes);
    crate::util::stop_node(node).await;
}

#[tokio::test]
async fn a_token_that_is_not_text_is_a_wrong_token() {
    let t = TestNode::start().await;
    let response = warp::test::request()
        .path("/v1/status")
        .header(TOKEN_HEADER, &b"\xfftest-token"[..])
        .reply(&t.routes)
        .await;
    let (status, body) = decode(response);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_message(&body).contains(TOKEN_HEADER), "{body}");
    t.stop().await;
}
