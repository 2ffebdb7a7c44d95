//! Keel: a faithful, sans-I/O Rust implementation of etcd-raft.
//!
//! The core is a deterministic state machine. Feed it inputs — [`RawNode::tick`],
//! [`RawNode::step`] (messages from peers), [`RawNode::propose`] — and it
//! hands back a [`Ready`]: entries and state to persist, messages to send,
//! committed entries to apply. It does no I/O of its own.
//!
//! # Layout
//! Public modules:
//! - [`raftpb`]: the wire types, byte-compatible with etcd's `raftpb`, and
//!   the conf-change helpers (`AnyConfChange`, its builders and decoder).
//! - [`quorum`]: majority and joint quorum arithmetic (the voters in a
//!   [`TrackerConfig`] are a [`JointConfig`](quorum::JointConfig)).
//! - [`storage`]: the [`Storage`] trait and [`MemoryStorage`].
//! - [`raw_node`]: [`RawNode`] and [`Ready`], the application's interface,
//!   and the views of the asynchronous storage messages.
//! - [`node`]: [`Node`], a `RawNode` on a thread of its own.
//! - [`status`]: [`Status`] and [`BasicStatus`].
//! - [`describe`]: etcd's text forms of messages, entries and `Ready`.
//! - [`logger`]: the [`Logger`] trait and its implementations.
//!
//! Private modules, whose types that applications meet are re-exported at
//! the root:
//! - `state`: [`StateType`], [`SoftState`], [`ReadState`].
//! - `tracker`: per-peer replication progress ([`Progress`],
//!   [`ProgressState`], [`Inflights`]), the configuration
//!   ([`TrackerConfig`]), vote tallies.
//! - `confchange`: applying membership changes to a tracker configuration
//!   ([`ConfChangeError`]).
//! - `log`: the unstable log and the log over storage ([`EntryId`],
//!   [`LogSliceError`]).
//! - `raft`: the state machine — elections, replication, configuration
//!   changes, reads.
//! - `config`, `error`, `util`, `go_fmt`: [`Config`], [`Error`], shared
//!   constants ([`NONE`], [`NO_LIMIT`], ...), Go's formatting rules.
//!
//! Dependencies point one way: `raft` builds on `state`, `log`, `tracker`,
//! `confchange` and `raftpb`, and never uses `raw_node`, `node`, `status` or
//! `describe`, which build on it (a tidy test checks). With the `testing`
//! feature, a `testing` module exposes internals (the tracker, the conf
//! changer, the log) to test harnesses, without a stability promise.
//!
//! Architecture invariant: nothing in this crate reads a clock, draws
//! unseeded randomness or touches a file or socket, and only [`node`] spawns
//! a thread (the one that runs a [`Node`]'s loop; a tidy test checks). Time
//! is `tick()`, randomness comes from the seed in the [`Config`]; under a
//! `Node` the state machine is the same deterministic [`RawNode`].
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
#[macro_use]
mod config;
pub mod describe;
mod error;
mod go_fmt;
pub mod node;
pub mod quorum;
mod raft;
pub mod raftpb;
pub mod raw_node;
mod state;
pub mod status;
pub mod storage;

// The state machine's parts, private. Their items are `pub` where the crate
// root or the `testing` module re-exports them. Without the `testing` feature
// the items only `testing` re-exports (and what only they use) are
// unreachable and unused, which is the point; with it (as every workspace
// build, CI's lints included, has) both lints apply in full.
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]
mod confchange;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]
mod log;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]
mod tracker;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]
mod util;

pub use confchange::ConfChangeError;
#[cfg(feature = "testing")]
pub use config::PlantedBug;
pub use config::{Config, ReadOnlyOption};
pub use error::{ConfigError, DropReason, Error, InvalidMessage, Result};
pub use log::{EntryId, LogSliceError, SharedEntries};
pub use logger::{CaptureLogger, DiscardLogger, Level, Logger, TracingLogger};
pub use node::{Node, NodeOptions, ReadyHandler};
pub use raw_node::{
    Peer, Proposed, RawNode, Ready, SnapshotStatus, StorageAppend, StorageApply, StorageResponses,
    must_sync,
};
pub use state::{ReadState, SoftState, StateType};
pub use status::{BasicStatus, ProgressType, Status};
pub use storage::{MemoryStorage, Storage, StorageError};
pub use tracker::{Inflights, Progress, ProgressState, TrackerConfig};
pub use util::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NO_LIMIT, NONE};

/// The state machine's internals that test harnesses drive directly (the
/// etcd datadriven runner, benchmarks of the log), with the `testing` feature
/// only. They carry no stability promise and are not an application API:
/// applications use [`RawNode`] or [`Node`].
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::confchange::Changer;
    pub use crate::log::{LogSlice, RaftLog, Unstable};
    pub use crate::tracker::{ProgressMap, ProgressTracker};
    pub use crate::util::is_local_msg_target;
}
