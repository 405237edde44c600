//! The loopback TCP proxy in front of a node. Whoever knows a node by its
//! proxy's address (peers, as its advertised URL; clients, when the
//! cluster routes them so) keeps that address for the whole run, so a node
//! keeps its URL across restarts (it binds port 0 each time), a link
//! between two nodes can be cut without touching either process, and every
//! byte the node is sent or sends back is counted (what replication costs
//! on the wire).
//!
//! Cutting a link needs to know which process opened a connection: every
//! node reaches a peer at that peer's one advertised URL, so the address
//! alone cannot tell node-a's request from node-b's. The proxy asks the
//! kernel instead: `/proc/net/tcp` maps the client's port to a socket
//! inode, and `/proc/<pid>/fd` tells which node holds it (Linux only, as
//! are the signals the kit sends). Connections from anything that is not a
//! node, the test's own clients among them, are never cut.
//!
//! A cut link drops traffic, as a partition does, rather than refusing it:
//! the sender waits out its own timeouts. Each connection re-checks the
//! cuts whenever they change, so a cut also silences connections already
//! open, however close to the cut they were accepted. A connection looks
//! up its owner only once some cut exists: the proxy carries all raft
//! traffic, whose deadlines are a heartbeat long, and reading `/proc` for
//! every connection would slow it for nothing. Counting is continuous:
//! connections are kept alive for a whole run, so the counters grow while
//! bytes flow rather than when a connection closes.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Which nodes run as which process, and which are cut off from the rest.
/// Shared by every proxy of a cluster.
pub struct Links {
    inner: Mutex<LinksInner>,
    /// Bumped on every change of the cuts; open connections watch it.
    cuts: watch::Sender<u64>,
}

#[derive(Default)]
struct LinksInner {
    pids: HashMap<String, i32>,
    isolated: BTreeSet<String>,
}

impl Default for Links {
    fn default() -> Links {
        Links {
            inner: Mutex::default(),
            cuts: watch::Sender::new(0),
        }
    }
}

impl Links {
    pub fn set_pid(&self, name: &str, pid: Option<i32>) {
        let mut inner = self.inner.lock().unwrap();
        match pid {
            Some(pid) => inner.pids.insert(name.to_string(), pid),
            None => inner.pids.remove(name),
        };
    }

    pub fn isolate(&self, name: &str) {
        self.inner.lock().unwrap().isolated.insert(name.to_string());
        self.cuts.send_modify(|generation| *generation += 1);
    }

    pub fn heal(&self) {
        self.inner.lock().unwrap().isolated.clear();
        self.cuts.send_modify(|generation| *generation += 1);
    }

    fn any_cut(&self) -> bool {
        !self.inner.lock().unwrap().isolated.is_empty()
    }

    /// Whether a connection opened by `from` (a node's name, or `None` for
    /// anything else) to the node `to` crosses a cut.
    fn blocked(&self, from: Option<&str>, to: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        from.is_some_and(|from| {
            from != to && (inner.isolated.contains(from) || inner.isolated.contains(to))
        })
    }

    /// The node whose process opened the connection from `client` to the
    /// proxy at `server`; `None` when it is no node (the test's clients).
    async fn owner(&self, client: SocketAddr, server: SocketAddr) -> Option<String> {
        let pids = self.inner.lock().unwrap().pids.clone();
        // Reading /proc blocks, so it runs off the threads that relay.
        tokio::task::spawn_blocking(move || socket_owner(client, server, &pids))
            .await
            .ok()
            .flatten()
    }
}

/// Bytes relayed, per direction.
#[derive(Debug, Default)]
struct Counters {
    /// From whoever connected to the node behind the proxy.
    to_node: AtomicU64,
    /// From the node back to whoever connected.
    from_node: AtomicU64,
}

/// A proxy listening on a loopback port for the life of its cluster.
pub struct Proxy {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

struct Shared {
    /// The node this proxy fronts.
    name: String,
    /// Where the node listens now; `None` while it is down.
    target: Mutex<Option<SocketAddr>>,
    links: Arc<Links>,
    counters: Counters,
}

impl Proxy {
    /// Starts a proxy for the node `name`, running on `runtime`.
    pub fn start(runtime: &Handle, name: &str, links: Arc<Links>) -> Proxy {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for the proxy");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            target: Mutex::new(None),
            links,
            counters: Counters::default(),
        });
        let shared_for_loop = shared.clone();
        let accept = runtime
            .spawn(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                accept_loop(listener, address, shared_for_loop).await
            })
            .abort_handle();
        Proxy {
            address,
            shared,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Points the proxy at the node's current address, or at nothing: then
    /// every connection is closed as soon as it is accepted.
    pub fn set_target(&self, target: Option<SocketAddr>) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Bytes sent to the node since the last [`Proxy::reset`].
    pub fn bytes_to_node(&self) -> u64 {
        self.shared.counters.to_node.load(Ordering::Relaxed)
    }

    /// Bytes the node sent back since the last [`Proxy::reset`].
    pub fn bytes_from_node(&self) -> u64 {
        self.shared.counters.from_node.load(Ordering::Relaxed)
    }

    /// Starts both counts again from zero.
    pub fn reset(&self) {
        self.shared.counters.to_node.store(0, Ordering::Relaxed);
        self.shared.counters.from_node.store(0, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, address: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, client_address)) = listener.accept().await else {
            // Out of file descriptors, say: pause rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(target) = *shared.target.lock().unwrap() else {
            continue;
        };
        tokio::spawn(relay(
            client,
            client_address,
            address,
            target,
            shared.clone(),
        ));
    }
}

async fn relay(
    mut client: TcpStream,
    client_address: SocketAddr,
    address: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
) {
    let links = &shared.links;
    // Subscribed before the first check, so no change of the cuts slips
    // between the check and the wait.
    let mut cuts = links.cuts.subscribe();
    // `None` until some cut makes the owner matter; then looked up once.
    let mut owner: Option<Option<String>> = None;
    if links.any_cut() {
        let from = links.owner(client_address, address).await;
        if links.blocked(from.as_deref(), &shared.name) {
            return drop_everything(client, cuts).await;
        }
        owner = Some(from);
    }
    let Ok(Ok(mut upstream)) =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await
    else {
        return;
    };
    // Raft's messages are small and latency-bound: no Nagle delays.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let cut = {
        let copy = copy_counted(&mut client, &mut upstream, &shared.counters);
        tokio::pin!(copy);
        loop {
            tokio::select! {
                () = &mut copy => break false,
                changed = cuts.changed() => {
                    if changed.is_err() {
                        break false;
                    }
                    if owner.is_none() && links.any_cut() {
                        owner = Some(links.owner(client_address, address).await);
                    }
                    let from = owner.as_ref().and_then(Option::as_deref);
                    if links.blocked(from, &shared.name) {
                        break true;
                    }
                }
            }
        }
    };
    if cut {
        drop(upstream);
        drop_everything(client, cuts).await;
    }
}

/// Copies both ways between `client` and `node`, counting every byte,
/// until both directions have closed.
async fn copy_counted(client: &mut TcpStream, node: &mut TcpStream, counters: &Counters) {
    let (client_read, client_write) = client.split();
    let (node_read, node_write) = node.split();
    tokio::join!(
        pipe(client_read, node_write, &counters.to_node),
        pipe(node_read, client_write, &counters.from_node),
    );
}

/// Copies `from` into `to`, counting, until either side closes; then
/// passes the close on.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    counter: &AtomicU64,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        counter.fetch_add(read as u64, Ordering::Relaxed);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Holds a connection across a cut link open and delivers nothing, as a
/// network that drops packets would: the sender waits out its own timeout
/// instead of learning at once that the peer is gone (which would make it
/// retry in a tight loop no real partition causes). Ends when the sender
/// gives up or the cuts change.
async fn drop_everything(mut client: TcpStream, mut cuts: watch::Receiver<u64>) {
    let mut discarded = [0u8; 4096];
    loop {
        tokio::select! {
            read = client.read(&mut discarded) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
            _ = cuts.changed() => return,
        }
    }
}

/// The node whose process holds the client end of a loopback connection.
fn socket_owner(
    client: SocketAddr,
    server: SocketAddr,
    pids: &HashMap<String, i32>,
) -> Option<String> {
    // The client's socket is in /proc/net/tcp once it connected; a second
    // look covers a read of the table while it was changing.
    let inode = socket_inode(client, server).or_else(|| {
        std::thread::sleep(Duration::from_millis(5));
        socket_inode(client, server)
    })?;
    let wanted = format!("socket:[{inode}]");
    pids.iter().find_map(|(name, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == wanted.as_str())
            })
            .then(|| name.clone())
    })
}

/// The inode of the socket whose local end is `local` and remote end
/// `remote`, from `/proc/net/tcp` (IPv4; the proxies listen on 127.0.0.1).
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (local, remote) = (proc_address(local)?, proc_address(remote)?);
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() > 9 && fields[1] == local && fields[2] == remote)
            .then(|| fields[9].parse().ok())
            .flatten()
    })
}

/// An address as `/proc/net/tcp` writes it: the IPv4 address as the
/// kernel's in-memory u32 in hex, a colon, the port in hex.
fn proc_address(address: SocketAddr) -> Option<String> {
    match address.ip() {
        IpAddr::V4(ip) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(ip.octets()),
            address.port()
        )),
        IpAddr::V6(_) => None,
    }
}
