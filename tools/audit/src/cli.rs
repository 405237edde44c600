//! The command line, shared by the `skyclaw-audit` binary and the
//! `skyclaw` command: clap argument types and `run_*` functions that print
//! what they find and return the exit status (0 verified, 1 something is
//! wrong with the log, 2 the source could not be read or the usage is
//! wrong). `skyclaw audit …` embeds [`AuditArgs`] and calls [`run_audit`];
//! `skyclaw log export …` embeds [`ExportArgs`] and calls [`run_export`].

use std::fs::File;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use skyclaw_client::ConnectArgs;
use skyclaw_log_format::{ChainHead, Hash32, SegmentWriter};

use crate::finding::Stop;
use crate::options::VerifyOptions;
use crate::report::{EXIT_UNREADABLE, EXIT_VERIFIED, EXIT_VIOLATION};
use crate::verify::{follow, verify, FollowEvent};
use crate::{generate, Error, Source};

/// `skyclaw-audit`: verify a Skyclaw event log without trusting the
/// coordinators that wrote it.
#[derive(Debug, Parser)]
#[command(name = "skyclaw-audit", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a log: framing, versions, the hash chain, the cluster id, and
    /// a replay of every event through the job system's invariants; with a
    /// coordinator, compare the replayed digest with its own.
    Verify(AuditArgs),
    /// Write a range of a coordinator's log to a segment file.
    Export(ExportArgs),
    /// Write a valid synthetic log of N events, for measuring verify speed.
    #[command(hide = true)]
    BenchGenerate(BenchGenerateArgs),
}

/// `skyclaw-audit verify` and `skyclaw audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The log: a coordinator URL, a segment file, a directory of segment
    /// files, or a stopped coordinator's data directory. Default: the
    /// coordinators given by --url or SKYCLAW_COORDINATOR_URL(S).
    #[arg(value_name = "SOURCE")]
    pub source: Option<String>,
    /// A head recorded earlier: the record at SEQ must have hash HASH.
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_pinned_head)]
    pub expect_head: Option<ChainHead>,
    /// Keep tailing a coordinator, printing a line per verified batch;
    /// exits at the first problem.
    #[arg(long)]
    pub follow: bool,
    /// How often --follow asks for new records, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval_ms: u64,
    /// Also check each job's output against the hash its completion
    /// recorded (coordinators and data directories).
    #[arg(long)]
    pub blobs: bool,
    /// Do not compare the replayed digest with the coordinator's or the
    /// data directory's views.
    #[arg(long)]
    pub no_compare: bool,
    /// Records per request to a coordinator (at most 10000).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub page_size: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The log keys a checkpoint needs a majority of (C2SP vkeys, one per
    /// line). Default: the cluster's voters' keys as it lists them.
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Keeps the last checkpoint verified in FILE, and holds the log to
    /// it on the next run: a rewritten log, or a fork, is found.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub remote: ConnectArgs,
}

/// `skyclaw-audit export` and `skyclaw log export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The first record to export. Default: 1.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// The last record to export. Default: the head when the export starts.
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// The segment file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub remote: ConnectArgs,
}

/// `skyclaw-audit bench-generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchGenerateArgs {
    /// How many events (records) to write.
    pub events: u64,
    /// The segment file to write.
    pub output: PathBuf,
    /// The workload's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The cluster id the log is sealed for.
    #[arg(long, default_value = "bench-cluster")]
    pub cluster_id: String,
    /// No host has a key, so no completion carries a receipt to verify.
    #[arg(long)]
    pub no_keys: bool,
}

/// Parses `SEQ:HASH` (the hash as 64 hex digits).
pub fn parse_pinned_head(text: &str) -> Result<ChainHead, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| "expected SEQ:HASH".to_owned())?;
    let seq = seq
        .trim()
        .parse()
        .map_err(|_| format!("{seq:?} is not a seq"))?;
    let hash = Hash32::from_hex(hash.trim())
        .ok_or_else(|| format!("{hash:?} is not a hash (64 hex digits)"))?;
    Ok(ChainHead { seq, hash })
}

/// The vkeys in a `--trust` file: one per line; blank lines and `#`
/// comments are skipped.
fn read_trust(path: &std::path::Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("reading {}: {e}", path.display())))?;
    let keys = skyclaw_log_format::checkpoint::trusted_keys(&text);
    if keys.is_empty() {
        return Err(Error::Usage(format!("{} names no key", path.display())));
    }
    Ok(keys)
}

/// Runs a parsed `skyclaw-audit` command line.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Verify(args) => run_audit(args).await,
        Command::Export(args) => run_export(args).await,
        Command::BenchGenerate(args) => run_bench_generate(&args),
    }
}

/// `verify`: prints the report (or a line per batch with --follow) and
/// returns the exit status.
pub async fn run_audit(args: AuditArgs) -> u8 {
    let source = match &args.source {
        Some(text) => Source::parse(text),
        None => Ok(Source::Coordinator(args.remote.urls())),
    };
    let source = match source {
        Ok(source) => source,
        Err(error) => return unreadable(&args, None, &error),
    };
    let trust = match args.trust.as_deref().map(read_trust).transpose() {
        Ok(trust) => trust,
        Err(error) => return unreadable(&args, None, &error),
    };
    let options = VerifyOptions {
        expect_head: args.expect_head,
        blobs: args.blobs,
        compare: !args.no_compare,
        token: args.remote.token(),
        page_size: args.page_size,
        progress: !args.follow,
        trust,
        state: args.state.clone(),
    };
    let described = source.describe();
    let result = match (&source, args.follow) {
        (Source::Coordinator(urls), true) => {
            let interval = Duration::from_millis(args.interval_ms.max(10));
            follow(urls, &options, interval, |event| {
                print_follow_event(&event, args.json);
                ControlFlow::Continue(())
            })
            .await
        }
        (_, true) => Err(Error::Usage(format!(
            "--follow needs a coordinator URL; {described} does not grow"
        ))),
        (_, false) => verify(source, options).await,
    };
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            report.exit_code()
        }
        Err(error) => unreadable(&args, Some(&described), &error),
    }
}

fn print_follow_event(event: &FollowEvent, json: bool) {
    match (event, json) {
        (FollowEvent::Verified(batch), false) => println!(
            "verified records {} to {}, head {}",
            batch.first_seq, batch.last_seq, batch.head_hash
        ),
        (FollowEvent::Verified(batch), true) => println!(
            "{}",
            serde_json::json!({
                "firstSeq": batch.first_seq,
                "lastSeq": batch.last_seq,
                "headHash": batch.head_hash,
            })
        ),
        (FollowEvent::Unreachable(reason), _) => {
            eprintln!("warning: cannot reach a coordinator, still trying: {reason}")
        }
    }
}

fn unreadable(args: &AuditArgs, source: Option<&str>, error: &Error) -> u8 {
    eprintln!("error: {error}");
    if args.json {
        let source = source.map(str::to_owned).or_else(|| args.source.clone());
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "status": "unreadable",
                "source": source,
                "error": error.to_string(),
            }))
            .expect("JSON values serialize")
        );
    }
    EXIT_UNREADABLE
}

/// `export`: writes the segment and says what it holds.
pub async fn run_export(args: ExportArgs) -> u8 {
    let urls = args.remote.urls();
    let token = args.remote.token();
    let exported =
        crate::export_segment(&urls, token.as_deref(), args.from, args.to, &args.output).await;
    match exported {
        Ok(exported) => {
            println!(
                "exported records {} to {} ({} records) of cluster {} to {}; head {}",
                exported.anchor.next_seq(),
                exported.last_seq,
                exported.records,
                exported.cluster_id,
                args.output.display(),
                exported.head_hash
            );
            EXIT_VERIFIED
        }
        Err(Stop::Finding(finding)) => {
            eprintln!("error: the log does not verify, nothing written: {finding}");
            EXIT_VIOLATION
        }
        Err(Stop::Error(error)) => {
            eprintln!("error: {error}");
            EXIT_UNREADABLE
        }
    }
}

fn run_bench_generate(args: &BenchGenerateArgs) -> u8 {
    let started = Instant::now();
    match write_synthetic(args) {
        Ok(head) => {
            println!(
                "wrote {} events to {} in {:.1} s; head {}:{}",
                args.events,
                args.output.display(),
                started.elapsed().as_secs_f64(),
                head.seq,
                head.hash
            );
            EXIT_VERIFIED
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_UNREADABLE
        }
    }
}

fn write_synthetic(args: &BenchGenerateArgs) -> Result<ChainHead, Error> {
    let path = &args.output;
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let format = |e: skyclaw_log_format::Error| Error::Usage(e.to_string());
    if args.events == 0 {
        return Err(Error::Usage("a log holds at least one event".into()));
    }
    let file = File::create(path).map_err(io)?;
    let genesis = ChainHead::genesis(&args.cluster_id);
    let mut writer = SegmentWriter::new(
        BufWriter::with_capacity(1 << 20, file),
        &args.cluster_id,
        1,
        genesis.hash,
    )
    .map_err(format)?;
    let head = generate::generate(
        &args.cluster_id,
        args.events,
        args.seed,
        !args.no_keys,
        |record| writer.push(&record),
    )
    .map_err(format)?;
    let output = writer.finish().map_err(format)?;
    output
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pinned_heads_parse_as_seq_colon_hash() {
        let hash = "ab".repeat(32);
        let head = parse_pinned_head(&format!("42:{hash}")).unwrap();
        assert_eq!(head.seq, 42);
        assert_eq!(head.hash.to_hex(), hash);
        for bad in ["42", "x:00", &format!("42:{}", "ab".repeat(31)), ""] {
            assert!(parse_pinned_head(bad).is_err(), "{bad}");
        }
    }
}
