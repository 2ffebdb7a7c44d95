//! The accept side: every incoming connection gets its own task, which
//! handshakes (bounded by a timeout), then reads frames or one snapshot.
//! Bad input drops that connection with a log line and nothing else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keel::raftpb::{Message, MessageType};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::conn::{Conn, accept};
use crate::error::WireError;
use crate::stats::bump;
use crate::transport::Shared;
use crate::wire::{ConnKind, FrameBounds, FrameReader, Hello};

/// Read buffer of an incoming stream: many small frames per `read` call.
const READ_BUFFER_BYTES: usize = 64 << 10;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, remote)) => {
                let span = tracing::info_span!("peer_incoming", %remote);
                shared.runtime.spawn(serve(Arc::clone(&shared), tcp, remote).instrument(span));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, tcp: TcpStream, remote: SocketAddr) {
    let mut closed = shared.closed.subscribe();
    let work = async {
        let (conn, hello) = accept(&shared, tcp, remote).await?;
        tracing::debug!(peer = hello.from, kind = ?hello.kind, "incoming connection accepted");
        match hello.kind {
            ConnKind::Stream => read_stream(&shared, conn, hello).await,
            ConnKind::Snapshot => crate::snapshot::receive(&shared, conn, hello).await,
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = closed.changed() => Ok(()),
    };
    match result {
        Ok(()) => tracing::debug!(%remote, "incoming connection closed"),
        Err(WireError::Refused(_) | WireError::PeerIdentity { .. }) => {} // Logged where judged.
        Err(e) => {
            bump(&shared.stats.bad_input, 1);
            tracing::warn!(%remote, error = %e, "dropped incoming connection");
        }
    }
}

/// The incoming streams, one per sender: a peer dials a new stream only once
/// it has given up its last one, so an older stream still open is a dead
/// connection this side has not noticed (or a peer opening many). A new one
/// replaces it, as etcd's stream handler does, and no peer holds more than
/// one stream's buffers here.
#[derive(Default)]
pub(crate) struct Streams {
    open: Mutex<HashMap<u64, (u64, Arc<Notify>)>>,
    next: AtomicU64,
}

/// One sender's stream in [`Streams`]: `replaced` fires when a newer one
/// takes its place; dropping it gives the place back if it still holds it.
struct StreamSlot<'a> {
    streams: &'a Streams,
    from: u64,
    generation: u64,
    replaced: Arc<Notify>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (u64, Arc<Notify>)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the stream just accepted from `from` its only one.
    fn take(&self, from: u64) -> StreamSlot<'_> {
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        let replaced = Arc::new(Notify::new());
        if let Some((_, older)) = self.lock().insert(from, (generation, Arc::clone(&replaced))) {
            // Stored as a permit if the older stream is not waiting on it.
            older.notify_one();
        }
        StreamSlot { streams: self, from, generation, replaced }
    }
}

impl Drop for StreamSlot<'_> {
    fn drop(&mut self) {
        let mut open = self.streams.lock();
        if open.get(&self.from).is_some_and(|(g, _)| *g == self.generation) {
            open.remove(&self.from);
        }
    }
}

async fn read_stream(shared: &Shared, conn: Conn, hello: Hello) -> Result<(), WireError> {
    let counters = shared.stats.peer(hello.from);
    let slot = shared.streams_in.take(hello.from);
    let mut frames = FrameReader::new(conn, FrameBounds::new(&shared.limits), READ_BUFFER_BYTES);
    let mut batch = Vec::new();
    // One batch per socket read: checked, counted and queued for raft under
    // one lock, so that a small message costs no synchronisation of its own.
    loop {
        let frame_bytes = tokio::select! {
            read = frames.next_batch(&mut batch) => match read? {
                Some(n) => n,
                None => return Ok(()),
            },
            () = slot.replaced.notified() => {
                tracing::info!(peer = hello.from, "a newer stream from the peer replaces this one");
                return Ok(());
            }
        };
        if shared.was_removed(hello.from) {
            // Closed, so that the member dials again and hears the verdict.
            tracing::info!(peer = hello.from, "closing the stream of a removed member");
            return Ok(());
        }
        let misaddressed = |m: &Message| {
            m.to != shared.local_id || (m.from != hello.from && !forwarded_by_raft(m))
        };
        if let Some(msg) = batch.iter().find(|m| !m.responses.is_empty()) {
            return Err(WireError::LocalResponses(msg.responses.len()));
        }
        if let Some(msg) = batch.iter().find(|&m| misaddressed(m)) {
            let (from, to) = (msg.from, msg.to);
            return Err(WireError::Misaddressed {
                from,
                to,
                peer: hello.from,
                local: shared.local_id,
            });
        }
        if shared.inbox.deliver_inline(&mut batch, frame_bytes, &counters) {
            continue;
        }
        match shared.inbox.push_messages(&mut batch, frame_bytes, &counters) {
            None => return Ok(()),
            Some(0) => {}
            Some(dropped) => {
                tracing::debug!(
                    peer = hello.from,
                    dropped,
                    "raft's inbox is full; dropped messages"
                )
            }
        }
    }
}

/// Whether raft may hand `msg` on with its first sender in `from`: a
/// follower forwards a proposal, a read index request or a leadership
/// transfer (whose `from` names the transferee) to the leader unchanged, as
/// etcd-raft does. A member that stepped down with such a message from
/// another member still queued sends it on under that member's id.
fn forwarded_by_raft(msg: &Message) -> bool {
    matches!(
        msg.msg_type(),
        MessageType::MsgProp | MessageType::MsgReadIndex | MessageType::MsgTransferLeader
    )
}
