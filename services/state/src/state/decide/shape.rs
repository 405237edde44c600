//! What a command's fields must look like, whatever the state: the checks
//! `decide` runs before it looks at the state. They stay as they are even
//! where the API's limits are stricter: entries already in a log must
//! replay exactly as they first did.

use skyclaw_log_format::event::{JobSpec, Payload};

use crate::command::Rejection;
use crate::MAX_ATTEMPTS_LIMIT;

pub(super) fn check_capabilities(field: &str, capabilities: &[String]) -> Result<(), Rejection> {
    if capabilities.len() > 64 {
        return Err(Rejection::Invalid(format!(
            "{field} may list at most 64 entries"
        )));
    }
    match capabilities.iter().find(|c| c.is_empty() || c.len() > 64) {
        Some(bad) => Err(Rejection::Invalid(format!(
            "{field} contains an invalid entry {bad:?} (1 to 64 characters)"
        ))),
        None => Ok(()),
    }
}

/// Checks what an enqueuer controls; the message names the field.
pub(super) fn check_spec(spec: &JobSpec) -> Result<(), Rejection> {
    let invalid = |message: String| Err(Rejection::Invalid(message));
    if spec.job_id.is_empty() || spec.job_id.len() > 128 {
        return invalid("job id must be 1 to 128 characters".into());
    }
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&spec.max_attempts) {
        return invalid(format!(
            "maxAttempts must be between 1 and {MAX_ATTEMPTS_LIMIT}"
        ));
    }
    check_capabilities(
        "requirement.requiredCapabilities",
        &spec.required_capabilities,
    )?;
    let (env, timeout_ms) = match &spec.payload {
        Payload::Shell {
            command,
            env,
            timeout_ms,
            ..
        } => {
            if command.trim().is_empty() {
                return invalid("payload.command must not be empty".into());
            }
            (env, timeout_ms)
        }
        Payload::AutomatonRun {
            env, timeout_ms, ..
        } => (env, timeout_ms),
    };
    if *timeout_ms == Some(0) {
        return invalid("payload.timeoutMs must be positive".into());
    }
    if let Some(key) = env
        .keys()
        .find(|key| key.is_empty() || key.contains('=') || key.contains('\0'))
    {
        return invalid(format!("payload.env has an invalid name {key:?}"));
    }
    Ok(())
}
