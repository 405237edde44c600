//! Coordinators on loopback forming one cluster, started from the built
//! `skyclaw` binary, each with its own data directory in a temporary
//! directory the cluster owns. The cluster can kill -9, stop, pause,
//! resume, restart, wipe and (behind proxies) isolate its nodes, and waits
//! for it to form, for a leader, or for a node to catch up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skyclaw_api::{ClusterStatus, LogHead, StateDigest, Status};

use crate::binary;
use crate::http::{Api, TOKEN};
use crate::node::Node;
use crate::proxy::{Links, Proxy};
use crate::wait::{poll_for, wait_for, wait_until};

/// How peers and clients reach the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Each node behind its own proxy, which peers and clients both use: a
    /// node keeps its URL across restarts (it binds port 0 each time), and
    /// links between nodes can be cut.
    Proxied,
    /// Peers reach each node through its proxy, clients reach it directly:
    /// the proxy's counters hold the cluster's own traffic alone.
    PeersProxied,
    /// No proxy: each node binds a loopback port reserved for it up front,
    /// and binds it again when restarted.
    Direct,
}

/// How a cluster is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Coordinators, named `node-a`, `node-b`, …
    /// Default: 3.
    pub nodes: usize,
    /// Default: [`Routing::Proxied`].
    pub routing: Routing,
    /// `SKYCLAW_LEASE_MS`.
    /// Default: none, the coordinator's own.
    pub lease_ms: Option<u64>,
    /// `SKYCLAW_SNAPSHOT_EVERY`.
    /// Default: none, the coordinator's own.
    pub snapshot_every: Option<u64>,
    /// `SKYCLAW_PEER_SECRET`: with one, the full trust model (raft, joins
    /// and hellos take only it); without, compatibility mode, where the
    /// kit's token is the peer credential too.
    /// Default: none.
    pub peer_secret: Option<String>,
    /// More settings for every node (`RUST_LOG`, say).
    /// Default: none.
    pub env: Vec<(String, String)>,
    /// The `skyclaw` binary.
    /// Default: the one [`binary::locate`] finds.
    pub bin: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: 3,
            routing: Routing::Proxied,
            lease_ms: None,
            snapshot_every: None,
            peer_secret: None,
            env: Vec::new(),
            bin: None,
        }
    }
}

/// Coordinators forming one cluster.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// For the caller's own queries: short timeouts.
    pub api: Api,
    bin: PathBuf,
    links: Arc<Links>,
    /// The proxies' own threads: they carry raft's traffic, whose
    /// deadlines are a heartbeat long, so they do not queue behind the
    /// caller's load. `None` without proxies.
    proxies: Option<ProxyRuntime>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the nodes and waits until they form one cluster with a leader.
    pub async fn start(options: Options) -> Cluster {
        let bin = binary::locate("skyclaw", options.bin.clone());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let links = Arc::new(Links::default());
        let names: Vec<String> = (0..options.nodes)
            .map(|i| format!("node-{}", (b'a' + i as u8) as char))
            .collect();
        let runtime = (options.routing != Routing::Direct).then(ProxyRuntime::new);
        let proxies: Vec<Option<Proxy>> = names
            .iter()
            .map(|name| {
                let runtime = runtime.as_ref()?;
                Some(Proxy::start(runtime.handle(), name, links.clone()))
            })
            .collect();
        // Held until every node is about to bind its own, and taken after
        // the proxies bound theirs, so nothing else takes one meanwhile.
        let reserved: Vec<std::net::TcpListener> = match options.routing {
            Routing::Direct => (0..options.nodes)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
                .collect(),
            Routing::Proxied | Routing::PeersProxied => Vec::new(),
        };
        let ports: Vec<u16> = (0..options.nodes)
            .map(|i| {
                reserved
                    .get(i)
                    .map_or(0, |l| l.local_addr().unwrap().port())
            })
            .collect();
        let advertised: Vec<String> = (0..options.nodes)
            .map(|i| match &proxies[i] {
                Some(proxy) => proxy.url(),
                None => format!("http://127.0.0.1:{}", ports[i]),
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, (name, proxy)) in names.iter().zip(proxies).enumerate() {
            let home = dir.path().join(name);
            std::fs::create_dir_all(&home).expect("the node's directory");
            let mut env = vec![
                ("SKYCLAW_COORDINATOR_NODE_ID".to_string(), name.clone()),
                ("SKYCLAW_COORDINATOR_HOST".into(), "127.0.0.1".into()),
                (
                    "SKYCLAW_DB_PATH".into(),
                    home.join("db").to_str().unwrap().into(),
                ),
                ("SKYCLAW_ADVERTISE_URL".into(), advertised[i].clone()),
                ("SKYCLAW_TOKEN".into(), TOKEN.into()),
            ];
            if let Some(lease_ms) = options.lease_ms {
                env.push(("SKYCLAW_LEASE_MS".into(), lease_ms.to_string()));
            }
            if let Some(secret) = &options.peer_secret {
                env.push(("SKYCLAW_PEER_SECRET".into(), secret.clone()));
            }
            if let Some(every) = options.snapshot_every {
                env.push(("SKYCLAW_SNAPSHOT_EVERY".into(), every.to_string()));
            }
            let peers: Vec<&str> = (0..options.nodes)
                .filter(|&j| j != i)
                .map(|j| advertised[j].as_str())
                .collect();
            if !peers.is_empty() {
                env.push(("SKYCLAW_PEER_URLS".into(), peers.join(",")));
            }
            env.extend(options.env.iter().cloned());
            let clients_via_proxy = options.routing == Routing::Proxied;
            nodes.push(Node::new(
                name.clone(),
                &home,
                ports[i],
                env,
                proxy,
                clients_via_proxy,
            ));
        }
        let mut cluster = Cluster {
            nodes,
            api: Api::new(Duration::from_secs(5)),
            bin,
            links,
            proxies: runtime,
            dir,
        };
        drop(reserved);
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
    /// says where it listens; does not wait until it serves.
    pub async fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.spawn(&self.bin, self.dir.path()).await;
        self.links.set_pid(&node.name, node.pid());
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
        node.gone();
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
        node.gone();
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
    /// Clients can still reach it. Only behind proxies.
    pub fn isolate(&self, i: usize) {
        assert!(self.proxies.is_some(), "links are cut at the proxies");
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
            Duration::from_secs(60),
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

    /// The leader: the running node whose `/v1/status` names itself, and
    /// whom a majority of the cluster names. (A leader killed and
    /// restarted names itself for a moment, in its old term, until it
    /// hears of the new one.) Waits up to `limit` for one.
    pub async fn leader(&self, limit: Duration) -> usize {
        let majority = self.nodes.len() / 2 + 1;
        poll_for(
            "a node that a majority names leader",
            limit,
            Duration::from_millis(20),
            || async {
                let mut statuses = Vec::new();
                for i in self.live() {
                    if let Some(status) = self
                        .api
                        .get_json::<Status>(&self.nodes[i].url, "/v1/status")
                        .await
                    {
                        statuses.push(status);
                    }
                }
                let named = |name: &str| {
                    statuses
                        .iter()
                        .filter(|s| s.leader.as_deref() == Some(name))
                        .count()
                };
                statuses
                    .iter()
                    .find(|status| {
                        status.leader.as_deref() == Some(status.node_id.as_str())
                            && named(&status.node_id) >= majority
                    })
                    .map(|status| self.index_of(&status.node_id))
                    .ok_or_else(String::new)
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

    /// Waits until node `i` answers and holds the cluster's first event,
    /// checking every 5 ms: for timing a restart.
    pub async fn wait_serving(&self, i: usize, limit: Duration) {
        poll_for(
            &format!("{} to serve", self.nodes[i].name),
            limit,
            Duration::from_millis(5),
            || async {
                match self.head(i).await {
                    Some(head) if head.seq > 0 => Ok(()),
                    _ => Err(String::new()),
                }
            },
        )
        .await;
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
        // Each node then kills its process, frozen or not, as it drops.
    }
}

/// The proxies' runtime. A cluster is dropped inside the caller's own
/// runtime, where blocking is not allowed, so it shuts down without
/// waiting for its threads.
struct ProxyRuntime(Option<tokio::runtime::Runtime>);

impl ProxyRuntime {
    fn new() -> ProxyRuntime {
        ProxyRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("proxy")
                .enable_all()
                .build()
                .expect("a runtime for the proxies"),
        ))
    }

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
