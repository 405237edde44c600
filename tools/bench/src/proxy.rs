//! A loopback TCP proxy that counts the bytes it relays, for measuring what
//! replication costs on the wire. A coordinator advertises the proxy's URL,
//! so every byte its peers send it (raft appends and heartbeats with their
//! HTTP framing, votes, forwarded requests) passes through the proxy, and
//! so does every byte of its answers.
//!
//! Counting is continuous: connections are kept alive for the whole run,
//! so the counters grow while bytes flow rather than when a connection
//! closes. Each proxy runs on its own thread, so that relaying raft's
//! heartbeats never waits behind the benchmark's load; dropping the proxy
//! stops that thread's runtime, which closes every relayed connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Bytes relayed so far, per direction.
#[derive(Debug, Default)]
pub struct Counters {
    /// From whoever connected to the node behind the proxy.
    pub to_node: AtomicU64,
    /// From the node back to whoever connected.
    pub from_node: AtomicU64,
}

/// A proxy on a loopback port in front of `target`.
pub struct Proxy {
    pub url: String,
    counters: Arc<Counters>,
    /// Dropping it stops the proxy's thread.
    _stop: oneshot::Sender<()>,
}

impl Proxy {
    /// Listens on a free loopback port and relays every connection to
    /// `target` (which may start listening later: until then connections
    /// are closed as soon as they are accepted).
    pub fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = counters.clone();
        std::thread::Builder::new()
            .name("bench-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stopped => {}
                        () = accept_loop(listener, target, shared) => {}
                    }
                });
                // The runtime drops here, and with it every relay task.
            })?;
        Ok(Proxy {
            url,
            counters,
            _stop: stop,
        })
    }

    /// Bytes sent to the node since the last reset.
    pub fn bytes_to_node(&self) -> u64 {
        self.counters.to_node.load(Ordering::Relaxed)
    }

    /// Bytes the node sent back since the last reset.
    pub fn bytes_from_node(&self) -> u64 {
        self.counters.from_node.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.counters.to_node.store(0, Ordering::Relaxed);
        self.counters.from_node.store(0, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, counters: Arc<Counters>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors, say: pause rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return; // the node is down: close the client's connection
            };
            // Raft's messages are small and latency-bound: no Nagle delays.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let to_node = counters.clone();
            tokio::spawn(async move {
                relay(client_read, server_write, &to_node.to_node).await;
            });
            relay(server_read, client_write, &counters.from_node).await;
        });
    }
}

/// Copies `from` into `to`, counting every byte, until either side closes;
/// then passes the close on.
async fn relay(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, counter: &AtomicU64) {
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
