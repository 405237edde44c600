//! `GET /metrics`: the node's metrics in Prometheus text format. It takes
//! the token as every route does, or as `Authorization: Bearer <token>`,
//! the one way Prometheus can send a credential.

use std::sync::Arc;

use skyclaw_api::routes;
use warp::filters::BoxedFilter;
use warp::http::header::CONTENT_TYPE;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::filters::{self, at};
use crate::coordinator::Coordinator;

/// The content type of Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    at(routes::METRICS)
        .and(filters::auth_or_bearer(coordinator.config.token.clone()))
        .and(filters::with(coordinator.clone()))
        .map(|coordinator: Arc<Coordinator>| {
            warp::reply::with_header(coordinator.render_metrics(), CONTENT_TYPE, TEXT_FORMAT)
                .into_response()
        })
        .boxed()
}
