//! The events of the log: the facts that follow from commands, one enum,
//! versioned. Event bodies are MessagePack with field names (maps), so a
//! field added later with `#[serde(default)]` still decodes old bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::receipt::ReceiptSeal;
use crate::{Error, Result};

/// The version byte that precedes every encoded event.
pub const EVENT_VERSION: u8 = 1;

/// A state change. Kinds and fields are only ever added, never repurposed.
///
/// The time of an event is the `at` of its record; it is not repeated here.
// Format: { version: u8 = 1, body: MessagePack map { kind: fields } } where
//         kind is the camelCase variant name and fields a map of camelCase
//         field names (JobEnqueued and JobCompleted: the JobSpec or
//         Completion map); see FORMAT.md for every kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Event {
    /// The first event of every log: names the cluster the chain belongs to.
    ClusterCreated { cluster_id: String },
    /// A host joined, or re-registered with different details.
    HostRegistered {
        host_id: String,
        name: String,
        capabilities: Vec<String>,
        max_parallel: u32,
        /// The sandbox level the host reported (`landlock+no_new_privs+rlimits`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<String>,
        /// The host's ed25519 public key (32 bytes), which its id is
        /// derived from; absent for hosts without one (the MVP's), which
        /// are trusted as whoever holds the shared token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<Hash32>,
        /// When the coordinator issued the challenge the host signed to
        /// register: each registration of a keyed host names a later one
        /// than the last, so a signed registration is good once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        challenge_at: Option<u64>,
        /// A keyed host that signs a receipt of every run: its completions
        /// without one are refused. Absent (false) for hosts that
        /// registered before receipts, which keep completing as they did.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        signs_receipts: bool,
    },
    /// An admin approved a pending host, or it presented an enrollment
    /// key (`enrolledWith`, whose uses this spends): it may now claim.
    HostApproved {
        host_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enrolled_with: Option<String>,
    },
    /// An admin revoked a host: its leases end and its requests are refused.
    HostRevoked { host_id: String },
    /// An admin issued an API key. Only the key's BLAKE3 hash is kept.
    KeyIssued(Box<KeyGrant>),
    /// An admin revoked an API key.
    KeyRevoked { key_id: String },
    /// A job entered the queue.
    JobEnqueued(Box<JobSpec>),
    /// A host took a queued job under a lease; `lease_epoch` is the attempt number.
    JobLeased {
        job_id: String,
        host_id: String,
        lease_epoch: u32,
        lease_expires_at: u64,
        /// The idempotency key of the claim that took the job, if it had
        /// one: a retry of that claim gets this lease again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim_key: Option<String>,
    },
    /// The holder of a live lease extended it.
    LeaseRenewed {
        job_id: String,
        lease_epoch: u32,
        lease_expires_at: u64,
    },
    /// A lease ran out. The job goes back to the queue, or fails once its
    /// attempts are used up, or ends cancelled if a cancel was pending.
    LeaseExpired { job_id: String, lease_epoch: u32 },
    /// The lease holder reported the job's outcome. Output lives in the blob
    /// store; the event carries its hash and size.
    JobCompleted(Box<Completion>),
    /// Someone asked to cancel a leased job; the host learns of it on its
    /// next heartbeat.
    CancelRequested { job_id: String },
    /// A queued job was cancelled before any host took it.
    JobCancelled { job_id: String },
    /// Every job that ended (completed, failed or cancelled) before
    /// `finished_before` leaves the live state: its view is kept for reads
    /// but no longer held in memory, and its idempotency key is free again.
    /// The log keeps everything it did.
    JobsRetired { finished_before: u64 },
}

/// Everything an enqueue fixes about a job.
// Format: MessagePack map { jobId: str, payload: Payload, requiredCapabilities: [str],
//         priority: int, maxAttempts: int, idempotencyKey?: str, requestHash?: bin(32) }
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub job_id: String,
    pub payload: Payload,
    #[serde(default)]
    pub required_capabilities: Vec<String>,
    #[serde(default)]
    pub priority: i32,
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// BLAKE3 of the request body the idempotency key was first used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<Hash32>,
    /// The account (tenant) of the enqueuer's key; absent for jobs an
    /// admin enqueued, which belong to no account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// An API key as the log keeps it: who may do what, never the key itself.
// Format: MessagePack map { keyId: str, hash: bin(32), role: str, account?: str,
//         scopes: [str], expiresAt?: u64, uses?: u32 }
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyGrant {
    pub key_id: String,
    /// BLAKE3 of the key's secret text.
    pub hash: Hash32,
    pub role: KeyRole,
    /// The enqueuer's account; its jobs are the only ones the key reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// After this time (ms since the Unix epoch, by the log's clock) the
    /// key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// How many hosts an enrollment key may still approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// What an API key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// Everything but raft's own messages.
    Admin,
    /// Its account's jobs, within its scopes.
    Enqueuer,
    /// The log routes.
    Auditor,
    /// Approves the hosts that present it at registration.
    Enroll,
}

/// One thing an enqueuer's or auditor's key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Enqueue,
    Read,
    Cancel,
    Log,
}

/// What a host reported when a job finished.
// Format: MessagePack map { jobId: str, hostId: str, leaseEpoch: int, success: bool,
//         durationMs: int, exitCode?: int, stdout: BlobRef, stderr: BlobRef, error?: str,
//         receipt?: ReceiptSeal }
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub job_id: String,
    pub host_id: String,
    pub lease_epoch: u32,
    pub success: bool,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub stdout: BlobRef,
    pub stderr: BlobRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the host signed about the run, beyond the fields above: absent
    /// for hosts without a key (the MVP's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Box<ReceiptSeal>>,
}

/// The work a job asks for, as enqueuers submit it (the MVP's JSON shape).
// Format: MessagePack map { kind: "shell", command: str, args?: [str], cwd?: str,
//         env?: { str: str }, timeoutMs?: int }
//       | MessagePack map { kind: "automaton-run", args?: [str], automatonDir?: str,
//         env?: { str: str }, timeoutMs?: int }
// Decoding goes through `PayloadFields`: serde's derive for an internally
// tagged enum buffers every field before it can look at the tag, which made
// payloads the costliest part of replaying a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    try_from = "PayloadFields"
)]
pub enum Payload {
    Shell {
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    AutomatonRun {
        /// `None` runs the automaton with `--run`; `Some([])` with no
        /// arguments at all (the MVP's distinction, kept as given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        automaton_dir: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// The length of the MessagePack value `bytes` starts with, or `None` if it
/// is cut short or starts with no valid marker. Walks the markers without
/// decoding anything, so it costs a fraction of the decode it checks.
fn value_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    // Values still to walk: nested ones are counted, not recursed into.
    let mut pending = 1u64;
    let be = |at: usize, n: usize| -> Option<usize> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        Some(
            field
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b)),
        )
    };
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(at)?;
        at += 1;
        // (bytes of payload after the marker, values nested in it)
        let (skip, nested) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + be(at, 1)?, 0),
            0xc5 | 0xda => (2 + be(at, 2)?, 0),
            0xc6 | 0xdb => (4 + be(at, 4)?, 0),
            0xc7 => (2 + be(at, 1)?, 0),
            0xc8 => (3 + be(at, 2)?, 0),
            0xc9 => (5 + be(at, 4)?, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(at, 2)? as u64),
            0xdd => (4, be(at, 4)? as u64),
            0xde => (2, 2 * be(at, 2)? as u64),
            0xdf => (4, 2 * be(at, 4)? as u64),
            0xc1 => return None,
        };
        at = at.checked_add(skip)?;
        if at > bytes.len() {
            return None;
        }
        pending += nested;
    }
    Some(at)
}

/// Every field any payload kind has, in one flat map: decodes in one pass
/// whatever the order of the keys. Fields the kind does not have are
/// ignored, as unknown fields are everywhere else.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadFields {
    kind: String,
    command: Option<String>,
    args: Option<Vec<String>>,
    cwd: Option<String>,
    automaton_dir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout_ms: Option<u64>,
}

impl TryFrom<PayloadFields> for Payload {
    type Error = String;

    fn try_from(fields: PayloadFields) -> std::result::Result<Payload, String> {
        match fields.kind.as_str() {
            "shell" => Ok(Payload::Shell {
                command: fields
                    .command
                    .ok_or("missing field `command` (a shell payload needs one)")?,
                args: fields.args.unwrap_or_default(),
                cwd: fields.cwd,
                env: fields.env,
                timeout_ms: fields.timeout_ms,
            }),
            "automaton-run" => Ok(Payload::AutomatonRun {
                args: fields.args,
                automaton_dir: fields.automaton_dir,
                env: fields.env,
                timeout_ms: fields.timeout_ms,
            }),
            other => Err(format!(
                "unknown payload kind `{other}`, expected `shell` or `automaton-run`"
            )),
        }
    }
}

/// A reference into the content-addressed blob store.
// Format: MessagePack map { hash: bin(32), size: int }
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub hash: Hash32,
    pub size: u64,
}

impl BlobRef {
    /// The reference for `content`.
    pub fn of(content: &[u8]) -> BlobRef {
        BlobRef {
            hash: Hash32(*blake3::hash(content).as_bytes()),
            size: content.len() as u64,
        }
    }
}

/// A 32-byte BLAKE3 hash: raw bytes in MessagePack, lowercase hex in JSON.
// Format: MessagePack bin 8 of length 32 { 0xc4 0x20 [u8; 32] }; JSON "64 hex digits"
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Hash32> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Hash32(bytes))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Hash32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes or 64 hex digits")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Hash32, E> {
                let bytes: [u8; 32] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Hash32(bytes))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Hash32, E> {
                Hash32::from_hex(v)
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

impl Event {
    /// Encodes the event: one version byte, then the MessagePack body.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![EVENT_VERSION];
        // Writing into a Vec cannot fail, and every field type serializes.
        rmp_serde::encode::write_named(&mut bytes, self).expect("event encodes");
        bytes
    }

    /// Decodes bytes written by [`Event::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Event> {
        match bytes.split_first() {
            None => Err(Error::Event("empty event".into())),
            Some((&EVENT_VERSION, body)) => {
                // Decoding borrows from the slice: strings are not first
                // copied into a buffer of the decoder's own.
                let mut decoder = rmp_serde::Deserializer::from_read_ref(body);
                let event =
                    Event::deserialize(&mut decoder).map_err(|e| Error::Event(e.to_string()))?;
                // Bytes after the body would be sealed into the hash yet mean
                // nothing; a log that carries them was not written by us.
                match value_len(body) {
                    Some(len) if len == body.len() => Ok(event),
                    _ => Err(Error::Event("bytes follow the event".into())),
                }
            }
            Some((&version, _)) => Err(Error::UnsupportedVersion {
                what: "event",
                version: version as u32,
            }),
        }
    }

    /// The job this event is about, if any.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Event::ClusterCreated { .. }
            | Event::HostRegistered { .. }
            | Event::HostApproved { .. }
            | Event::HostRevoked { .. }
            | Event::KeyIssued(_)
            | Event::KeyRevoked { .. }
            | Event::JobsRetired { .. } => None,
            Event::JobEnqueued(spec) => Some(&spec.job_id),
            Event::JobCompleted(done) => Some(&done.job_id),
            Event::JobLeased { job_id, .. }
            | Event::LeaseRenewed { job_id, .. }
            | Event::LeaseExpired { job_id, .. }
            | Event::CancelRequested { job_id }
            | Event::JobCancelled { job_id } => Some(job_id),
        }
    }

    /// The blobs this event names: their content must be in the blob store
    /// by the time the event is.
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            Event::JobCompleted(done) => vec![&done.stdout, &done.stderr],
            Event::ClusterCreated { .. }
            | Event::HostRegistered { .. }
            | Event::HostApproved { .. }
            | Event::HostRevoked { .. }
            | Event::KeyIssued(_)
            | Event::KeyRevoked { .. }
            | Event::JobEnqueued(_)
            | Event::JobLeased { .. }
            | Event::LeaseRenewed { .. }
            | Event::LeaseExpired { .. }
            | Event::CancelRequested { .. }
            | Event::JobCancelled { .. }
            | Event::JobsRetired { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn value_len_walks_every_kind_of_value() {
        let long = "x".repeat(70_000);
        let values = vec![
            rmp_serde::to_vec(&(1.5f32, 2.5f64, -3i64, -200i64, u64::MAX, i64::MIN)).unwrap(),
            rmp_serde::to_vec(&vec![7u8; 20]).unwrap(),
            rmp_serde::to_vec(&Bin(vec![0xab; 300])).unwrap(),
            rmp_serde::to_vec(&long).unwrap(),
            rmp_serde::to_vec_named(&BTreeMap::from([("a", vec![1u32; 70_000])])).unwrap(),
            rmp_serde::to_vec(&(None::<u8>, true, false, "", ())).unwrap(),
        ];
        for value in values {
            assert_eq!(value_len(&value), Some(value.len()));
            for cut in [1, value.len() / 2, value.len() - 1] {
                if cut < value.len() {
                    assert_eq!(value_len(&value[..cut]), None, "cut at {cut}");
                }
            }
        }
        assert_eq!(value_len(&[0xc1]), None);
        assert_eq!(value_len(&[]), None);
        assert_eq!(value_len(&[0x01, 0x02]), Some(1));
    }

    /// Bytes that serialize as MessagePack bin, not as an array.
    struct Bin(Vec<u8>);

    impl Serialize for Bin {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[test]
    fn payloads_decode_whatever_the_order_of_their_keys() {
        let shell = Payload::Shell {
            command: "echo".into(),
            args: vec!["hi".into()],
            cwd: None,
            env: BTreeMap::new(),
            timeout_ms: Some(5),
        };
        for text in [
            r#"{"kind":"shell","command":"echo","args":["hi"],"timeoutMs":5}"#,
            r#"{"timeoutMs":5,"args":["hi"],"command":"echo","kind":"shell"}"#,
        ] {
            assert_eq!(serde_json::from_str::<Payload>(text).unwrap(), shell);
        }
        let automaton: Payload =
            serde_json::from_str(r#"{"args":["x"],"kind":"automaton-run"}"#).unwrap();
        assert!(
            matches!(automaton, Payload::AutomatonRun { args: Some(ref args), .. } if args == &["x"])
        );
        for (bad, says) in [
            (r#"{"command":"x"}"#, "kind"),
            (r#"{"kind":"shell"}"#, "command"),
            (r#"{"kind":"python","command":"x"}"#, "python"),
        ] {
            let error = serde_json::from_str::<Payload>(bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    fn text() -> impl Strategy<Value = String> + Clone {
        "[a-zA-Z0-9 _./-]{0,12}"
    }

    fn blob() -> impl Strategy<Value = BlobRef> {
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(hash, size)| BlobRef {
            hash: Hash32(hash),
            size,
        })
    }

    fn payload() -> impl Strategy<Value = Payload> {
        let args = proptest::collection::vec(text(), 0..3);
        let env = proptest::collection::btree_map(text(), text(), 0..3);
        prop_oneof![
            (
                text(),
                args.clone(),
                proptest::option::of(text()),
                env.clone(),
                any::<Option<u64>>()
            )
                .prop_map(|(command, args, cwd, env, timeout_ms)| Payload::Shell {
                    command,
                    args,
                    cwd,
                    env,
                    timeout_ms,
                }),
            (
                proptest::option::of(args),
                proptest::option::of(text()),
                env,
                any::<Option<u64>>()
            )
                .prop_map(|(args, automaton_dir, env, timeout_ms)| {
                    Payload::AutomatonRun {
                        args,
                        automaton_dir,
                        env,
                        timeout_ms,
                    }
                }),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        let job_spec = (
            text(),
            payload(),
            proptest::collection::vec(text(), 0..3),
            any::<i32>(),
            any::<u32>(),
            proptest::option::of(text()),
            proptest::option::of(any::<[u8; 32]>().prop_map(Hash32)),
            proptest::option::of(text()),
        )
            .prop_map(
                |(
                    job_id,
                    payload,
                    required_capabilities,
                    priority,
                    max_attempts,
                    key,
                    hash,
                    account,
                )| {
                    Event::JobEnqueued(Box::new(JobSpec {
                        job_id,
                        payload,
                        required_capabilities,
                        priority,
                        max_attempts,
                        idempotency_key: key,
                        request_hash: hash,
                        account,
                    }))
                },
            );
        let role = prop_oneof![
            Just(KeyRole::Admin),
            Just(KeyRole::Enqueuer),
            Just(KeyRole::Auditor),
            Just(KeyRole::Enroll),
        ];
        let scope = prop_oneof![
            Just(Scope::Enqueue),
            Just(Scope::Read),
            Just(Scope::Cancel),
            Just(Scope::Log),
        ];
        let grant = (
            text(),
            any::<[u8; 32]>().prop_map(Hash32),
            role,
            proptest::option::of(text()),
            proptest::collection::vec(scope, 0..4),
            any::<Option<u64>>(),
            any::<Option<u32>>(),
        )
            .prop_map(|(key_id, hash, role, account, scopes, expires_at, uses)| {
                Event::KeyIssued(Box::new(KeyGrant {
                    key_id,
                    hash,
                    role,
                    account,
                    scopes,
                    expires_at,
                    uses,
                }))
            });
        let completion = (
            (text(), text(), any::<u32>(), any::<bool>(), any::<u64>()),
            (
                any::<Option<i32>>(),
                blob(),
                blob(),
                proptest::option::of(text()),
                proptest::option::of((any::<[u8; 32]>(), any::<u64>(), any::<u64>())),
            ),
        )
            .prop_map(
                |(
                    (job_id, host_id, lease_epoch, success, duration_ms),
                    (exit_code, stdout, stderr, error, receipt),
                )| {
                    Event::JobCompleted(Box::new(Completion {
                        job_id,
                        host_id,
                        lease_epoch,
                        success,
                        duration_ms,
                        exit_code,
                        stdout,
                        stderr,
                        error,
                        receipt: receipt.map(|(hash, started_at, finished_at)| {
                            Box::new(ReceiptSeal {
                                payload_hash: Hash32(hash),
                                started_at,
                                finished_at,
                                signature: crate::receipt::Sig64([hash[0]; 64]),
                            })
                        }),
                    }))
                },
            );
        prop_oneof![
            text().prop_map(|cluster_id| Event::ClusterCreated { cluster_id }),
            (
                text(),
                text(),
                proptest::collection::vec(text(), 0..3),
                any::<u32>(),
                proptest::option::of(any::<[u8; 32]>().prop_map(Hash32)),
                any::<Option<u64>>(),
            )
                .prop_map(
                    |(host_id, name, capabilities, max_parallel, public_key, challenge_at)| {
                        Event::HostRegistered {
                            host_id,
                            name,
                            capabilities,
                            max_parallel,
                            sandbox: None,
                            signs_receipts: public_key.is_some(),
                            public_key,
                            challenge_at,
                        }
                    }
                ),
            (text(), proptest::option::of(text())).prop_map(|(host_id, enrolled_with)| {
                Event::HostApproved {
                    host_id,
                    enrolled_with,
                }
            }),
            text().prop_map(|host_id| Event::HostRevoked { host_id }),
            grant,
            text().prop_map(|key_id| Event::KeyRevoked { key_id }),
            job_spec,
            (
                text(),
                text(),
                any::<u32>(),
                any::<u64>(),
                proptest::option::of(text())
            )
                .prop_map(
                    |(job_id, host_id, lease_epoch, lease_expires_at, claim_key)| {
                        Event::JobLeased {
                            job_id,
                            host_id,
                            lease_epoch,
                            lease_expires_at,
                            claim_key,
                        }
                    }
                ),
            (text(), any::<u32>(), any::<u64>()).prop_map(
                |(job_id, lease_epoch, lease_expires_at)| Event::LeaseRenewed {
                    job_id,
                    lease_epoch,
                    lease_expires_at,
                }
            ),
            (text(), any::<u32>()).prop_map(|(job_id, lease_epoch)| Event::LeaseExpired {
                job_id,
                lease_epoch
            }),
            completion,
            text().prop_map(|job_id| Event::CancelRequested { job_id }),
            text().prop_map(|job_id| Event::JobCancelled { job_id }),
            any::<u64>().prop_map(|finished_before| Event::JobsRetired { finished_before }),
        ]
    }

    #[test]
    fn encoding_is_pinned() {
        // A change here changes the bytes already sealed into logs: add a
        // kind or a field instead, and bump EVENT_VERSION only for a new
        // encoding.
        let event = Event::LeaseExpired {
            job_id: "j1".into(),
            lease_epoch: 2,
        };
        let mut expected = vec![EVENT_VERSION, 0x81, 0xac];
        expected.extend_from_slice(b"leaseExpired");
        expected.extend_from_slice(&[0x82, 0xa5]);
        expected.extend_from_slice(b"jobId");
        expected.extend_from_slice(&[0xa2, b'j', b'1', 0xaa]);
        expected.extend_from_slice(b"leaseEpoch");
        expected.push(0x02);
        assert_eq!(event.encode(), expected);
    }

    #[test]
    fn hashes_are_bytes_in_messagepack_and_hex_in_json() {
        let blob = BlobRef::of(b"hello");
        let packed = rmp_serde::to_vec_named(&blob).unwrap();
        assert!(packed
            .windows(34)
            .any(|w| w[..2] == [0xc4, 0x20] && w[2..] == blob.hash.0));
        let json = serde_json::to_string(&blob).unwrap();
        assert!(json.contains(&blob.hash.to_hex()));
        assert_eq!(serde_json::from_str::<BlobRef>(&json).unwrap(), blob);
    }

    #[test]
    fn fields_added_later_default_when_absent() {
        // A jobEnqueued written before priority, requiredCapabilities and
        // the idempotency fields existed.
        let old = serde_json::json!({"jobEnqueued": {
            "jobId": "j1",
            "payload": {"kind": "shell", "command": "true"},
            "maxAttempts": 3,
        }});
        let mut bytes = vec![EVENT_VERSION];
        bytes.extend(rmp_serde::to_vec_named(&old).unwrap());
        let Event::JobEnqueued(spec) = Event::decode(&bytes).unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(spec.priority, 0);
        assert!(spec.required_capabilities.is_empty());
        assert_eq!(spec.idempotency_key, None);
    }

    #[test]
    fn unknown_versions_and_stray_bytes_are_rejected() {
        let event = Event::JobCancelled { job_id: "j".into() };
        let mut bytes = event.encode();
        bytes[0] = 2;
        assert!(matches!(
            Event::decode(&bytes),
            Err(Error::UnsupportedVersion {
                what: "event",
                version: 2
            })
        ));
        // Anything after the body: a whole value, a byte that is no
        // MessagePack marker, the start of a value cut short.
        for extra in [&[0xc0][..], &[0xc1], &[0xd9], &[0x92, 0x01]] {
            let mut bytes = event.encode();
            bytes.extend_from_slice(extra);
            assert!(
                matches!(Event::decode(&bytes), Err(Error::Event(_))),
                "{extra:?}"
            );
        }
        assert!(matches!(Event::decode(&[]), Err(Error::Event(_))));
        assert!(matches!(
            Event::decode(&[EVENT_VERSION]),
            Err(Error::Event(_))
        ));
    }

    #[test]
    fn garbage_is_a_clean_error() {
        let json = br#"{"jobCancelled":{"jobId":"j"}}"#;
        assert!(Event::decode(json).is_err());
        let mut versioned_json = vec![EVENT_VERSION];
        versioned_json.extend_from_slice(json);
        assert!(Event::decode(&versioned_json).is_err());
        // Deep nesting where a payload is expected must hit the decoder's
        // depth limit, not the stack.
        let mut deep = vec![EVENT_VERSION, 0x81, 0xab];
        deep.extend_from_slice(b"jobEnqueued");
        deep.extend_from_slice(&[0x81, 0xa7]);
        deep.extend_from_slice(b"payload");
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        assert!(Event::decode(&deep).is_err());
        // A length prefix far beyond the input.
        let huge = [EVENT_VERSION, 0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(Event::decode(&huge).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn round_trips(event in event()) {
            let bytes = event.encode();
            prop_assert_eq!(bytes[0], EVENT_VERSION);
            prop_assert_eq!(Event::decode(&bytes).unwrap(), event);
        }

        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = vec![EVENT_VERSION];
            bytes.extend_from_slice(&body);
            let _ = Event::decode(&bytes);
            let _ = Event::decode(&body);
        }
    }
}
