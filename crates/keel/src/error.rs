//! The errors the core returns to its caller. Broken invariants (a corrupt
//! log handed to us by storage, a conf change that cannot apply) panic as
//! etcd's do; everything a caller or a peer can cause is an `Error`.

use crate::confchange::ConfChangeError;
use crate::log::LogSliceError;
use crate::raftpb::MessageType;
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
    /// A message from a peer was refused (and dropped): no honest peer sends
    /// it. The reason is kept as the error's source.
    #[error("invalid message")]
    InvalidMessage(#[source] InvalidMessage),
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
    /// `Config::applied` lies outside what storage allows: below its
    /// snapshot or past its commit index.
    #[error("applied({applied}) is out of range [prevApplied({lo}), committed({hi})]")]
    AppliedOutOfRange {
        /// The configured applied index.
        applied: u64,
        /// The lowest valid value (the snapshot's index).
        lo: u64,
        /// The highest valid value (the persisted commit index).
        hi: u64,
    },
    /// The ConfState in storage does not restore to itself (an id listed
    /// twice, or as both voter and learner).
    #[error("ConfStates not equivalent after sorting:\n{stored:?}\n{restored:?}")]
    ConfStateNotRestorable {
        /// The ConfState storage holds.
        stored: Box<crate::raftpb::ConfState>,
        /// What restoring it produced.
        restored: Box<crate::raftpb::ConfState>,
    },
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

/// Why [`RawNode::step`](crate::RawNode::step) (or
/// [`RawNode::step_local`](crate::RawNode::step_local)) refused a message.
/// Each is something an honest, crash-fault peer (or storage thread) never
/// sends; the message is dropped and the node keeps running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// The message type is not one this version knows.
    #[error("unknown message type {0}")]
    UnknownType(i32),
    /// A storage thread's response, or a self-addressed response, arrived
    /// through `step`; it belongs to `step_local`.
    #[error("{0:?} from {1:x} is local; step it with step_local")]
    LocalResponse(MessageType, u64),
    /// A `MsgStorageApplyResp` for entries beyond the commit index: no
    /// apply thread was given them, and raft would panic on it.
    #[error("apply response for index {index}, beyond the commit index {committed}")]
    AppliedBeyondCommit {
        /// The last index the response acknowledges.
        index: u64,
        /// The commit index.
        committed: u64,
    },
    /// `step_local` was given something other than a storage thread's (or
    /// this node's own) response.
    #[error("{0:?} from {1:x} to {2:x} is not a local response")]
    NotLocal(MessageType, u64, u64),
    /// `from` is 0, this node's own id, or a reserved storage-thread id.
    #[error("{0:?} from reserved or own id {1:x}")]
    BadSender(MessageType, u64),
    /// A term is required and is 0.
    #[error("{0:?} from {1:x} has no term")]
    MissingTerm(MessageType, u64),
    /// A term is carried where none is allowed (forwarded proposals and
    /// read requests travel without one).
    #[error("{0:?} from {1:x} carries term {2}, none allowed")]
    UnexpectedTerm(MessageType, u64, u64),
    /// The term is `u64::MAX`: the next election would overflow it.
    #[error("{0:?} from {1:x} has term u64::MAX")]
    MaxTerm(MessageType, u64),
    /// A proposal with no entries.
    #[error("empty MsgProp from {0:x}")]
    EmptyProposal(u64),
    /// An index is `u64::MAX`, which no log reaches.
    #[error("{0:?} from {1:x} has index u64::MAX")]
    MaxIndex(MessageType, u64),
    /// An append's entries are not a piece of a log of its term.
    #[error("MsgApp from {0:x}: {1}")]
    Append(u64, #[source] LogSliceError),
    /// A `MsgSnap` without a snapshot, or whose snapshot term exceeds the
    /// message's term.
    #[error("MsgSnap from {0:x}: snapshot [index: {1}, term: {2}] does not fit message term {3}")]
    SnapshotTerm(u64, u64, u64, u64),
    /// A `MsgSnap` whose ConfState does not restore.
    #[error("MsgSnap from {0:x}: {1}")]
    SnapshotConfState(u64, #[source] ConfChangeError),
    /// A `MsgSnap` whose ConfState names an id twice, as both voter and
    /// learner, or names 0 or a storage-thread id.
    #[error("MsgSnap from {0:x}: ConfState does not restore to itself or names a reserved id")]
    SnapshotMembers(u64),
    /// A heartbeat whose commit index, or an append acknowledgement whose
    /// index, is past this node's last index. Nothing is moved (a commit
    /// index is never clamped: that could commit an entry that differs from
    /// the leader's).
    #[error("{0:?} from {1:x}: index {2} is past the last index {3}")]
    PastLastIndex(MessageType, u64, u64, u64),
}

impl From<InvalidMessage> for Error {
    fn from(reason: InvalidMessage) -> Self {
        Error::InvalidMessage(reason)
    }
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
    /// `propose_batch` was given no entries.
    EmptyBatch,
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
