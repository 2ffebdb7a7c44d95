//! Keel: a faithful, sans-I/O Rust implementation of etcd-raft.
//!
//! The core is a deterministic state machine. Feed it inputs — [`RawNode::tick`],
//! [`RawNode::step`] (messages from peers), [`RawNode::propose`] — and it
//! hands back a [`Ready`]: entries and state to persist, messages to send,
//! committed entries to apply. It does no I/O of its own.
//!
//! # Layout
//! - [`raftpb`]: the wire types, byte-compatible with etcd's `raftpb`.
//! - [`quorum`]: majority and joint quorum arithmetic.
//! - [`tracker`]: per-peer replication progress, inflight windows, vote tallies.
//! - [`confchange`]: applying membership changes to a tracker configuration.
//! - [`storage`]: the [`Storage`] trait and [`MemoryStorage`].
//! - [`log`]: the unstable log and the [`RaftLog`](log::RaftLog) over storage.
//! - `raft` (private): the state machine — elections, replication,
//!   configuration changes, reads.
//! - [`raw_node`]: [`RawNode`] and [`Ready`], the application's interface.
//! - [`status`]: [`Status`] and [`BasicStatus`].
//! - [`describe`]: etcd's text forms of messages, entries and `Ready`.
//! - [`logger`]: the [`Logger`] trait and its implementations.
//!
//! Architecture invariant: nothing in this crate reads a clock, draws
//! unseeded randomness, spawns a thread or touches a file or socket. Time is
//! `tick()`, randomness comes from the seed in the [`Config`].
//!
//! # The Ready loop
//!
//! ```
//! use bytes::Bytes;
//! use keel::raftpb::ConfState;
//! use keel::{Config, MemoryStorage, RawNode};
//!
//! // A single-voter group: its storage starts with the configuration.
//! let storage = MemoryStorage::new_with_conf_state(ConfState {
//!     voters: vec![1],
//!     ..ConfState::default()
//! });
//! let mut node = RawNode::new(&Config::new(1), storage.clone()).unwrap();
//! node.campaign().unwrap();
//!
//! let mut applied = Vec::new();
//! for round in 0..10 {
//!     if round == 3 {
//!         node.propose(Bytes::from_static(b"hello")).unwrap();
//!     }
//!     while node.has_ready() {
//!         let rd = node.ready();
//!         // 1. Persist entries, hard state and snapshot.
//!         storage.append(&rd.entries).unwrap();
//!         if let Some(hs) = rd.hard_state {
//!             storage.set_hard_state(hs);
//!         }
//!         // 2. Send rd.messages to peers (none here: one voter).
//!         // 3. Apply committed entries.
//!         applied.extend(rd.committed_entries.iter().filter(|e| !e.data.is_empty()).cloned());
//!         // 4. Tell the node.
//!         node.advance();
//!     }
//! }
//! assert_eq!(applied.len(), 1);
//! assert_eq!(applied[0].data, Bytes::from_static(b"hello"));
//! ```

#[macro_use]
pub mod logger;
pub mod confchange;
#[macro_use]
mod config;
pub mod describe;
mod error;
pub mod log;
pub mod node;
pub mod quorum;
mod raft;
pub mod raftpb;
pub mod raw_node;
pub mod status;
pub mod storage;
pub mod tracker;
pub mod util;

#[cfg(feature = "testing")]
pub use config::PlantedBug;
pub use config::{Config, ReadOnlyOption};
pub use error::{ConfigError, DropReason, Error, InvalidMessage, Result};
pub use log::EntryId;
pub use logger::{CaptureLogger, DiscardLogger, Level, Logger, TracingLogger};
pub use node::{Node, NodeOptions};
pub use raft::StateType;
pub use raw_node::{
    Peer, Proposed, RawNode, ReadState, Ready, SnapshotStatus, SoftState, StorageAppend,
    StorageApply, StorageResponses, must_sync,
};
pub use status::{BasicStatus, ProgressType, Status};
pub use storage::{MemoryStorage, Storage, StorageError};
pub use util::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE};
