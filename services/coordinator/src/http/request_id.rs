//! Request ids: every request runs in a tracing span named `request` that
//! holds its id, so each log line about it carries the id, and the answer
//! returns the id in `x-request-id`. The id is the caller's own
//! `x-request-id` when that is plausible (1 to 128 characters of
//! `A-Z a-z 0-9 . _ - : @ + / =`, nothing that could break a log line or a
//! header) and a new random one otherwise. A follower passes the caller's
//! header on to the leader with a write, so both logs show the same id;
//! an id the follower made up stays its own.

use std::convert::Infallible;

use skyclaw_api::routes::REQUEST_ID_HEADER;
use warp::http::{HeaderMap, HeaderValue};
use warp::reply::Response;
use warp::Filter;

/// The longest id taken from a caller.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// One request's id; always a valid header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The caller's id, if it is plausible.
    pub fn given(value: &[u8]) -> Option<RequestId> {
        let plausible = (1..=MAX_REQUEST_ID_BYTES).contains(&value.len())
            && value.iter().all(|&byte| {
                byte.is_ascii_alphanumeric()
                    || matches!(byte, b'.' | b'_' | b'-' | b':' | b'@' | b'+' | b'/' | b'=')
            });
        if plausible {
            HeaderValue::from_bytes(value).ok().map(RequestId)
        } else {
            None
        }
    }

    /// A new id: 32 random hex digits.
    pub fn made_up() -> RequestId {
        let id = uuid::Uuid::new_v4().simple().to_string();
        RequestId(HeaderValue::from_str(&id).expect("hex digits are a header value"))
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// Puts the id on the answer.
    pub fn stamp(&self, response: &mut Response) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, self.0.clone());
    }
}

/// The span a request runs in; its `request_id` is filled in by [`id`]
/// once the request's headers are read.
pub fn span(info: warp::trace::Info<'_>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %info.method(),
        path = %info.path(),
        request_id = tracing::field::Empty,
    )
}

/// The request's id, recorded in the request's span.
pub fn id() -> impl Filter<Extract = (RequestId,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| {
        let id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| RequestId::given(value.as_bytes()))
            .unwrap_or_else(RequestId::made_up);
        tracing::Span::current().record("request_id", id.as_str());
        id
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_ids_are_kept_and_others_replaced() {
        for kept in [
            "abc",
            "0af7651916cd43dd8448eb211c80319c",
            "Root=1-5e1b:a/b+c@d_e.f",
        ] {
            assert_eq!(RequestId::given(kept.as_bytes()).unwrap().as_str(), kept);
        }
        let long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        for refused in ["", "a b", "a\nb", "é", "a\"b", "<script>", long.as_str()] {
            assert!(
                RequestId::given(refused.as_bytes()).is_none(),
                "{refused:?}"
            );
        }
        assert!(RequestId::given(b"a\xffb").is_none());
    }

    #[test]
    fn made_up_ids_are_new_and_plausible() {
        let (one, two) = (RequestId::made_up(), RequestId::made_up());
        assert_ne!(one, two);
        assert_eq!(RequestId::given(one.as_str().as_bytes()), Some(one));
    }
}
