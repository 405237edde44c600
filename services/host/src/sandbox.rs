//! The sandbox a stranger's job runs in unless the host's owner turns it
//! off: a fresh working directory of its own, removed when the job ends;
//! Landlock rules that let it read and execute system paths and write only
//! its own directory (so the daemon's state directory and the owner's home
//! are out of reach, and, Landlock being a domain, so are the daemon's
//! memory and signals); `no_new_privs`; resource limits; and, when the
//! owner names one, a dedicated unprivileged user.
//!
//! What the kernel allows is probed once, when the daemon starts, by
//! confining a throwaway thread exactly as a job would be; the result is the
//! host's sandbox level, logged at start-up and sent when it registers.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
    RulesetError, RulesetStatus, Scope, ABI,
};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::SandboxConfig;
use crate::{Error, Result};

/// The newest Landlock ABI whose rights this sandbox was written and tested
/// against; older kernels get what they support of it.
const LANDLOCK_ABI: ABI = ABI::V6;

/// What a job may read and execute, where it exists: the system, not the
/// owner's files. `/etc` is whole because programs need much of it; run
/// jobs under a dedicated user to keep root-only files there unreadable.
///
/// `/proc` is left out: a job running as root could otherwise read the
/// daemon's environment there, which neither the daemon being undumpable
/// nor Landlock's ptrace rule stops on every kernel.
const SYSTEM_READ_PATHS: [&str; 10] = [
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    // Where `/etc/resolv.conf` points on systemd machines.
    "/run/systemd/resolve",
];

/// Devices a job may read and write; nothing else under `/dev`.
const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// How much of the sandbox this host achieves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxLevel {
    /// Jobs run in a fresh directory under Landlock rules.
    pub landlock: bool,
    pub no_new_privs: bool,
    pub rlimits: bool,
    /// The user jobs run as, when it is not the daemon's.
    pub user: Option<String>,
    /// Why a part is missing, for the owner.
    pub note: Option<String>,
}

impl std::fmt::Display for SandboxLevel {
    /// `landlock+no_new_privs+rlimits+user:skyjob`, or `none (…)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.landlock {
            parts.push("landlock".into());
        }
        if self.no_new_privs {
            parts.push("no_new_privs".into());
        }
        if self.rlimits {
            parts.push("rlimits".into());
        }
        if let Some(user) = &self.user {
            parts.push(format!("user:{user}"));
        }
        if parts.is_empty() {
            f.write_str("none")?;
        } else {
            f.write_str(&parts.join("+"))?;
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// One host's sandbox, ready to confine jobs. Built once at start-up.
#[derive(Debug)]
pub struct Sandbox {
    enabled: bool,
    landlock: bool,
    /// The user and group jobs run as, if not the daemon's.
    user: Option<(u32, u32)>,
    /// Each at most the daemon's own hard limit.
    limits: Vec<Limit>,
    read_paths: Vec<PathBuf>,
    level: SandboxLevel,
}

impl Sandbox {
    /// Checks the settings against this machine and probes the kernel.
    pub fn new(config: &SandboxConfig) -> Result<Sandbox> {
        if !config.enabled {
            return Ok(Sandbox {
                enabled: false,
                landlock: false,
                user: None,
                limits: Vec::new(),
                read_paths: Vec::new(),
                level: SandboxLevel {
                    landlock: false,
                    no_new_privs: false,
                    rlimits: false,
                    user: None,
                    note: Some("turned off by the host's owner".into()),
                },
            });
        }
        let user = match &config.user {
            None => None,
            Some(name) => Some(resolve_user(name)?),
        };
        let limits = effective_limits(config)?;
        let mut read_paths: Vec<PathBuf> = SYSTEM_READ_PATHS.iter().map(PathBuf::from).collect();
        read_paths.extend(config.read_paths.iter().cloned());
        let mut sandbox = Sandbox {
            enabled: true,
            landlock: true,
            user,
            limits,
            read_paths,
            level: SandboxLevel {
                landlock: false,
                // Set by every confined child, Landlock or not.
                no_new_privs: true,
                rlimits: true,
                user: config.user.clone(),
                note: None,
            },
        };
        let landlock = sandbox.probe();
        sandbox.landlock = landlock != RulesetStatus::NotEnforced;
        sandbox.level.landlock = sandbox.landlock;
        if !sandbox.landlock {
            sandbox.level.note = Some("kernel lacks Landlock".into());
        } else if landlock == RulesetStatus::PartiallyEnforced {
            sandbox.level.note = Some("older Landlock: some rights not enforced".into());
        }
        Ok(sandbox)
    }

    pub fn level(&self) -> &SandboxLevel {
        &self.level
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Confines a throwaway thread (Landlock and `no_new_privs` bind only
    /// the calling thread) as a job would be, to learn what this kernel
    /// enforces.
    fn probe(&self) -> RulesetStatus {
        let not_enforced = RulesetStatus::NotEnforced;
        let Ok(dir) = tempfile::Builder::new().prefix("skyclaw-probe-").tempdir() else {
            return not_enforced;
        };
        let Ok(ruleset) = self.ruleset(dir.path()) else {
            return not_enforced;
        };
        std::thread::spawn(move || ruleset.restrict_self())
            .join()
            .ok()
            .and_then(|status| status.ok())
            .map_or(not_enforced, |status| status.ruleset)
    }

    /// A fresh directory and the rules for one job, made before it is
    /// spawned: between fork and exec only system calls are safe.
    pub fn confine(&self) -> io::Result<Confinement> {
        let dir = tempfile::Builder::new().prefix("skyclaw-job-").tempdir()?;
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let ruleset = if self.landlock {
            Some(self.ruleset(dir.path()).map_err(io::Error::other)?)
        } else {
            None
        };
        Ok(Confinement {
            dir,
            user: self.user,
            child_setup: Some(ChildSetup {
                ruleset,
                limits: self.limits.clone(),
            }),
        })
    }

    fn ruleset(&self, job_dir: &Path) -> std::result::Result<RulesetCreated, RulesetError> {
        let abi = LANDLOCK_ABI;
        // Paths that do not exist on this machine are skipped; a rule on a
        // file gets only the rights that apply to files.
        Ruleset::default()
            .handle_access(AccessFs::from_all(abi))?
            .scope(Scope::from_all(abi))?
            .create()?
            .add_rules(path_beneath_rules(
                &self.read_paths,
                AccessFs::from_read(abi),
            ))?
            .add_rules(path_beneath_rules(DEVICES, AccessFs::from_file(abi)))?
            .add_rules(path_beneath_rules([job_dir], AccessFs::from_all(abi)))
    }
}

/// One job's sandbox: its directory (removed when this is dropped) and
/// what the child applies to itself before it executes the job.
#[derive(Debug)]
pub struct Confinement {
    dir: tempfile::TempDir,
    user: Option<(u32, u32)>,
    child_setup: Option<ChildSetup>,
}

/// The limits and rules a job's first process applies to itself.
#[derive(Debug)]
pub struct ChildSetup {
    ruleset: Option<RulesetCreated>,
    limits: Vec<Limit>,
}

impl Confinement {
    /// The job's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// Resolves the directory a job asked to run in: relative, inside its
    /// own, created if missing.
    pub fn working_dir(&self, requested: Option<&str>) -> std::result::Result<PathBuf, String> {
        let Some(requested) = requested else {
            return Ok(self.dir().to_path_buf());
        };
        let relative = Path::new(requested);
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "working directory {requested:?} is outside the job's own directory: \
                 this host runs each job in a fresh directory, so cwd must be a relative path \
                 without \"..\""
            ));
        }
        let dir = self.dir().join(relative);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create working directory {requested:?}: {e}"))?;
        if let Some((uid, gid)) = self.user {
            for ancestor in dir.ancestors().take_while(|a| *a != self.dir()) {
                std::os::unix::fs::chown(ancestor, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot hand {requested:?} to the job's user: {e}"))?;
            }
        }
        Ok(dir)
    }

    /// What the job's first process must apply to itself; given once.
    pub fn take_child_setup(&mut self) -> Option<ChildSetup> {
        self.child_setup.take()
    }
}

impl ChildSetup {
    /// Applies the limits and the Landlock rules to the calling process.
    /// Runs in the child between fork and exec: it allocates nothing.
    pub fn apply(&mut self) -> io::Result<()> {
        for &Limit {
            resource,
            soft,
            hard,
        } in &self.limits
        {
            setrlimit(resource, soft, hard).map_err(io::Error::from)?;
        }
        match self.ruleset.take() {
            Some(ruleset) => match ruleset.restrict_self() {
                Ok(_) => Ok(()),
                Err(_) => Err(io::Error::from_raw_os_error(libc::EPERM)),
            },
            None => nix::sys::prctl::set_no_new_privs().map_err(io::Error::from),
        }
    }
}

/// One resource limit as the job's processes get it.
#[derive(Clone, Copy, Debug)]
struct Limit {
    resource: Resource,
    soft: u64,
    hard: u64,
}

/// The configured limits, each lowered to what the daemon may grant; a
/// zero setting means no limit. The hard limit is the soft one (a job may
/// not raise it), except for CPU time: SIGXCPU at the limit, then SIGKILL a
/// second later if that was ignored.
fn effective_limits(config: &SandboxConfig) -> Result<Vec<Limit>> {
    const MIB: u64 = 1024 * 1024;
    let wanted = [
        (Resource::RLIMIT_CPU, config.cpu_seconds),
        (Resource::RLIMIT_AS, config.memory_mb.saturating_mul(MIB)),
        (Resource::RLIMIT_NPROC, config.processes),
        (
            Resource::RLIMIT_FSIZE,
            config.file_size_mb.saturating_mul(MIB),
        ),
        (Resource::RLIMIT_NOFILE, config.open_files),
    ];
    wanted
        .into_iter()
        .filter(|&(_, value)| value > 0)
        .map(|(resource, value)| {
            let (_, most) = getrlimit(resource)
                .map_err(|e| Error::Config(format!("cannot read the limit {resource:?}: {e}")))?;
            let soft = value.min(most);
            let hard = if resource == Resource::RLIMIT_CPU {
                soft.saturating_add(1).min(most)
            } else {
                soft
            };
            Ok(Limit {
                resource,
                soft,
                hard,
            })
        })
        .collect()
}

/// The uid and gid of `name`, which must not be root, for a daemon that
/// can switch to it (root).
fn resolve_user(name: &str) -> Result<(u32, u32)> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| Error::Config(format!("cannot look up sandbox user {name:?}: {e}")))?
        .ok_or_else(|| Error::Config(format!("sandbox user {name:?} does not exist")))?;
    if user.uid.is_root() {
        return Err(Error::Config(format!(
            "sandbox user {name:?} is root; name an unprivileged user"
        )));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Config(format!(
            "running jobs as {name:?} needs the host daemon to run as root"
        )));
    }
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_names_each_part_and_why_one_is_missing() {
        let mut level = SandboxLevel {
            landlock: true,
            no_new_privs: true,
            rlimits: true,
            user: Some("skyjob".into()),
            note: None,
        };
        assert_eq!(
            level.to_string(),
            "landlock+no_new_privs+rlimits+user:skyjob"
        );
        level.landlock = false;
        level.user = None;
        level.note = Some("kernel lacks Landlock".into());
        assert_eq!(
            level.to_string(),
            "no_new_privs+rlimits (kernel lacks Landlock)"
        );
    }

    #[test]
    fn an_owner_can_turn_it_off() {
        let sandbox = Sandbox::new(&SandboxConfig {
            enabled: false,
            ..SandboxConfig::default()
        })
        .unwrap();
        assert!(!sandbox.enabled());
        assert_eq!(
            sandbox.level().to_string(),
            "none (turned off by the host's owner)"
        );
    }

    #[test]
    fn limits_stay_within_the_daemons_own_and_zero_means_none() {
        let (_, most_files) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let limits = effective_limits(&SandboxConfig {
            cpu_seconds: 7,
            memory_mb: 0,
            open_files: u64::MAX,
            ..SandboxConfig::default()
        })
        .unwrap();
        let find = |resource| limits.iter().find(|l| l.resource == resource).copied();
        let cpu = find(Resource::RLIMIT_CPU).unwrap();
        assert_eq!(cpu.soft, 7);
        assert!(
            (7..=8).contains(&cpu.hard),
            "SIGKILL a second after SIGXCPU"
        );
        assert!(find(Resource::RLIMIT_AS).is_none(), "0 sets no limit");
        let files = find(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((files.soft, files.hard), (most_files, most_files));
    }

    #[test]
    fn a_missing_or_root_sandbox_user_is_refused_by_name() {
        for (user, named) in [("no-such-user-4b2e", "does not exist"), ("root", "is root")] {
            let error = Sandbox::new(&SandboxConfig {
                user: Some(user.into()),
                ..SandboxConfig::default()
            })
            .unwrap_err()
            .to_string();
            assert!(error.contains(user) && error.contains(named), "{error}");
        }
    }
}
