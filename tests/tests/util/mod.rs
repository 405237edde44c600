//! Helpers for black-box tests: temporary directories, the real `skyclaw`
//! binary started on port 0 (its address read from the line it prints),
//! commands run with a time limit, and waiting on conditions with a deadline
//! instead of sleeping and hoping. Every process started here is killed
//! when its handle drops; if the test is failing, its log is printed first.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use skyclaw_api::{Job, JobStatus};

/// A `skyclaw` command with a clean environment: nothing of the caller's
/// `SKYCLAW_*` leaks in, and it runs in `dir`. The binary is this build's
/// (`cargo test --workspace` builds it: the `skyclaw` package has tests of
/// its own).
pub fn skyclaw_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(skyclaw_testkit::binary::locate("skyclaw", None));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("SKYCLAW_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
}

/// Waits until `check` returns something, or panics naming `what`.
pub fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `skyclaw` process: stdout is collected line by line, stderr
/// (the log) goes to a file.
pub struct Process {
    name: String,
    child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("create the log file");
        let mut child = skyclaw_command(dir, args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start skyclaw");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (lines, arrived) = &*collected;
                lines.lock().unwrap().push(line);
                arrived.notify_all();
            }
        });
        Process {
            name: name.to_string(),
            child,
            lines,
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The first stdout line that satisfies `matches`, waiting for it.
    pub fn wait_for_line(&self, limit: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let (lines, arrived) = &*self.lines;
        let mut seen = lines.lock().unwrap();
        loop {
            if let Some(line) = seen.iter().find(|line| matches(line)) {
                return line.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{}: no such line on stdout within {limit:?}; stdout so far: {:?}\nlog:\n{}",
                self.name,
                *seen,
                self.log_text()
            );
            seen = arrived.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }

    /// The URL from `skyclaw coordinator listening on http://…`.
    pub fn listening_url(&self) -> String {
        let line = self.wait_for_line(Duration::from_secs(60), |line| {
            line.starts_with("skyclaw coordinator listening on http://")
        });
        line.rsplit(' ').next().unwrap().to_string()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; it touches no memory.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let name = self.name.clone();
        wait_until(&format!("{name} to exit"), limit, || {
            self.child.try_wait().expect("poll the child")
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last log lines of {}:", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished `skyclaw` command left.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a one-shot `skyclaw` command to its end, at most `limit`.
pub fn run_skyclaw(dir: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Ran {
    let out_path = dir.join(format!("out-{}", unique()));
    let err_path = dir.join(format!("err-{}", unique()));
    let mut child = skyclaw_command(dir, args, env)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start skyclaw");
    let status = wait_until(
        &format!("`skyclaw {}` to finish", args.join(" ")),
        limit,
        || child.try_wait().expect("poll the child"),
    );
    let ran = Ran {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    ran
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A coordinator and the way to talk to it.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    pub coordinator: Process,
}

pub const TOKEN: &str = "test-token-4f1c9a";

impl Cluster {
    /// A coordinator on a free port with its data in a fresh directory.
    pub fn start(lease_ms: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = spawn_coordinator(dir.path(), "coordinator", 0, lease_ms);
        let url = coordinator.listening_url();
        Cluster {
            dir,
            url,
            token: TOKEN.to_string(),
            coordinator,
        }
    }

    /// Kills the coordinator and starts one with an empty database on the
    /// same port: to the hosts, a coordinator that forgot them.
    pub fn replace_with_an_empty_coordinator(&mut self, lease_ms: u64) {
        self.coordinator.signal(libc::SIGKILL);
        self.coordinator.wait_exit(Duration::from_secs(10));
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let replacement = spawn_coordinator(self.path(), "coordinator-2", port, lease_ms);
        assert_eq!(replacement.listening_url(), self.url);
        self.coordinator = replacement;
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A host named `name` with its own state directory and HOME (jobs
    /// see that HOME, so they can tell which host ran them).
    pub fn start_host(&self, name: &str, env: &[(&str, &str)]) -> Process {
        let home = self.host_home(name);
        std::fs::create_dir_all(&home).unwrap();
        let state = self.path().join(format!("{name}-state"));
        let mut all = vec![
            ("SKYCLAW_COORDINATOR_URL", self.url.as_str()),
            ("SKYCLAW_TOKEN", self.token.as_str()),
            ("SKYCLAW_HOST_NAME", name),
            ("SKYCLAW_HOST_STATE_DIR", state.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
            ("SKYCLAW_HEARTBEAT_MS", "200"),
            ("SKYCLAW_POLL_MS", "5000"),
        ];
        all.extend_from_slice(env);
        Process::spawn(name, self.path(), &["host"], &all)
    }

    pub fn host_home(&self, name: &str) -> PathBuf {
        self.path().join(format!("{name}-home"))
    }

    /// Runs a client command against this coordinator.
    pub fn skyclaw(&self, args: &[&str]) -> Ran {
        run_skyclaw(
            self.path(),
            args,
            &[
                ("SKYCLAW_COORDINATOR_URL", &self.url),
                ("SKYCLAW_TOKEN", &self.token),
            ],
            Duration::from_secs(120),
        )
    }

    /// Enqueues a shell job and returns its id.
    pub fn enqueue(&self, flags_and_command: &[&str]) -> String {
        let mut args = vec!["enqueue-shell"];
        args.extend_from_slice(flags_and_command);
        let ran = self.skyclaw(&args);
        assert_eq!(ran.code, Some(0), "enqueue failed: {ran:?}");
        ran.stdout.trim().to_string()
    }

    pub fn job(&self, id: &str) -> Job {
        let ran = self.skyclaw(&["jobs", "show", id, "--json"]);
        assert_eq!(ran.code, Some(0), "jobs show failed: {ran:?}");
        serde_json::from_str(&ran.stdout).expect("a job as JSON")
    }

    /// Waits until the job reaches a final status.
    pub fn wait_final(&self, id: &str, limit: Duration) -> Job {
        wait_until(&format!("job {id} to finish"), limit, || {
            let job = self.job(id);
            job.status.is_final().then_some(job)
        })
    }

    pub fn wait_status(&self, id: &str, status: JobStatus, limit: Duration) -> Job {
        wait_until(
            &format!("job {id} to be {}", status.as_str()),
            limit,
            || {
                let job = self.job(id);
                (job.status == status).then_some(job)
            },
        )
    }

    pub fn client(&self) -> skyclaw_client::Client {
        let config =
            skyclaw_client::ClientConfig::new(vec![self.url.clone()], Some(self.token.clone()));
        skyclaw_client::Client::new(config).unwrap()
    }
}

/// A coordinator named `name`, its data in `dir/name-db`.
fn spawn_coordinator(dir: &Path, name: &str, port: u16, lease_ms: u64) -> Process {
    let db = dir.join(format!("{name}-db"));
    Process::spawn(
        name,
        dir,
        &["coordinator"],
        &[
            ("SKYCLAW_COORDINATOR_HOST", "127.0.0.1"),
            ("SKYCLAW_COORDINATOR_PORT", &port.to_string()),
            ("SKYCLAW_DB_PATH", db.to_str().unwrap()),
            ("SKYCLAW_TOKEN", TOKEN),
            ("SKYCLAW_LEASE_MS", &lease_ms.to_string()),
        ],
    )
}

/// Reads a pid a job wrote, waiting for the file.
pub fn read_pid(path: &Path) -> i32 {
    wait_until(
        &format!("{} to hold a pid", path.display()),
        Duration::from_secs(30),
        || std::fs::read_to_string(path).ok()?.trim().parse().ok(),
    )
}

/// Whether `pid` is a live process: not gone, and not a zombie left for a
/// parent that does not reap.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !(state.starts_with('Z') || state.starts_with('X'))
        }
        Err(_) => false,
    }
}
