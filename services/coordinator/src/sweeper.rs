//! The lease sweeper: on the leader only, proposes `ExpireLeases` once the
//! earliest lease has run out. A new leader first waits one lease period,
//! so hosts that renewed with the old leader are not expired early.

use std::sync::Arc;
use std::time::Duration;

use skyclaw_state::Command;

use crate::node::{now_ms, Coordinator};

/// The sweeper looks at least this often, so a new lease or a change of
/// leadership is noticed.
const MAX_NAP: Duration = Duration::from_millis(250);

pub async fn run(node: Arc<Coordinator>) {
    let grace = Duration::from_millis(node.config.lease_ms);
    loop {
        let next_expiry = node.read(|m| m.state.next_expiry());
        let now = now_ms();
        let nap = match next_expiry {
            Some(at) if at <= now => Duration::ZERO,
            Some(at) => MAX_NAP.min(Duration::from_millis(at - now)),
            None => MAX_NAP,
        };
        if !nap.is_zero() {
            tokio::time::sleep(nap).await;
            continue;
        }
        match node.leading_for() {
            Some(leading) if leading >= grace => {}
            _ => {
                tokio::time::sleep(MAX_NAP).await;
                continue;
            }
        }
        match node.write(Command::ExpireLeases).await {
            Ok(Ok(_)) => {}
            Ok(Err(rejection)) => tracing::warn!("expiring leases refused: {rejection}"),
            Err(e) => {
                tracing::debug!("expiring leases: {e:?}");
                tokio::time::sleep(MAX_NAP).await;
            }
        }
    }
}
