//! Input that is not a log at all ends with exit status 2 and a message
//! that says so, never a panic.

use crate::util::*;

fn rejected(bytes: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "input", bytes);
    let run = audit(&["verify", path.to_str().unwrap()]);
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    let run = audit(&["verify", "--json", path.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["status"], "unreadable");
}

#[test]
fn random_bytes() {
    let mut bytes = vec![0u8; 4096];
    blake3::Hasher::new()
        .update(b"random bytes")
        .finalize_xof()
        .fill(&mut bytes);
    rejected(&bytes, "not a Skyclaw log segment");
}

#[test]
fn an_empty_file() {
    rejected(b"", "ends before a complete segment header");
}

#[test]
fn a_json_file() {
    rejected(
        br#"{"records": [{"seq": 1, "hash": "00"}]}"#,
        "not a Skyclaw log segment",
    );
}

#[test]
fn a_header_cut_short() {
    let header = header(CLUSTER);
    rejected(&header[..20], "ends before a complete segment header");
}

#[test]
fn a_segment_from_a_newer_format() {
    let mut bytes = segment(CLUSTER, &[]);
    bytes[11] = 9;
    rejected(&bytes, "unsupported segment format version 9");
}

#[test]
fn a_path_that_does_not_exist() {
    let run = audit(&["verify", "/nonexistent/skyclaw/log.seg"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/skyclaw/log.seg"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_directory_without_segments() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "notes.txt", b"hello");
    let run = audit(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("notes.txt"), "{}", run.stderr);

    let empty = tempfile::tempdir().unwrap();
    let run = audit(&["verify", empty.path().to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no segment files"), "{}", run.stderr);
}

#[test]
fn bad_usage() {
    assert_eq!(audit(&["verify", "x", "--expect-head", "12"]).code, 2);
    assert_eq!(audit(&["verify", "x", "--expect-head", "12:zz"]).code, 2);
    assert_eq!(audit(&["frobnicate"]).code, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "log.seg", &segment(CLUSTER, &synthetic(10)));
    let run = audit(&["verify", "--follow", path.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--follow needs a coordinator"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_coordinator() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let run = audit(&["verify", &url]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("cannot reach a coordinator"),
        "{}",
        run.stderr
    );
}
