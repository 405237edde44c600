//! Route paths, header names and time limits, shared by the server, the
//! client and tests.

use std::time::Duration;

/// The shared secret every request carries.
pub const TOKEN_HEADER: &str = "x-skyclaw-token";
/// Makes an enqueue idempotent: same key and body, same job.
pub const IDEMPOTENCY_HEADER: &str = "x-idempotency-key";
/// Names the current leader on every response, when known.
pub const LEADER_HEADER: &str = "x-skyclaw-leader";
/// Content type of `GET /v1/events` in its binary form.
pub const SEGMENT_CONTENT_TYPE: &str = "application/vnd.skyclaw.segment";
/// Set on a request one coordinator passes to the leader, so it is never
/// passed on twice.
pub const FORWARDED_HEADER: &str = "x-skyclaw-forwarded";

/// How long a membership change (`POST /v1/cluster/add`) may take: the new
/// member first catches up, through a snapshot if it is far behind.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);
