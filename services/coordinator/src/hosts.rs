//! What a coordinator does with hosts: registration (with its defaults,
//! and for a host with a key, its challenge and signature), approval and
//! revocation, heartbeats (renewing leases only when due), and when each
//! host was last heard from (soft state on the node that heard it, never
//! logged).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use skyclaw_api::{registration_message, Challenge, RegisterHostRequest};
use skyclaw_log_format::event::{Hash32, KeyRole};
use skyclaw_state::{host_id_for, Affected, Command, HostKey, HostView};

use crate::access::Principal;
use crate::coordinator::Coordinator;
use crate::failure::Failure;

/// A registration's answer: the host, and for a host with a key, the
/// session it sends from now on and when that expires.
pub struct Registered {
    pub host: HostView,
    pub session: Option<(String, u64)>,
}

/// What a heartbeat answers.
pub struct Heartbeat {
    pub host: HostView,
    /// Jobs the host should stop: cancelled since.
    pub cancel: Vec<String>,
    /// Jobs it reported whose lease it no longer holds.
    pub lost: Vec<String>,
}

/// Capabilities a host has when it names none.
const DEFAULT_CAPABILITIES: [&str; 2] = ["shell", "automaton"];

impl Coordinator {
    /// A challenge for a host to sign, good at any coordinator of the
    /// cluster for a minute.
    pub fn challenge(&self) -> Result<Challenge, Failure> {
        let cluster_id = self
            .read(|m| m.state.cluster_id().map(str::to_string))
            .ok_or_else(|| Failure::Unavailable("the cluster is not initialized yet".into()))?;
        Ok(Challenge {
            challenge: self.credentials.challenges.issue(self.clock.now_ms()),
            cluster_id,
        })
    }

    /// Registers a host, or updates it; safe to repeat. A host with a key
    /// proves it holds the key by its signature over a fresh challenge,
    /// and gets a session; its id is its key's. A host without one
    /// registers through an admin's credential (the MVP's shared token),
    /// and one that names no id gets a new one.
    pub async fn register(
        &self,
        request: RegisterHostRequest,
        caller: &Principal,
    ) -> Result<Registered, Failure> {
        let admin = matches!(caller, Principal::Admin | Principal::Open);
        let (host_id, key) = match &request.public_key {
            Some(public_key) => {
                let (host_id, key) = self.check_signed(&request, public_key, admin)?;
                (host_id, Some(key))
            }
            None if admin => {
                let host_id = request
                    .host_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                (host_id, None)
            }
            None => {
                return Err(Failure::forbidden(format!(
                    "{} may not register a host without a key: sign a challenge with the \
                     host's key, or register with the admin token",
                    caller.describe()
                )))
            }
        };
        let keyed = key.is_some();
        let command = Command::RegisterHost {
            host_id,
            name: request.name,
            capabilities: request
                .capabilities
                .unwrap_or_else(|| DEFAULT_CAPABILITIES.map(String::from).to_vec()),
            max_parallel: request.max_parallel.unwrap_or(1),
            sandbox: request.sandbox,
            key,
        };
        let host = self.perform(command).await?.into_host()?;
        let now = self.clock.now_ms();
        self.saw_host(&host.id, now);
        let session = keyed.then(|| self.credentials.sessions.issue(&host.id, now));
        Ok(Registered { host, session })
    }

    /// Checks a keyed registration: the key, the challenge, the signature
    /// and the enrollment key. Nothing is written when any fails.
    fn check_signed(
        &self,
        request: &RegisterHostRequest,
        public_key: &str,
        admin: bool,
    ) -> Result<(String, HostKey), Failure> {
        let key_bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(public_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                Failure::invalid("publicKey must be 32 bytes, base64url without padding")
            })?;
        let verifying = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| Failure::invalid("publicKey is not an ed25519 public key"))?;
        let host_id = host_id_for(&Hash32(key_bytes));
        if request
            .host_id
            .as_ref()
            .is_some_and(|given| *given != host_id)
        {
            return Err(Failure::invalid(format!(
                "hostId must be the id of the key ({host_id}) or absent"
            )));
        }
        let (Some(challenge), Some(signature)) = (&request.challenge, &request.signature) else {
            return Err(Failure::invalid(
                "a host with a key registers with a challenge and its signature",
            ));
        };
        let now = self.clock.now_ms();
        let challenge_at = self
            .credentials
            .challenges
            .check(challenge, now)
            .map_err(Failure::Unauthenticated)?;
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                Failure::invalid("signature must be 64 bytes, base64url without padding")
            })?;
        let cluster_id = self
            .read(|m| m.state.cluster_id().map(str::to_string))
            .ok_or_else(|| Failure::Unavailable("the cluster is not initialized yet".into()))?;
        let message = registration_message(&cluster_id, &host_id, public_key, challenge, request);
        verifying
            .verify_strict(&message, &Signature::from_bytes(&signature))
            .map_err(|_| {
                Failure::Unauthenticated("the signature does not verify for this key".into())
            })?;
        let enroll_key = match &request.enroll_key {
            None => None,
            Some(secret) => {
                let hash = Hash32(*blake3::hash(secret.as_bytes()).as_bytes());
                let key = self.read(|m| {
                    m.state
                        .key_by_hash(&hash)
                        .filter(|key| key.grant.role == KeyRole::Enroll)
                        .map(|key| key.grant.key_id.clone())
                });
                Some(key.ok_or_else(|| Failure::forbidden("unknown enrollment key"))?)
            }
        };
        Ok((
            host_id,
            HostKey {
                public_key: Hash32(key_bytes),
                challenge_at,
                enroll_key,
                approved: admin || self.config.approve_hosts,
                signs_receipts: request.signs_receipts == Some(true),
            },
        ))
    }

    /// Lets a pending host take work.
    pub async fn approve(&self, host_id: &str) -> Result<HostView, Failure> {
        let command = Command::ApproveHost {
            host_id: host_id.to_string(),
        };
        Ok(self.perform(command).await?.into_host()?)
    }

    /// Shuts a host out: its leases end (their jobs go back to the queue)
    /// and its requests are refused from now on.
    pub async fn revoke(&self, host_id: &str) -> Result<HostView, Failure> {
        let command = Command::RevokeHost {
            host_id: host_id.to_string(),
        };
        let host = self.perform(command).await?.into_host()?;
        self.work.notify_waiters();
        Ok(host)
    }

    /// Renews the leases the host reports running (all it holds, when it
    /// reports none: the MVP's host sends no list) that passed half their
    /// life, through raft; a heartbeat that changes nothing writes nothing
    /// and is answered from this node's state.
    pub async fn heartbeat(
        &self,
        host_id: &str,
        running: Option<Vec<(String, u32)>>,
    ) -> Result<Heartbeat, Failure> {
        let now = self.clock.now_ms();
        let (command, dry_run) = self.read(|m| {
            let command = Command::Renew {
                host_id: host_id.to_string(),
                running: running.unwrap_or_else(|| m.state.leases_held_by(host_id)),
                lease_ms: self.config.lease_ms,
            };
            let dry_run = m
                .state
                .decide(&command, m.state.clock(now))
                .map(|decision| (decision, m.state.host(host_id).cloned()));
            (command, dry_run)
        });
        // Only a registered host gets here: nothing a refused heartbeat
        // carries stays in memory.
        let (decision, host) = dry_run?;
        self.saw_host(host_id, now);
        // Telling a host a lease is lost makes it kill the job, so that
        // answer comes only through raft, never from the views of a node
        // that may be a leader the cluster has left behind.
        if let (true, Some(host), Affected::Renewed { cancel, lost, .. }) =
            (decision.events.is_empty(), host, decision.affected)
        {
            if lost.is_empty() {
                return Ok(Heartbeat { host, cancel, lost });
            }
        }
        let (host, cancel, lost) = self.perform(command).await?.into_renewed()?;
        Ok(Heartbeat { host, cancel, lost })
    }

    pub fn hosts(&self) -> Vec<HostView> {
        self.read(|m| m.state.hosts().cloned().collect())
    }

    /// When the host was last heard from: by this node, or in the log.
    pub fn last_seen_at(&self, host: &HostView) -> u64 {
        let seen = self
            .liveness
            .lock()
            .expect("liveness lock")
            .get(&host.id)
            .copied();
        seen.map_or(host.updated_at, |seen| seen.max(host.updated_at))
    }

    /// Notes that a registered host was heard from now.
    pub(crate) fn saw_host(&self, host_id: &str, at: u64) {
        self.liveness
            .lock()
            .expect("liveness lock")
            .insert(host_id.to_string(), at);
    }
}
