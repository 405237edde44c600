//! The host routes: registration, heartbeats and the host list. Each
//! handler parses, calls the coordinator, and converts.

use std::sync::Arc;

use bytes::Bytes;
use skyclaw_api::{self as api, routes};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::filters::{self, at, at_id, PathId};
use super::forward::{unless_leading, Deadline};
use super::json::{parse, parse_or_default, reply, Handled};
use super::{convert, finish};
use crate::coordinator::Coordinator;

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let body = filters::body(coordinator.config.max_body_bytes);
    let write = |route, deadline| unless_leading(coordinator, route, deadline);

    let register = at(routes::REGISTER)
        .and(with.clone())
        .and(body.clone())
        .then(register);
    let heartbeat = at_id(routes::HEARTBEAT)
        .and(with.clone())
        .and(body)
        .then(heartbeat);
    let list = at(routes::HOSTS).and(with).then(list);

    write(routes::REGISTER, Deadline::Write)
        .or(register.map(finish))
        .unify()
        .or(write(routes::HEARTBEAT, Deadline::Write))
        .unify()
        .or(heartbeat.map(finish))
        .unify()
        .or(list.map(finish))
        .unify()
        .boxed()
}

async fn register(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::RegisterHostRequest = parse(&body)?;
    request.check()?;
    let host = coordinator.register(request).await?;
    reply(&api::HostResponse {
        host: convert::host(&coordinator, host),
    })
}

/// A heartbeat without `running` (the MVP's host sends none) renews every
/// lease the host holds, as the MVP did.
async fn heartbeat(host: PathId, coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
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
