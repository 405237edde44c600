//! `skyclaw log export`: copies a range of a coordinator's log into a
//! segment file. Pages are verified as they arrive (the chain, not the
//! invariants: an export of a broken log is evidence worth keeping) and
//! written through a segment writer, which verifies again; the file
//! appears under its name only once complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use skyclaw_log_format::{ChainHead, Hash32, Record, SegmentWriter};

use crate::finding::{classify, Finding, FindingKind, Stop};
use crate::options::VerifyOptions;
use crate::pass::Pass;
use crate::source::remote::{self, Remote};
use crate::Error;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub cluster_id: String,
    /// The head the segment continues (the genesis head from record 1).
    pub anchor: ChainHead,
    pub last_seq: u64,
    pub head_hash: Hash32,
    pub records: u64,
}

/// Writes records `from` (default 1) to `to` (default: the head when the
/// export starts) of the coordinators' log to `path` as one segment.
pub async fn export_segment(
    urls: &[String],
    token: Option<&str>,
    from: Option<u64>,
    to: Option<u64>,
    path: &Path,
) -> Result<Exported, Stop> {
    let mut remote = Remote::new(urls, token)?;
    let head = remote.head().await?;
    let from = from.unwrap_or(1).max(1);
    let to = to.unwrap_or(head.seq).min(head.seq);
    if from > to {
        return Err(Error::Usage(format!(
            "nothing to export: the log holds records 1 to {}, and the range asked for is \
             {from} to {to}",
            head.seq
        ))
        .into());
    }
    let partial = partial_path(path);
    let file = File::create(&partial)
        .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
    let written = copy(&mut remote, from, to, BufWriter::new(file)).await;
    let finished = written.and_then(|(exported, output)| {
        let file = output
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", partial.display()), e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
        std::fs::rename(&partial, path)
            .map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
        Ok(exported)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    finished
}

async fn copy<W: Write + Send>(
    remote: &mut Remote,
    from: u64,
    to: u64,
    output: W,
) -> Result<(Exported, W), Stop> {
    let options = VerifyOptions {
        compare: false,
        ..VerifyOptions::default()
    };
    let mut output = Some(output);
    let mut writer: Option<SegmentWriter<W>> = None;
    let name = remote.url();
    let mut pass = Pass::new(&options);
    pass.first_seq = Some(from);
    pass.replay = false;
    pass.sink = Some(Box::new(|cluster_id: &str, record: &Record| {
        if writer.is_none() {
            let output = output.take().expect("the output is taken once");
            let started = SegmentWriter::new(output, cluster_id, record.seq, record.prev_hash);
            writer = Some(started.map_err(|error| classify(&name, error))?);
        }
        let writer = writer.as_mut().expect("the writer was started");
        writer.push(record).map_err(|error| classify(&name, error))
    }));
    remote::catch_up(remote, &mut pass, Some(to), &mut |_, _, _| {
        ControlFlow::Continue(())
    })
    .await?;
    let head = pass.head();
    let Some(auditor) = pass.auditor.take() else {
        return Err(Error::Unreachable(format!("{name} sent no segment")).into());
    };
    drop(pass);
    if head.seq != to {
        return Err(Finding::new(
            FindingKind::Truncated,
            Some(head.seq),
            format!("{name} served records up to {}, short of {to}", head.seq),
        )
        .into());
    }
    let writer = writer.expect("records were written");
    let output = writer
        .finish()
        .map_err(|error| classify("the export", error))?;
    Ok((
        Exported {
            cluster_id: auditor.cluster_id().to_owned(),
            anchor: auditor.start(),
            last_seq: head.seq,
            head_hash: head.hash,
            records: auditor.verified(),
        },
        output,
    ))
}

/// Where the export is written until it is complete: beside the target,
/// so the final rename stays on one file system.
fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(
        || "export".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!(".{name}.partial"))
}
