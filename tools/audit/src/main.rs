//! `skyclaw-audit`: parses the command line and hands it to
//! `skyclaw_audit::cli`, which prints what it finds and picks the exit
//! status (0 verified, 1 something wrong with the log, 2 unreadable or bad
//! usage).

use std::process::ExitCode;

use clap::Parser;
use skyclaw_audit::cli::{self, Cli};

/// The allocator of the `skyclaw` binary, whose `audit` command this is
/// too: a replay allocates a few times per event, and both tools should
/// measure alike.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => ExitCode::from(runtime.block_on(cli::run(cli))),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::from(skyclaw_audit::EXIT_UNREADABLE)
        }
    }
}
