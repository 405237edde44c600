//! The OpenAPI document against the router, driven from both sides: every
//! route of `skyclaw_api::routes::ALL` is routed, and all but raft's are in
//! the document; every operation in the document is one of those routes
//! and is routed. The document is served without the token.

use std::collections::BTreeSet;

use serde_json::Value;
use skyclaw_api::routes::{self, TOKEN_HEADER};
use warp::http::StatusCode;

use crate::util::{TestNode, TOKEN};

/// (method, path) as the document and `routes::ALL` spell them.
type Operation = (String, String);

fn documented(document: &Value) -> BTreeSet<Operation> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// Whether the router has a route for `method` `path` (with an id filled
/// in): anything but 404 "no such route" (a 404 naming a missing job or
/// host still means the route is there).
async fn routed(node: &TestNode, (method, path): &Operation) -> bool {
    let response = warp::test::request()
        .method(method)
        .path(&path.replace("{id}", "some-id"))
        .header(TOKEN_HEADER, TOKEN)
        .reply(&node.routes)
        .await;
    let unknown = response.status() == StatusCode::NOT_FOUND
        && serde_json::from_slice::<Value>(response.body())
            .is_ok_and(|body| body["error"] == "no such route");
    !unknown
}

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let t = TestNode::start().await;
    let response = warp::test::request()
        .path(routes::OPENAPI.path)
        .reply(&t.routes)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = serde_json::from_slice(response.body()).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");

    let documented = documented(&document);
    let listed: BTreeSet<Operation> = routes::ALL
        .iter()
        .filter(|route| !routes::RAFT.contains(route))
        .map(|route| (route.method.as_str().to_string(), route.path.to_string()))
        .collect();
    assert_eq!(documented, listed, "the document lists exactly the routes");

    for route in routes::ALL {
        let operation = (route.method.as_str().to_string(), route.path.to_string());
        assert!(routed(&t, &operation).await, "{route:?} is not routed");
    }
    for operation in &documented {
        assert!(routed(&t, operation).await, "{operation:?} is not routed");
    }
    let unknown = ("GET".to_string(), "/v1/no-such-route".to_string());
    assert!(
        !routed(&t, &unknown).await,
        "the check tells a missing route"
    );
    t.stop().await;
}
