//! Receipts and proofs: a keyed host's completion is refused, and changes
//! nothing, unless it carries a receipt its key signed over exactly what it
//! reports; a good one is served back with an inclusion proof under a
//! checkpoint, which the log format's verifiers accept, and later
//! checkpoints are consistent with it.

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::Value;
use skyclaw_api::routes::{self, TOKEN_HEADER};
use skyclaw_log_format::checkpoint;
use skyclaw_log_format::tree::Hash;
use skyclaw_log_format::{Event, Hash32, Record};
use skyclaw_testkit::HostKey;
use warp::http::StatusCode;

use super::access::{full_mode, raw, world, World};
use super::util::{wait_until, TestNode};

fn hashes(value: &Value) -> Vec<Hash> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            Hash(
                BASE64_STANDARD
                    .decode(h.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            )
        })
        .collect()
}

async fn complete(node: &TestNode, w: &World, body: Value) -> (StatusCode, Value) {
    let as_a = [(TOKEN_HEADER, w.host_a.session.as_str())];
    raw(
        node,
        "POST",
        &routes::COMPLETE.path_for(&w.job_x),
        &as_a,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_completion_without_a_receipt_that_holds_is_refused_and_changes_nothing() {
    let node = full_mode().await;
    let w = world(&node).await;
    let before = node.head_seq().await;
    let key = HostKey::from_seed(1);
    let good = serde_json::to_value(key.complete(&w.cluster_id, &w.job, 1, "ok")).unwrap();
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("receipt");
    cases.push(("no receipt", missing));
    let mut flipped = good.clone();
    let signature = flipped["receipt"]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let first = if signature.starts_with('0') { "1" } else { "0" };
    flipped["receipt"]["signature"] = format!("{first}{}", &signature[1..]).into();
    cases.push(("one flipped bit", flipped));
    let mut other_output = good.clone();
    other_output["stdout"] = "not what was signed".into();
    cases.push(("other output", other_output));
    let mut other_exit = good.clone();
    other_exit["exitCode"] = 3.into();
    cases.push(("other exit code", other_exit));
    let by_b = HostKey::from_seed(2).complete(&w.cluster_id, &w.job, 1, "ok");
    let mut signed_by_b = good.clone();
    signed_by_b["receipt"] = serde_json::to_value(by_b.receipt).unwrap();
    cases.push(("signed by another host's key", signed_by_b));
    let mut other_payload = good.clone();
    other_payload["receipt"]["payloadHash"] = Hash32([7; 32]).to_hex().into();
    cases.push(("another payload", other_payload));
    for (case, body) in cases {
        let (status, answer) = complete(&node, &w, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{case}: {answer}");
        assert_eq!(node.head_seq().await, before, "{case} wrote to the log");
    }
    let mut no_epoch = good.clone();
    no_epoch.as_object_mut().unwrap().remove("leaseEpoch");
    let (status, answer) = complete(&node, &w, no_epoch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("leaseEpoch"));
    let mut malformed = good.clone();
    malformed["receipt"]["signature"] = "zz".into();
    let (status, answer) = complete(&node, &w, malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("receipt.signature"));
    let (status, answer) = complete(&node, &w, good).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    node.stop().await;
}

#[tokio::test]
async fn a_receipt_is_served_with_a_proof_the_checkpoint_verifies() {
    let node = full_mode().await;
    let w = world(&node).await;
    let key = HostKey::from_seed(1);
    let done = serde_json::to_value(key.complete(&w.cluster_id, &w.job, 1, "ok")).unwrap();
    assert_eq!(complete(&node, &w, done).await.0, StatusCode::OK);
    let seq = node.head_seq().await;
    wait_until("a checkpoint covers the completion", || {
        node.node
            .checkpoint_note()
            .is_ok_and(|note| note.contains(&format!("\n{seq}\n")))
    })
    .await;

    let (status, keys) = node.get(routes::LOG_KEYS.path).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let trusted: Vec<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["vkey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(trusted.len(), 1);

    // The enqueuer of the job reads its receipt; another account cannot.
    let as_x = [(TOKEN_HEADER, w.enqueuer_x.as_str())];
    let (status, receipt) = raw(
        &node,
        "GET",
        &routes::RECEIPT.path_for(&w.job_x),
        &as_x,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let as_y = [(TOKEN_HEADER, w.enqueuer_y.as_str())];
    let (status, _) = raw(
        &node,
        "GET",
        &routes::RECEIPT.path_for(&w.job_x),
        &as_y,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // So does the host that ran it, though it no longer holds the lease.
    let as_a = [(TOKEN_HEADER, w.host_a.session.as_str())];
    let (status, _) = raw(
        &node,
        "GET",
        &routes::RECEIPT.path_for(&w.job_x),
        &as_a,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let head = checkpoint::verify(
        receipt["checkpoint"].as_str().unwrap().as_bytes(),
        &w.cluster_id,
        &trusted,
    )
    .unwrap();
    let record = BASE64_STANDARD
        .decode(receipt["record"].as_str().unwrap())
        .unwrap();
    assert_eq!(receipt["seq"], seq);
    tlog_tiles::check_record(
        &hashes(&receipt["inclusion"]),
        head.size,
        Hash(head.root.0),
        seq - 1,
        tlog_tiles::record_hash(&record),
    )
    .unwrap();
    let Ok(Event::JobCompleted(done)) = Record::decode(&record).unwrap().decode_event() else {
        panic!("the record is not the completion");
    };
    let seal = done.receipt.unwrap();
    let statement: skyclaw_log_format::Receipt =
        serde_json::from_value(receipt["receipt"].clone()).unwrap();
    let host_key = Hash32(
        BASE64_STANDARD
            .decode(receipt["hostKey"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    statement.verify(&host_key, &seal.signature).unwrap();
    assert_eq!(statement.host_id, w.host_a.id);

    // A later checkpoint is consistent with this one.
    let (status, _) = node
        .post(routes::ENQUEUE.path, super::util::shell_job("later"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let later = node.head_seq().await;
    wait_until("a later checkpoint", || {
        node.node
            .checkpoint_note()
            .is_ok_and(|note| note.contains(&format!("\n{later}\n")))
    })
    .await;
    let (_, note) = node.get_text(routes::CHECKPOINT.path).await;
    let newer = checkpoint::verify(note.as_bytes(), &w.cluster_id, &trusted).unwrap();
    let path = format!(
        "{}?from={}&to={}",
        routes::CONSISTENCY.path,
        head.size,
        newer.size
    );
    let (status, proof) = node.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    tlog_tiles::check_tree(
        &hashes(&proof["hashes"]),
        newer.size,
        Hash(newer.root.0),
        head.size,
        Hash(head.root.0),
    )
    .unwrap();
    // Bad ranges name what is wrong.
    for bad in [
        "?from=0&to=1",
        "?from=3&to=2",
        "?from=1&to=999999",
        "?from=1",
    ] {
        let (status, answer) = node
            .get(&format!("{}{bad}", routes::CONSISTENCY.path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    let past = format!("?seq=1&size={}", u64::MAX);
    for bad in [
        "?seq=0&size=1",
        "?seq=3&size=2",
        past.as_str(),
        "?size=1",
        "?seq=x&size=1",
    ] {
        let (status, answer) = node.get(&format!("{}{bad}", routes::INCLUSION.path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_checkpoint_signs_the_tree_over_the_records_as_stored() {
    let node = full_mode().await;
    let w = world(&node).await;
    let seq = node.head_seq().await;
    wait_until("a checkpoint of every record", || {
        node.node
            .checkpoint_note()
            .is_ok_and(|note| note.contains(&format!("\n{seq}\n")))
    })
    .await;
    let note = node.node.checkpoint_note().unwrap();
    let keys = node.node.log_keys().unwrap();
    let trusted: Vec<String> = keys.keys.into_iter().map(|k| k.vkey).collect();
    let head = checkpoint::verify(note.as_bytes(), &w.cluster_id, &trusted).unwrap();
    let mut tree = skyclaw_log_format::Tree::empty();
    let mut last = None;
    {
        let db = &node.node.db;
        let family = db.cf_handle("events").unwrap();
        for item in db.iterator_cf(family, rocksdb::IteratorMode::Start) {
            let (_, bytes) = item.unwrap();
            tree.append(&bytes);
            last = Some(Record::decode(&bytes).unwrap());
            if tree.size() == head.size {
                break;
            }
        }
    }
    assert_eq!(tree.root(), head.root, "{note}");
    assert_eq!(last.unwrap().hash, head.chain);
    node.stop().await;
}

#[tokio::test]
async fn tiles_hold_the_leaf_hashes_and_the_records_and_odd_paths_are_404() {
    let node = full_mode().await;
    let _w = world(&node).await;
    let size = node.head_seq().await;
    let width = size.min(255);
    let get = |path: String| {
        let node = &node;
        async move {
            let response = warp::test::request()
                .method("GET")
                .path(&path)
                .header(TOKEN_HEADER, super::util::TOKEN)
                .reply(&node.routes)
                .await;
            (response.status(), response.body().to_vec())
        }
    };
    let records: Vec<Vec<u8>> = {
        let db = &node.node.db;
        let family = db.cf_handle("events").unwrap();
        db.iterator_cf(family, rocksdb::IteratorMode::Start)
            .take(width as usize)
            .map(|item| item.unwrap().1.to_vec())
            .collect()
    };
    let (status, hashes) = get(format!("/v1/log/tile/0/000.p/{width}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hashes.len(), 32 * width as usize);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            hashes[32 * i..32 * (i + 1)],
            tlog_tiles::record_hash(record).0,
            "leaf {i}"
        );
    }
    let (status, bundle) = get(format!("/v1/log/tile/entries/000.p/{width}")).await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = Vec::new();
    for record in &records {
        expected.extend_from_slice(&(record.len() as u16).to_be_bytes());
        expected.extend_from_slice(record);
    }
    assert_eq!(bundle, expected);
    let past = format!("/v1/log/tile/0/000.p/{}", width + 1);
    for bad in [
        past.as_str(),
        "/v1/log/tile/0/000",
        "/v1/log/tile/0/000.p/0",
        "/v1/log/tile/0/000.p/256",
        "/v1/log/tile/8/000",
        "/v1/log/tile/64/000",
        "/v1/log/tile/255/000.p/1",
        "/v1/log/tile/0/x999/x999/x999/x999/x999/x999/999",
        "/v1/log/tile/7/x018/x446/x744/x073/x709/x551/615",
        "/v1/log/tile/entries/x018/x446/x744/x073/x709/x551/615",
        "/v1/log/tile/entries/1",
        "/v1/log/tile/x",
        "/v1/log/tile/",
    ] {
        let (status, body) = get(bad.to_string()).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{bad}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    node.stop().await;
}

#[tokio::test]
async fn a_member_admitted_before_log_keys_has_its_key_recorded_and_cosigns() {
    let node = full_mode().await;
    let coordinator = &node.node;
    // The membership as a cluster from before log keys holds it.
    let keyless = coordinator
        .members()
        .into_iter()
        .map(|(id, member, _)| {
            let member = skyclaw_coordinator::raft::Member {
                log_key: None,
                ..member
            };
            (id, member)
        })
        .collect();
    coordinator
        .raft
        .change_membership(openraft::ChangeMembers::SetNodes(keyless), false)
        .await
        .unwrap();
    assert!(coordinator.log_keys().unwrap().keys.is_empty());
    let (status, _) = node
        .post(routes::ENQUEUE.path, super::util::shell_job("after"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let seq = node.head_seq().await;
    wait_until("the key is recorded and a checkpoint signed", || {
        coordinator
            .checkpoint_note()
            .is_ok_and(|note| note.contains(&format!("\n{seq}\n")))
            && coordinator
                .log_keys()
                .is_ok_and(|keys| !keys.keys.is_empty())
    })
    .await;
    let keys = coordinator.log_keys().unwrap();
    assert_eq!(keys.keys.len(), 1);
    let note = coordinator.checkpoint_note().unwrap();
    let cluster_id = keys.origin.strip_prefix("skyclaw/").unwrap();
    checkpoint::verify(note.as_bytes(), cluster_id, &[keys.keys[0].vkey.clone()]).unwrap();
    node.stop().await;
}

#[tokio::test]
async fn a_keyed_host_from_before_receipts_completes_without_one() {
    let node = full_mode().await;
    let key = HostKey::from_seed(9);
    let (_, challenge) = raw(
        &node,
        "POST",
        routes::CHALLENGE.path,
        &[],
        Some(serde_json::json!({})),
    )
    .await;
    let request = key.sign_as_is(
        &serde_json::from_value(challenge).unwrap(),
        skyclaw_api::RegisterHostRequest {
            name: "older daemon".into(),
            ..Default::default()
        },
    );
    let admin = [(TOKEN_HEADER, super::util::TOKEN)];
    let body = serde_json::to_value(&request).unwrap();
    let (status, registered) = raw(&node, "POST", routes::REGISTER.path, &admin, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    let session = registered["session"].as_str().unwrap().to_string();
    let (status, _) = node
        .post(routes::ENQUEUE.path, super::util::shell_job("old"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let as_host = [(TOKEN_HEADER, session.as_str())];
    let claim = routes::CLAIM.path_for(&key.id);
    let (status, claimed) = raw(&node, "POST", &claim, &as_host, Some(serde_json::json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let job_id = claimed["job"]["id"].as_str().unwrap().to_string();
    let done = serde_json::json!({
        "hostId": key.id, "leaseEpoch": 1, "success": true, "durationMs": 1,
        "exitCode": 0, "stdout": "as before", "stderr": "",
    });
    let (status, answer) = raw(
        &node,
        "POST",
        &routes::COMPLETE.path_for(&job_id),
        &as_host,
        Some(done),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = node.get(&routes::RECEIPT.path_for(&job_id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("signs no receipt"));
    node.stop().await;
}
