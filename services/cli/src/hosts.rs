//! `skyclaw hosts list`.

use std::process::ExitCode;

use skyclaw_api::HostsResponse;

use crate::connect::ClientArgs;
use crate::table::{age, now_ms, print_json, Table};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List registered hosts with their capabilities and leases.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print `{"hosts": […]}` instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::List(args) = command;
    let hosts = args.client.connect()?.hosts().await?;
    if args.json {
        print_json(&HostsResponse { hosts })?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let mut table = Table::new(&["id", "name", "capabilities", "leases", "last seen"]);
    for host in &hosts {
        table.row(vec![
            host.id.clone(),
            host.name.clone(),
            host.capabilities.join(","),
            format!("{}/{}", host.active_leases, host.max_parallel),
            age(host.last_seen_at, now),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
