//! Snapshots travel on their own connection, so that a large one never delays
//! the heartbeats on the stream.
//!
//! After the handshake the sender writes one frame holding the `MsgSnap` with
//! its data cut out, the data length (u64 big endian), then chunks of
//! `[len u32][bytes][crc32c u32]` until the length is reached. The receiver
//! checks each chunk's checksum, keeps at most `snapshot_spill_bytes` in memory
//! (beyond that the bytes go to a temp file), and hands the `MsgSnap` to raft
//! only once every byte has been verified; then it answers one byte, so the
//! sender reports success only for a snapshot the peer holds.
//!
//! A receiver takes one snapshot at a time from each sender, and only while
//! the sizes announced by all the snapshots it receives stay within
//! `Limits::snapshot_receive_bytes_max`; another is refused (the sender
//! reports it failed and raft retries). That bounds their memory: spilling
//! bounds it only while the chunks arrive, because a spilled snapshot is read
//! back whole at the end. That is inherent to raft's API, whose snapshot data
//! is one `Bytes` that the state machine restores from; streaming it to the
//! application instead would need another API in `keel`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use keel::raftpb::{Message, MessageType};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::conn::{Conn, dial};
use crate::error::WireError;
use crate::events::SnapshotStatus;
use crate::stats::bump;
use crate::transport::Shared;
use crate::wire::{ConnKind, FrameBounds, Hello, put_frame, read_exact, read_frame};

/// Sends one `MsgSnap` to `to` and reports the outcome as an event.
pub(crate) async fn send(shared: Arc<Shared>, to: u64, addr: SocketAddr, msg: Message) {
    let counters = shared.stats.peer(to);
    let bytes = msg.snapshot.as_ref().map_or(0, |s| s.data.len() as u64);
    let limits = &shared.limits;
    let deadline =
        limits.write_timeout * 2 + std::time::Duration::from_secs(bytes / limits.snapshot_rate_min);
    let result = tokio::time::timeout(deadline, send_inner(&shared, to, addr, msg))
        .await
        .unwrap_or(Err(WireError::SnapshotTimeout { bytes, secs: deadline.as_secs() }));
    let status = match result {
        Ok(()) => {
            bump(&counters.snapshots_sent, 1);
            tracing::info!(peer = to, "snapshot sent");
            SnapshotStatus::Finished
        }
        Err(e) => {
            bump(&counters.snapshots_failed, 1);
            tracing::warn!(peer = to, error = %e, "snapshot failed");
            shared.report_unreachable(to);
            SnapshotStatus::Failed
        }
    };
    shared.inbox.report_snapshot(to, status);
}

async fn send_inner(
    shared: &Shared,
    to: u64,
    addr: SocketAddr,
    mut msg: Message,
) -> Result<(), WireError> {
    let data = msg.snapshot.as_mut().map(|s| std::mem::take(&mut s.data)).unwrap_or_default();
    let mut conn = dial(shared, to, addr, ConnKind::Snapshot).await?;
    let mut head = Vec::new();
    put_frame(&mut head, &msg, msg.encoded_len());
    head.extend_from_slice(&(data.len() as u64).to_be_bytes());
    conn.write_all(&head).await?;
    let chunk_bytes = shared.limits.snapshot_chunk_bytes as usize;
    for chunk in data.chunks(chunk_bytes) {
        conn.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
        conn.write_all(chunk).await?;
        conn.write_all(&crc32c::crc32c(chunk).to_be_bytes()).await?;
    }
    conn.flush().await?;
    // The receiver answers once it has verified and delivered the snapshot.
    conn.read_u8().await?;
    Ok(())
}

/// Where an incoming snapshot is assembled: memory up to a threshold, then a
/// file (tokio's, whose writes run on the blocking pool, so that a slow disk
/// never stalls a runtime worker and the heartbeats it carries).
enum Assembly {
    Memory(Vec<u8>),
    File(tokio::fs::File),
}

/// The incoming snapshots in progress: their senders, and the data bytes
/// they announced.
#[derive(Default)]
pub(crate) struct Receiving {
    state: Mutex<(BTreeSet<u64>, u64)>,
}

/// One sender's place in [`Receiving`], given back when dropped.
struct Reservation<'a> {
    receiving: &'a Receiving,
    from: u64,
    bytes: u64,
}

impl Receiving {
    fn lock(&self) -> std::sync::MutexGuard<'_, (BTreeSet<u64>, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `from`'s one place, unless a snapshot from it is in progress.
    fn begin(&self, from: u64) -> Result<Reservation<'_>, WireError> {
        if !self.lock().0.insert(from) {
            return Err(WireError::SnapshotInProgress(from));
        }
        Ok(Reservation { receiving: self, from, bytes: 0 })
    }
}

impl Reservation<'_> {
    /// Counts the snapshot's `bytes` against `max`, the bound on all of them.
    fn reserve(&mut self, bytes: u64, max: u64) -> Result<(), WireError> {
        let mut state = self.receiving.lock();
        let others = state.1 - self.bytes;
        if others.saturating_add(bytes) > max {
            return Err(WireError::SnapshotBudget { len: bytes, receiving: others, max });
        }
        state.1 = others + bytes;
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut state = self.receiving.lock();
        state.0.remove(&self.from);
        state.1 -= self.bytes;
    }
}

/// Receives one snapshot after an accepted handshake and delivers it.
pub(crate) async fn receive(
    shared: &Shared,
    mut conn: Conn,
    hello: Hello,
) -> Result<(), WireError> {
    let limits = &shared.limits;
    let mut reservation = shared.snapshots_in.begin(hello.from)?;
    let mut buf = Vec::new();
    let Some(mut msg) = read_frame(&mut conn, FrameBounds::new(limits), &mut buf).await? else {
        return Err(WireError::Truncated);
    };
    if msg.msg_type != MessageType::MsgSnap as i32 || msg.snapshot.is_none() {
        return Err(WireError::NotASnapshot(msg.msg_type));
    }
    if !msg.responses.is_empty() {
        return Err(WireError::LocalResponses(msg.responses.len()));
    }
    if msg.from != hello.from || msg.to != shared.local_id {
        let (from, to) = (msg.from, msg.to);
        return Err(WireError::Misaddressed { from, to, peer: hello.from, local: shared.local_id });
    }
    let total = conn.read_u64().await.map_err(eof_is_truncated)?;
    if total > limits.snapshot_bytes_max {
        return Err(WireError::SnapshotTooLarge { len: total, max: limits.snapshot_bytes_max });
    }
    reservation.reserve(total, limits.snapshot_receive_bytes_max)?;
    let mut assembly = Assembly::Memory(Vec::new());
    let mut received = 0u64;
    let mut spilled = false;
    while received < total {
        let len = u64::from(conn.read_u32().await.map_err(eof_is_truncated)?);
        let max = (total - received).min(u64::from(limits.snapshot_chunk_bytes));
        if len == 0 || len > max {
            return Err(WireError::BadChunk { len, max });
        }
        buf.clear();
        buf.resize(len as usize, 0);
        read_exact(&mut conn, &mut buf).await?;
        let sent = conn.read_u32().await.map_err(eof_is_truncated)?;
        let computed = crc32c::crc32c(&buf);
        if sent != computed {
            return Err(WireError::Checksum { sent, computed });
        }
        received += len;
        if let Assembly::Memory(mem) = &mut assembly
            && mem.len() + buf.len() > limits.snapshot_spill_bytes
        {
            let file = tokio::task::spawn_blocking(tempfile::tempfile)
                .await
                .map_err(std::io::Error::other)??;
            let mut file = tokio::fs::File::from_std(file);
            file.write_all(mem).await?;
            assembly = Assembly::File(file);
            spilled = true;
        }
        match &mut assembly {
            Assembly::Memory(mem) => mem.extend_from_slice(&buf),
            Assembly::File(file) => file.write_all(&buf).await?,
        }
    }
    let data = match assembly {
        Assembly::Memory(mem) => Bytes::from(mem),
        Assembly::File(mut file) => {
            file.flush().await?;
            file.rewind().await?;
            // `total` was checked against `snapshot_bytes_max` before any chunk.
            let mut all = Vec::with_capacity(total as usize);
            file.read_to_end(&mut all).await?;
            Bytes::from(all)
        }
    };
    if let Some(snap) = msg.snapshot.as_mut() {
        snap.data = data;
    }
    let counters = shared.stats.peer(hello.from);
    bump(&counters.snapshots_received, 1);
    if spilled {
        bump(&counters.snapshots_spilled, 1);
    }
    tracing::info!(peer = hello.from, bytes = total, spilled, "snapshot received and verified");
    if !shared.inbox.push_snapshot(msg) {
        return Ok(());
    }
    conn.write_u8(0).await?;
    conn.flush().await?;
    Ok(())
}

fn eof_is_truncated(e: std::io::Error) -> WireError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        WireError::Truncated
    } else {
        WireError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_snapshot_per_sender_and_their_sizes_within_the_bound() {
        let receiving = Receiving::default();
        let mut one = receiving.begin(1).expect("first from 1");
        assert!(matches!(receiving.begin(1), Err(WireError::SnapshotInProgress(1))));
        one.reserve(60, 100).expect("fits");
        let mut two = receiving.begin(2).expect("first from 2");
        let err = two.reserve(50, 100);
        assert!(matches!(err, Err(WireError::SnapshotBudget { receiving: 60, .. })));
        two.reserve(40, 100).expect("fits beside the first");
        drop(one);
        assert_eq!(receiving.lock().1, 40);
        let _again = receiving.begin(1).expect("1's place is free again");
        drop(two);
        assert_eq!(receiving.lock().1, 0);
    }
}
