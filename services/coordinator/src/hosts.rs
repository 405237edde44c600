//! What a coordinator does with hosts: registration (with its defaults),
//! heartbeats (renewing leases only when due), and when each host was
//! last heard from (soft state on the node that heard it, never logged).

use skyclaw_api::RegisterHostRequest;
use skyclaw_state::{Affected, Command, HostView};

use crate::coordinator::Coordinator;
use crate::failure::Failure;

/// What a heartbeat answers.
pub struct Heartbeat {
    pub host: HostView,
    /// Jobs the host should stop: cancelled since.
    pub cancel: Vec<String>,
    /// Jobs it reported whose lease it no longer holds.
    pub lost: Vec<String>,
}

/// Capabilities a host has when it names none.
const DEFAULT_CAPABILITIES: [&str; 2] = ["shell", "automaton"];

impl Coordinator {
    /// Registers a host, or updates it; safe to repeat. A host that names
    /// no id gets a new one.
    pub async fn register(&self, request: RegisterHostRequest) -> Result<HostView, Failure> {
        let command = Command::RegisterHost {
            host_id: request
                .host_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name: request.name,
            capabilities: request
                .capabilities
                .unwrap_or_else(|| DEFAULT_CAPABILITIES.map(String::from).to_vec()),
            max_parallel: request.max_parallel.unwrap_or(1),
            sandbox: request.sandbox,
            key: None,
        };
        let host = self.perform(command).await?.into_host()?;
        self.saw_host(&host.id, self.clock.now_ms());
        Ok(host)
    }

    /// Renews the leases the host reports running (all it holds, when it
    /// reports none: the MVP's host sends no list) that passed half their
    /// life, through raft; a heartbeat that changes nothing writes nothing
    /// and is answered from this node's state.
    pub async fn heartbeat(
        &self,
        host_id: &str,
        running: Option<Vec<(String, u32)>>,
    ) -> Result<Heartbeat, Failure> {
        let now = self.clock.now_ms();
        let (command, dry_run) = self.read(|m| {
            let command = Command::Renew {
                host_id: host_id.to_string(),
                running: running.unwrap_or_else(|| m.state.leases_held_by(host_id)),
                lease_ms: self.config.lease_ms,
            };
            let dry_run = m
                .state
                .decide(&command, m.state.clock(now))
                .map(|decision| (decision, m.state.host(host_id).cloned()));
            (command, dry_run)
        });
        // Only a registered host gets here: nothing a refused heartbeat
        // carries stays in memory.
        let (decision, host) = dry_run?;
        self.saw_host(host_id, now);
        // Telling a host a lease is lost makes it kill the job, so that
        // answer comes only through raft, never from the views of a node
        // that may be a leader the cluster has left behind.
        if let (true, Some(host), Affected::Renewed { cancel, lost, .. }) =
            (decision.events.is_empty(), host, decision.affected)
        {
            if lost.is_empty() {
                return Ok(Heartbeat { host, cancel, lost });
            }
        }
        let (host, cancel, lost) = self.perform(command).await?.into_renewed()?;
        Ok(Heartbeat { host, cancel, lost })
    }

    pub fn hosts(&self) -> Vec<HostView> {
        self.read(|m| m.state.hosts().cloned().collect())
    }

    /// When the host was last heard from: by this node, or in the log.
    pub fn last_seen_at(&self, host: &HostView) -> u64 {
        let seen = self
            .liveness
            .lock()
            .expect("liveness lock")
            .get(&host.id)
            .copied();
        seen.map_or(host.updated_at, |seen| seen.max(host.updated_at))
    }

    /// Notes that a registered host was heard from now.
    pub(crate) fn saw_host(&self, host_id: &str, at: u64) {
        self.liveness
            .lock()
            .expect("liveness lock")
            .insert(host_id.to_string(), at);
    }
}
