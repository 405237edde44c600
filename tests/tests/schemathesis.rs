//! schemathesis (the OpenAPI fuzzer) against a live coordinator: it reads
//! `GET /v1/openapi.json`, sends every operation requests made from the
//! document, valid and not, and fails on any 5xx and on any answer whose
//! status, content type, headers or body the document does not allow, and
//! on a route that answers without the token.
//!
//! Ignored by a plain `cargo test`: it needs the Python tool, which
//! `scripts/setup` installs and `scripts/test` runs it with
//! (`SKYCLAW_SCHEMATHESIS` names the `st` command; `st` on PATH otherwise).
//!
//! - `schemathesis_finds_no_server_error_and_nothing_off_the_document`

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{Process, TOKEN};

/// Test cases per operation and phase: enough to cover every status an
/// operation documents, small enough for a few minutes on two cores.
const EXAMPLES: &str = "30";
/// Fixed, so a failure in CI is the same failure on a laptop.
const SEED: &str = "14";
/// The whole run; past it the test fails rather than hang CI.
const LIMIT: Duration = Duration::from_secs(600);

#[test]
#[ignore = "needs schemathesis; scripts/test runs it"]
fn schemathesis_finds_no_server_error_and_nothing_off_the_document() {
    let st = std::env::var("SKYCLAW_SCHEMATHESIS").unwrap_or_else(|_| "st".to_string());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let coordinator = Process::spawn(
        "coordinator",
        dir.path(),
        &["coordinator"],
        &[
            ("SKYCLAW_COORDINATOR_HOST", "127.0.0.1"),
            ("SKYCLAW_COORDINATOR_PORT", "0"),
            ("SKYCLAW_DB_PATH", db.to_str().unwrap()),
            ("SKYCLAW_TOKEN", TOKEN),
            // Claims may ask to wait for work; fuzzing should not wait long.
            ("SKYCLAW_MAX_CLAIM_WAIT_MS", "100"),
        ],
    );
    let url = coordinator.listening_url();
    let output = dir.path().join("schemathesis.txt");
    let mut run = Command::new(&st)
        .current_dir(dir.path())
        .args([
            "run",
            &format!("{url}/v1/openapi.json"),
            "--header",
            &format!("x-skyclaw-token: {TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,ignored_auth",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            // One worker: with several, schemathesis parses source from
            // each worker thread and Python 3.11's AST constructor then
            // fails at random under load ("recursion depth mismatch").
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            // Every text field refuses NUL; other characters find more.
            "--generation-allow-x00",
            "false",
            "--no-color",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {st:?} ({e}); scripts/setup installs schemathesis"));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = run.try_wait().expect("poll schemathesis") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!("schemathesis took longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = std::fs::read_to_string(&output).unwrap_or_default();
    assert!(status.success(), "schemathesis failed:\n{report}");
    println!("{report}");
}
