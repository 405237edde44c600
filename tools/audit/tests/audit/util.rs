//! Helpers: synthetic logs, segments assembled by hand (so they can be
//! wrong), byte offsets inside them, and running the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use skyclaw_audit::generate::generate;
use skyclaw_log_format::{write_segment, ChainHead, Record, RECORD_HEADER_LEN};

pub const CLUSTER: &str = "test-cluster";

/// A valid log of `count` records of [`CLUSTER`].
pub fn synthetic(count: u64) -> Vec<Record> {
    synthetic_for(CLUSTER, count)
}

pub fn synthetic_for(cluster_id: &str, count: u64) -> Vec<Record> {
    let mut records = Vec::new();
    generate(cluster_id, count, 7, true, |record| {
        records.push(record);
        Ok::<_, ()>(())
    })
    .unwrap();
    records
}

/// A valid segment of `records`, which start `cluster_id`'s log at seq 1.
pub fn segment(cluster_id: &str, records: &[Record]) -> Vec<u8> {
    let genesis = ChainHead::genesis(cluster_id);
    write_segment(cluster_id, 1, genesis.hash, records).unwrap()
}

/// A segment from genesis holding `records` as given, valid or not, with
/// a trailer that restates `trailer_head` and `count`.
pub fn assemble(
    cluster_id: &str,
    records: &[Record],
    trailer_head: ChainHead,
    count: u64,
) -> Vec<u8> {
    let mut bytes = header(cluster_id);
    for record in records {
        let encoded = record.encode();
        bytes.push(b'R');
        bytes.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&encoded);
    }
    bytes.push(b'T');
    bytes.extend_from_slice(&48u32.to_be_bytes());
    bytes.extend_from_slice(&trailer_head.seq.to_be_bytes());
    bytes.extend_from_slice(&trailer_head.hash.0);
    bytes.extend_from_slice(&count.to_be_bytes());
    bytes
}

/// Magic, version and header of a segment from genesis.
pub fn header(cluster_id: &str) -> Vec<u8> {
    let mut empty = segment(cluster_id, &[]);
    empty.truncate(empty.len() - TRAILER_LEN);
    empty
}

/// A trailer frame: tag, length, last seq, head hash, count.
pub const TRAILER_LEN: usize = 1 + 4 + 48;

/// Where record `seq` (1-based, in a segment from genesis) starts: the
/// first byte of its encoded record, after the frame's tag and length.
pub fn record_offset(cluster_id: &str, records: &[Record], seq: u64) -> usize {
    let mut offset = header(cluster_id).len();
    for record in &records[..(seq - 1) as usize] {
        offset += 5 + RECORD_HEADER_LEN + record.event.len();
    }
    offset + 5
}

/// Byte offsets of fields inside an encoded record.
pub const AT_FIELD: usize = 9;
pub const HASH_FIELD: usize = 65;

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `skyclaw-audit` with `args`, without the caller's coordinator
/// settings.
pub fn audit(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_skyclaw-audit"))
        .args(args)
        .env_remove("SKYCLAW_COORDINATOR_URL")
        .env_remove("SKYCLAW_COORDINATOR_URLS")
        .env_remove("SKYCLAW_TOKEN")
        .output()
        .unwrap();
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `verify --json PATH`, expecting a finding: its kind and seq.
pub fn finding_of(path: &Path, extra: &[&str]) -> (String, Option<u64>, String) {
    let mut args = vec!["verify", "--json", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = audit(&args);
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let report = run.json();
    assert_eq!(report["status"], "violation");
    let finding = &report["finding"];
    (
        finding["kind"].as_str().unwrap().to_owned(),
        finding["seq"].as_u64(),
        finding["reason"].as_str().unwrap().to_owned(),
    )
}
