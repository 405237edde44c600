//! Running a verification end to end: [`verify`] (and [`verify_local`] for
//! files and data directories) drives a source through an
//! [`Auditor`], compares the replayed digest with what the coordinator
//! keeps, checks job output when asked, and turns the outcome into a
//! [`Report`]; [`follow`] keeps tailing a coordinator after that.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use skyclaw_log_format::Hash32;

use crate::auditor::OutputRef;
use crate::finding::{Finding, FindingKind, Stop};
use crate::options::VerifyOptions;
use crate::pass::{check_output, Pass, Unit};
use crate::report::Report;
use crate::source::remote::{self, Remote};
use crate::source::{segments, Source};
use crate::Error;

/// One run of records verified while following a coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub first_seq: u64,
    pub last_seq: u64,
    pub head_hash: Hash32,
}

/// What happens while following, for the caller to show.
#[derive(Clone, Debug)]
pub enum FollowEvent {
    /// A run of new records verified and replayed.
    Verified(Batch),
    /// The coordinators cannot be reached right now; following goes on.
    Unreachable(String),
}

/// Verifies a segment file, a directory of segments or a data directory.
/// Runs on the calling thread.
pub fn verify_local(source: &Source, options: &VerifyOptions) -> Result<Report, Error> {
    let started = Instant::now();
    let mut pass = Pass::new(options);
    let outcome = match source {
        Source::SegmentFile(path) => segments::verify_file(path, &mut pass),
        Source::SegmentDir(path) => segments::verify_dir(path, &mut pass),
        Source::DataDir(path) => verify_data_dir(path, &mut pass),
        Source::Coordinator(_) => {
            return Err(Error::Usage(
                "a coordinator is verified with `verify`, not `verify_local`".into(),
            ))
        }
    };
    let outcome = outcome.and_then(|()| pass.finish());
    pass.into_report(source.describe(), started, outcome)
}

#[cfg(feature = "rocksdb")]
fn verify_data_dir(path: &std::path::Path, pass: &mut Pass<'_>) -> Result<(), Stop> {
    crate::source::data_dir::verify(path, pass)
}

#[cfg(not(feature = "rocksdb"))]
fn verify_data_dir(path: &std::path::Path, _pass: &mut Pass<'_>) -> Result<(), Stop> {
    Err(Error::Usage(format!(
        "{} is a coordinator data directory, and this skyclaw-audit was built without \
         RocksDB (the `rocksdb` feature)",
        path.display()
    ))
    .into())
}

/// Verifies any source. Local sources run on a blocking thread; a
/// coordinator is read page by page and, unless told otherwise, its digest
/// compared with the replay's at the same seq.
pub async fn verify(source: Source, options: VerifyOptions) -> Result<Report, Error> {
    match source {
        Source::Coordinator(urls) => verify_remote(&urls, &options, None).await,
        local => tokio::task::spawn_blocking(move || verify_local(&local, &options))
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic())),
    }
}

/// Verifies a coordinator's log like [`verify`], then keeps polling it
/// every `interval` and verifying what is new, telling `on_event` about each
/// run of records. Returns at the first finding, or when `on_event` says
/// to stop.
pub async fn follow<'a>(
    urls: &[String],
    options: &VerifyOptions,
    interval: Duration,
    on_event: impl FnMut(FollowEvent) -> ControlFlow<()> + Send + 'a,
) -> Result<Report, Error> {
    verify_remote(urls, options, Some((interval, Box::new(on_event)))).await
}

type OnEvent<'a> = Box<dyn FnMut(FollowEvent) -> ControlFlow<()> + Send + 'a>;

/// The caller's view of a run that follows a coordinator.
struct Follower<'a> {
    on_event: Option<OnEvent<'a>>,
    stopped: bool,
}

impl Follower<'_> {
    fn tell(&mut self, event: FollowEvent) -> ControlFlow<()> {
        if let Some(on_event) = &mut self.on_event {
            self.stopped |= on_event(event).is_break();
        }
        if self.stopped {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn page(&mut self, pass: &Pass<'_>, first_seq: u64, last_seq: u64) -> ControlFlow<()> {
        self.tell(FollowEvent::Verified(Batch {
            first_seq,
            last_seq,
            head_hash: pass.head().hash,
        }))
    }
}

async fn verify_remote(
    urls: &[String],
    options: &VerifyOptions,
    follow: Option<(Duration, OnEvent<'_>)>,
) -> Result<Report, Error> {
    let started = Instant::now();
    let mut remote = Remote::new(urls, options.token.as_deref())?;
    let mut pass = Pass::new(options);
    pass.first_seq = Some(1);
    let (interval, on_event) = match follow {
        Some((interval, on_event)) => (Some(interval), Some(on_event)),
        None => (None, None),
    };
    let mut follower = Follower {
        on_event,
        stopped: false,
    };
    let outcome = async {
        let head = remote.head().await?;
        // The log is read to its end, so past the checkpoint fetched now.
        let signed = crate::checkpoint::heads(&mut remote, options, &head.cluster_id).await?;
        match &signed {
            Some((_, heads)) => pass.tree_heads.clone_from(heads),
            None => pass
                .notes
                .push("the cluster has signed no checkpoint yet".into()),
        }
        if interval.is_none() {
            pass.show_progress(head.seq, Unit::Records);
        }
        remote::catch_up(&mut remote, &mut pass, None, &mut |pass, first, last| {
            follower.page(pass, first, last)
        })
        .await?;
        if options.compare && !follower.stopped {
            compare_remote(&mut remote, &mut pass, &head.cluster_id).await?;
        }
        pass.finish()?;
        if let Some((latest, _)) = signed {
            pass.notes.push(format!(
                "the checkpoint of {} records is signed by a majority of the trusted log keys, \
                 and the log's Merkle tree reaches its root",
                latest.size
            ));
            if let Some(path) = &options.state {
                crate::checkpoint::keep(path, &head.cluster_id, latest)?;
            }
        }
        if options.blobs {
            let outputs = pass
                .auditor
                .as_ref()
                .map_or_else(Vec::new, |auditor| auditor.outputs().to_vec());
            check_remote_outputs(&mut remote, &outputs).await?;
        }
        let Some(interval) = interval else {
            return Ok(());
        };
        while !follower.stopped {
            tokio::time::sleep(interval).await;
            let caught_up =
                remote::catch_up(&mut remote, &mut pass, None, &mut |pass, first, last| {
                    follower.page(pass, first, last)
                })
                .await;
            match caught_up {
                Ok(()) => {}
                Err(Stop::Error(Error::Unreachable(reason))) => {
                    let _ = follower.tell(FollowEvent::Unreachable(reason));
                }
                Err(stop) => return Err(stop),
            }
        }
        Ok(())
    }
    .await;
    pass.into_report(
        Source::Coordinator(urls.to_vec()).describe(),
        started,
        outcome,
    )
}

/// Compares the replayed digest with the coordinator's at the same seq. The
/// coordinator answers for its current head, so when the log grew since
/// the pages were read, the replay catches up to the digest's seq first.
async fn compare_remote(
    remote: &mut Remote,
    pass: &mut Pass<'_>,
    cluster_id: &str,
) -> Result<(), Stop> {
    let Some(auditor) = pass.auditor.as_ref() else {
        pass.notes
            .push("nothing to compare: the log is empty".into());
        return Ok(());
    };
    if auditor.cluster_id() != cluster_id {
        return Err(Finding::new(
            FindingKind::ClusterMismatch,
            None,
            format!(
                "{} says it serves cluster {cluster_id:?}, its log is cluster {:?}",
                remote.url(),
                auditor.cluster_id()
            ),
        )
        .into());
    }
    if auditor.state().is_none() {
        pass.notes
            .push("digest not compared: the replay needs the log from record 1".into());
        return Ok(());
    }
    // A coordinator other than the one that served the pages may lag
    // behind them for a moment.
    for _ in 0..10 {
        let theirs = remote.digest().await?;
        let ours_seq = pass.head().seq;
        if theirs.seq < ours_seq {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if theirs.seq > ours_seq {
            remote::catch_up(remote, pass, Some(theirs.seq), &mut |_, _, _| {
                ControlFlow::Continue(())
            })
            .await?;
        }
        let url = remote.url();
        let head = pass.head();
        if head.seq != theirs.seq {
            return Err(Finding::new(
                FindingKind::HeadMismatch,
                Some(theirs.seq),
                format!(
                    "{url} reports its state as of record {}, but its log ends at record {}",
                    theirs.seq, head.seq
                ),
            )
            .into());
        }
        let digest = Hash32::from_hex(&theirs.digest).ok_or_else(|| Error::NotALog {
            name: url.clone(),
            reason: format!("{:?} is not a digest", theirs.digest),
        })?;
        let live = remote.head().await?;
        if live.seq == head.seq && live.hash != head.hash.to_hex() {
            return Err(Finding::new(
                FindingKind::HeadMismatch,
                Some(head.seq),
                format!(
                    "{url} says record {} hashes to {}; the record it served hashes to {}",
                    head.seq, live.hash, head.hash
                ),
            )
            .into());
        }
        return pass.compare(format!("coordinator {url}"), head.seq, digest, None);
    }
    pass.notes.push(format!(
        "digest not compared: {} stayed behind the log it served",
        remote.url()
    ));
    Ok(())
}

/// Checks each completion's output as the coordinator serves it with the
/// job (`GET /v1/jobs/:id`, read from its blob store).
async fn check_remote_outputs(remote: &mut Remote, outputs: &[OutputRef]) -> Result<(), Stop> {
    for output in outputs {
        let job = remote.job(&output.job_id).await?;
        let Some(result) = job.result else {
            return Err(Finding::new(
                FindingKind::BlobMismatch,
                Some(output.seq),
                format!(
                    "job {} has no result to check its output against",
                    output.job_id
                ),
            )
            .into());
        };
        check_output(
            output,
            "stdout",
            output.stdout,
            Some(result.stdout.as_bytes()),
        )?;
        check_output(
            output,
            "stderr",
            output.stderr,
            Some(result.stderr.as_bytes()),
        )?;
    }
    Ok(())
}
