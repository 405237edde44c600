//! The OpenAPI 3.1 description of the API, served at `GET /v1/openapi.json`.
//! Schemas come from the wire types themselves (`utoipa`'s `ToSchema`
//! derive); paths come from [`routes::ALL`], each described in
//! [`operations`], so neither can drift from what the server and client
//! use. Raft's routes ([`routes::RAFT`]) are left out: their bodies are
//! openraft's own messages in MessagePack, whose shape is openraft's and
//! changes with its version, and only coordinators of the same cluster
//! call them. The token header is declared as the security scheme every
//! operation needs but `/health` and the document itself.
//!
//! - [`operations`]: what each route takes and answers
//! - [`described`]: the builder those descriptions are written with
//! - [`constraints`]: the limits of `limits.rs`, written into the schemas
//! - [`stand_in`]: schemas for `Payload` and `JobStatus`, whose crates stay
//!   free of utoipa

mod constraints;
mod described;
mod operations;
pub mod stand_in;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Schema,
};
use utoipa::ToSchema;

use crate::routes::{self, TOKEN_HEADER};

/// The name the document gives the token's security scheme.
pub const TOKEN_SCHEME: &str = "token";

/// The whole document: every route but raft's, every schema they use.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::default();
    let mut paths = PathsBuilder::new();
    for route in routes::ALL {
        if let Some(operation) = operations::operation(route, &mut schemas) {
            paths = paths.path(
                route.path,
                utoipa::openapi::PathItem::new(described::http_method(route), operation),
            );
        }
    }
    constraints::apply(&mut schemas.0);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas.0)
        .security_scheme(
            TOKEN_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                TOKEN_HEADER,
                "The caller's credential: the admin token (`SKYCLAW_TOKEN`), an API key \
                 (`POST /v1/keys`), or a host's session (from `POST /v1/hosts/register`). \
                 `Authorization: Bearer` is taken too. A coordinator started without a \
                 token listens on loopback only and accepts any request from there.",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Skyclaw coordinator API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Enqueue jobs, run them on hosts under leases, and read the \
                     hash-chained event log. Any coordinator of a cluster answers any \
                     request; errors are `{\"error\": \"...\"}` with a status that says \
                     whose fault it was.",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .security(Some([SecurityRequirement::new(
            TOKEN_SCHEME,
            Vec::<String>::new(),
        )]))
        .build()
}

/// The component schemas the operations refer to, gathered as they are
/// described (a type's own dependencies included).
#[derive(Default)]
pub(crate) struct Schemas(Vec<(String, RefOr<Schema>)>);

impl Schemas {
    /// Registers `T` and what it refers to; returns a reference to it.
    pub(crate) fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        self.0.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.0);
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> serde_json::Value {
        serde_json::to_value(document()).expect("the document serializes")
    }

    #[test]
    fn every_route_but_raft_is_described_once() {
        let document = json();
        for route in routes::ALL {
            let method = route.method.as_str().to_lowercase();
            let described = document["paths"][route.path][method.as_str()].is_object();
            assert_eq!(described, !routes::RAFT.contains(&route), "{route:?}");
        }
        let operations: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, routes::ALL.len() - routes::RAFT.len());
    }

    #[test]
    fn every_reference_resolves() {
        let document = json();
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referred to, not defined"
            );
        }
    }

    #[test]
    fn it_is_openapi_3_1_with_the_token_scheme() {
        let document = json();
        assert_eq!(document["openapi"], "3.1.0");
        let scheme = &document["components"]["securitySchemes"][TOKEN_SCHEME];
        assert_eq!(scheme["type"], "apiKey");
        assert_eq!(scheme["in"], "header");
        assert_eq!(scheme["name"], TOKEN_HEADER);
        let open = &document["paths"][routes::HEALTH.path]["get"]["security"];
        assert_eq!(open, &serde_json::json!([]), "health needs no token");
    }
}
