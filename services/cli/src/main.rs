//! `skyclaw`: one binary for every role. `main` parses the command line,
//! sets up logging and hands over to one module per subcommand; the real
//! work lives in the library crates (coordinator, host, client).
//!
//! Errors print `skyclaw: <message>` and exit 1; usage errors exit 2 (clap);
//! `--wait` exits with the job's own exit code.
//!
//! Layout:
//! - [`connect`]: the coordinator URL and token flags every client command takes
//! - [`signals`]: SIGINT/SIGTERM as a shutdown future
//! - [`logging`]: text or JSON lines on stderr
//! - [`coordinator`], [`dev`], [`host`]: the long-running roles
//! - [`enqueue`], [`jobs`], [`hosts`], [`status`], [`cluster`]: client commands
//! - [`audit`]: `audit` and `log export`, from the auditor's crate
//! - [`table`]: columns and times for people

mod audit;
mod cluster;
mod connect;
mod coordinator;
mod dev;
mod enqueue;
mod host;
mod hosts;
mod jobs;
mod keys;
mod logging;
mod receipt;
mod signals;
mod status;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Skyclaw: lend your machine to run jobs for others, or run jobs on theirs.
#[derive(Debug, Parser)]
#[command(name = "skyclaw", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a coordinator: the HTTP API and the authoritative job record.
    Coordinator(Box<coordinator::Args>),
    /// Run a coordinator and a host in one process, for trying Skyclaw out.
    Dev(Box<dev::Args>),
    /// Run a host daemon that claims and runs jobs.
    Host(Box<host::Args>),
    /// Enqueue a shell job: flags first, then the command and its arguments.
    EnqueueShell(enqueue::ShellArgs),
    /// Enqueue an Automaton run: flags first, then the run's arguments.
    EnqueueAutomaton(enqueue::AutomatonArgs),
    /// List, show, cancel and wait for jobs.
    #[command(subcommand)]
    Jobs(jobs::Command),
    /// List hosts; approve, revoke, enroll them.
    #[command(subcommand)]
    Hosts(hosts::Command),
    /// Issue, list and revoke API keys (enqueuers', auditors', admins').
    #[command(subcommand)]
    Keys(keys::Command),
    /// Prove what ran where: check a job's signed receipt against the
    /// log's signed checkpoints; exit 0 proven, 1 disproven, 2 unreachable.
    #[command(subcommand)]
    Receipt(receipt::Command),
    /// Show a coordinator's node, leader, log head and queue depth.
    Status(status::Args),
    /// Show the coordinators of the cluster; add or remove one.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Verify the event log (chain, framing, invariants) without trusting
    /// the coordinators; exit 0 verified, 1 a problem found, 2 unreadable.
    Audit(skyclaw_audit::cli::AuditArgs),
    /// Export the event log.
    #[command(subcommand)]
    Log(audit::LogCommand),
}

impl Command {
    /// Long-running roles log at `info` (openraft's chatter, and a line
    /// for each request that succeeded, only from `warn`); one-shot commands
    /// only warn, so their output stays clean for scripts. `RUST_LOG`
    /// overrides both.
    fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Coordinator(_) | Command::Dev(_) | Command::Host(_) => {
                "info,openraft=warn,warp::filters::trace=warn"
            }
            _ => "warn",
        }
    }

    /// Only the long-running roles take `--log-format`.
    fn log_format(&self) -> logging::LogFormat {
        match self {
            Command::Coordinator(args) => args.log.log_format,
            Command::Dev(args) => args.log.log_format,
            Command::Host(args) => args.log.log_format,
            _ => logging::LogFormat::Text,
        }
    }
}

/// jemalloc hands freed memory back to the system as it goes. With the C
/// library's allocator a coordinator under load kept about 400 MiB in its
/// per-thread arenas for 10,000 live jobs, most of it freed long before.
/// It takes RocksDB's allocations too (`malloc` itself is jemalloc's), as
/// RocksDB services commonly run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.command.default_log_filter(), cli.command.log_format());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error.into()),
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Coordinator(args) => coordinator::run(*args).await,
        Command::Dev(args) => dev::run(*args).await,
        Command::Host(args) => host::run(*args).await,
        Command::EnqueueShell(args) => enqueue::shell(args).await,
        Command::EnqueueAutomaton(args) => enqueue::automaton(args).await,
        Command::Jobs(command) => jobs::run(command).await,
        Command::Hosts(command) => hosts::run(command).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Receipt(command) => receipt::run(command).await,
        Command::Status(args) => status::run(args).await,
        Command::Cluster(command) => cluster::run(command).await,
        Command::Audit(args) => audit::audit(args).await,
        Command::Log(command) => audit::log(command).await,
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("skyclaw: {error:#}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
