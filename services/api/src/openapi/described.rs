//! The builder each route's description is written with: parameters, the
//! request body, the answer, and the error statuses with the
//! `{"error": "..."}` body and the headers every answer carries.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Ref, RefOr, Required, Response, ResponseBuilder, Schema};
use utoipa::ToSchema;

use super::constraints;
use crate::limits;
use crate::routes::{Method, Route, IDEMPOTENCY_HEADER, LEADER_HEADER, REQUEST_ID_HEADER};

pub(super) const JSON: &str = "application/json";

pub(super) fn http_method(route: Route) -> HttpMethod {
    match route.method {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
    }
}

/// An error status a route can answer. 401 (no or bad credential) and 403
/// (a credential without the right) are added to every route that needs one, 400 and 413 to every route with a
/// body, 400 to every route with query parameters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Error {
    BadRequest,
    Unauthorized,
    Forbidden,
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
            Forbidden => "403",
            NotFound => "404",
            Conflict => "409",
            Gone => "410",
            TooLarge => "413",
            Unavailable => "503",
        }
    }

    pub(super) fn description(self) -> &'static str {
        match self {
            BadRequest => "The request is malformed; the error names the field or parameter.",
            Unauthorized => "The credential is missing, unknown, expired or revoked.",
            Forbidden => {
                "The credential is valid but may not do this: another role's route, another \
                 account's job, another host's lease, or a host not approved."
            }
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
pub(super) struct Described {
    operation: OperationBuilder,
    open: bool,
    parameters: Vec<Parameter>,
    answer: Response,
    errors: Vec<Error>,
}

impl Described {
    pub(super) fn new(tag: &str, id: &str, summary: &str, answer: Response) -> Described {
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
    pub(super) fn open(mut self) -> Described {
        self.open = true;
        self
    }

    pub(super) fn errors(mut self, errors: &[Error]) -> Described {
        self.errors.extend_from_slice(errors);
        self
    }

    pub(super) fn description(mut self, text: &str) -> Described {
        self.operation = self.operation.description(Some(text));
        self
    }

    /// The job or host id in the path; no such one is 404.
    pub(super) fn path_id(mut self, what: &str) -> Described {
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

    /// A tile's coordinates in the path (C2SP tlog-tiles); no such tile
    /// is 404.
    pub(super) fn tile_path(mut self) -> Described {
        let path = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(48))
            .pattern(Some(constraints::TILE_PATTERN));
        self.parameters.push(
            ParameterBuilder::new()
                .name("path")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(
                    "`<level>/<index>[.p/<width>]` or `entries/<index>[.p/<width>]`, the index \
                     in groups of three digits, all but the last prefixed with `x`."
                        .to_string(),
                ))
                .schema(Some(path))
                .build(),
        );
        self.errors(&[NotFound])
    }

    pub(super) fn query(
        mut self,
        name: &str,
        schema: impl Into<RefOr<Schema>>,
        text: &str,
    ) -> Described {
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
    pub(super) fn stale(self) -> Described {
        self.query(
            "stale",
            ObjectBuilder::new().schema_type(Type::Boolean),
            "Read this node's own state instead of a linearizable read through the leader.",
        )
        .errors(&[Unavailable])
    }

    pub(super) fn idempotency_key(mut self, text: &str) -> Described {
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
    pub(super) fn body(mut self, schema: RefOr<Schema>, required: bool) -> Described {
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
    pub(super) fn write(self) -> Described {
        self.errors(&[Unavailable])
    }

    pub(super) fn build(self) -> Operation {
        let mut errors = self.errors;
        if !self.open {
            errors.push(Unauthorized);
            errors.push(Forbidden);
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
pub(super) fn with_headers(response: ResponseBuilder) -> ResponseBuilder {
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

pub(super) fn json(schema: RefOr<Schema>, description: &str) -> Response {
    with_headers(ResponseBuilder::new().description(description))
        .content(JSON, Content::new(Some(schema)))
        .build()
}

/// A text answer of `content_type` (metrics, the dashboard's assets).
pub(super) fn text(content_type: &str, description: &str) -> Response {
    with_headers(ResponseBuilder::new().description(description))
        .content(
            content_type,
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build()
}

pub(super) fn error_response(error: Error) -> Response {
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

pub(super) fn integer(minimum: u64, maximum: u64, default: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum))
        .maximum(Some(maximum))
        .default(Some(default.into()))
}
