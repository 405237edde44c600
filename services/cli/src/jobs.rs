//! `skyclaw jobs list|show|cancel|wait`, and the waiting that `--wait`
//! shares with `jobs wait`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use skyclaw_api::{Job, JobStatus, JobsPage, Payload};
use skyclaw_client::{Client, ListJobs};

use crate::connect::ClientArgs;
use crate::table::{age, now_ms, print_json, shorten, timestamp, Table};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List jobs, oldest first.
    List(ListArgs),
    /// Show one job, with its output.
    Show(JobArgs),
    /// Cancel a job: a queued one at once, a running one once its host stops it.
    Cancel(JobArgs),
    /// Wait for a job to finish, print its output and exit with its exit code.
    Wait(JobArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only jobs with this status: queued, leased, completed, failed, cancelled.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<JobStatus>,
    /// Jobs per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Start after this job id (the `next` of the previous page).
    #[arg(long)]
    pub after: Option<String>,
    /// Follow the pages to the end.
    #[arg(long)]
    pub all: bool,
    /// Print `{"jobs": […], "next": …}` instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The job id.
    pub id: String,
    /// Print the job record as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(args) => list(args).await,
        Command::Show(args) => {
            let job = args.client.connect()?.job(&args.id).await?;
            if args.json {
                print_json(&job)?;
            } else {
                print!("{}", describe(&job));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel(args) => {
            let job = args.client.connect()?.cancel_job(&args.id).await?;
            if args.json {
                print_json(&job)?;
            } else if job.status == JobStatus::Cancelled {
                println!("{} cancelled", job.id);
            } else if job.status.is_final() {
                println!("{} already {}", job.id, job.status.as_str());
            } else {
                println!("{} cancel requested; its host will stop it", job.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait(args) => {
            let client = args.client.connect()?;
            finish_waiting(&client, &args.id, args.json).await
        }
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let mut filter = ListJobs {
        status: args.status,
        limit: Some(args.limit),
        after: args.after.clone(),
    };
    let mut jobs = Vec::new();
    let next = loop {
        let page = client.list_jobs(&filter).await?;
        jobs.extend(page.jobs);
        match page.next {
            Some(next) if args.all => filter.after = Some(next),
            next => break next,
        }
    };
    if args.json {
        print_json(&JobsPage { jobs, next })?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let mut table = Table::new(&["id", "status", "attempts", "host", "created", "command"]);
    for job in &jobs {
        table.row(vec![
            job.id.clone(),
            job.status.as_str().to_string(),
            format!("{}/{}", job.attempts, job.max_attempts),
            job.assigned_host_id.clone().unwrap_or_else(|| "-".into()),
            age(job.created_at, now),
            shorten(&command_line(&job.payload), 50),
        ]);
    }
    print!("{}", table.render());
    if let Some(next) = next {
        eprintln!("more: --after {next} (or --all)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the job to end, prints its output (or, with `json`, the job)
/// and turns its outcome into this process's exit code.
pub async fn finish_waiting(client: &Client, job_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let job = client
        .wait_for_job(job_id, Duration::from_millis(100))
        .await?;
    if json {
        print_json(&job)?;
    } else {
        if let Some(result) = &job.result {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(result.stdout.as_bytes())?;
            stdout.flush()?;
            eprint!("{}", result.stderr);
        }
        if job.status != JobStatus::Completed {
            let reason = job
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            eprintln!("skyclaw: job {} {}{reason}", job.id, job.status.as_str());
        }
    }
    Ok(exit_code(&job))
}

/// The job's own exit code when it has one; otherwise 0 for a completed
/// job and 1 for any other ending.
fn exit_code(job: &Job) -> ExitCode {
    let code = job.result.as_ref().and_then(|result| result.exit_code);
    match (job.status, code) {
        (JobStatus::Completed, None) => ExitCode::SUCCESS,
        (_, Some(code)) if code != 0 || job.status == JobStatus::Completed => {
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        _ => ExitCode::FAILURE,
    }
}

/// A job for people: its record, then its output.
fn describe(job: &Job) -> String {
    let mut lines = vec![
        ("id", job.id.clone()),
        ("status", job.status.as_str().to_string()),
        ("command", command_line(&job.payload)),
        (
            "attempts",
            format!("{} of {}", job.attempts, job.max_attempts),
        ),
        ("priority", job.priority.to_string()),
        ("created", timestamp(job.created_at)),
        ("updated", timestamp(job.updated_at)),
    ];
    if !job.requirement.required_capabilities.is_empty() {
        lines.push(("requires", job.requirement.required_capabilities.join(", ")));
    }
    if let Some(host) = &job.assigned_host_id {
        lines.push(("host", host.clone()));
    }
    if let Some(epoch) = job.lease_epoch {
        lines.push(("lease epoch", epoch.to_string()));
    }
    if let Some(expires) = job.lease_expires_at {
        lines.push(("lease until", timestamp(expires)));
    }
    if job.cancel_requested {
        lines.push(("cancel", "requested".into()));
    }
    if let Some(result) = &job.result {
        let code = result
            .exit_code
            .map_or_else(|| "none".into(), |c| c.to_string());
        lines.push(("exit code", code));
        lines.push(("duration", format!("{} ms", result.duration_ms)));
        lines.push(("finished", timestamp(result.finished_at)));
    }
    if let Some(error) = &job.error {
        lines.push(("error", error.clone()));
    }
    let width = lines
        .iter()
        .map(|(key, _)| key.len() + 1)
        .max()
        .unwrap_or(0);
    let mut out: String = lines
        .iter()
        .map(|(key, value)| format!("{:<width$}  {value}\n", format!("{key}:")))
        .collect();
    if let Some(result) = &job.result {
        for (name, text) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
            if !text.is_empty() {
                out.push_str(&format!("--- {name}\n{text}"));
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The payload as one line: the command and its arguments, quoted where
/// needed.
fn command_line(payload: &Payload) -> String {
    let (program, args) = match payload {
        Payload::Shell { command, args, .. } => (command.as_str(), args.as_slice()),
        Payload::AutomatonRun { args, .. } => ("[automaton]", args.as_deref().unwrap_or_default()),
    };
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%[]".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn parse_status(text: &str) -> Result<JobStatus, String> {
    JobStatus::parse(text).ok_or_else(|| {
        format!("unknown status {text:?}; expected queued, leased, completed, failed or cancelled")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyclaw_api::{JobResult, Requirement};

    fn job(status: JobStatus, exit_code: Option<i32>) -> Job {
        Job {
            id: "j1".into(),
            created_at: 0,
            updated_at: 0,
            status,
            attempts: 1,
            max_attempts: 3,
            priority: 0,
            lease_expires_at: None,
            lease_epoch: None,
            assigned_host_id: None,
            cancel_requested: false,
            requirement: Requirement::default(),
            payload: Payload::Shell {
                command: "sh".into(),
                args: vec!["-c".into(), "echo 'hi'".into()],
                cwd: None,
                env: Default::default(),
                timeout_ms: None,
            },
            result: exit_code.map(|code| JobResult {
                finished_at: 0,
                duration_ms: 1,
                exit_code: Some(code),
                stdout: String::new(),
                stderr: String::new(),
            }),
            error: None,
        }
    }

    #[test]
    fn exit_codes_follow_the_job() {
        assert_eq!(
            exit_code(&job(JobStatus::Completed, Some(0))),
            ExitCode::SUCCESS
        );
        assert_eq!(
            exit_code(&job(JobStatus::Failed, Some(3))),
            ExitCode::from(3)
        );
        assert_eq!(
            exit_code(&job(JobStatus::Failed, Some(126))),
            ExitCode::from(126)
        );
        assert_eq!(exit_code(&job(JobStatus::Failed, None)), ExitCode::FAILURE);
        assert_eq!(
            exit_code(&job(JobStatus::Cancelled, None)),
            ExitCode::FAILURE
        );
        assert_eq!(
            exit_code(&job(JobStatus::Failed, Some(0))),
            ExitCode::FAILURE
        );
    }

    #[test]
    fn command_lines_quote_what_needs_it() {
        assert_eq!(
            command_line(&job(JobStatus::Queued, None).payload),
            "sh -c 'echo '\\''hi'\\'''"
        );
    }
}
