//! Routing-level pieces: matching a route of `skyclaw_api::routes`, the
//! coordinator handle, authentication, query strings and the bounded
//! request body.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use skyclaw_api::routes::{Method, Route, Segment, TOKEN_HEADER};
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::Filter;

use super::error::ApiError;
use crate::coordinator::Coordinator;
use crate::network::RAFT_TARGET_HEADER;
use crate::raft::NodeId;

/// An id taken from a path segment, percent-decoded: the MVP's host encodes
/// ids (`openclaw%3Abox-1`), and every route decodes alike, so an id means
/// the same whichever way a client wrote it. A segment that does not decode
/// to UTF-8 names nothing that could exist, so the route answers 404.
#[derive(Clone, Debug)]
pub struct PathId(pub String);

impl std::str::FromStr for PathId {
    type Err = std::str::Utf8Error;

    fn from_str(segment: &str) -> Result<PathId, Self::Err> {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8()?;
        Ok(PathId(decoded.into_owned()))
    }
}

/// Matches `route`: its whole path (any id in it) and its method.
pub fn at(route: Route) -> BoxedFilter<()> {
    let path = route
        .segments()
        .fold(warp::any().boxed(), |path, segment| match segment {
            Segment::Literal(literal) => path.and(warp::path(literal)).boxed(),
            Segment::Id => path
                .and(warp::path::param::<String>())
                .map(drop)
                .untuple_one()
                .boxed(),
        });
    path.and(warp::path::end()).and(method(route)).boxed()
}

/// Matches `route`, whose path names an id, and extracts the id.
pub fn at_id(route: Route) -> BoxedFilter<(PathId,)> {
    assert!(route.takes_id(), "{} names no id", route.path);
    let (mut before, mut after) = (warp::any().boxed(), warp::any().boxed());
    let mut seen = false;
    for segment in route.segments() {
        match segment {
            Segment::Literal(literal) if seen => after = after.and(warp::path(literal)).boxed(),
            Segment::Literal(literal) => before = before.and(warp::path(literal)).boxed(),
            Segment::Id => seen = true,
        }
    }
    before
        .and(warp::path::param::<PathId>())
        .and(after)
        .and(warp::path::end())
        .and(method(route))
        .boxed()
}

fn method(route: Route) -> BoxedFilter<()> {
    match route.method {
        Method::Get => warp::get().boxed(),
        Method::Post => warp::post().boxed(),
    }
}

pub fn with(
    coordinator: Arc<Coordinator>,
) -> impl Filter<Extract = (Arc<Coordinator>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || coordinator.clone())
}

/// Requires the configured token, compared in constant time. A header
/// that is not text is a wrong token like any other (401), not a malformed
/// request.
pub fn auth(token: Option<String>) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    let token: Option<Arc<[u8]>> = token.map(|t| Arc::from(t.into_bytes()));
    header(TOKEN_HEADER)
        .and_then(move |given: Option<HeaderValue>| {
            let given = given.as_ref().map(HeaderValue::as_bytes);
            let checked = check(token.as_deref(), given, TOKEN_HEADER);
            async move { checked }
        })
        .untuple_one()
}

/// Like [`auth`], but also takes the token as `Authorization: Bearer
/// <token>`: a scraper can send that header and no other. The token
/// header wins when both come.
pub fn auth_or_bearer(
    token: Option<String>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    let token: Option<Arc<[u8]>> = token.map(|t| Arc::from(t.into_bytes()));
    header(TOKEN_HEADER)
        .and(header("authorization"))
        .and_then(
            move |given: Option<HeaderValue>, authorization: Option<HeaderValue>| {
                let bearer = authorization
                    .as_ref()
                    .and_then(|value| value.to_str().ok())
                    .and_then(bearer_token)
                    .map(str::as_bytes);
                let checked = check(
                    token.as_deref(),
                    given.as_ref().map(HeaderValue::as_bytes).or(bearer),
                    "x-skyclaw-token or Authorization: Bearer",
                );
                async move { checked }
            },
        )
        .untuple_one()
}

/// A header's raw value, if sent: a value that is not text is still a
/// (wrong) credential, refused with 401 like any other.
fn header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = std::convert::Infallible> + Clone {
    warp::header::value(name)
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 7235).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Whether `given` is the configured `token` (any, when none is), in
/// constant time; `credential` names where it was looked for.
fn check(
    token: Option<&[u8]>,
    given: Option<&[u8]>,
    credential: &str,
) -> Result<(), warp::Rejection> {
    let Some(token) = token else {
        return Ok(());
    };
    match given {
        Some(given) if bool::from(given.ct_eq(token)) => Ok(()),
        Some(_) => Err(warp::reject::custom(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("invalid {credential}"),
        ))),
        None => Err(warp::reject::custom(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("missing {credential}"),
        ))),
    }
}

/// Refuses a raft RPC meant for another raft id than this node's, with
/// 421. After a lost disk the old incarnation's URL reaches the new one:
/// answering for the old id would show the leader a follower log that went
/// backwards (openraft's leader panics on that) and could grant a vote in
/// the old member's name.
pub fn raft_target(id: NodeId) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::optional::<NodeId>(RAFT_TARGET_HEADER)
        .and_then(move |target: Option<NodeId>| async move {
            match target {
                Some(target) if target == id => Ok(()),
                Some(target) => Err(warp::reject::custom(ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!("this raft message is for member {target}; this node is member {id}"),
                ))),
                None => Err(warp::reject::custom(ApiError::bad_request(format!(
                    "missing {RAFT_TARGET_HEADER} header"
                )))),
            }
        })
        .untuple_one()
}

/// The query string as `T`, refused with 400 naming the parameter that
/// does not parse (warp's own query filter says only that one did not).
pub fn query<T>() -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone
where
    T: DeserializeOwned + Send + 'static,
{
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            let parameters = form_urlencoded::parse(raw.as_bytes());
            serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(parameters))
                .map_err(|e| {
                    warp::reject::custom(ApiError::bad_request(format!(
                        "invalid query string: {}: {}",
                        e.path(),
                        e.inner()
                    )))
                })
        })
}

/// The request body, refused with 413 past `limit` bytes, whether the
/// client declared its length or streamed it.
pub fn body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |declared: Option<u64>| async move {
            match declared {
                Some(length) if length > limit => Err(too_large(limit)),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |stream| collect(stream, limit))
}

async fn collect<S, B>(stream: S, limit: u64) -> Result<Bytes, warp::Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = Box::pin(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            warp::reject::custom(ApiError::bad_request(format!("reading the body: {e}")))
        })?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(too_large(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            body.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

fn too_large(limit: u64) -> warp::Rejection {
    warp::reject::custom(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {limit} bytes"),
    ))
}
