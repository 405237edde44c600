//! A real coordinator in a temporary directory: every HTTP route through
//! `warp::test` (no socket), and a restart on the same data.
//!
//! - [`access`]: every route against every kind of caller; keyed hosts,
//!   keys, accounts, revocation, the three modes
//! - [`basics`]: health, the token, unknown routes and ids, bad input, the
//!   body limit
//! - [`hosts`]: register, list, heartbeat (renewal, cancel delivery, lost)
//! - [`claims`]: the MVP and multi-job shapes, order, capabilities, long poll
//! - [`jobs`]: enqueue, idempotency, batch, get, list with filters and
//!   pages (and the bound on what one list looks at), the summary, cancel,
//!   complete
//! - [`log`]: head, events as a segment and as JSON, digest, state
//! - [`entries`]: a request too large for one raft entry gets 413
//! - [`membership`]: joins that do not hold, removing the last voter
//! - [`openapi`]: the document lists exactly the routes, all routed
//! - [`receipts`]: signed receipts refused unless they hold; proofs and
//!   checkpoints checked with the log format's own verifiers
//! - [`request_id`]: `x-request-id` on every answer
//! - [`restart`]: stop and start on the same directory
//! - [`retirement`]: ended jobs leaving the live state, read from disk
//! - [`ui`]: the dashboard's assets and the headers they carry
//! - [`util`]: starting a node, requests, waiting with a deadline

mod access;
mod basics;
mod claims;
mod entries;
mod hosts;
mod jobs;
mod log;
mod membership;
mod openapi;
mod receipts;
mod request_id;
mod restart;
mod retirement;
mod ui;
mod util;
