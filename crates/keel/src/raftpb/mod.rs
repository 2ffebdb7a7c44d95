//! Wire types of the Raft protocol, byte-compatible with etcd-raft's `raftpb`.
//!
//! The structs are hand-written prost derives (no `build.rs`, no protoc), but
//! for [`Message`], whose encoding is spelled out in `message.rs` (the derive
//! cannot keep its rare fields out of line). Field
//! numbers and presence follow etcd's `raft.proto` as compiled by gogoproto with
//! `nullable=false`: every scalar field is always written (proto2 `required`
//! here, which prost encodes unconditionally and does not enforce on decode),
//! repeated integers are unpacked, and byte fields are written when non-empty.
//! The result is that `encode_to_vec()` produces the bytes etcd's Go code
//! produces and `encoded_len()` equals Go's `proto.Size`, which the size limits
//! of the core rely on.
//!
//! Output order is by field number on both sides (gogo's
//! `MarshalToSizedBuffer` fills its buffer from the end, prost sorts fields by
//! tag), so e.g. `Message.vote` (13) follows `context` (12) although Go declares
//! it earlier, and `ConfChange.id` (1) comes first although declared last.
//! `Message.snapshot` is a `*Snapshot` in Go, written only when non-nil: here an
//! `Option`, and an empty but present snapshot (sent by older etcd versions)
//! survives a round trip.
//!
//! # Known differences from Go
//!
//! - **Empty versus nil bytes.** The byte fields are `Entry.data` (4),
//!   `Snapshot.data` (1), `Message.context` (12), `ConfChange.context` (4) and
//!   `ConfChangeV2.context` (3). Go writes one when the slice is non-nil, so a
//!   non-nil empty slice becomes key + `00` (2 bytes) and Go's `Size()` counts
//!   them; Go's decoder turns such a present, zero-length field back into a
//!   non-nil empty slice. `Bytes` has no nil: Keel writes a byte field only when
//!   it is non-empty and decodes a present empty field to empty. Values are the
//!   same on both sides, but a message holding a present empty field is 2 bytes
//!   shorter per such field when Keel re-encodes it, and `encoded_len()` is that
//!   much below Go's `Size()` of the value Go holds. Only size accounting can
//!   notice (etcd-raft itself leaves empty payloads nil).
//! - **Stricter decoding of malformed input.** Keel rejects a few encodings no
//!   encoder produces but Go's generated decoder accepts: a ten-byte varint
//!   whose last byte exceeds 1 (Go drops the overflowing bits), a key above
//!   `u32::MAX`, and nesting deeper than prost's recursion limit of 100 levels
//!   (for `Message.responses` or unknown groups; Go has no limit, etcd nests one
//!   level).
//!
//! Enums are stored as `i32` (as prost does, so unknown values survive a round
//! trip); use the generated getters (`msg_type()`, `entry_type()`, ...) and
//! setters for typed access.

mod confchange;
mod message;

pub use message::{Context, Responses};

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
    /// The payload kind, an [`EntryType`], with its presence tracked as
    /// protobuf-go (etcd-raft v3.7) tracks it: a proposal leaves it unset
    /// (`None`, not encoded, 2 bytes smaller), conf changes and refused conf
    /// changes set it. Bytes that carry it (etcd-raft v3.6 always writes it)
    /// decode to `Some` and re-encode unchanged. Read it with
    /// [`Entry::entry_type()`] (`EntryNormal` when unset).
    #[prost(enumeration = "EntryType", optional, tag = "1")]
    pub entry_type: Option<i32>,
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
///
/// Messages are moved several times on the hot path (into a `Ready`, into
/// the recipient's `step`), so the struct is kept at 120 bytes, within what
/// the compiler moves inline: the rarely used fields (`snapshot`, `context`,
/// `responses`) live behind a pointer, null when unset. The encoding is
/// written by hand (`message.rs`) and is the derived one field for field.
#[derive(Clone, PartialEq, Default)]
pub struct Message {
    /// The message kind, a [`MessageType`] (tag 1).
    pub msg_type: i32,
    /// Recipient node id (tag 2).
    pub to: u64,
    /// Sender node id (tag 3).
    pub from: u64,
    /// The sender's term, 0 for local messages (tag 4).
    pub term: u64,
    /// For `MsgApp`, the term of the entry at `index`; for a rejected
    /// `MsgAppResp`, the term of the follower's entry at the hinted index
    /// (tag 5).
    pub log_term: u64,
    /// A log index whose meaning depends on the message type (tag 6).
    pub index: u64,
    /// Entries carried by the message (tag 7).
    pub entries: Vec<Entry>,
    /// The sender's commit index (tag 8).
    pub commit: u64,
    /// For `MsgStorageAppend`, the vote to persist (tag 13).
    pub vote: u64,
    /// The snapshot of a `MsgSnap` (or of a `MsgStorageAppend`), tag 9.
    /// Boxed: a snapshot is rare and large.
    pub snapshot: Option<Box<Snapshot>>,
    /// Whether the request is rejected (tag 10).
    pub reject: bool,
    /// For a rejected `MsgAppResp`, the index the follower suggests probing
    /// (tag 11).
    pub reject_hint: u64,
    /// Opaque context (read index request ids, campaign kinds), tag 12.
    /// Reads as a [`Bytes`]; set it with `Bytes::into()`.
    pub context: Context,
    /// For storage-thread messages, what to send once the work is done
    /// (tag 14). Reads and writes as a `Vec<Message>`; set it with
    /// `Vec::into()`.
    pub responses: Responses,
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
    /// A normal entry with the given position and payload, its type set
    /// explicitly (as v3.6 writes every entry; a proposal leaves it unset).
    pub fn new(term: u64, index: u64, data: Bytes) -> Entry {
        Entry { term, index, entry_type: Some(EntryType::EntryNormal as i32), data }
    }
}

impl Message {
    /// A message of type `msg_type` with every other field zero.
    pub fn new(msg_type: MessageType) -> Message {
        Message { msg_type: msg_type as i32, ..Message::default() }
    }

    /// The message type; an unknown raw value reads as `MsgHup` (as prost's
    /// generated getters read unknown values as the default).
    #[inline]
    pub fn msg_type(&self) -> MessageType {
        MessageType::try_from(self.msg_type).unwrap_or(MessageType::MsgHup)
    }

    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: MessageType) {
        self.msg_type = value as i32;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conf_state(voters: &[u64], learners: &[u64], outgoing: &[u64], next: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: false,
        }
    }

    #[test]
    fn conf_state_equivalence_cases_from_etcd() {
        let cases = [
            // Reordered ids in every list.
            (
                conf_state(&[1, 2, 3], &[5, 4, 6], &[9, 8, 7], &[10, 20, 15]),
                conf_state(&[1, 2, 3], &[4, 5, 6], &[7, 9, 8], &[20, 10, 15]),
                true,
            ),
            (
                conf_state(&[1, 2, 3, 4], &[], &[], &[]),
                conf_state(&[2, 1, 3], &[], &[], &[]),
                false,
            ),
            (conf_state(&[1, 4, 3], &[], &[], &[]), conf_state(&[2, 1, 3], &[], &[], &[]), false),
            (conf_state(&[], &[1, 2], &[], &[]), conf_state(&[], &[2], &[], &[]), false),
            // Ids are not interchangeable between the lists.
            (conf_state(&[1], &[], &[], &[]), conf_state(&[], &[1], &[], &[]), false),
            (conf_state(&[], &[], &[1], &[]), conf_state(&[], &[], &[], &[1]), false),
            // Duplicates count.
            (conf_state(&[1, 1], &[], &[], &[]), conf_state(&[1], &[], &[], &[]), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.equivalent(&b), want, "{a:?} vs {b:?}");
            assert_eq!(b.equivalent(&a), want, "{b:?} vs {a:?}");
        }
        // Sensitive to the auto-leave flag.
        let auto = ConfState { auto_leave: true, ..ConfState::default() };
        assert!(!auto.equivalent(&ConfState::default()));
        assert!(auto.equivalent(&auto.clone()));
    }

    #[test]
    fn emptiness_and_constructors() {
        assert!(HardState::default().is_empty());
        assert!(!HardState { commit: 1, ..HardState::default() }.is_empty());
        assert!(Snapshot::default().is_empty());
        // Only the index decides, as in etcd's IsEmptySnap.
        let data_only = Snapshot { data: bytes::Bytes::from_static(b"x"), ..Snapshot::default() };
        assert!(data_only.is_empty());
        let mut snap = Snapshot::default();
        snap.metadata.index = 1;
        assert!(!snap.is_empty());

        let e = Entry::new(2, 3, bytes::Bytes::from_static(b"d"));
        assert_eq!(
            (e.term, e.index, e.entry_type(), &e.data[..]),
            (2, 3, EntryType::EntryNormal, &b"d"[..])
        );
        let m = Message::new(MessageType::MsgForgetLeader);
        assert_eq!(m.msg_type(), MessageType::MsgForgetLeader);
        assert_eq!(Message { msg_type: m.msg_type, ..Message::default() }, m);
    }

    #[test]
    fn enum_values_match_raft_proto() {
        // The last value of each enum and a few spot checks; the wire tests
        // cover the rest through golden vectors.
        assert_eq!(MessageType::MsgForgetLeader as i32, 23);
        assert_eq!(MessageType::MsgStorageAppend as i32, 19);
        assert_eq!(MessageType::MsgStorageApplyResp as i32, 22);
        assert_eq!(EntryType::EntryConfChangeV2 as i32, 2);
        assert_eq!(ConfChangeType::ConfChangeAddLearnerNode as i32, 3);
        assert_eq!(ConfChangeTransition::ConfChangeTransitionJointExplicit as i32, 2);
        for v in 0..=23 {
            assert!(MessageType::try_from(v).is_ok(), "{v}");
        }
        assert!(MessageType::try_from(24).is_err());
        assert!(EntryType::try_from(3).is_err());
        assert!(ConfChangeType::try_from(4).is_err());
        assert!(ConfChangeTransition::try_from(3).is_err());
        // An unknown raw value stays in the field; the typed getter falls back
        // to the default, so code that must tell them apart reads the field.
        let m = Message { msg_type: 99, ..Message::default() };
        assert_eq!(m.msg_type, 99);
        assert_eq!(m.msg_type(), MessageType::MsgHup);
    }
}
