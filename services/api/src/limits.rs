//! What a request may carry: every size and character-set rule of the API,
//! checked before anything is proposed, so a refused request costs no raft
//! entry and leaves nothing behind. Each rule names the field it is about;
//! a field that is too long is 413, any other bad shape 400.
//!
//! The limits are generous for real jobs and hosts (the host daemon's own
//! output bound is 128,000 bytes per stream) and small enough that no single
//! field can make an entry, an event or a view expensive to keep forever;
//! one job or one completion at its limits still fits a raft entry.

use std::collections::BTreeMap;
use std::fmt::Display;

use skyclaw_state::{MAX_ATTEMPTS_LIMIT, MAX_PARALLEL_LIMIT};

use crate::{
    BatchEnqueueRequest, ClaimRequest, CompleteRequest, EnqueueRequest, HeartbeatRequest,
    IssueKeyRequest, Payload, RegisterHostRequest,
};

/// Host and job ids: 1 to 128 bytes of `A-Z a-z 0-9 . _ - : @`, so every id
/// is addressable as one path segment, whether or not a client encodes it.
pub const MAX_ID_BYTES: usize = 128;
/// A host's display name.
pub const MAX_NAME_BYTES: usize = 256;
/// Capabilities a host offers or a job requires.
pub const MAX_CAPABILITIES: usize = 64;
/// One capability name (same characters as ids).
pub const MAX_CAPABILITY_BYTES: usize = 64;
/// A shell job's command (the program, not its arguments).
pub const MAX_COMMAND_BYTES: usize = 4_096;
/// Arguments of one job.
pub const MAX_ARGS: usize = 1_024;
/// All arguments of one job together.
pub const MAX_ARGS_BYTES: usize = 256 * 1024;
/// `cwd` and `automatonDir`.
pub const MAX_PATH_BYTES: usize = 4_096;
/// Environment variables of one job.
pub const MAX_ENV_VARS: usize = 256;
/// One environment variable's name.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// All environment names and values of one job together.
pub const MAX_ENV_BYTES: usize = 256 * 1024;
/// Jobs in one `POST /v1/jobs/batch` (whose raft entry must also fit
/// 1 MiB: about 5,000 small jobs).
pub const MAX_BATCH_JOBS: usize = 10_000;
/// `stdout` and `stderr` of one completion, each: both together, with the
/// rest of the completion, fit one raft entry (1 MiB).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// A completion's `error` text (kept inline in the event).
pub const MAX_ERROR_BYTES: usize = 4_096;
/// Jobs one heartbeat reports running.
pub const MAX_RUNNING: usize = 1_024;
/// Jobs one claim may take at most.
pub const MAX_JOBS_PER_CLAIM: u32 = 256;
/// An `x-idempotency-key`.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;
/// Jobs one `GET /v1/jobs` page holds at most.
pub const MAX_JOBS_PAGE: usize = 1_000;
/// A registration's `publicKey`, `challenge`, `signature` and
/// `enrollKey`, each.
pub const MAX_CREDENTIAL_BYTES: usize = 256;
/// How many hosts one enrollment key may approve.
pub const MAX_ENROLL_USES: u32 = 100_000;
/// Records one `GET /v1/events` returns at most.
pub const MAX_EVENTS_PAGE: u64 = 10_000;

/// Why a request is refused, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// 400: the field has a shape the API does not accept.
    Shape(String),
    /// 413: the field is larger than its limit.
    TooLarge(String),
}

impl Invalid {
    pub fn message(&self) -> &str {
        match self {
            Invalid::Shape(message) | Invalid::TooLarge(message) => message,
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

pub type Checked = Result<(), Invalid>;

/// A field of one job: at the top of an enqueue (`payload.command`) or of
/// a batch's entry (`jobs[3].payload.command`). Rules take their field as
/// `impl Display` and spell it out only when they refuse it, so a batch of
/// valid jobs formats no names.
#[derive(Clone, Copy)]
struct JobField {
    /// The job's place in a batch, if it is in one.
    entry: Option<usize>,
    name: &'static str,
}

impl Display for JobField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(i) = self.entry {
            write!(f, "jobs[{i}].")?;
        }
        f.write_str(self.name)
    }
}

fn too_large(field: impl Display, limit: usize, unit: &str) -> Invalid {
    Invalid::TooLarge(format!("{field} is too large: at most {limit} {unit}"))
}

fn at_most(field: impl Display, len: usize, limit: usize, unit: &str) -> Checked {
    if len > limit {
        Err(too_large(field, limit, unit))
    } else {
        Ok(())
    }
}

fn no_nul(field: impl Display, text: &str) -> Checked {
    if text.contains('\0') {
        Err(Invalid::Shape(format!(
            "{field} must not contain a NUL byte"
        )))
    } else {
        Ok(())
    }
}

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// A host or job id: see [`MAX_ID_BYTES`].
pub fn id(field: impl Display + Copy, id: &str) -> Checked {
    at_most(field, id.len(), MAX_ID_BYTES, "bytes")?;
    if id.is_empty() {
        return Err(Invalid::Shape(format!("{field} must not be empty")));
    }
    match id.chars().find(|&c| !id_char(c)) {
        Some(c) => Err(Invalid::Shape(format!(
            "{field} contains {c:?}; ids use only letters, digits and . _ - : @"
        ))),
        None => Ok(()),
    }
}

fn capabilities(field: impl Display + Copy, capabilities: &[String]) -> Checked {
    at_most(field, capabilities.len(), MAX_CAPABILITIES, "entries")?;
    for capability in capabilities {
        at_most(
            format_args!("{field} entry"),
            capability.len(),
            MAX_CAPABILITY_BYTES,
            "bytes",
        )?;
        if capability.is_empty() || !capability.chars().all(id_char) {
            return Err(Invalid::Shape(format!(
                "{field} contains an invalid entry {capability:?}: use letters, digits and . _ - : @"
            )));
        }
    }
    Ok(())
}

fn args(field: impl Display + Copy, args: &[String]) -> Checked {
    at_most(field, args.len(), MAX_ARGS, "entries")?;
    let total: usize = args.iter().map(String::len).sum();
    at_most(field, total, MAX_ARGS_BYTES, "bytes in all")?;
    args.iter().try_for_each(|arg| no_nul(field, arg))
}

fn env(field: impl Display + Copy, env: &BTreeMap<String, String>) -> Checked {
    at_most(field, env.len(), MAX_ENV_VARS, "variables")?;
    let total: usize = env
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    at_most(field, total, MAX_ENV_BYTES, "bytes in all")?;
    for (name, value) in env {
        at_most(
            format_args!("{field} name"),
            name.len(),
            MAX_ENV_NAME_BYTES,
            "bytes",
        )?;
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(Invalid::Shape(format!(
                "{field} has an invalid name {name:?}"
            )));
        }
        no_nul(format_args!("{field}.{name}"), value)?;
    }
    Ok(())
}

fn path(field: impl Display + Copy, path: &Option<String>) -> Checked {
    match path {
        Some(path) => {
            at_most(field, path.len(), MAX_PATH_BYTES, "bytes")?;
            no_nul(field, path)
        }
        None => Ok(()),
    }
}

fn payload(entry: Option<usize>, payload: &Payload) -> Checked {
    let field = |name| JobField { entry, name };
    match payload {
        Payload::Shell {
            command,
            args: shell_args,
            cwd,
            env: vars,
            timeout_ms,
        } => {
            let name = field("payload.command");
            at_most(name, command.len(), MAX_COMMAND_BYTES, "bytes")?;
            if command.trim().is_empty() {
                return Err(Invalid::Shape(format!("{name} must not be empty")));
            }
            no_nul(name, command)?;
            args(field("payload.args"), shell_args)?;
            path(field("payload.cwd"), cwd)?;
            env(field("payload.env"), vars)?;
            timeout(field("payload.timeoutMs"), *timeout_ms)
        }
        Payload::AutomatonRun {
            args: run_args,
            automaton_dir,
            env: vars,
            timeout_ms,
        } => {
            args(
                field("payload.args"),
                run_args.as_deref().unwrap_or_default(),
            )?;
            path(field("payload.automatonDir"), automaton_dir)?;
            env(field("payload.env"), vars)?;
            timeout(field("payload.timeoutMs"), *timeout_ms)
        }
    }
}

fn timeout(field: impl Display, timeout_ms: Option<u64>) -> Checked {
    if timeout_ms == Some(0) {
        Err(Invalid::Shape(format!("{field} must be positive")))
    } else {
        Ok(())
    }
}

/// What `GET /v1/jobs` filters by: a host id, a required capability, and
/// text to find in the command line (no longer than a command may be).
pub fn job_filter(host: Option<&str>, capability: Option<&str>, text: Option<&str>) -> Checked {
    if let Some(host) = host {
        id("host", host)?;
    }
    if let Some(capability) = capability {
        capabilities("capability", std::slice::from_ref(&capability.to_string()))?;
    }
    if let Some(text) = text {
        at_most("command", text.len(), MAX_COMMAND_BYTES, "bytes")?;
        no_nul("command", text)?;
    }
    Ok(())
}

/// An `x-idempotency-key` header, if one was sent.
pub fn idempotency_key(key: Option<&str>) -> Checked {
    match key {
        Some("") => Err(Invalid::Shape("x-idempotency-key must not be empty".into())),
        Some(key) => at_most(
            "x-idempotency-key",
            key.len(),
            MAX_IDEMPOTENCY_KEY_BYTES,
            "bytes",
        ),
        None => Ok(()),
    }
}

impl RegisterHostRequest {
    pub fn check(&self) -> Checked {
        if let Some(host_id) = &self.host_id {
            id("hostId", host_id)?;
        }
        at_most("name", self.name.len(), MAX_NAME_BYTES, "bytes")?;
        if self.name.trim().is_empty() {
            return Err(Invalid::Shape("name must not be empty".into()));
        }
        no_nul("name", &self.name)?;
        if let Some(list) = &self.capabilities {
            capabilities("capabilities", list)?;
        }
        if let Some(sandbox) = &self.sandbox {
            at_most("sandbox", sandbox.len(), MAX_NAME_BYTES, "bytes")?;
            no_nul("sandbox", sandbox)?;
        }
        if self
            .max_parallel
            .is_some_and(|max| !(1..=MAX_PARALLEL_LIMIT).contains(&max))
        {
            return Err(Invalid::Shape(format!(
                "maxParallel must be between 1 and {MAX_PARALLEL_LIMIT}"
            )));
        }
        let credentials = [
            ("publicKey", &self.public_key),
            ("challenge", &self.challenge),
            ("signature", &self.signature),
            ("enrollKey", &self.enroll_key),
        ];
        for (field, value) in credentials {
            if let Some(value) = value {
                at_most(field, value.len(), MAX_CREDENTIAL_BYTES, "bytes")?;
                if !value.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(Invalid::Shape(format!(
                        "{field} must be printable ASCII without spaces"
                    )));
                }
            }
        }
        // The signed message is made of lines: a line break inside a field
        // would let one message be read two ways.
        let lines = [Some(&self.name), self.sandbox.as_ref()];
        if lines
            .into_iter()
            .flatten()
            .any(|text| text.contains(['\n', '\r']))
        {
            return Err(Invalid::Shape(
                "name and sandbox must not hold line breaks".into(),
            ));
        }
        Ok(())
    }
}

impl IssueKeyRequest {
    pub fn check(&self) -> Checked {
        if let Some(account) = &self.account {
            id("account", account)?;
        }
        if let Some(scopes) = &self.scopes {
            at_most("scopes", scopes.len(), 8, "entries")?;
        }
        if self
            .uses
            .is_some_and(|uses| !(1..=MAX_ENROLL_USES).contains(&uses))
        {
            return Err(Invalid::Shape(format!(
                "uses must be between 1 and {MAX_ENROLL_USES}"
            )));
        }
        if self
            .ttl_ms
            .is_some_and(|ttl| ttl == 0 || ttl > 10 * 365 * 86_400_000)
        {
            return Err(Invalid::Shape(
                "ttlMs must be more than 0 and at most ten years".into(),
            ));
        }
        Ok(())
    }
}

impl ClaimRequest {
    pub fn check(&self) -> Checked {
        if !(1..=MAX_JOBS_PER_CLAIM).contains(&self.max_jobs.unwrap_or(1)) {
            return Err(Invalid::Shape(format!(
                "maxJobs must be between 1 and {MAX_JOBS_PER_CLAIM}"
            )));
        }
        Ok(())
    }
}

impl HeartbeatRequest {
    pub fn check(&self) -> Checked {
        let running = self.running.as_deref().unwrap_or_default();
        at_most("running", running.len(), MAX_RUNNING, "entries")?;
        running
            .iter()
            .try_for_each(|job| id("running[].jobId", &job.job_id))
    }
}

impl EnqueueRequest {
    pub fn check(&self) -> Checked {
        self.check_as(None)
    }

    /// Checks the job, at `entry` of a batch if it is in one.
    fn check_as(&self, entry: Option<usize>) -> Checked {
        let field = |name| JobField { entry, name };
        payload(entry, &self.payload)?;
        if self
            .max_attempts
            .is_some_and(|max| !(1..=MAX_ATTEMPTS_LIMIT).contains(&max))
        {
            return Err(Invalid::Shape(format!(
                "{} must be between 1 and {MAX_ATTEMPTS_LIMIT}",
                field("maxAttempts")
            )));
        }
        if let Some(requirement) = &self.requirement {
            capabilities(
                field("requirement.requiredCapabilities"),
                &requirement.required_capabilities,
            )?;
        }
        Ok(())
    }
}

impl BatchEnqueueRequest {
    pub fn check(&self) -> Checked {
        if self.jobs.is_empty() {
            return Err(Invalid::Shape("jobs must not be empty".into()));
        }
        at_most("jobs", self.jobs.len(), MAX_BATCH_JOBS, "jobs")?;
        self.jobs
            .iter()
            .enumerate()
            .try_for_each(|(i, job)| job.check_as(Some(i)))
    }
}

impl CompleteRequest {
    pub fn check(&self) -> Checked {
        id("hostId", &self.host_id)?;
        at_most("stdout", self.stdout.len(), MAX_OUTPUT_BYTES, "bytes")?;
        at_most("stderr", self.stderr.len(), MAX_OUTPUT_BYTES, "bytes")?;
        if let Some(error) = &self.error {
            at_most("error", error.len(), MAX_ERROR_BYTES, "bytes")?;
        }
        if let Some(receipt) = &self.receipt {
            receipt.seal()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(command: &str) -> EnqueueRequest {
        EnqueueRequest::shell(command, vec![])
    }

    #[test]
    fn ids_are_one_path_segment_of_plain_characters() {
        assert_eq!(id("hostId", "openclaw:box-1.a_b@c"), Ok(()));
        for bad in ["", "a/b", "a b", "a%3Ab", "é", "a?b", "a#b"] {
            assert!(
                matches!(id("hostId", bad), Err(Invalid::Shape(m)) if m.contains("hostId")),
                "{bad:?}"
            );
        }
        assert!(matches!(
            id("hostId", &"x".repeat(MAX_ID_BYTES + 1)),
            Err(Invalid::TooLarge(m)) if m.contains("hostId")
        ));
    }

    fn with(args: Vec<String>, env: BTreeMap<String, String>) -> EnqueueRequest {
        let mut request = shell("echo");
        if let Payload::Shell {
            args: a, env: e, ..
        } = &mut request.payload
        {
            *a = args;
            *e = env;
        }
        request
    }

    fn too_large(request: &EnqueueRequest, field: &str) -> bool {
        matches!(request.check(), Err(Invalid::TooLarge(m)) if m.starts_with(field))
    }

    #[test]
    fn each_payload_field_is_bounded_and_named() {
        let big = |n| "x".repeat(n);
        assert!(too_large(
            &shell(&big(MAX_COMMAND_BYTES + 1)),
            "payload.command"
        ));
        let many = with(vec![String::new(); MAX_ARGS + 1], BTreeMap::new());
        assert!(too_large(&many, "payload.args"));
        let long = with(
            vec![big(MAX_ARGS_BYTES / 2 + 1), big(MAX_ARGS_BYTES / 2)],
            BTreeMap::new(),
        );
        assert!(too_large(&long, "payload.args"));
        let vars = (0..=MAX_ENV_VARS)
            .map(|i| (format!("V{i}"), String::new()))
            .collect();
        assert!(too_large(&with(vec![], vars), "payload.env"));
        let bad_name = with(vec![], BTreeMap::from([("A=B".into(), String::new())]));
        assert!(matches!(bad_name.check(), Err(Invalid::Shape(m)) if m.contains("payload.env")));
        assert!(matches!(shell(" ").check(), Err(Invalid::Shape(_))));
        assert!(matches!(shell("a\0b").check(), Err(Invalid::Shape(_))));
        assert_eq!(shell("echo").check(), Ok(()));
    }

    #[test]
    fn a_batch_names_the_job_at_fault() {
        let batch = BatchEnqueueRequest {
            jobs: vec![shell("echo"), shell("")],
        };
        assert!(
            matches!(batch.check(), Err(Invalid::Shape(m)) if m.starts_with("jobs[1].payload.command"))
        );
        assert!(matches!(
            BatchEnqueueRequest { jobs: vec![] }.check(),
            Err(Invalid::Shape(_))
        ));
    }

    #[test]
    fn registrations_and_completions_are_bounded() {
        let register = RegisterHostRequest {
            name: "x".repeat(MAX_NAME_BYTES + 1),
            ..RegisterHostRequest::default()
        };
        assert!(matches!(register.check(), Err(Invalid::TooLarge(m)) if m.starts_with("name")));
        let complete = CompleteRequest {
            host_id: "h".into(),
            success: false,
            duration_ms: 1,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some("e".repeat(MAX_ERROR_BYTES + 1)),
            lease_epoch: None,
            receipt: None,
        };
        assert!(matches!(complete.check(), Err(Invalid::TooLarge(m)) if m.starts_with("error")));
    }
}
