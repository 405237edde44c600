//! `skyclaw cluster status|add|remove`: who the coordinators are, which one
//! leads, how far behind each is, and changing who belongs.

use std::process::ExitCode;

use crate::connect::ClientArgs;
use crate::table::{print_json, Table};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Members, leader, term, and each member's log head and lag.
    Status(StatusArgs),
    /// Add the coordinator serving at URL: it joins as a learner, catches
    /// up, then becomes a voter. Waits until it is one.
    Add(AddArgs),
    /// Remove a member (every incarnation of that name).
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The new member's node id (its SKYCLAW_COORDINATOR_NODE_ID).
    pub id: String,
    /// Where it serves, as the other members will reach it.
    pub member_url: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The member's node id.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Status(args) => status(args).await,
        Command::Add(args) => {
            let client = args.client.connect()?;
            client.add_member(&args.id, &args.member_url).await?;
            println!("{} ({}) is a voting member", args.id, args.member_url);
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove(args) => {
            args.client.connect()?.remove_member(&args.id).await?;
            println!("{} is no longer a member", args.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let status = args.client.connect()?.cluster().await?;
    if args.json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let leader = status.leader.as_deref().unwrap_or("none");
    println!("answered by: {}", status.node_id);
    println!("leader:      {leader} (term {})", status.term);
    println!("head seq:    {}", status.head_seq);
    let mut table = Table::new(&["node", "url", "role", "head seq", "lag"]);
    for member in &status.members {
        let role = match (status.leader.as_deref() == Some(&member.name), member.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        let unknown = || "unreachable".to_string();
        table.row(vec![
            member.name.clone(),
            member.url.clone(),
            role.to_string(),
            member.head_seq.map_or_else(unknown, |seq| seq.to_string()),
            member.lag.map_or_else(String::new, |lag| lag.to_string()),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
