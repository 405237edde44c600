//! Checkpoints: the log's tree head in the C2SP `tlog-checkpoint` format,
//! signed as a C2SP `signed-note` by the coordinators' log keys. `FORMAT.md`
//! §5 specifies the text, the extension line and the keys.
//!
//! Every coordinator signs with its own ed25519 key under one name, the
//! checkpoint's origin (`skyclaw/<clusterId>`); the key ids tell the
//! signatures apart. A checkpoint is trusted when a majority of the keys a
//! verifier trusts signed it, so no single coordinator can show a history
//! of its own.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, Signature, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{Checkpoint as Text, Hash};

use crate::event::Hash32;

/// The checkpoint extension line that binds the BLAKE3 chain: the hash of
/// the record whose seq is the tree size (the genesis hash for size 0).
pub const CHAIN_EXTENSION: &str = "skyclaw-chain";

/// The origin line (and the log keys' name) of a cluster's checkpoints.
pub fn origin(cluster_id: &str) -> String {
    format!("skyclaw/{cluster_id}")
}

/// What a checkpoint states: the tree over the first `size` records has
/// root `root`, and record `size` has chain hash `chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash32,
    pub chain: Hash32,
}

/// Why a checkpoint is not to be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint is for {found:?}, not {expected:?}")]
    WrongOrigin { expected: String, found: String },
    #[error("a signature by trusted key {0} does not verify")]
    BadSignature(String),
    #[error("signed by {signed} of the {trusted} trusted keys; {needed} are needed")]
    TooFewSignatures {
        signed: usize,
        trusted: usize,
        needed: usize,
    },
    #[error("malformed log key {0:?}")]
    BadKey(String),
}

impl TreeHead {
    /// The checkpoint's text (the note's body), for cluster `cluster_id`.
    pub fn text(&self, cluster_id: &str) -> Vec<u8> {
        let extension = format!("{CHAIN_EXTENSION} {}\n", self.chain);
        Text::new(
            &origin(cluster_id),
            self.size,
            Hash(self.root.0),
            &extension,
        )
        .expect("origin and extension lines are well formed")
        .to_bytes()
    }

    /// Reads a checkpoint's text, which must be for `cluster_id`.
    pub fn parse(text: &[u8], cluster_id: &str) -> Result<TreeHead, CheckpointError> {
        let parsed =
            Text::from_bytes(text).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let expected = origin(cluster_id);
        if parsed.origin() != expected {
            return Err(CheckpointError::WrongOrigin {
                expected,
                found: parsed.origin().to_string(),
            });
        }
        let chain = parsed
            .extension()
            .lines()
            .find_map(|line| line.strip_prefix(CHAIN_EXTENSION)?.strip_prefix(' '))
            .and_then(Hash32::from_hex)
            .ok_or_else(|| {
                CheckpointError::Malformed(format!("no {CHAIN_EXTENSION} extension line"))
            })?;
        Ok(TreeHead {
            size: parsed.size(),
            root: Hash32(parsed.hash().0),
            chain,
        })
    }
}

/// A coordinator's log key, which signs checkpoints.
pub struct LogKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl LogKey {
    /// The key with ed25519 seed `seed`, signing for cluster `cluster_id`.
    pub fn new(seed: &[u8; 32], cluster_id: &str) -> LogKey {
        let key = SigningKey::from_bytes(seed);
        let name = origin(cluster_id);
        let id = signed_note::key_id(&name, &encoded_key(&key.verifying_key()));
        LogKey { name, id, key }
    }

    pub fn public_key(&self) -> Hash32 {
        Hash32(self.key.verifying_key().to_bytes())
    }

    /// Signs a checkpoint's text: the note signature line
    /// (`— <name> <base64>\n`).
    pub fn sign(&self, text: &[u8]) -> String {
        let signature = Signature::new(
            self.name.clone(),
            self.id,
            self.key.sign(text).to_bytes().to_vec(),
        )
        .expect("the origin is a valid key name");
        String::from_utf8(signature.to_bytes()).expect("signature lines are UTF-8")
    }
}

/// The key bytes a C2SP vkey carries: the algorithm byte (1, ed25519),
/// then the public key.
fn encoded_key(key: &VerifyingKey) -> Vec<u8> {
    [&[1u8][..], key.as_bytes()].concat()
}

/// The C2SP verifier key (`<name>+<key id>+<base64 key>`) of the log key
/// whose public half is `public_key`, for cluster `cluster_id`.
pub fn vkey(cluster_id: &str, public_key: &Hash32) -> Option<String> {
    let key = VerifyingKey::from_bytes(&public_key.0).ok()?;
    Some(signed_note::new_ed25519_verifier_key(
        &origin(cluster_id),
        &key,
    ))
}

/// A note made of `text` and signature lines as [`LogKey::sign`] makes
/// them.
pub fn note(text: &[u8], signatures: &[String]) -> Result<Vec<u8>, CheckpointError> {
    let malformed = |e: signed_note::NoteError| CheckpointError::Malformed(e.to_string());
    let signatures = signatures
        .iter()
        .map(|line| Signature::from_bytes(line.trim_end_matches('\n').as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    Ok(Note::new(text, &signatures).map_err(malformed)?.to_bytes())
}

/// Whether the signature line `signature` is a valid signature of `text`
/// by the key `vkey`.
pub fn signs(vkey: &str, text: &[u8], signature: &str) -> bool {
    let (Ok(verifier), Ok(signature)) = (
        StandardVerifier::new(vkey),
        Signature::from_bytes(signature.trim_end_matches('\n').as_bytes()),
    ) else {
        return false;
    };
    verifier.name() == signature.name()
        && verifier.key_id() == signature.id()
        && verifier.verify(text, signature.signature())
}

/// The verifier keys a trust file names: one per line; blank lines and
/// `#` comments are skipped.
pub fn trusted_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The fewest signatures that are a majority of `trusted` keys.
pub fn majority(trusted: usize) -> usize {
    trusted / 2 + 1
}

/// Checks a signed checkpoint for cluster `cluster_id` against the
/// `trusted` verifier keys: every trusted key's signature on it must
/// verify, and a majority of the trusted keys must have signed it.
/// Signatures by keys not trusted are ignored.
pub fn verify(
    note_bytes: &[u8],
    cluster_id: &str,
    trusted: &[String],
) -> Result<TreeHead, CheckpointError> {
    let note =
        Note::from_bytes(note_bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let head = TreeHead::parse(note.text(), cluster_id)?;
    let verifiers = trusted
        .iter()
        .map(|vkey| {
            StandardVerifier::new(vkey)
                .map(|v| Box::new(v) as Box<dyn Verifier>)
                .map_err(|_| CheckpointError::BadKey(vkey.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let needed = majority(trusted.len());
    let signed = match note.verify(&VerifierList::new(verifiers)) {
        Ok((verified, _)) => verified.len(),
        Err(signed_note::NoteError::UnverifiedNote) => 0,
        Err(signed_note::NoteError::InvalidSignature { name, id }) => {
            return Err(CheckpointError::BadSignature(format!("{name}+{id:08x}")))
        }
        Err(e) => return Err(CheckpointError::Malformed(e.to_string())),
    };
    if signed < needed {
        return Err(CheckpointError::TooFewSignatures {
            signed,
            trusted: trusted.len(),
            needed,
        });
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> TreeHead {
        TreeHead {
            size: 42,
            root: Hash32([1; 32]),
            chain: Hash32([2; 32]),
        }
    }

    fn keys() -> Vec<LogKey> {
        (1..=3u8).map(|i| LogKey::new(&[i; 32], "c-1")).collect()
    }

    fn vkeys(keys: &[LogKey]) -> Vec<String> {
        keys.iter()
            .map(|k| vkey("c-1", &k.public_key()).unwrap())
            .collect()
    }

    #[test]
    fn the_text_is_a_c2sp_checkpoint_with_the_chain_extension() {
        let text = String::from_utf8(head().text("c-1")).unwrap();
        let root = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert_eq!(
            text,
            format!(
                "skyclaw/c-1\n42\n{root}\nskyclaw-chain {}\n",
                "02".repeat(32)
            )
        );
        assert_eq!(TreeHead::parse(text.as_bytes(), "c-1"), Ok(head()));
        assert!(matches!(
            TreeHead::parse(text.as_bytes(), "c-2"),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn a_majority_of_trusted_keys_makes_a_checkpoint_and_fewer_do_not() {
        let keys = keys();
        let trusted = vkeys(&keys);
        let text = head().text("c-1");
        let lines: Vec<String> = keys.iter().map(|k| k.sign(&text)).collect();
        for (i, line) in lines.iter().enumerate() {
            assert!(signs(&trusted[i], &text, line));
            assert!(!signs(&trusted[(i + 1) % 3], &text, line));
        }
        let two = note(&text, &lines[..2]).unwrap();
        assert_eq!(verify(&two, "c-1", &trusted), Ok(head()));
        let one = note(&text, &lines[..1]).unwrap();
        assert_eq!(
            verify(&one, "c-1", &trusted),
            Err(CheckpointError::TooFewSignatures {
                signed: 1,
                trusted: 3,
                needed: 2
            })
        );
        // One coordinator signing twice is still one signature.
        let twice = note(&text, &[lines[0].clone(), lines[0].clone()]).unwrap();
        assert!(verify(&twice, "c-1", &trusted).is_err());
        // A key nobody trusts adds nothing.
        let stranger = LogKey::new(&[9; 32], "c-1");
        let with_stranger = note(&text, &[lines[0].clone(), stranger.sign(&text)]).unwrap();
        assert!(matches!(
            verify(&with_stranger, "c-1", &trusted),
            Err(CheckpointError::TooFewSignatures { signed: 1, .. })
        ));
    }

    #[test]
    fn an_altered_checkpoint_or_signature_is_refused() {
        let keys = keys();
        let trusted = vkeys(&keys);
        let text = head().text("c-1");
        let lines: Vec<String> = keys.iter().map(|k| k.sign(&text)).collect();
        let signed = note(&text, &lines).unwrap();
        let other_root = TreeHead {
            root: Hash32([3; 32]),
            ..head()
        };
        let forged = String::from_utf8(signed.clone())
            .unwrap()
            .replacen(
                std::str::from_utf8(&text).unwrap(),
                std::str::from_utf8(&other_root.text("c-1")).unwrap(),
                1,
            )
            .into_bytes();
        assert!(matches!(
            verify(&forged, "c-1", &trusted),
            Err(CheckpointError::BadSignature(_))
        ));
        let mut flipped = signed.clone();
        let at = flipped.len() - 5;
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        assert!(verify(&flipped, "c-1", &trusted).is_err());
    }
}
