//! What the host daemon measures, and the small server that shows it:
//! jobs run by outcome, how long they ran, and its slots, in Prometheus
//! text format on `GET /metrics` at `--metrics-addr`. That server has no
//! token, so it belongs on loopback or a private network. The recorder is
//! the daemon's own, not a global one: `skyclaw dev` runs a coordinator
//! beside it in one process.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use warp::http::header::CONTENT_TYPE;
use warp::Filter;

use crate::runner::{RunResult, StopReason};

/// Bucket bounds of job durations, from an instant refusal to the hour.
const SECONDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// How often duration samples are folded into their buckets when nobody
/// scrapes, so unscraped samples do not pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The content type of Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// How a run ended, as the `outcome` label says it.
const OUTCOMES: [&str; 7] = [
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "lease_lost",
    "lease_expired",
    "shutdown",
];

/// Where `result`'s outcome is in [`OUTCOMES`].
fn outcome(result: &RunResult) -> usize {
    match result.stopped {
        None if result.success => 0,
        None => 1,
        Some(StopReason::Timeout) => 2,
        Some(StopReason::Cancelled) => 3,
        Some(StopReason::LeaseLost) => 4,
        Some(StopReason::LeaseExpired) => 5,
        Some(StopReason::Shutdown) => 6,
    }
}

/// The daemon's metrics, registered once and updated without allocating.
pub struct HostMetrics {
    recorder: PrometheusRecorder,
    jobs: [Counter; OUTCOMES.len()],
    durations: [Histogram; OUTCOMES.len()],
    slots_in_use: Gauge,
}

impl HostMetrics {
    pub fn new(slots: u32) -> HostMetrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let name = KeyName::from_const_str;
        recorder.describe_counter(
            name("skyclaw_host_jobs_total"),
            None,
            "Jobs this host ran, by outcome.".into(),
        );
        recorder.describe_histogram(
            name("skyclaw_host_job_duration_seconds"),
            None,
            "How long each job ran, by outcome.".into(),
        );
        recorder.describe_gauge(
            name("skyclaw_host_slots"),
            None,
            "Jobs this host runs at once, at most.".into(),
        );
        recorder.describe_gauge(
            name("skyclaw_host_slots_in_use"),
            None,
            "Slots held by a job, from its start until its result is acknowledged.".into(),
        );
        let by_outcome = |name: &'static str, outcome: &'static str| {
            Key::from_parts(name, vec![Label::from_static_parts("outcome", outcome)])
        };
        let jobs = OUTCOMES.map(|outcome| {
            recorder.register_counter(&by_outcome("skyclaw_host_jobs_total", outcome), &METADATA)
        });
        let durations = OUTCOMES.map(|outcome| {
            recorder.register_histogram(
                &by_outcome("skyclaw_host_job_duration_seconds", outcome),
                &METADATA,
            )
        });
        recorder
            .register_gauge(&Key::from_static_name("skyclaw_host_slots"), &METADATA)
            .set(f64::from(slots));
        let slots_in_use = recorder.register_gauge(
            &Key::from_static_name("skyclaw_host_slots_in_use"),
            &METADATA,
        );
        HostMetrics {
            recorder,
            jobs,
            durations,
            slots_in_use,
        }
    }

    /// Counts a run that ended as `result` says.
    pub fn job_ended(&self, result: &RunResult) {
        let outcome = outcome(result);
        self.jobs[outcome].increment(1);
        self.durations[outcome].record(result.duration.as_secs_f64());
    }

    /// Marks a slot in use until the returned guard drops.
    pub fn slot_taken(self: &Arc<Self>) -> SlotInUse {
        self.slots_in_use.increment(1.0);
        SlotInUse(self.clone())
    }

    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// A slot held by a job; dropping it frees the slot in the metrics.
pub struct SlotInUse(Arc<HostMetrics>);

impl Drop for SlotInUse {
    fn drop(&mut self) {
        self.0.slots_in_use.decrement(1.0);
    }
}

/// Serves `GET /metrics` (and nothing else) on `listener`, folding
/// duration samples into buckets meanwhile, until its task is aborted.
pub async fn serve(metrics: Arc<HostMetrics>, listener: tokio::net::TcpListener) {
    let route = {
        let metrics = metrics.clone();
        warp::path("metrics")
            .and(warp::path::end())
            .and(warp::get())
            .map(move || warp::reply::with_header(metrics.render(), CONTENT_TYPE, TEXT_FORMAT))
            // Boxed, the server's future is `Send` for every lifetime, as
            // spawning it needs.
            .boxed()
    };
    let server = warp::serve(route).incoming(listener).run();
    let upkeep = async {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            metrics.recorder.handle().run_upkeep();
        }
    };
    tokio::join!(server, upkeep);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(success: bool, stopped: Option<StopReason>) -> RunResult {
        RunResult {
            success,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            duration: Duration::from_millis(1500),
            stopped,
        }
    }

    #[test]
    fn runs_are_counted_by_outcome_with_their_duration_and_slots_come_back() {
        let metrics = Arc::new(HostMetrics::new(4));
        metrics.job_ended(&ended(true, None));
        metrics.job_ended(&ended(false, Some(StopReason::Timeout)));
        let held = metrics.slot_taken();
        let text = metrics.render();
        assert!(
            text.contains(r#"skyclaw_host_jobs_total{outcome="succeeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"skyclaw_host_jobs_total{outcome="timed_out"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"skyclaw_host_jobs_total{outcome="failed"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"skyclaw_host_job_duration_seconds_bucket{outcome="succeeded",le="2.5"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("skyclaw_host_slots 4"), "{text}");
        assert!(text.contains("skyclaw_host_slots_in_use 1"), "{text}");
        drop(held);
        assert!(metrics.render().contains("skyclaw_host_slots_in_use 0"));
    }
}
