//! What each route takes and answers, as the document shows it: its
//! parameters, request body, answer, and every error status it can give,
//! each with the `{"error": "..."}` body. The statuses are those the
//! coordinator's failures map to (`http/error.rs` in the coordinator);
//! schemathesis checks in CI that no answer has a status or a shape this
//! file does not list.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Ref, RefOr, Required, Response, ResponseBuilder, Schema};
use utoipa::ToSchema;

use super::{constraints, stand_in, Schemas};
use crate::limits;
use crate::routes::{
    self, Method, Route, IDEMPOTENCY_HEADER, LEADER_HEADER, REQUEST_ID_HEADER, SEGMENT_CONTENT_TYPE,
};

const JSON: &str = "application/json";

pub(super) fn http_method(route: Route) -> HttpMethod {
    match route.method {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
    }
}

/// An error status a route can answer. 401 (no or wrong token) is added to
/// every route that needs the token, 400 and 413 to every route with a
/// body, 400 to every route with query parameters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Error {
    BadRequest,
    Unauthorized,
    NotFound,
    Conflict,
    Gone,
    TooLarge,
    Unavailable,
}

use Error::*;

impl Error {
    fn status(self) -> &'static str {
        match self {
            BadRequest => "400",
            Unauthorized => "401",
            NotFound => "404",
            Conflict => "409",
            Gone => "410",
            TooLarge => "413",
            Unavailable => "503",
        }
    }

    fn description(self) -> &'static str {
        match self {
            BadRequest => "The request is malformed; the error names the field or parameter.",
            Unauthorized => "The token header is missing or wrong.",
            NotFound => "No such job, host or member.",
            Conflict => {
                "The request conflicts with the record: a stale lease, an idempotency key \
                 used with another body, a member that must be removed first."
            }
            Gone => "The records asked for are below this node's snapshot: the error says where its log starts.",
            TooLarge => "The body, or one of its fields, is over its limit; the error names it.",
            Unavailable => {
                "No leader is known, or the write timed out waiting for a quorum (it may still \
                 commit: retry with the same idempotency key). Retry after `Retry-After`."
            }
        }
    }
}

/// One operation, as it is being described.
struct Described {
    operation: OperationBuilder,
    open: bool,
    parameters: Vec<Parameter>,
    answer: Response,
    errors: Vec<Error>,
}

impl Described {
    fn new(tag: &str, id: &str, summary: &str, answer: Response) -> Described {
        Described {
            operation: OperationBuilder::new()
                .tag(tag)
                .operation_id(Some(id))
                .summary(Some(summary)),
            open: false,
            parameters: Vec::new(),
            answer,
            errors: Vec::new(),
        }
    }

    /// Served without the token.
    fn open(mut self) -> Described {
        self.open = true;
        self
    }

    fn errors(mut self, errors: &[Error]) -> Described {
        self.errors.extend_from_slice(errors);
        self
    }

    fn description(mut self, text: &str) -> Described {
        self.operation = self.operation.description(Some(text));
        self
    }

    /// The job or host id in the path; no such one is 404.
    fn path_id(mut self, what: &str) -> Described {
        let id = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(limits::MAX_ID_BYTES))
            .pattern(Some(constraints::ID_PATTERN));
        self.parameters.push(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(format!(
                    "The {what}'s id (percent-encoding is decoded)."
                )))
                .schema(Some(id))
                .build(),
        );
        self.errors(&[NotFound])
    }

    fn query(mut self, name: &str, schema: impl Into<RefOr<Schema>>, text: &str) -> Described {
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(text))
                .schema(Some(schema))
                .build(),
        );
        self.errors(&[BadRequest])
    }

    /// `?stale=true` reads this node's state without asking the leader.
    fn stale(self) -> Described {
        self.query(
            "stale",
            ObjectBuilder::new().schema_type(Type::Boolean),
            "Read this node's own state instead of a linearizable read through the leader.",
        )
        .errors(&[Unavailable])
    }

    fn idempotency_key(mut self, text: &str) -> Described {
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(limits::MAX_IDEMPOTENCY_KEY_BYTES));
        self.parameters.push(
            ParameterBuilder::new()
                .name(IDEMPOTENCY_HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(text))
                .schema(Some(key))
                .build(),
        );
        self.errors(&[BadRequest, Conflict])
    }

    /// A JSON body; an optional one may be left empty for the defaults.
    fn body(mut self, schema: RefOr<Schema>, required: bool) -> Described {
        let required = if required {
            Required::True
        } else {
            Required::False
        };
        self.operation = self.operation.request_body(Some(
            RequestBodyBuilder::new()
                .content(JSON, Content::new(Some(schema)))
                .required(Some(required))
                .build(),
        ));
        self.errors(&[BadRequest, TooLarge])
    }

    /// A write: passed to the leader from a follower, refused by the
    /// record's rules, and answered 503 without a quorum.
    fn write(self) -> Described {
        self.errors(&[Unavailable])
    }

    fn build(self) -> Operation {
        let mut errors = self.errors;
        if !self.open {
            errors.push(Unauthorized);
        }
        errors.sort();
        errors.dedup();
        let mut operation = self
            .operation
            .parameters(Some(self.parameters))
            .response("200", self.answer);
        for error in errors {
            operation = operation.response(error.status(), error_response(error));
        }
        if self.open {
            operation = operation.securities(Some(Vec::<SecurityRequirement>::new()));
        }
        operation.build()
    }
}

/// The headers every answer carries.
fn with_headers(response: ResponseBuilder) -> ResponseBuilder {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    response
        .header(
            REQUEST_ID_HEADER,
            HeaderBuilder::new()
                .schema(text())
                .description(Some(
                    "The request's id: the caller's `x-request-id` if it is 1 to 128 \
                     characters of `A-Z a-z 0-9 . _ - : @ + / =`, one made up otherwise. \
                     The coordinator's log lines for the request carry it.",
                ))
                .build(),
        )
        .header(
            LEADER_HEADER,
            HeaderBuilder::new()
                .schema(text())
                .description(Some("The current leader's name, when one is known."))
                .build(),
        )
}

fn json(schema: RefOr<Schema>, description: &str) -> Response {
    with_headers(ResponseBuilder::new().description(description))
        .content(JSON, Content::new(Some(schema)))
        .build()
}

/// A text answer of `content_type` (metrics, the dashboard's assets).
fn text(content_type: &str, description: &str) -> Response {
    with_headers(ResponseBuilder::new().description(description))
        .content(
            content_type,
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build()
}

fn error_response(error: Error) -> Response {
    let mut response = with_headers(ResponseBuilder::new().description(error.description()))
        .content(
            JSON,
            Content::new(Some(RefOr::Ref(Ref::from_schema_name(
                crate::ErrorBody::name(),
            )))),
        );
    if error == Unavailable {
        response = response.header(
            "retry-after",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

fn integer(minimum: u64, maximum: u64, default: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum))
        .maximum(Some(maximum))
        .default(Some(default.into()))
}

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
        routes::REGISTER => Described::new(
            "hosts",
            "register",
            "Register a host, or update its details",
            json(schemas.of::<api::HostResponse>(), "The host."),
        )
        .body(schemas.of::<api::RegisterHostRequest>(), true)
        .errors(&[Conflict])
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
