//! The client subcommands of `skyclaw` against a real coordinator: tables
//! for people, JSON for scripts, errors as `skyclaw: <message>` with exit 1.
//!
//! - `jobs_and_hosts_and_status_print_tables_and_json`
//! - `an_idempotency_key_makes_a_repeated_enqueue_one_job`
//! - `a_queued_job_cancels_at_once`
//! - `errors_name_the_problem_and_exit_1`
//! - `audit_and_log_export_verify_the_log`
//! - `keys_enrollment_and_approval_from_the_command_line`

mod util;

use std::time::Duration;

use skyclaw_api::{HostsResponse, IssuedKey, Job, JobStatus, JobsPage, Status};
use util::{run_skyclaw, Cluster};

#[test]
fn jobs_and_hosts_and_status_print_tables_and_json() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[]);
    let ran = cluster.skyclaw(&[
        "enqueue-shell",
        "--wait",
        "--priority",
        "5",
        "sh",
        "-c",
        "echo hi",
    ]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let job_id = ran
        .stderr
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("job ")
        .to_string();

    let table = cluster.skyclaw(&["jobs", "list"]);
    assert_eq!(table.code, Some(0), "{table:?}");
    let mut lines = table.stdout.lines();
    assert!(lines.next().unwrap().starts_with("ID"), "{}", table.stdout);
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&job_id) && row.contains("completed"),
        "{row}"
    );

    let json = cluster.skyclaw(&["jobs", "list", "--status", "completed", "--json"]);
    let page: JobsPage = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].priority, 5);

    let shown = cluster.skyclaw(&["jobs", "show", &job_id]);
    assert!(
        shown.stdout.contains("status:") && shown.stdout.contains("--- stdout\nhi\n"),
        "{}",
        shown.stdout
    );

    let waited = cluster.skyclaw(&["jobs", "wait", &job_id]);
    assert_eq!((waited.code, waited.stdout.as_str()), (Some(0), "hi\n"));

    let hosts = cluster.skyclaw(&["hosts", "list"]);
    assert!(
        hosts
            .stdout
            .lines()
            .any(|l| l.contains("host-a") && l.contains("shell,automaton")),
        "{}",
        hosts.stdout
    );
    let hosts: HostsResponse =
        serde_json::from_str(&cluster.skyclaw(&["hosts", "list", "--json"]).stdout).unwrap();
    assert_eq!(hosts.hosts.len(), 1);
    assert_eq!(hosts.hosts[0].name, "host-a");

    let status = cluster.skyclaw(&["status"]);
    assert!(
        status.stdout.contains("queued:") && status.stdout.contains("log head:"),
        "{}",
        status.stdout
    );
    let status: Status =
        serde_json::from_str(&cluster.skyclaw(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status.queued, 0);
    assert!(status.head.seq > 0);
}

#[test]
fn an_idempotency_key_makes_a_repeated_enqueue_one_job() {
    let cluster = Cluster::start(60_000);
    let first = cluster.enqueue(&["--idempotency-key", "nightly-1", "sh", "-c", "true"]);
    let again = cluster.enqueue(&["--idempotency-key", "nightly-1", "sh", "-c", "true"]);
    assert_eq!(first, again);
    let other = cluster.skyclaw(&[
        "enqueue-shell",
        "--idempotency-key",
        "nightly-1",
        "sh",
        "-c",
        "false",
    ]);
    assert_eq!(other.code, Some(1), "{other:?}");
    assert!(
        other.stderr.starts_with("skyclaw: ") && other.stderr.contains("409"),
        "{other:?}"
    );
}

#[test]
fn a_queued_job_cancels_at_once() {
    let cluster = Cluster::start(60_000);
    let job_id = cluster.enqueue(&["--json", "sh", "-c", "true"]);
    let job: Job = serde_json::from_str(&job_id).unwrap();
    let ran = cluster.skyclaw(&["jobs", "cancel", &job.id]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout.trim(), format!("{} cancelled", job.id));
    let waited = cluster.skyclaw(&["jobs", "wait", &job.id]);
    assert_eq!(waited.code, Some(1));
    assert!(waited.stderr.contains("cancelled"), "{waited:?}");
    assert_eq!(cluster.job(&job.id).status, JobStatus::Cancelled);
}

#[test]
fn errors_name_the_problem_and_exit_1() {
    let cluster = Cluster::start(60_000);
    let unknown = cluster.skyclaw(&["jobs", "show", "no-such-job"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.starts_with("skyclaw: ") && unknown.stderr.contains("404"),
        "{unknown:?}"
    );

    let limit = Duration::from_secs(60);
    let wrong_token = run_skyclaw(
        cluster.path(),
        &["status"],
        &[
            ("SKYCLAW_COORDINATOR_URL", &cluster.url),
            ("SKYCLAW_TOKEN", "wrong"),
        ],
        limit,
    );
    assert_eq!(wrong_token.code, Some(1));
    assert!(wrong_token.stderr.contains("401"), "{wrong_token:?}");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = run_skyclaw(
        cluster.path(),
        &["status"],
        &[("SKYCLAW_COORDINATOR_URL", &closed)],
        limit,
    );
    assert_eq!(unreachable.code, Some(1));
    assert!(
        unreachable
            .stderr
            .starts_with("skyclaw: no coordinator reachable"),
        "{unreachable:?}"
    );

    // Several URLs: the dead one is skipped.
    let urls = format!("{closed},{}", cluster.url);
    let failover = run_skyclaw(
        cluster.path(),
        &["status", "--json"],
        &[
            ("SKYCLAW_COORDINATOR_URLS", &urls),
            ("SKYCLAW_TOKEN", &cluster.token),
        ],
        limit,
    );
    assert_eq!(failover.code, Some(0), "{failover:?}");
    serde_json::from_str::<Status>(&failover.stdout).unwrap();
}

#[test]
fn audit_and_log_export_verify_the_log() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[]);
    let ran = cluster.skyclaw(&["enqueue-shell", "--wait", "sh", "-c", "echo audited"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");

    let live = cluster.skyclaw(&["audit", "--json"]);
    assert_eq!(live.code, Some(0), "{live:?}");
    let report: serde_json::Value = serde_json::from_str(&live.stdout).expect("JSON report");
    assert_eq!(report["status"], "verified", "{report}");
    assert_eq!(report["comparison"]["agrees"], true, "{report}");
    let head = report["lastSeq"].as_u64().expect("a last seq");
    assert!(head >= 4, "{report}");

    let segment = cluster.path().join("log.seg");
    let segment = segment.to_str().unwrap();
    let exported = cluster.skyclaw(&["log", "export", "-o", segment]);
    assert_eq!(exported.code, Some(0), "{exported:?}");
    let offline = cluster.skyclaw(&["audit", segment, "--json"]);
    assert_eq!(offline.code, Some(0), "{offline:?}");
    let offline: serde_json::Value = serde_json::from_str(&offline.stdout).expect("JSON report");
    let offline_head = offline["lastSeq"].as_u64().expect("a last seq");
    assert!(offline_head >= head, "{offline}");
    if offline_head == head {
        assert_eq!(offline["digest"], report["digest"], "{offline}");
    }

    let missing = cluster.skyclaw(&["audit", "no-such-file.seg"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
}

#[test]
fn keys_enrollment_and_approval_from_the_command_line() {
    let cluster = Cluster::start(60_000);
    let created = cluster.skyclaw(&[
        "keys",
        "create",
        "--role",
        "enqueuer",
        "--account",
        "acme",
        "--json",
    ]);
    assert_eq!(created.code, Some(0), "{created:?}");
    let issued: IssuedKey = serde_json::from_str(&created.stdout).unwrap();
    let as_acme = |args: &[&str]| {
        run_skyclaw(
            cluster.path(),
            args,
            &[
                ("SKYCLAW_COORDINATOR_URL", &cluster.url),
                ("SKYCLAW_TOKEN", &issued.secret),
            ],
            Duration::from_secs(60),
        )
    };
    let theirs = as_acme(&["enqueue-shell", "sh", "-c", "echo acme"]);
    assert_eq!(theirs.code, Some(0), "{theirs:?}");
    let acme_job = theirs.stdout.trim().to_string();
    cluster.enqueue(&["sh", "-c", "echo admin"]);
    let listed: JobsPage =
        serde_json::from_str(&as_acme(&["jobs", "list", "--json"]).stdout).unwrap();
    let ids: Vec<&str> = listed.jobs.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, [acme_job.as_str()]);

    // A host with an enrollment key and no token is approved as it
    // registers, and runs the jobs.
    let enroll = cluster.skyclaw(&["hosts", "enroll-token", "--ttl", "10m", "--json"]);
    assert_eq!(enroll.code, Some(0), "{enroll:?}");
    let enroll: IssuedKey = serde_json::from_str(&enroll.stdout).unwrap();
    let _enrolled = cluster.start_host(
        "enrolled",
        &[
            ("SKYCLAW_TOKEN", ""),
            ("SKYCLAW_ENROLL_KEY", &enroll.secret),
        ],
    );
    assert_eq!(
        cluster
            .wait_final(&acme_job, Duration::from_secs(60))
            .status,
        JobStatus::Completed
    );
    // One with neither waits until an admin approves it.
    let _pending = cluster.start_host("pending", &[("SKYCLAW_TOKEN", "")]);
    let id_file = cluster.path().join("pending-state/host-id");
    let pending_id = util::wait_until("the pending host's id", Duration::from_secs(30), || {
        std::fs::read_to_string(&id_file).ok()
    });
    let pending_id = pending_id.trim();
    let host_state = |id: &str| {
        let hosts: HostsResponse =
            serde_json::from_str(&cluster.skyclaw(&["hosts", "list", "--json"]).stdout).unwrap();
        hosts
            .hosts
            .into_iter()
            .find(|host| host.id == id)
            .map(|host| host.access)
    };
    util::wait_until(
        "the pending host to register",
        Duration::from_secs(30),
        || (host_state(pending_id).as_deref() == Some("pending")).then_some(()),
    );
    let approved = cluster.skyclaw(&["hosts", "approve", pending_id]);
    assert_eq!(approved.code, Some(0), "{approved:?}");
    assert_eq!(host_state(pending_id).as_deref(), Some("active"));

    // A revoked key opens nothing.
    let revoked = cluster.skyclaw(&["keys", "revoke", &issued.key.id]);
    assert_eq!(revoked.code, Some(0), "{revoked:?}");
    let refused = as_acme(&["enqueue-shell", "echo", "late"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
}
