//! `skyclaw status`: what one coordinator knows of the cluster and queue.

use std::process::ExitCode;

use crate::connect::ClientArgs;
use crate::table::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let status = args.client.connect()?.status().await?;
    if args.json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let leader = status.leader.as_deref().unwrap_or("none");
    println!("node:      {}", status.node_id);
    println!("leader:    {leader} (term {})", status.term);
    println!("cluster:   {}", status.head.cluster_id);
    println!(
        "log head:  seq {} hash {}",
        status.head.seq, status.head.hash
    );
    println!("queued:    {}", status.queued);
    println!("leased:    {}", status.leased);
    println!("hosts:     {}", status.hosts);
    Ok(ExitCode::SUCCESS)
}
