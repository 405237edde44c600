//! The host daemon against a real coordinator: what it refuses to run, how
//! it stops jobs (timeouts, cancels, shutdown), what jobs can see, how it
//! shares work, and what happens when it dies. Tests that watch a job
//! through files outside its directory turn the sandbox off; the sandbox
//! itself is tested in `hostile/job.rs`.
//!
//! - `a_command_off_the_allowlist_never_runs`
//! - `a_timeout_kills_the_job_and_its_grandchild_after_the_grace_period`
//! - `long_output_is_cut_on_a_character_boundary_and_marked`
//! - `cancelling_a_running_job_kills_it_and_records_cancelled`
//! - `the_token_is_not_visible_to_a_job`
//! - `two_hosts_run_200_jobs_exactly_once_within_their_slots`
//! - `a_killed_hosts_job_runs_again_elsewhere_after_its_lease_expires`
//! - `on_sigterm_the_host_stops_claiming_finishes_what_it_can_and_exits_0`
//! - `a_host_rides_out_a_coordinator_outage_and_registers_again_when_forgotten`

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use skyclaw_api::{EnqueueRequest, JobStatus};
use util::{process_alive, read_pid, wait_until, Cluster};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_command_off_the_allowlist_never_runs() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[]);
    // A program named like an allowed one, but at another path.
    let fake_dir = cluster.path().join("x");
    std::fs::create_dir_all(&fake_dir).unwrap();
    let marker = cluster.path().join("it-ran");
    let fake_bash = fake_dir.join("bash");
    std::fs::write(
        &fake_bash,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &fake_bash,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let fake = fake_bash.to_str().unwrap();

    let ran = cluster.skyclaw(&["enqueue-shell", "--wait", fake, "-c", "true"]);
    assert_eq!(ran.code, Some(126), "{ran:?}");
    assert!(
        ran.stderr.contains(fake) && ran.stderr.contains("not allowed"),
        "{ran:?}"
    );

    let job_id = ran
        .stderr
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("job ")
        .to_string();
    let job = cluster.job(&job_id);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.result.unwrap().exit_code, Some(126));
    assert!(job.error.unwrap().contains(fake));
    assert!(!marker.exists(), "the refused command ran");
}

#[test]
fn a_timeout_kills_the_job_and_its_grandchild_after_the_grace_period() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host(
        "host-a",
        &[
            ("SKYCLAW_KILL_GRACE_MS", "1000"),
            ("SKYCLAW_SANDBOX", "off"),
        ],
    );
    let child_pid = cluster.path().join("child.pid");
    let grandchild_pid = cluster.path().join("grandchild.pid");
    // The grandchild ignores SIGTERM: only the SIGKILL after the grace ends it.
    let script = format!(
        "echo $$ > '{}'; sh -c 'trap \"\" TERM; echo $$ > \"$0\"; exec sleep 30' '{}' & wait",
        child_pid.display(),
        grandchild_pid.display()
    );
    let job_id = cluster.enqueue(&["--timeout-ms", "1000", "sh", "-c", &script]);

    let child = read_pid(&child_pid);
    let grandchild = read_pid(&grandchild_pid);
    assert!(process_alive(child) && process_alive(grandchild));

    let job = cluster.wait_final(&job_id, MINUTE);
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.error.as_deref().unwrap().contains("timed out"),
        "{job:?}"
    );
    let duration = job.result.as_ref().unwrap().duration_ms;
    assert!(
        duration >= 1900,
        "killed before timeout + grace: {duration} ms"
    );
    wait_until(
        "the job's processes to be gone",
        Duration::from_secs(5),
        || (!process_alive(child) && !process_alive(grandchild)).then_some(()),
    );
}

#[test]
fn long_output_is_cut_on_a_character_boundary_and_marked() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[("SKYCLAW_MAX_OUTPUT_BYTES", "11")]);
    // Nine two-byte characters: byte 11 falls inside the sixth.
    let job_id = cluster.enqueue(&["sh", "-c", "printf 'ééééééééé'"]);
    let job = cluster.wait_final(&job_id, MINUTE);
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(
        job.result.unwrap().stdout,
        "ééééé\n[skyclaw: output truncated, 8 bytes dropped]"
    );
}

#[test]
fn cancelling_a_running_job_kills_it_and_records_cancelled() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[("SKYCLAW_SANDBOX", "off")]);
    let pid_file = cluster.path().join("job.pid");
    let script = format!(
        "echo $$ > '{}'; sleep 30; echo not cancelled",
        pid_file.display()
    );
    let job_id = cluster.enqueue(&["sh", "-c", &script]);
    let pid = read_pid(&pid_file);
    assert_eq!(cluster.job(&job_id).status, JobStatus::Leased);

    let ran = cluster.skyclaw(&["jobs", "cancel", &job_id]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let job = cluster.wait_status(&job_id, JobStatus::Cancelled, MINUTE);
    assert!(!job
        .result
        .map(|r| r.stdout)
        .unwrap_or_default()
        .contains("not cancelled"));
    wait_until(
        "the cancelled job's process to be gone",
        Duration::from_secs(5),
        || (!process_alive(pid)).then_some(()),
    );
}

#[test]
fn the_token_is_not_visible_to_a_job() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host(
        "host-a",
        &[
            ("SKYCLAW_ALLOWED_COMMANDS", "env,sh"),
            ("SKYCLAW_TEST_MARKER", "x"),
        ],
    );
    let ran = cluster.skyclaw(&["enqueue-shell", "--wait", "--env", "JOB_VAR=1", "env"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains("JOB_VAR=1"), "{}", ran.stdout);
    assert!(ran.stdout.contains("PATH="), "{}", ran.stdout);
    assert!(!ran.stdout.contains("SKYCLAW_"), "{}", ran.stdout);
    assert!(!ran.stdout.contains(&cluster.token), "{}", ran.stdout);
}

#[test]
fn two_hosts_run_200_jobs_exactly_once_within_their_slots() {
    const JOBS: usize = 200;
    let cluster = Cluster::start(60_000);
    // Jobs share their host's HOME below, which the sandbox would replace.
    let slots = [("SKYCLAW_MAX_PARALLEL", "4"), ("SKYCLAW_SANDBOX", "off")];
    let _hosts = [
        cluster.start_host("host-a", &slots),
        cluster.start_host("host-b", &slots),
    ];
    // Each job counts the jobs running beside it on its host (jobs share
    // their host's HOME) and records its number when done.
    let script = r#"d="$HOME/running"; mkdir -p "$d"; touch "$d/$$"
ls "$d" | wc -l >> "$HOME/peaks"; sleep 0.05; rm "$d/$$"; echo "$1" >> "$HOME/done""#;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = cluster.client();
    let ids: Vec<String> = runtime.block_on(async {
        let mut ids = Vec::new();
        for n in 0..JOBS {
            let mut request = EnqueueRequest::shell(
                "sh",
                vec!["-c".into(), script.into(), "job".into(), n.to_string()],
            );
            request.max_attempts = Some(1);
            ids.push(client.enqueue(&request, None).await.unwrap().id);
        }
        ids
    });

    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
        for id in &ids {
            loop {
                let job = client.job(id).await.unwrap();
                if job.status.is_final() {
                    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
                    assert_eq!(job.attempts, 1, "{job:?}");
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "jobs still running");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let mut runs: BTreeMap<usize, usize> = BTreeMap::new();
    for host in ["host-a", "host-b"] {
        let home = cluster.host_home(host);
        let done = std::fs::read_to_string(home.join("done")).unwrap_or_default();
        assert!(!done.is_empty(), "{host} ran nothing");
        for line in done.lines() {
            *runs.entry(line.parse().unwrap()).or_default() += 1;
        }
        let peaks = std::fs::read_to_string(home.join("peaks")).unwrap();
        let peak = peaks
            .lines()
            .map(|l| l.trim().parse::<usize>().unwrap())
            .max()
            .unwrap();
        assert!(peak <= 4, "{host} ran {peak} jobs at once");
    }
    assert_eq!(runs.len(), JOBS, "some jobs never ran");
    assert!(
        runs.values().all(|&count| count == 1),
        "a job ran twice: {runs:?}"
    );
}

#[test]
fn a_killed_hosts_job_runs_again_elsewhere_after_its_lease_expires() {
    let cluster = Cluster::start(2_000);
    let unsandboxed = [("SKYCLAW_SANDBOX", "off")];
    let host_a = cluster.start_host("host-a", &unsandboxed);
    let starts = cluster.path().join("starts");
    let script = r#"echo "$HOME" >> "$0"; sleep 2; echo finished"#;
    let job_id = cluster.enqueue(&[
        "--max-attempts",
        "3",
        "sh",
        "-c",
        script,
        starts.to_str().unwrap(),
    ]);

    wait_until("the job to start on host-a", MINUTE, || {
        std::fs::read_to_string(&starts)
            .ok()
            .filter(|s| !s.is_empty())
    });
    host_a.signal(libc::SIGKILL);
    drop(host_a);
    let _host_b = cluster.start_host("host-b", &unsandboxed);

    let job = cluster.wait_final(&job_id, MINUTE);
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(job.attempts, 2);
    assert_eq!(job.result.unwrap().stdout, "finished\n");
    let host_b_id = std::fs::read_to_string(cluster.path().join("host-b-state/host-id")).unwrap();
    assert_eq!(job.assigned_host_id.as_deref(), Some(host_b_id.trim()));
    let homes: Vec<String> = std::fs::read_to_string(&starts)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let expected = ["host-a", "host-b"].map(|h| cluster.host_home(h).display().to_string());
    assert_eq!(homes, expected);
}

#[test]
fn on_sigterm_the_host_stops_claiming_finishes_what_it_can_and_exits_0() {
    let cluster = Cluster::start(60_000);
    let mut host = cluster.start_host(
        "host-a",
        &[
            // A free third slot keeps a claim waiting when the signal comes.
            ("SKYCLAW_MAX_PARALLEL", "3"),
            ("SKYCLAW_SHUTDOWN_GRACE_MS", "3000"),
            ("SKYCLAW_KILL_GRACE_MS", "500"),
            ("SKYCLAW_SANDBOX", "off"),
        ],
    );
    let short_pid = cluster.path().join("short.pid");
    let long_pid = cluster.path().join("long.pid");
    let short = format!(
        "echo $$ > '{}'; sleep 1; echo short done",
        short_pid.display()
    );
    let long = format!("echo $$ > '{}'; sleep 30", long_pid.display());
    let short_id = cluster.enqueue(&["sh", "-c", &short]);
    let long_id = cluster.enqueue(&["sh", "-c", &long]);
    read_pid(&short_pid);
    let long_running = read_pid(&long_pid);

    host.signal(libc::SIGTERM);
    let late_id = cluster.enqueue(&["sh", "-c", "echo too late"]);
    let status = host.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", host.log_text());

    let short = cluster.job(&short_id);
    assert_eq!(short.status, JobStatus::Completed, "{short:?}");
    assert_eq!(short.result.unwrap().stdout, "short done\n");
    let long = cluster.job(&long_id);
    assert_eq!(long.status, JobStatus::Failed, "{long:?}");
    assert!(long.error.unwrap().contains("shut down"));
    assert!(!process_alive(long_running));
    assert_eq!(cluster.job(&late_id).status, JobStatus::Queued);
}

#[test]
fn a_host_rides_out_a_coordinator_outage_and_registers_again_when_forgotten() {
    let mut cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[]);
    let first = cluster.enqueue(&["sh", "-c", "echo before"]);
    assert_eq!(
        cluster.wait_final(&first, MINUTE).status,
        JobStatus::Completed
    );

    cluster.replace_with_an_empty_coordinator(60_000);
    let host_id = std::fs::read_to_string(cluster.path().join("host-a-state/host-id")).unwrap();
    wait_until("host-a to register again", MINUTE, || {
        let hosts = cluster.skyclaw(&["hosts", "list"]).stdout;
        hosts.contains(host_id.trim()).then_some(())
    });
    let second = cluster.enqueue(&["sh", "-c", "echo after"]);
    let job = cluster.wait_final(&second, MINUTE);
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result.unwrap().stdout, "after\n");
}
