//! etcd beside Skyclaw, for the enqueue scenario's comparison: on the same
//! machine, as durable (etcd syncs its WAL before it acknowledges a put, as
//! a coordinator syncs each raft entry), driven by the same load shape (so
//! many workers, each sending one request and waiting for its answer, over
//! HTTP/1.1 with JSON bodies: etcd's v3 JSON gateway). Runs only where
//! `etcd` is on PATH: Debian's `etcd-server` package (3.4).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::load::{summarize, Summary};

/// The size of each put's value: a small job's payload.
const VALUE_BYTES: usize = 256;

/// The `etcd` binary on PATH, if there is one.
pub fn on_path() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join("etcd"))
        .find(|path| path.is_file())
}

/// etcd members on loopback, each in its own directory; killed on drop.
pub struct Etcd {
    members: Vec<Child>,
    /// The client URLs, one per member.
    pub urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            let _ = member.kill();
            let _ = member.wait();
        }
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Etcd {
    /// Starts `nodes` members forming one cluster and waits until a put
    /// through the first one is acknowledged.
    pub async fn start(bin: &PathBuf, nodes: usize) -> Result<Etcd> {
        let dir = tempfile::tempdir()?;
        let client_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_>>()?;
        let peer_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_>>()?;
        let cluster: Vec<String> = (0..nodes)
            .map(|i| format!("e{i}=http://127.0.0.1:{}", peer_ports[i]))
            .collect();
        let mut members = Vec::new();
        for i in 0..nodes {
            let client = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer = format!("http://127.0.0.1:{}", peer_ports[i]);
            let log = std::fs::File::create(dir.path().join(format!("e{i}.log")))?;
            let member = Command::new(bin)
                .args(["--name", &format!("e{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("e{i}")))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &cluster.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            members.push(member);
        }
        let etcd = Etcd {
            members,
            urls: client_ports
                .iter()
                .map(|port| format!("http://127.0.0.1:{port}"))
                .collect(),
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if put(&http, &etcd.urls[0], 0, &value()).await.is_ok() {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                bail!("etcd did not take a put within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client URL of the member that leads now.
    pub async fn leader(&self) -> Result<String> {
        let http = reqwest::Client::new();
        for url in &self.urls {
            let status: Value = http
                .post(format!("{url}/v3/maintenance/status"))
                .json(&json!({}))
                .send()
                .await?
                .json()
                .await?;
            let me = &status["header"]["member_id"];
            if !me.is_null() && status["leader"] == *me {
                return Ok(url.clone());
            }
        }
        bail!("no etcd member says it leads")
    }
}

fn value() -> String {
    STANDARD.encode([b'x'; VALUE_BYTES])
}

async fn put(http: &reqwest::Client, url: &str, n: u64, value: &str) -> Result<()> {
    let body = json!({ "key": STANDARD.encode(format!("bench/{n}")), "value": value });
    let response = http
        .post(format!("{url}/v3/kv/put"))
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("etcd put: {}", response.status());
    }
    Ok(())
}

/// `concurrency` workers put `total` keys of [`VALUE_BYTES`] through `url`,
/// each waiting for one put's answer before the next, as the enqueue load
/// does.
pub async fn puts(url: &str, concurrency: usize, total: u64) -> Result<Summary> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .build()?;
    let value = Arc::new(value());
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, value, issued, url) =
            (http.clone(), value.clone(), issued.clone(), url.to_string());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(latencies);
                }
                let sent = Instant::now();
                put(&http, &url, n, &value).await?;
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(summarize(
        latencies.len() as u64,
        started.elapsed(),
        latencies,
    ))
}
