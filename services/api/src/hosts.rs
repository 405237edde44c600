//! The host routes' bodies: registration, heartbeats, the host list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A host as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub max_parallel: u32,
    /// Jobs currently leased to this host.
    pub active_leases: u32,
    /// Last time the host was heard from (ms since the Unix epoch).
    pub last_seen_at: u64,
    pub registered_at: u64,
    /// How the host confines its jobs, as it reported at registration
    /// (`landlock+no_new_privs+rlimits`, `none (…)`); absent for hosts that
    /// do not say (the MVP's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// `pending` until an admin approves it, `active`, or `revoked`.
    /// Hosts without a key (the MVP's) are active from the start.
    #[serde(default = "active")]
    pub access: String,
    /// The host's ed25519 public key, base64url without padding; its id
    /// is the hex SHA-256 of the key's 32 bytes (its OpenClaw device id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

fn active() -> String {
    "active".into()
}

/// `POST /v1/hosts/register`. A host with a key also sends `publicKey`,
/// the `challenge` it was given and its `signature` over
/// [`registration_message`]; its `hostId`, if sent, must be the one its
/// key gives. A host without a key registers with the admin token.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterHostRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// How the host confines jobs, e.g. `landlock+no_new_privs+rlimits`
    /// or `none (turned off by the host's owner)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The host's ed25519 public key (32 bytes, base64url, no padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The challenge from `POST /v1/hosts/challenge`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// The ed25519 signature (64 bytes, base64url, no padding) of
    /// [`registration_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// An enrollment key an admin issued: the host is approved at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_key: Option<String>,
    /// A host with a key that signs a receipt of every run: from then on
    /// its completions without one are refused. Part of what it signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signs_receipts: Option<bool>,
}

/// `POST /v1/hosts/challenge`: what a host signs to register with its key.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Good for one registration, within a minute of being issued, at
    /// any coordinator of the cluster.
    pub challenge: String,
    pub cluster_id: String,
}

/// What a host signs to register: every field that names it or says what
/// it can do, after a line that says what the bytes are for, so the
/// signature means nothing anywhere else.
// Format: UTF-8 lines, each ending in "\n":
//         "skyclaw host registration v1", "cluster " clusterId,
//         "host " hostId, "key " publicKey (base64url), "challenge " challenge,
//         "name " name, then only for the fields sent: "capabilities " the
//         capabilities joined by "," (an empty list: nothing after the
//         space), "max-parallel " maxParallel (decimal), "sandbox " sandbox.
//         A field absent and a field empty sign differently; a field
//         holding "\n" or "\r" is refused before anything is signed.
pub fn registration_message(
    cluster_id: &str,
    host_id: &str,
    public_key: &str,
    challenge: &str,
    request: &RegisterHostRequest,
) -> Vec<u8> {
    let mut message = format!(
        "skyclaw host registration v1\ncluster {cluster_id}\nhost {host_id}\nkey {public_key}\n\
         challenge {challenge}\nname {}\n",
        request.name
    );
    if let Some(capabilities) = &request.capabilities {
        message += &format!("capabilities {}\n", capabilities.join(","));
    }
    if let Some(max_parallel) = request.max_parallel {
        message += &format!("max-parallel {max_parallel}\n");
    }
    if let Some(sandbox) = &request.sandbox {
        message += &format!("sandbox {sandbox}\n");
    }
    if request.signs_receipts == Some(true) {
        message += "receipts yes\n";
    }
    message.into_bytes()
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostResponse {
    pub host: Host,
    /// For a host that registered with its key: the credential it sends
    /// on its own routes (`x-skyclaw-token`) until `sessionExpiresAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HostsResponse {
    pub hosts: Vec<Host>,
}

/// A job a host says it is running, with the lease it runs it under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningJob {
    pub job_id: String,
    pub lease_epoch: u32,
}

/// `POST /v1/hosts/:id/heartbeat`. `running` renews those leases.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_leases: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Vec<RunningJob>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    pub host: Host,
    /// Running jobs someone asked to cancel: stop them and report.
    #[serde(default)]
    pub cancel: Vec<String>,
    /// Reported jobs whose lease this host no longer holds: stop them, do
    /// not report (a completion would be rejected as stale).
    #[serde(default)]
    pub lost: Vec<String>,
}
