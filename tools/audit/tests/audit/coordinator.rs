//! A real coordinator, started in-process on a port of its own, runs a host
//! through jobs, a cancellation and an expired lease. Its log verifies over
//! HTTP, its replayed digest equals the coordinator's, export and follow
//! work, and, once it is stopped, its data directory verifies too. Then
//! the log on disk is rewritten and re-hashed behind its back: the data
//! directory's views and the restarted coordinator's signed checkpoint
//! both give the forgery away. The log is held to its signed checkpoint,
//! and to the one an auditor verified before (a fork, a rewrite).

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyclaw_audit::{
    export_segment, follow, verify, FindingKind, FollowEvent, Source, VerifyOptions,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::util::{self, Run};

const TOKEN: &str = "audit-test-token";

struct Coordinator {
    url: String,
    http: reqwest::Client,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<skyclaw_coordinator::Result<()>>,
}

impl Coordinator {
    async fn start(db_path: &Path) -> Coordinator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = skyclaw_coordinator::Config {
            db_path: db_path.to_path_buf(),
            token: Some(TOKEN.into()),
            lease_ms: 1_000,
            checkpoint_ms: 50,
            ..skyclaw_coordinator::Config::default()
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(skyclaw_coordinator::run(config, listener, async {
            let _ = stop.await;
        }));
        let coordinator = Coordinator {
            url,
            http: reqwest::Client::new(),
            shutdown,
            task,
        };
        coordinator
            .wait_for("the cluster to be created", |c| async move {
                c.try_call("GET", "/v1/log/head", Value::Null)
                    .await
                    .is_some_and(|head| head["seq"].as_u64() >= Some(1))
            })
            .await;
        coordinator
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }

    async fn try_call(&self, method: &str, path: &str, body: Value) -> Option<Value> {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body),
        };
        let response = request.header("x-skyclaw-token", TOKEN).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|| panic!("{method} {path} failed"))
    }

    async fn wait_for<'a, F, Fut>(&'a self, what: &str, check: F)
    where
        F: Fn(&'a Coordinator) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check(self).await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn enqueue(&self, command: &str) -> String {
        let job = self
            .call(
                "POST",
                "/v1/jobs",
                json!({"payload": {"kind": "shell", "command": command, "args": ["hi"]}}),
            )
            .await;
        job["job"]["id"].as_str().unwrap().to_owned()
    }

    async fn claim(&self) -> Value {
        self.call("POST", "/v1/hosts/h1/claim", json!({})).await["job"].clone()
    }

    async fn complete(&self, job_id: &str, success: bool, stdout: &str) {
        let body = json!({
            "hostId": "h1", "success": success, "durationMs": 5,
            "exitCode": if success { 0 } else { 1 }, "stdout": stdout, "stderr": "",
        });
        self.call("POST", &format!("/v1/jobs/{job_id}/complete"), body)
            .await;
    }

    async fn head_seq(&self) -> u64 {
        self.call("GET", "/v1/log/head", Value::Null).await["seq"]
            .as_u64()
            .unwrap()
    }
}

fn options() -> VerifyOptions {
    VerifyOptions {
        token: Some(TOKEN.into()),
        ..VerifyOptions::default()
    }
}

async fn audit(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        util::audit(&args)
    })
    .await
    .unwrap()
}

/// Host h1; job A completed; job B claimed and left to expire, claimed
/// again, cancelled while running and reported failed; job C cancelled
/// while queued. Returns A's id.
async fn run_workload(coordinator: &Coordinator) -> String {
    coordinator
        .call(
            "POST",
            "/v1/hosts/register",
            json!({"hostId": "h1", "name": "one", "capabilities": ["shell"], "maxParallel": 2}),
        )
        .await;
    let a = coordinator.enqueue("echo").await;
    let b = coordinator.enqueue("sleep").await;
    assert_eq!(coordinator.claim().await["id"], a.as_str());
    coordinator.complete(&a, true, "hi\n").await;

    assert_eq!(coordinator.claim().await["id"], b.as_str());
    let job_path = format!("/v1/jobs/{b}");
    coordinator
        .wait_for("job B's lease to expire", |c| {
            let job_path = job_path.clone();
            async move {
                let job = c.call("GET", &job_path, Value::Null).await;
                job["job"]["status"] == "queued"
            }
        })
        .await;

    let c = coordinator.enqueue("ls").await;
    coordinator
        .call("POST", &format!("/v1/jobs/{c}/cancel"), json!({}))
        .await;
    assert_eq!(coordinator.claim().await["id"], b.as_str());
    coordinator
        .call("POST", &format!("/v1/jobs/{b}/cancel"), json!({}))
        .await;
    coordinator.complete(&b, false, "stopped\n").await;
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_coordinators_log_verifies_and_forgeries_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let coordinator = Coordinator::start(&db_path).await;
    let job_a = run_workload(&coordinator).await;
    let url = coordinator.url.clone();
    let head = coordinator.head_seq().await;

    // Over HTTP: every event verifies and replays to the coordinator's digest.
    let mut blobs = options();
    blobs.blobs = true;
    blobs.page_size = 3;
    let report = verify(Source::Coordinator(vec![url.clone()]), blobs)
        .await
        .unwrap();
    assert_eq!(report.finding, None, "{report}");
    assert_eq!(report.last_seq, Some(head));
    let comparison = report.comparison.clone().unwrap();
    assert!(comparison.agrees);
    assert_eq!(comparison.seq, head);
    assert_eq!(Some(comparison.digest), report.digest);
    let live_digest = report.digest.unwrap();

    let run = audit(vec![
        "verify".into(),
        url.clone(),
        "--token".into(),
        TOKEN.into(),
        "--json".into(),
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["comparison"]["agrees"], true);
    let run = audit(vec!["verify".into(), url.clone()]).await;
    assert_eq!(run.code, 2, "no token: {}", run.stderr);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);

    // Export: the whole log, and a range that continues an anchor.
    let whole = dir.path().join("whole.seg");
    let exported = export_segment(std::slice::from_ref(&url), Some(TOKEN), None, None, &whole)
        .await
        .unwrap();
    assert_eq!((exported.records, exported.last_seq), (head, head));
    let report = verify(Source::SegmentFile(whole), options()).await.unwrap();
    assert_eq!(report.finding, None);
    assert_eq!(report.digest, Some(live_digest));
    let range = dir.path().join("range.seg");
    let run = audit(vec![
        "export".into(),
        "--url".into(),
        url.clone(),
        "--token".into(),
        TOKEN.into(),
        "--from".into(),
        "3".into(),
        "--to".into(),
        "5".into(),
        "-o".into(),
        range.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = audit(vec![
        "verify".into(),
        "--json".into(),
        range.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        (
            run.json()["firstSeq"].as_u64(),
            run.json()["lastSeq"].as_u64()
        ),
        (Some(3), Some(5))
    );

    // Follow: a new job shows up as a verified batch.
    let (batches, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let follower = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut options = options();
            options.compare = false;
            follow(&[url], &options, Duration::from_millis(50), move |event| {
                if let FollowEvent::Verified(batch) = event {
                    let done = batch.last_seq > head;
                    let _ = batches.send(batch);
                    if done {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })
            .await
        })
    };
    let first = seen.recv().await.unwrap();
    assert_eq!((first.first_seq, first.last_seq), (1, head));
    coordinator.enqueue("true").await;
    let report = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .expect("follow sees the new record")
        .unwrap()
        .unwrap();
    assert_eq!(report.finding, None);
    assert_eq!(report.last_seq, Some(head + 1));

    coordinator.stop().await;
    data_dir_checks(&db_path, &job_a).await;
}

#[cfg(feature = "rocksdb")]
async fn data_dir_checks(db_path: &Path, job_a: &str) {
    use skyclaw_audit::verify_local;

    // The stopped coordinator's data directory verifies, views included.
    let source = Source::parse(db_path.to_str().unwrap()).unwrap();
    assert!(matches!(source, Source::DataDir(_)));
    let mut blobs = options();
    blobs.blobs = true;
    let report = verify_local(&source, &blobs).unwrap();
    assert_eq!(report.finding, None, "{report}");
    assert!(report.comparison.as_ref().unwrap().agrees);

    // Job A's success rewritten as a failure, the chain after it sealed
    // again and the recorded head moved along: the chain verifies, the
    // stored views give it away.
    forge_completion(db_path, job_a);
    let report = verify_local(&source, &options()).unwrap();
    let finding = report.finding.clone().expect("the forgery is found");
    assert_eq!(finding.kind, FindingKind::DigestMismatch, "{report}");
    assert!(
        finding.reason.contains(&format!(
            "job {job_a} is failed in the replay, completed in the stored views"
        )),
        "{finding}"
    );

    // Restarted on the forged log, the coordinator still serves the
    // checkpoint it signed before the forgery: the Merkle tree rebuilt
    // from the forged records does not reach its root.
    let coordinator = Coordinator::start(db_path).await;
    let source = || Source::Coordinator(vec![coordinator.url.clone()]);
    let report = verify(source(), options()).await.unwrap();
    let finding = report.finding.clone().expect("the forgery is found");
    assert_eq!(finding.kind, FindingKind::Checkpoint, "{report}");
    assert!(finding.reason.contains("Merkle tree has root"), "{finding}");
    coordinator.stop().await;
}

#[cfg(not(feature = "rocksdb"))]
async fn data_dir_checks(_db_path: &Path, _job_a: &str) {}

/// Rewrites job A's completion in the data directory as a failure and
/// seals every record from it on again, as a forger with the disk would.
#[cfg(feature = "rocksdb")]
fn forge_completion(db_path: &Path, job_a: &str) {
    use rocksdb::{Options, DB};
    use skyclaw_log_format::{ChainHead, Event, Record};

    let families = DB::list_cf(&Options::default(), db_path).unwrap();
    // The stopped coordinator's last tasks may hold the database's lock a
    // moment longer than `run` takes to return.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let db = loop {
        match DB::open_cf(&Options::default(), db_path, &families) {
            Ok(db) => break db,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("the stopped coordinator's database stays locked: {e}"),
        }
    };
    let events = db.cf_handle("events").unwrap();
    let meta = db.cf_handle("meta").unwrap();
    let cluster_id: String =
        rmp_serde::from_slice(&db.get_cf(meta, "cluster_id").unwrap().unwrap()).unwrap();
    let records: Vec<Record> = db
        .iterator_cf(events, rocksdb::IteratorMode::Start)
        .map(|item| Record::decode(&item.unwrap().1).unwrap())
        .collect();
    let mut prev: Option<ChainHead> = None;
    let mut forging = false;
    for record in records {
        let mut event = record.event.clone();
        if let Event::JobCompleted(mut done) = record.decode_event().unwrap() {
            if done.job_id == job_a {
                done.success = false;
                done.exit_code = Some(1);
                event = Event::JobCompleted(done).encode();
                forging = true;
            }
        }
        let prev_hash = prev.map_or(record.prev_hash, |head| head.hash);
        let sealed = Record::seal(
            &cluster_id,
            record.seq,
            record.at,
            record.origin,
            prev_hash,
            event,
        );
        if forging {
            db.put_cf(events, record.seq.to_be_bytes(), sealed.encode())
                .unwrap();
        }
        prev = Some(sealed.head());
    }
    assert!(forging, "job A's completion is in the log");
    db.put_cf(
        meta,
        "head",
        rmp_serde::to_vec_named(&prev.unwrap()).unwrap(),
    )
    .unwrap();
    db.flush_cf(events).unwrap();
    db.flush_cf(meta).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_held_to_its_signed_checkpoint_and_a_fork_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(&dir.path().join("db")).await;
    run_workload(&coordinator).await;
    let head = coordinator.head_seq().await;
    let url = format!("{}/v1/log/checkpoint", coordinator.url);
    let http = coordinator.http.clone();
    let covered = |http: reqwest::Client, url: String| async move {
        let response = http.get(url).header("x-skyclaw-token", TOKEN).send().await;
        match response {
            Ok(response) if response.status().is_success() => {
                response.text().await.unwrap_or_default()
            }
            _ => String::new(),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !covered(http.clone(), url.clone())
        .await
        .contains(&format!("\n{head}\n"))
    {
        assert!(Instant::now() < deadline, "no checkpoint of {head} records");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let source = || Source::Coordinator(vec![coordinator.url.clone()]);
    let state = dir.path().join("audit-state.json");
    let mut held = options();
    held.state = Some(state.clone());
    let report = verify(source(), held.clone()).await.unwrap();
    assert_eq!(report.finding, None, "{report}");
    let said = report.to_string();
    assert!(
        said.contains(&format!("the checkpoint of {head} records is signed")),
        "{said}"
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(kept["size"], head);

    // What this auditor saw last time had another root at this size.
    let mut forked = kept.clone();
    forked["root"] = "22".repeat(32).into();
    std::fs::write(&state, serde_json::to_vec(&forked).unwrap()).unwrap();
    let report = verify(source(), held.clone()).await.unwrap();
    let finding = report.finding.expect("a fork is found");
    assert_eq!(finding.kind, FindingKind::Checkpoint, "{finding}");
    assert!(finding.reason.contains("a fork"), "{finding}");

    // A smaller tree seen before that this log does not extend.
    let mut rewritten = kept.clone();
    rewritten["size"] = (head - 1).into();
    std::fs::write(&state, serde_json::to_vec(&rewritten).unwrap()).unwrap();
    let report = verify(source(), held).await.unwrap();
    let finding = report.finding.expect("a rewritten log is found");
    assert_eq!(finding.kind, FindingKind::Checkpoint, "{finding}");
    assert!(finding.reason.contains("Merkle tree has root"), "{finding}");

    // Keys the auditor trusts did not sign it.
    let mut strangers = options();
    let key = skyclaw_log_format::LogKey::new(&[9; 32], "any").public_key();
    let cluster_id = coordinator.call("GET", "/v1/log/head", Value::Null).await["clusterId"]
        .as_str()
        .unwrap()
        .to_string();
    strangers.trust = Some(vec![skyclaw_log_format::checkpoint::vkey(
        &cluster_id,
        &key,
    )
    .unwrap()]);
    let report = verify(source(), strangers).await.unwrap();
    let finding = report.finding.expect("an untrusted checkpoint is found");
    assert_eq!(finding.kind, FindingKind::Checkpoint, "{finding}");
    assert!(finding.reason.contains("signed by 0 of the 1"), "{finding}");
    coordinator.stop().await;
}
