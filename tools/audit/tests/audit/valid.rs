//! Valid logs verify: one file, a directory of segments, a segment that
//! continues an anchor, and a pinned head that matches.

use skyclaw_audit::generate::generate;
use skyclaw_audit::{verify_local, Source, VerifyOptions};
use skyclaw_log_format::{write_segment, Hash32};
use skyclaw_state::State;

use crate::util::*;

/// The digest a correct replay of `records` reaches.
fn replayed_digest(records: &[skyclaw_log_format::Record]) -> Hash32 {
    let mut state = State::new();
    for record in records {
        state
            .apply(&record.decode_event().unwrap(), record.at)
            .unwrap();
    }
    state.digest()
}

#[test]
fn a_synthetic_log_verifies_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic(5_000);
    let path = write(dir.path(), "log.seg", &segment(CLUSTER, &records));

    let run = audit(&["verify", "--json", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["status"], "verified");
    assert_eq!(report["clusterId"], CLUSTER);
    assert_eq!(report["events"], 5_000);
    assert_eq!(report["firstSeq"], 1);
    assert_eq!(report["lastSeq"], 5_000);
    assert_eq!(report["headHash"], records[4_999].hash.to_hex());
    assert_eq!(report["replayed"], true);
    assert_eq!(report["digest"], replayed_digest(&records).to_hex());
    assert!(report["finding"].is_null());

    let human = audit(&["verify", path.to_str().unwrap()]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("result:    verified"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("5000 verified, records 1 to 5000"),
        "{}",
        human.stdout
    );
}

#[test]
fn the_workload_has_every_kind_of_event() {
    let mut kinds = std::collections::BTreeSet::new();
    generate(CLUSTER, 20_000, 3, true, |record| {
        let event = record.decode_event().unwrap();
        let kind = format!("{event:?}");
        kinds.insert(kind.split([' ', '(', '{']).next().unwrap().to_owned());
        Ok::<_, ()>(())
    })
    .unwrap();
    for kind in [
        "ClusterCreated",
        "HostRegistered",
        "JobEnqueued",
        "JobLeased",
        "LeaseRenewed",
        "LeaseExpired",
        "JobCompleted",
        "CancelRequested",
        "JobCancelled",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
}

#[test]
fn a_directory_of_segments_verifies_as_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic(3_000);
    // Named so that name order is not seq order.
    for (name, range) in [
        ("c.seg", 0..1_000),
        ("a.seg", 1_000..2_500),
        ("b.seg", 2_500..3_000),
    ] {
        let first = &records[range.start];
        let bytes = write_segment(CLUSTER, first.seq, first.prev_hash, &records[range]).unwrap();
        write(dir.path(), name, &bytes);
    }
    let report = verify_local(
        &Source::parse(dir.path().to_str().unwrap()).unwrap(),
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(report.finding, None);
    assert_eq!(report.events, 3_000);
    assert_eq!(report.digest, Some(replayed_digest(&records)));

    // A gap between two files is a missing record.
    std::fs::remove_file(dir.path().join("a.seg")).unwrap();
    let (kind, seq, _) = finding_of(dir.path(), &[]);
    assert_eq!((kind.as_str(), seq), ("seqGap", Some(1_001)));
}

#[test]
fn a_segment_after_an_anchor_is_chain_checked_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic(2_000);
    let tail = &records[1_200..];
    let bytes = write_segment(CLUSTER, tail[0].seq, tail[0].prev_hash, tail).unwrap();
    let path = write(dir.path(), "tail.seg", &bytes);

    let run = audit(&["verify", "--json", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["anchor"]["seq"], 1_200);
    assert_eq!(report["anchor"]["hash"], records[1_199].hash.to_hex());
    assert_eq!(report["firstSeq"], 1_201);
    assert_eq!(report["replayed"], false);
    assert!(report["notes"][0]
        .as_str()
        .unwrap()
        .contains("taken on trust"));
}

#[test]
fn a_pinned_head_that_matches_passes() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic(500);
    let path = write(dir.path(), "log.seg", &segment(CLUSTER, &records));
    let pin = format!("300:{}", records[299].hash);
    let run = audit(&["verify", path.to_str().unwrap(), "--expect-head", &pin]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn the_merkle_tree_is_built_only_as_far_as_a_checkpoint_needs_it() {
    use skyclaw_audit::Auditor;
    use skyclaw_log_format::tree::record_leaf;
    use skyclaw_log_format::{ChainHead, Tree, TreeHead};

    let records = synthetic(10);
    let mut tree = Tree::empty();
    for record in &records[..5] {
        tree.append_leaf(record_leaf(record));
    }
    let head = |size: u64, root| TreeHead {
        size,
        root,
        chain: records[size as usize - 1].hash,
    };
    let mut auditor = Auditor::new(CLUSTER, ChainHead::genesis(CLUSTER), None, false);
    assert!(auditor.expect_tree_head(head(5, tree.root())));
    for record in &records[..5] {
        auditor.accept(record).unwrap();
    }
    assert_eq!(auditor.tree_root(), Some(tree.root()));
    auditor.accept(&records[5]).unwrap();
    assert_eq!(auditor.tree_root(), None, "no head lies ahead");
    assert!(!auditor.expect_tree_head(head(8, tree.root())));
}
