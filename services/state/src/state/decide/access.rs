//! Who may work and with which key: host registration (keyed or not),
//! approval and revocation, and API keys.

use skyclaw_log_format::event::{Event, KeyGrant, KeyRole};

use super::shape::check_capabilities;
use crate::command::{Affected, Decision, HostKey, Rejection};
use crate::state::State;
use crate::view::{HostAccess, HostView};
use crate::MAX_PARALLEL_LIMIT;

/// How often a keyed host may register, by the times of the challenges it
/// signs: each registration is an event in the log, and anyone may make a
/// key and register it.
pub const REGISTER_EVERY_MS: u64 = 10_000;

/// Keyed hosts that may wait for approval at once: anyone can register
/// one, so their number is bounded, not the record's size.
pub const MAX_PENDING_HOSTS: usize = 1_024;

/// Refuses a host that may not take work: pending or revoked.
pub(super) fn check_may_work(host: &HostView) -> Result<(), Rejection> {
    match host.access {
        HostAccess::Active => Ok(()),
        HostAccess::Pending => Err(Rejection::Forbidden(format!(
            "host {} is pending: an admin must approve it (skyclaw hosts approve {})",
            host.id, host.id
        ))),
        HostAccess::Revoked => Err(revoked(host)),
    }
}

pub(super) fn check_not_revoked(host: &HostView) -> Result<(), Rejection> {
    match host.access {
        HostAccess::Revoked => Err(revoked(host)),
        HostAccess::Pending | HostAccess::Active => Ok(()),
    }
}

fn revoked(host: &HostView) -> Rejection {
    Rejection::Forbidden(format!("host {} is revoked", host.id))
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide_register(
        &self,
        host_id: &str,
        name: &str,
        capabilities: &[String],
        max_parallel: u32,
        sandbox: Option<&str>,
        key: Option<&HostKey>,
        at: u64,
    ) -> Result<Decision, Rejection> {
        if host_id.is_empty() || host_id.len() > 128 {
            return Err(Rejection::Invalid(
                "hostId must be 1 to 128 characters".into(),
            ));
        }
        if name.trim().is_empty() {
            return Err(Rejection::Invalid("name must not be empty".into()));
        }
        if !(1..=MAX_PARALLEL_LIMIT).contains(&max_parallel) {
            return Err(Rejection::Invalid(format!(
                "maxParallel must be between 1 and {MAX_PARALLEL_LIMIT}"
            )));
        }
        check_capabilities("capabilities", capabilities)?;
        let existing = self.hosts.get(host_id);
        if let Some(host) = existing {
            check_not_revoked(host)?;
            match (&host.public_key, key) {
                (Some(_), None) => {
                    return Err(Rejection::Forbidden(format!(
                        "host {host_id} has a key: it registers by signing a challenge"
                    )))
                }
                (None, Some(_)) => {
                    return Err(Rejection::Conflict(format!(
                        "host id {host_id} is taken by a host without a key"
                    )))
                }
                (Some(known), Some(key)) if *known != key.public_key => {
                    return Err(Rejection::Conflict(format!(
                        "host id {host_id} belongs to another key"
                    )))
                }
                (Some(_), Some(key)) if key.challenge_at <= host.challenge_at => {
                    return Err(Rejection::Conflict(
                        "this challenge was already used or is older than the last one: ask for a new one"
                            .into(),
                    ))
                }
                (Some(_), Some(key)) if key.challenge_at < host.challenge_at + REGISTER_EVERY_MS => {
                    return Err(Rejection::Conflict(format!(
                        "host {host_id} registered less than {} s ago: retry later",
                        REGISTER_EVERY_MS / 1_000
                    )))
                }
                _ => {}
            }
        }
        let unchanged = key.is_none()
            && existing.is_some_and(|host| {
                host.name == name
                    && host.capabilities == capabilities
                    && host.max_parallel == max_parallel
                    && host.sandbox.as_deref() == sandbox
            });
        let mut events = Vec::new();
        if !unchanged {
            events.push(Event::HostRegistered {
                host_id: host_id.to_string(),
                name: name.to_string(),
                capabilities: capabilities.to_vec(),
                max_parallel,
                sandbox: sandbox.map(str::to_string),
                public_key: key.map(|key| key.public_key),
                challenge_at: key.map(|key| key.challenge_at),
                signs_receipts: key.is_some_and(|key| key.signs_receipts),
            });
        }
        let approved_now = key.is_some_and(|key| key.approved || key.enroll_key.is_some());
        if existing.is_none() && key.is_some() && !approved_now {
            let waiting = self
                .hosts
                .values()
                .filter(|host| host.access == HostAccess::Pending)
                .count();
            if waiting >= MAX_PENDING_HOSTS {
                return Err(Rejection::Conflict(format!(
                    "{waiting} hosts already wait for approval: approve or revoke some, or \
                     register with an enrollment key"
                )));
            }
        }
        let pending = existing.is_none_or(|host| host.access == HostAccess::Pending);
        if let (Some(key), true) = (key, pending) {
            if key.approved {
                events.push(Event::HostApproved {
                    host_id: host_id.to_string(),
                    enrolled_with: None,
                });
            } else if let Some(enroll) = &key.enroll_key {
                let live = self
                    .keys
                    .get(enroll)
                    .filter(|view| view.grant.role == KeyRole::Enroll && view.is_live(at));
                if live.is_none() {
                    return Err(Rejection::Forbidden(
                        "the enrollment key is unknown, revoked, expired or used up".into(),
                    ));
                }
                events.push(Event::HostApproved {
                    host_id: host_id.to_string(),
                    enrolled_with: Some(enroll.clone()),
                });
            }
        }
        Ok(Decision::new(events, Affected::Host(host_id.to_string())))
    }

    pub(super) fn decide_approve(&self, host_id: &str) -> Result<Decision, Rejection> {
        let host = self.existing_host(host_id)?;
        let events = match host.access {
            HostAccess::Pending => vec![Event::HostApproved {
                host_id: host_id.to_string(),
                enrolled_with: None,
            }],
            HostAccess::Active => vec![],
            HostAccess::Revoked => return Err(revoked(host)),
        };
        Ok(Decision::new(events, Affected::Host(host_id.to_string())))
    }

    /// Revokes the host and ends its leases: each job goes back to the
    /// queue (or fails, its attempts used up), as if the lease ran out.
    pub(super) fn decide_revoke(&self, host_id: &str) -> Result<Decision, Rejection> {
        let host = self.existing_host(host_id)?;
        if host.access == HostAccess::Revoked {
            return Ok(Decision::new(vec![], Affected::Host(host_id.to_string())));
        }
        let mut events = vec![Event::HostRevoked {
            host_id: host_id.to_string(),
        }];
        events.extend(
            self.leases_held_by(host_id)
                .into_iter()
                .map(|(job_id, lease_epoch)| Event::LeaseExpired {
                    job_id,
                    lease_epoch,
                }),
        );
        Ok(Decision::new(events, Affected::Host(host_id.to_string())))
    }

    pub(super) fn decide_issue_key(&self, grant: &KeyGrant) -> Result<Decision, Rejection> {
        if self.keys.contains_key(&grant.key_id) || self.key_hashes.contains_key(&grant.hash) {
            return Err(Rejection::Conflict(format!(
                "key {} already exists",
                grant.key_id
            )));
        }
        match (grant.role, &grant.account) {
            (KeyRole::Enqueuer, None) => {
                return Err(Rejection::Invalid(
                    "an enqueuer's key needs an account".into(),
                ))
            }
            (KeyRole::Admin | KeyRole::Auditor | KeyRole::Enroll, Some(_)) => {
                return Err(Rejection::Invalid(
                    "only an enqueuer's key has an account".into(),
                ))
            }
            _ => {}
        }
        Ok(Decision::new(
            vec![Event::KeyIssued(Box::new(grant.clone()))],
            Affected::Done,
        ))
    }

    pub(super) fn decide_revoke_key(&self, key_id: &str) -> Result<Decision, Rejection> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| Rejection::NotFound(format!("key {key_id} not found")))?;
        let events = match key.revoked_at {
            Some(_) => vec![],
            None => vec![Event::KeyRevoked {
                key_id: key_id.to_string(),
            }],
        };
        Ok(Decision::new(events, Affected::Done))
    }

    fn existing_host(&self, host_id: &str) -> Result<&HostView, Rejection> {
        self.hosts
            .get(host_id)
            .ok_or_else(|| Rejection::NotFound(format!("host {host_id} not found")))
    }
}

#[cfg(test)]
mod tests {
    use skyclaw_log_format::event::{Hash32, KeyGrant, KeyRole, Scope};

    use crate::command::{Command, HostKey, Rejection};
    use crate::state::fixture::*;
    use crate::state::State;
    use crate::view::{HostAccess, JobStatus};

    const KEY: Hash32 = Hash32([7; 32]);

    fn keyed_host(
        state: &mut State,
        challenge_at: u64,
        enroll_key: Option<&str>,
        approved: bool,
    ) -> Result<String, Rejection> {
        let host_id = crate::host_id_for(&KEY);
        run(
            state,
            Command::RegisterHost {
                host_id: host_id.clone(),
                name: "lent box".into(),
                capabilities: strings(&["shell"]),
                max_parallel: 2,
                sandbox: None,
                key: Some(HostKey {
                    public_key: KEY,
                    challenge_at,
                    enroll_key: enroll_key.map(str::to_string),
                    approved,
                    signs_receipts: false,
                }),
            },
            challenge_at,
        )?;
        Ok(host_id)
    }

    fn claim_command(host_id: &str, max_jobs: u32) -> Command {
        Command::Claim {
            host_id: host_id.into(),
            max_jobs,
            lease_ms: LEASE_MS,
            claim_key: None,
        }
    }

    fn enroll_key(state: &mut State, uses: u32) {
        let grant = KeyGrant {
            key_id: "enroll-1".into(),
            hash: Hash32([9; 32]),
            role: KeyRole::Enroll,
            account: None,
            scopes: vec![],
            expires_at: Some(1_000_000),
            uses: Some(uses),
        };
        run(state, Command::IssueKey(grant), 2).unwrap();
    }

    #[test]
    fn a_keyed_host_waits_for_approval_before_it_may_claim() {
        let mut state = cluster();
        let host = keyed_host(&mut state, 10, None, false).unwrap();
        assert_eq!(state.host(&host).unwrap().access, HostAccess::Pending);
        enqueue(&mut state, spec("j"), 11);
        let refused = run(&mut state, claim_command(&host, 1), 12);
        assert!(
            matches!(refused, Err(Rejection::Forbidden(_))),
            "{refused:?}"
        );
        run(
            &mut state,
            Command::ApproveHost {
                host_id: host.clone(),
            },
            13,
        )
        .unwrap();
        assert_eq!(claim(&mut state, &host, 1, 14), ["j"]);
    }

    #[test]
    fn a_signed_registration_is_good_once() {
        let mut state = cluster();
        keyed_host(&mut state, 10, None, true).unwrap();
        let digest = state.digest();
        // A replay, an older challenge, and one too soon after the last.
        for refused_at in [10, 9, 10 + super::REGISTER_EVERY_MS - 1] {
            let refused = keyed_host(&mut state, refused_at, None, true);
            assert!(
                matches!(refused, Err(Rejection::Conflict(_))),
                "{refused:?}"
            );
        }
        assert_eq!(state.digest(), digest);
        keyed_host(&mut state, 10 + super::REGISTER_EVERY_MS, None, true).unwrap();
    }

    #[test]
    fn an_enrollment_key_approves_as_many_hosts_as_it_has_uses() {
        let mut state = cluster();
        enroll_key(&mut state, 1);
        let host = keyed_host(&mut state, 10, Some("enroll-1"), false).unwrap();
        assert_eq!(state.host(&host).unwrap().access, HostAccess::Active);
        assert_eq!(state.key("enroll-1").unwrap().grant.uses, Some(0));
        // A second host with the spent key stays out.
        let other = Hash32([8; 32]);
        let refused = run(
            &mut state,
            Command::RegisterHost {
                host_id: crate::host_id_for(&other),
                name: "another".into(),
                capabilities: vec![],
                max_parallel: 1,
                sandbox: None,
                key: Some(HostKey {
                    public_key: other,
                    challenge_at: 20,
                    enroll_key: Some("enroll-1".into()),
                    approved: false,
                    signs_receipts: false,
                }),
            },
            20,
        );
        assert!(
            matches!(refused, Err(Rejection::Forbidden(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn hosts_waiting_for_approval_are_bounded() {
        let mut state = cluster();
        let register = |state: &mut State, n: u32, approved: bool| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            let key = Hash32(bytes);
            run(
                state,
                Command::RegisterHost {
                    host_id: crate::host_id_for(&key),
                    name: format!("stranger {n}"),
                    capabilities: vec![],
                    max_parallel: 1,
                    sandbox: None,
                    key: Some(HostKey {
                        public_key: key,
                        challenge_at: 1,
                        enroll_key: None,
                        approved,
                        signs_receipts: false,
                    }),
                },
                10,
            )
        };
        for n in 0..super::MAX_PENDING_HOSTS as u32 {
            register(&mut state, n, false).unwrap();
        }
        let digest = state.digest();
        let refused = register(&mut state, 100_000, false);
        assert!(
            matches!(refused, Err(Rejection::Conflict(_))),
            "{refused:?}"
        );
        assert_eq!(state.digest(), digest);
        register(&mut state, 100_001, true).unwrap();
    }

    #[test]
    fn revoking_a_host_requeues_its_leases_and_shuts_it_out() {
        let mut state = cluster();
        let host = keyed_host(&mut state, 10, None, true).unwrap();
        enqueue(&mut state, spec("j"), 11);
        assert_eq!(claim(&mut state, &host, 1, 12), ["j"]);
        run(
            &mut state,
            Command::RevokeHost {
                host_id: host.clone(),
            },
            13,
        )
        .unwrap();
        assert_eq!(state.job("j").unwrap().status, JobStatus::Queued);
        assert_eq!(state.host(&host).unwrap().active_leases, 0);
        for command in [
            claim_command(&host, 1),
            renew(&host, &[]),
            Command::ApproveHost {
                host_id: host.clone(),
            },
        ] {
            let refused = run(&mut state, command, 14);
            assert!(
                matches!(refused, Err(Rejection::Forbidden(_))),
                "{refused:?}"
            );
        }
        let again = keyed_host(&mut state, 15 + super::REGISTER_EVERY_MS, None, true);
        assert!(matches!(again, Err(Rejection::Forbidden(_))), "{again:?}");
    }

    #[test]
    fn a_keyed_host_cannot_be_taken_over_without_its_key() {
        let mut state = cluster();
        let host = keyed_host(&mut state, 10, None, true).unwrap();
        let keyless = run(
            &mut state,
            Command::RegisterHost {
                host_id: host.clone(),
                name: "impostor".into(),
                capabilities: vec![],
                max_parallel: 1,
                sandbox: None,
                key: None,
            },
            11,
        );
        assert!(
            matches!(keyless, Err(Rejection::Forbidden(_))),
            "{keyless:?}"
        );
        assert_eq!(state.host(&host).unwrap().name, "lent box");
    }

    #[test]
    fn an_event_for_a_host_whose_id_is_not_its_keys_does_not_apply() {
        let mut state = cluster();
        let forged = skyclaw_log_format::event::Event::HostRegistered {
            signs_receipts: false,
            host_id: "chosen-id".into(),
            name: "x".into(),
            capabilities: vec![],
            max_parallel: 1,
            sandbox: None,
            public_key: Some(KEY),
            challenge_at: Some(1),
        };
        assert!(state.apply(&forged, 5).is_err());
    }

    #[test]
    fn keys_are_issued_once_and_revoked() {
        let mut state = cluster();
        let grant = KeyGrant {
            key_id: "k1".into(),
            hash: Hash32([1; 32]),
            role: KeyRole::Enqueuer,
            account: Some("acme".into()),
            scopes: vec![Scope::Enqueue, Scope::Read],
            expires_at: None,
            uses: None,
        };
        run(&mut state, Command::IssueKey(grant.clone()), 5).unwrap();
        assert!(state
            .key_by_hash(&Hash32([1; 32]))
            .is_some_and(|k| k.is_live(6)));
        let twice = run(&mut state, Command::IssueKey(grant.clone()), 6);
        assert!(matches!(twice, Err(Rejection::Conflict(_))), "{twice:?}");
        let no_account = KeyGrant {
            key_id: "k2".into(),
            hash: Hash32([2; 32]),
            account: None,
            ..grant
        };
        let refused = run(&mut state, Command::IssueKey(no_account), 7);
        assert!(matches!(refused, Err(Rejection::Invalid(_))), "{refused:?}");
        run(
            &mut state,
            Command::RevokeKey {
                key_id: "k1".into(),
            },
            8,
        )
        .unwrap();
        assert!(!state.key("k1").unwrap().is_live(9));
    }
}
