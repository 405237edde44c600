//! Which job may run on this host, and how, decided without starting
//! anything: the capability and the allow-list (whole strings, no shell),
//! the program found in the host's PATH, the arguments, the environment
//! the job gets (the host's PATH, HOME and LANG and its own variables,
//! never the daemon's, and never one that makes the loader, a shell or a
//! runtime run code the command did not ask for), its working directory
//! and its time limit. A refusal is a [`RunResult`] to report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skyclaw_api::Payload;

use super::process::Spawn;
use super::run_result::{RunResult, EXIT_NOT_FOUND, EXIT_REFUSED};
use crate::sandbox::Confinement;
use crate::HostConfig;

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

/// PATH, HOME and LANG as the host has them now; PATH falls back to
/// [`FALLBACK_PATH`] when the host has none.
pub(super) fn host_env() -> Vec<(String, String)> {
    INHERITED_VARIABLES
        .iter()
        .filter_map(|name| {
            let value = std::env::var(name)
                .ok()
                .or_else(|| (*name == "PATH").then(|| FALLBACK_PATH.to_string()))?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// One host's rules for what a job may run.
#[derive(Clone, Debug)]
pub(super) struct Policy {
    allowed_commands: Vec<String>,
    capabilities: Vec<String>,
    automaton_command: String,
    default_timeout: Duration,
    /// PATH, HOME and LANG as the host had them when the runner was made.
    inherited_env: Vec<(String, String)>,
}

/// A command line checked and resolved, ready to spawn.
#[derive(Debug)]
pub(super) struct Launch {
    /// What the job asked for, for messages.
    pub(super) command: String,
    program: PathBuf,
    args: Vec<String>,
    /// As the job named it; resolved once its sandbox exists.
    cwd: Option<String>,
    env: Vec<(String, String)>,
    pub(super) timeout: Duration,
}

impl Policy {
    /// The rules `config` sets, with `inherited_env` (see [`host_env`]) as
    /// what a job inherits from the host.
    pub(super) fn new(config: &HostConfig, inherited_env: Vec<(String, String)>) -> Policy {
        Policy {
            allowed_commands: config.allowed_commands.clone(),
            capabilities: config.capabilities.clone(),
            automaton_command: config.automaton_command.clone(),
            default_timeout: Duration::from_millis(config.timeout_ms),
            inherited_env,
        }
    }

    /// Checks the payload against the host's rules and resolves what to run.
    pub(super) fn launch(&self, payload: &Payload) -> Result<Launch, RunResult> {
        let refuse = |message: String| Err(RunResult::refused(Some(EXIT_REFUSED), message));
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
            .map_err(|message| RunResult::refused(Some(EXIT_REFUSED), message))?;
        let Some(program) = self.resolve(&command) else {
            return Err(RunResult::refused(
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
}

impl Launch {
    /// Where and as whom the process runs. In a sandbox: in the job's own
    /// directory (or one the job named inside it), which also stands in
    /// for the owner's home and temporary files, under the sandbox user.
    /// Otherwise: in the directory the job named, which must exist.
    pub(super) fn spawn_in(
        &self,
        confinement: Option<&mut Confinement>,
    ) -> Result<Spawn, RunResult> {
        let refuse = |message: String| RunResult::refused(Some(EXIT_REFUSED), message);
        let mut env = self.env.clone();
        let (cwd, user, child_setup) = match confinement {
            Some(confinement) => {
                let dir = confinement.dir().display().to_string();
                env.extend([("HOME".into(), dir.clone()), ("TMPDIR".into(), dir)]);
                let cwd = confinement
                    .working_dir(self.cwd.as_deref())
                    .map_err(refuse)?;
                (
                    Some(cwd),
                    confinement.user(),
                    confinement.take_child_setup(),
                )
            }
            None => {
                if let Some(dir) = &self.cwd {
                    if !Path::new(dir).is_dir() {
                        return Err(refuse(format!("working directory {dir:?} does not exist")));
                    }
                }
                (self.cwd.as_ref().map(PathBuf::from), None, None)
            }
        };
        Ok(Spawn {
            program: self.program.clone(),
            args: self.args.clone(),
            env,
            cwd,
            user,
            child_setup,
        })
    }
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

    const HOST_PATH: &str = "/usr/bin:/bin";

    fn policy_with(change: impl FnOnce(&mut HostConfig)) -> Policy {
        let mut config = HostConfig::default();
        change(&mut config);
        let inherited = vec![
            ("PATH".to_string(), HOST_PATH.to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        Policy::new(&config, inherited)
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

    fn with_env(mut payload: Payload, name: &str, value: &str) -> Payload {
        if let Payload::Shell { env, .. } = &mut payload {
            env.insert(name.into(), value.into());
        }
        payload
    }

    fn automaton(args: Option<&[&str]>) -> Payload {
        Payload::AutomatonRun {
            args: args.map(|args| args.iter().map(|a| a.to_string()).collect()),
            automaton_dir: Some("bots/one".into()),
            env: BTreeMap::new(),
            timeout_ms: None,
        }
    }

    fn refusal(result: Result<Launch, RunResult>) -> (Option<i32>, String) {
        let refused = result.expect_err("refused");
        (refused.exit_code, refused.error.unwrap_or_default())
    }

    #[test]
    fn only_exact_allowlist_entries_pass() {
        let policy = policy_with(|c| c.allowed_commands = vec!["sh".into()]);
        for command in ["python3", "sh ", "SH", "/bin/sh", "/usr/bin/sh"] {
            let (code, error) = refusal(policy.launch(&shell(command, &[])));
            assert_eq!(code, Some(EXIT_REFUSED), "{command}");
            assert!(error.contains(&format!("{command:?}")), "{error}");
            assert!(
                error.contains("not allowed on this host (allowed: sh)"),
                "{error}"
            );
        }
        let launch = policy.launch(&shell("sh", &["-c", "true"])).unwrap();
        assert_eq!(launch.args, ["-c", "true"]);
        assert!(launch.program.ends_with("sh"), "{launch:?}");
    }

    #[test]
    fn each_payload_kind_needs_its_capability() {
        let no_shell = policy_with(|c| c.capabilities = vec!["automaton".into()]);
        let (code, error) = refusal(no_shell.launch(&shell("sh", &[])));
        assert_eq!(code, Some(EXIT_REFUSED));
        assert!(error.contains("\"shell\" capability"), "{error}");

        let no_automaton = policy_with(|c| c.capabilities = vec!["shell".into()]);
        let (code, error) = refusal(no_automaton.launch(&automaton(None)));
        assert_eq!(code, Some(EXIT_REFUSED));
        assert!(error.contains("\"automaton\" capability"), "{error}");
    }

    #[test]
    fn automaton_runs_the_configured_command_with_run_by_default() {
        let policy = policy_with(|c| c.automaton_command = "echo".into());
        let launch = policy.launch(&automaton(None)).unwrap();
        assert!(launch.program.ends_with("echo"), "{launch:?}");
        assert_eq!(launch.command, "echo");
        assert_eq!(launch.args, ["--run"]);
        assert_eq!(launch.cwd.as_deref(), Some("bots/one"));

        let no_args = policy.launch(&automaton(Some(&[]))).unwrap();
        assert!(no_args.args.is_empty(), "an empty list means no arguments");

        let with_args = policy.launch(&automaton(Some(&["--once", "x y"]))).unwrap();
        assert_eq!(with_args.args, ["--once", "x y"]);
    }

    #[test]
    fn the_program_is_found_in_the_hosts_path_not_the_jobs() {
        let policy = policy_with(|_| {});
        let payload = with_env(shell("sh", &[]), "PATH", "/somewhere/of/the/jobs");
        let launch = policy.launch(&payload).unwrap();
        let host_dirs: Vec<PathBuf> = std::env::split_paths(HOST_PATH).collect();
        assert!(
            host_dirs.iter().any(|dir| launch.program.starts_with(dir)),
            "{launch:?}"
        );
        assert!(launch
            .env
            .contains(&("PATH".into(), "/somewhere/of/the/jobs".into())));
    }

    #[test]
    fn a_missing_program_is_127() {
        let policy = policy_with(|c| c.allowed_commands = vec!["no-such-program-xyz".into()]);
        let (code, error) = refusal(policy.launch(&shell("no-such-program-xyz", &[])));
        assert_eq!(code, Some(EXIT_NOT_FOUND));
        assert!(error.contains("no-such-program-xyz"), "{error}");
    }

    #[test]
    fn the_environment_is_the_hosts_few_then_the_jobs_own() {
        let policy = policy_with(|_| {});
        let payload = with_env(shell("sh", &[]), "GREETING", "hi there");
        let payload = with_env(payload, "LANG", "de_DE.UTF-8");
        let launch = policy.launch(&payload).unwrap();
        assert_eq!(
            launch.env,
            [
                ("GREETING".to_string(), "hi there".to_string()),
                ("LANG".to_string(), "de_DE.UTF-8".to_string()),
                ("PATH".to_string(), HOST_PATH.to_string()),
            ]
        );
    }

    #[test]
    fn host_variables_are_dropped_in_any_letter_case() {
        let policy = policy_with(|_| {});
        for name in ["SKYCLAW_TOKEN", "skyclaw_Token", "Skyclaw_x"] {
            let launch = policy
                .launch(&with_env(shell("sh", &[]), name, "smuggled"))
                .unwrap();
            assert!(
                launch.env.iter().all(|(_, value)| value != "smuggled"),
                "{name}: {:?}",
                launch.env
            );
        }
    }

    #[test]
    fn loader_and_shell_start_up_variables_are_refused_by_name() {
        let policy = policy_with(|c| c.allowed_commands = vec!["echo".into()]);
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_echo%%",
            "NODE_OPTIONS",
        ] {
            let payload = with_env(shell("echo", &["hi"]), name, "/tmp/x");
            let (code, error) = refusal(policy.launch(&payload));
            assert_eq!(code, Some(EXIT_REFUSED), "{name}");
            assert!(
                error.contains(&format!("{name:?}")) && error.contains("refused"),
                "{error}"
            );
        }
        // Names that merely resemble them are the job's business.
        let payload = with_env(shell("echo", &["hi"]), "MY_LD_PRELOAD", "x");
        assert!(policy.launch(&payload).is_ok());
    }

    #[test]
    fn malformed_variables_are_refused() {
        let policy = policy_with(|_| {});
        for (name, value) in [("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0y")] {
            let (code, error) = refusal(policy.launch(&with_env(shell("sh", &[]), name, value)));
            assert_eq!(code, Some(EXIT_REFUSED), "{name:?}");
            assert!(error.contains("malformed"), "{error}");
        }
    }

    #[test]
    fn the_time_limit_is_the_jobs_unless_zero_or_absent() {
        let policy = policy_with(|c| c.timeout_ms = 7_000);
        let with_limit = |limit: Option<u64>| {
            let mut payload = shell("sh", &[]);
            if let Payload::Shell { timeout_ms, .. } = &mut payload {
                *timeout_ms = limit;
            }
            policy.launch(&payload).unwrap().timeout
        };
        assert_eq!(with_limit(Some(300)), Duration::from_millis(300));
        assert_eq!(with_limit(Some(0)), Duration::from_secs(7));
        assert_eq!(with_limit(None), Duration::from_secs(7));
    }

    #[test]
    fn outside_a_sandbox_the_named_directory_must_exist() {
        let policy = policy_with(|_| {});
        let mut payload = shell("sh", &[]);
        if let Payload::Shell { cwd, .. } = &mut payload {
            *cwd = Some("/no/such/dir".into());
        }
        let launch = policy.launch(&payload).unwrap();
        let refused = launch.spawn_in(None).expect_err("no such directory");
        assert_eq!(refused.exit_code, Some(EXIT_REFUSED));
        assert!(refused.error.unwrap().contains("/no/such/dir"));

        let launch = policy.launch(&shell("sh", &[])).unwrap();
        let spawn = launch.spawn_in(None).unwrap();
        assert_eq!(spawn.cwd, None);
        assert_eq!(spawn.env, launch.env, "HOME stays the host's");
    }
}
