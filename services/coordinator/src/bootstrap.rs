//! Forming or joining the cluster from the configured peers.
//!
//! A node with no raft state and configured peers asks each peer who it is
//! (`GET /v1/cluster/hello`). If any peer already belongs to a cluster, the
//! node asks to join it. If every peer answered and none belongs to one,
//! the node whose name sorts first initializes raft with all of them; the
//! others wait to hear from its leader. Since only one name sorts first and
//! all see the same set, two clusters cannot form from one configuration.
//! Once a cluster exists, its membership (in the raft log) is the truth;
//! the configured peer list only serves to find it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use skyclaw_api::routes;
use skyclaw_api::{ClusterHello, JoinRequest};

use crate::access::peer_header;
use crate::coordinator::Coordinator;
use crate::raft::Member;
use skyclaw_log_format::Hash32;

/// Time between bootstrap rounds.
const RETRY: Duration = Duration::from_millis(500);

/// Forms or joins the cluster from the configured peers; see the module
/// documentation. Runs until this node is a voter.
pub async fn run(node: Arc<Coordinator>) {
    loop {
        if node.is_voter() {
            return;
        }
        // Raft answers an error only once it stopped: so does bootstrapping
        // (the loop would otherwise hold the node, and its database, forever).
        let Ok(initialized) = node.raft.is_initialized().await else {
            return;
        };
        let mut hellos = Vec::new();
        for url in &node.config.peer_urls {
            hellos.push((url.clone(), node.hello_of(url).await));
        }
        if let Some((url, _)) = hellos
            .iter()
            .find(|(_, hello)| hello.as_ref().is_some_and(|h| h.initialized))
        {
            join(&node, url).await;
        } else if !initialized && hellos.iter().all(|(_, hello)| hello.is_some()) {
            let hellos: Vec<ClusterHello> = hellos.into_iter().filter_map(|(_, h)| h).collect();
            let first = hellos.iter().all(|peer| node.me.name < peer.name);
            if hellos.iter().any(|peer| peer.name == node.me.name) {
                tracing::error!(
                    "a configured peer is also named {:?}; node names must differ",
                    node.me.name
                );
            } else if first {
                let mut members = BTreeMap::from([(node.id, node.me.clone())]);
                for peer in hellos {
                    members.insert(
                        peer.raft_id,
                        Member {
                            log_key: peer.log_key.as_deref().and_then(Hash32::from_hex),
                            name: peer.name,
                            url: peer.url,
                        },
                    );
                }
                tracing::info!("initializing the cluster with {} members", members.len());
                if let Err(e) = node.raft.initialize(members).await {
                    tracing::warn!("initializing the cluster: {e}");
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Asks the cluster, through the member at `url`, to admit this node.
async fn join(node: &Coordinator, url: &str) {
    let request = JoinRequest {
        name: node.me.name.clone(),
        url: node.me.url.clone(),
        raft_id: node.id,
    };
    let mut call = node
        .peers
        .post(format!(
            "{}{}",
            url.trim_end_matches('/'),
            routes::JOIN.path
        ))
        .timeout(routes::MEMBERSHIP_TIMEOUT)
        .json(&request);
    if let Some((header, value)) = peer_header(&node.config) {
        call = call.header(header, value);
    }
    match call.send().await {
        Ok(response) if response.status().is_success() => {
            tracing::info!("joined the cluster through {url}")
        }
        Ok(response) => tracing::warn!(
            "joining through {url}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ),
        Err(e) => tracing::warn!("joining through {url}: {e}"),
    }
}
