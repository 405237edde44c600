//! The web dashboard's routes: one page, its script and its style sheet,
//! embedded in the binary so every coordinator serves the same dashboard
//! with nothing to install. They need no credential: the page asks for
//! one and sends it with each API call it makes. Each answer forbids
//! inline script, framing and content sniffing, since the page shows text
//! strangers wrote (job commands, environments, output).

use std::sync::Arc;

use skyclaw_api::routes::{self, Route};
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::filters::at;
use crate::coordinator::Coordinator;

/// Scripts, styles, images and API calls come from this origin only; no
/// inline script or style, no plugin, no form posted elsewhere, never in
/// a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Each asset: its route, content type and bytes.
const ASSETS: [(Route, &str, &str); 3] = [
    (
        routes::UI,
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    ),
    (
        routes::UI_SCRIPT,
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        routes::UI_STYLE,
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
];

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let [first, rest @ ..] = ASSETS.map(|(route, content_type, body)| {
        at(coordinator, route)
            .map(move || asset(content_type, body))
            .boxed()
    });
    rest.into_iter()
        .fold(first, |routes, next| routes.or(next).unify().boxed())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // A coordinator upgraded in place serves its new dashboard at once.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
