//! What a coordinator proves about its log: a job's receipt with the
//! inclusion proof of the record that holds it, inclusion and consistency
//! proofs of the Merkle tree, and the members' log keys. Proofs are read
//! from this node's stored hashes; anyone can check them against a
//! checkpoint the voters signed.

use base64::prelude::{Engine, BASE64_STANDARD};
use skyclaw_api as api;
use skyclaw_log_format::checkpoint;
use skyclaw_log_format::tree::Hash;
use skyclaw_log_format::{Event, Receipt, Record};
use tlog_tiles::Tile;

use crate::coordinator::Coordinator;
use crate::failure::Failure;
use crate::merkle::{self, StoredHashes};
use crate::store::{self, cf, COMPLETIONS};

fn base64(hashes: Vec<Hash>) -> Vec<String> {
    hashes.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect()
}

impl Coordinator {
    /// Every member's log key.
    pub fn log_keys(&self) -> Result<api::LogKeys, Failure> {
        let cluster_id = self
            .cluster()
            .ok_or_else(|| Failure::Unavailable("the cluster is not initialized yet".into()))?;
        let keys = self
            .members()
            .into_iter()
            .filter_map(|(_, member, voter)| {
                Some(api::LogKey {
                    vkey: checkpoint::vkey(&cluster_id, &member.log_key?)?,
                    node: member.name,
                    voter,
                })
            })
            .collect();
        Ok(api::LogKeys {
            origin: checkpoint::origin(&cluster_id),
            keys,
        })
    }

    /// The latest checkpoint the voters signed.
    pub fn checkpoint_note(&self) -> Result<String, Failure> {
        self.checkpoints
            .latest()
            .map(|signed| signed.note)
            .ok_or_else(|| Failure::not_found("no checkpoint has been signed yet"))
    }

    /// Proof that record `seq` is in the tree of the first `size` records.
    pub async fn inclusion(&self, seq: u64, size: u64) -> Result<api::InclusionProof, Failure> {
        let held = self.read(|m| m.head.seq);
        if seq == 0 || seq > size || size > held {
            return Err(Failure::Refused(skyclaw_state::Rejection::Invalid(
                format!(
                "need 1 <= seq <= size <= {held} (this node's records); got seq {seq}, size {size}"
            ),
            )));
        }
        let db = self.db.clone();
        let hashes = tokio::task::spawn_blocking(move || {
            tlog_tiles::prove_record(size, seq - 1, &StoredHashes(&db))
        })
        .await
        .expect("proving does not panic")
        .map_err(merkle::proof_failure)?;
        Ok(api::InclusionProof {
            seq,
            size,
            hashes: base64(hashes),
        })
    }

    /// Proof that the tree of the first `to` records extends the tree of
    /// the first `from`.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<api::ConsistencyProof, Failure> {
        let held = self.read(|m| m.head.seq);
        if from == 0 || from > to || to > held {
            return Err(Failure::Refused(skyclaw_state::Rejection::Invalid(
                format!(
                "need 1 <= from <= to <= {held} (this node's records); got from {from}, to {to}"
            ),
            )));
        }
        let db = self.db.clone();
        let hashes = tokio::task::spawn_blocking(move || {
            tlog_tiles::prove_tree(to, from, &StoredHashes(&db))
        })
        .await
        .expect("proving does not panic")
        .map_err(merkle::proof_failure)?;
        Ok(api::ConsistencyProof {
            from,
            to,
            hashes: base64(hashes),
        })
    }

    /// A tile of the log in the C2SP tlog-tiles layout (height 8): `path`
    /// is `<level>/<index>[.p/<width>]` for hashes, `entries/<index>[.p/
    /// <width>]` for the records' bytes, each a big-endian u16 length and
    /// the record. Only tiles within the tree this node holds exist.
    pub async fn tile(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let bad = || {
            Failure::not_found(format!(
                "no tile {path:?}: tiles are <level>/<index>[.p/<width>] or \
                 entries/<index>[.p/<width>] (C2SP tlog-tiles)"
            ))
        };
        let (full, entries) = match path.strip_prefix("entries/") {
            Some(rest) => (format!("tile/8/data/{rest}"), true),
            None => (format!("tile/8/{path}"), false),
        };
        // `Tile::from_path` panics on a width of 0 or a level over 63;
        // neither names a tile, and levels over 7 are past any u64 seq.
        let width_fits = path
            .rsplit_once(".p/")
            .is_none_or(|(_, w)| w.parse::<u32>().is_ok_and(|w| (1..256).contains(&w)));
        let level_fits = entries
            || path
                .split('/')
                .next()
                .is_some_and(|l| l.parse::<u8>().is_ok_and(|l| l <= 7));
        if !width_fits || !level_fits {
            return Err(bad());
        }
        let tile = Tile::from_path(&full).map_err(|_| bad())?;
        let size = self.read(|m| m.head.seq);
        // Where the tile's last hash ends, in leaves; past any u64, past
        // the tree.
        let first = u128::from(tile.level_index()) << 8;
        let end = (first + u128::from(tile.width()))
            .checked_mul(1u128 << (8 * u32::from(tile.level())))
            .filter(|end| *end <= u128::from(u64::MAX));
        if end.is_none_or(|end| end > u128::from(size)) {
            return Err(Failure::not_found(format!(
                "tile {path} is not in the tree of {size} records yet"
            )));
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            if !entries {
                return tile
                    .read_data(&StoredHashes(&db))
                    .map_err(merkle::proof_failure);
            }
            let mut bundle = Vec::new();
            let first = first as u64;
            for seq in first + 1..=first + u64::from(tile.width()) {
                let record = merkle::record_bytes(&db, seq)
                    .map_err(|e| Failure::Unavailable(format!("reading the log: {e}")))?
                    .ok_or_else(|| {
                        Failure::Gone(format!(
                            "record {seq} is not in this node's log (a snapshot)"
                        ))
                    })?;
                let length = u16::try_from(record.len()).map_err(|_| {
                    Failure::not_found(format!(
                        "record {seq} is {} bytes, more than an entry bundle holds (65535); \
                         read it from /v1/events",
                        record.len()
                    ))
                })?;
                bundle.extend_from_slice(&length.to_be_bytes());
                bundle.extend_from_slice(&record);
            }
            Ok(bundle)
        })
        .await
        .expect("reading a tile does not panic")
    }

    /// A completed job's receipt, proven included under the latest
    /// checkpoint the voters signed.
    pub async fn receipt(&self, job_id: &str) -> Result<api::ReceiptResponse, Failure> {
        let not_found = || Failure::not_found(format!("job {job_id} has no receipt"));
        let seq = self
            .db
            .get_cf(cf(&self.db, COMPLETIONS), store::job_key(job_id))
            .map_err(|e| Failure::Unavailable(format!("reading the log: {e}")))?
            .and_then(|key| store::u64_of_key(&key));
        let Some(seq) = seq else {
            // A node restored from a snapshot holds no record from before it.
            let before_anchor = self.read(|m| m.anchor.is_some())
                && self.job_view(job_id).is_ok_and(|job| job.outcome.is_some());
            return Err(if before_anchor {
                Failure::Gone(format!(
                    "job {job_id} completed before this node's log starts (a snapshot); ask \
                     another member"
                ))
            } else {
                not_found()
            });
        };
        let bytes = merkle::record_bytes(&self.db, seq)
            .map_err(|e| Failure::Unavailable(format!("reading the log: {e}")))?
            .ok_or_else(not_found)?;
        let record = Record::decode(&bytes)
            .map_err(|e| Failure::Internal(format!("corrupt record: {e}")))?;
        let Ok(Event::JobCompleted(done)) = record.decode_event() else {
            return Err(Failure::Internal(format!(
                "record {seq} does not complete job {job_id}"
            )));
        };
        let seal = done.receipt.as_deref().ok_or_else(|| {
            Failure::not_found(format!(
                "job {job_id} was completed by a host that signs no receipt (one without a \
                 key, or from before receipts)"
            ))
        })?;
        let host_key = self
            .read(|m| m.state.host(&done.host_id).and_then(|h| h.public_key))
            .ok_or_else(not_found)?;
        let held = self.read(|m| m.head.seq);
        let latest = self.checkpoints.latest();
        if latest.as_ref().is_some_and(|s| s.size > held) {
            return Err(Failure::Unavailable(format!(
                "this node has not applied up to the latest checkpoint yet; retry in {} ms",
                self.config.checkpoint_ms
            )));
        }
        let signed = latest.filter(|s| s.size >= seq).ok_or_else(|| {
            Failure::Unavailable(format!(
                "record {seq} is not under a signed checkpoint yet; retry in {} ms",
                self.config.checkpoint_ms
            ))
        })?;
        let inclusion = self.inclusion(seq, signed.size).await?;
        let cluster_id = self.cluster().unwrap_or_default();
        Ok(api::ReceiptResponse {
            receipt: Receipt::of(&cluster_id, &done, seal),
            signature: BASE64_STANDARD.encode(seal.signature.0),
            host_key: BASE64_STANDARD.encode(host_key.0),
            seq,
            record: BASE64_STANDARD.encode(&bytes),
            inclusion: inclusion.hashes,
            checkpoint: signed.note,
        })
    }
}
