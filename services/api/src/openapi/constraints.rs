//! The limits of [`crate::limits`] written into the schemas of the fields
//! they bound (id characters and lengths, list sizes, number ranges), from
//! the same constants the server checks, so a client or fuzzer that follows
//! the document sends what the server accepts. A limit the document does
//! not show is still enforced; a request over it gets 400 or 413.

use utoipa::openapi::schema::{ArrayItems, Object, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::limits::{
    MAX_BATCH_JOBS, MAX_CAPABILITIES, MAX_CAPABILITY_BYTES, MAX_COMMAND_BYTES, MAX_ENV_NAME_BYTES,
    MAX_ENV_VARS, MAX_ID_BYTES, MAX_JOBS_PER_CLAIM, MAX_NAME_BYTES, MAX_RUNNING,
};
use skyclaw_state::{MAX_ATTEMPTS_LIMIT, MAX_PARALLEL_LIMIT};

/// Host ids, job ids and capabilities: the characters `limits::id` allows.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:@-]+$";
/// A tile's coordinates (C2SP tlog-tiles).
pub const TILE_PATTERN: &str = "^(entries|[0-7])/(x[0-9]{3}/)*[0-9]{3}(\\.p/[0-9]{1,3})?$";

/// What bounds one field.
enum Bound {
    Id(usize),
    Ids { entries: usize, bytes: usize },
    Text(usize),
    Range(u64, u64),
    Entries(usize),
}

/// (schema, property, bound).
const BOUNDS: &[(&str, &str, Bound)] = &[
    ("RegisterHostRequest", "hostId", Bound::Id(MAX_ID_BYTES)),
    ("RegisterHostRequest", "name", Bound::Text(MAX_NAME_BYTES)),
    (
        "RegisterHostRequest",
        "capabilities",
        Bound::Ids {
            entries: MAX_CAPABILITIES,
            bytes: MAX_CAPABILITY_BYTES,
        },
    ),
    (
        "RegisterHostRequest",
        "maxParallel",
        Bound::Range(1, MAX_PARALLEL_LIMIT as u64),
    ),
    (
        "Requirement",
        "requiredCapabilities",
        Bound::Ids {
            entries: MAX_CAPABILITIES,
            bytes: MAX_CAPABILITY_BYTES,
        },
    ),
    (
        "EnqueueRequest",
        "maxAttempts",
        Bound::Range(1, MAX_ATTEMPTS_LIMIT as u64),
    ),
    (
        "BatchEnqueueRequest",
        "jobs",
        Bound::Entries(MAX_BATCH_JOBS),
    ),
    (
        "ClaimRequest",
        "maxJobs",
        Bound::Range(1, MAX_JOBS_PER_CLAIM as u64),
    ),
    ("HeartbeatRequest", "running", Bound::Entries(MAX_RUNNING)),
    ("RunningJob", "jobId", Bound::Id(MAX_ID_BYTES)),
    ("CompleteRequest", "hostId", Bound::Id(MAX_ID_BYTES)),
];

/// A shell command: not blank (`limits::payload`).
pub const COMMAND_PATTERN: &str = "\\S";
/// An environment variable's name: not empty, no `=`.
pub const ENV_NAME_PATTERN: &str = "^[^=]+$";

/// Writes every bound into `schemas`.
pub(super) fn apply(schemas: &mut [(String, RefOr<Schema>)]) {
    for (name, schema) in schemas.iter_mut() {
        if name == "Payload" {
            payload(schema);
        }
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        for (schema_name, property, bound) in BOUNDS {
            if schema_name != name {
                continue;
            }
            if let Some(RefOr::T(field)) = object.properties.get_mut(*property) {
                bound.apply(field);
            }
        }
    }
}

impl Bound {
    fn apply(&self, field: &mut Schema) {
        match (self, field) {
            (Bound::Id(bytes), Schema::Object(text)) => id(text, *bytes),
            (Bound::Text(bytes), Schema::Object(text)) => text.max_length = Some(*bytes),
            (Bound::Range(min, max), Schema::Object(number)) => {
                number.minimum = Some((*min).into());
                number.maximum = Some((*max).into());
            }
            (Bound::Ids { entries, bytes }, Schema::Array(list)) => {
                list.max_items = Some(*entries);
                if let ArrayItems::RefOrSchema(item) = &mut list.items {
                    if let RefOr::T(Schema::Object(text)) = item.as_mut() {
                        id(text, *bytes);
                    }
                }
            }
            (Bound::Entries(entries), Schema::Array(list)) => list.max_items = Some(*entries),
            _ => {}
        }
    }
}

/// Each kind of payload: its command and its environment's names.
fn payload(schema: &mut RefOr<Schema>) {
    let RefOr::T(Schema::OneOf(kinds)) = schema else {
        return;
    };
    for kind in &mut kinds.items {
        let RefOr::T(Schema::Object(kind)) = kind else {
            continue;
        };
        if let Some(RefOr::T(Schema::Object(command))) = kind.properties.get_mut("command") {
            command.max_length = Some(MAX_COMMAND_BYTES);
            command.pattern = Some(COMMAND_PATTERN.to_string());
        }
        if let Some(RefOr::T(Schema::Object(env))) = kind.properties.get_mut("env") {
            env.max_properties = Some(MAX_ENV_VARS);
            env.property_names = Some(Box::new(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(MAX_ENV_NAME_BYTES))
                    .pattern(Some(ENV_NAME_PATTERN))
                    .into(),
            ));
        }
    }
}

fn id(text: &mut Object, bytes: usize) {
    text.min_length = Some(1);
    text.max_length = Some(bytes);
    text.pattern = Some(ID_PATTERN.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bound reached its field: a renamed field or type would leave
    /// one behind silently otherwise.
    #[test]
    fn every_bound_is_in_the_document() {
        let document = serde_json::to_value(super::super::document()).unwrap();
        let schemas = &document["components"]["schemas"];
        for (schema, property, bound) in BOUNDS {
            let field = &schemas[schema]["properties"][property];
            let shown = match bound {
                Bound::Id(bytes) => field["maxLength"] == *bytes && field["pattern"] == ID_PATTERN,
                Bound::Text(bytes) => field["maxLength"] == *bytes,
                Bound::Range(min, max) => field["minimum"] == *min && field["maximum"] == *max,
                Bound::Ids { entries, bytes } => {
                    field["maxItems"] == *entries && field["items"]["maxLength"] == *bytes
                }
                Bound::Entries(entries) => field["maxItems"] == *entries,
            };
            assert!(shown, "{schema}.{property}: {field}");
        }
        for kind in schemas["Payload"]["oneOf"].as_array().unwrap() {
            let env = &kind["properties"]["env"];
            assert_eq!(env["propertyNames"]["pattern"], ENV_NAME_PATTERN, "{kind}");
            assert_eq!(env["maxProperties"], MAX_ENV_VARS, "{kind}");
        }
        let commands: Vec<_> = schemas["Payload"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|kind| kind["properties"].get("command"))
            .collect();
        assert_eq!(commands.len(), 1, "the shell kind has a command");
        assert_eq!(commands[0]["pattern"], COMMAND_PATTERN, "{}", commands[0]);
    }
}
