//! Raft RPCs between coordinators: MessagePack over HTTP, under
//! `/v1/replicate/…`, authenticated with the cluster token. AppendEntries is
//! the incremental log shipping; InstallSnapshot the full-state fallback.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyclaw_api::routes::TOKEN_HEADER;

use crate::raft::{Member, NodeId, TypeConfig};

pub const MSGPACK: &str = "application/msgpack";

/// The raft id an RPC is meant for. Raft reaches a member by its URL, and
/// after a disk is lost that URL answers as a new incarnation: the receiver
/// refuses an RPC for another id with 421 (see `http::filters::raft_target`).
pub const RAFT_TARGET_HEADER: &str = "x-skyclaw-raft-target";

/// Makes one cheap client per target; they share a connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    token: Option<String>,
}

impl Network {
    pub fn new(token: Option<String>) -> Network {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("a plain HTTP client builds");
        Network { http, token }
    }
}

pub struct PeerClient {
    network: Network,
    target: NodeId,
    url: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            network: self.clone(),
            target,
            url: node.url.trim_end_matches('/').to_string(),
        }
    }
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        route: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error,
        RaftError<NodeId, E>: DeserializeOwned,
    {
        let body = rmp_serde::to_vec_named(request)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut builder = self
            .network
            .http
            .post(format!("{}/v1/replicate/{route}", self.url))
            .header("content-type", MSGPACK)
            .header(RAFT_TARGET_HEADER, self.target.to_string())
            .timeout(option.soft_ttl())
            .body(body);
        if let Some(token) = &self.network.token {
            builder = builder.header(TOKEN_HEADER, token);
        }
        let response = builder.send().await.map_err(|e| {
            if e.is_connect() {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let message = format!(
                "peer answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            );
            let error = std::io::Error::other(message);
            // The member raft means is not at that URL any more: back off
            // as from a node that is down.
            if status == reqwest::StatusCode::MISDIRECTED_REQUEST {
                return Err(RPCError::Unreachable(Unreachable::new(&error)));
            }
            return Err(RPCError::Network(NetworkError::new(&error)));
        }
        let result: Result<Resp, RaftError<NodeId, E>> =
            rmp_serde::from_slice(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}
