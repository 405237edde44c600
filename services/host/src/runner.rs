//! Runs one job as a child process, safely: no shell, only allow-listed
//! commands (compared as whole strings), an environment the runner builds
//! (never the daemon's, and never one that makes the dynamic loader or a
//! shell run code the command did not ask for), the host's sandbox, its
//! own process group so that stopping it stops every process it started,
//! bounded output, and a time limit.
//!
//! A job is over when its command exits. Whatever it left running, in its
//! process group or out of it (see [`crate::reaper`]), is then killed: a
//! job does not get to outlive itself on someone else's machine.
//!
//! [`Runner::run`] ties three parts together: `policy` decides, without
//! starting anything, whether and how a payload runs; `process` starts,
//! signals, waits for and reads the process group; `run_result` turns how
//! it ended into the [`RunResult`] the daemon reports.

mod policy;
mod process;
mod run_result;

use std::sync::Arc;
use std::time::{Duration, Instant};

use skyclaw_api::Payload;
use tokio::sync::watch;

pub use run_result::{RunResult, StopReason, EXIT_NOT_FOUND, EXIT_REFUSED};

use crate::sandbox::{Sandbox, SandboxLevel};
use crate::{HostConfig, Result};
use policy::Policy;
use process::ProcessGroup;

/// Runs jobs under one host's rules. Cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Runner {
    policy: Policy,
    max_output_bytes: usize,
    kill_grace: Duration,
    sandbox: Arc<Sandbox>,
}

impl Runner {
    /// Fails when the sandbox settings do not fit this machine (a sandbox
    /// user that does not exist, say).
    pub fn new(config: &HostConfig) -> Result<Runner> {
        Ok(Runner {
            policy: Policy::new(config, policy::host_env()),
            max_output_bytes: config.max_output_bytes,
            kill_grace: config.kill_grace(),
            sandbox: Arc::new(Sandbox::new(&config.sandbox)?),
        })
    }

    /// How much of the sandbox this host's jobs get.
    pub fn sandbox_level(&self) -> &SandboxLevel {
        self.sandbox.level()
    }

    /// Runs `payload` to its end, or until its time limit or until `stop`
    /// says otherwise. Never fails: every way a job can end is a
    /// [`RunResult`].
    pub async fn run(
        &self,
        payload: &Payload,
        mut stop: watch::Receiver<Option<StopReason>>,
    ) -> RunResult {
        let launch = match self.policy.launch(payload) {
            Ok(launch) => launch,
            Err(refusal) => return refusal,
        };
        if let Some(reason) = *stop.borrow_and_update() {
            return RunResult::stopped_before_start(reason, launch.timeout);
        }
        let mut confinement = match self.sandbox.enabled().then(|| self.sandbox.confine()) {
            None => None,
            Some(Ok(confinement)) => Some(confinement),
            Some(Err(error)) => {
                return RunResult::refused(
                    None,
                    format!("could not set up the job's sandbox: {error}"),
                )
            }
        };
        let started = Instant::now();
        let spawn = match launch.spawn_in(confinement.as_mut()) {
            Ok(spawn) => spawn,
            Err(refusal) => return refusal,
        };
        let mut group = match ProcessGroup::spawn(spawn, self.max_output_bytes) {
            Ok(group) => group,
            Err(error) => return RunResult::not_started(&launch.command, &error),
        };

        let mut stopped = None;
        let status = tokio::select! {
            status = group.wait() => status,
            () = tokio::time::sleep(launch.timeout) => {
                stopped = Some(StopReason::Timeout);
                group.terminate(self.kill_grace).await
            }
            reason = stop_requested(&mut stop) => {
                stopped = Some(reason);
                group.terminate(self.kill_grace).await
            }
        };
        let output = group.finish().await;
        let duration = started.elapsed();
        drop(confinement);
        RunResult::ended(status, stopped, launch.timeout, output, duration)
    }
}

/// Waits until a stop is asked for. A closed channel never asks.
async fn stop_requested(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = *stop.borrow_and_update() {
            return reason;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    /// A runner without the sandbox: these tests are about process
    /// control and use files outside a job's directory to watch it.
    fn runner_with(change: impl FnOnce(&mut HostConfig)) -> Runner {
        let mut config = HostConfig {
            kill_grace_ms: 500,
            ..HostConfig::default()
        };
        config.sandbox.enabled = false;
        change(&mut config);
        Runner::new(&config).unwrap()
    }

    fn sandboxed_runner(change: impl FnOnce(&mut HostConfig)) -> Runner {
        runner_with(|config| {
            config.sandbox.enabled = true;
            change(config);
        })
    }

    fn shell(command: &str, args: &[&str]) -> Payload {
        Payload::Shell {
            command: command.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd: None,
            env: BTreeMap::new(),
            timeout_ms: None,
        }
    }

    fn never_stopped() -> watch::Receiver<Option<StopReason>> {
        watch::channel(None).1
    }

    /// Alive and not a zombie waiting for a parent that does not reap.
    fn process_alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            }
            Err(_) => false,
        }
    }

    /// Whether `pid` is dead within two seconds (a SIGKILL is not instant).
    async fn gone_soon(pid: i32) -> bool {
        for _ in 0..100 {
            if !process_alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn read_pid(path: &Path) -> i32 {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never appeared", path.display());
    }

    #[tokio::test]
    async fn a_plain_command_runs_and_reports_its_output_and_code() {
        let runner = runner_with(|_| {});
        let result = runner
            .run(
                &shell("sh", &["-c", "echo out; echo err >&2; exit 3"]),
                never_stopped(),
            )
            .await;
        assert_eq!(result.stdout, "out\n");
        assert_eq!(result.stderr, "err\n");
        assert_eq!(result.exit_code, Some(3));
        assert!(!result.success);
        assert_eq!(result.error, None);

        let ok = runner
            .run(&shell("sh", &["-c", "true"]), never_stopped())
            .await;
        assert!(ok.success);
    }

    #[tokio::test]
    async fn only_exact_allowlist_entries_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let fake_bash = dir.path().join("bash");
        std::fs::write(
            &fake_bash,
            format!("#!/bin/sh\ntouch {}\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(
            &fake_bash,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let runner = runner_with(|_| {});
        let path = fake_bash.to_str().unwrap();
        for command in [path, "python3", "sh ", "SH", "/bin/sh"] {
            let result = runner.run(&shell(command, &[]), never_stopped()).await;
            assert_eq!(result.exit_code, Some(EXIT_REFUSED), "{command}");
            let error = result.error.unwrap();
            assert!(error.contains(&format!("{command:?}")), "{error}");
            assert!(error.contains("not allowed"), "{error}");
        }
        assert!(!marker.exists(), "a refused command must never run");

        let allowed = runner_with(|c| c.allowed_commands = vec![path.to_string()]);
        let result = allowed.run(&shell(path, &[]), never_stopped()).await;
        assert!(result.success, "{result:?}");
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn the_job_sees_a_minimal_environment_without_host_secrets() {
        // This test process has plenty of variables (cargo's among them);
        // none but PATH, HOME and LANG may reach the child.
        let runner = runner_with(|_| {});
        let mut payload = shell("sh", &["-c", "env"]);
        if let Payload::Shell { env, .. } = &mut payload {
            env.insert("GREETING".into(), "hi there".into());
            env.insert("SKYCLAW_TOKEN".into(), "smuggled".into());
        }
        let result = runner.run(&payload, never_stopped()).await;
        let mut names: Vec<&str> = result
            .stdout
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .collect();
        names.sort_unstable();
        // `sh` itself may add PWD, SHLVL and `_`; nothing else may appear.
        names.retain(|name| !matches!(*name, "PWD" | "SHLVL" | "_" | "OLDPWD"));
        let mut expected = vec!["GREETING", "PATH"];
        expected.extend(
            ["HOME", "LANG"]
                .into_iter()
                .filter(|n| std::env::var(n).is_ok()),
        );
        expected.sort_unstable();
        assert_eq!(names, expected, "{}", result.stdout);
        assert!(result.stdout.contains("GREETING=hi there"));
        assert!(!result.stdout.contains("smuggled"));
    }

    #[tokio::test]
    async fn the_program_is_found_in_the_hosts_path_not_the_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let fake_sh = dir.path().join("sh");
        std::fs::write(&fake_sh, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        std::fs::set_permissions(
            &fake_sh,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let runner = runner_with(|_| {});
        let mut payload = shell("sh", &["-c", "true"]);
        if let Payload::Shell { env, .. } = &mut payload {
            env.insert("PATH".into(), dir.path().display().to_string());
        }
        let result = runner.run(&payload, never_stopped()).await;
        assert!(result.success, "{result:?}");
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_refused() {
        let runner = runner_with(|_| {});
        let mut payload = shell("sh", &["-c", "true"]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some("/no/such/dir".into());
        }
        let result = runner.run(&payload, never_stopped()).await;
        assert!(!result.success);
        assert!(result.error.unwrap().contains("/no/such/dir"));

        let dir = tempfile::tempdir().unwrap();
        let mut payload = shell("sh", &["-c", "pwd"]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some(dir.path().display().to_string());
        }
        let result = runner.run(&payload, never_stopped()).await;
        let expected = dir.path().canonicalize().unwrap();
        assert_eq!(result.stdout.trim(), expected.to_str().unwrap());
    }

    #[tokio::test]
    async fn long_output_is_cut_on_a_character_boundary_and_marked() {
        let runner = runner_with(|c| c.max_output_bytes = 11);
        // Nine 2-byte characters: 18 bytes, cut after five of them.
        let result = runner
            .run(
                &shell(
                    "sh",
                    &[
                        "-c",
                        "printf 'ééééééééé'; printf 'x%.0s' $(seq 1 70000) >&2",
                    ],
                ),
                never_stopped(),
            )
            .await;
        assert_eq!(
            result.stdout,
            format!("ééééé{}", crate::output::truncation_marker(8))
        );
        assert!(result
            .stderr
            .starts_with("xxxxxxxxxxx\n[skyclaw: output truncated, 69989 bytes dropped]"));
        assert_eq!(result.exit_code, Some(0));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_including_a_grandchild_ignoring_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let child_pid = dir.path().join("child.pid");
        let grandchild_pid = dir.path().join("grandchild.pid");
        let script = format!(
            "echo $$ > {child}; sh -c 'trap \"\" TERM; echo $$ > {grandchild}; exec sleep 60' & wait",
            child = child_pid.display(),
            grandchild = grandchild_pid.display(),
        );
        let runner = runner_with(|c| c.kill_grace_ms = 300);
        let mut payload = shell("sh", &["-c", &script]);
        if let Payload::Shell { timeout_ms, .. } = &mut payload {
            *timeout_ms = Some(300);
        }
        let run = tokio::spawn(async move { runner.run(&payload, never_stopped()).await });
        let child = read_pid(&child_pid).await;
        let grandchild = read_pid(&grandchild_pid).await;
        assert!(process_alive(child) && process_alive(grandchild));

        let result = run.await.unwrap();
        assert_eq!(result.stopped, Some(StopReason::Timeout));
        assert!(!result.success);
        assert!(result.error.unwrap().contains("timed out after 300 ms"));
        assert!(result.duration < Duration::from_secs(10));
        assert!(gone_soon(child).await, "child {child} survived");
        assert!(
            gone_soon(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn a_stop_request_ends_the_job_at_once_with_its_reason() {
        let runner = runner_with(|_| {});
        let (stop, stop_rx) = watch::channel(None);
        let run =
            tokio::spawn(
                async move { runner.run(&shell("sh", &["-c", "sleep 60"]), stop_rx).await },
            );
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(Some(StopReason::Cancelled)).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the job stops well within the grace period")
            .unwrap();
        assert_eq!(result.stopped, Some(StopReason::Cancelled));
        assert_eq!(result.error.as_deref(), Some("cancelled"));
        assert_eq!(result.signal, Some(libc::SIGTERM));
    }

    #[tokio::test]
    async fn a_group_that_obeys_sigterm_does_not_wait_out_the_grace() {
        let runner = runner_with(|c| c.kill_grace_ms = 20_000);
        let (stop, stop_rx) = watch::channel(None);
        let run = tokio::spawn(async move {
            runner
                .run(&shell("sh", &["-c", "sleep 60 & sleep 60 & wait"]), stop_rx)
                .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(Some(StopReason::Cancelled)).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("dead (even unreaped) processes do not hold the group open")
            .unwrap();
        assert_eq!(result.stopped, Some(StopReason::Cancelled));
    }

    #[tokio::test]
    async fn what_a_finished_job_left_running_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("left.pid");
        let script = format!("sleep 60 & echo $! > {}", pid_file.display());
        let runner = runner_with(|_| {});
        let result = runner
            .run(&shell("sh", &["-c", &script]), never_stopped())
            .await;
        assert!(result.success, "{result:?}");
        let left = read_pid(&pid_file).await;
        assert!(
            gone_soon(left).await,
            "background process {left} outlived its job"
        );
    }

    #[tokio::test]
    async fn a_process_that_left_the_session_dies_with_its_job_and_keeps_no_output() {
        crate::reaper::adopt_orphans().unwrap();
        let runner = runner_with(|_| {});
        // `setsid` leaves the job's group and session, holding stdout open.
        let result = runner
            .run(
                &shell("sh", &["-c", "setsid sleep 1013 & echo $!; echo done"]),
                never_stopped(),
            )
            .await;
        assert!(result.success, "{result:?}");
        let mut lines = result.stdout.lines();
        let escaped: i32 = lines.next().unwrap().parse().unwrap();
        assert_eq!(lines.next(), Some("done"), "{:?}", result.stdout);
        assert!(gone_soon(escaped).await, "{escaped} outlived its job");
    }

    #[tokio::test]
    async fn a_sandboxed_job_runs_in_a_fresh_directory_that_is_removed_after() {
        let runner = sandboxed_runner(|_| {});
        let result = runner
            .run(
                &shell(
                    "sh",
                    &[
                        "-c",
                        "pwd; echo kept > mine; cat mine; echo $HOME; ls -A | wc -l",
                    ],
                ),
                never_stopped(),
            )
            .await;
        assert!(result.success, "{result:?}");
        let lines: Vec<&str> = result.stdout.lines().collect();
        let dir = Path::new(lines[0]);
        assert_eq!(lines[1], "kept");
        assert_eq!(Path::new(lines[2]), dir, "HOME is the job's directory");
        assert_eq!(lines[3].trim(), "1", "nothing in it but what the job made");
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }

    #[tokio::test]
    async fn a_sandboxed_job_cannot_leave_its_directory_by_cwd() {
        let runner = sandboxed_runner(|_| {});
        for cwd in ["/tmp", "../x", "a/../../b"] {
            let mut payload = shell("sh", &["-c", "pwd"]);
            if let Payload::Shell { cwd: dir, .. } = &mut payload {
                *dir = Some(cwd.into());
            }
            let result = runner.run(&payload, never_stopped()).await;
            assert_eq!(result.exit_code, Some(EXIT_REFUSED), "{cwd}");
            assert!(result.error.unwrap().contains(cwd));
        }
        let mut payload = shell("sh", &["-c", "pwd"]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some("work/here".into());
        }
        let result = runner.run(&payload, never_stopped()).await;
        assert!(result.stdout.trim().ends_with("/work/here"), "{result:?}");
    }

    #[tokio::test]
    async fn a_sandboxed_job_reads_and_writes_nothing_of_the_owners() {
        let runner = sandboxed_runner(|_| {});
        if !runner.sandbox_level().landlock {
            eprintln!("skipped: this kernel lacks Landlock");
            return;
        }
        let owner = tempfile::tempdir().unwrap();
        let secret = owner.path().join("secret");
        std::fs::write(&secret, "owner's secret").unwrap();
        let script = format!(
            "cat '{secret}'; echo x > '{dir}/planted'; echo x > /tmp/skyclaw-planted-$$; echo end",
            secret = secret.display(),
            dir = owner.path().display(),
        );
        let result = runner
            .run(&shell("sh", &["-c", &script]), never_stopped())
            .await;
        assert!(!result.stdout.contains("owner's secret"), "{result:?}");
        assert!(result.stdout.contains("end"), "{result:?}");
        assert!(!owner.path().join("planted").exists());
        assert!(result.stderr.contains("Permission denied"), "{result:?}");
    }

    #[tokio::test]
    async fn a_sandboxed_job_is_killed_at_its_cpu_limit() {
        let runner = sandboxed_runner(|c| c.sandbox.cpu_seconds = 1);
        let result = runner
            .run(
                &shell("sh", &["-c", "while :; do :; done"]),
                never_stopped(),
            )
            .await;
        assert!(!result.success);
        assert!(
            matches!(result.signal, Some(libc::SIGXCPU | libc::SIGKILL)),
            "{result:?}"
        );
        assert!(result.duration < Duration::from_secs(30), "{result:?}");
    }
}
