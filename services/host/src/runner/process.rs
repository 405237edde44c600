//! The mechanics of one job's processes: its first process started without
//! a shell, with nothing of the daemon's environment, in a new process
//! group of its own; signals to the whole group (SIGTERM, then SIGKILL
//! after the grace); waiting for it; and reading its bounded output. What
//! may run, and how, is decided before this (see [`super::policy`]).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::output::Captured;
use crate::reaper::{self, Leader};
use crate::sandbox::ChildSetup;

/// After the group is killed, how long the output pipes may take to close.
/// Only a process that left the group (`setsid`) can hold them longer.
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Everything needed to start a job's first process, as the policy built it.
#[derive(Debug)]
pub(super) struct Spawn {
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    /// The whole environment: nothing else is inherited.
    pub(super) env: Vec<(String, String)>,
    pub(super) cwd: Option<PathBuf>,
    /// The uid and gid to run as, when the sandbox names a user.
    pub(super) user: Option<(u32, u32)>,
    /// What the child applies to itself between fork and exec.
    pub(super) child_setup: Option<ChildSetup>,
}

/// A running job: its leader, its process group and the tasks reading
/// its output.
pub(super) struct ProcessGroup {
    leader: Leader,
    /// The group's id, which is the leader's pid; none once it was reaped.
    group: Option<i32>,
    stdout: Option<JoinHandle<Captured>>,
    stderr: Option<JoinHandle<Captured>>,
}

impl ProcessGroup {
    /// Starts the job's first process, leading a new group and adopting
    /// its own orphans, and starts reading up to `output_limit` bytes of
    /// each of its outputs.
    pub(super) fn spawn(spawn: Spawn, output_limit: usize) -> std::io::Result<ProcessGroup> {
        let mut command = tokio::process::Command::new(&spawn.program);
        command
            .args(&spawn.args)
            .env_clear()
            .envs(spawn.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &spawn.cwd {
            command.current_dir(dir);
        }
        if let Some((uid, gid)) = spawn.user {
            command.uid(uid).gid(gid);
        }
        let mut child_setup = spawn.child_setup;
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
        let mut leader = reaper::spawn_leader(&mut command)?;
        let child = &mut leader.child;
        // With `process_group(0)` the child leads a new group whose id is its pid.
        let group = child.id().map(|pid| pid as i32);
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(Captured::read(s, output_limit)));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(Captured::read(s, output_limit)));
        Ok(ProcessGroup {
            leader,
            group,
            stdout,
            stderr,
        })
    }

    /// Waits for the first process to exit by itself.
    pub(super) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.leader.child.wait().await
    }

    /// SIGTERM to the whole group; SIGKILL once `kill_grace` is over, or as
    /// soon as the command has exited and the rest of the group with it.
    pub(super) async fn terminate(&mut self, kill_grace: Duration) -> std::io::Result<ExitStatus> {
        let child = &mut self.leader.child;
        let Some(group) = self.group else {
            return child.wait().await;
        };
        signal_group(group, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + kill_grace;
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

    /// Once the first process has exited: kills what is left of the group
    /// and what escaped it, and returns the output (stdout, stderr).
    pub(super) async fn finish(self) -> (String, String) {
        if let Some(group) = self.group {
            signal_group(group, libc::SIGKILL);
        }
        // The leader is reaped: what it left (out of its group too) is now
        // the daemon's to kill, which also closes the output pipes it held.
        drop(self.leader);
        let _ = tokio::task::spawn_blocking(reaper::sweep).await;
        let stdout = drain(self.stdout).await;
        let stderr = drain(self.stderr).await;
        (stdout, stderr)
    }
}

async fn drain(reader: Option<JoinHandle<Captured>>) -> String {
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
