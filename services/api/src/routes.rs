//! Every route of the API (method and path), header names and time limits,
//! shared by the server, the client and tests. A path holds `{id}` where a
//! job or host id goes; [`Route::path_for`] fills it in, escaped.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
pub use skyclaw_log_format::event::Scope;

/// The caller's credential: the admin token, an API key or a host's
/// session (`Authorization: Bearer` is taken too).
pub const TOKEN_HEADER: &str = "x-skyclaw-token";
/// The cluster's peer secret, which only coordinators hold: raft's own
/// messages, joins and hellos carry it.
pub const PEER_HEADER: &str = "x-skyclaw-peer";
/// Makes an enqueue idempotent: same key and body, same job.
pub const IDEMPOTENCY_HEADER: &str = "x-idempotency-key";
/// Names the current leader on every response, when known.
pub const LEADER_HEADER: &str = "x-skyclaw-leader";
/// Content type of `GET /v1/events` in its binary form.
pub const SEGMENT_CONTENT_TYPE: &str = "application/vnd.skyclaw.segment";
/// Names one request in the coordinator's log and on its answer: taken
/// from the caller when it is a plausible id, made up otherwise.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Set on a request one coordinator passes to the leader, so it is never
/// passed on twice.
pub const FORWARDED_HEADER: &str = "x-skyclaw-forwarded";

/// How long a membership change (`POST /v1/cluster/add`) may take: the new
/// member first catches up, through a snapshot if it is far behind.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// As HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One route: a method, a path with `{id}` for at most one id, and who
/// may call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// Who may call a route. Every route names one rule; the coordinator
/// checks it before anything else runs (401 without a valid credential,
/// 403 with one that lacks the right), and where a rule names a resource
/// (an account's jobs, a host's own routes, a lease) the coordinator
/// checks that too. An admin may call every route but raft's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, with no credential.
    Public,
    /// Another coordinator of the cluster, by the peer secret.
    Peer,
    /// An admin only.
    Admin,
    /// An auditor's key, a peer coordinator, or an admin.
    Log,
    /// An enqueuer's key with this scope, for its own account's jobs only.
    Enqueuer(Scope),
    /// An enqueuer's key with scope `read` (its account's jobs), or the
    /// host that holds the job's lease right now.
    JobReader,
    /// The host the path names, as itself.
    HostSelf,
    /// The host the body names: it must hold the job's lease.
    LeaseHolder,
    /// Anyone: the body carries the host's signature, which is checked.
    /// Registering a host without a key takes an admin.
    Registration,
}

/// One segment of a route's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(&'static str),
    /// Where the job or host id goes.
    Id,
    /// The rest of the path, one segment or more (a tile's coordinates).
    Rest,
}

/// The placeholder for the id in a route's path.
const ID: &str = "{id}";
/// The placeholder for the rest of a route's path; it comes last.
const REST: &str = "{path}";

/// What a path segment must escape: everything but the unreserved
/// characters of RFC 3986 and the few sub-delimiters ids use.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl Route {
    const fn get(path: &'static str, access: Access) -> Route {
        Route {
            method: Method::Get,
            path,
            access,
        }
    }

    const fn post(path: &'static str, access: Access) -> Route {
        Route {
            method: Method::Post,
            path,
            access,
        }
    }

    /// The path's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment> {
        self.path
            .trim_start_matches('/')
            .split('/')
            .map(|segment| match segment {
                ID => Segment::Id,
                REST => Segment::Rest,
                literal => Segment::Literal(literal),
            })
    }

    /// Whether the path names an id.
    pub fn takes_id(&self) -> bool {
        self.segments().any(|segment| segment == Segment::Id)
    }

    /// The path with `id` in place of `{id}`, escaped as one segment.
    pub fn path_for(&self, id: &str) -> String {
        let id = utf8_percent_encode(id, SEGMENT).to_string();
        self.path.replace(ID, &id)
    }

    /// Whether a request's path (without its query) is this route's.
    pub fn matches(&self, path: &str) -> bool {
        let mut given = path.trim_start_matches('/').split('/');
        let mut rest = false;
        let same = self
            .segments()
            .all(|segment| match (segment, given.next()) {
                (Segment::Literal(literal), Some(part)) => literal == part,
                (Segment::Id, Some(part)) => !part.is_empty(),
                (Segment::Rest, Some(part)) => {
                    rest = true;
                    !part.is_empty()
                }
                (_, None) => false,
            });
        same && (rest || given.next().is_none())
    }
}

pub const HEALTH: Route = Route::get("/health", Access::Public);
/// Prometheus text format; besides the token header it takes
/// `Authorization: Bearer <token>`, which scrapers can send.
pub const METRICS: Route = Route::get("/metrics", Access::Admin);
/// The OpenAPI document of the routes below, served without a credential.
pub const OPENAPI: Route = Route::get("/v1/openapi.json", Access::Public);

pub const STATUS: Route = Route::get("/v1/status", Access::Admin);
/// The MVP's whole-state view: every payload, so admins only.
pub const STATE: Route = Route::get("/v1/state", Access::Admin);
pub const STATE_DIGEST: Route = Route::get("/v1/state/digest", Access::Log);

pub const ENQUEUE: Route = Route::post("/v1/jobs", Access::Enqueuer(Scope::Enqueue));
pub const ENQUEUE_BATCH: Route = Route::post("/v1/jobs/batch", Access::Enqueuer(Scope::Enqueue));
pub const JOBS: Route = Route::get("/v1/jobs", Access::Enqueuer(Scope::Read));
pub const JOB: Route = Route::get("/v1/jobs/{id}", Access::JobReader);
pub const CANCEL: Route = Route::post("/v1/jobs/{id}/cancel", Access::Enqueuer(Scope::Cancel));
pub const COMPLETE: Route = Route::post("/v1/jobs/{id}/complete", Access::LeaseHolder);
/// A completed job's signed receipt with its inclusion proof under a
/// checkpoint: for the job's reader, or the host that ran it.
pub const RECEIPT: Route = Route::get("/v1/jobs/{id}/receipt", Access::JobReader);

/// Jobs by status, the queue's depth and the last hour's activity, over
/// every account.
pub const SUMMARY: Route = Route::get("/v1/summary", Access::Admin);

/// A challenge for a host to sign: the first step of registering with a key.
pub const CHALLENGE: Route = Route::post("/v1/hosts/challenge", Access::Public);
pub const REGISTER: Route = Route::post("/v1/hosts/register", Access::Registration);
pub const HOSTS: Route = Route::get("/v1/hosts", Access::Admin);
pub const HEARTBEAT: Route = Route::post("/v1/hosts/{id}/heartbeat", Access::HostSelf);
pub const CLAIM: Route = Route::post("/v1/hosts/{id}/claim", Access::HostSelf);
pub const APPROVE_HOST: Route = Route::post("/v1/hosts/{id}/approve", Access::Admin);
pub const REVOKE_HOST: Route = Route::post("/v1/hosts/{id}/revoke", Access::Admin);

/// API keys: enqueuers', auditors', admins' and enrollment keys.
pub const KEYS: Route = Route::get("/v1/keys", Access::Admin);
pub const ISSUE_KEY: Route = Route::post("/v1/keys", Access::Admin);
pub const REVOKE_KEY: Route = Route::post("/v1/keys/{id}/revoke", Access::Admin);

pub const LOG_HEAD: Route = Route::get("/v1/log/head", Access::Log);
pub const EVENTS: Route = Route::get("/v1/events", Access::Log);
/// The members' log keys, which sign checkpoints.
pub const LOG_KEYS: Route = Route::get("/v1/log/keys", Access::Log);
/// The latest checkpoint a majority of the voters signed (`text/plain`,
/// a C2SP signed note).
pub const CHECKPOINT: Route = Route::get("/v1/log/checkpoint", Access::Log);
pub const INCLUSION: Route = Route::get("/v1/log/proof/inclusion", Access::Log);
pub const CONSISTENCY: Route = Route::get("/v1/log/proof/consistency", Access::Log);
/// The log's Merkle tree as C2SP tlog-tiles serves it:
/// `<level>/<index>[.p/<width>]` (hash tiles) and
/// `entries/<index>[.p/<width>]` (entry bundles), under `/v1/log/tile/`.
pub const TILE: Route = Route::get("/v1/log/tile/{path}", Access::Log);
/// The leader asks a member to sign a checkpoint.
pub const COSIGN: Route = Route::post("/v1/log/cosign", Access::Peer);

pub const CLUSTER: Route = Route::get("/v1/cluster", Access::Admin);
pub const HELLO: Route = Route::get("/v1/cluster/hello", Access::Peer);
pub const JOIN: Route = Route::post("/v1/cluster/join", Access::Peer);
pub const ADD_MEMBER: Route = Route::post("/v1/cluster/add", Access::Admin);
pub const REMOVE_MEMBER: Route = Route::post("/v1/cluster/remove", Access::Admin);

/// Raft's own RPCs, between coordinators.
pub const APPEND: Route = Route::post("/v1/replicate/append", Access::Peer);
pub const VOTE: Route = Route::post("/v1/replicate/vote", Access::Peer);
pub const SNAPSHOT: Route = Route::post("/v1/replicate/snapshot", Access::Peer);
/// The routes only coordinators call one another on: openraft's messages
/// in MessagePack, left out of the OpenAPI document.
pub const RAFT: [Route; 3] = [APPEND, VOTE, SNAPSHOT];

/// The web dashboard: its page, script and style sheet, served without
/// a credential (the page asks for one and sends it with each API call).
pub const UI: Route = Route::get("/ui", Access::Public);
pub const UI_SCRIPT: Route = Route::get("/ui/app.js", Access::Public);
pub const UI_STYLE: Route = Route::get("/ui/app.css", Access::Public);

/// Where in [`ALL`] the route serving `method` and `path` (without its
/// query) is, if one does: what a request is counted under, so metrics
/// name a route's template, never the ids of a raw path.
pub fn position(method: Method, path: &str) -> Option<usize> {
    ALL.iter()
        .position(|route| route.method == method && route.matches(path))
}

/// Every route the API serves, each with its rule: the table of who may
/// do what.
pub const ALL: [Route; 43] = [
    HEALTH,
    METRICS,
    OPENAPI,
    UI,
    UI_SCRIPT,
    UI_STYLE,
    STATUS,
    STATE,
    STATE_DIGEST,
    ENQUEUE,
    ENQUEUE_BATCH,
    JOBS,
    JOB,
    SUMMARY,
    CANCEL,
    COMPLETE,
    RECEIPT,
    REGISTER,
    HOSTS,
    HEARTBEAT,
    CLAIM,
    CHALLENGE,
    APPROVE_HOST,
    REVOKE_HOST,
    KEYS,
    ISSUE_KEY,
    REVOKE_KEY,
    LOG_HEAD,
    EVENTS,
    LOG_KEYS,
    CHECKPOINT,
    INCLUSION,
    CONSISTENCY,
    TILE,
    COSIGN,
    CLUSTER,
    HELLO,
    JOIN,
    ADD_MEMBER,
    REMOVE_MEMBER,
    APPEND,
    VOTE,
    SNAPSHOT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_as_one_segment() {
        assert_eq!(
            CLAIM.path_for("openclaw:box-1"),
            "/v1/hosts/openclaw:box-1/claim"
        );
        assert_eq!(JOB.path_for("a/b c%"), "/v1/jobs/a%2Fb%20c%25");
    }

    #[test]
    fn a_path_matches_only_its_own_route() {
        assert!(CLAIM.matches("/v1/hosts/h-1/claim"));
        assert!(!CLAIM.matches("/v1/hosts/h-1/claim/more"));
        assert!(!CLAIM.matches("/v1/hosts//claim"));
        assert!(!CLAIM.matches("/v1/hosts/h-1"));
        assert!(ENQUEUE.matches("/v1/jobs"));
        assert!(!ENQUEUE.matches("/v1/jobs/x"));
        assert!(TILE.matches("/v1/log/tile/0/x001/234.p/7"));
        assert!(TILE.matches("/v1/log/tile/entries/000"));
        assert!(!TILE.matches("/v1/log/tile"));
        assert!(!TILE.matches("/v1/log/tile/"));
    }

    #[test]
    fn a_request_is_found_under_its_template() {
        let at = |method, path| position(method, path).map(|i| ALL[i]);
        assert_eq!(at(Method::Post, "/v1/jobs/j-1/cancel"), Some(CANCEL));
        assert_eq!(at(Method::Get, "/v1/jobs/j-1"), Some(JOB));
        assert_eq!(at(Method::Get, "/metrics"), Some(METRICS));
        assert_eq!(at(Method::Post, "/v1/jobs/j-1"), None);
        assert_eq!(at(Method::Get, "/v1/nothing"), None);
    }

    #[test]
    fn every_route_is_listed_once_and_ids_come_one_at_most() {
        for (i, route) in ALL.iter().enumerate() {
            assert!(route.path.starts_with('/'), "{route:?}");
            let ids = route
                .segments()
                .filter(|s| *s != Segment::Literal(""))
                .count();
            let ids = ids
                - route
                    .segments()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
            assert!(ids <= 1, "{route:?}");
            if route.segments().any(|s| s == Segment::Rest) {
                assert_eq!(route.segments().last(), Some(Segment::Rest), "{route:?}");
            }
            let others = ALL[..i]
                .iter()
                .filter(|r| r.method == route.method && r.path == route.path)
                .count();
            assert_eq!(others, 0, "{route:?} is listed twice");
        }
    }
}
