//! The API key routes: issue, list, revoke. Admins only (the rule is on
//! each route). Each handler parses, calls the coordinator, and converts.

use std::sync::Arc;

use bytes::Bytes;
use skyclaw_api::{self as api, routes};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::filters::{self, at, at_id, PathId};
use super::forward::{unless_leading, Deadline};
use super::json::{parse, reply, Handled};
use super::{convert, finish};
use crate::coordinator::Coordinator;

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let body = filters::body(coordinator.config.max_body_bytes);
    let write = |route| unless_leading(coordinator, route, Deadline::Write);

    let issue = at(coordinator, routes::ISSUE_KEY)
        .and(with.clone())
        .and(body)
        .then(issue);
    let revoke = at_id(coordinator, routes::REVOKE_KEY)
        .and(with.clone())
        .then(revoke);
    let list = at(coordinator, routes::KEYS).and(with).map(list);

    write(routes::ISSUE_KEY)
        .or(issue.map(finish))
        .unify()
        .or(write(routes::REVOKE_KEY))
        .unify()
        .or(revoke.map(finish))
        .unify()
        .or(list.map(finish))
        .unify()
        .boxed()
}

async fn issue(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::IssueKeyRequest = parse(&body)?;
    request.check()?;
    let issued = coordinator.issue_key(request).await?;
    reply(&api::IssuedKey {
        key: convert::key(issued.key),
        secret: issued.secret,
    })
}

async fn revoke(key: PathId, coordinator: Arc<Coordinator>) -> Handled {
    let key = coordinator.revoke_key(&key.0).await?;
    reply(&api::KeyResponse {
        key: convert::key(key),
    })
}

fn list(coordinator: Arc<Coordinator>) -> Handled {
    let keys = coordinator.keys().into_iter().map(convert::key).collect();
    reply(&api::KeysResponse { keys })
}
