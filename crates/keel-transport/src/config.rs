//! What a transport needs to start, and the limits that bound its memory.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::TlsConfig;

/// Identity, addresses and limits of one transport.
#[derive(Clone, Debug)]
pub struct Config {
    /// This member's raft id (non-zero).
    pub local_id: u64,
    /// The cluster id every peer must present in its handshake.
    pub cluster_id: u64,
    /// Where to accept peer connections (port 0: the OS picks).
    pub listen_addr: SocketAddr,
    /// The initial peers, by raft id.
    pub peers: Vec<(u64, SocketAddr)>,
    /// Queue, frame and snapshot bounds.
    pub limits: Limits,
    /// Mutual TLS; `None` is plain TCP (for local use).
    pub tls: Option<TlsConfig>,
}

/// Every bound the transport enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest frame accepted or sent (checked before allocating).
    pub frame_bytes_max: u32,
    /// Messages queued for one peer before new ones are dropped.
    pub queue_msgs_max: usize,
    /// Encoded bytes queued for one peer before new messages are dropped.
    pub queue_bytes_max: usize,
    /// Bytes coalesced into one write before flushing.
    pub batch_bytes_max: usize,
    /// Largest snapshot data accepted.
    pub snapshot_bytes_max: u64,
    /// Bytes per snapshot chunk (sent), and the largest chunk accepted.
    pub snapshot_chunk_bytes: u32,
    /// The slowest a snapshot may travel, in bytes per second: a transfer
    /// (the peer's acknowledgement included) not done within twice
    /// `write_timeout` plus its size at this rate fails, and raft retries.
    /// It bounds the wait for a peer whose process hangs while its kernel
    /// still accepts bytes.
    pub snapshot_rate_min: u64,
    /// Snapshot bytes assembled in memory before spilling to a temp file.
    pub snapshot_spill_bytes: usize,
    /// The data bytes that the incoming snapshots received at once may
    /// announce in all (one at a time per sender; a spilled snapshot is read
    /// back whole, so this bounds their memory). One that does not fit is
    /// refused, and its sender retries. At least `snapshot_bytes_max`.
    pub snapshot_receive_bytes_max: u64,
    /// Incoming messages queued for the raft loop; beyond it, new ones are
    /// dropped and counted (reports are never dropped).
    pub incoming_msgs_max: usize,
    /// Memory the queued incoming messages may hold (structs, entries and
    /// payloads; see `Limits::incoming_msgs_max` for what happens beyond).
    /// It also bounds what one connection decodes at a time: a frame whose
    /// message would hold more once decoded (its footprint is read off its
    /// bytes first) drops the connection as bad input, and is not sent.
    /// Keep it a few times `frame_bytes_max` (a frame of small entries
    /// decodes to a few times its size; 10 times or more only if crafted).
    pub incoming_bytes_max: usize,
    /// Time a connection has to complete its handshake (both sides).
    pub handshake_timeout: Duration,
    /// A batch that takes longer to write fails its connection, which is then
    /// redialled (etcd's connection write timeout); also the kernel's limit on
    /// unacknowledged bytes (`TCP_USER_TIMEOUT`, Linux), so that a peer host
    /// that vanished is noticed while data is in flight.
    pub write_timeout: Duration,
    /// An idle connection is probed with TCP keepalives after this long, then
    /// every third of it, and dropped after three unanswered probes: a peer
    /// that vanished without a reset is noticed even when nothing is sent.
    pub keepalive_idle: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            frame_bytes_max: 16 << 20,
            // etcd's stream buffer holds 4096 messages.
            queue_msgs_max: 4096,
            queue_bytes_max: 64 << 20,
            batch_bytes_max: 256 << 10,
            snapshot_bytes_max: 8 << 30,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_rate_min: 1 << 20,
            snapshot_spill_bytes: 4 << 20,
            // One snapshot of the largest size at a time, or several smaller.
            snapshot_receive_bytes_max: 8 << 30,
            // etcd's receive buffer holds 4096 messages, unbounded in bytes.
            incoming_msgs_max: 4096,
            incoming_bytes_max: 64 << 20,
            handshake_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            keepalive_idle: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// A plain-TCP config with default limits and no peers.
    pub fn new(local_id: u64, cluster_id: u64, listen_addr: SocketAddr) -> Config {
        Config {
            local_id,
            cluster_id,
            listen_addr,
            peers: Vec::new(),
            limits: Limits::default(),
            tls: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let l = &self.limits;
        if self.local_id == 0 {
            return Err("local_id must be non-zero");
        }
        if self.peers.iter().any(|(id, _)| *id == 0 || *id == self.local_id) {
            return Err("peer ids must be non-zero and differ from local_id");
        }
        if l.frame_bytes_max == 0 || l.queue_msgs_max == 0 || l.queue_bytes_max == 0 {
            return Err("frame and queue limits must be non-zero");
        }
        if l.snapshot_chunk_bytes == 0 || l.batch_bytes_max == 0 || l.snapshot_rate_min == 0 {
            return Err("chunk, batch and snapshot rate limits must be non-zero");
        }
        if l.snapshot_receive_bytes_max < l.snapshot_bytes_max {
            return Err("snapshot_receive_bytes_max must be at least snapshot_bytes_max");
        }
        if l.incoming_msgs_max == 0 || l.incoming_bytes_max == 0 {
            return Err("incoming limits must be non-zero");
        }
        if l.write_timeout.is_zero() || l.keepalive_idle < Duration::from_secs(1) {
            return Err("write_timeout must be non-zero and keepalive_idle at least 1 s");
        }
        if l.backoff_initial.is_zero() || l.backoff_max < l.backoff_initial {
            return Err("backoff_initial must be non-zero and at most backoff_max");
        }
        Ok(())
    }
}
