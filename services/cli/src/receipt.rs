//! `skyclaw receipt verify`: proves, without trusting the coordinator that
//! answers, that a job ran on the host that signed its receipt and that the
//! log holds that receipt under a checkpoint a majority of the trusted log
//! keys signed, consistent with every checkpoint this checker saw before.
//! Exit 0 proven, 1 disproven (saying what), 2 no coordinator reachable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::{Deserialize, Serialize};
use skyclaw_api::ReceiptResponse;
use skyclaw_client::Client;
use skyclaw_log_format::checkpoint::{self, TreeHead};
use skyclaw_log_format::tree::Hash;
use skyclaw_log_format::{Event, Hash32, Receipt, Record, Sig64};

use crate::connect::ClientArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a job's receipt, its inclusion in the log under a checkpoint
    /// a majority of the trusted log keys signed, and that checkpoint's
    /// consistency with the last one seen.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The job's id.
    pub job_id: String,
    /// The log keys to trust (C2SP vkeys, one per line). Without it, the
    /// keys pinned in the state file; on first use, the cluster's own
    /// (`GET /v1/log/keys`), which are pinned from then on.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Where the pinned keys and the last checkpoint seen are kept.
    #[arg(long, default_value = ".skyclaw/receipts.json")]
    pub state: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What the checker remembers between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seen {
    cluster_id: Option<String>,
    keys: Vec<String>,
    /// The largest checkpoint verified: its size and root (hex).
    size: u64,
    root: Option<Hash32>,
}

/// Why a run could not say yes.
enum Outcome {
    Disproven(String),
    Unreachable(String),
}

impl From<skyclaw_client::Error> for Outcome {
    fn from(error: skyclaw_client::Error) -> Outcome {
        // Not here, or not yet: another member or a later try may prove it.
        let elsewhere = matches!(error, skyclaw_client::Error::Api { status: 410, .. });
        if error.is_unavailable() || elsewhere {
            Outcome::Unreachable(error.to_string())
        } else {
            Outcome::Disproven(error.to_string())
        }
    }
}

fn disproven<T>(reason: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Disproven(reason.into()))
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Verify(args) = command;
    let client = args.client.connect()?;
    match verify(&client, &args).await {
        Ok(proven) => {
            println!("proven: {proven}");
            Ok(ExitCode::SUCCESS)
        }
        Err(Outcome::Disproven(reason)) => {
            println!("disproven: {reason}");
            Ok(ExitCode::from(1))
        }
        Err(Outcome::Unreachable(reason)) => {
            eprintln!("unreachable: {reason}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn verify(client: &Client, args: &VerifyArgs) -> Result<String, Outcome> {
    let answer = client.receipt(&args.job_id).await?;
    if answer.receipt.job_id != args.job_id {
        return disproven(format!(
            "asked for job {}'s receipt, the coordinator answered with job {}'s",
            args.job_id, answer.receipt.job_id
        ));
    }
    let cluster_id = answer.receipt.cluster_id.clone();
    let mut seen = read_seen(&args.state)?;
    if seen
        .cluster_id
        .as_deref()
        .is_some_and(|id| id != cluster_id)
    {
        return disproven(format!(
            "the receipt is for cluster {cluster_id}, but {} keeps cluster {}'s checkpoints",
            args.state.display(),
            seen.cluster_id.as_deref().unwrap_or_default()
        ));
    }
    let trusted = match &args.trust {
        Some(path) => read_trust(path)?,
        None if !seen.keys.is_empty() => seen.keys.clone(),
        None => client
            .log_keys()
            .await?
            .keys
            .into_iter()
            .filter(|key| key.voter)
            .map(|key| key.vkey)
            .collect(),
    };
    let record = check_receipt(&answer)?;
    let head = checkpoint::verify(answer.checkpoint.as_bytes(), &cluster_id, &trusted)
        .or_else(|e| disproven(format!("the checkpoint: {e}")))?;
    let proof = hashes(&answer.inclusion)?;
    if answer.seq == 0
        || tlog_tiles::check_record(
            &proof,
            head.size,
            Hash(head.root.0),
            answer.seq - 1,
            tlog_tiles::record_hash(&record),
        )
        .is_err()
    {
        return disproven(format!(
            "record {} is not in the tree of {} records the checkpoint signs",
            answer.seq, head.size
        ));
    }
    check_consistent(client, &seen, &head).await?;
    if head.size >= seen.size {
        seen.size = head.size;
        seen.root = Some(head.root);
    }
    seen.cluster_id = Some(cluster_id);
    seen.keys = trusted.clone();
    write_seen(&args.state, &seen)?;
    let signed = checkpoint::majority(trusted.len());
    Ok(format!(
        "job {} ran on host {} (exit {}); record {} is in the log of {} records, signed by at \
         least {signed} of {} trusted keys",
        answer.receipt.job_id,
        answer.receipt.host_id,
        answer
            .receipt
            .exit_code
            .map_or_else(|| "none".into(), |code| code.to_string()),
        answer.seq,
        head.size,
        trusted.len()
    ))
}

/// Checks the host's signature and that the record is the completion that
/// carries exactly this receipt; answers the record's bytes.
fn check_receipt(answer: &ReceiptResponse) -> Result<Vec<u8>, Outcome> {
    let decode = |field: &str, text: &str| {
        BASE64_STANDARD
            .decode(text)
            .or_else(|_| disproven(format!("{field} is not base64")))
    };
    let key: [u8; 32] = decode("hostKey", &answer.host_key)?
        .try_into()
        .or_else(|_| disproven("hostKey is not 32 bytes"))?;
    let key = Hash32(key);
    let signature: [u8; 64] = decode("signature", &answer.signature)?
        .try_into()
        .or_else(|_| disproven("signature is not 64 bytes"))?;
    let signature = Sig64(signature);
    let receipt = &answer.receipt;
    if skyclaw_state::host_id_for(&key) != receipt.host_id {
        return disproven(format!(
            "the key that signed is not host {}'s",
            receipt.host_id
        ));
    }
    receipt
        .verify(&key, &signature)
        .or_else(|e| disproven(format!("the receipt: {e}")))?;
    let bytes = decode("record", &answer.record)?;
    let record =
        Record::decode(&bytes).or_else(|e| disproven(format!("the record is malformed: {e}")))?;
    let Ok(Event::JobCompleted(done)) = record.decode_event() else {
        return disproven(format!("record {} is not a completion", answer.seq));
    };
    let holds = record.seq == answer.seq
        && done.receipt.as_deref().is_some_and(|seal| {
            seal.signature == signature && Receipt::of(&receipt.cluster_id, &done, seal) == *receipt
        });
    if !holds {
        return disproven(format!("record {} does not hold this receipt", answer.seq));
    }
    Ok(bytes)
}

/// Checks `head` against the largest checkpoint seen before: the larger
/// tree must extend the smaller, and two of one size must be one.
async fn check_consistent(client: &Client, seen: &Seen, head: &TreeHead) -> Result<(), Outcome> {
    let Some(root) = seen.root else {
        return Ok(());
    };
    if seen.size == head.size {
        if root != head.root {
            return disproven(format!(
                "a fork: two checkpoints of {} records with different roots ({root} and {})",
                head.size, head.root
            ));
        }
        return Ok(());
    }
    let (old, old_root, new, new_root) = if seen.size < head.size {
        (seen.size, root, head.size, head.root)
    } else {
        (head.size, head.root, seen.size, root)
    };
    let proof = client.consistency_proof(old, new).await?;
    let proof = hashes(&proof.hashes)?;
    if tlog_tiles::check_tree(&proof, new, Hash(new_root.0), old, Hash(old_root.0)).is_err() {
        return disproven(format!(
            "the log was rewritten: the tree of {new} records does not extend the one of {old} \
             seen before"
        ));
    }
    Ok(())
}

fn hashes(encoded: &[String]) -> Result<Vec<Hash>, Outcome> {
    // No tree of u64 records needs more: refuse a proof that would only
    // make the checker work.
    if encoded.len() > 2 * 64 {
        return disproven(format!("a proof of {} hashes is not one", encoded.len()));
    }
    encoded
        .iter()
        .map(|text| {
            let bytes = BASE64_STANDARD.decode(text).ok();
            match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(hash) => Ok(Hash(hash)),
                None => disproven(format!("proof hash {text:?} is not 32 bytes of base64")),
            }
        })
        .collect()
}

fn read_trust(path: &Path) -> Result<Vec<String>, Outcome> {
    let text = std::fs::read_to_string(path)
        .or_else(|e| disproven(format!("reading {}: {e}", path.display())))?;
    let keys = checkpoint::trusted_keys(&text);
    if keys.is_empty() {
        return disproven(format!("{} names no key", path.display()));
    }
    Ok(keys)
}

fn read_seen(path: &Path) -> Result<Seen, Outcome> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .or_else(|e| disproven(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::default()),
        Err(e) => disproven(format!("reading {}: {e}", path.display())),
    }
}

fn write_seen(path: &Path, seen: &Seen) -> Result<(), Outcome> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(seen)?)?;
        std::fs::rename(&temporary, path)
    };
    write().or_else(|e| disproven(format!("keeping {}: {e}", path.display())))
}
