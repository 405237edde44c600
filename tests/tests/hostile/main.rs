//! What a hostile host, job, enqueuer or network peer can try, each against
//! the real binaries on loopback, and what they must get: a clear refusal
//! that changes nothing, or a job that cannot reach past its sandbox.
//!
//! One module per kind of attacker; add a case where it belongs:
//!
//! - `setup`: a fresh machine's build prerequisites are detected exactly.
//! - `clock`: a coordinator's wall clock moved an hour either way.

#[path = "../harness/mod.rs"]
mod harness;
#[path = "../util/mod.rs"]
mod util;

mod clock;
mod setup;
