//! The errors the core returns to its caller. Broken invariants (a corrupt
//! log handed to us by storage, a conf change that cannot apply) panic as
//! etcd's do; everything a caller or a peer can cause is an `Error`.

use crate::confchange::ConfChangeError;
use crate::storage::StorageError;

/// What went wrong with a call into the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The proposal (or read request) was ignored, for the reason given.
    /// The text is etcd's `ErrProposalDropped`, whatever the reason.
    #[error("raft proposal dropped")]
    ProposalDropped(DropReason),
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
}

/// Why a proposal or a read request was dropped, so that a server can
/// answer accordingly (retry elsewhere, back off, or give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// No leader is known (an election is under way); retry later.
    NoLeader,
    /// This follower knows the leader but `disable_proposal_forwarding` is
    /// set; send the proposal to the leader directly.
    ForwardingDisabled,
    /// The leader is transferring leadership; retry after the transfer.
    Transferring,
    /// The uncommitted-log quota (`max_uncommitted_entries_size`) is full;
    /// back off until entries commit.
    QuotaExceeded,
    /// This node leads but is no longer a member of the configuration.
    NotMember,
    /// A proposed configuration change could not be decoded.
    InvalidConfChange,
}

/// Why a [`Config`](crate::Config) is invalid. The messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
