//! The loopback TCP proxy in front of each coordinator. Peers and clients
//! only know the proxy's address, which the test owns for the whole run, so
//! a node keeps its URL across restarts (it binds port 0 each time) and a
//! link between two nodes can be cut without touching either process.
//!
//! Cutting a link needs to know which process opened a connection: every
//! node reaches a peer at that peer's one advertised URL, so the address
//! alone cannot tell node-a's request from node-b's. The proxy asks the
//! kernel instead: `/proc/net/tcp` maps the client's port to a socket
//! inode, and `/proc/<pid>/fd` tells which node holds it (Linux only, as
//! are the signals the harness sends). Connections from anything that is
//! not a node, the test's own clients among them, are never cut.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Which nodes run as which process, and which are cut off from the rest.
/// Shared by every proxy of a cluster.
#[derive(Default)]
pub struct Links {
    inner: Mutex<LinksInner>,
}

#[derive(Default)]
struct LinksInner {
    pids: HashMap<String, i32>,
    isolated: BTreeSet<String>,
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
    }

    pub fn heal(&self) {
        self.inner.lock().unwrap().isolated.clear();
    }

    /// Whether a connection from `client` to the node `to`, arriving at
    /// the proxy's `server` address, crosses a cut link.
    fn blocked(&self, client: SocketAddr, server: SocketAddr, to: &str) -> bool {
        let (pids, isolated) = {
            let inner = self.inner.lock().unwrap();
            if inner.isolated.is_empty() {
                return false;
            }
            (inner.pids.clone(), inner.isolated.clone())
        };
        match socket_owner(client, server, &pids) {
            Some(from) => from != to && (isolated.contains(&from) || isolated.contains(to)),
            None => false,
        }
    }
}

/// A proxy listening on a loopback port for the life of the test.
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
    connections: Mutex<Vec<AbortHandle>>,
    links: Arc<Links>,
}

impl Proxy {
    pub async fn start(name: &str, links: Arc<Links>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the proxy");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            target: Mutex::new(None),
            connections: Mutex::new(Vec::new()),
            links,
        });
        let accept = tokio::spawn(accept_loop(listener, address, shared.clone())).abort_handle();
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

    /// Drops every connection passing through now; clients reconnect, and
    /// new connections face the current cuts.
    pub fn drop_connections(&self) {
        for connection in self.shared.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

async fn accept_loop(listener: TcpListener, address: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, client_address)) = listener.accept().await else {
            continue;
        };
        let Some(target) = *shared.target.lock().unwrap() else {
            continue;
        };
        let task = tokio::spawn(relay(
            client,
            client_address,
            address,
            target,
            shared.clone(),
        ));
        let mut connections = shared.connections.lock().unwrap();
        connections.retain(|connection| !connection.is_finished());
        connections.push(task.abort_handle());
    }
}

async fn relay(
    mut client: TcpStream,
    client_address: SocketAddr,
    address: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
) {
    if shared.links.blocked(client_address, address, &shared.name) {
        return;
    }
    let Ok(Ok(mut upstream)) =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await
    else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The node whose process holds the client end of a loopback connection.
fn socket_owner(
    client: SocketAddr,
    server: SocketAddr,
    pids: &HashMap<String, i32>,
) -> Option<String> {
    let inode = socket_inode(client, server)?;
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
