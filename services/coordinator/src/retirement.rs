//! Retirement on the leader: once jobs have been over `retention_ms` past
//! their end, proposes `Retire`, which takes them out of the live state
//! (their views move to the `retired` column family; see
//! `skyclaw_state::state::retirement`). Every node retires the same jobs:
//! `decide` picks them by the log's time, not by this node's clock.

use std::sync::Arc;
use std::time::Duration;

use skyclaw_state::Command;

use crate::coordinator::Coordinator;

/// How often the leader looks for jobs to retire.
const NAP: Duration = Duration::from_millis(250);

/// The pause between two retirements while more are due: one event
/// retires a bounded number, and requests go between them.
const BETWEEN: Duration = Duration::from_millis(10);

pub async fn run(node: Arc<Coordinator>) {
    let retention_ms = node.config.retention_ms;
    loop {
        let stamp = node.clock.now_ms();
        let due = node.is_leader()
            && node.read(|m| m.state.has_retirable(retention_ms, m.state.clock(stamp)));
        if !due {
            tokio::time::sleep(NAP).await;
            continue;
        }
        match node.write(Command::Retire { retention_ms }).await {
            Ok(Ok(_)) => tokio::time::sleep(BETWEEN).await,
            Ok(Err(rejection)) => {
                tracing::warn!("retiring jobs refused: {rejection}");
                tokio::time::sleep(NAP).await;
            }
            Err(e) => {
                tracing::debug!("retiring jobs: {e:?}");
                tokio::time::sleep(NAP).await;
            }
        }
    }
}
