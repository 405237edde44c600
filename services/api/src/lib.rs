//! Skyclaw's HTTP wire types: the JSON bodies of every route, the route
//! paths, and the error body. Field names are camelCase and match the
//! TypeScript MVP; new fields are added beside the MVP's, never instead.
//!
//! Layout:
//! - [`routes`]: paths and header names
//! - [`limits`]: what a request may carry, checked before anything happens
//! - [`openapi`]: the OpenAPI document, generated from these types and the
//!   routes
//! - [`jobs`], [`hosts`], [`keys`], [`log`], [`proofs`], [`cluster`]: each resource's
//!   request and response bodies, re-exported here
//! - this file: the error body and the answers of `/health` and a change

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use skyclaw_log_format::event::Payload;
pub use skyclaw_state::JobStatus;

mod cluster;
mod hosts;
mod jobs;
mod keys;
pub mod limits;
mod log;
pub mod openapi;
mod proofs;
pub mod routes;

pub use cluster::*;
pub use hosts::*;
pub use jobs::*;
pub use keys::*;
pub use log::*;
pub use proofs::*;

/// The body of every error response, whatever the status.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /health`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub ok: bool,
    pub node_id: String,
}

/// What a membership change answers once it is done.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}
