//! A coordinator stopped and started again on the same directory comes
//! back with the same views, chain head and digest, without replaying
//! history or applying any entry twice.

use skyclaw_coordinator::raft::Answer;
use skyclaw_coordinator::Coordinator;
use skyclaw_log_format::ChainHead;
use skyclaw_state::{Command, HostView, JobReport, JobSpec, JobView, Payload};

use crate::util::{bounded, config, start_node, stop_node, wait_until, LEASE_MS};

/// Everything a restart must keep.
#[derive(Debug, PartialEq)]
struct Snapshot {
    cluster_id: Option<String>,
    hosts: Vec<HostView>,
    jobs: Vec<JobView>,
    head: ChainHead,
    digest: String,
    last_at: u64,
}

fn snapshot(node: &Coordinator) -> Snapshot {
    node.read(|m| Snapshot {
        cluster_id: m.state.cluster_id().map(str::to_string),
        hosts: m.state.hosts().cloned().collect(),
        jobs: m.state.jobs_after(None).cloned().collect(),
        head: m.head,
        digest: m.state.digest().to_hex(),
        last_at: m.state.last_at(),
    })
}

fn register(name: &str) -> Command {
    Command::RegisterHost {
        host_id: "h".into(),
        name: name.into(),
        capabilities: vec!["shell".into()],
        max_parallel: 2,
        sandbox: None,
        key: None,
    }
}

fn enqueue(job_id: &str) -> Command {
    Command::Enqueue {
        jobs: vec![JobSpec {
            job_id: job_id.into(),
            payload: Payload::Shell {
                command: "echo".into(),
                args: vec![job_id.into()],
                cwd: None,
                env: Default::default(),
                timeout_ms: None,
            },
            required_capabilities: vec![],
            priority: 0,
            max_attempts: 3,
            idempotency_key: None,
            request_hash: None,
            account: None,
        }],
    }
}

async fn write(node: &Coordinator, command: Command) -> Answer {
    node.write(command)
        .await
        .expect("the write commits")
        .expect("the command is accepted")
}

#[tokio::test]
async fn a_restart_keeps_views_head_and_digest_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(config(&dir)).await;
    // Re-applying these from the start would show: the first registration
    // differs from the last, so it would be written again.
    write(&node, register("first name")).await;
    write(&node, register("second name")).await;
    for job in ["a", "b", "c"] {
        write(&node, enqueue(job)).await;
    }
    write(
        &node,
        Command::Claim {
            host_id: "h".into(),
            max_jobs: 2,
            lease_ms: LEASE_MS,
            claim_key: None,
        },
    )
    .await;
    write(
        &node,
        Command::Complete(JobReport {
            job_id: "a".into(),
            host_id: "h".into(),
            lease_epoch: Some(1),
            success: true,
            duration_ms: 1,
            exit_code: Some(0),
            stdout: "out".into(),
            stderr: String::new(),
            error: None,
            receipt: None,
        }),
    )
    .await;
    write(&node, Command::Cancel { job_id: "c".into() }).await;
    let before = snapshot(&node);
    let applied = node.read(|m| m.applied).expect("entries were applied");
    assert_eq!(before.head.seq, 10, "{before:?}");
    stop_node(node).await;

    let node = bounded(
        "the restart",
        Coordinator::start(config(&dir), "http://127.0.0.1:9".into()),
    )
    .await
    .expect("the coordinator starts again");
    // Start-up read the views back from disk and re-applied nothing.
    assert_eq!(snapshot(&node), before);
    assert_eq!(node.read(|m| m.applied), Some(applied));

    // Once it leads again, nothing of the old log has been applied a
    // second time (a single node keeps its committed vote and term, so no
    // new entry is needed to lead).
    wait_until("the node leads again", || node.is_leader()).await;
    assert_eq!(node.read(|m| m.applied), Some(applied));
    assert_eq!(snapshot(&node), before);

    // The chain goes on from the same head.
    write(&node, enqueue("d")).await;
    let after = snapshot(&node);
    assert_eq!(after.head.seq, before.head.seq + 1);
    assert_eq!(after.cluster_id, before.cluster_id);
    let blob = node
        .read(|m| m.state.job("a").cloned())
        .and_then(|job| job.outcome)
        .expect("a's outcome survived");
    let stdout = node
        .db
        .get_cf(
            skyclaw_coordinator::store::cf(&node.db, skyclaw_coordinator::store::BLOBS),
            blob.stdout.hash.0,
        )
        .unwrap();
    assert_eq!(stdout.as_deref(), Some(&b"out"[..]));
    stop_node(node).await;
}

#[tokio::test]
async fn a_data_directory_belongs_to_one_node_name() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(config(&dir)).await;
    stop_node(node).await;
    let mut renamed = config(&dir);
    renamed.node_id = "someone-else".into();
    let refused = Coordinator::start(renamed, "http://127.0.0.1:9".into()).await;
    assert!(
        matches!(
            refused,
            Err(skyclaw_coordinator::Error::IdentityMismatch { .. })
        ),
        "{:?}",
        refused.err()
    );
}

/// A store written before the Merkle tree was kept has records but no
/// stored hashes: start-up builds them once, to the root of its records.
#[tokio::test]
async fn a_store_without_the_tree_gets_it_built_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(config(&dir)).await;
    for i in 0..20 {
        write(&node, enqueue(&format!("job-{i}"))).await;
    }
    let (size, root) = node.read(|m| (m.tree.size(), m.tree.root()));
    assert!(size > 20);
    stop_node(node).await;
    {
        let db = skyclaw_coordinator::store::open(&config(&dir).db_path).unwrap();
        let tree = skyclaw_coordinator::store::cf(&db, skyclaw_coordinator::store::TREE);
        db.delete_range_cf(tree, [0u8].as_slice(), [0xffu8; 9].as_slice())
            .unwrap();
        let left = db.iterator_cf(tree, rocksdb::IteratorMode::Start).count();
        assert_eq!(left, 0, "the stored hashes are gone");
    }
    let node = start_node(config(&dir)).await;
    assert_eq!(node.read(|m| (m.tree.size(), m.tree.root())), (size, root));
    let proof = node.inclusion(1, size).await.unwrap();
    assert!(!proof.hashes.is_empty());
    stop_node(node).await;
}
