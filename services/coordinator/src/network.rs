//! Raft RPCs between coordinators: MessagePack over HTTP, under
//! `/v1/replicate/…`, authenticated with the peer credential. AppendEntries is
//! the incremental log shipping; InstallSnapshot the full-state fallback.
//!
//! Sizes: an AppendEntries carries as many entries as fit in
//! [`APPEND_BUDGET`] (at least one), so each one arrives within openraft's
//! heartbeat-long deadline; the receiver takes up to [`MAX_APPEND_BYTES`],
//! well above any single entry. Should a peer still answer 413, openraft is
//! told the payload was too large and sends fewer entries, where a network
//! error would have it send the same again.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyclaw_api::routes::{self, Route};

use crate::proposer::MAX_ENTRY_BYTES;
use crate::raft::{encoded_size, Entry, Member, NodeId, TypeConfig};

pub const MSGPACK: &str = "application/msgpack";

/// The encoded entries one AppendEntries carries at most, unless a single
/// entry is larger (it never is by more than its framing).
pub const APPEND_BUDGET: usize = MAX_ENTRY_BYTES;
/// The largest AppendEntries a coordinator accepts, well above any a peer
/// sends, so that a leader whose budget differs still gets its entries in.
pub const MAX_APPEND_BYTES: u64 = 8 * MAX_ENTRY_BYTES as u64;
/// The snapshot bytes one InstallSnapshot carries.
pub const SNAPSHOT_CHUNK_BYTES: usize = 3 << 20;
/// The largest InstallSnapshot a coordinator accepts. Chunks are bytes that
/// MessagePack writes as a list of small integers, up to two bytes each.
pub const MAX_SNAPSHOT_BYTES: u64 = 2 * SNAPSHOT_CHUNK_BYTES as u64 + (1 << 20);

/// The raft id an RPC is meant for. Raft reaches a member by its URL, and
/// after a disk is lost that URL answers as a new incarnation: the receiver
/// refuses an RPC for another id with 421 (see `http::filters::raft_target`).
pub const RAFT_TARGET_HEADER: &str = "x-skyclaw-raft-target";

/// Makes one cheap client per target; they share a connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    /// The peer credential (`access::peer_header`), if the cluster has one.
    credential: Option<(&'static str, String)>,
}

impl Network {
    pub fn new(credential: Option<(&'static str, String)>) -> Network {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("a plain HTTP client builds");
        Network { http, credential }
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

/// How many of `entries`, from the first, fit in `budget` encoded bytes;
/// at least one.
fn entries_within(entries: &[Entry], budget: usize) -> usize {
    let mut bytes = 0;
    for (i, entry) in entries.iter().enumerate() {
        bytes += encoded_size(entry);
        if bytes > budget {
            return i.max(1);
        }
    }
    entries.len()
}

impl PeerClient {
    /// Sends `request` to `route`. `entries` is how many log entries it
    /// carries, for AppendEntries: a 413 then asks openraft to send half
    /// as many (a single entry too large is a network error, retried later
    /// rather than at once).
    async fn call<Req, Resp, E>(
        &self,
        route: Route,
        request: &Req,
        option: &RPCOption,
        entries: Option<usize>,
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
            .post(format!("{}{}", self.url, route.path))
            .header("content-type", MSGPACK)
            .header(RAFT_TARGET_HEADER, self.target.to_string())
            .timeout(option.soft_ttl())
            .body(body);
        if let Some((header, value)) = &self.network.credential {
            builder = builder.header(*header, value);
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
            if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
                if let Some(entries @ 2..) = entries {
                    let fewer = PayloadTooLarge::new_entries_hint(entries as u64 / 2);
                    return Err(RPCError::PayloadTooLarge(fewer.with_source_error(&error)));
                }
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
        // Counting costs an encoding: only worth it when there is a choice.
        let fit = match rpc.entries.len() {
            0 | 1 => rpc.entries.len(),
            _ => entries_within(&rpc.entries, APPEND_BUDGET),
        };
        if fit < rpc.entries.len() {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit as u64),
            ));
        }
        self.call(routes::APPEND, &rpc, &option, Some(rpc.entries.len()))
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(routes::SNAPSHOT, &rpc, &option, None).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call(routes::VOTE, &rpc, &option, None).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, LogId, Vote};
    use warp::Filter;

    use super::*;
    use crate::proposer::tests::completion;
    use crate::raft::Proposal;

    /// An entry of one command with `output_bytes` of output.
    fn entry(index: u64, output_bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Proposal {
                at: 1,
                commands: vec![completion(output_bytes)],
                log_clock: true,
            }),
        }
    }

    fn append(entries: Vec<Entry>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 0),
            prev_log_id: None,
            leader_commit: None,
            entries,
        }
    }

    async fn client(url: String) -> PeerClient {
        Network::new(None)
            .new_client(
                1,
                &Member {
                    name: "peer".into(),
                    url,
                    log_key: None,
                },
            )
            .await
    }

    /// A peer that answers every request 413.
    async fn refusing_peer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refuse = warp::any().map(|| {
            warp::reply::with_status("too large", warp::http::StatusCode::PAYLOAD_TOO_LARGE)
        });
        tokio::spawn(warp::serve(refuse).incoming(listener).run());
        url
    }

    fn option() -> RPCOption {
        RPCOption::new(Duration::from_secs(5))
    }

    #[tokio::test]
    async fn entries_past_the_budget_are_left_for_the_next_request_unsent() {
        // Nothing listens there: had the request gone out, it would fail
        // as unreachable.
        let mut peer = client("http://127.0.0.1:9".into()).await;
        let third = APPEND_BUDGET / 3;
        let entries = (1..=5).map(|index| entry(index, third)).collect();
        match peer.append_entries(append(entries), option()).await {
            Err(RPCError::PayloadTooLarge(too_large)) => assert_eq!(too_large.entries_hint(), 2),
            other => panic!("expected payload too large, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_peers_413_asks_openraft_for_fewer_entries() {
        let mut peer = client(refusing_peer().await).await;
        let entries = (1..=4).map(|index| entry(index, 10)).collect();
        match peer.append_entries(append(entries), option()).await {
            Err(RPCError::PayloadTooLarge(too_large)) => assert_eq!(too_large.entries_hint(), 2),
            other => panic!("expected payload too large, got {other:?}"),
        }
        // One entry cannot be split: retrying it at once would only spin.
        match peer
            .append_entries(append(vec![entry(1, 10)]), option())
            .await
        {
            Err(RPCError::Network(_)) => {}
            other => panic!("expected a network error, got {other:?}"),
        }
    }
}
