//! Who is calling, and whether they may: the credentials a coordinator
//! knows (the admin token, the peer secret, API keys in the log, host
//! sessions it signs), identifying the caller of a request from them, and
//! each route's rule (`skyclaw_api::routes::Access`).
//!
//! Three modes, from the configuration:
//! - **full**: a token and a peer secret. The token is the admin's; raft,
//!   joins and hellos take only the peer secret; hosts register with keys.
//! - **compatibility**: a token only, the MVP's set-up. One trust domain:
//!   the token is admin *and* peer, so any holder can act as a coordinator.
//! - **open**: no credential at all; the coordinator listens on loopback
//!   only and a request without a credential may do anything.
//!
//! [`session`]: the credential a keyed host gets at registration;
//! [`challenge`]: what it signs to get one; both are [`seal`]ed text.

pub mod challenge;
pub mod seal;
pub mod session;

use skyclaw_api::routes::{Access, Scope, PEER_HEADER, TOKEN_HEADER};
use skyclaw_log_format::event::{Hash32, KeyRole};
use skyclaw_state::{HostAccess, JobView, KeyView};
use subtle::ConstantTimeEq;

use crate::config::Config;

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credential, on a coordinator that needs none (open mode).
    Open,
    /// No credential, on a coordinator that needs one: public routes and
    /// keyed registration only.
    Anonymous,
    /// Another coordinator of the cluster.
    Peer,
    Admin,
    Enqueuer {
        account: String,
        scopes: Vec<Scope>,
    },
    Auditor,
    /// A host with a key, by its session.
    Host(String),
}

/// Why a request is refused before anything runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no credential, or one that is unknown, expired or revoked.
    Unauthenticated(String),
    /// 403: a valid credential without the right.
    Forbidden(String),
}

/// The secrets this coordinator checks credentials against.
pub struct Credentials {
    admin_token: Option<Vec<u8>>,
    peer_secret: Option<Vec<u8>>,
    /// The log routes take no credential.
    public_log: bool,
    pub sessions: session::Sessions,
    pub challenges: challenge::Challenges,
}

/// How a coordinator was configured to trust callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Compatibility,
    Open,
}

impl Credentials {
    pub fn new(config: &Config) -> Credentials {
        // Sessions and challenges must check on every coordinator of the
        // cluster, so their keys derive from a secret all of them share.
        let shared = config
            .peer_secret
            .as_ref()
            .or(config.token.as_ref())
            .map(|secret| secret.as_bytes().to_vec());
        let shared = shared.unwrap_or_else(|| random_bytes::<32>().to_vec());
        Credentials {
            admin_token: config.token.as_ref().map(|t| t.as_bytes().to_vec()),
            peer_secret: config.peer_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            public_log: config.public_log,
            sessions: session::Sessions::new(&shared, config.session_ttl_ms),
            challenges: challenge::Challenges::new(&shared),
        }
    }

    pub fn mode(&self) -> Mode {
        match (&self.admin_token, &self.peer_secret) {
            (_, Some(_)) => Mode::Full,
            (Some(_), None) => Mode::Compatibility,
            (None, None) => Mode::Open,
        }
    }

    /// The caller of a request that presented `peer` (the peer header) and
    /// `credential` (the token header or a bearer token), at time `now`.
    /// `key` finds an API key by the hash of its secret: it is asked only
    /// for a credential that is none of the others, so the admin token,
    /// the peer secret and host sessions cost no look at the state.
    pub fn identify(
        &self,
        peer: Option<&[u8]>,
        credential: Option<&[u8]>,
        now: u64,
        key: impl FnOnce(&Hash32) -> Option<KeyView>,
    ) -> Result<Principal, Refusal> {
        if let Some(peer) = peer {
            return match &self.peer_secret {
                Some(secret) if bool::from(peer.ct_eq(secret)) => Ok(Principal::Peer),
                _ => Err(Refusal::Unauthenticated(
                    "invalid x-skyclaw-peer: not this cluster's peer secret".into(),
                )),
            };
        }
        let Some(credential) = credential else {
            return match self.mode() {
                Mode::Open => Ok(Principal::Open),
                Mode::Full | Mode::Compatibility => Ok(Principal::Anonymous),
            };
        };
        if let Some(token) = &self.admin_token {
            if bool::from(credential.ct_eq(token)) {
                return Ok(Principal::Admin);
            }
        }
        if let Some(host_id) = self.sessions.host_of(credential, now) {
            return Ok(Principal::Host(host_id?));
        }
        let hash = Hash32(*blake3::hash(credential).as_bytes());
        match key(&hash) {
            Some(key) if !key.is_live(now) => Err(Refusal::Unauthenticated(format!(
                "key {} is revoked or expired",
                key.grant.key_id
            ))),
            Some(key) => match key.grant.role {
                KeyRole::Admin => Ok(Principal::Admin),
                KeyRole::Enqueuer => Ok(Principal::Enqueuer {
                    account: key.grant.account.clone().unwrap_or_default(),
                    scopes: key.grant.scopes.clone(),
                }),
                KeyRole::Auditor => Ok(Principal::Auditor),
                KeyRole::Enroll => Err(Refusal::Unauthenticated(
                    "an enrollment key goes in a host's registration (enrollKey), not in a header"
                        .into(),
                )),
            },
            // An open coordinator takes requests with any credential, as
            // it did before credentials had meanings.
            None if self.mode() == Mode::Open => Ok(Principal::Open),
            None => Err(Refusal::Unauthenticated(
                "invalid x-skyclaw-token: not the admin token, an API key or a host session".into(),
            )),
        }
    }

    /// Whether `principal` may call a route whose rule is `access`. A rule
    /// that names a resource (an account, a host, a lease) is checked here
    /// by role only; the handler checks the resource. `host` says where a
    /// host stands (asked only when a host calls).
    pub fn permits(
        &self,
        access: Access,
        principal: &Principal,
        host: impl FnOnce(&str) -> Option<HostAccess>,
    ) -> Result<(), Refusal> {
        if matches!(access, Access::Public | Access::Registration) {
            return Ok(());
        }
        if let Principal::Host(host_id) = principal {
            match host(host_id) {
                // A session of a cluster whose record lost the host: it
                // registers again.
                None => {
                    return Err(Refusal::Unauthenticated(format!(
                        "host {host_id} is not registered: register again"
                    )))
                }
                Some(HostAccess::Revoked) => {
                    return Err(Refusal::Forbidden(format!("host {host_id} is revoked")))
                }
                Some(HostAccess::Pending | HostAccess::Active) => {}
            }
        }
        let allowed = match (access, principal) {
            (Access::Log, Principal::Anonymous) if self.public_log => true,
            (_, Principal::Anonymous) => {
                return Err(Refusal::Unauthenticated(
                    "missing credential: send x-skyclaw-token (or Authorization: Bearer)".into(),
                ))
            }
            (_, Principal::Open) => true,
            (Access::Peer, Principal::Peer) => true,
            // In compatibility mode the token is the peer credential too.
            (Access::Peer, Principal::Admin) => self.mode() == Mode::Compatibility,
            (Access::Peer, _) => false,
            (_, Principal::Admin) => true,
            // Coordinators read each other's log heads for the cluster view.
            (Access::Log, Principal::Auditor | Principal::Peer) => true,
            (Access::Enqueuer(scope), Principal::Enqueuer { scopes, .. }) => {
                scopes.contains(&scope)
            }
            (Access::JobReader, Principal::Enqueuer { scopes, .. }) => {
                scopes.contains(&Scope::Read)
            }
            (Access::JobReader | Access::HostSelf | Access::LeaseHolder, Principal::Host(_)) => {
                true
            }
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Refusal::Forbidden(format!(
                "{} may not call this route",
                principal.describe()
            )))
        }
    }
}

impl Principal {
    /// Who the caller is, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Principal::Open | Principal::Anonymous => "anyone".into(),
            Principal::Peer => "a peer coordinator".into(),
            Principal::Admin => "an admin".into(),
            Principal::Enqueuer { account, scopes } => {
                let scopes: Vec<&str> = scopes.iter().map(|s| scope_name(*s)).collect();
                format!(
                    "an enqueuer of account {account} (scopes: {})",
                    scopes.join(", ")
                )
            }
            Principal::Auditor => "an auditor".into(),
            Principal::Host(id) => format!("host {id}"),
        }
    }

    /// The account whose jobs this caller reaches: `None` for every job.
    pub fn account(&self) -> Option<&str> {
        match self {
            Principal::Enqueuer { account, .. } => Some(account),
            _ => None,
        }
    }

    /// Whether the caller may read `job` (payload and all): an admin; an
    /// enqueuer, its own account's; a host, while it holds the lease.
    pub fn may_see(&self, job: &JobView) -> bool {
        match self {
            Principal::Open | Principal::Admin => true,
            Principal::Enqueuer { account, .. } => job.account.as_ref() == Some(account),
            Principal::Host(id) => job.lease.as_ref().is_some_and(|lease| lease.host_id == *id),
            Principal::Anonymous | Principal::Peer | Principal::Auditor => false,
        }
    }
}

pub fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Enqueue => "enqueue",
        Scope::Read => "read",
        Scope::Cancel => "cancel",
        Scope::Log => "log",
    }
}

/// The header a coordinator sends to its peers (raft, joins, hellos): the
/// peer secret, or in compatibility mode the token; nothing in open mode.
pub fn peer_header(config: &Config) -> Option<(&'static str, String)> {
    match (&config.peer_secret, &config.token) {
        (Some(secret), _) => Some((PEER_HEADER, secret.clone())),
        (None, Some(token)) => Some((TOKEN_HEADER, token.clone())),
        (None, None) => None,
    }
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source");
    bytes
}
