//! Who may call what: every route of `routes::ALL` called by every kind of
//! caller (none, a wrong credential, host A, host B, enqueuers of accounts
//! X and Y, an auditor, an admin, a peer coordinator), with the status each
//! must get. 401 means no valid credential, 403 a valid one without the
//! right; "passes" means the rule let the request through to its handler
//! (which may still refuse it for what it says: 400, 404, 409). Also: how
//! keyed hosts register, what a revoked host may no longer do, and what
//! compatibility and open mode allow.

use serde_json::{json, Value};
use skyclaw_api::routes::{self, Route, PEER_HEADER, TOKEN_HEADER};
use skyclaw_api::{Challenge, RegisterHostRequest};
use skyclaw_testkit::HostKey;
use warp::http::StatusCode;

use super::util::{assert_error_shape, TestNode, TOKEN};

const PEER_SECRET: &str = "peer-secret-of-this-test";

/// What a caller must get from a route.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Through the route's rule: anything but 401 and 403.
    Passes,
    Unauthorized,
    Forbidden,
    NotFound,
}

use Expect::*;

/// The callers, in the order of each row below.
const CALLERS: [&str; 9] = [
    "none",
    "wrong",
    "host A",
    "host B",
    "enqueuer X",
    "enqueuer Y",
    "auditor",
    "admin",
    "peer",
];

const ADMIN_ONLY: [Expect; 9] = [
    Unauthorized,
    Unauthorized,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Passes,
    Forbidden,
];
const PEER_ONLY: [Expect; 9] = [
    Unauthorized,
    Unauthorized,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Passes,
];
const PUBLIC: [Expect; 9] = [Passes; 9];
const LOG: [Expect; 9] = [
    Unauthorized,
    Unauthorized,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Passes,
    Passes,
    Passes,
];
const ENQUEUERS: [Expect; 9] = [
    Unauthorized,
    Unauthorized,
    Forbidden,
    Forbidden,
    Passes,
    Passes,
    Forbidden,
    Passes,
    Forbidden,
];
/// A job's readers: its account's enqueuer and the host that holds it;
/// another account's job is not there for them (404).
const JOB_READERS: [Expect; 9] = [
    Unauthorized,
    Unauthorized,
    Passes,
    Forbidden,
    Passes,
    NotFound,
    Forbidden,
    Passes,
    Forbidden,
];
/// A host with a key speaks for itself alone: an admin may not act as it.
const HOST_A: [Expect; 9] = [
    Unauthorized,
    Unauthorized,
    Passes,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
];

/// The expected row for each route, and the request sent to it.
fn rule(route: Route, w: &World) -> ([Expect; 9], String, Option<Value>) {
    let none = None;
    let empty = Some(json!({}));
    match route {
        routes::HEALTH | routes::OPENAPI | routes::UI | routes::UI_SCRIPT | routes::UI_STYLE => {
            (PUBLIC, route.path.into(), none)
        }
        routes::CHALLENGE => (PUBLIC, route.path.into(), empty),
        routes::METRICS
        | routes::STATUS
        | routes::STATE
        | routes::SUMMARY
        | routes::HOSTS
        | routes::CLUSTER
        | routes::KEYS => (ADMIN_ONLY, route.path.into(), none),
        routes::ISSUE_KEY => (
            ADMIN_ONLY,
            route.path.into(),
            Some(json!({"role": "auditor"})),
        ),
        routes::REVOKE_KEY => (ADMIN_ONLY, route.path_for("key-none"), empty),
        routes::APPROVE_HOST => (ADMIN_ONLY, route.path_for(&w.host_a.id), empty),
        routes::REVOKE_HOST => (ADMIN_ONLY, route.path_for("no-such-host"), empty),
        // Bodies that do not parse: nothing changes, whoever gets through.
        routes::ADD_MEMBER | routes::REMOVE_MEMBER => (ADMIN_ONLY, route.path.into(), empty),
        routes::STATE_DIGEST
        | routes::LOG_HEAD
        | routes::EVENTS
        | routes::LOG_KEYS
        | routes::CHECKPOINT => (LOG, route.path.into(), none),
        routes::INCLUSION => (LOG, format!("{}?seq=1&size=1", route.path), none),
        routes::CONSISTENCY => (LOG, format!("{}?from=1&to=1", route.path), none),
        routes::TILE => (LOG, "/v1/log/tile/0/000.p/1".into(), none),
        routes::COSIGN => (PEER_ONLY, route.path.into(), empty),
        routes::ENQUEUE => (ENQUEUERS, route.path.into(), Some(gpu_job())),
        routes::ENQUEUE_BATCH => (
            ENQUEUERS,
            route.path.into(),
            Some(json!({"jobs": [gpu_job()]})),
        ),
        routes::JOBS => (ENQUEUERS, route.path.into(), none),
        routes::JOB => (JOB_READERS, route.path_for(&w.job_x), none),
        // As a job's: the job's account and the host that holds (or ran)
        // it; the job has no receipt yet, so those get 404 from the handler.
        routes::RECEIPT => (JOB_READERS, route.path_for(&w.job_x), none),
        routes::CANCEL => (
            [
                Unauthorized,
                Unauthorized,
                Forbidden,
                Forbidden,
                Passes,
                NotFound,
                Forbidden,
                Passes,
                Forbidden,
            ],
            route.path_for(&w.job_x),
            empty,
        ),
        // A stale epoch: through the rule, the state refuses it (409).
        routes::COMPLETE => (
            HOST_A,
            route.path_for(&w.job_x),
            Some(json!({
                "hostId": w.host_a.id, "leaseEpoch": 99, "success": true, "durationMs": 1,
                "stdout": "", "stderr": "",
            })),
        ),
        // Without a key, registration takes an admin; a wrong credential
        // is refused as such.
        routes::REGISTER => (
            [
                Forbidden,
                Unauthorized,
                Forbidden,
                Forbidden,
                Forbidden,
                Forbidden,
                Forbidden,
                Passes,
                Forbidden,
            ],
            route.path.into(),
            Some(json!({"hostId": "legacy-1", "name": "legacy"})),
        ),
        routes::HEARTBEAT => (HOST_A, route.path_for(&w.host_a.id), empty),
        routes::CLAIM => (HOST_A, route.path_for(&w.host_a.id), empty),
        routes::HELLO | routes::JOIN | routes::APPEND | routes::VOTE | routes::SNAPSHOT => {
            (PEER_ONLY, route.path.into(), empty)
        }
        other => panic!("{other:?} has no row in the access matrix: add one"),
    }
}

/// A job no host here can run, so claims find nothing.
fn gpu_job() -> Value {
    json!({
        "payload": {"kind": "shell", "command": "echo", "args": ["x"]},
        "requirement": {"requiredCapabilities": ["gpu"]},
    })
}

/// A keyed host, registered.
pub(super) struct Host {
    pub(super) id: String,
    pub(super) session: String,
}

/// Everything the matrix calls with: credentials and a job of account X
/// leased to host A.
pub(super) struct World {
    pub(super) host_a: Host,
    pub(super) host_b: Host,
    pub(super) enqueuer_x: String,
    pub(super) enqueuer_y: String,
    pub(super) auditor: String,
    pub(super) job_x: String,
    /// Job X as host A claimed it.
    pub(super) job: skyclaw_api::Job,
    pub(super) cluster_id: String,
}

async fn issue(node: &TestNode, body: Value) -> String {
    let (status, answer) = node.post(routes::ISSUE_KEY.path, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["secret"].as_str().unwrap().to_string()
}

/// Registers the host of `seed` by signing a challenge, with `credential`
/// (or none) and `enroll_key`; answers status and body.
async fn register_keyed(
    node: &TestNode,
    seed: u8,
    credential: Option<&str>,
    enroll_key: Option<&str>,
) -> (StatusCode, Value) {
    let request = RegisterHostRequest {
        name: format!("host {seed}"),
        capabilities: Some(vec!["shell".into()]),
        max_parallel: Some(2),
        enroll_key: enroll_key.map(str::to_string),
        ..RegisterHostRequest::default()
    };
    let request = HostKey::from_seed(seed).sign(&challenge(node).await, request);
    let headers: Vec<(&str, &str)> = credential.map(|c| (TOKEN_HEADER, c)).into_iter().collect();
    raw(
        node,
        "POST",
        routes::REGISTER.path,
        &headers,
        Some(serde_json::to_value(&request).unwrap()),
    )
    .await
}

async fn keyed_host(node: &TestNode, seed: u8) -> Host {
    let (status, body) = register_keyed(node, seed, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["host"]["access"], "pending");
    let id = body["host"]["id"].as_str().unwrap().to_string();
    let (status, approved) = node
        .post(&routes::APPROVE_HOST.path_for(&id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["host"]["access"], "active");
    Host {
        id,
        session: body["session"].as_str().unwrap().to_string(),
    }
}

pub(super) async fn world(node: &TestNode) -> World {
    let host_a = keyed_host(node, 1).await;
    let host_b = keyed_host(node, 2).await;
    let enqueuer_x = issue(node, json!({"role": "enqueuer", "account": "acct-x"})).await;
    let enqueuer_y = issue(node, json!({"role": "enqueuer", "account": "acct-y"})).await;
    let auditor = issue(node, json!({"role": "auditor"})).await;
    let headers = [(TOKEN_HEADER, enqueuer_x.as_str())];
    let (status, job) = raw(
        node,
        "POST",
        routes::ENQUEUE.path,
        &headers,
        Some(super::util::shell_job("x")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let job_x = job["job"]["id"].as_str().unwrap().to_string();
    let headers = [(TOKEN_HEADER, host_a.session.as_str())];
    let (status, claimed) = raw(
        node,
        "POST",
        &routes::CLAIM.path_for(&host_a.id),
        &headers,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["job"]["id"], job_x.as_str());
    let job = serde_json::from_value(claimed["job"].clone()).unwrap();
    let cluster_id = challenge(node).await.cluster_id;
    World {
        job,
        cluster_id,
        host_a,
        host_b,
        enqueuer_x,
        enqueuer_y,
        auditor,
        job_x,
    }
}

/// Sends a request with these headers; the body is JSON when it parses.
pub(super) async fn raw(
    node: &TestNode,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = warp::test::request().method(method).path(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.reply(&node.routes).await;
    let status = response.status();
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        assert_error_shape(&body);
    }
    (status, body)
}

pub(super) async fn full_mode() -> TestNode {
    TestNode::start_with(|config| config.peer_secret = Some(PEER_SECRET.into())).await
}

#[tokio::test]
async fn every_route_answers_every_caller_as_its_rule_says() {
    let node = full_mode().await;
    let w = world(&node).await;
    let credentials: [Vec<(&str, &str)>; 9] = [
        vec![],
        vec![(TOKEN_HEADER, "not-a-credential")],
        vec![(TOKEN_HEADER, w.host_a.session.as_str())],
        vec![(TOKEN_HEADER, w.host_b.session.as_str())],
        vec![(TOKEN_HEADER, w.enqueuer_x.as_str())],
        vec![(TOKEN_HEADER, w.enqueuer_y.as_str())],
        vec![("authorization", "")],
        vec![(TOKEN_HEADER, TOKEN)],
        vec![(PEER_HEADER, PEER_SECRET)],
    ];
    let auditor = format!("Bearer {}", w.auditor);
    let mut failures = Vec::new();
    for route in routes::ALL {
        let (row, path, body) = rule(route, &w);
        for (i, expected) in row.iter().enumerate() {
            let mut headers = credentials[i].clone();
            if CALLERS[i] == "auditor" {
                headers = vec![("authorization", auditor.as_str())];
            }
            let (status, answer) =
                raw(&node, route.method.as_str(), &path, &headers, body.clone()).await;
            let fits = match expected {
                Passes => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                Unauthorized => status == StatusCode::UNAUTHORIZED,
                Forbidden => status == StatusCode::FORBIDDEN,
                NotFound => status == StatusCode::NOT_FOUND,
            };
            if !fits {
                failures.push(format!(
                    "{} {} as {}: expected {expected:?}, got {status} {answer}",
                    route.method.as_str(),
                    route.path,
                    CALLERS[i]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    node.stop().await;
}

#[tokio::test]
async fn an_enqueuer_lists_and_reads_only_its_own_accounts_jobs() {
    let node = full_mode().await;
    let x = issue(&node, json!({"role": "enqueuer", "account": "acct-x"})).await;
    let y = issue(
        &node,
        json!({"role": "enqueuer", "account": "acct-y", "scopes": ["enqueue"]}),
    )
    .await;
    for (key, word) in [(&x, "x1"), (&x, "x2"), (&y, "y1")] {
        let headers = [(TOKEN_HEADER, key.as_str())];
        let (status, _) = raw(
            &node,
            "POST",
            routes::ENQUEUE.path,
            &headers,
            Some(super::util::shell_job(word)),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, page) = raw(
        &node,
        "GET",
        routes::JOBS.path,
        &[(TOKEN_HEADER, x.as_str())],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let words: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["payload"]["args"][0].as_str().unwrap())
        .collect();
    assert_eq!(words, ["x1", "x2"]);
    // Y's key has no `read` scope.
    let (status, _) = raw(
        &node,
        "GET",
        routes::JOBS.path,
        &[(TOKEN_HEADER, y.as_str())],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The same idempotency key in two accounts is two keys: Y gets a job
    // of its own and learns nothing of X's.
    let keyed = |key: &str| {
        warp::test::request()
            .method("POST")
            .path(routes::ENQUEUE.path)
            .header(TOKEN_HEADER, key)
            .header("x-idempotency-key", "same")
            .json(&super::util::shell_job("k"))
    };
    let first = keyed(&x).reply(&node.routes).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = keyed(&y).reply(&node.routes).await;
    assert_eq!(second.status(), StatusCode::OK);
    let first_id = serde_json::from_slice::<Value>(first.body()).unwrap()["job"]["id"].clone();
    assert!(!String::from_utf8_lossy(second.body()).contains(first_id.as_str().unwrap()));
    node.stop().await;
}

#[tokio::test]
async fn a_host_cannot_act_as_another_or_complete_its_jobs() {
    let node = full_mode().await;
    let w = world(&node).await;
    let before = node.head_seq().await;
    let as_b = [(TOKEN_HEADER, w.host_b.session.as_str())];
    let forged = json!({
        "hostId": w.host_a.id, "leaseEpoch": 1, "success": true, "durationMs": 1,
        "stdout": "forged", "stderr": "",
    });
    let (status, body) = raw(
        &node,
        "POST",
        &routes::COMPLETE.path_for(&w.job_x),
        &as_b,
        Some(forged),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let own_name = json!({
        "hostId": w.host_b.id, "leaseEpoch": 1, "success": true, "durationMs": 1,
        "stdout": "forged", "stderr": "",
    });
    let (status, body) = raw(
        &node,
        "POST",
        &routes::COMPLETE.path_for(&w.job_x),
        &as_b,
        Some(own_name),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = raw(
        &node,
        "POST",
        &routes::HEARTBEAT.path_for(&w.host_a.id),
        &as_b,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        node.head_seq().await,
        before,
        "a refused request wrote to the log"
    );
    // Host A completes its own job; then it can no longer read the payload.
    let as_a = [(TOKEN_HEADER, w.host_a.session.as_str())];
    let done = HostKey::from_seed(1).complete(&w.cluster_id, &w.job, 1, "ok");
    let done = serde_json::to_value(done).unwrap();
    let (status, body) = raw(
        &node,
        "POST",
        &routes::COMPLETE.path_for(&w.job_x),
        &as_a,
        Some(done),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = raw(&node, "GET", &routes::JOB.path_for(&w.job_x), &as_a, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    node.stop().await;
}

#[tokio::test]
async fn a_signed_registration_is_checked_and_good_once() {
    let node = full_mode().await;
    // A bad signature: the body no longer says what was signed.
    let key = HostKey::from_seed(5);
    let host_id = key.id.clone();
    let request = key.sign(
        &challenge(&node).await,
        RegisterHostRequest {
            name: "honest".into(),
            ..RegisterHostRequest::default()
        },
    );
    let mut altered = request.clone();
    altered.name = "altered".into();
    let send = |request: &RegisterHostRequest| {
        raw(
            &node,
            "POST",
            routes::REGISTER.path,
            &[],
            Some(serde_json::to_value(request).unwrap()),
        )
    };
    let before = node.head_seq().await;
    assert_eq!(send(&altered).await.0, StatusCode::UNAUTHORIZED);
    // Another id than the key's.
    let mut other_id = request.clone();
    other_id.host_id = Some("chosen-by-me".into());
    assert_eq!(send(&other_id).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(node.head_seq().await, before);
    // The real one registers; sent again, it is refused.
    let (status, body) = send(&request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["host"]["id"], host_id.as_str());
    let (status, body) = send(&request).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A pending host may not claim.
    let session = body_session(&node, 6).await;
    let (status, body) = raw(
        &node,
        "POST",
        &routes::CLAIM.path_for(&session.0),
        &[(TOKEN_HEADER, session.1.as_str())],
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    node.stop().await;
}

async fn challenge(node: &TestNode) -> Challenge {
    let (status, challenge) = raw(node, "POST", routes::CHALLENGE.path, &[], Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    serde_json::from_value(challenge).unwrap()
}

/// A newly registered (pending) host's id and session.
async fn body_session(node: &TestNode, seed: u8) -> (String, String) {
    let (status, body) = register_keyed(node, seed, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["host"]["id"].as_str().unwrap().to_string(),
        body["session"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn an_enrollment_key_approves_and_a_revoked_host_is_shut_out() {
    let node = full_mode().await;
    let enroll = issue(&node, json!({"role": "enroll", "uses": 1})).await;
    let (status, enrolled) = register_keyed(&node, 7, None, Some(&enroll)).await;
    assert_eq!(status, StatusCode::OK, "{enrolled}");
    assert_eq!(enrolled["host"]["access"], "active");
    let (status, body) = register_keyed(&node, 8, None, Some(&enroll)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Host 7 takes a job, then is revoked: the job goes back to the queue
    // and the host's session opens nothing.
    let id = enrolled["host"]["id"].as_str().unwrap().to_string();
    let session = enrolled["session"].as_str().unwrap().to_string();
    let job = node.enqueue_echo("w").await;
    let as_host = [(TOKEN_HEADER, session.as_str())];
    let (status, claimed) = raw(
        &node,
        "POST",
        &routes::CLAIM.path_for(&id),
        &as_host,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claimed["job"]["id"], job.as_str());
    let (status, body) = node
        .post(&routes::REVOKE_HOST.path_for(&id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["host"]["access"], "revoked");
    assert_eq!(node.job(&job).await["status"], "queued");
    for (method, path) in [
        ("POST", routes::CLAIM.path_for(&id)),
        ("POST", routes::HEARTBEAT.path_for(&id)),
    ] {
        let (status, _) = raw(&node, method, &path, &as_host, Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let (status, _) = register_keyed(&node, 7, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    node.stop().await;
}

#[tokio::test]
async fn a_revoked_or_expired_key_opens_nothing() {
    let node = full_mode().await;
    let (status, issued) = node
        .post(
            routes::ISSUE_KEY.path,
            json!({"role": "enqueuer", "account": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let secret = issued["secret"].as_str().unwrap();
    let id = issued["key"]["id"].as_str().unwrap();
    let headers = [(TOKEN_HEADER, secret)];
    assert_eq!(
        raw(&node, "GET", routes::JOBS.path, &headers, None).await.0,
        StatusCode::OK
    );
    let (status, _) = node.post(&routes::REVOKE_KEY.path_for(id), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        raw(&node, "GET", routes::JOBS.path, &headers, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Keys are listed without their secrets.
    let (_, keys) = node.get(routes::KEYS.path).await;
    assert!(!keys.to_string().contains(secret));
    node.stop().await;
}

#[tokio::test]
async fn in_compatibility_mode_the_token_is_admin_and_peer() {
    let node = TestNode::start().await;
    let token = [(TOKEN_HEADER, TOKEN)];
    let (status, _) = raw(&node, "POST", routes::VOTE.path, &token, Some(json!({}))).await;
    assert_ne!(status, StatusCode::FORBIDDEN);
    assert_ne!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = raw(&node, "POST", routes::VOTE.path, &[], Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The MVP's host: no key, the token, its own id.
    node.register("openclaw:box-1", &["shell"], 1).await;
    let job = node.enqueue_echo("mvp").await;
    assert_eq!(node.claim("openclaw:box-1").await["id"], job.as_str());
    node.stop().await;
}

#[tokio::test]
async fn a_public_log_is_read_without_a_credential_and_nothing_else_is() {
    let node = TestNode::start_with(|config| {
        config.peer_secret = Some(PEER_SECRET.into());
        config.public_log = true;
    })
    .await;
    for route in [routes::LOG_HEAD, routes::EVENTS, routes::STATE_DIGEST] {
        let (status, _) = raw(&node, "GET", route.path, &[], None).await;
        assert_eq!(status, StatusCode::OK, "{route:?}");
    }
    let (status, _) = raw(&node, "GET", routes::JOBS.path, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    node.stop().await;
}

#[tokio::test]
async fn in_open_mode_no_credential_is_needed() {
    let node = TestNode::start_with(|config| config.token = None).await;
    let (status, _) = raw(&node, "GET", routes::HOSTS.path, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    node.stop().await;
}

#[tokio::test]
async fn a_key_request_that_does_not_hold_is_refused_and_writes_nothing() {
    let node = full_mode().await;
    let before = node.head_seq().await;
    let refused = [
        json!({"role": "root"}),
        json!({"role": "enqueuer"}),
        json!({"role": "auditor", "account": "a"}),
        json!({"role": "enqueuer", "account": "a", "scopes": ["log"]}),
        json!({"role": "enqueuer", "account": "a", "scopes": ["everything"]}),
        json!({"role": "enqueuer", "account": "a", "uses": 3}),
        json!({"role": "enroll", "uses": 0}),
        json!({"role": "enroll", "ttlMs": 0}),
        json!({"role": "enqueuer", "account": "not an id"}),
    ];
    for body in refused {
        let (status, answer) = node.post(routes::ISSUE_KEY.path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    assert_eq!(node.head_seq().await, before, "a refused key request wrote");
    node.stop().await;
}
