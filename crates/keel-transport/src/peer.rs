//! One peer's outgoing stream: a bounded queue drained by a writer task that
//! owns the connection, batches frames (write many, flush once) and redials
//! with exponential backoff and jitter. Each peer has its own task, so a
//! peer that is down never slows the others.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel::raftpb::Message;
use prost::Message as _;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::conn::{Conn, dial};
use crate::error::WireError;
use crate::stats::{Counters, bump};
use crate::transport::Shared;
use crate::wire::{ConnKind, put_frame};

/// Messages and bytes waiting for one peer; checked on enqueue, released on dequeue.
#[derive(Default)]
pub(crate) struct Gauge {
    msgs: AtomicUsize,
    bytes: AtomicUsize,
}

/// The sending half of a peer's queue.
pub(crate) struct PeerQueue {
    pub(crate) addr: SocketAddr,
    tx: mpsc::UnboundedSender<(Message, usize)>,
    gauge: Arc<Gauge>,
    pub(crate) counters: Arc<Counters>,
    task: tokio::task::AbortHandle,
}

impl Drop for PeerQueue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PeerQueue {
    /// Starts the writer task for peer `id`.
    pub(crate) fn start(shared: &Arc<Shared>, id: u64, addr: SocketAddr) -> PeerQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        let gauge = Arc::new(Gauge::default());
        let counters = shared.stats.peer(id);
        let writer = Writer {
            shared: Arc::clone(shared),
            id,
            addr,
            rx,
            taken: Vec::with_capacity(RECV_MANY),
            gauge: Arc::clone(&gauge),
        };
        let span = tracing::info_span!("peer_stream", peer = id, %addr);
        let task = shared.runtime.spawn(writer.run().instrument(span)).abort_handle();
        PeerQueue { addr, tx, gauge, counters, task }
    }

    /// Queues `msg` without waiting; `false` if it was dropped (queue full).
    pub(crate) fn offer(&self, msg: Message, limits: &crate::Limits) -> bool {
        let size = msg.encoded_len() + 4;
        let msgs = self.gauge.msgs.fetch_add(1, Ordering::AcqRel) + 1;
        let bytes = self.gauge.bytes.fetch_add(size, Ordering::AcqRel) + size;
        let fits = msgs <= limits.queue_msgs_max
            && bytes <= limits.queue_bytes_max
            && size <= limits.frame_bytes_max as usize;
        if fits && self.tx.send((msg, size)).is_ok() {
            return true;
        }
        self.gauge.msgs.fetch_sub(1, Ordering::AcqRel);
        self.gauge.bytes.fetch_sub(size, Ordering::AcqRel);
        false
    }
}

/// Messages taken from a peer's queue per channel operation.
const RECV_MANY: usize = 256;

struct Writer {
    shared: Arc<Shared>,
    id: u64,
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<(Message, usize)>,
    /// Taken from `rx`, not yet written (kept across reconnects).
    taken: Vec<(Message, usize)>,
    gauge: Arc<Gauge>,
}

impl Writer {
    async fn run(mut self) {
        let counters = self.shared.stats.peer(self.id);
        let mut backoff = Backoff::new(&self.shared.limits, self.id);
        let mut connected_before = false;
        loop {
            match dial(&self.shared, self.id, self.addr, ConnKind::Stream).await {
                Ok(conn) => {
                    tracing::info!(peer = self.id, addr = %self.addr, "stream connected");
                    if connected_before {
                        bump(&counters.reconnects, 1);
                    }
                    connected_before = true;
                    backoff.reset();
                    match self.pump(conn, &counters).await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(peer = self.id, error = %e, "stream broken"),
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = self.id, addr = %self.addr, error = %e, "dial failed")
                }
            }
            self.shared.report_unreachable(self.id);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Writes batches until the queue closes (`Ok`) or the connection fails.
    async fn pump(&mut self, mut conn: Conn, counters: &Counters) -> Result<(), WireError> {
        let batch_max = self.shared.limits.batch_bytes_max;
        let mut buf = Vec::with_capacity(batch_max.min(1 << 20));
        loop {
            // One wake-up takes every queued message (up to RECV_MANY), instead
            // of one channel operation each; what does not fit the batch waits
            // in `taken` for the next one.
            if self.taken.is_empty() && self.rx.recv_many(&mut self.taken, RECV_MANY).await == 0 {
                return Ok(());
            }
            buf.clear();
            let (mut n, mut bytes) = (0usize, 0usize);
            loop {
                let mut used = 0;
                for (msg, size) in &self.taken {
                    if buf.len() >= batch_max {
                        break;
                    }
                    put_frame(&mut buf, msg, size - 4);
                    used += 1;
                    bytes += size;
                }
                n += used;
                self.taken.drain(..used);
                if !self.taken.is_empty() || buf.len() >= batch_max || self.rx.is_empty() {
                    break;
                }
                self.rx.recv_many(&mut self.taken, RECV_MANY).await;
            }
            self.gauge.msgs.fetch_sub(n, Ordering::AcqRel);
            self.gauge.bytes.fetch_sub(bytes, Ordering::AcqRel);
            let written = async {
                conn.write_all(&buf).await?;
                conn.flush().await
            };
            let written = tokio::time::timeout(self.shared.limits.write_timeout, written)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the peer took no data within write_timeout",
                    ))
                });
            if let Err(e) = written {
                // The batch is lost with the connection, as etcd's stream writer loses it.
                bump(&counters.msgs_dropped, n as u64);
                return Err(e.into());
            }
            bump(&counters.msgs_sent, n as u64);
            bump(&counters.bytes_sent, bytes as u64);
        }
    }
}

/// Exponential backoff with full jitter over the upper half of each step.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    hasher: std::collections::hash_map::RandomState,
    attempt: u64,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(limits: &crate::Limits, seed: u64) -> Backoff {
        Backoff {
            initial: limits.backoff_initial,
            max: limits.backoff_max,
            current: limits.backoff_initial,
            hasher: std::collections::hash_map::RandomState::new(),
            attempt: 0,
            seed,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        self.attempt += 1;
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        // Half fixed, half random: peers that failed together do not redial together.
        let noise = self.hasher.hash_one((self.seed, self.attempt)) % 1_000;
        step / 2 + step.mul_f64(noise as f64 / 2_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let limits = crate::Limits {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(80),
            ..Default::default()
        };
        let mut b = Backoff::new(&limits, 1);
        let steps: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        let caps = [10u64, 20, 40, 80, 80, 80];
        for (d, cap) in steps.iter().zip(caps) {
            assert!(*d >= Duration::from_millis(cap) / 2, "{d:?} below half of {cap}ms");
            assert!(*d <= Duration::from_millis(cap), "{d:?} above {cap}ms");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }
}
