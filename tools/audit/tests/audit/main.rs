//! The auditor against real files: valid synthetic logs, each way a log can
//! be tampered with, logs that break an invariant, receipts that do not
//! verify, garbage, and a real
//! coordinator's log over HTTP and in its data directory.

mod util;

mod coordinator;
mod garbage;
mod invariants;
mod receipts;
mod tampering;
mod valid;
