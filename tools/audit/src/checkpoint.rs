//! Holding a coordinator's log to its signed checkpoint: the latest
//! checkpoint must be signed by a majority of the trusted log keys (given
//! with `--trust`, else the cluster's voters' keys as it lists them), and
//! the log the auditor rebuilds must reach its tree head: the same Merkle
//! root and chain hash at its size. With `--state`, the checkpoint verified
//! last time must be reached too, so the log was not rewritten in between
//! (the rebuilt tree extends it) and no fork of its size was shown.

use std::path::Path;

use serde::{Deserialize, Serialize};
use skyclaw_log_format::checkpoint::{self, TreeHead};
use skyclaw_log_format::Hash32;

use crate::finding::{Finding, FindingKind, Stop};
use crate::options::VerifyOptions;
use crate::source::remote::Remote;
use crate::Error;

/// The last checkpoint an auditor verified, as `--state` keeps it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub cluster_id: String,
    pub size: u64,
    pub root: Hash32,
    pub chain: Hash32,
}

impl Verified {
    fn head(&self) -> TreeHead {
        TreeHead {
            size: self.size,
            root: self.root,
            chain: self.chain,
        }
    }
}

fn finding(reason: String) -> Stop {
    Finding::new(FindingKind::Checkpoint, None, reason).into()
}

/// The tree heads the log must reach: the latest signed checkpoint's, and
/// the one verified last time; `None` when the cluster signed none yet.
pub(crate) async fn heads(
    remote: &mut Remote,
    options: &VerifyOptions,
    cluster_id: &str,
) -> Result<Option<(TreeHead, Vec<TreeHead>)>, Stop> {
    let Some(note) = remote.checkpoint().await? else {
        // A coordinator that hides its checkpoint must not slip past an
        // auditor who holds it to one.
        if options.trust.is_some() || options.state.as_deref().is_some_and(|p| p.exists()) {
            return Err(finding(
                "the coordinators show no signed checkpoint, yet one is required (--trust or \
                 --state)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let trusted = match &options.trust {
        Some(keys) => keys.clone(),
        None => remote.log_keys().await?,
    };
    let latest = checkpoint::verify(note.as_bytes(), cluster_id, &trusted)
        .map_err(|e| finding(format!("the latest checkpoint: {e}")))?;
    let mut heads = vec![latest];
    if let Some(path) = &options.state {
        if let Some(before) = read(path)? {
            if before.cluster_id != cluster_id {
                return Err(Error::Usage(format!(
                    "{} keeps cluster {}'s checkpoint, not {cluster_id}'s",
                    path.display(),
                    before.cluster_id
                ))
                .into());
            }
            if before.size == latest.size && before.root != latest.root {
                return Err(finding(format!(
                    "a fork: the checkpoint of {} records verified before has root {}, this \
                     one {}",
                    latest.size, before.root, latest.root
                )));
            }
            heads.push(before.head());
        }
    }
    Ok(Some((latest, heads)))
}

/// Keeps `head` as the last checkpoint verified, unless a larger one is
/// kept.
pub(crate) fn keep(path: &Path, cluster_id: &str, head: TreeHead) -> Result<(), Error> {
    if read(path)?.is_some_and(|before| before.size > head.size) {
        return Ok(());
    }
    let verified = Verified {
        cluster_id: cluster_id.to_string(),
        size: head.size,
        root: head.root,
        chain: head.chain,
    };
    let text = serde_json::to_vec_pretty(&verified).expect("the state encodes");
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| Error::Usage(format!("keeping {}: {e}", path.display())))
}

fn read(path: &Path) -> Result<Option<Verified>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Usage(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Usage(format!("reading {}: {e}", path.display()))),
    }
}
