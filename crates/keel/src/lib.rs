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
pub mod describe;
pub mod log;
pub mod quorum;
pub mod raft;
pub mod raftpb;
pub mod raw_node;
pub mod storage;
pub mod tracker;

pub use logger::{CaptureLogger, DiscardLogger, Level, Logger, TracingLogger};
pub use raft::StateType;
pub use raw_node::{ReadState, Ready, SoftState};
