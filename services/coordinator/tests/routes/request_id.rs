//! Every answer carries `x-request-id`: the caller's when it is plausible,
//! a made-up one otherwise, on errors as on successes.

use skyclaw_api::routes::{REQUEST_ID_HEADER, TOKEN_HEADER};
use warp::http::StatusCode;

use crate::util::{TestNode, TOKEN};

async fn answer_id(
    t: &TestNode,
    path: &str,
    token: bool,
    given: Option<&[u8]>,
) -> (StatusCode, String) {
    let mut request = warp::test::request().path(path);
    if token {
        request = request.header(TOKEN_HEADER, TOKEN);
    }
    if let Some(given) = given {
        request = request.header(REQUEST_ID_HEADER, given);
    }
    let response = request.reply(&t.routes).await;
    let id = response
        .headers()
        .get(REQUEST_ID_HEADER)
        .unwrap_or_else(|| panic!("{path}: no {REQUEST_ID_HEADER}"))
        .to_str()
        .expect("a text header")
        .to_string();
    (response.status(), id)
}

fn made_up(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_answer_carries_the_callers_id_or_a_new_one() {
    let t = TestNode::start().await;
    let given: &[u8] = b"client-7f3a:retry@2";
    for (path, token, status) in [
        ("/v1/status", true, StatusCode::OK),
        ("/health", false, StatusCode::OK),
        ("/v1/status", false, StatusCode::UNAUTHORIZED),
        ("/v1/no-such-route", true, StatusCode::NOT_FOUND),
        ("/v1/jobs/no-such-job", true, StatusCode::NOT_FOUND),
    ] {
        let (answered, id) = answer_id(&t, path, token, Some(given)).await;
        assert_eq!(answered, status, "{path}");
        assert_eq!(id.as_bytes(), given, "{path}: the caller's id comes back");

        let (_, first) = answer_id(&t, path, token, None).await;
        let (_, second) = answer_id(&t, path, token, None).await;
        assert!(made_up(&first), "{path}: {first}");
        assert_ne!(first, second, "{path}: each request gets its own");
    }
    let too_long = vec![b'a'; 129];
    for implausible in [
        &b"has space"[..],
        b"quote\"d",
        b"\xff\xfe",
        b"",
        too_long.as_slice(),
    ] {
        let (status, id) = answer_id(&t, "/v1/status", true, Some(implausible)).await;
        assert_eq!(status, StatusCode::OK, "an odd id is replaced, not refused");
        assert!(made_up(&id), "{implausible:?} became {id}");
    }
    t.stop().await;
}
