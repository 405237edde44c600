//! What the black-box tests and the benchmark share to run real
//! coordinators: the built binaries started on loopback, each with its own
//! data directory, optionally behind a proxy that keeps its URL, counts its
//! traffic and can cut its links; and the calls and waits that drive them.
//! Every wait polls with a deadline and names what it waited for; every
//! process is killed when its handle drops. Failures panic with what was
//! seen: this kit serves tests and a benchmark, not users.
//!
//! Layout:
//! - [`cluster`]: [`Cluster`], coordinators forming one cluster, and how
//!   they are reached ([`Routing`])
//! - [`node`]: [`Node`], one coordinator process: its logs and resources
//! - [`proxy`]: the loopback TCP proxy in front of a node, and the cuts
//!   between nodes
//! - [`http`]: [`Api`], raw HTTP calls with the kit's token
//! - [`host_key`]: [`HostKey`], a keyed host's signed registration
//! - [`wait`]: [`wait_until`] and [`wait_for`], polling with a deadline
//! - [`binary`]: finding the built binaries, clean commands for them

pub mod binary;
pub mod cluster;
pub mod host_key;
pub mod http;
pub mod node;
pub mod proxy;
pub mod wait;

pub use cluster::{Cluster, Options, Routing};
pub use host_key::HostKey;
pub use http::{Api, Reply, TOKEN};
pub use node::Node;
pub use wait::{wait_for, wait_until};
