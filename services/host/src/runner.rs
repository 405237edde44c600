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

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyclaw_api::Payload;
use tokio::sync::watch;

use crate::output::Captured;
use crate::reaper::{self, Leader};
use crate::sandbox::{Confinement, Sandbox, SandboxLevel};
use crate::{HostConfig, Result};

/// Exit code reported for a job the host refused to start, as a shell does
/// for a command it cannot execute.
pub const EXIT_REFUSED: i32 = 126;
/// Exit code reported when the command does not exist, as a shell does.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Host variables a job inherits; everything else it gets from its own `env`.
const INHERITED_VARIABLES: [&str; 3] = ["PATH", "HOME", "LANG"];
/// Used when the host itself has no PATH.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The host's own variables, which a job never sees, in any letter case.
const HOST_VARIABLE_PREFIX: &str = "SKYCLAW_";
/// Variables that make the dynamic loader, a shell or a language runtime
/// load code the job names into whatever program runs, allow-listed or
/// not: a job that sets one is refused. Prefixes end with `_`.
const CODE_LOADING_VARIABLES: [&str; 20] = [
    // The dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …) and glibc.
    "LD_",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCPATH",
    "NLSPATH",
    "MALLOC_TRACE",
    // Shell start-up files, exported functions and traced prompts.
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    // Language runtimes that an allow-listed program may be written in.
    "NODE_OPTIONS",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
];
/// After the group is killed, how long the output pipes may take to close.
/// Only a process that left the group (`setsid`) can hold them longer.
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Why the runner stopped a job before it exited by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It ran past its time limit.
    Timeout,
    /// Someone cancelled it; the coordinator records it `cancelled`.
    Cancelled,
    /// The host no longer holds its lease; its result will not be reported.
    LeaseLost,
    /// No coordinator renewed the lease in time, so it may have run out
    /// and the job been leased again elsewhere; its result will not be
    /// reported.
    LeaseExpired,
    /// The host is shutting down and the job ran past the deadline.
    Shutdown,
}

/// How a job ended, ready to be reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    pub exit_code: Option<i32>,
    /// The signal that ended the command, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub duration: Duration,
    /// Set when the runner stopped the job.
    pub stopped: Option<StopReason>,
}

impl Outcome {
    fn refused(exit_code: Option<i32>, error: String) -> Outcome {
        Outcome {
            success: false,
            exit_code,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error),
            duration: Duration::ZERO,
            stopped: None,
        }
    }
}

/// A command line checked and resolved, ready to spawn.
#[derive(Debug)]
struct Launch {
    /// What the job asked for, for messages.
    command: String,
    program: PathBuf,
    args: Vec<String>,
    /// As the job named it; resolved once its sandbox exists.
    cwd: Option<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

/// Runs jobs under one host's rules. Cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Runner {
    allowed_commands: Vec<String>,
    capabilities: Vec<String>,
    automaton_command: String,
    default_timeout: Duration,
    max_output_bytes: usize,
    kill_grace: Duration,
    /// PATH, HOME and LANG as the host had them when the runner was made.
    inherited_env: Vec<(String, String)>,
    sandbox: Arc<Sandbox>,
}

impl Runner {
    /// Fails when the sandbox settings do not fit this machine (a sandbox
    /// user that does not exist, say).
    pub fn new(config: &HostConfig) -> Result<Runner> {
        let inherited_env = INHERITED_VARIABLES
            .iter()
            .filter_map(|name| {
                let value = std::env::var(name)
                    .ok()
                    .or_else(|| (*name == "PATH").then(|| FALLBACK_PATH.to_string()))?;
                Some((name.to_string(), value))
            })
            .collect();
        Ok(Runner {
            allowed_commands: config.allowed_commands.clone(),
            capabilities: config.capabilities.clone(),
            automaton_command: config.automaton_command.clone(),
            default_timeout: Duration::from_millis(config.timeout_ms),
            max_output_bytes: config.max_output_bytes,
            kill_grace: config.kill_grace(),
            inherited_env,
            sandbox: Arc::new(Sandbox::new(&config.sandbox)?),
        })
    }

    /// How much of the sandbox this host's jobs get.
    pub fn sandbox_level(&self) -> &SandboxLevel {
        self.sandbox.level()
    }

    /// Runs `payload` to its end, or until its time limit or until `stop`
    /// says otherwise. Never fails: every way a job can end is an
    /// [`Outcome`].
    pub async fn run(
        &self,
        payload: &Payload,
        mut stop: watch::Receiver<Option<StopReason>>,
    ) -> Outcome {
        let launch = match self.prepare(payload) {
            Ok(launch) => launch,
            Err(refusal) => return refusal,
        };
        if let Some(reason) = *stop.borrow_and_update() {
            return Outcome {
                stopped: Some(reason),
                ..Outcome::refused(None, stop_message(reason, launch.timeout))
            };
        }
        let mut confinement = match self.sandbox.enabled().then(|| self.sandbox.confine()) {
            None => None,
            Some(Ok(confinement)) => Some(confinement),
            Some(Err(error)) => {
                return Outcome::refused(
                    None,
                    format!("could not set up the job's sandbox: {error}"),
                )
            }
        };
        let started = Instant::now();
        let mut leader = match self.spawn(&launch, confinement.as_mut()) {
            Ok(leader) => leader,
            Err(refusal) => return refusal,
        };
        let child = &mut leader.child;
        // With `process_group(0)` the child leads a new group whose id is its pid.
        let group = child.id().map(|pid| pid as i32);
        let limit = self.max_output_bytes;
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(Captured::read(s, limit)));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(Captured::read(s, limit)));

        let mut stopped = None;
        let status = tokio::select! {
            status = child.wait() => status,
            () = tokio::time::sleep(launch.timeout) => {
                stopped = Some(StopReason::Timeout);
                self.terminate(group, child).await
            }
            reason = stop_requested(&mut stop) => {
                stopped = Some(reason);
                self.terminate(group, child).await
            }
        };
        if let Some(group) = group {
            signal_group(group, libc::SIGKILL);
        }
        // The leader is reaped: what it left (out of its group too) is now
        // the daemon's to kill, which also closes the output pipes it held.
        drop(leader);
        let _ = tokio::task::spawn_blocking(reaper::sweep).await;
        let stdout = drain(stdout).await;
        let stderr = drain(stderr).await;
        let duration = started.elapsed();
        drop(confinement);

        let (exit_code, signal, mut error) = match status {
            Ok(status) => describe_exit(status),
            Err(e) => (None, None, Some(format!("could not wait for the job: {e}"))),
        };
        if let Some(reason) = stopped {
            error = Some(stop_message(reason, launch.timeout));
        }
        Outcome {
            success: stopped.is_none() && exit_code == Some(0),
            exit_code,
            signal,
            stdout,
            stderr,
            error,
            duration,
            stopped,
        }
    }

    /// Checks the payload against the host's rules and resolves what to run.
    fn prepare(&self, payload: &Payload) -> std::result::Result<Launch, Outcome> {
        let refuse = |message: String| Err(Outcome::refused(Some(EXIT_REFUSED), message));
        let (command, args, cwd, env, timeout_ms) = match payload {
            Payload::Shell {
                command,
                args,
                cwd,
                env,
                timeout_ms,
            } => {
                if !self.offers("shell") {
                    return refuse("this host does not offer the \"shell\" capability".into());
                }
                if !self
                    .allowed_commands
                    .iter()
                    .any(|allowed| allowed == command)
                {
                    return refuse(format!(
                        "command {command:?} is not allowed on this host (allowed: {})",
                        self.allowed_commands.join(", ")
                    ));
                }
                (command.clone(), args.clone(), cwd, env, timeout_ms)
            }
            Payload::AutomatonRun {
                args,
                automaton_dir,
                env,
                timeout_ms,
            } => {
                if !self.offers("automaton") {
                    return refuse("this host does not offer the \"automaton\" capability".into());
                }
                // No `args` at all means "run"; an empty list means no
                // arguments, as the enqueuer wrote it.
                let args = args.clone().unwrap_or_else(|| vec!["--run".to_string()]);
                (
                    self.automaton_command.clone(),
                    args,
                    automaton_dir,
                    env,
                    timeout_ms,
                )
            }
        };
        let cwd = cwd.clone();
        let env = self
            .job_env(env)
            .map_err(|message| Outcome::refused(Some(EXIT_REFUSED), message))?;
        let Some(program) = self.resolve(&command) else {
            return Err(Outcome::refused(
                Some(EXIT_NOT_FOUND),
                format!("command {command:?} not found on this host"),
            ));
        };
        let timeout = match timeout_ms {
            Some(ms) if *ms > 0 => Duration::from_millis(*ms),
            _ => self.default_timeout,
        };
        Ok(Launch {
            command,
            program,
            args,
            cwd,
            env,
            timeout,
        })
    }

    fn offers(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The host's PATH, HOME and LANG, then the job's own variables, less
    /// any that would pass for the host's own (`SKYCLAW_*`, any case).
    /// Refuses variables that load code into the program (see
    /// [`CODE_LOADING_VARIABLES`]).
    fn job_env(
        &self,
        job_env: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let mut env: BTreeMap<String, String> = self.inherited_env.iter().cloned().collect();
        for (name, value) in job_env {
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                return Err(format!("environment variable {name:?} is malformed"));
            }
            if let Some(rule) = loads_code(name) {
                return Err(format!(
                    "environment variable {name:?} is refused: it makes the loader, a shell or \
                     a runtime run code of the job's choosing ({rule})"
                ));
            }
            if name
                .get(..HOST_VARIABLE_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(HOST_VARIABLE_PREFIX))
            {
                tracing::warn!(variable = %name, "dropping a SKYCLAW_* variable from a job's environment");
                continue;
            }
            env.insert(name.clone(), value.clone());
        }
        Ok(env.into_iter().collect())
    }

    /// The program file for `command`. A bare name is looked up in the
    /// host's PATH, never the job's, so a job cannot swap in its own `sh`.
    fn resolve(&self, command: &str) -> Option<PathBuf> {
        if command.contains('/') {
            return Some(PathBuf::from(command));
        }
        let path = self
            .inherited_env
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| value.as_str())
            .unwrap_or(FALLBACK_PATH);
        std::env::split_paths(path)
            .map(|dir| dir.join(command))
            .find(|candidate| is_executable(candidate))
    }

    /// Starts the job's first process: in its sandbox when there is one,
    /// adopting its own orphans either way.
    fn spawn(
        &self,
        launch: &Launch,
        confinement: Option<&mut Confinement>,
    ) -> std::result::Result<Leader, Outcome> {
        let refuse = |message: String| Outcome::refused(Some(EXIT_REFUSED), message);
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child_setup = None;
        match confinement {
            Some(confinement) => {
                let dir = confinement.dir().display().to_string();
                // The owner's home and temporary files are out of reach:
                // the job's own directory stands in for both.
                command.envs(launch.env.iter().map(|(k, v)| (k, v)));
                command.envs([("HOME", &dir), ("TMPDIR", &dir)]);
                command.current_dir(
                    confinement
                        .working_dir(launch.cwd.as_deref())
                        .map_err(refuse)?,
                );
                if let Some((uid, gid)) = confinement.user() {
                    command.uid(uid).gid(gid);
                }
                child_setup = confinement.take_child_setup();
            }
            None => {
                command.envs(launch.env.iter().map(|(k, v)| (k, v)));
                if let Some(dir) = &launch.cwd {
                    if !Path::new(dir).is_dir() {
                        return Err(refuse(format!("working directory {dir:?} does not exist")));
                    }
                    command.current_dir(dir);
                }
            }
        }
        // SAFETY: between fork and exec the closure makes system calls only
        // (prctl, setrlimit, landlock_restrict_self); it allocates nothing
        // and touches no lock another thread could hold.
        unsafe {
            command.pre_exec(move || {
                reaper::adopt_orphans()?;
                match &mut child_setup {
                    Some(setup) => setup.apply(),
                    None => Ok(()),
                }
            });
        }
        reaper::spawn_leader(&mut command).map_err(|error| {
            let code = (error.kind() == std::io::ErrorKind::NotFound).then_some(EXIT_NOT_FOUND);
            Outcome::refused(
                code,
                format!("could not start {:?}: {error}", launch.command),
            )
        })
    }

    /// SIGTERM to the whole group; SIGKILL once the grace period is over,
    /// or as soon as the command has exited and the rest of the group with it.
    async fn terminate(
        &self,
        group: Option<i32>,
        child: &mut tokio::process::Child,
    ) -> std::io::Result<ExitStatus> {
        let Some(group) = group else {
            return child.wait().await;
        };
        signal_group(group, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + self.kill_grace;
        let status = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                signal_group(group, libc::SIGKILL);
                return child.wait().await;
            }
        };
        // The command is gone; give the rest of its group what is left of the grace.
        while group_alive(group) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal_group(group, libc::SIGKILL);
        status
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

async fn drain(reader: Option<tokio::task::JoinHandle<Captured>>) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    match tokio::time::timeout(OUTPUT_DRAIN_LIMIT, &mut reader).await {
        Ok(Ok(captured)) => captured.into_text(),
        Ok(Err(_)) => String::new(),
        Err(_) => {
            reader.abort();
            String::from("[skyclaw: output unavailable, a process left the job's group holding it]")
        }
    }
}

fn describe_exit(status: ExitStatus) -> (Option<i32>, Option<i32>, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (Some(code), None, None),
        (None, Some(signal)) => (
            None,
            Some(signal),
            Some(format!(
                "killed by signal {signal} ({})",
                signal_name(signal)
            )),
        ),
        (None, None) => (None, None, Some(format!("ended oddly: {status}"))),
    }
}

fn stop_message(reason: StopReason, timeout: Duration) -> String {
    match reason {
        StopReason::Timeout => format!("timed out after {} ms", timeout.as_millis()),
        StopReason::Cancelled => "cancelled".into(),
        StopReason::LeaseLost => "stopped: this host no longer holds the lease".into(),
        StopReason::LeaseExpired => {
            "stopped: no coordinator renewed the lease before it could run out".into()
        }
        StopReason::Shutdown => "the host shut down before the job finished".into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU, the CPU time limit",
        libc::SIGXFSZ => "SIGXFSZ, the file size limit",
        _ => "signal",
    }
}

fn signal_group(group: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; it
    // touches no memory of ours. ESRCH (the group is gone) is fine.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Whether a process of the group is still alive. Zombies do not count:
/// orphans are reparented to init, and an init that never reaps (as in
/// some containers) would otherwise keep a dead group "alive" for the
/// whole grace period.
fn group_alive(group: i32) -> bool {
    // SAFETY: as above; signal 0 only checks that the group exists.
    if unsafe { libc::kill(-group, 0) } != 0 {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let group = group.to_string();
    entries.flatten().any(|entry| {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Format: `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1);
        pgrp == Some(group.as_str()) && !matches!(state, "Z" | "X")
    })
}

/// The entry of [`CODE_LOADING_VARIABLES`] that `name` falls under.
fn loads_code(name: &str) -> Option<&'static str> {
    CODE_LOADING_VARIABLES.into_iter().find(|rule| {
        if rule.ends_with('_') {
            name.starts_with(rule)
        } else {
            name == *rule
        }
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
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

    fn with_env(mut payload: Payload, name: &str, value: &str) -> Payload {
        if let Payload::Shell { env, .. } = &mut payload {
            env.insert(name.into(), value.into());
        }
        payload
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
        let outcome = runner
            .run(
                &shell("sh", &["-c", "echo out; echo err >&2; exit 3"]),
                never_stopped(),
            )
            .await;
        assert_eq!(outcome.stdout, "out\n");
        assert_eq!(outcome.stderr, "err\n");
        assert_eq!(outcome.exit_code, Some(3));
        assert!(!outcome.success);
        assert_eq!(outcome.error, None);

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
            let outcome = runner.run(&shell(command, &[]), never_stopped()).await;
            assert_eq!(outcome.exit_code, Some(EXIT_REFUSED), "{command}");
            let error = outcome.error.unwrap();
            assert!(error.contains(&format!("{command:?}")), "{error}");
            assert!(error.contains("not allowed"), "{error}");
        }
        assert!(!marker.exists(), "a refused command must never run");

        let allowed = runner_with(|c| c.allowed_commands = vec![path.to_string()]);
        let outcome = allowed.run(&shell(path, &[]), never_stopped()).await;
        assert!(outcome.success, "{outcome:?}");
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
        let outcome = runner.run(&payload, never_stopped()).await;
        let mut names: Vec<&str> = outcome
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
        assert_eq!(names, expected, "{}", outcome.stdout);
        assert!(outcome.stdout.contains("GREETING=hi there"));
        assert!(!outcome.stdout.contains("smuggled"));
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
        let outcome = runner.run(&payload, never_stopped()).await;
        assert!(outcome.success, "{outcome:?}");
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_refused() {
        let runner = runner_with(|_| {});
        let mut payload = shell("sh", &["-c", "true"]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some("/no/such/dir".into());
        }
        let outcome = runner.run(&payload, never_stopped()).await;
        assert!(!outcome.success);
        assert!(outcome.error.unwrap().contains("/no/such/dir"));

        let dir = tempfile::tempdir().unwrap();
        let mut payload = shell("sh", &["-c", "pwd"]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some(dir.path().display().to_string());
        }
        let outcome = runner.run(&payload, never_stopped()).await;
        let expected = dir.path().canonicalize().unwrap();
        assert_eq!(outcome.stdout.trim(), expected.to_str().unwrap());
    }

    #[tokio::test]
    async fn long_output_is_cut_on_a_character_boundary_and_marked() {
        let runner = runner_with(|c| c.max_output_bytes = 11);
        // Nine 2-byte characters: 18 bytes, cut after five of them.
        let outcome = runner
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
            outcome.stdout,
            format!("ééééé{}", crate::output::truncation_marker(8))
        );
        assert!(outcome
            .stderr
            .starts_with("xxxxxxxxxxx\n[skyclaw: output truncated, 69989 bytes dropped]"));
        assert_eq!(outcome.exit_code, Some(0));
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

        let outcome = run.await.unwrap();
        assert_eq!(outcome.stopped, Some(StopReason::Timeout));
        assert!(!outcome.success);
        assert!(outcome.error.unwrap().contains("timed out after 300 ms"));
        assert!(outcome.duration < Duration::from_secs(10));
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
        let outcome = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the job stops well within the grace period")
            .unwrap();
        assert_eq!(outcome.stopped, Some(StopReason::Cancelled));
        assert_eq!(outcome.error.as_deref(), Some("cancelled"));
        assert_eq!(outcome.signal, Some(libc::SIGTERM));
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
        let outcome = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("dead (even unreaped) processes do not hold the group open")
            .unwrap();
        assert_eq!(outcome.stopped, Some(StopReason::Cancelled));
    }

    #[tokio::test]
    async fn what_a_finished_job_left_running_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("left.pid");
        let script = format!("sleep 60 & echo $! > {}", pid_file.display());
        let runner = runner_with(|_| {});
        let outcome = runner
            .run(&shell("sh", &["-c", &script]), never_stopped())
            .await;
        assert!(outcome.success, "{outcome:?}");
        let left = read_pid(&pid_file).await;
        assert!(
            gone_soon(left).await,
            "background process {left} outlived its job"
        );
    }

    #[tokio::test]
    async fn automaton_runs_the_configured_command_with_run_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner_with(|c| c.automaton_command = "echo".into());
        let payload = Payload::AutomatonRun {
            args: None,
            automaton_dir: Some(dir.path().display().to_string()),
            env: BTreeMap::new(),
            timeout_ms: None,
        };
        let outcome = runner.run(&payload, never_stopped()).await;
        assert_eq!(outcome.stdout, "--run\n");

        let no_args = Payload::AutomatonRun {
            args: Some(Vec::new()),
            automaton_dir: None,
            env: BTreeMap::new(),
            timeout_ms: None,
        };
        let outcome = runner.run(&no_args, never_stopped()).await;
        assert_eq!(outcome.stdout, "\n");

        let with_args = Payload::AutomatonRun {
            args: Some(vec!["--once".into(), "x y".into()]),
            automaton_dir: None,
            env: BTreeMap::new(),
            timeout_ms: None,
        };
        let outcome = runner.run(&with_args, never_stopped()).await;
        assert_eq!(outcome.stdout, "--once x y\n");

        let no_automaton = runner_with(|c| c.capabilities = vec!["shell".into()]);
        let outcome = no_automaton.run(&with_args, never_stopped()).await;
        assert_eq!(outcome.exit_code, Some(EXIT_REFUSED));
    }

    #[tokio::test]
    async fn a_missing_program_reports_127() {
        let runner = runner_with(|c| c.allowed_commands = vec!["no-such-program-xyz".into()]);
        let outcome = runner
            .run(&shell("no-such-program-xyz", &[]), never_stopped())
            .await;
        assert_eq!(outcome.exit_code, Some(EXIT_NOT_FOUND));
        assert!(outcome.error.unwrap().contains("no-such-program-xyz"));
    }

    #[tokio::test]
    async fn loader_and_shell_start_up_variables_are_refused_by_name() {
        let runner = runner_with(|c| c.allowed_commands = vec!["echo".into()]);
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_echo%%",
            "NODE_OPTIONS",
        ] {
            let payload = with_env(shell("echo", &["hi"]), name, "/tmp/x");
            let outcome = runner.run(&payload, never_stopped()).await;
            assert_eq!(outcome.exit_code, Some(EXIT_REFUSED), "{name}");
            assert_eq!(outcome.stdout, "", "{name} must not run the command");
            let error = outcome.error.unwrap();
            assert!(
                error.contains(&format!("{name:?}")) && error.contains("refused"),
                "{error}"
            );
        }
        // Names that merely resemble them are the job's business.
        let payload = with_env(shell("echo", &["hi"]), "MY_LD_PRELOAD", "x");
        assert!(runner.run(&payload, never_stopped()).await.success);
    }

    #[tokio::test]
    async fn host_variables_are_dropped_in_any_letter_case() {
        let runner = runner_with(|_| {});
        let payload = with_env(shell("sh", &["-c", "env"]), "skyclaw_Token", "smuggled");
        let outcome = runner.run(&payload, never_stopped()).await;
        assert!(outcome.success, "{outcome:?}");
        assert!(!outcome.stdout.contains("smuggled"), "{}", outcome.stdout);
    }

    #[tokio::test]
    async fn a_process_that_left_the_session_dies_with_its_job_and_keeps_no_output() {
        reaper::adopt_orphans().unwrap();
        let runner = runner_with(|_| {});
        // `setsid` leaves the job's group and session, holding stdout open.
        let outcome = runner
            .run(
                &shell("sh", &["-c", "setsid sleep 1013 & echo $!; echo done"]),
                never_stopped(),
            )
            .await;
        assert!(outcome.success, "{outcome:?}");
        let mut lines = outcome.stdout.lines();
        let escaped: i32 = lines.next().unwrap().parse().unwrap();
        assert_eq!(lines.next(), Some("done"), "{:?}", outcome.stdout);
        assert!(gone_soon(escaped).await, "{escaped} outlived its job");
    }

    #[tokio::test]
    async fn a_sandboxed_job_runs_in_a_fresh_directory_that_is_removed_after() {
        let runner = sandboxed_runner(|_| {});
        let outcome = runner
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
        assert!(outcome.success, "{outcome:?}");
        let lines: Vec<&str> = outcome.stdout.lines().collect();
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
            let outcome = runner.run(&payload, never_stopped()).await;
            assert_eq!(outcome.exit_code, Some(EXIT_REFUSED), "{cwd}");
            assert!(outcome.error.unwrap().contains(cwd));
        }
        let mut payload = shell("sh", &["-c", "pwd"]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some("work/here".into());
        }
        let outcome = runner.run(&payload, never_stopped()).await;
        assert!(outcome.stdout.trim().ends_with("/work/here"), "{outcome:?}");
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
        let outcome = runner
            .run(&shell("sh", &["-c", &script]), never_stopped())
            .await;
        assert!(!outcome.stdout.contains("owner's secret"), "{outcome:?}");
        assert!(outcome.stdout.contains("end"), "{outcome:?}");
        assert!(!owner.path().join("planted").exists());
        assert!(outcome.stderr.contains("Permission denied"), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_sandboxed_job_is_killed_at_its_cpu_limit() {
        let runner = sandboxed_runner(|c| c.sandbox.cpu_seconds = 1);
        let outcome = runner
            .run(
                &shell("sh", &["-c", "while :; do :; done"]),
                never_stopped(),
            )
            .await;
        assert!(!outcome.success);
        assert!(
            matches!(outcome.signal, Some(libc::SIGXCPU | libc::SIGKILL)),
            "{outcome:?}"
        );
        assert!(outcome.duration < Duration::from_secs(30), "{outcome:?}");
    }
}
