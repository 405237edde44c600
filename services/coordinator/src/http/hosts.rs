//! The host routes: challenges and registration, heartbeats, approval
//! and revocation, and the host list. Each
//! handler parses, calls the coordinator, and converts.

use std::sync::Arc;

use bytes::Bytes;
use skyclaw_api::{self as api, routes};
use skyclaw_state::HostView;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::filters::{self, at, at_id, caller_at, caller_at_id, Caller, PathId};
use super::forward::{unless_leading, Deadline};
use super::json::{parse, parse_or_default, reply, Handled};
use super::{convert, finish};
use crate::coordinator::Coordinator;

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let body = filters::body(coordinator.config.max_body_bytes);
    let write = |route, deadline| unless_leading(coordinator, route, deadline);

    let challenge = at(coordinator, routes::CHALLENGE)
        .and(with.clone())
        .map(challenge);
    let register = caller_at(coordinator, routes::REGISTER)
        .and(with.clone())
        .and(body.clone())
        .then(register);
    let heartbeat = caller_at_id(coordinator, routes::HEARTBEAT)
        .and(with.clone())
        .and(body)
        .then(heartbeat);
    let approve = at_id(coordinator, routes::APPROVE_HOST)
        .and(with.clone())
        .then(approve);
    let revoke = at_id(coordinator, routes::REVOKE_HOST)
        .and(with.clone())
        .then(revoke);
    let list = at(coordinator, routes::HOSTS).and(with).then(list);

    challenge
        .map(finish)
        .or(write(routes::REGISTER, Deadline::Write))
        .unify()
        .or(register.map(finish))
        .unify()
        .or(write(routes::APPROVE_HOST, Deadline::Write))
        .unify()
        .or(approve.map(finish))
        .unify()
        .or(write(routes::REVOKE_HOST, Deadline::Write))
        .unify()
        .or(revoke.map(finish))
        .unify()
        .or(write(routes::HEARTBEAT, Deadline::Write))
        .unify()
        .or(heartbeat.map(finish))
        .unify()
        .or(list.map(finish))
        .unify()
        .boxed()
}

fn challenge(coordinator: Arc<Coordinator>) -> Handled {
    reply(&coordinator.challenge()?)
}

async fn register(caller: Caller, coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::RegisterHostRequest = parse(&body)?;
    request.check()?;
    let registered = coordinator.register(request, &caller.principal).await?;
    let (session, session_expires_at) = registered.session.unzip();
    reply(&api::HostResponse {
        host: convert::host(&coordinator, registered.host),
        session,
        session_expires_at,
    })
}

async fn approve(host: PathId, coordinator: Arc<Coordinator>) -> Handled {
    let host = coordinator.approve(&host.0).await?;
    reply(&host_response(&coordinator, host))
}

async fn revoke(host: PathId, coordinator: Arc<Coordinator>) -> Handled {
    let host = coordinator.revoke(&host.0).await?;
    reply(&host_response(&coordinator, host))
}

fn host_response(coordinator: &Coordinator, host: HostView) -> api::HostResponse {
    api::HostResponse {
        host: convert::host(coordinator, host),
        session: None,
        session_expires_at: None,
    }
}

/// A heartbeat without `running` (the MVP's host sends none) renews every
/// lease the host holds, as the MVP did.
async fn heartbeat(
    host: PathId,
    caller: Caller,
    coordinator: Arc<Coordinator>,
    body: Bytes,
) -> Handled {
    caller.acting_as(&coordinator, &host.0)?;
    let request: api::HeartbeatRequest = parse_or_default(&body)?;
    request.check()?;
    let running = request.running.map(|list| {
        list.into_iter()
            .map(|job| (job.job_id, job.lease_epoch))
            .collect()
    });
    let answer = coordinator.heartbeat(&host.0, running).await?;
    reply(&api::HeartbeatResponse {
        host: convert::host(&coordinator, answer.host),
        cancel: answer.cancel,
        lost: answer.lost,
    })
}

async fn list(coordinator: Arc<Coordinator>) -> Handled {
    let hosts = coordinator.hosts();
    reply(&api::HostsResponse {
        hosts: convert::hosts(&coordinator, hosts),
    })
}
