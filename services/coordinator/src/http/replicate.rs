//! The server side of raft RPCs: MessagePack in, the raft handle's result
//! (success or raft error) MessagePack out.

use std::sync::Arc;

use bytes::Bytes;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use skyclaw_api::routes;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::filters::{self, at};
use super::finish;
use super::json::Handled;
use crate::coordinator::Coordinator;
use crate::network::{MAX_APPEND_BYTES, MAX_SNAPSHOT_BYTES, MSGPACK};
use crate::raft::{NodeId, TypeConfig};

/// Raft's own routes. Their body limits are raft's, not the client's: a
/// follower must take every entry its leader committed to. Never passed
/// to the leader: each is for the node it reaches.
pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let addressed = filters::raft_target(coordinator.id);
    let append = at(coordinator, routes::APPEND)
        .and(addressed.clone())
        .and(with.clone())
        .and(filters::body(MAX_APPEND_BYTES))
        .then(append);
    let vote = at(coordinator, routes::VOTE)
        .and(addressed.clone())
        .and(with.clone())
        .and(filters::body(coordinator.config.max_body_bytes))
        .then(vote);
    let snapshot = at(coordinator, routes::SNAPSHOT)
        .and(addressed)
        .and(with)
        .and(filters::body(MAX_SNAPSHOT_BYTES))
        .then(snapshot);
    append
        .or(vote)
        .unify()
        .or(snapshot)
        .unify()
        .map(finish)
        .boxed()
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    rmp_serde::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid raft message: {e}")))
}

fn reply<T: serde::Serialize>(result: &T) -> Handled {
    let bytes = rmp_serde::to_vec_named(result).expect("raft messages encode");
    let mut response = Response::new(bytes.into());
    response.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static(MSGPACK),
    );
    Ok(response)
}

async fn append(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: AppendEntriesRequest<TypeConfig> = decode(&body)?;
    reply(&coordinator.raft.append_entries(request).await)
}

async fn vote(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: VoteRequest<NodeId> = decode(&body)?;
    reply(&coordinator.raft.vote(request).await)
}

async fn snapshot(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: InstallSnapshotRequest<TypeConfig> = decode(&body)?;
    reply(&coordinator.raft.install_snapshot(request).await)
}
