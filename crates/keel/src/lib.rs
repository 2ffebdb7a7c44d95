//! Keel: a faithful, sans-I/O Rust implementation of etcd-raft.
//!
//! # Layout
//! - [`raftpb`]: the wire types, byte-compatible with etcd's `raftpb`.
//! - [`quorum`]: majority and joint quorum arithmetic.
//! - [`tracker`]: per-peer replication progress and vote tallies.
//! - [`confchange`]: applying membership changes to a tracker configuration.
//! - [`logger`]: the logging interface and its implementations.
//!
//! Architecture invariant: nothing in this crate reads a clock, draws
//! unseeded randomness, spawns a thread or touches a file or socket. Time is
//! `tick()`, randomness comes from the seed in the configuration.

#[macro_use]
pub mod logger;
pub mod confchange;
mod config;
pub mod describe;
mod error;
pub mod log;
pub mod quorum;
mod raft;
pub mod raftpb;
pub mod raw_node;
pub mod status;
pub mod storage;
pub mod tracker;
pub mod util;

pub use config::{Config, ReadOnlyOption};
pub use error::{ConfigError, Error, Result};
pub use logger::{CaptureLogger, DiscardLogger, Level, Logger, TracingLogger};
pub use raft::StateType;
pub use raw_node::{Peer, RawNode, ReadState, Ready, SnapshotStatus, SoftState, must_sync};
pub use status::{BasicStatus, ProgressType, Status};
pub use util::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE};
