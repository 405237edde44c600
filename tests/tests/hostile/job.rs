//! A hostile job against a real host: it tries to read the daemon's token,
//! inject code through the environment, outlive itself by leaving its
//! session, read the host's state, write outside its own directory, burn
//! CPU without end, and keep running while its host is cut off.

use std::time::Duration;

use skyclaw_api::{Job, JobStatus};

use crate::util::{process_alive, read_pid, wait_until, Cluster};

const MINUTE: Duration = Duration::from_secs(60);

/// Enqueues a shell job with `flags` and waits for its end.
fn run_job(cluster: &Cluster, flags_and_command: &[&str]) -> Job {
    let id = cluster.enqueue(flags_and_command);
    cluster.wait_final(&id, MINUTE)
}

fn stdout(job: &Job) -> String {
    job.result
        .as_ref()
        .map(|r| r.stdout.clone())
        .unwrap_or_default()
}

#[test]
fn the_host_reports_its_sandbox_at_start_up() {
    let cluster = Cluster::start(60_000);
    let host = cluster.start_host("host-a", &[]);
    wait_until("the host to register", MINUTE, || {
        host.log_text().contains("host registered").then_some(())
    });
    let log = host.log_text();
    assert!(log.contains("sandbox: "), "{log}");
    assert!(
        log.contains("sandbox: landlock+no_new_privs+rlimits")
            || log.contains("(kernel lacks Landlock)"),
        "{log}"
    );

    let off = cluster.start_host("host-b", &[("SKYCLAW_SANDBOX", "off")]);
    wait_until("the second host to register", MINUTE, || {
        off.log_text().contains("host registered").then_some(())
    });
    assert!(
        off.log_text()
            .contains("sandbox: none (turned off by the host's owner)"),
        "{}",
        off.log_text()
    );
}

#[test]
fn a_job_cannot_read_the_daemons_environment() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[("SKYCLAW_ALLOWED_COMMANDS", "echo,sh")]);
    let job = run_job(
        &cluster,
        &[
            "sh",
            "-c",
            r#"tr "\0" "\n" </proc/$PPID/environ; echo read-ended"#,
        ],
    );
    let out = stdout(&job);
    assert!(out.contains("read-ended"), "{job:?}");
    assert!(!out.contains(&cluster.token), "the token leaked: {out}");
    assert!(
        !out.contains("SKYCLAW_"),
        "the daemon's environment leaked: {out}"
    );
}

#[test]
fn loader_and_shell_start_up_variables_are_refused_with_a_clear_error() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[("SKYCLAW_ALLOWED_COMMANDS", "echo,sh")]);
    for variable in ["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV"] {
        let assignment = format!("{variable}=/tmp/injected");
        let job = run_job(&cluster, &["--env", &assignment, "echo", "ran"]);
        assert_eq!(job.status, JobStatus::Failed, "{variable}: {job:?}");
        assert!(!stdout(&job).contains("ran"), "{variable}: {job:?}");
        let error = job.error.unwrap_or_default();
        assert!(
            error.contains(variable) && error.contains("refused"),
            "{variable}: {error}"
        );
    }
}

#[test]
fn a_process_that_leaves_the_session_dies_with_its_job_and_spares_its_output() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[]);
    // The escapee holds the job's stdout open, which used to cost the output.
    let job = run_job(
        &cluster,
        &["sh", "-c", "setsid sleep 1013 & echo $!; echo real output"],
    );
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let out = stdout(&job);
    let mut lines = out.lines();
    let escaped: i32 = lines.next().unwrap().parse().expect("the escapee's pid");
    assert_eq!(lines.next(), Some("real output"), "{out:?}");
    wait_until(
        "the escaped process to be gone",
        Duration::from_secs(5),
        || (!process_alive(escaped)).then_some(()),
    );
}

#[test]
fn a_job_cannot_read_the_hosts_state_directory() {
    let cluster = Cluster::start(60_000);
    let state = cluster.path().join("host-a-state");
    std::fs::create_dir_all(&state).unwrap();
    let secret = state.join("secret");
    std::fs::write(&secret, "state-secret-71d3").unwrap();
    let _host = cluster.start_host("host-a", &[]);
    let script = format!(
        "cat '{}' '{}/host-id' '{}/host.key'; echo read-ended",
        secret.display(),
        state.display(),
        state.display()
    );
    let job = run_job(&cluster, &["sh", "-c", &script]);
    let out = stdout(&job);
    assert!(out.contains("read-ended"), "{job:?}");
    assert!(!out.contains("state-secret-71d3"), "{out}");
    let host_id = std::fs::read_to_string(state.join("host-id")).unwrap();
    assert!(!out.contains(host_id.trim()), "{out}");
    let key = std::fs::read_to_string(state.join("host.key")).unwrap();
    assert!(!out.contains(key.trim()), "{out}");
}

#[test]
fn a_job_cannot_write_outside_its_directory() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[]);
    let planted = cluster.path().join("planted");
    let home_planted = cluster.host_home("host-a").join("planted");
    let script = format!(
        "echo x > '{}'; echo x > '{}'; echo inside > mine && cat mine",
        planted.display(),
        home_planted.display()
    );
    let job = run_job(&cluster, &["sh", "-c", &script]);
    assert_eq!(stdout(&job), "inside\n", "{job:?}");
    assert!(!planted.exists(), "the job wrote beside the host");
    assert!(
        !home_planted.exists(),
        "the job wrote into the owner's home"
    );
}

#[test]
fn a_job_is_killed_at_its_cpu_limit() {
    let cluster = Cluster::start(60_000);
    let _host = cluster.start_host("host-a", &[("SKYCLAW_LIMIT_CPU_SECONDS", "1")]);
    let job = run_job(
        &cluster,
        &["--timeout-ms", "60000", "sh", "-c", "while :; do :; done"],
    );
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let error = job.error.clone().unwrap_or_default();
    assert!(
        error.contains("CPU time limit") || error.contains("SIGKILL"),
        "{job:?}"
    );
    assert!(!error.contains("timed out"), "{job:?}");
    assert!(job.result.unwrap().duration_ms < 30_000);
}

#[test]
fn a_host_cut_off_from_every_coordinator_stops_its_job_before_the_lease_runs_out() {
    let mut cluster = Cluster::start(2_000);
    // Without the sandbox so the job can tell the test its pid.
    let _host = cluster.start_host("host-a", &[("SKYCLAW_SANDBOX", "off")]);
    let pid_file = cluster.path().join("job.pid");
    let script = format!("echo $$ > '{}'; sleep 60", pid_file.display());
    cluster.enqueue(&["sh", "-c", &script]);
    let job = read_pid(&pid_file);

    cluster.coordinator.signal(libc::SIGKILL);
    cluster.coordinator.wait_exit(Duration::from_secs(10));
    // The lease (2 s) could have run out 2 s after the last renewal.
    wait_until(
        "the job to be stopped without a coordinator",
        Duration::from_secs(5),
        || (!process_alive(job)).then_some(()),
    );
}
