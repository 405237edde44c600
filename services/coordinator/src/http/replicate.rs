//! The server side of raft RPCs: MessagePack in, the raft handle's result
//! (success or raft error) MessagePack out.

use bytes::Bytes;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use warp::reply::Response;

use super::error::ApiError;
use super::filters::Node;
use super::handlers::Outcome;
use crate::network::MSGPACK;
use crate::raft::{NodeId, TypeConfig};

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    rmp_serde::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid raft message: {e}")))
}

fn reply<T: serde::Serialize>(result: &T) -> Outcome {
    let bytes = rmp_serde::to_vec_named(result).expect("raft messages encode");
    let mut response = Response::new(bytes.into());
    response.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static(MSGPACK),
    );
    Ok(response)
}

pub async fn append(node: Node, body: Bytes) -> Outcome {
    let request: AppendEntriesRequest<TypeConfig> = decode(&body)?;
    reply(&node.raft.append_entries(request).await)
}

pub async fn vote(node: Node, body: Bytes) -> Outcome {
    let request: VoteRequest<NodeId> = decode(&body)?;
    reply(&node.raft.vote(request).await)
}

pub async fn snapshot(node: Node, body: Bytes) -> Outcome {
    let request: InstallSnapshotRequest<TypeConfig> = decode(&body)?;
    reply(&node.raft.install_snapshot(request).await)
}
