//! A coordinator whose wall clock is moved an hour either way, running or
//! across a restart (through the hidden `SKYCLAW_CLOCK_OFFSET_FILE`): time
//! in the log must keep advancing at its real pace, a 3 s lease must still
//! run out about 3 s after it was taken, and leases held across the step
//! must not all expire at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyclaw_api::{
    EnqueueRequest, HeartbeatRequest, Job, JobStatus, RegisterHostRequest, Requirement, RunningJob,
};
use skyclaw_client::{Client, ClientConfig};

use crate::harness;
use crate::util::{Process, TOKEN};

const LEASE_MS: u64 = 3_000;
const LEASE: Duration = Duration::from_millis(LEASE_MS);
const HOUR_MS: i64 = 3_600_000;
/// Room for polling, scheduling and the sweeper's nap on a busy machine.
const SLACK: Duration = Duration::from_secs(3);
/// Room for stamps in whole milliseconds.
const ROUNDING_MS: u64 = 10;
/// Host that heartbeats the leases it holds.
const STEADY: &str = "steady";
/// Host that takes leases and never heartbeats.
const SILENT: &str = "silent";

/// A coordinator whose wall clock is offset by what `offset_file` holds.
struct Coordinator {
    dir: PathBuf,
    offset_file: PathBuf,
    process: Process,
    client: Client,
}

impl Coordinator {
    /// Starts a coordinator on `port` (0: any free one).
    fn start(dir: &Path, name: &str, port: u16) -> Coordinator {
        let offset_file = dir.join("clock-offset-ms");
        let db = dir.join("db");
        let process = Process::spawn(
            name,
            dir,
            &["coordinator"],
            &[
                ("SKYCLAW_COORDINATOR_HOST", "127.0.0.1"),
                ("SKYCLAW_COORDINATOR_PORT", &port.to_string()),
                ("SKYCLAW_DB_PATH", db.to_str().unwrap()),
                ("SKYCLAW_TOKEN", TOKEN),
                ("SKYCLAW_LEASE_MS", &LEASE_MS.to_string()),
                ("SKYCLAW_CLOCK_OFFSET_FILE", offset_file.to_str().unwrap()),
            ],
        );
        let config = ClientConfig::new(vec![process.listening_url()], Some(TOKEN.into()));
        Coordinator {
            dir: dir.to_path_buf(),
            offset_file,
            process,
            client: Client::new(config).unwrap(),
        }
    }

    /// Moves the coordinator's wall clock to `offset_ms` from the machine's.
    fn set_clock(&self, offset_ms: i64) {
        std::fs::write(&self.offset_file, offset_ms.to_string()).unwrap();
    }

    /// Kills the coordinator and starts it again on the same data and
    /// port, so clients already pointed at it carry on.
    fn restart(self, name: &str) -> Coordinator {
        let Coordinator {
            dir,
            mut process,
            client,
            ..
        } = self;
        let url = client.current_url();
        let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
        process.signal(libc::SIGKILL);
        process.wait_exit(Duration::from_secs(10));
        Coordinator::start(&dir, name, port.parse().unwrap())
    }

    /// Registers both hosts, waiting for the cluster to be ready.
    async fn register_hosts(&self) {
        for name in [STEADY, SILENT] {
            let request = RegisterHostRequest {
                host_id: Some(name.into()),
                name: name.into(),
                capabilities: None,
                max_parallel: Some(16),
                ..RegisterHostRequest::default()
            };
            skyclaw_testkit::wait_until(
                "the coordinator to register a host",
                Duration::from_secs(30),
                || {
                    let request = request.clone();
                    async move { self.client.register_host(&request).await.ok() }
                },
            )
            .await;
        }
    }

    /// Enqueues a job no host can run: it only marks a moment in the log.
    async fn enqueue(&self) -> Job {
        let request = EnqueueRequest {
            requirement: Some(Requirement {
                required_capabilities: vec!["nobody-has-this".into()],
            }),
            ..EnqueueRequest::shell("true", vec![])
        };
        self.client.enqueue(&request, None).await.unwrap()
    }

    /// Enqueues a job with one attempt and leases it to `host`: once its
    /// lease expires it fails, so it is never claimed again.
    async fn lease(&self, host: &str) -> Job {
        let request = EnqueueRequest {
            max_attempts: Some(1),
            ..EnqueueRequest::shell("true", vec![])
        };
        let job = self.client.enqueue(&request, None).await.unwrap();
        let leased = self.client.claim(host, None).await.unwrap().unwrap();
        assert_eq!(leased.id, job.id, "the only job a host can run");
        leased
    }

    async fn job(&self, id: &str) -> Job {
        self.client.job(id).await.unwrap()
    }

    /// Two jobs enqueued a second apart are created a second apart: time
    /// in the log neither stands still nor leaps.
    async fn check_time_advances(&self) {
        let started = Instant::now();
        let first = self.enqueue().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = self.enqueue().await;
        let real = started.elapsed().as_millis() as u64;
        let logged = second.created_at.saturating_sub(first.created_at);
        assert!(
            (1_000 - ROUNDING_MS..=real + ROUNDING_MS).contains(&logged),
            "createdAt moved {logged} ms while {real} ms passed: {first:?} then {second:?}"
        );
    }

    /// A lease of `job` (taken at `taken`) runs out a lease period after it
    /// was taken: not sooner, and not much later.
    async fn check_expires_on_time(&self, job: &Job, taken: Instant) {
        let id = job.id.clone();
        let expired = skyclaw_testkit::wait_for(
            &format!("the lease of {id} to expire"),
            LEASE + SLACK,
            || async {
                let job = self.job(&id).await;
                match job.status {
                    JobStatus::Failed => Ok(job),
                    _ => Err(format!("{job:?}")),
                }
            },
        )
        .await;
        let after = taken.elapsed();
        assert!(
            after >= LEASE,
            "the lease of {id} expired {after:?} after it was taken"
        );
        assert_eq!(expired.attempts, 1, "{expired:?}");
    }
}

/// Heartbeats `job` for the steady host until dropped; remembers whether
/// the coordinator ever said the lease was lost.
struct Heartbeats {
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeats {
    fn start(client: Client, job: &Job) -> Heartbeats {
        let lost = Arc::new(AtomicBool::new(false));
        let request = HeartbeatRequest {
            active_leases: Some(1),
            running: Some(vec![RunningJob {
                job_id: job.id.clone(),
                lease_epoch: job.lease_epoch.unwrap(),
            }]),
        };
        let flag = lost.clone();
        let task = tokio::spawn(async move {
            loop {
                // A coordinator restarting does not answer: that is no loss.
                if let Ok(answer) = client.heartbeat(STEADY, &request).await {
                    if !answer.lost.is_empty() {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Heartbeats { lost, task }
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The steady host's lease is still the one it was given.
async fn check_held(coordinator: &Coordinator, heartbeats: &Heartbeats, held: &Job) {
    let job = coordinator.job(&held.id).await;
    assert!(
        !heartbeats.lost() && job.status == JobStatus::Leased && job.attempts == 1,
        "a lease renewed all along was lost: {job:?}"
    );
}

#[test]
fn a_wall_clock_moved_an_hour_either_way_neither_stops_time_nor_expires_leases() {
    harness::run(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::start(dir.path(), "coordinator", 0);
        coordinator.register_hosts().await;
        let held = coordinator.lease(STEADY).await;
        let heartbeats = Heartbeats::start(coordinator.client.clone(), &held);
        // Past the new leader's grace (one lease period), expiry below is
        // timed by the lease alone.
        tokio::time::sleep(LEASE).await;
        check_held(&coordinator, &heartbeats, &held).await;

        for offset in [HOUR_MS, -HOUR_MS] {
            let across_taken = Instant::now();
            let across = coordinator.lease(SILENT).await;
            let started = Instant::now();
            let before = coordinator.enqueue().await;
            coordinator.set_clock(offset);
            let after = coordinator.enqueue().await;
            let real = started.elapsed().as_millis() as u64 + ROUNDING_MS;
            assert!(
                after.created_at >= before.created_at
                    && after.created_at - before.created_at <= real,
                "a wall clock moved by {offset} ms moved createdAt from {} to {}",
                before.created_at,
                after.created_at
            );
            let fresh_taken = Instant::now();
            let fresh = coordinator.lease(SILENT).await;
            coordinator.check_time_advances().await;
            coordinator
                .check_expires_on_time(&across, across_taken)
                .await;
            coordinator.check_expires_on_time(&fresh, fresh_taken).await;
            check_held(&coordinator, &heartbeats, &held).await;
        }
    });
}

#[test]
fn a_coordinator_restarted_with_its_clock_moved_goes_on_from_the_log() {
    harness::run(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let mut coordinator = Coordinator::start(dir.path(), "coordinator", 0);
        coordinator.register_hosts().await;
        let held = coordinator.lease(STEADY).await;
        let heartbeats = Heartbeats::start(coordinator.client.clone(), &held);

        for (round, offset) in [-HOUR_MS, HOUR_MS].into_iter().enumerate() {
            let before = coordinator.enqueue().await;
            coordinator.set_clock(offset);
            coordinator = coordinator.restart(&format!("coordinator-{round}"));
            coordinator.register_hosts().await;
            // Set back, the clock goes on from the log's time; set forward,
            // it follows the wall clock (which shows the offset was read).
            // Either way it then keeps going.
            let after = coordinator.enqueue().await;
            let moved = after.created_at as i64 - before.created_at as i64;
            let expected = if offset > 0 {
                HOUR_MS - 60_000..=HOUR_MS + 60_000
            } else {
                0..=60_000
            };
            assert!(
                expected.contains(&moved),
                "after a restart with the wall clock moved by {offset} ms, createdAt moved {moved} ms"
            );
            coordinator.check_time_advances().await;
            let taken = Instant::now();
            let fresh = coordinator.lease(SILENT).await;
            // A restarted leader waits a lease period before expiring.
            coordinator.check_expires_on_time(&fresh, taken).await;
            check_held(&coordinator, &heartbeats, &held).await;
        }
    });
}
