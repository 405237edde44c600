//! The web dashboard's assets: served without a token, with a policy that
//! forbids inline script, framing and sniffing; the API behind it still
//! wants the token.

use skyclaw_api::routes;
use warp::http::StatusCode;

use crate::util::TestNode;

#[tokio::test]
async fn the_dashboard_is_served_without_a_token_under_a_strict_policy() {
    let t = TestNode::start().await;
    for (route, content_type) in [
        (routes::UI, "text/html"),
        (routes::UI_SCRIPT, "text/javascript"),
        (routes::UI_STYLE, "text/css"),
    ] {
        let response = warp::test::request()
            .path(route.path)
            .reply(&t.routes)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{}", route.path);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            header("content-type").starts_with(content_type),
            "{}",
            route.path
        );
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'self'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        assert!(!response.body().is_empty());
    }
    let page = warp::test::request().path("/ui").reply(&t.routes).await;
    let html = String::from_utf8_lossy(page.body()).into_owned();
    assert!(html.contains("/ui/app.js"), "the page loads its script");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "nothing inline that the policy would block"
    );

    let (status, _) = crate::util::decode(
        warp::test::request()
            .path(routes::SUMMARY.path)
            .reply(&t.routes)
            .await,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let post = warp::test::request()
        .method("POST")
        .path(routes::UI.path)
        .reply(&t.routes)
        .await;
    assert_ne!(
        post.status(),
        StatusCode::OK,
        "the dashboard is read with GET only"
    );
    t.stop().await;
}
