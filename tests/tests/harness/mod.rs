//! A harness for tests that break coordinators on purpose. It starts N of
//! them from the built binary, each with its own data directory and behind
//! a loopback proxy the test owns, and can kill -9, stop, pause, resume,
//! restart, wipe and isolate them. Every wait polls with a deadline and
//! names what it waited for; none sleeps and hopes.
//!
//! Layout:
//! - this file: the cluster and its nodes, HTTP calls, waiting
//! - [`proxy`]: the per-node TCP proxy that keeps URLs stable and cuts links
//! - [`load`]: enqueuers and simulated hosts, and the ledger of what the
//!   cluster acknowledged to them
//! - [`checker`]: what must hold once the load stops

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod checker;
pub mod load;
pub mod proxy;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use skyclaw_api::routes::{IDEMPOTENCY_HEADER, LEADER_HEADER, TOKEN_HEADER};
use skyclaw_api::{ClusterStatus, LogHead, StateDigest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::util::skyclaw_bin;
use proxy::{Links, Proxy};

pub const TOKEN: &str = "fault-test-token-7d2e";

/// Runs one test body on its own runtime, within `limit`, and one test at
/// a time: three coordinators under load already keep both cores of a CI
/// machine busy, and two such tests side by side starve raft's heartbeats
/// until followers start elections the test did not cause.
pub fn run(limit: Duration, test: impl Future<Output = ()>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if tokio::time::timeout(limit, test).await.is_err() {
            panic!("the test did not finish within {limit:?}");
        }
    });
}

/// Polls `check` until it returns something, or panics naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for(what, limit, || {
        let checked = check();
        async move { checked.await.ok_or_else(String::new) }
    })
    .await
}

/// Like [`wait_until`], for a check that says what it saw when it fails:
/// the panic quotes the last such observation.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}{}{seen}",
            if seen.is_empty() { "" } else { "; last seen: " }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP answer, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The `x-skyclaw-leader` header.
    pub leader: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not the expected JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Calls to coordinators with the cluster token. `Err` is "no answer"
/// (refused, reset, timed out), kept apart from an answer that says no.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
}

impl Api {
    pub fn new(timeout: Duration) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout)
            .build()
            .expect("an HTTP client");
        Api { http }
    }

    pub async fn get(&self, url: &str, path: &str) -> Result<Reply, String> {
        let request = self.http.get(format!("{url}{path}"));
        send(request).await
    }

    pub async fn post(
        &self,
        url: &str,
        path: &str,
        body: &serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, String> {
        let mut request = self.http.post(format!("{url}{path}")).json(body);
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        send(request).await
    }

    /// The JSON of a 200 answer; `None` for anything else.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, path: &str) -> Option<T> {
        let reply = self.get(url, path).await.ok()?;
        (reply.status == 200).then(|| reply.json())
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Reply, String> {
    let response = request
        .header(TOKEN_HEADER, TOKEN)
        .send()
        .await
        .map_err(|e| with_sources(&e))?;
    let status = response.status().as_u16();
    let leader = response
        .headers()
        .get(LEADER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response
        .bytes()
        .await
        .map_err(|e| with_sources(&e))?
        .to_vec();
    Ok(Reply {
        status,
        leader,
        body,
    })
}

/// An error and its causes, which reqwest's own message leaves out
/// ("error sending request" says little without "connection reset").
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// How a cluster is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Coordinators, named `node-a`, `node-b`, … Default: 3.
    pub nodes: usize,
    /// `SKYCLAW_LEASE_MS`. Default: 3000, so orphaned leases (a claim whose
    /// answer was lost) come back within a test.
    pub lease_ms: u64,
    /// `SKYCLAW_SNAPSHOT_EVERY`. Default: 10000.
    pub snapshot_every: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: 3,
            lease_ms: 3_000,
            snapshot_every: 10_000,
        }
    }
}

/// One coordinator: its proxy (and so its URL) outlives its processes.
pub struct Node {
    pub name: String,
    /// The proxy's URL: what peers, clients and tests use.
    pub url: String,
    pub db: PathBuf,
    log: PathBuf,
    proxy: Proxy,
    env: Vec<(String, String)>,
    process: Option<Child>,
    paused: bool,
    starts: u32,
}

impl Node {
    pub fn pid(&self) -> Option<i32> {
        self.process
            .as_ref()
            .and_then(Child::id)
            .map(|pid| pid as i32)
    }

    fn signal(&self, signal: i32) {
        let pid = self.pid().expect("the node is running");
        // SAFETY: kill(2) on our own child's pid; it touches no memory.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to {}", self.name);
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
}

/// Coordinators on loopback, each behind its own proxy.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// For the test's own queries: short timeouts.
    pub api: Api,
    links: Arc<Links>,
    /// The proxies' own threads: they carry raft's traffic, whose
    /// deadlines are a heartbeat long, so they do not queue behind the
    /// test's load.
    proxies: ProxyRuntime,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the nodes and waits until they form one cluster with a leader.
    pub async fn start(options: Options) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let links = Arc::new(Links::default());
        let names: Vec<String> = (0..options.nodes)
            .map(|i| format!("node-{}", (b'a' + i as u8) as char))
            .collect();
        let runtime = ProxyRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("proxy")
                .enable_all()
                .build()
                .expect("a runtime for the proxies"),
        ));
        let mut proxies = Vec::new();
        for name in &names {
            proxies.push(Proxy::start(runtime.handle(), name, links.clone()));
        }
        let urls: Vec<String> = proxies.iter().map(Proxy::url).collect();
        let mut nodes = Vec::new();
        for (i, (name, proxy)) in names.iter().zip(proxies).enumerate() {
            let db = dir.path().join(name).join("db");
            let mut env = vec![
                ("SKYCLAW_COORDINATOR_NODE_ID", name.clone()),
                ("SKYCLAW_COORDINATOR_HOST", "127.0.0.1".into()),
                ("SKYCLAW_COORDINATOR_PORT", "0".into()),
                ("SKYCLAW_DB_PATH", db.to_str().unwrap().into()),
                ("SKYCLAW_ADVERTISE_URL", urls[i].clone()),
                ("SKYCLAW_TOKEN", TOKEN.into()),
                ("SKYCLAW_LEASE_MS", options.lease_ms.to_string()),
                ("SKYCLAW_SNAPSHOT_EVERY", options.snapshot_every.to_string()),
            ];
            let peers: Vec<&str> = (0..options.nodes)
                .filter(|&j| j != i)
                .map(|j| urls[j].as_str())
                .collect();
            if !peers.is_empty() {
                env.push(("SKYCLAW_PEER_URLS", peers.join(",")));
            }
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            nodes.push(Node {
                name: name.clone(),
                url: urls[i].clone(),
                log: dir.path().join(name).join("coordinator.log"),
                db,
                proxy,
                env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                process: None,
                paused: false,
                starts: 0,
            });
        }
        let mut cluster = Cluster {
            nodes,
            api: Api::new(Duration::from_secs(5)),
            links,
            proxies: runtime,
            dir,
        };
        for i in 0..options.nodes {
            cluster.restart(i).await;
        }
        cluster.wait_ready().await;
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.url.clone()).collect()
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node is named {name}"))
    }

    /// Nodes that run and are not paused: the ones that can answer.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].process.is_some() && !self.nodes[i].paused)
            .collect()
    }

    /// Starts node `i` on its data directory and waits for the line that
    /// says where it listens.
    pub async fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.process.is_none(), "{} is already running", node.name);
        node.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open the node's log");
        writeln!(log, "===== {} start {} =====", node.name, node.starts).unwrap();
        let mut command = Command::new(skyclaw_bin());
        command
            .arg("coordinator")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        // Nothing of the caller's configuration leaks in, and node-to-node
        // traffic goes through our proxies, not a proxy of the machine's.
        for (name, _) in std::env::vars() {
            let lower = name.to_ascii_lowercase();
            if name.starts_with("SKYCLAW_")
                || ["http_proxy", "https_proxy", "all_proxy"].contains(&lower.as_str())
            {
                command.env_remove(&name);
            }
        }
        command.envs(node.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = command.spawn().expect("start skyclaw coordinator");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let address: SocketAddr = match line {
            Ok(Ok(Some(line))) => line
                .strip_prefix("skyclaw coordinator listening on http://")
                .and_then(|address| address.trim().parse().ok())
                .unwrap_or_else(|| panic!("{}: unexpected first line {line:?}", node.name)),
            other => panic!(
                "{} did not say where it listens ({other:?}); log:\n{}",
                node.name,
                node.log_tail(40)
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.links
            .set_pid(&node.name, child.id().map(|pid| pid as i32));
        node.process = Some(child);
        node.paused = false;
        node.proxy.set_target(Some(address));
    }

    /// `kill -9`: no shutdown, no flush.
    pub async fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = node.process.take().expect("the node is running");
        child.start_kill().expect("SIGKILL");
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not die of SIGKILL", node.name))
            .expect("reap the node");
        self.links.set_pid(&node.name, None);
        node.proxy.set_target(None);
        node.paused = false;
    }

    /// SIGTERM, and the node must exit cleanly within a bound.
    pub async fn stop(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.signal(libc::SIGTERM);
        let mut child = node.process.take().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within 15 s of SIGTERM; log:\n{}",
                    node.name,
                    node.log_tail(40)
                )
            })
            .expect("reap the node");
        assert!(
            status.success(),
            "{} exited with {status} on SIGTERM; log:\n{}",
            node.name,
            node.log_tail(40)
        );
        self.links.set_pid(&node.name, None);
        node.proxy.set_target(None);
    }

    /// SIGSTOP: the process stays, frozen; its sockets keep accepting.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal(libc::SIGSTOP);
        self.nodes[i].paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.nodes[i].signal(libc::SIGCONT);
        self.nodes[i].paused = false;
    }

    /// Deletes a stopped node's data directory: a lost disk.
    pub fn wipe(&mut self, i: usize) {
        let node = &self.nodes[i];
        assert!(node.process.is_none(), "wipe {} while it runs", node.name);
        std::fs::remove_dir_all(&node.db).expect("remove the data directory");
    }

    /// Cuts every link between node `i` and the other nodes, both ways.
    /// Clients can still reach it.
    pub fn isolate(&self, i: usize) {
        self.links.isolate(&self.nodes[i].name);
    }

    pub fn heal(&self) {
        self.links.heal();
    }

    /// Whether node `i`'s process is still there (it did not crash).
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].process.as_mut() {
            Some(child) => child.try_wait().expect("poll the node").is_none(),
            None => false,
        }
    }

    pub async fn status(&self, i: usize) -> Option<ClusterStatus> {
        self.api.get_json(&self.nodes[i].url, "/v1/cluster").await
    }

    pub async fn head(&self, i: usize) -> Option<LogHead> {
        self.api.get_json(&self.nodes[i].url, "/v1/log/head").await
    }

    pub async fn digest(&self, i: usize) -> Option<StateDigest> {
        self.api
            .get_json(&self.nodes[i].url, "/v1/state/digest")
            .await
    }

    /// The leader every live node names, once they agree, each node's name
    /// is a voter exactly once, and the cluster's first event exists.
    pub async fn wait_ready(&self) -> usize {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        wait_for(
            "every live node to name one leader among all members as voters",
            Duration::from_secs(30),
            || async {
                let mut leaders = Vec::new();
                let mut seen = Vec::new();
                for i in self.live() {
                    let name = &self.nodes[i].name;
                    let Some(status) = self.status(i).await else {
                        seen.push(format!("{name}: no answer"));
                        continue;
                    };
                    let voters = status.voters();
                    seen.push(format!(
                        "{name}: leader {:?}, term {}, voters {voters:?}, head {}",
                        status.leader, status.term, status.head_seq
                    ));
                    if voters == names && status.head_seq > 0 {
                        leaders.push(status.leader);
                    }
                }
                match leaders.first() {
                    Some(Some(leader))
                        if leaders.len() == seen.len()
                            && leaders.iter().all(|l| l.as_ref() == Some(leader)) =>
                    {
                        Ok(self.index_of(leader))
                    }
                    _ => Err(seen.join("; ")),
                }
            },
        )
        .await
    }

    /// The leader the nodes in `among` agree on, once they do and it is
    /// one of them.
    pub async fn wait_leader_among(&self, among: &[usize], limit: Duration) -> usize {
        wait_until(
            &format!("a leader among {}", self.names(among)),
            limit,
            || async {
                let mut leader = None;
                for &i in among {
                    let named = self.status(i).await?.leader?;
                    if leader.get_or_insert(named.clone()) != &named {
                        return None;
                    }
                }
                let leader = self.index_of(&leader?);
                among.contains(&leader).then_some(leader)
            },
        )
        .await
    }

    pub fn names(&self, nodes: &[usize]) -> String {
        nodes
            .iter()
            .map(|&i| self.nodes[i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Waits until node `i`'s log reaches `seq`.
    pub async fn wait_head_at_least(&self, i: usize, seq: u64, limit: Duration) {
        wait_until(
            &format!("{} to reach seq {seq}", self.nodes[i].name),
            limit,
            || async { self.head(i).await.filter(|head| head.seq >= seq) },
        )
        .await;
    }

    /// Enqueues one job through `nodes` in turn, retrying every 10 ms
    /// until a node acknowledges it; returns the job id and when the
    /// answer came. Fine-grained, as it measures failover: an attempt gets
    /// one second (a write takes milliseconds), so one held by a node that
    /// cannot answer (a follower still forwarding to a frozen leader) does
    /// not hide that another node already could.
    pub async fn enqueue_until_acknowledged(
        &self,
        nodes: &[usize],
        key: &str,
        limit: Duration,
    ) -> (String, Instant) {
        let api = Api::new(Duration::from_secs(1));
        let body = load::job_body(key);
        let deadline = Instant::now() + limit;
        let mut turn = 0;
        loop {
            let node = &self.nodes[nodes[turn % nodes.len()]];
            turn += 1;
            let last = match api.post(&node.url, "/v1/jobs", &body, Some(key)).await {
                Ok(reply) if reply.status == 200 => {
                    let job: skyclaw_api::JobResponse = reply.json();
                    return (job.job.id, Instant::now());
                }
                Ok(reply) => {
                    assert_eq!(reply.status, 503, "enqueue refused: {}", reply.text());
                    format!("{}: 503 {}", node.name, reply.text())
                }
                Err(e) => format!("{}: {e}", node.name),
            };
            assert!(
                Instant::now() < deadline,
                "no enqueue through {} was acknowledged within {limit:?}; last answer: {last}",
                self.names(nodes)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                if let Some(panic) = node.first_panic() {
                    eprintln!("----- {} panicked:\n{panic}", node.name);
                }
                eprintln!("----- last log lines of {}:", node.name);
                eprintln!("{}", node.log_tail(80));
            }
        }
        // Frozen processes die of SIGKILL too (kill_on_drop).
    }
}

/// The proxies' runtime. A cluster is dropped inside the test's own
/// runtime, where blocking is not allowed, so it shuts down without
/// waiting for its threads.
struct ProxyRuntime(Option<tokio::runtime::Runtime>);

impl ProxyRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("running until dropped").handle()
    }
}

impl Drop for ProxyRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
