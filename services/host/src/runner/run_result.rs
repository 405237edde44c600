//! How a job ended, as the daemon reports it: [`RunResult`], the
//! [`StopReason`] when the runner ended it, and the rules that turn an exit
//! status, a refusal or a stop into one. Pure: nothing here touches a
//! process.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

/// Exit code reported for a job the host refused to start, as a shell does
/// for a command it cannot execute.
pub const EXIT_REFUSED: i32 = 126;
/// Exit code reported when the command does not exist, as a shell does.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Why the runner stopped a job before it exited by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It ran past its time limit.
    Timeout,
    /// Someone cancelled it; the coordinator records it `cancelled`.
    Cancelled,
    /// The host no longer holds its lease; its result will not be reported.
    LeaseLost,
    /// No coordinator renewed the lease in time, so it may have run out
    /// and the job been leased again elsewhere; its result will not be
    /// reported.
    LeaseExpired,
    /// The host is shutting down and the job ran past the deadline.
    Shutdown,
}

/// How a job ended, ready to be reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub success: bool,
    pub exit_code: Option<i32>,
    /// The signal that ended the command, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub duration: Duration,
    /// Set when the runner stopped the job.
    pub stopped: Option<StopReason>,
}

impl RunResult {
    /// A job that never started, for the reason `error` gives.
    pub(super) fn refused(exit_code: Option<i32>, error: String) -> RunResult {
        RunResult {
            success: false,
            exit_code,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error),
            duration: Duration::ZERO,
            stopped: None,
        }
    }

    /// A job asked to stop before its process was started.
    pub(super) fn stopped_before_start(reason: StopReason, timeout: Duration) -> RunResult {
        RunResult {
            stopped: Some(reason),
            ..RunResult::refused(None, stop_message(reason, timeout))
        }
    }

    /// A job whose process could not be started: a missing program gets
    /// the shell's 127.
    pub(super) fn not_started(command: &str, error: &std::io::Error) -> RunResult {
        let code = (error.kind() == std::io::ErrorKind::NotFound).then_some(EXIT_NOT_FOUND);
        RunResult::refused(code, format!("could not start {command:?}: {error}"))
    }

    /// A job whose process ran: it succeeded only if it exited 0 by
    /// itself; a stop's reason replaces whatever the exit status said.
    pub(super) fn ended(
        status: std::io::Result<ExitStatus>,
        stopped: Option<StopReason>,
        timeout: Duration,
        (stdout, stderr): (String, String),
        duration: Duration,
    ) -> RunResult {
        let (exit_code, signal, mut error) = match status {
            Ok(status) => describe_exit(status),
            Err(e) => (None, None, Some(format!("could not wait for the job: {e}"))),
        };
        if let Some(reason) = stopped {
            error = Some(stop_message(reason, timeout));
        }
        RunResult {
            success: stopped.is_none() && exit_code == Some(0),
            exit_code,
            signal,
            stdout,
            stderr,
            error,
            duration,
            stopped,
        }
    }
}

fn describe_exit(status: ExitStatus) -> (Option<i32>, Option<i32>, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (Some(code), None, None),
        (None, Some(signal)) => (
            None,
            Some(signal),
            Some(format!(
                "killed by signal {signal} ({})",
                signal_name(signal)
            )),
        ),
        (None, None) => (None, None, Some(format!("ended oddly: {status}"))),
    }
}

fn stop_message(reason: StopReason, timeout: Duration) -> String {
    match reason {
        StopReason::Timeout => format!("timed out after {} ms", timeout.as_millis()),
        StopReason::Cancelled => "cancelled".into(),
        StopReason::LeaseLost => "stopped: this host no longer holds the lease".into(),
        StopReason::LeaseExpired => {
            "stopped: no coordinator renewed the lease before it could run out".into()
        }
        StopReason::Shutdown => "the host shut down before the job finished".into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU, the CPU time limit",
        libc::SIGXFSZ => "SIGXFSZ, the file size limit",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait(2) status: `code` in the high byte, or the signal in the low.
    fn exited(code: i32) -> std::io::Result<ExitStatus> {
        Ok(ExitStatus::from_raw(code << 8))
    }

    fn killed(signal: i32) -> std::io::Result<ExitStatus> {
        Ok(ExitStatus::from_raw(signal))
    }

    fn output() -> (String, String) {
        ("out".into(), "err".into())
    }

    const TIMEOUT: Duration = Duration::from_millis(300);

    #[test]
    fn only_exit_code_zero_by_itself_is_success() {
        let ok = RunResult::ended(exited(0), None, TIMEOUT, output(), Duration::ZERO);
        assert!(ok.success);
        assert_eq!((ok.exit_code, ok.signal, ok.error), (Some(0), None, None));
        assert_eq!((ok.stdout.as_str(), ok.stderr.as_str()), ("out", "err"));

        let failed = RunResult::ended(exited(3), None, TIMEOUT, output(), Duration::ZERO);
        assert!(!failed.success);
        assert_eq!((failed.exit_code, failed.error), (Some(3), None));

        let stopped = Some(StopReason::Cancelled);
        let cancelled = RunResult::ended(exited(0), stopped, TIMEOUT, output(), Duration::ZERO);
        assert!(!cancelled.success, "a stopped job never succeeds");
        assert_eq!(cancelled.error.as_deref(), Some("cancelled"));
    }

    #[test]
    fn a_signal_is_named_and_a_stop_reason_wins_over_it() {
        let result = RunResult::ended(
            killed(libc::SIGXCPU),
            None,
            TIMEOUT,
            output(),
            Duration::ZERO,
        );
        assert_eq!(
            (result.exit_code, result.signal),
            (None, Some(libc::SIGXCPU))
        );
        assert_eq!(
            result.error.as_deref(),
            Some("killed by signal 24 (SIGXCPU, the CPU time limit)")
        );

        let stopped = Some(StopReason::Timeout);
        let result = RunResult::ended(
            killed(libc::SIGTERM),
            stopped,
            TIMEOUT,
            output(),
            Duration::ZERO,
        );
        assert_eq!(result.signal, Some(libc::SIGTERM));
        assert_eq!(result.error.as_deref(), Some("timed out after 300 ms"));
        assert_eq!(result.stopped, stopped);
    }

    #[test]
    fn a_failed_wait_is_an_error_without_a_code() {
        let error = std::io::Error::other("gone");
        let result = RunResult::ended(Err(error), None, TIMEOUT, output(), Duration::ZERO);
        assert!(!result.success);
        assert_eq!(result.exit_code, None);
        assert_eq!(
            result.error.as_deref(),
            Some("could not wait for the job: gone")
        );
    }

    #[test]
    fn a_job_that_never_started_says_why() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            RunResult::not_started("x", &missing).exit_code,
            Some(EXIT_NOT_FOUND)
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let result = RunResult::not_started("x", &denied);
        assert_eq!(result.exit_code, None);
        assert!(result.error.unwrap().starts_with("could not start \"x\": "));

        let result = RunResult::stopped_before_start(StopReason::Shutdown, TIMEOUT);
        assert_eq!(result.stopped, Some(StopReason::Shutdown));
        assert_eq!(
            result.error.as_deref(),
            Some("the host shut down before the job finished")
        );
    }
}
