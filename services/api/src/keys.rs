//! The API key routes' bodies: issuing, listing and revoking keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/keys`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueKeyRequest {
    /// `admin`, `enqueuer`, `auditor` or `enroll` (approves the hosts
    /// that present it).
    pub role: String,
    /// An enqueuer's account: its jobs are the only ones the key reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// An enqueuer's: any of `enqueue`, `read`, `cancel` (default: all
    /// three). An auditor's is `log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The key is refused this long after it is issued. Default: never
    /// (an enrollment key: one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// An enrollment key: how many hosts it may approve. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// A key as the API shows it; its secret is shown once, when issued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    pub id: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub scopes: Vec<String>,
    pub issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// An enrollment key's remaining uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// `POST /v1/keys` answers with the key and its secret, which the
/// coordinator keeps only as a hash: this is the one time it is shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKey {
    pub key: Key,
    pub secret: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KeysResponse {
    pub keys: Vec<Key>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyResponse {
    pub key: Key,
}
