//! `GET /metrics`: the node's metrics in Prometheus text format, for an
//! admin's credential, which Prometheus sends as `Authorization: Bearer`
//! (every route takes that form).

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
    at(coordinator, routes::METRICS)
        .and(filters::with(coordinator.clone()))
        .map(|coordinator: Arc<Coordinator>| {
            warp::reply::with_header(coordinator.render_metrics(), CONTENT_TYPE, TEXT_FORMAT)
                .into_response()
        })
        .boxed()
}
