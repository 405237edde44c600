//! The HTTP API in three layers: routes (here), [`filters`] (auth, limits,
//! state injection) and [`handlers`] (one typed function per route); the
//! wire types live in `skyclaw-api`.

mod error;
mod filters;
mod forward;
mod handlers;
mod replicate;

use std::future::Future;

use skyclaw_api::routes::{IDEMPOTENCY_HEADER, LEADER_HEADER};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

pub use error::ApiError;
pub use filters::Node;
use filters::PathId;

/// Every route of the API, with JSON errors and the leader header.
pub fn routes(node: Node) -> BoxedFilter<(Response,)> {
    let limit = node.config.max_body_bytes;
    let auth = filters::auth(node.config.token.clone());
    let with = filters::with_node(node.clone());
    let body = filters::body(limit);
    let key = warp::header::optional::<String>(IDEMPOTENCY_HEADER);

    let health = warp::path!("health")
        .and(warp::get())
        .and(with.clone())
        .then(handlers::health)
        .map(finish)
        .boxed();

    let jobs = {
        let claim = warp::path!("v1" / "hosts" / PathId / "claim")
            .and(warp::post())
            .and(with.clone())
            .and(key)
            .and(body.clone())
            .then(|id: PathId, node, key, body| handlers::claim(node, id.0, key, body));
        let complete = warp::path!("v1" / "jobs" / PathId / "complete")
            .and(warp::post())
            .and(with.clone())
            .and(body.clone())
            .then(|id: PathId, node, body| handlers::complete(node, id.0, body));
        let enqueue = warp::path!("v1" / "jobs")
            .and(warp::post())
            .and(with.clone())
            .and(key)
            .and(body.clone())
            .then(handlers::enqueue);
        let batch = warp::path!("v1" / "jobs" / "batch")
            .and(warp::post())
            .and(with.clone())
            .and(key)
            .and(body.clone())
            .then(handlers::enqueue_batch);
        let get = warp::path!("v1" / "jobs" / PathId)
            .and(warp::get())
            .and(with.clone())
            .and(filters::query::<handlers::ReadQuery>())
            .then(|id: PathId, node, query| handlers::job_read(node, id.0, query));
        let list = warp::path!("v1" / "jobs")
            .and(warp::get())
            .and(with.clone())
            .and(filters::query::<handlers::ListQuery>())
            .then(handlers::list_jobs);
        let cancel = warp::path!("v1" / "jobs" / PathId / "cancel")
            .and(warp::post())
            .and(with.clone())
            .then(|id: PathId, node| handlers::cancel(node, id.0));
        claim
            .or(complete)
            .unify()
            .or(enqueue)
            .unify()
            .or(batch)
            .unify()
            .or(get)
            .unify()
            .or(list)
            .unify()
            .or(cancel)
            .unify()
            .map(finish)
            .boxed()
    };

    let hosts = {
        let heartbeat = warp::path!("v1" / "hosts" / PathId / "heartbeat")
            .and(warp::post())
            .and(with.clone())
            .and(body.clone())
            .then(|id: PathId, node, body| handlers::heartbeat(node, id.0, body));
        let register = warp::path!("v1" / "hosts" / "register")
            .and(warp::post())
            .and(with.clone())
            .and(body.clone())
            .then(handlers::register);
        let list = warp::path!("v1" / "hosts")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::hosts);
        heartbeat
            .or(register)
            .unify()
            .or(list)
            .unify()
            .map(finish)
            .boxed()
    };

    let inspect = {
        let state = warp::path!("v1" / "state")
            .and(warp::get())
            .and(with.clone())
            .and(filters::query::<handlers::ReadQuery>())
            .then(handlers::state_read);
        let status = warp::path!("v1" / "status")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::status);
        let head = warp::path!("v1" / "log" / "head")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::head);
        let digest = warp::path!("v1" / "state" / "digest")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::digest);
        let events = warp::path!("v1" / "events")
            .and(warp::get())
            .and(with.clone())
            .and(filters::query::<handlers::EventsQuery>())
            .then(handlers::events);
        state
            .or(status)
            .unify()
            .or(head)
            .unify()
            .or(digest)
            .unify()
            .or(events)
            .unify()
            .map(finish)
            .boxed()
    };

    let replication = {
        // Raft's own limits, not the client's: a follower must take every
        // entry its leader committed to.
        let addressed = filters::raft_target(node.id);
        let append = warp::path!("v1" / "replicate" / "append")
            .and(warp::post())
            .and(addressed.clone())
            .and(with.clone())
            .and(filters::body(crate::network::MAX_APPEND_BYTES))
            .then(replicate::append);
        let vote = warp::path!("v1" / "replicate" / "vote")
            .and(warp::post())
            .and(addressed.clone())
            .and(with.clone())
            .and(body.clone())
            .then(replicate::vote);
        let snapshot = warp::path!("v1" / "replicate" / "snapshot")
            .and(warp::post())
            .and(addressed)
            .and(with.clone())
            .and(filters::body(crate::network::MAX_SNAPSHOT_BYTES))
            .then(replicate::snapshot);
        append
            .or(vote)
            .unify()
            .or(snapshot)
            .unify()
            .map(finish)
            .boxed()
    };

    let cluster = {
        let hello = warp::path!("v1" / "cluster" / "hello")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::hello);
        let status = warp::path!("v1" / "cluster")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::cluster);
        let join = warp::path!("v1" / "cluster" / "join")
            .and(warp::post())
            .and(with.clone())
            .and(body.clone())
            .then(handlers::join);
        let add = warp::path!("v1" / "cluster" / "add")
            .and(warp::post())
            .and(with.clone())
            .and(body.clone())
            .then(handlers::add_member);
        let remove = warp::path!("v1" / "cluster" / "remove")
            .and(warp::post())
            .and(with.clone())
            .and(body.clone())
            .then(handlers::remove_member);
        hello
            .or(status)
            .unify()
            .or(join)
            .unify()
            .or(add)
            .unify()
            .or(remove)
            .unify()
            .map(finish)
            .boxed()
    };

    // On a follower, every POST but raft's own goes to the leader. The
    // leadership check comes before the body is read, so on the leader the
    // body is still there for the routes below.
    // The method is checked inside: `warp::post()` would reject every other
    // method as "not allowed", and that rejection outranks "not found", so
    // an unknown GET route would answer 405 instead of 404.
    let forwarded = warp::method()
        .and(with.clone())
        .and(warp::path::full())
        .and_then(
            |method: warp::http::Method, node: Node, path: warp::path::FullPath| async move {
                if method != warp::http::Method::POST
                    || path.as_str().starts_with("/v1/replicate/")
                    || node.is_leader()
                {
                    Err(warp::reject::not_found())
                } else {
                    Ok((node, path))
                }
            },
        )
        .untuple_one()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(body.clone())
        .then(
            |node: Node, path: warp::path::FullPath, query: String, headers, body| async move {
                let target = if query.is_empty() {
                    path.as_str().to_string()
                } else {
                    format!("{}?{query}", path.as_str())
                };
                forward::to_leader(&node, warp::http::Method::POST, &target, &headers, body).await
            },
        )
        .map(finish)
        .boxed();

    let api = auth.and(
        forwarded
            .or(jobs)
            .unify()
            .or(hosts)
            .unify()
            .or(inspect)
            .unify()
            .or(cluster)
            .unify()
            .or(replication)
            .unify(),
    );
    let leader_node = node.clone();
    health
        .or(api)
        .unify()
        .recover(error::recover)
        .unify()
        .map(move |response: Response| with_leader(&leader_node, response))
        .boxed()
}

fn finish(outcome: handlers::Outcome) -> Response {
    outcome.unwrap_or_else(ApiError::into_response)
}

fn with_leader(node: &Node, mut response: Response) -> Response {
    if let Some(leader) = node.leader() {
        if let Ok(value) = warp::http::HeaderValue::from_str(&leader.name) {
            response.headers_mut().insert(LEADER_HEADER, value);
        }
    }
    response
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    node: Node,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(node))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
