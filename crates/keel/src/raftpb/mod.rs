//! Wire types of the Raft protocol, byte-compatible with etcd-raft's `raftpb`.
//!
//! The structs are hand-written prost derives (no `build.rs`, no protoc). Field
//! numbers and presence follow etcd's `raft.proto` as compiled by gogoproto with
//! `nullable=false`: every scalar field is always written (proto2 `required`
//! here, which prost encodes unconditionally and does not enforce on decode),
//! repeated integers are unpacked, and byte fields are written when non-empty.
//! The result is that `encode_to_vec()` produces the bytes etcd's Go code
//! produces and `encoded_len()` equals Go's `proto.Size`, which the size limits
//! of the core rely on.
//!
//! One difference is inherent to `bytes::Bytes`: Go distinguishes a nil payload
//! (not written) from an empty non-nil one (written as a zero-length field). Keel
//! has no nil, so an empty payload is never written. Both decode to the same
//! value on either side.
//!
//! Enums are stored as `i32` (as prost does, so unknown values survive a round
//! trip); use the generated getters (`msg_type()`, `entry_type()`, ...) and
//! setters for typed access.

mod confchange;

pub use confchange::{
    AnyConfChange, ConfChangeParseError, conf_changes_from_string, conf_changes_to_string,
};

use bytes::Bytes;

/// The kind of payload an [`Entry`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EntryType {
    /// An application command (or an empty entry appended by a new leader).
    EntryNormal = 0,
    /// A serialized [`ConfChange`].
    EntryConfChange = 1,
    /// A serialized [`ConfChangeV2`].
    EntryConfChangeV2 = 2,
}

/// Every message type of the protocol, including the local ones that never
/// leave a node (`MsgHup`, `MsgBeat`, the storage-thread messages, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// Local: start an election.
    MsgHup = 0,
    /// Local: a leader's heartbeat tick.
    MsgBeat = 1,
    /// A proposal of new entries.
    MsgProp = 2,
    /// Append entries (also the probe of a follower's log).
    MsgApp = 3,
    /// Response to `MsgApp`.
    MsgAppResp = 4,
    /// Request a vote.
    MsgVote = 5,
    /// Response to `MsgVote`.
    MsgVoteResp = 6,
    /// Install a snapshot.
    MsgSnap = 7,
    /// Leader heartbeat.
    MsgHeartbeat = 8,
    /// Response to `MsgHeartbeat`.
    MsgHeartbeatResp = 9,
    /// Local: a peer could not be reached.
    MsgUnreachable = 10,
    /// Local: the outcome of sending a snapshot.
    MsgSnapStatus = 11,
    /// Local: the leader checks that a quorum is still active.
    MsgCheckQuorum = 12,
    /// Ask the leader to transfer leadership.
    MsgTransferLeader = 13,
    /// Tell the transfer target to campaign at once.
    MsgTimeoutNow = 14,
    /// Request a read index.
    MsgReadIndex = 15,
    /// Response to `MsgReadIndex`.
    MsgReadIndexResp = 16,
    /// Request a pre-vote.
    MsgPreVote = 17,
    /// Response to `MsgPreVote`.
    MsgPreVoteResp = 18,
    /// Local: ask the append thread to persist entries and state.
    MsgStorageAppend = 19,
    /// Local: the append thread's acknowledgement.
    MsgStorageAppendResp = 20,
    /// Local: ask the apply thread to apply committed entries.
    MsgStorageApply = 21,
    /// Local: the apply thread's acknowledgement.
    MsgStorageApplyResp = 22,
    /// Ask a follower to forget its leader.
    MsgForgetLeader = 23,
}

/// How a [`ConfChangeV2`] uses joint consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeTransition {
    /// The simple protocol when possible, else joint consensus left automatically.
    ConfChangeTransitionAuto = 0,
    /// Joint consensus, left automatically.
    ConfChangeTransitionJointImplicit = 1,
    /// Joint consensus, left when the application proposes an empty change.
    ConfChangeTransitionJointExplicit = 2,
}

/// One kind of membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeType {
    /// Add a voter (or promote a learner).
    ConfChangeAddNode = 0,
    /// Remove a node.
    ConfChangeRemoveNode = 1,
    /// No change to the configuration; carried through for the application.
    ConfChangeUpdateNode = 2,
    /// Add a learner (or demote a voter).
    ConfChangeAddLearnerNode = 3,
}

/// One log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The term in which the entry was proposed.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    /// The entry's position in the log.
    #[prost(uint64, required, tag = "3")]
    pub index: u64,
    /// The payload kind, an [`EntryType`].
    #[prost(enumeration = "EntryType", required, tag = "1")]
    pub entry_type: i32,
    /// The payload; shared, never deep-copied by the core.
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// What a snapshot covers: the last index and term it includes and the
/// configuration at that point.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMetadata {
    /// The membership configuration as of `index`.
    #[prost(message, required, tag = "1")]
    pub conf_state: ConfState,
    /// The last log index the snapshot includes.
    #[prost(uint64, required, tag = "2")]
    pub index: u64,
    /// The term of the entry at `index`.
    #[prost(uint64, required, tag = "3")]
    pub term: u64,
}

/// A state machine snapshot and its metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    /// The application's serialized state.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
    /// What the snapshot covers.
    #[prost(message, required, tag = "2")]
    pub metadata: SnapshotMetadata,
}

/// A message between Raft nodes, or between a node and its local storage
/// threads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// The message kind, a [`MessageType`].
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub msg_type: i32,
    /// Recipient node id.
    #[prost(uint64, required, tag = "2")]
    pub to: u64,
    /// Sender node id.
    #[prost(uint64, required, tag = "3")]
    pub from: u64,
    /// The sender's term (0 for local messages).
    #[prost(uint64, required, tag = "4")]
    pub term: u64,
    /// For `MsgApp`, the term of the entry at `index`; for a rejected
    /// `MsgAppResp`, the term of the follower's entry at the hinted index.
    #[prost(uint64, required, tag = "5")]
    pub log_term: u64,
    /// A log index whose meaning depends on the message type.
    #[prost(uint64, required, tag = "6")]
    pub index: u64,
    /// Entries carried by the message.
    #[prost(message, repeated, tag = "7")]
    pub entries: Vec<Entry>,
    /// The sender's commit index.
    #[prost(uint64, required, tag = "8")]
    pub commit: u64,
    /// For `MsgStorageAppend`, the vote to persist.
    #[prost(uint64, required, tag = "13")]
    pub vote: u64,
    /// The snapshot of a `MsgSnap` (or of a `MsgStorageAppend`). Boxed: a
    /// snapshot is rare and large (about 150 bytes even when empty), and
    /// every message is moved several times on the hot path.
    #[prost(message, optional, boxed, tag = "9")]
    pub snapshot: Option<Box<Snapshot>>,
    /// Whether the request is rejected.
    #[prost(bool, required, tag = "10")]
    pub reject: bool,
    /// For a rejected `MsgAppResp`, the index the follower suggests probing.
    #[prost(uint64, required, tag = "11")]
    pub reject_hint: u64,
    /// Opaque context (read index request ids, campaign kinds).
    #[prost(bytes = "bytes", tag = "12")]
    pub context: Bytes,
    /// For storage-thread messages, what to send once the work is done.
    #[prost(message, repeated, tag = "14")]
    pub responses: Vec<Message>,
}

/// The state a node must persist before sending messages: term, vote, commit.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct HardState {
    /// The current term.
    #[prost(uint64, required, tag = "1")]
    pub term: u64,
    /// The node voted for in `term` (0 for none).
    #[prost(uint64, required, tag = "2")]
    pub vote: u64,
    /// The highest index known to be committed.
    #[prost(uint64, required, tag = "3")]
    pub commit: u64,
}

/// A membership configuration, as stored in snapshots and returned by applying
/// a configuration change.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfState {
    /// The voters of the incoming configuration.
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    pub voters: Vec<u64>,
    /// The learners of the incoming configuration.
    #[prost(uint64, repeated, packed = "false", tag = "2")]
    pub learners: Vec<u64>,
    /// The voters of the outgoing configuration (empty unless joint).
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub voters_outgoing: Vec<u64>,
    /// Nodes that become learners when the joint configuration is left.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub learners_next: Vec<u64>,
    /// Whether the joint configuration is left automatically.
    #[prost(bool, required, tag = "5")]
    pub auto_leave: bool,
}

/// A single-node membership change (the original protocol).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChange {
    /// The change, a [`ConfChangeType`].
    #[prost(enumeration = "ConfChangeType", required, tag = "2")]
    pub change_type: i32,
    /// The node the change is about.
    #[prost(uint64, required, tag = "3")]
    pub node_id: u64,
    /// Opaque payload handed back to the application.
    #[prost(bytes = "bytes", tag = "4")]
    pub context: Bytes,
    /// Used by etcd to thread a request id through; no V2 counterpart.
    #[prost(uint64, required, tag = "1")]
    pub id: u64,
}

/// One operation of a [`ConfChangeV2`].
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ConfChangeSingle {
    /// The change, a [`ConfChangeType`].
    #[prost(enumeration = "ConfChangeType", required, tag = "1")]
    pub change_type: i32,
    /// The node the change is about.
    #[prost(uint64, required, tag = "2")]
    pub node_id: u64,
}

/// A membership change of any number of nodes, using joint consensus when it
/// must (see [`ConfChangeV2::enter_joint`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChangeV2 {
    /// How joint consensus is used, a [`ConfChangeTransition`].
    #[prost(enumeration = "ConfChangeTransition", required, tag = "1")]
    pub transition: i32,
    /// The operations, applied atomically.
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    /// Opaque payload handed back to the application.
    #[prost(bytes = "bytes", tag = "3")]
    pub context: Bytes,
}

impl Entry {
    /// A normal entry with the given position and payload.
    pub fn new(term: u64, index: u64, data: Bytes) -> Entry {
        Entry { term, index, entry_type: EntryType::EntryNormal as i32, data }
    }
}

impl Message {
    /// A message of type `msg_type` with every other field zero.
    pub fn new(msg_type: MessageType) -> Message {
        Message { msg_type: msg_type as i32, ..Message::default() }
    }
}

impl HardState {
    /// Whether this is the zero hard state (nothing to persist).
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

impl Snapshot {
    /// Whether this is the zero snapshot (index 0).
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

impl ConfState {
    /// Whether both describe the same configuration, ignoring the order of ids.
    pub fn equivalent(&self, other: &ConfState) -> bool {
        fn sorted(ids: &[u64]) -> Vec<u64> {
            let mut v = ids.to_vec();
            v.sort_unstable();
            v
        }
        sorted(&self.voters) == sorted(&other.voters)
            && sorted(&self.learners) == sorted(&other.learners)
            && sorted(&self.voters_outgoing) == sorted(&other.voters_outgoing)
            && sorted(&self.learners_next) == sorted(&other.learners_next)
            && self.auto_leave == other.auto_leave
    }
}
