//! Processes the benchmark starts itself from the built binaries: single
//! coordinators (on port 0), three-node clusters (on ports picked in
//! advance, so that peers know each other's URLs and a killed node comes
//! back at the same address), and `skyclaw host` daemons. Each lives in a
//! directory the caller owns (a temporary one) and is killed when dropped.
//! Every wait has a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::load::Api;

pub const TOKEN: &str = "bench-token";

/// One coordinator process; killed when dropped.
pub struct Coordinator {
    /// The node's name (its `SKYCLAW_COORDINATOR_NODE_ID`).
    pub name: String,
    /// Where it listens; for port 0, where it listened last.
    pub url: String,
    /// `None` while killed.
    child: Option<Child>,
    bin: PathBuf,
    /// RocksDB's directory.
    data: PathBuf,
    /// Where the process's stderr goes.
    log: PathBuf,
    /// Port 0 for any free port; clusters fix one.
    port: u16,
    /// Settings beyond the ones every coordinator gets.
    env: Vec<(String, String)>,
}

/// The binary `name` beside this one, unless given.
pub fn sibling_bin(name: &str, given: Option<PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(bin) => bin,
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's own directory")?
            .join(name),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (`cargo build --release --workspace`) or pass its path",
            bin.display()
        );
    }
    Ok(bin)
}

/// The `skyclaw` binary beside this one, unless given.
pub fn skyclaw_bin(given: Option<PathBuf>) -> Result<PathBuf> {
    sibling_bin("skyclaw", given)
}

/// `count` distinct free loopback ports, each held by a listener until
/// the caller drops it, just before a process is to bind the port (and
/// after anything else that binds port 0, so it cannot take one of them).
pub fn reserve_ports(count: usize) -> Result<Vec<std::net::TcpListener>> {
    (0..count)
        .map(|_| Ok(std::net::TcpListener::bind("127.0.0.1:0")?))
        .collect()
}

/// The ports [`reserve_ports`] holds.
pub fn ports_of(reserved: &[std::net::TcpListener]) -> Result<Vec<u16>> {
    reserved
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

impl Coordinator {
    /// Starts a one-node coordinator keeping its data and log in `dir`
    /// and waits until it serves.
    pub async fn start(bin: &Path, dir: &Path) -> Result<Coordinator> {
        std::fs::create_dir_all(dir)?;
        let mut coordinator = Coordinator {
            name: "node-1".into(),
            url: String::new(),
            child: None,
            bin: bin.to_path_buf(),
            data: dir.join("db"),
            log: dir.join("coordinator.log"),
            port: 0,
            env: Vec::new(),
        };
        coordinator.spawn().await?;
        coordinator.wait_ready(Duration::from_secs(60)).await?;
        Ok(coordinator)
    }

    /// Waits until the coordinator answers and its cluster exists.
    pub async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let api = Api::with_timeout(&self.url, Duration::from_secs(2));
        let deadline = Instant::now() + limit;
        loop {
            if api.head().await.is_ok_and(|head| head.seq > 0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "coordinator {} at {} not ready after {limit:?}; its log ends:\n{}",
                    self.name,
                    self.url,
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// kill -9, then start again on the same data; returns the time from
    /// spawning to serving.
    pub async fn crash_and_restart(&mut self) -> Result<Duration> {
        self.kill().await?;
        let started = Instant::now();
        self.spawn().await?;
        self.wait_ready(Duration::from_secs(300)).await?;
        Ok(started.elapsed())
    }

    /// kill -9 (no shutdown, no flush) and reap the process.
    pub async fn kill(&mut self) -> Result<()> {
        let mut child = self
            .child
            .take()
            .context("the coordinator is not running")?;
        child.start_kill()?;
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .context("the coordinator did not die of SIGKILL")??;
        Ok(())
    }

    /// Resident memory of the process, in bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id()?;
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
        walk(&self.data)
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Starts the process on `data` and `port` and reads the line that says
    /// where it listens; does not wait until it serves.
    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .context("opening the coordinator's log")?;
        let mut command = clean_command(&self.bin);
        command
            .arg("coordinator")
            .env("SKYCLAW_COORDINATOR_HOST", "127.0.0.1")
            .env("SKYCLAW_COORDINATOR_PORT", self.port.to_string())
            .env("SKYCLAW_DB_PATH", &self.data)
            .env("SKYCLAW_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("coordinator stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("coordinator did not say where it listens")??
            .with_context(|| {
                format!(
                    "coordinator {} exited before listening; its log ends:\n{}",
                    self.name,
                    self.log_tail(20)
                )
            })?;
        self.url = line
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("http://"))
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_string();
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Coordinator {
    /// Kills the process and waits (briefly) until it is gone, so that its
    /// directory can be removed after it.
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }
}

/// SIGKILL, then wait up to 5 s for the process to be gone.
fn kill_and_reap(mut child: Child) {
    let _ = child.start_kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command for one of our binaries, with nothing of the caller's
/// `SKYCLAW_*` settings or HTTP proxies leaking in (coordinators talk to
/// each other directly), killed when its handle drops.
pub fn clean_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    for (name, _) in std::env::vars() {
        let lower = name.to_ascii_lowercase();
        if name.starts_with("SKYCLAW_")
            || ["http_proxy", "https_proxy", "all_proxy"].contains(&lower.as_str())
        {
            command.env_remove(&name);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// Coordinators forming one cluster on loopback, named `node-a`, `node-b`, …
pub struct Cluster {
    pub nodes: Vec<Coordinator>,
}

impl Cluster {
    /// Starts `size` coordinators under `root`, each advertising its own
    /// address, and waits until they form one cluster with a leader.
    pub async fn start(bin: &Path, root: &Path, size: usize) -> Result<Cluster> {
        let ports = ports_of(&reserve_ports(size)?)?;
        let urls: Vec<String> = ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect();
        Cluster::start_advertising(bin, root, &ports, &urls).await
    }

    /// Starts one coordinator per port under `root`; node `i` listens on
    /// `ports[i]` and tells its peers to reach it at `advertised[i]` (a
    /// proxy in front of it, say). Waits until they form one cluster.
    pub async fn start_advertising(
        bin: &Path,
        root: &Path,
        ports: &[u16],
        advertised: &[String],
    ) -> Result<Cluster> {
        let mut nodes = Vec::new();
        for (i, &port) in ports.iter().enumerate() {
            let name = format!("node-{}", (b'a' + i as u8) as char);
            let peers: Vec<&str> = (0..ports.len())
                .filter(|&j| j != i)
                .map(|j| advertised[j].as_str())
                .collect();
            nodes.push(Coordinator {
                url: format!("http://127.0.0.1:{port}"),
                child: None,
                bin: bin.to_path_buf(),
                data: root.join(&name),
                log: root.join(format!("{name}.log")),
                port,
                env: vec![
                    ("SKYCLAW_COORDINATOR_NODE_ID".into(), name.clone()),
                    ("SKYCLAW_PEER_URLS".into(), peers.join(",")),
                    ("SKYCLAW_ADVERTISE_URL".into(), advertised[i].clone()),
                ],
                name,
            });
        }
        let mut cluster = Cluster { nodes };
        for node in &mut cluster.nodes {
            node.spawn().await?;
        }
        cluster.wait_formed(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// Waits until every running node names the same leader, every node is
    /// a voter, and the cluster's first event exists.
    pub async fn wait_formed(&self, limit: Duration) -> Result<()> {
        let mut names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        names.sort();
        let deadline = Instant::now() + limit;
        let mut seen = String::new();
        while Instant::now() < deadline {
            let mut leaders = Vec::new();
            let mut views = Vec::new();
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let api = Api::with_timeout(&node.url, Duration::from_secs(2));
                let Ok(status) = api.cluster().await else {
                    views.push(format!("{}: no answer", node.name));
                    continue;
                };
                let voters = status.voters();
                views.push(format!(
                    "{}: leader {:?}, voters {voters:?}, head {}",
                    node.name, status.leader, status.head_seq
                ));
                if voters == names && status.head_seq > 0 {
                    leaders.push(status.leader);
                }
            }
            let agreed = leaders.len() == views.len()
                && leaders[0].is_some()
                && leaders.iter().all(|l| l == &leaders[0]);
            if agreed {
                return Ok(());
            }
            seen = views.join("; ");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the cluster did not form within {limit:?}; last seen: {seen}")
    }

    /// The index of the leader: the running node whose `/v1/status` names
    /// itself, and whom a majority of the cluster names. (A leader killed
    /// and restarted names itself for a moment, in its old term, until it
    /// hears of the new one.) Waits up to `limit` for one.
    pub async fn leader(&self, limit: Duration) -> Result<usize> {
        let deadline = Instant::now() + limit;
        let majority = self.nodes.len() / 2 + 1;
        while Instant::now() < deadline {
            let mut statuses = Vec::new();
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let api = Api::with_timeout(&node.url, Duration::from_secs(2));
                if let Ok(status) = api.status().await {
                    statuses.push(status);
                }
            }
            for status in &statuses {
                let named = |name: &str| {
                    statuses
                        .iter()
                        .filter(|s| s.leader.as_deref() == Some(name))
                        .count()
                };
                if status.leader.as_deref() == Some(status.node_id.as_str())
                    && named(&status.node_id) >= majority
                {
                    if let Some(i) = self.nodes.iter().position(|n| n.name == status.node_id) {
                        return Ok(i);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("no node led a majority within {limit:?}")
    }

    /// Starts node `i` again on its data directory and port (after
    /// [`Coordinator::kill`]); does not wait until it catches up.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.nodes[i].spawn().await
    }

    /// Waits until node `i`'s event log reaches `seq`.
    pub async fn wait_head(&self, i: usize, seq: u64, limit: Duration) -> Result<()> {
        let node = &self.nodes[i];
        let api = Api::with_timeout(&node.url, Duration::from_secs(2));
        let deadline = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < deadline {
            match api.head().await {
                Ok(head) if head.seq >= seq => return Ok(()),
                Ok(head) => last = Some(head.seq),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "{} did not reach seq {seq} within {limit:?} (last seen {last:?}); its log ends:\n{}",
            node.name,
            node.log_tail(20)
        )
    }
}

/// A `skyclaw host` daemon; killed when dropped.
pub struct HostDaemon {
    child: Option<Child>,
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }
}

impl HostDaemon {
    /// Starts a host named `name` against `coordinator`, keeping its id in
    /// `dir`, running up to `max_parallel` jobs at once and allowing the
    /// shell commands `allowed` (matched exactly against the job's
    /// command). Does not wait until it registers.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        coordinator: &str,
        max_parallel: u32,
        allowed: &[&str],
    ) -> Result<HostDaemon> {
        std::fs::create_dir_all(dir)?;
        let log = std::fs::File::create(dir.join("host.log"))?;
        let child = clean_command(bin)
            .arg("host")
            .env("SKYCLAW_COORDINATOR_URL", coordinator)
            .env("SKYCLAW_TOKEN", TOKEN)
            .env("SKYCLAW_HOST_NAME", name)
            .env("SKYCLAW_HOST_STATE_DIR", dir)
            .env("SKYCLAW_MAX_PARALLEL", max_parallel.to_string())
            .env("SKYCLAW_ALLOWED_COMMANDS", allowed.join(","))
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} host", bin.display()))?;
        Ok(HostDaemon { child: Some(child) })
    }
}
