//! Fault-injecting TCP proxies, one per directed peer link.
//!
//! Member `i` dials member `j` through the proxy of link `i→j` (keel-kv's
//! `--peer-address`), and keel-transport sends `i`'s messages to `j` on the
//! connections `i` dials, so a link's faults act on one direction of raft
//! traffic: blocking `i→j` alone is a one-way partition. Faults:
//! - **blocked**: new connections are refused and open ones are cut;
//! - **delay**: every chunk is held for a fixed time (order kept);
//! - **loss**: a fraction of new connections is dropped at once, and open
//!   connections are reset at random with that probability every interval.
//!
//! No root, no network namespaces: everything stays on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_sim::sim::rng::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a link does to its traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFault {
    /// Nothing passes.
    pub blocked: bool,
    /// Each chunk is delivered this long after it was read.
    pub delay: Duration,
    /// Per mille of connections dropped (new ones at once, open ones at
    /// random every [`RESET_INTERVAL`]).
    pub loss_per_mille: u32,
}

impl LinkFault {
    /// A link that passes everything as it comes.
    pub const HEALTHY: LinkFault =
        LinkFault { blocked: false, delay: Duration::ZERO, loss_per_mille: 0 };
}

/// How often a lossy link considers resetting each open connection.
pub const RESET_INTERVAL: Duration = Duration::from_millis(500);

/// Bytes read at a time from either side.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction of a delayed connection; a full pipeline
/// applies back-pressure to the sender instead of growing.
const PIPELINE: usize = 256;

/// One directed link `from→to`: its listener and its current fault.
struct Link {
    fault: watch::Sender<LinkFault>,
    addr: SocketAddr,
}

/// Every proxy of a cluster, by directed link.
pub struct Proxies {
    links: HashMap<(u64, u64), Link>,
}

impl Proxies {
    /// Starts a proxy for each `(from, to)` link, forwarding to `to`'s real
    /// peer address in `targets`. Must run inside a tokio runtime.
    pub async fn start(
        links: impl IntoIterator<Item = (u64, u64)>,
        targets: &HashMap<u64, SocketAddr>,
        seed: u64,
    ) -> std::io::Result<Proxies> {
        let mut rng = Rng::new(seed);
        let mut out = HashMap::new();
        for (from, to) in links {
            let Some(&target) = targets.get(&to) else {
                return Err(std::io::Error::other(format!("no address for member {to}")));
            };
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (fault, rx) = watch::channel(LinkFault::HEALTHY);
            tokio::spawn(accept_loop(listener, target, rx, rng.fork()));
            out.insert((from, to), Link { fault, addr });
        }
        Ok(Proxies { links: out })
    }

    /// The address member `from` dials to reach member `to`.
    pub fn addr(&self, from: u64, to: u64) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(|l| l.addr)
    }

    /// Sets the fault of link `from→to` (a link with no proxy is ignored).
    pub fn set(&self, from: u64, to: u64, fault: LinkFault) {
        if let Some(l) = self.links.get(&(from, to)) {
            l.fault.send_replace(fault);
        }
    }

    /// The current fault of link `from→to`.
    pub fn get(&self, from: u64, to: u64) -> LinkFault {
        self.links.get(&(from, to)).map(|l| *l.fault.borrow()).unwrap_or_default()
    }

    /// Every link back to healthy.
    pub fn heal_all(&self) {
        for l in self.links.values() {
            l.fault.send_replace(LinkFault::HEALTHY);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    fault: watch::Receiver<LinkFault>,
    rng: Rng,
) {
    let rng = Arc::new(Mutex::new(rng));
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let now = *fault.borrow();
        if now.blocked || chance(&rng, now.loss_per_mille) {
            drop(inbound);
            continue;
        }
        tokio::spawn(serve(inbound, target, fault.clone(), rng.clone()));
    }
}

fn chance(rng: &Mutex<Rng>, per_mille: u32) -> bool {
    rng.lock().unwrap_or_else(PoisonError::into_inner).chance(per_mille)
}

/// One proxied connection, until either side closes or a fault cuts it.
async fn serve(
    inbound: TcpStream,
    target: SocketAddr,
    mut fault: watch::Receiver<LinkFault>,
    rng: Arc<Mutex<Rng>>,
) {
    let Ok(outbound) = TcpStream::connect(target).await else { return };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let forward = pump(in_r, out_w, fault.clone());
    let backward = pump(out_r, in_w, fault.clone());
    let cut = async {
        let mut tick = tokio::time::interval(RESET_INTERVAL);
        loop {
            tokio::select! {
                changed = fault.changed() => {
                    if changed.is_err() || fault.borrow().blocked {
                        return;
                    }
                }
                _ = tick.tick() => {
                    let per_mille = fault.borrow().loss_per_mille;
                    if per_mille > 0 && chance(&rng, per_mille) {
                        return;
                    }
                }
            }
        }
    };
    // Dropping the halves closes both sockets, which the member sees as a
    // reset connection.
    tokio::select! {
        _ = async { tokio::join!(forward, backward) } => {}
        _ = cut => {}
    }
}

/// Copies one direction, holding each chunk for the link's delay.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: watch::Receiver<LinkFault>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(PIPELINE);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due = Instant::now() + fault.borrow().delay;
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn passes_blocks_and_heals() {
        let echo = echo_server().await;
        let p = Proxies::start([(1, 2)], &HashMap::from([(2, echo)]), 7).await.unwrap();
        let addr = p.addr(1, 2).unwrap();
        assert_eq!(round_trip(addr).await.unwrap(), b"ping");

        // An open connection is cut when the link is blocked.
        let mut open = TcpStream::connect(addr).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await.unwrap();
        p.set(1, 2, LinkFault { blocked: true, ..LinkFault::HEALTHY });
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), open.read_to_end(&mut rest)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "cut connection still open: {n:?}");
        assert!(round_trip(addr).await.is_err(), "a blocked link passed traffic");

        p.heal_all();
        assert_eq!(round_trip(addr).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn delays_without_reordering() {
        let echo = echo_server().await;
        let p = Proxies::start([(1, 2)], &HashMap::from([(2, echo)]), 7).await.unwrap();
        let delay = Duration::from_millis(100);
        p.set(1, 2, LinkFault { delay, ..LinkFault::HEALTHY });
        let mut s = TcpStream::connect(p.addr(1, 2).unwrap()).await.unwrap();
        let start = Instant::now();
        for i in 0..50u8 {
            s.write_all(&[i]).await.unwrap();
        }
        let mut got = [0u8; 50];
        s.read_exact(&mut got).await.unwrap();
        // Both directions are delayed: at least one delay each way.
        assert!(start.elapsed() >= delay * 2);
        assert_eq!(got.to_vec(), (0..50u8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn total_loss_drops_every_connection() {
        let echo = echo_server().await;
        let p = Proxies::start([(1, 2)], &HashMap::from([(2, echo)]), 7).await.unwrap();
        p.set(1, 2, LinkFault { loss_per_mille: 1000, ..LinkFault::HEALTHY });
        for _ in 0..5 {
            assert!(round_trip(p.addr(1, 2).unwrap()).await.is_err());
        }
    }
}
