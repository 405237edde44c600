//! Keeps every process a job starts within reach, even one that leaves the
//! job's process group and session (`setsid`), so that none outlives its
//! job. The daemon and each job's first process (its leader) are child
//! subreapers: a process whose parent dies is adopted by its job's leader
//! while the job runs, and by the daemon once the leader has exited. A
//! child of the daemon that is not a live leader is therefore what an
//! ended job left behind, and [`sweep`] kills it.
//!
//! This holds as long as the daemon's process starts no children of its
//! own other than job leaders, which is the case for `skyclaw host` and
//! `skyclaw dev`.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// The pids of running job leaders, which [`sweep`] leaves alone.
static LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Makes this process adopt the orphans of its descendants. A job
/// leader's child calls it between fork and exec: it is one system call.
pub fn adopt_orphans() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// A job's first process, registered so that [`sweep`] spares it until
/// this is dropped (once its exit status has been collected).
#[derive(Debug)]
pub struct Leader {
    pub child: tokio::process::Child,
    pid: Option<i32>,
}

/// Spawns `command` as a job leader. The registry stays locked from fork
/// to registration so a concurrent sweep never mistakes the new leader
/// for a leftover.
pub fn spawn_leader(command: &mut tokio::process::Command) -> std::io::Result<Leader> {
    let mut leaders = leaders();
    let child = command.spawn()?;
    let pid = child.id().map(|pid| pid as i32);
    if let Some(pid) = pid {
        leaders.insert(pid);
    }
    Ok(Leader { child, pid })
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            leaders().remove(&pid);
        }
    }
}

/// Kills and reaps every child of this process that is not a live job
/// leader, then the children those leave to this process, until none is
/// left. Blocks while they die; returns how many it killed.
pub fn sweep() -> usize {
    let mut killed = 0;
    loop {
        let strays: Vec<i32> = {
            let leaders = leaders();
            let strays: Vec<i32> = children_of(std::process::id() as i32)
                .into_iter()
                .filter(|pid| !leaders.contains(pid))
                .collect();
            // Killed while the registry is locked, so none of them is a
            // leader spawned since the scan.
            for &pid in &strays {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            strays
        };
        if strays.is_empty() {
            return killed;
        }
        for pid in strays {
            // Once it is reaped, its own children are ours: the next round.
            if waitpid(Pid::from_raw(pid), None).is_ok() {
                killed += 1;
            }
        }
    }
}

/// The pids whose parent is `parent`, from `/proc`.
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = parent.to_string();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Format: `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let (_, fields) = stat.rsplit_once(')')?;
            let ppid = fields.split_whitespace().nth(1)?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Locks the registry; its data (a set of pids) stays consistent even if
/// a holder panicked.
fn leaders() -> MutexGuard<'static, BTreeSet<i32>> {
    LEADERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
