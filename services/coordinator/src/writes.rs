//! The write path on a coordinator: a command is first checked against
//! the leader's state (a refusal costs no raft entry), then proposed
//! ([`crate::proposer`]) and answered once applied.

use std::time::Duration;

use skyclaw_state::{Command, Rejection};

use crate::coordinator::Coordinator;
use crate::failure::Failure;
use crate::proposer::WriteResult;
use crate::raft::Answer;

/// How long a refusal waits for a quorum to confirm this node leads.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

impl Coordinator {
    /// Runs a command: refused at once when the leader's state already
    /// refuses it (no raft entry), else written and answered once applied.
    pub async fn perform(&self, command: Command) -> Result<Answer, Failure> {
        if let Some(rejection) = self.refusal(&command).await {
            return Err(rejection.into());
        }
        Ok(self.write(command).await??)
    }

    /// Proposes `command` and waits until it is committed and applied.
    pub async fn write(&self, command: Command) -> WriteResult {
        self.proposer.write(command).await
    }

    /// Why the state would refuse `command` now, judged on this leader
    /// before anything is proposed: a refusal then costs no raft entry.
    /// A refusal is trusted only once a quorum has confirmed this node
    /// still leads and it has applied everything committed until then
    /// (`ensure_linearizable`): a node restarted as the leader of a term
    /// the cluster has left behind, or a new leader that has not applied
    /// its predecessor's last entries, would refuse what exists. Only a
    /// request its state refuses pays that round trip; for commands no
    /// state can refuse, for what the state accepts, and when leadership
    /// cannot be confirmed in time, the answer is `None` and the command
    /// goes through raft, where `decide` has the last word.
    pub async fn refusal(&self, command: &Command) -> Option<Rejection> {
        let could_be_refused = match command {
            Command::Enqueue { jobs } => jobs.iter().any(|job| job.idempotency_key.is_some()),
            // A claim's one refusal (an unknown host) the claim handler
            // already answers from the views, before it waits for work.
            Command::CreateCluster { .. }
            | Command::Claim { .. }
            | Command::ExpireLeases
            | Command::Expire { .. }
            | Command::Retire { .. } => false,
            _ => true,
        };
        if !could_be_refused || !self.is_leader() {
            return None;
        }
        let judge = || {
            let now = self.clock.now_ms();
            self.read(|m| m.state.decide(command, m.state.clock(now)).err())
        };
        judge()?;
        match tokio::time::timeout(CONFIRM_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => judge(),
            _ => None,
        }
    }
}
