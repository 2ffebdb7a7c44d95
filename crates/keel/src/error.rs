//! The errors the core returns to its caller. Broken invariants (a corrupt
//! log handed to us by storage, a conf change that cannot apply) panic as
//! etcd's do; everything a caller or a peer can cause is an `Error`.

use crate::confchange::ConfChangeError;
use crate::storage::StorageError;

/// What went wrong with a call into the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The proposal was ignored: no leader, a transfer in progress, the
    /// uncommitted-log quota is full, or this node was removed. The caller
    /// may retry.
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// A local-only message type arrived from outside.
    #[error("raft: cannot step raft local message")]
    StepLocalMsg,
    /// A response arrived from a node that is not in the configuration.
    #[error("raft: cannot step as peer not found")]
    StepPeerNotFound,
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A message from a peer is malformed (it is dropped).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The persisted hard state contradicts the persisted log.
    #[error("{id:x} state.commit {commit} is out of range [{lo}, {hi}]")]
    InvalidHardState {
        /// This node's id.
        id: u64,
        /// The persisted commit index.
        commit: u64,
        /// The lowest valid commit index.
        lo: u64,
        /// The highest valid commit index (the last index).
        hi: u64,
    },
    /// A configuration change (or a persisted configuration) is invalid.
    #[error(transparent)]
    ConfChange(#[from] ConfChangeError),
    /// `bootstrap` was called with no peers.
    #[error("must provide at least one peer to Bootstrap")]
    BootstrapNoPeers,
    /// `bootstrap` was called on storage that already holds entries.
    #[error("can't bootstrap a nonempty Storage")]
    BootstrapNonEmpty,
    /// The [`Node`](crate::Node) is stopped or stopping.
    #[error("raft: stopped")]
    Stopped,
    /// A blocking [`Node`](crate::Node) call waited longer than its
    /// `request_timeout`.
    #[error("raft: request timed out")]
    Timeout,
    /// `advance` was called on a node with asynchronous storage writes,
    /// whose storage threads acknowledge instead.
    #[error("raft: advance is not used with asynchronous storage writes")]
    AdvanceWithAsyncStorageWrites,
    /// The [`Node`](crate::Node)'s thread could not be started.
    #[error("raft: cannot start the node's thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Why a [`Config`](crate::Config) is invalid. The messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The id is zero.
    #[error("cannot use none as id")]
    NoneId,
    /// The id collides with a local storage thread's id.
    #[error("cannot use local target as id")]
    LocalTargetId,
    /// `heartbeat_tick` is zero.
    #[error("heartbeat tick must be greater than 0")]
    HeartbeatTick,
    /// `election_tick` is not above `heartbeat_tick`.
    #[error("election tick must be greater than heartbeat tick")]
    ElectionTick,
    /// `max_inflight_msgs` is zero.
    #[error("max inflight messages must be greater than 0")]
    MaxInflightMsgs,
    /// `max_inflight_bytes` is below `max_size_per_msg`.
    #[error("max inflight bytes must be >= max message size")]
    MaxInflightBytes,
    /// Lease-based reads need CheckQuorum to be safe.
    #[error("CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased")]
    LeaseWithoutCheckQuorum,
}

/// A specialized `Result` for the core.
pub type Result<T> = std::result::Result<T, Error>;
