//! One coordinator of a [`Cluster`](crate::Cluster): its process (started,
//! killed and restarted by the cluster), its data directory and log, and
//! what it costs (resident memory, disk).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::binary::clean_command;
use crate::proxy::Proxy;

/// One coordinator. When it runs behind a proxy, the proxy (and so the
/// URL everyone uses) outlives its processes.
pub struct Node {
    pub name: String,
    /// Where clients reach it: its proxy's URL when clients go through
    /// one, else where it listens (after a restart on port 0, where it
    /// listens now).
    pub url: String,
    /// RocksDB's directory.
    pub db: PathBuf,
    /// Where every start's stderr goes, one after the other.
    log: PathBuf,
    /// The port it binds: 0 for any, or one reserved for it.
    port: u16,
    /// Its settings, passed to every start.
    env: Vec<(String, String)>,
    proxy: Option<Proxy>,
    /// Whether clients use the proxy too, not only peers.
    clients_via_proxy: bool,
    pub(crate) process: Option<Child>,
    pub(crate) paused: bool,
    starts: u32,
}

impl Node {
    pub(crate) fn new(
        name: String,
        dir: &Path,
        port: u16,
        env: Vec<(String, String)>,
        proxy: Option<Proxy>,
        clients_via_proxy: bool,
    ) -> Node {
        let url = match &proxy {
            Some(proxy) if clients_via_proxy => proxy.url(),
            _ => format!("http://127.0.0.1:{port}"),
        };
        Node {
            url,
            db: dir.join("db"),
            log: dir.join("coordinator.log"),
            name,
            port,
            env,
            proxy,
            clients_via_proxy,
            process: None,
            paused: false,
            starts: 0,
        }
    }

    /// Starts the process from `bin` in `cwd` and waits for the line that
    /// says where it listens; does not wait until it serves.
    pub(crate) async fn spawn(&mut self, bin: &Path, cwd: &Path) {
        assert!(self.process.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the node's log");
        writeln!(log, "===== {} start {} =====", self.name, self.starts).unwrap();
        let mut command = clean_command(bin);
        command
            .arg("coordinator")
            .current_dir(cwd)
            .env("SKYCLAW_COORDINATOR_PORT", self.port.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().expect("start skyclaw coordinator");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let address: SocketAddr = match line {
            Ok(Ok(Some(line))) => line
                .strip_prefix("skyclaw coordinator listening on http://")
                .and_then(|address| address.trim().parse().ok())
                .unwrap_or_else(|| panic!("{}: unexpected first line {line:?}", self.name)),
            other => panic!(
                "{} did not say where it listens ({other:?}); log:\n{}",
                self.name,
                self.log_tail(40)
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.process = Some(child);
        self.paused = false;
        if let Some(proxy) = &self.proxy {
            proxy.set_target(Some(address));
        }
        if !self.clients_via_proxy {
            self.url = format!("http://{address}");
        }
    }

    /// Forgets the process once it is gone; the proxy closes what comes in.
    pub(crate) fn gone(&mut self) {
        if let Some(proxy) = &self.proxy {
            proxy.set_target(None);
        }
        self.paused = false;
    }

    pub fn pid(&self) -> Option<i32> {
        self.process
            .as_ref()
            .and_then(Child::id)
            .map(|pid| pid as i32)
    }

    pub(crate) fn signal(&self, signal: i32) {
        let pid = self.pid().expect("the node is running");
        // SAFETY: kill(2) on our own child's pid; it touches no memory.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to {}", self.name);
    }

    /// The proxy in front of it, if it has one.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// The first panic this node logged, with the lines that follow it: a
    /// crashed raft core keeps logging long after, burying the cause.
    pub fn first_panic(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let lines: Vec<&str> = log.lines().collect();
        let at = lines.iter().position(|line| line.contains("panicked at"))?;
        Some(lines[at.saturating_sub(2)..(at + 8).min(lines.len())].join("\n"))
    }

    /// The last lines of everything this node logged, over all its starts.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Resident memory of the process, in bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Bytes the node's data directory takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.db)
    }
}

impl Drop for Node {
    /// Kills the process, paused or not, and waits (briefly) until it is
    /// gone, so that its directory can be removed after it.
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.start_kill();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
