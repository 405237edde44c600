//! The cluster routes: who a node is (`hello`), the members with their lag,
//! and the membership changes an operator asks for.

use std::sync::Arc;

use bytes::Bytes;
use skyclaw_api::{self as api, routes};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::filters::{self, at};
use super::finish;
use super::forward::{unless_leading, Deadline};
use super::json::{parse, reply, Handled};
use crate::coordinator::Coordinator;

pub fn routes(coordinator: &Arc<Coordinator>) -> BoxedFilter<(Response,)> {
    let with = filters::with(coordinator.clone());
    let body = filters::body(coordinator.config.max_body_bytes);
    let write = |route| unless_leading(coordinator, route, Deadline::Membership);

    let hello = at(coordinator, routes::HELLO).and(with.clone()).then(hello);
    let status = at(coordinator, routes::CLUSTER)
        .and(with.clone())
        .then(status);
    let join = at(coordinator, routes::JOIN)
        .and(with.clone())
        .and(body.clone())
        .then(join);
    let add = at(coordinator, routes::ADD_MEMBER)
        .and(with.clone())
        .and(body.clone())
        .then(add);
    let remove = at(coordinator, routes::REMOVE_MEMBER)
        .and(with)
        .and(body)
        .then(remove);

    hello
        .or(status)
        .unify()
        .map(finish)
        .or(write(routes::JOIN))
        .unify()
        .or(join.map(finish))
        .unify()
        .or(write(routes::ADD_MEMBER))
        .unify()
        .or(add.map(finish))
        .unify()
        .or(write(routes::REMOVE_MEMBER))
        .unify()
        .or(remove.map(finish))
        .unify()
        .boxed()
}

async fn hello(coordinator: Arc<Coordinator>) -> Handled {
    reply(&coordinator.hello().await)
}

async fn status(coordinator: Arc<Coordinator>) -> Handled {
    let term = coordinator.raft.metrics().borrow().current_term;
    let head_seq = coordinator.head().seq;
    let members = coordinator
        .member_heads()
        .await
        .into_iter()
        .map(|m| api::ClusterMember {
            name: m.member.name,
            url: m.member.url,
            raft_id: m.raft_id,
            voter: m.voter,
            head_seq: m.head_seq,
            lag: m.lag,
        })
        .collect();
    reply(&api::ClusterStatus {
        node_id: coordinator.me.name.clone(),
        leader: coordinator.leader().map(|leader| leader.name),
        term,
        head_seq,
        members,
    })
}

fn done() -> Handled {
    reply(&api::Done { ok: true })
}

async fn join(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::JoinRequest = parse(&body)?;
    coordinator.admit(&request).await?;
    done()
}

async fn add(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::AddMemberRequest = parse(&body)?;
    coordinator.add_member(&request.url, &request.name).await?;
    done()
}

async fn remove(coordinator: Arc<Coordinator>, body: Bytes) -> Handled {
    let request: api::RemoveMemberRequest = parse(&body)?;
    coordinator.remove(&request.name).await?;
    done()
}
