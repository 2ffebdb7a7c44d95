//! Per-peer counters, kept as atomics and read as a plain struct.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one peer, as [`crate::Transport::stats`] returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's raft id.
    pub id: u64,
    /// Messages written to the peer's stream.
    pub msgs_sent: u64,
    /// Frame bytes written to the peer's stream.
    pub bytes_sent: u64,
    /// Messages received from the peer.
    pub msgs_received: u64,
    /// Frame bytes received from the peer.
    pub bytes_received: u64,
    /// Messages received from the peer but dropped because the raft loop's
    /// queue was full (`Limits::incoming_msgs_max`, `incoming_bytes_max`).
    pub msgs_received_dropped: u64,
    /// Messages dropped (queue full, peer unknown, or lost with a broken connection).
    pub msgs_dropped: u64,
    /// Stream connections established after the first.
    pub reconnects: u64,
    /// Snapshots the peer verified.
    pub snapshots_sent: u64,
    /// Snapshots that failed to reach the peer.
    pub snapshots_failed: u64,
    /// Snapshots received and verified from the peer.
    pub snapshots_received: u64,
    /// Received snapshots that spilled to a temp file.
    pub snapshots_spilled: u64,
}

/// Transport-wide counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per peer, sorted by id.
    pub peers: Vec<PeerStats>,
    /// Incoming connections refused at the handshake.
    pub handshakes_refused: u64,
    /// Incoming connections dropped for bad input (frames, snapshot chunks).
    pub connections_dropped_bad_input: u64,
    /// Messages dropped because their recipient is not a peer (counted here,
    /// not per peer: a recipient id may come from the network).
    pub msgs_dropped_unknown_peer: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) msgs_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) msgs_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) msgs_received_dropped: AtomicU64,
    pub(crate) msgs_dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) snapshots_sent: AtomicU64,
    pub(crate) snapshots_failed: AtomicU64,
    pub(crate) snapshots_received: AtomicU64,
    pub(crate) snapshots_spilled: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn read(&self, id: u64) -> PeerStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PeerStats {
            id,
            msgs_sent: r(&self.msgs_sent),
            bytes_sent: r(&self.bytes_sent),
            msgs_received: r(&self.msgs_received),
            bytes_received: r(&self.bytes_received),
            msgs_received_dropped: r(&self.msgs_received_dropped),
            msgs_dropped: r(&self.msgs_dropped),
            reconnects: r(&self.reconnects),
            snapshots_sent: r(&self.snapshots_sent),
            snapshots_failed: r(&self.snapshots_failed),
            snapshots_received: r(&self.snapshots_received),
            snapshots_spilled: r(&self.snapshots_spilled),
        }
    }
}

/// All counters: per peer (kept after removal, so totals never go back) and global.
#[derive(Default)]
pub(crate) struct Registry {
    peers: Mutex<BTreeMap<u64, Arc<Counters>>>,
    pub(crate) handshakes_refused: AtomicU64,
    pub(crate) bad_input: AtomicU64,
    pub(crate) unknown_peer: AtomicU64,
}

impl Registry {
    pub(crate) fn peer(&self, id: u64) -> Arc<Counters> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(peers.entry(id).or_default())
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        Stats {
            peers: peers.iter().map(|(id, c)| c.read(*id)).collect(),
            handshakes_refused: self.handshakes_refused.load(Ordering::Relaxed),
            connections_dropped_bad_input: self.bad_input.load(Ordering::Relaxed),
            msgs_dropped_unknown_peer: self.unknown_peer.load(Ordering::Relaxed),
        }
    }
}
