//! The bodies of the routes that prove what ran where: a host's signed
//! receipt (sent with its completion, and read back with its proof), the
//! coordinators' log keys, and inclusion and consistency proofs of the
//! log's Merkle tree. Hashes and signatures in proofs are base64 (as
//! transparency-log tooling has them); hashes inside a receipt are hex,
//! as the signed lines are.

use serde::{Deserialize, Serialize};
use skyclaw_log_format::{Hash32, ReceiptSeal, Sig64};
use utoipa::ToSchema;

use crate::limits::Invalid;

/// What a host with a key signs about a run and sends with its
/// completion (`log-format/FORMAT.md` §4 has the signed bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedReceipt {
    /// BLAKE3 of the payload's MessagePack encoding: 64 hex digits.
    pub payload_hash: String,
    /// When the run started and finished by the host's clock (ms since the
    /// Unix epoch).
    pub started_at: u64,
    pub finished_at: u64,
    /// The ed25519 signature over the receipt's bytes: 128 hex digits.
    pub signature: String,
}

impl SignedReceipt {
    pub fn of(seal: &ReceiptSeal) -> SignedReceipt {
        SignedReceipt {
            payload_hash: seal.payload_hash.to_hex(),
            started_at: seal.started_at,
            finished_at: seal.finished_at,
            signature: seal.signature.to_hex(),
        }
    }

    /// The seal the log keeps, or which field is malformed.
    pub fn seal(&self) -> Result<ReceiptSeal, Invalid> {
        let shape = |field: &str, digits: usize| {
            Invalid::Shape(format!(
                "receipt.{field} must be {digits} lowercase hex digits"
            ))
        };
        Ok(ReceiptSeal {
            payload_hash: Hash32::from_hex(&self.payload_hash)
                .ok_or_else(|| shape("payloadHash", 64))?,
            started_at: self.started_at,
            finished_at: self.finished_at,
            signature: Sig64::from_hex(&self.signature).ok_or_else(|| shape("signature", 128))?,
        })
    }
}

/// `GET /v1/jobs/:id/receipt`: a completed job's receipt and the proof
/// that the log holds it under a checkpoint a majority of coordinators
/// signed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptResponse {
    /// The signed statement, field by field.
    #[schema(value_type = Object)]
    pub receipt: skyclaw_log_format::Receipt,
    /// The host's ed25519 signature over the receipt's bytes (base64).
    pub signature: String,
    /// The host's ed25519 public key (base64); its SHA-256 in hex is the
    /// host's id.
    pub host_key: String,
    /// The seq of the record that holds the completion.
    pub seq: u64,
    /// That record's bytes exactly as the log stores them (base64): the
    /// Merkle tree's leaf.
    pub record: String,
    /// The inclusion proof of leaf `seq − 1` in the checkpoint's tree:
    /// hashes in base64, from the leaf up.
    pub inclusion: Vec<String>,
    /// The signed checkpoint (a C2SP signed note) the proof is against.
    pub checkpoint: String,
}

/// One coordinator's log key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogKey {
    /// The member's name.
    pub node: String,
    /// Its verifier key in C2SP `vkey` form: `<origin>+<key id>+<base64>`.
    pub vkey: String,
    /// Whether it votes: checkpoints need a majority of the voters' keys.
    pub voter: bool,
}

/// `GET /v1/log/keys`: every member's log key.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogKeys {
    /// The checkpoints' origin line, `skyclaw/<clusterId>`.
    pub origin: String,
    pub keys: Vec<LogKey>,
}

/// `GET /v1/log/proof/inclusion?seq=&size=`: record `seq` is leaf
/// `seq − 1` of the tree of `size` records.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    pub seq: u64,
    pub size: u64,
    /// Base64 hashes, from the leaf up.
    pub hashes: Vec<String>,
}

/// `GET /v1/log/proof/consistency?from=&to=`: the tree of `to` records
/// extends the tree of `from` records.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// Base64 hashes, as RFC 9162 §2.1.4 orders them.
    pub hashes: Vec<String>,
}

/// `POST /v1/log/cosign`, between coordinators: the leader asks a member
/// to sign the checkpoint of the first `size` records as the member's own
/// log computes it, and hands on the last checkpoint the cluster signed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosignRequest {
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
}

/// The member's signature line over the checkpoint text it computed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosignResponse {
    pub signature: String,
}
