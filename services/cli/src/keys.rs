//! `skyclaw keys`: issue, list and revoke API keys.

use std::process::ExitCode;

use skyclaw_api::{IssueKeyRequest, IssuedKey, KeyResponse, KeysResponse};

use crate::connect::ClientArgs;
use crate::table::{print_json, Table};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Issue a key; its secret is printed this once.
    Create(CreateArgs),
    /// List keys (never their secrets).
    List(ListArgs),
    /// Revoke a key: it is refused from now on.
    Revoke(RevokeArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// `enqueuer`, `auditor`, `admin` or `enroll`.
    #[arg(long)]
    pub role: String,
    /// An enqueuer's account: its jobs are the only ones the key reaches.
    #[arg(long)]
    pub account: Option<String>,
    /// An enqueuer's scopes, comma-separated [default: enqueue,read,cancel].
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// Refused after this long: `90s`, `30m`, `1h`, `7d` [default: never].
    #[arg(long, value_parser = duration_ms)]
    pub ttl: Option<u64>,
    /// Print `{"key": …, "secret": …}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print `{"keys": […]}` instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The key's id (`key-…`), as `skyclaw keys list` shows it.
    pub id: String,
    /// Print `{"key": …}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create(args) => {
            let request = IssueKeyRequest {
                role: args.role,
                account: args.account,
                scopes: args.scopes,
                ttl_ms: args.ttl,
                uses: None,
            };
            let issued = args.client.connect()?.issue_key(&request).await?;
            show_issued(args.json, &issued)
        }
        Command::List(args) => {
            let keys = args.client.connect()?.keys().await?;
            if args.json {
                print_json(&KeysResponse { keys })?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["id", "role", "account", "scopes", "state"]);
            for key in &keys {
                let state = match (key.revoked_at, key.uses) {
                    (Some(_), _) => "revoked".to_string(),
                    (None, Some(uses)) => format!("{uses} uses left"),
                    (None, None) => "live".to_string(),
                };
                table.row(vec![
                    key.id.clone(),
                    key.role.clone(),
                    key.account.clone().unwrap_or_default(),
                    key.scopes.join(","),
                    state,
                ]);
            }
            print!("{}", table.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke(args) => {
            let key = args.client.connect()?.revoke_key(&args.id).await?;
            if args.json {
                print_json(&KeyResponse { key })?;
            } else {
                println!("key {} is revoked", key.id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a key just issued: its secret, this one time.
pub fn show_issued(json: bool, issued: &IssuedKey) -> anyhow::Result<ExitCode> {
    if json {
        print_json(issued)?;
    } else {
        println!("{}", issued.secret);
        eprintln!(
            "key {} ({}): the secret above is shown once; keep it",
            issued.key.id, issued.key.role
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration such as `90s`, `30m`, `1h` or `7d`, in ms.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, like 30m"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m, h or d")),
    };
    number
        .checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("{text:?} is not a usable duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_ms("90s"), Ok(90_000));
        assert_eq!(duration_ms("1h"), Ok(3_600_000));
        assert_eq!(duration_ms("7d"), Ok(604_800_000));
        assert!(duration_ms("1w").is_err());
        assert!(duration_ms("h").is_err());
        assert!(duration_ms("0s").is_err());
    }
}
