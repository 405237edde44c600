//! `skyclaw hosts`: list them, approve or revoke one, issue an enrollment
//! key.

use std::process::ExitCode;

use skyclaw_api::{HostResponse, HostsResponse, IssueKeyRequest};

use crate::connect::ClientArgs;
use crate::table::{age, now_ms, print_json, Table};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List registered hosts with their state, identity, capabilities and leases.
    List(ListArgs),
    /// Let a pending host take work.
    Approve(HostArgs),
    /// Shut a host out: its leases end (their jobs are queued again) and
    /// its requests are refused from now on.
    Revoke(HostArgs),
    /// Issue an enrollment key: hosts that present it (SKYCLAW_ENROLL_KEY)
    /// are approved as they register.
    EnrollToken(EnrollArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print `{"hosts": […]}` instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// The host's id.
    pub id: String,
    /// Print `{"host": …}` instead of a line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// How long the key is good for: `90s`, `30m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = crate::keys::duration_ms)]
    pub ttl: u64,
    /// How many hosts it may approve.
    #[arg(long, default_value_t = 1)]
    pub uses: u32,
    /// Print the key as JSON (`{"key": …, "secret": …}`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(args) => list(args).await,
        Command::Approve(args) => {
            let host = args.client.connect()?.approve_host(&args.id).await?;
            show(args.json, host)
        }
        Command::Revoke(args) => {
            let host = args.client.connect()?.revoke_host(&args.id).await?;
            show(args.json, host)
        }
        Command::EnrollToken(args) => {
            let request = IssueKeyRequest {
                role: "enroll".into(),
                ttl_ms: Some(args.ttl),
                uses: Some(args.uses),
                ..IssueKeyRequest::default()
            };
            let issued = args.client.connect()?.issue_key(&request).await?;
            crate::keys::show_issued(args.json, &issued)
        }
    }
}

fn show(json: bool, host: skyclaw_api::Host) -> anyhow::Result<ExitCode> {
    if json {
        print_json(&HostResponse {
            host,
            session: None,
            session_expires_at: None,
        })?;
    } else {
        println!("host {} is {}", host.id, host.access);
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let hosts = args.client.connect()?.hosts().await?;
    if args.json {
        print_json(&HostsResponse { hosts })?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let mut table = Table::new(&[
        "id",
        "name",
        "state",
        "key",
        "capabilities",
        "leases",
        "last seen",
    ]);
    for host in &hosts {
        table.row(vec![
            host.id.clone(),
            host.name.clone(),
            host.access.clone(),
            host.public_key.as_deref().map_or_else(
                || "none".to_string(),
                |key| format!("{}…", &key[..8.min(key.len())]),
            ),
            host.capabilities.join(","),
            format!("{}/{}", host.active_leases, host.max_parallel),
            age(host.last_seen_at, now),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
