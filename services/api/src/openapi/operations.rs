//! What each route takes and answers, as the document shows it: its
//! parameters, request body, answer, and every error status it can give,
//! each with the `{"error": "..."}` body. The statuses are those the
//! coordinator's failures map to (`http/error.rs` in the coordinator);
//! schemathesis checks in CI that no answer has a status or a shape this
//! file does not list.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Content, ResponseBuilder};

use super::described::{integer, json, text, with_headers, Described, Error::*, JSON};
use super::{stand_in, Schemas};
use crate::limits;
use crate::routes::{self, Route, SEGMENT_CONTENT_TYPE};

/// Describes `route`; `None` for raft's routes, which the document leaves
/// out. A route added to `routes::ALL` but not here fails the tests, which
/// require every route but raft's in the document.
pub(super) fn operation(route: Route, schemas: &mut Schemas) -> Option<Operation> {
    use crate as api;
    // Every error answer refers to it (`error_response`).
    schemas.of::<api::ErrorBody>();
    let described = match route {
        routes::HEALTH => Described::new(
            "meta",
            "health",
            "Whether this process serves; needs no token",
            json(schemas.of::<api::Health>(), "It serves."),
        )
        .open(),
        routes::OPENAPI => Described::new(
            "meta",
            "openapi",
            "This document; needs no token",
            json(
                ObjectBuilder::new().schema_type(Type::Object).into(),
                "The OpenAPI 3.1 document.",
            ),
        )
        .open()
        .description(
            "Served without the token: it is generated from the code of this build, holds \
             nothing of the cluster's data, and a client or fuzzer needs it to learn how to \
             send the token at all.",
        ),
        routes::STATUS => Described::new(
            "log",
            "status",
            "This node, the leader, the log head and the queue depth",
            json(schemas.of::<api::Status>(), "The node's status."),
        ),
        routes::STATE => Described::new(
            "log",
            "state",
            "Every host and job (the MVP's whole-state view)",
            json(schemas.of::<api::StateResponse>(), "The whole state."),
        )
        .stale(),
        routes::STATE_DIGEST => Described::new(
            "log",
            "stateDigest",
            "A BLAKE3 hash over every view, the same on every node at the same seq",
            json(schemas.of::<api::StateDigest>(), "The digest."),
        ),
        routes::ENQUEUE => Described::new(
            "jobs",
            "enqueue",
            "Enqueue a job",
            json(schemas.of::<api::JobResponse>(), "The job, queued."),
        )
        .idempotency_key("Same key and body, same job: a retried enqueue makes no second job.")
        .body(schemas.of::<api::EnqueueRequest>(), true)
        .write(),
        routes::ENQUEUE_BATCH => Described::new(
            "jobs",
            "enqueueBatch",
            "Enqueue jobs together: all or none",
            json(
                schemas.of::<api::JobsResponse>(),
                "The jobs, queued, in order.",
            ),
        )
        .idempotency_key("The batch's key; job i gets `key#i`.")
        .body(schemas.of::<api::BatchEnqueueRequest>(), true)
        .write(),
        routes::JOBS => Described::new(
            "jobs",
            "listJobs",
            "One page of jobs, oldest first",
            json(
                schemas.of::<api::JobsPage>(),
                "A page; `next` is the next page's `after`.",
            ),
        )
        .query(
            "status",
            schemas.of::<stand_in::JobStatus>(),
            "Only jobs in this status.",
        )
        .query(
            "limit",
            integer(1, limits::MAX_JOBS_PAGE as u64, 100),
            "Jobs in the page at most.",
        )
        .query(
            "after",
            ObjectBuilder::new().schema_type(Type::String),
            "The `next` of the previous page.",
        )
        .query(
            "host",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(limits::MAX_ID_BYTES)),
            "Only jobs assigned to this host.",
        )
        .query(
            "capability",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(limits::MAX_CAPABILITY_BYTES)),
            "Only jobs that require this capability.",
        )
        .query(
            "command",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(limits::MAX_COMMAND_BYTES)),
            "Only jobs whose command line holds this text.",
        )
        .query(
            "order",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["oldest", "newest"])),
            "Oldest first (the default) or newest first.",
        )
        .errors(&[TooLarge]),
        routes::SUMMARY => Described::new(
            "jobs",
            "summary",
            "Jobs by status, the queue by priority and capability, the last hour's activity",
            json(
                schemas.of::<api::JobsSummary>(),
                "The summary, from this node's state.",
            ),
        ),
        routes::METRICS => Described::new(
            "meta",
            "metrics",
            "Prometheus metrics; also takes `Authorization: Bearer <token>`",
            text("text/plain", "The metrics in Prometheus text format."),
        ),
        routes::UI => Described::new(
            "ui",
            "dashboard",
            "The web dashboard's page; needs no token (it asks for one)",
            text("text/html", "The page."),
        )
        .open(),
        routes::UI_SCRIPT => Described::new(
            "ui",
            "dashboardScript",
            "The web dashboard's script; needs no token",
            text("text/javascript", "The script."),
        )
        .open(),
        routes::UI_STYLE => Described::new(
            "ui",
            "dashboardStyle",
            "The web dashboard's style sheet; needs no token",
            text("text/css", "The style sheet."),
        )
        .open(),
        routes::JOB => Described::new(
            "jobs",
            "job",
            "A job",
            json(schemas.of::<api::JobResponse>(), "The job."),
        )
        .path_id("job")
        .stale(),
        routes::CANCEL => Described::new(
            "jobs",
            "cancel",
            "Cancel a job: at once if queued, through its host if leased",
            json(
                schemas.of::<api::JobResponse>(),
                "The job, cancelled or marked.",
            ),
        )
        .path_id("job")
        .errors(&[Conflict])
        .write(),
        routes::COMPLETE => Described::new(
            "jobs",
            "complete",
            "A host reports a job's result",
            json(schemas.of::<api::JobResponse>(), "The job, finished."),
        )
        .path_id("job")
        .body(schemas.of::<api::CompleteRequest>(), true)
        .errors(&[Conflict])
        .write(),
        routes::RECEIPT => Described::new(
            "jobs",
            "receipt",
            "A completed job's signed receipt, and its proof of inclusion under a checkpoint",
            json(
                schemas.of::<api::ReceiptResponse>(),
                "The receipt and its proof.",
            ),
        )
        .path_id("job")
        .errors(&[NotFound, Gone, Unavailable]),
        routes::REGISTER => Described::new(
            "hosts",
            "register",
            "Register a host, or update its details",
            json(schemas.of::<api::HostResponse>(), "The host."),
        )
        .body(schemas.of::<api::RegisterHostRequest>(), true)
        .errors(&[Conflict])
        .write(),
        routes::CHALLENGE => Described::new(
            "hosts",
            "challenge",
            "A challenge for a host to sign: the first step of registering with a key",
            json(schemas.of::<api::Challenge>(), "The challenge."),
        )
        .open()
        .errors(&[Unavailable]),
        routes::APPROVE_HOST => Described::new(
            "hosts",
            "approveHost",
            "Let a pending host take work",
            json(schemas.of::<api::HostResponse>(), "The host, active."),
        )
        .path_id("host")
        .errors(&[NotFound])
        .write(),
        routes::REVOKE_HOST => Described::new(
            "hosts",
            "revokeHost",
            "Shut a host out: its leases end and its requests are refused",
            json(schemas.of::<api::HostResponse>(), "The host, revoked."),
        )
        .path_id("host")
        .errors(&[NotFound])
        .write(),
        routes::KEYS => Described::new(
            "keys",
            "keys",
            "Every API key (never its secret)",
            json(schemas.of::<api::KeysResponse>(), "The keys."),
        ),
        routes::ISSUE_KEY => Described::new(
            "keys",
            "issueKey",
            "Issue an API key: an enqueuer's, an auditor's, an admin's, or an enrollment key",
            json(
                schemas.of::<api::IssuedKey>(),
                "The key, and its secret: shown this once.",
            ),
        )
        .body(schemas.of::<api::IssueKeyRequest>(), true)
        .errors(&[Conflict])
        .write(),
        routes::REVOKE_KEY => Described::new(
            "keys",
            "revokeKey",
            "Revoke an API key",
            json(schemas.of::<api::KeyResponse>(), "The key, revoked."),
        )
        .path_id("key")
        .errors(&[NotFound])
        .write(),
        routes::HOSTS => Described::new(
            "hosts",
            "hosts",
            "Every host",
            json(schemas.of::<api::HostsResponse>(), "The hosts."),
        ),
        routes::HEARTBEAT => Described::new(
            "hosts",
            "heartbeat",
            "A host is alive; renews the leases of the jobs it runs",
            json(
                schemas.of::<api::HeartbeatResponse>(),
                "The host, and the jobs to stop.",
            ),
        )
        .path_id("host")
        .body(schemas.of::<api::HeartbeatRequest>(), false)
        .errors(&[Conflict])
        .write(),
        routes::CLAIM => {
            let either = OneOfBuilder::new()
                .item(schemas.of::<api::ClaimResponse>())
                .item(schemas.of::<api::JobsResponse>());
            Described::new(
                "hosts",
                "claim",
                "A host takes work, waiting up to `waitMs` for some",
                json(
                    either.into(),
                    "Without `maxJobs`, `{job}` (null when none); with it, `{jobs}`.",
                ),
            )
            .path_id("host")
            .idempotency_key(
                "A claim repeated with the key of one whose answer was lost gets the same \
                 leases back.",
            )
            .body(schemas.of::<api::ClaimRequest>(), false)
            .write()
        }
        routes::LOG_HEAD => Described::new(
            "log",
            "logHead",
            "The last record of this node's event log",
            json(schemas.of::<api::LogHead>(), "The head."),
        ),
        routes::EVENTS => {
            let segment = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type(SEGMENT_CONTENT_TYPE);
            let answer = with_headers(ResponseBuilder::new().description(
                "A segment (`log-format/FORMAT.md`), or with `?format=json` the records as JSON.",
            ))
            .content(SEGMENT_CONTENT_TYPE, Content::new(Some(segment)))
            .content(JSON, Content::new(Some(schemas.of::<api::EventRecords>())))
            .build();
            let format = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["segment", "json"]))
                .default(Some("segment".into()));
            Described::new("log", "events", "A run of this node's event log", answer)
                .query(
                    "from",
                    integer(1, i64::MAX as u64, 1),
                    "The first seq; 0 counts as 1.",
                )
                .query(
                    "limit",
                    integer(1, limits::MAX_EVENTS_PAGE, 1_000),
                    "Records at most.",
                )
                .query("format", format, "`segment` (binary) or `json`.")
                .errors(&[Gone, Unavailable])
        }
        routes::LOG_KEYS => Described::new(
            "log",
            "logKeys",
            "Every member's log key, which signs checkpoints",
            json(schemas.of::<api::LogKeys>(), "The keys."),
        )
        .errors(&[Unavailable]),
        routes::CHECKPOINT => Described::new(
            "log",
            "checkpoint",
            "The latest checkpoint a majority of the voters signed",
            text(
                "text/plain",
                "A C2SP tlog-checkpoint as a signed note (`log-format/FORMAT.md` §5).",
            ),
        )
        .errors(&[NotFound]),
        routes::INCLUSION => Described::new(
            "log",
            "inclusionProof",
            "Proof that record `seq` is in the tree of the first `size` records",
            json(schemas.of::<api::InclusionProof>(), "The proof."),
        )
        .query("seq", integer(1, i64::MAX as u64, 1), "The record's seq.")
        .query("size", integer(1, i64::MAX as u64, 1), "The tree's size.")
        .errors(&[Gone, Unavailable]),
        routes::CONSISTENCY => Described::new(
            "log",
            "consistencyProof",
            "Proof that the tree of `to` records extends the tree of `from` records",
            json(schemas.of::<api::ConsistencyProof>(), "The proof."),
        )
        .query(
            "from",
            integer(1, i64::MAX as u64, 1),
            "The smaller tree's size.",
        )
        .query(
            "to",
            integer(1, i64::MAX as u64, 1),
            "The larger tree's size.",
        )
        .errors(&[Gone, Unavailable]),
        routes::TILE => Described::new(
            "log",
            "tile",
            "A tile of the log's Merkle tree, or an entry bundle (C2SP tlog-tiles, height 8)",
            text(
                "application/octet-stream",
                "Hashes (32 bytes each), or entries (a big-endian u16 length, then the record).",
            ),
        )
        .tile_path()
        .errors(&[Gone]),
        routes::COSIGN => Described::new(
            "log",
            "cosign",
            "The leader asks a member to sign a checkpoint (between coordinators)",
            json(
                schemas.of::<api::CosignResponse>(),
                "The member's signature.",
            ),
        )
        .body(schemas.of::<api::CosignRequest>(), true)
        .errors(&[Conflict, Unavailable]),
        routes::CLUSTER => Described::new(
            "cluster",
            "cluster",
            "Members, leader, term, and how far each member has applied",
            json(schemas.of::<api::ClusterStatus>(), "The cluster."),
        ),
        routes::HELLO => Described::new(
            "cluster",
            "hello",
            "Who this coordinator is, for bootstrap and joins",
            json(schemas.of::<api::ClusterHello>(), "This node."),
        ),
        routes::JOIN => Described::new(
            "cluster",
            "join",
            "A coordinator asks to become a voter (used by bootstrap)",
            json(schemas.of::<api::Done>(), "It is a voter."),
        )
        .body(schemas.of::<api::JoinRequest>(), true)
        .errors(&[Conflict])
        .write(),
        routes::ADD_MEMBER => Described::new(
            "cluster",
            "addMember",
            "Add the coordinator serving at `url`, once it has caught up",
            json(schemas.of::<api::Done>(), "It is a voter."),
        )
        .body(schemas.of::<api::AddMemberRequest>(), true)
        .errors(&[Conflict])
        .write(),
        routes::REMOVE_MEMBER => Described::new(
            "cluster",
            "removeMember",
            "Remove every incarnation of a member",
            json(schemas.of::<api::Done>(), "It is no longer a member."),
        )
        .body(schemas.of::<api::RemoveMemberRequest>(), true)
        .errors(&[NotFound, Conflict])
        .write(),
        _ => return None,
    };
    Some(described.build())
}
