//! The flags every client command shares, from the client crate (so that
//! `skyclaw audit` and `skyclaw-audit` take the very same ones).

pub use skyclaw_client::{non_empty, ConnectArgs as ClientArgs};
