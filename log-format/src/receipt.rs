//! Receipts: what a host signs when it completes a job, so anyone can later
//! check which host ran what, under which lease, with which result, without
//! trusting a coordinator. The signed bytes are [`Receipt::message`]
//! (`FORMAT.md` §4 specifies them); the log keeps the parts a completion
//! does not already hold in [`Completion::receipt`].

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{BlobRef, Completion, Hash32, Payload};

/// What a host signs about one run of a job: every field of the statement
/// the receipt's signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub cluster_id: String,
    pub job_id: String,
    pub lease_epoch: u32,
    /// [`Payload::digest`] of the payload the host was leased.
    pub payload_hash: Hash32,
    pub exit_code: Option<i32>,
    /// When the host started and finished the run, by its own clock (ms
    /// since the Unix epoch).
    pub started_at: u64,
    pub finished_at: u64,
    pub stdout: BlobRef,
    pub stderr: BlobRef,
    pub host_id: String,
}

/// A host's public key, decoded (a curve point decompressed) for checking
/// receipts: whoever checks many receipts of the same hosts, as an audit
/// does, decodes each key once instead of once a receipt.
#[derive(Clone, Copy, Debug)]
pub struct ReceiptKey(VerifyingKey);

impl ReceiptKey {
    /// `public_key` as a point on the curve; `BadKey` if it is none.
    pub fn decode(public_key: &Hash32) -> Result<ReceiptKey, ReceiptError> {
        VerifyingKey::from_bytes(&public_key.0)
            .map(ReceiptKey)
            .map_err(|_| ReceiptError::BadKey)
    }
}

/// The part of a receipt the log keeps beside the completion it belongs to.
// Format: MessagePack map { payloadHash: bin(32), startedAt: u64, finishedAt: u64,
//         signature: bin(64) }
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptSeal {
    pub payload_hash: Hash32,
    pub started_at: u64,
    pub finished_at: u64,
    /// The host's ed25519 signature over [`Receipt::message`].
    pub signature: Sig64,
}

/// Why a receipt does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the receipt's {0} is not the completion's")]
    Mismatch(&'static str),
    #[error("the receipt names a field with a line break")]
    LineBreak,
    #[error("the receipt's signature is not the host key's")]
    BadSignature,
    #[error("the host key is not a valid ed25519 key")]
    BadKey,
}

/// The first line of every receipt message, which no other message this
/// project signs starts with.
pub const RECEIPT_DOMAIN: &str = "skyclaw receipt v1";

impl Receipt {
    /// The receipt a completion and its seal make, in the cluster
    /// `cluster_id`.
    pub fn of(cluster_id: &str, done: &Completion, seal: &ReceiptSeal) -> Receipt {
        Receipt {
            cluster_id: cluster_id.to_string(),
            job_id: done.job_id.clone(),
            lease_epoch: done.lease_epoch,
            payload_hash: seal.payload_hash,
            exit_code: done.exit_code,
            started_at: seal.started_at,
            finished_at: seal.finished_at,
            stdout: done.stdout,
            stderr: done.stderr,
            host_id: done.host_id.clone(),
        }
    }

    /// The bytes the host signs: one `name value` line per field, in a
    /// fixed order, after [`RECEIPT_DOMAIN`]. `None` when a text field
    /// holds a line break, which would let one field pose as the next.
    pub fn message(&self) -> Option<Vec<u8>> {
        let texts = [&self.cluster_id, &self.job_id, &self.host_id];
        if texts.iter().any(|text| text.contains(['\n', '\r'])) {
            return None;
        }
        let exit = self
            .exit_code
            .map_or_else(|| "none".to_string(), |code| code.to_string());
        let message = format!(
            "{RECEIPT_DOMAIN}\ncluster {}\njob {}\nepoch {}\npayload {}\nexit {exit}\n\
             started {}\nfinished {}\nstdout {} {}\nstderr {} {}\nhost {}\n",
            self.cluster_id,
            self.job_id,
            self.lease_epoch,
            self.payload_hash,
            self.started_at,
            self.finished_at,
            self.stdout.hash,
            self.stdout.size,
            self.stderr.hash,
            self.stderr.size,
            self.host_id,
        );
        Some(message.into_bytes())
    }

    /// Checks `signature` over [`Receipt::message`] with the host's
    /// ed25519 `public_key`, strictly (no malleable signatures).
    pub fn verify(&self, public_key: &Hash32, signature: &Sig64) -> Result<(), ReceiptError> {
        self.verify_with(&ReceiptKey::decode(public_key)?, signature)
    }

    /// [`Receipt::verify`] with the host's key decoded beforehand.
    pub fn verify_with(&self, key: &ReceiptKey, signature: &Sig64) -> Result<(), ReceiptError> {
        let message = self.message().ok_or(ReceiptError::LineBreak)?;
        key.0
            .verify_strict(&message, &Signature::from_bytes(&signature.0))
            .map_err(|_| ReceiptError::BadSignature)
    }

    /// Signs the receipt with the host's key: the seal its completion
    /// carries. `None` when a field holds a line break.
    pub fn sign(&self, key: &ed25519_dalek::SigningKey) -> Option<ReceiptSeal> {
        use ed25519_dalek::Signer;
        let signature = key.sign(&self.message()?);
        Some(self.seal(Sig64(signature.to_bytes())))
    }

    /// The seal the log keeps of this receipt once signed.
    pub fn seal(&self, signature: Sig64) -> ReceiptSeal {
        ReceiptSeal {
            payload_hash: self.payload_hash,
            started_at: self.started_at,
            finished_at: self.finished_at,
            signature,
        }
    }
}

impl Payload {
    /// BLAKE3 of the payload's MessagePack encoding (named fields, as the
    /// log stores it): what a receipt names the work by.
    pub fn digest(&self) -> Hash32 {
        let bytes = rmp_serde::to_vec_named(self).expect("payloads encode");
        Hash32(*blake3::hash(&bytes).as_bytes())
    }
}

/// A 64-byte ed25519 signature: raw bytes in MessagePack, lowercase hex in
/// JSON.
// Format: MessagePack bin 8 of length 64 { 0xc4 0x40 [u8; 64] }; JSON "128 hex digits"
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig64(pub [u8; 64]);

impl Sig64 {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Sig64> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Sig64(bytes))
    }
}

impl fmt::Debug for Sig64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Sig64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Sig64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Sig64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 bytes or 128 hex digits")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sig64, E> {
                let bytes: [u8; 64] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Sig64(bytes))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sig64, E> {
                Sig64::from_hex(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn receipt() -> Receipt {
        Receipt {
            cluster_id: "c-1".into(),
            job_id: "j-1".into(),
            lease_epoch: 2,
            payload_hash: Hash32([7; 32]),
            exit_code: Some(0),
            started_at: 1_000,
            finished_at: 1_250,
            stdout: BlobRef::of(b"hi\n"),
            stderr: BlobRef::of(b""),
            host_id: "h-1".into(),
        }
    }

    fn sign(key: &SigningKey, receipt: &Receipt) -> Sig64 {
        Sig64(key.sign(&receipt.message().unwrap()).to_bytes())
    }

    #[test]
    fn the_message_is_the_documented_lines() {
        let text = String::from_utf8(receipt().message().unwrap()).unwrap();
        let expected = format!(
            "skyclaw receipt v1\ncluster c-1\njob j-1\nepoch 2\npayload {}\nexit 0\n\
             started 1000\nfinished 1250\nstdout {} 3\nstderr {} 0\nhost h-1\n",
            "07".repeat(32),
            blake3::hash(b"hi\n").to_hex(),
            blake3::hash(b"").to_hex(),
        );
        assert_eq!(text, expected);
        let no_exit = Receipt {
            exit_code: None,
            ..receipt()
        };
        let text = String::from_utf8(no_exit.message().unwrap()).unwrap();
        assert!(text.contains("\nexit none\n"), "{text}");
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_flipped_bit_does_not() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = Hash32(key.verifying_key().to_bytes());
        let receipt = receipt();
        let signature = sign(&key, &receipt);
        assert_eq!(receipt.verify(&public, &signature), Ok(()));
        for bit in 0..512 {
            let mut bad = signature;
            bad.0[bit / 8] ^= 1 << (bit % 8);
            assert!(receipt.verify(&public, &bad).is_err(), "bit {bit}");
        }
        let message = receipt.message().unwrap();
        for bit in 0..message.len() * 8 {
            let mut altered = message.clone();
            altered[bit / 8] ^= 1 << (bit % 8);
            let key = VerifyingKey::from_bytes(&public.0).unwrap();
            assert!(key
                .verify_strict(&altered, &Signature::from_bytes(&signature.0))
                .is_err());
        }
        let other = SigningKey::from_bytes(&[4; 32]);
        let other_public = Hash32(other.verifying_key().to_bytes());
        assert_eq!(
            receipt.verify(&other_public, &signature),
            Err(ReceiptError::BadSignature)
        );
    }

    #[test]
    fn a_field_with_a_line_break_cannot_be_signed() {
        let forged = Receipt {
            job_id: "j-1\nepoch 9".into(),
            ..receipt()
        };
        assert_eq!(forged.message(), None);
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = Hash32(key.verifying_key().to_bytes());
        assert_eq!(
            forged.verify(&public, &Sig64([0; 64])),
            Err(ReceiptError::LineBreak)
        );
    }

    #[test]
    fn a_seal_round_trips_through_message_pack_and_json() {
        let seal = receipt().seal(Sig64([9; 64]));
        let packed = rmp_serde::to_vec_named(&seal).unwrap();
        assert_eq!(rmp_serde::from_slice::<ReceiptSeal>(&packed).unwrap(), seal);
        let json = serde_json::to_string(&seal).unwrap();
        assert!(json.contains(&"09".repeat(64)), "{json}");
        assert_eq!(serde_json::from_str::<ReceiptSeal>(&json).unwrap(), seal);
    }
}
