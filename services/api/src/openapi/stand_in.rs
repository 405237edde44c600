//! Schemas for the two wire types `skyclaw-api` re-exports rather than
//! defines: `Payload` (from `skyclaw-log-format`) and `JobStatus` (from
//! `skyclaw-state`). Those crates define what the log holds and replays and
//! stay free of utoipa, so the auditor and the host daemon that link them
//! carry no documentation machinery. Each stand-in here has the real type's
//! name and serde shape, and is used only to derive the schema (the wire
//! types point at it with `#[schema(value_type = …)]`). The tests below
//! keep the shapes equal: every real value goes through its stand-in and
//! back unchanged, and every stand-in value through the real type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The work a job asks for, as the enqueuer wrote it: a shell command, or
/// an Automaton run. It goes into the log as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Payload {
    /// Runs `command` with `args`; the host runs it only if the program is
    /// on its allow-list.
    #[serde(rename_all = "camelCase")]
    Shell {
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// A relative path inside the job's own directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Runs the host's Automaton.
    #[serde(rename_all = "camelCase")]
    AutomatonRun {
        /// Absent runs the automaton with `--run`; `[]` with no arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        automaton_dir: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// Where a job is: `queued → leased → completed | failed`, or `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Leased,
    Completed,
    Failed,
    Cancelled,
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    /// `value` as JSON, read as `T` and written again: unchanged.
    fn same_through<T: Serialize + DeserializeOwned>(value: &impl Serialize) {
        let json = serde_json::to_value(value).unwrap();
        let through: T = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(through).unwrap(), json);
    }

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("LANG".to_string(), "C".to_string())])
    }

    #[test]
    fn every_payload_field_is_in_the_stand_in_and_back() {
        let real = [
            crate::Payload::Shell {
                command: "echo".into(),
                args: vec!["hi".into()],
                cwd: Some("work".into()),
                env: env(),
                timeout_ms: Some(5),
            },
            crate::Payload::AutomatonRun {
                args: Some(vec![]),
                automaton_dir: Some("/opt/automaton".into()),
                env: env(),
                timeout_ms: Some(5),
            },
            crate::Payload::AutomatonRun {
                args: None,
                automaton_dir: None,
                env: BTreeMap::new(),
                timeout_ms: None,
            },
        ];
        for payload in &real {
            same_through::<Payload>(payload);
        }
        let stand_ins = [
            Payload::Shell {
                command: "echo".into(),
                args: vec!["hi".into()],
                cwd: Some("work".into()),
                env: env(),
                timeout_ms: Some(5),
            },
            Payload::AutomatonRun {
                args: Some(vec!["--once".into()]),
                automaton_dir: Some("/opt/automaton".into()),
                env: env(),
                timeout_ms: Some(5),
            },
        ];
        for payload in &stand_ins {
            same_through::<crate::Payload>(payload);
        }
    }

    #[test]
    fn job_statuses_are_spelled_alike() {
        for status in skyclaw_state::JobStatus::ALL {
            same_through::<JobStatus>(&status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                Value::from(status.as_str())
            );
        }
        let schema = serde_json::to_value(<JobStatus as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            schema["enum"].as_array().unwrap().len(),
            skyclaw_state::JobStatus::ALL.len()
        );
    }
}
