//! Keel's peer transport: carries `keel::raftpb::Message`s between raft
//! members over TCP (optionally mutual TLS), the part etcd keeps in
//! `rafthttp` and etcd-raft leaves to its users.
//!
//! `send` never waits on the network: each peer has a bounded queue drained
//! by its own writer task over one long-lived connection (frames batched,
//! flushed once, TCP_NODELAY, order kept). Snapshots use a connection of
//! their own, chunked and checksummed. Every connection starts with a
//! handshake (protocol version, cluster id, sender, expected receiver, the
//! sender's listening port); an unknown sender is refused and reported with
//! its address, for the application to let in.
//! Incoming messages and reports for the raft loop (`report_unreachable`,
//! `report_snapshot`) arrive on one [`Events`] receiver, one at a time or in
//! batches. Messages wait in a bounded queue and are dropped (counted) when
//! the loop falls behind; reports are coalesced per peer and never dropped.
//!
//! # Layout
//! - [`config`] — [`Config`] and [`Limits`], every bound in one place.
//! - `wire` — handshake and frame format.
//! - `conn` — dialling and accepting, TCP or TLS, the handshake verdict.
//! - `peer` — per-peer queue and writer task, reconnect backoff.
//! - `listener` — accept loop and incoming streams.
//! - `snapshot` — snapshot sender and bounded-memory receiver.
//! - [`tls`] — mutual TLS from PEM files; [`PeerIdentity`] ties a
//!   certificate to the member it claims to be.
//! - [`stats`] — per-peer counters.
//! - `events` — [`Events`]: incoming messages (bounded, droppable) and
//!   reports (coalesced, never dropped) for the raft loop.
//! - `transport` — the [`Transport`] handle.
//! - [`error`] — typed start and connection errors.
//!
//! # Example
//! ```
//! use keel::raftpb::{Message, MessageType};
//! use keel_transport::{Config, Event, Transport};
//!
//! let local = "127.0.0.1:0".parse().unwrap();
//! let (a, _a_events) = Transport::start_with_runtime(Config::new(1, 7, local)).unwrap();
//! let (b, mut b_events) = Transport::start_with_runtime(Config::new(2, 7, local)).unwrap();
//! a.add_peer(2, b.local_addr());
//! b.add_peer(1, a.local_addr());
//! let hb = Message {
//!     msg_type: MessageType::MsgHeartbeat as i32, from: 1, to: 2, ..Default::default()
//! };
//! a.send(vec![hb.clone()]);
//! // Reports may come first (a dial that raced the other's `add_peer`).
//! let got = loop {
//!     match b_events.blocking_recv() {
//!         Some(Event::Message(m)) => break m,
//!         Some(_report) => continue,
//!         None => panic!("transport closed"),
//!     }
//! };
//! assert_eq!(got, hb);
//! ```

pub mod config;
mod conn;
pub mod error;
mod events;
mod listener;
mod peer;
mod snapshot;
pub mod stats;
pub mod tls;
mod transport;
mod wire;

pub use config::{Config, Limits};
pub use error::{IdentityError, StartError, WireError};
pub use events::{DeliverInline, Event, Events, SnapshotStatus};
pub use stats::{PeerStats, Stats};
pub use tls::{PeerIdentity, TlsConfig};
pub use transport::Transport;
pub use wire::{PROTOCOL_VERSION, Verdict};
