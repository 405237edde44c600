//! `GET /v1/openapi.json`: the API's OpenAPI document
//! (`skyclaw_api::openapi`), serialized once when the routes are built.
//! Served without the token: it is generated from this build's code and
//! holds nothing of the cluster's data, and a client or fuzzer reads it to
//! learn how to send the token at all (the scheme is declared in it).

use std::sync::Arc;

use bytes::Bytes;
use skyclaw_api::routes;
use warp::filters::BoxedFilter;
use warp::http::HeaderValue;
use warp::reply::Response;
use warp::Filter;

use super::filters::at;
use crate::coordinator::Coordinator;

pub fn route(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let document = Bytes::from(
        serde_json::to_vec(&skyclaw_api::openapi::document())
            .expect("a document of string keys and plain values serializes"),
    );
    at(coordinator, routes::OPENAPI)
        .map(move || {
            let mut response = Response::new(document.clone().into());
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        })
        .boxed()
}
