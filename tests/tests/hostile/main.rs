//! What a hostile host, job, enqueuer or network peer can try, each against
//! the real binaries on loopback, and what they must get: a clear refusal
//! that changes nothing, or a job that cannot reach past its sandbox.
//!
//! One module per kind of attacker; add a case where it belongs:
//!
//! - `setup`: a fresh machine's build prerequisites are detected exactly.
//! - `job`: a job cannot reach the daemon, the host's files or past its
//!   limits, nor outlive itself or its lease.

#[path = "../harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../util/mod.rs"]
mod util;

mod job;
mod setup;
