//! `skyclaw audit` and `skyclaw log export`: the auditor's own command
//! line (`skyclaw-audit verify` and `skyclaw-audit export`), embedded.

use std::process::ExitCode;

use skyclaw_audit::cli::{run_audit, run_export, AuditArgs, ExportArgs};

#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Write a range of a coordinator's event log to a segment file.
    Export(ExportArgs),
}

/// Exit 0 verified, 1 a problem in the log, 2 the source was unreadable.
pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(run_audit(args).await))
}

pub async fn log(command: LogCommand) -> anyhow::Result<ExitCode> {
    let LogCommand::Export(args) = command;
    Ok(ExitCode::from(run_export(args).await))
}
