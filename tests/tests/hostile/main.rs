//! What a hostile host, job, enqueuer or network peer can try, each against
//! the real binaries on loopback, and what they must get: a clear refusal
//! that changes nothing, or a job that cannot reach past its sandbox.
//!
//! One module per kind of attacker; add a case where it belongs:
//!
//! - `setup`: a fresh machine's build prerequisites are detected exactly.
//! - `requests`: oversized and malformed fields, ids of nothing: refused by
//!   name, no raft entry, no memory kept.
//! - `mvp`: the MVP's host and scripts (encoded ids, heartbeats without
//!   `running`, empty `args`) keep working.
//! - `retries`: a host whose answer was lost retries without burning an
//!   attempt.
//! - `clock`: a coordinator's wall clock moved an hour either way.
//! - `forgery`: raft messages and joins from a holder of the admin token,
//!   or of nothing, in the full trust model: refused, nothing changes.
//! - `checkpoints`: a three-node cluster's checkpoints carry a majority of
//!   the voters' signatures, also with one voter down; only peers ask for
//!   a cosignature, and none is given past what a voter holds.
//! - `membership`: joins that do not prove the joiner or would evict a live
//!   member, and removing the last voter, are refused and change nothing.
//! - `oversize`: requests whose raft entries are large get a clean answer
//!   and cost no election.
//! - `job`: a job cannot reach the daemon, the host's files or past its
//!   limits, nor outlive itself or its lease.

#[path = "../harness/mod.rs"]
mod harness;
#[path = "../util/mod.rs"]
mod util;

mod checkpoints;
mod clock;
mod forgery;
mod http;
mod job;
mod membership;
mod mvp;
mod oversize;
mod requests;
mod retries;
mod setup;
