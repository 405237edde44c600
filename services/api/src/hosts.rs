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
}

/// `POST /v1/hosts/register`.
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
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HostResponse {
    pub host: Host,
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
