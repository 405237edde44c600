//! `skyclaw enqueue-shell` and `skyclaw enqueue-automaton`: flags first;
//! from the command (or the first run argument) on, every word passes
//! through to the job unchanged, even ones that look like flags.

use std::collections::BTreeMap;
use std::process::ExitCode;

use skyclaw_api::{EnqueueRequest, Payload, Requirement};

use crate::connect::ClientArgs;
use crate::jobs::finish_waiting;

/// Flags both kinds of job take.
#[derive(Debug, clap::Args)]
pub struct JobFlags {
    /// Higher runs first; equal priorities run oldest first.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Attempts before the job fails for good [coordinator default: 3].
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Time limit of the job, in ms [host default: 300000].
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// A capability the host must offer (repeatable).
    #[arg(long = "capability", value_name = "NAME")]
    pub capabilities: Vec<String>,
    /// An environment variable for the job (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Working directory of the job (the Automaton directory for automaton runs).
    #[arg(long, alias = "automaton-dir")]
    pub cwd: Option<String>,
    /// Makes the enqueue safe to repeat: the same key and job give the same job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait for the job, print its output and exit with its exit code.
    #[arg(long)]
    pub wait: bool,
    /// Print the job as JSON instead of its id (with --wait, the finished job).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub flags: JobFlags,
    /// The command and its arguments, passed as they are (no shell).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct AutomatonArgs {
    #[command(flatten)]
    pub flags: JobFlags,
    /// Arguments of the run, passed as they are [default: --run].
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

pub async fn shell(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let mut words = args.command.into_iter();
    let command = words.next().unwrap_or_default();
    let payload = Payload::Shell {
        command,
        args: words.collect(),
        cwd: args.flags.cwd.clone(),
        env: env_map(&args.flags.env),
        timeout_ms: args.flags.timeout_ms,
    };
    enqueue(args.flags, payload, "shell").await
}

pub async fn automaton(args: AutomatonArgs) -> anyhow::Result<ExitCode> {
    let payload = Payload::AutomatonRun {
        args: (!args.args.is_empty()).then_some(args.args),
        automaton_dir: args.flags.cwd.clone(),
        env: env_map(&args.flags.env),
        timeout_ms: args.flags.timeout_ms,
    };
    enqueue(args.flags, payload, "automaton").await
}

async fn enqueue(
    flags: JobFlags,
    payload: Payload,
    kind_capability: &str,
) -> anyhow::Result<ExitCode> {
    let client = flags.client.connect()?;
    let request = EnqueueRequest {
        payload,
        requirement: Some(Requirement {
            required_capabilities: required_capabilities(kind_capability, &flags.capabilities),
        }),
        priority: flags.priority,
        max_attempts: flags.max_attempts,
    };
    let job = client
        .enqueue(&request, flags.idempotency_key.as_deref())
        .await?;
    if !flags.wait {
        if flags.json {
            crate::table::print_json(&job)?;
        } else {
            println!("{}", job.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !flags.json {
        eprintln!("job {}", job.id);
    }
    finish_waiting(&client, &job.id, flags.json).await
}

/// A job needs its kind's capability (`shell`, `automaton`) on top of
/// those asked for, each once.
fn required_capabilities(kind_capability: &str, asked: &[String]) -> Vec<String> {
    let mut all = vec![kind_capability.to_string()];
    for capability in asked {
        let capability = capability.trim();
        if !capability.is_empty() && !all.iter().any(|c| c == capability) {
            all.push(capability.to_string());
        }
    }
    all
}

fn env_map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Shell {
        #[command(flatten)]
        args: ShellArgs,
    }

    #[derive(Debug, Parser)]
    struct Automaton {
        #[command(flatten)]
        args: AutomatonArgs,
    }

    #[test]
    fn everything_from_the_command_on_passes_through() {
        let parsed = Shell::try_parse_from([
            "enqueue-shell",
            "--wait",
            "--env",
            "A=b=c",
            "sh",
            "-c",
            "echo hi",
            "--wait",
            "--",
            "-x",
        ])
        .unwrap()
        .args;
        assert!(parsed.flags.wait);
        assert_eq!(parsed.flags.env, [("A".to_string(), "b=c".to_string())]);
        assert_eq!(
            parsed.command,
            ["sh", "-c", "echo hi", "--wait", "--", "-x"]
        );
    }

    #[test]
    fn a_double_dash_ends_the_flags() {
        let parsed = Shell::try_parse_from(["enqueue-shell", "--", "--odd-name", "--help"])
            .unwrap()
            .args;
        assert_eq!(parsed.command, ["--odd-name", "--help"]);
    }

    #[test]
    fn automaton_arguments_pass_through_after_the_flags() {
        let parsed =
            Automaton::try_parse_from(["enqueue-automaton", "--cwd", "/a", "--once", "-v"])
                .unwrap()
                .args;
        assert_eq!(parsed.flags.cwd.as_deref(), Some("/a"));
        assert_eq!(parsed.args, ["--once", "-v"]);
        let bare = Automaton::try_parse_from(["enqueue-automaton", "--wait"])
            .unwrap()
            .args;
        assert!(bare.flags.wait && bare.args.is_empty());
    }

    #[test]
    fn a_shell_job_needs_a_command_and_env_needs_an_equals_sign() {
        assert!(Shell::try_parse_from(["enqueue-shell", "--wait"]).is_err());
        assert!(Shell::try_parse_from(["enqueue-shell", "--env", "NOPE", "sh"]).is_err());
    }

    #[test]
    fn the_kind_capability_comes_first_and_once() {
        let asked = ["gpu".to_string(), "shell".to_string(), " ".to_string()];
        assert_eq!(required_capabilities("shell", &asked), ["shell", "gpu"]);
    }
}
