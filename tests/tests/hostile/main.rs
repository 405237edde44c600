//! What a hostile host, job, enqueuer or network peer can try, each against
//! the real binaries on loopback, and what they must get: a clear refusal
//! that changes nothing, or a job that cannot reach past its sandbox.
//!
//! One module per kind of attacker; add a case where it belongs:
//!
//! - `setup`: a fresh machine's build prerequisites are detected exactly.
//! - `membership`: joins that do not prove the joiner or would evict a live
//!   member, and removing the last voter, are refused and change nothing.
//! - `oversize`: requests whose raft entries are large get a clean answer
//!   and cost no election.

#[path = "../harness/mod.rs"]
mod harness;
#[path = "../util/mod.rs"]
mod util;

mod membership;
mod oversize;
mod setup;
