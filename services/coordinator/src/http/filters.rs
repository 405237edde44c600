//! Routing-level pieces: matching a route of `skyclaw_api::routes` and
//! applying its rule to the caller, the coordinator handle, query strings
//! and the bounded request body.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use skyclaw_api::routes::{Access, Method, Route, Segment, PEER_HEADER, TOKEN_HEADER};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::Filter;

use super::error::ApiError;
use crate::access::{Principal, Refusal};
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

/// Matches `route` (its whole path, any id in it, and its method) and
/// lets through only callers its rule admits: 401 without a valid
/// credential, 403 with one that lacks the right.
pub fn at(coordinator: &Arc<Coordinator>, route: Route) -> BoxedFilter<()> {
    caller_at(coordinator, route)
        .map(drop)
        .untuple_one()
        .boxed()
}

/// Like [`at`], and extracts the caller, for a handler that checks the
/// resource it reaches (an account's jobs, a host's own routes).
pub fn caller_at(coordinator: &Arc<Coordinator>, route: Route) -> BoxedFilter<(Caller,)> {
    matching(route)
        .and(authorized(coordinator, route.access))
        .boxed()
}

/// Matches `route`'s path and method, and nothing else: for a filter that
/// decides something cheaper before the route's rule is applied.
pub fn matching(route: Route) -> BoxedFilter<()> {
    let path = route
        .segments()
        .fold(warp::any().boxed(), |path, segment| match segment {
            Segment::Literal(literal) => path.and(warp::path(literal)).boxed(),
            Segment::Id => path
                .and(warp::path::param::<String>())
                .map(drop)
                .untuple_one()
                .boxed(),
            Segment::Rest => path.and(warp::path::tail()).map(drop).untuple_one().boxed(),
        });
    path.and(warp::path::end()).and(method(route)).boxed()
}

/// Matches `route`, whose path names an id, and extracts the id.
pub fn at_id(coordinator: &Arc<Coordinator>, route: Route) -> BoxedFilter<(PathId,)> {
    caller_at_id(coordinator, route)
        .map(|id, _caller: Caller| id)
        .boxed()
}

/// Like [`at_id`], and extracts the caller too.
pub fn caller_at_id(coordinator: &Arc<Coordinator>, route: Route) -> BoxedFilter<(PathId, Caller)> {
    assert!(route.takes_id(), "{} names no id", route.path);
    let (mut before, mut after) = (warp::any().boxed(), warp::any().boxed());
    let mut seen = false;
    for segment in route.segments() {
        match segment {
            Segment::Literal(literal) if seen => after = after.and(warp::path(literal)).boxed(),
            Segment::Literal(literal) => before = before.and(warp::path(literal)).boxed(),
            Segment::Id => seen = true,
            Segment::Rest => panic!("{} takes the rest of its path: see `at_rest`", route.path),
        }
    }
    before
        .and(warp::path::param::<PathId>())
        .and(after)
        .and(warp::path::end())
        .and(method(route))
        .and(authorized(coordinator, route.access))
        .boxed()
}

/// Matches `route`, whose path ends in the rest of the request's path,
/// and extracts that rest (as sent, not decoded).
pub fn at_rest(coordinator: &Arc<Coordinator>, route: Route) -> BoxedFilter<(String,)> {
    let mut before = warp::any().boxed();
    for segment in route.segments() {
        match segment {
            Segment::Literal(literal) => before = before.and(warp::path(literal)).boxed(),
            Segment::Rest => {}
            Segment::Id => panic!("{} names an id: see `at_id`", route.path),
        }
    }
    before
        .and(warp::path::tail())
        .and(method(route))
        .and(authorized(coordinator, route.access))
        .map(|tail: warp::path::Tail, _caller: Caller| tail.as_str().to_string())
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

/// Who calls, as far as the coordinator could tell from the credential.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// The credential as presented: a read passed on to the leader carries
    /// it, so the leader judges the caller itself.
    pub credential: Option<HeaderValue>,
}

impl Caller {
    /// Refuses a caller that is not host `host_id`. An admin speaks for
    /// hosts without keys (the MVP's, which hold the admin token); a host
    /// with a key speaks for itself alone, so what the log says it did, it
    /// did.
    pub fn acting_as(&self, coordinator: &Coordinator, host_id: &str) -> Result<(), ApiError> {
        let allowed = match &self.principal {
            Principal::Host(id) => id == host_id,
            Principal::Open => true,
            Principal::Admin => coordinator.read(|m| {
                m.state
                    .host(host_id)
                    .is_none_or(|host| host.public_key.is_none())
            }),
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not act as host {host_id}",
                self.principal.describe()
            ),
        ))
    }
}

/// Identifies the caller from its headers and applies `access`. A public
/// route looks at no header.
pub fn authorized(coordinator: &Arc<Coordinator>, access: Access) -> BoxedFilter<(Caller,)> {
    if access == Access::Public {
        return warp::any()
            .map(|| Caller {
                principal: Principal::Anonymous,
                credential: None,
            })
            .boxed();
    }
    let coordinator = coordinator.clone();
    header(PEER_HEADER)
        .and(header(TOKEN_HEADER))
        .and(header("authorization"))
        .and_then(
            move |peer: Option<HeaderValue>,
                  token: Option<HeaderValue>,
                  authorization: Option<HeaderValue>| {
                let bearer = authorization
                    .as_ref()
                    .and_then(|value| value.to_str().ok())
                    .and_then(bearer_token)
                    .and_then(|token| HeaderValue::from_str(token).ok());
                let credential = token.or(bearer);
                let credentials = &coordinator.credentials;
                // The state is read only for an API key or a host: most
                // requests take no lock here.
                let judged = credentials
                    .identify(
                        peer.as_ref().map(HeaderValue::as_bytes),
                        credential.as_ref().map(HeaderValue::as_bytes),
                        coordinator.clock.now_ms(),
                        |hash| coordinator.read(|m| m.state.key_by_hash(hash).cloned()),
                    )
                    .and_then(|principal| {
                        credentials.permits(access, &principal, |host| {
                            coordinator.read(|m| m.state.host(host).map(|host| host.access))
                        })?;
                        Ok(principal)
                    });
                async move {
                    match judged {
                        Ok(principal) => Ok(Caller {
                            principal,
                            credential,
                        }),
                        Err(Refusal::Unauthenticated(message)) => Err(warp::reject::custom(
                            ApiError::new(StatusCode::UNAUTHORIZED, message),
                        )),
                        Err(Refusal::Forbidden(message)) => Err(warp::reject::custom(
                            ApiError::new(StatusCode::FORBIDDEN, message),
                        )),
                    }
                }
            },
        )
        .boxed()
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
