//! The HTTP API. Routes are grouped by resource, one file each: [`jobs`],
//! [`hosts`], [`keys`], [`log`], [`proofs`], [`cluster`], raft's own [`replicate`], the
//! scrapers' [`metrics`] and the web dashboard's assets ([`ui`]); each file
//! holds its routes and handlers, and every handler parses, calls the
//! coordinator, and converts ([`convert`]). Route paths live once, in
//! `skyclaw_api::routes`, each with its rule; [`filters`] match them,
//! apply the rule to the caller (`crate::access`) and bound bodies; [`forward`] passes writes on a follower to the leader.
//! Around them all, [`request_id`] gives each request its id, span and
//! `x-request-id`, and every answer, errors included, is counted by route
//! template and status on its way out; [`openapi`] serves the API's
//! description.

mod cluster;
mod convert;
mod error;
mod filters;
mod forward;
mod hosts;
mod jobs;
mod json;
mod keys;
mod log;
mod metrics;
mod openapi;
mod proofs;
mod replicate;
pub mod request_id;
mod ui;

use std::future::Future;
use std::sync::Arc;

use skyclaw_api::routes::{self, LEADER_HEADER};
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::coordinator::Coordinator;
pub use error::ApiError;
use json::Handled;

/// Every route of the API, with JSON errors, the leader header, and each
/// request in a span with its id.
pub fn routes(coordinator: Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let health = filters::at(&coordinator, routes::HEALTH)
        .and(filters::with(coordinator.clone()))
        .then(health)
        .map(finish)
        .or(openapi::route(&coordinator))
        .unify();
    // Each route applies its own rule (`filters::at`).
    let api = jobs::routes(&coordinator)
        .or(hosts::routes(&coordinator))
        .unify()
        .or(keys::routes(&coordinator))
        .unify()
        .or(log::routes(&coordinator))
        .unify()
        .or(proofs::routes(&coordinator))
        .unify()
        .or(cluster::routes(&coordinator))
        .unify()
        .or(replicate::routes(&coordinator))
        .unify();
    let counted = coordinator.metrics.clone();
    let answered = health
        .or(metrics::routes(&coordinator))
        .unify()
        .or(ui::routes(&coordinator))
        .unify()
        .or(api)
        .unify()
        .recover(error::recover)
        .unify();
    request_id::id()
        .and(answered)
        .map(move |id: request_id::RequestId, mut response: Response| {
            id.stamp(&mut response);
            with_leader(&coordinator, response)
        })
        .with(warp::log::custom(move |info: warp::log::Info<'_>| {
            counted.request(
                info.method(),
                info.path(),
                info.status().as_u16(),
                info.elapsed(),
            )
        }))
        .with(warp::trace(request_id::span))
        .map(Reply::into_response)
        .boxed()
}

/// Unauthenticated: says the process serves, nothing more.
async fn health(coordinator: Arc<Coordinator>) -> Handled {
    json::reply(&skyclaw_api::Health {
        ok: true,
        node_id: coordinator.me.name.clone(),
    })
}

fn finish(handled: Handled) -> Response {
    handled.unwrap_or_else(ApiError::into_response)
}

fn with_leader(coordinator: &Coordinator, mut response: Response) -> Response {
    if let Some(leader) = coordinator.leader() {
        if let Ok(value) = warp::http::HeaderValue::from_str(&leader.name) {
            response.headers_mut().insert(LEADER_HEADER, value);
        }
    }
    response
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    coordinator: Arc<Coordinator>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(coordinator))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
