//! One peer's outgoing stream: a bounded queue drained by a writer task that
//! owns the connection, batches frames (write many, flush once) and redials
//! with exponential backoff and jitter. Each peer has its own task, so a
//! peer that is down never slows the others.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use keel::raftpb::Message;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tracing::Instrument;

use crate::conn::{Conn, dial};
use crate::error::WireError;
use crate::stats::{Counters, bump};
use crate::transport::Shared;
use crate::wire::{ConnKind, footprint, put_frame};

/// A message and its frame's size (length prefix included).
type Queued = (Message, usize);

/// One peer's queue, shared by `send` and the writer task. `msgs` and
/// `bytes` count what is queued plus what the writer took but has not yet
/// framed, so the bounds cover both.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Queued>,
    msgs: usize,
    bytes: usize,
    /// The writer, if it waits for messages.
    waker: Option<Waker>,
    closed: bool,
}

type SharedOutbox = Arc<Mutex<Outbox>>;

fn lock(outbox: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sending half of a peer's queue.
pub(crate) struct PeerQueue {
    pub(crate) addr: SocketAddr,
    outbox: SharedOutbox,
    pub(crate) counters: Arc<Counters>,
    task: tokio::task::AbortHandle,
}

impl Drop for PeerQueue {
    fn drop(&mut self) {
        lock(&self.outbox).closed = true;
        self.task.abort();
    }
}

impl PeerQueue {
    /// Starts the writer task for peer `id`.
    pub(crate) fn start(shared: &Arc<Shared>, id: u64, addr: SocketAddr) -> PeerQueue {
        let outbox = SharedOutbox::default();
        let counters = shared.stats.peer(id);
        let writer = Writer {
            shared: Arc::clone(shared),
            id,
            addr,
            outbox: Arc::clone(&outbox),
            taken: VecDeque::new(),
        };
        let span = tracing::info_span!("peer_stream", peer = id, %addr);
        let task = shared.runtime.spawn(writer.run().instrument(span)).abort_handle();
        PeerQueue { addr, outbox, counters, task }
    }

    /// Queues `msg` without waiting; `false` if it was dropped (queue full,
    /// or a frame that a peer with the same limits would refuse: sent, it
    /// would only break the connection).
    pub(crate) fn offer(&self, msg: Message, limits: &crate::Limits) -> bool {
        let size = msg.encoded_len() + 4;
        if size > limits.frame_bytes_max as usize || footprint(&msg) > limits.incoming_bytes_max {
            return false;
        }
        let mut outbox = lock(&self.outbox);
        if outbox.msgs >= limits.queue_msgs_max || outbox.bytes + size > limits.queue_bytes_max {
            return false;
        }
        outbox.msgs += 1;
        outbox.bytes += size;
        outbox.queue.push_back((msg, size));
        // Only a writer that waits is woken: one wake-up per batch, not per message.
        let waker = outbox.waker.take();
        drop(outbox);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

/// Moves every queued message to `taken` (which the writer keeps empty
/// between batches, so this is a swap); registers the writer's waker if there
/// is none. `Ready(false)` once the queue is closed.
fn poll_take(outbox: &Mutex<Outbox>, cx: &Context<'_>, taken: &mut VecDeque<Queued>) -> Poll<bool> {
    let mut outbox = lock(outbox);
    if !outbox.queue.is_empty() {
        if taken.is_empty() {
            std::mem::swap(taken, &mut outbox.queue);
        } else {
            taken.append(&mut outbox.queue);
        }
        return Poll::Ready(true);
    }
    if outbox.closed {
        return Poll::Ready(false);
    }
    if !outbox.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        outbox.waker = Some(cx.waker().clone());
    }
    Poll::Pending
}

struct Writer {
    shared: Arc<Shared>,
    id: u64,
    addr: SocketAddr,
    outbox: SharedOutbox,
    /// Taken from the queue, not yet framed (kept across reconnects).
    taken: VecDeque<Queued>,
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
                    let up = tokio::time::Instant::now();
                    match self.pump(conn, &counters).await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(peer = self.id, error = %e, "stream broken"),
                    }
                    // Only a connection that held starts the backoff over: a
                    // peer that accepts and then drops each one (a smaller
                    // frame limit, say) is not redialled every few ms.
                    if up.elapsed() >= self.shared.limits.backoff_max {
                        backoff.reset();
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

    /// Takes every queued message (one lock, however many); `false` once the
    /// queue is closed.
    async fn take(&mut self) -> bool {
        std::future::poll_fn(|cx| poll_take(&self.outbox, cx, &mut self.taken)).await
    }

    /// Frames taken messages into `buf` up to `batch_max` bytes, releasing
    /// them from the queue's bounds; how many messages and frame bytes.
    fn frame(&mut self, buf: &mut Vec<u8>, batch_max: usize) -> (usize, usize) {
        let (mut n, mut bytes) = (0, 0);
        for (msg, size) in &self.taken {
            if buf.len() >= batch_max {
                break;
            }
            put_frame(buf, msg, size - 4);
            n += 1;
            bytes += size;
        }
        self.taken.drain(..n);
        let mut outbox = lock(&self.outbox);
        outbox.msgs -= n;
        outbox.bytes -= bytes;
        (n, bytes)
    }

    /// Writes batches until the queue closes (`Ok`) or the connection fails.
    async fn pump(&mut self, mut conn: Conn, counters: &Counters) -> Result<(), WireError> {
        let batch_max = self.shared.limits.batch_bytes_max;
        let mut buf = Vec::with_capacity(batch_max.min(1 << 20));
        loop {
            // One wake-up takes every queued message; what does not fit the
            // batch waits in `taken` for the next one.
            if self.taken.is_empty() && !self.take().await {
                return Ok(());
            }
            if let Some(e) = closed_by_peer(&mut conn) {
                // Written now, the batch would be lost yet counted as sent (the
                // kernel takes it); taken, it goes on the next connection.
                return Err(e.into());
            }
            buf.clear();
            let (n, bytes) = self.frame(&mut buf, batch_max);
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

/// Why the stream is unusable, if the peer closed it (or wrote on it, which a
/// receiver never does), without waiting: a stream is only read here.
fn closed_by_peer(conn: &mut Conn) -> Option<std::io::Error> {
    let mut byte = [0u8; 1];
    let mut probe = tokio::io::ReadBuf::new(&mut byte);
    let cx = &mut Context::from_waker(Waker::noop());
    match std::pin::Pin::new(conn).poll_read(cx, &mut probe) {
        Poll::Pending => None,
        Poll::Ready(Err(e)) => Some(e),
        Poll::Ready(Ok(())) if probe.filled().is_empty() => Some(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the peer closed the stream",
        )),
        Poll::Ready(Ok(())) => Some(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the peer wrote on a stream it should only read",
        )),
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
