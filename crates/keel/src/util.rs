//! Small facts about messages and entries that several modules share: which
//! message types are local or responses, the vote response for a vote, and
//! the two size measures etcd uses (encoded size for limits on what is sent
//! or applied, payload size for the uncommitted-log quota).

use crate::raftpb::{Entry, MessageType};

/// Placeholder node id meaning "no node" (no leader, no vote).
pub const NONE: u64 = 0;

/// Target of `MsgStorageAppend` messages: the local thread that persists
/// entries, hard state and snapshots (asynchronous storage writes).
pub const LOCAL_APPEND_THREAD: u64 = u64::MAX;

/// Target of `MsgStorageApply` messages: the local thread that applies
/// committed entries (asynchronous storage writes).
pub const LOCAL_APPLY_THREAD: u64 = u64::MAX - 1;

/// No limit, for the size limits in the configuration.
pub const NO_LIMIT: u64 = u64::MAX;

/// Whether `id` is one of the local storage threads rather than a peer.
pub fn is_local_msg_target(id: u64) -> bool {
    id == LOCAL_APPEND_THREAD || id == LOCAL_APPLY_THREAD
}

/// Whether messages of this type never cross the network.
pub(crate) fn is_local_msg(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum
            | MessageType::MsgStorageAppend
            | MessageType::MsgStorageAppendResp
            | MessageType::MsgStorageApply
            | MessageType::MsgStorageApplyResp
    )
}

/// Whether messages of this type answer an earlier request.
pub(crate) fn is_response_msg(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgAppResp
            | MessageType::MsgVoteResp
            | MessageType::MsgHeartbeatResp
            | MessageType::MsgUnreachable
            | MessageType::MsgReadIndexResp
            | MessageType::MsgPreVoteResp
            | MessageType::MsgStorageAppendResp
            | MessageType::MsgStorageApplyResp
    )
}

/// The response type for a vote request type.
///
/// # Panics
/// On anything but `MsgVote` or `MsgPreVote` (a programmer error).
pub(crate) fn vote_resp_msg_type(t: MessageType) -> MessageType {
    match t {
        MessageType::MsgVote => MessageType::MsgVoteResp,
        MessageType::MsgPreVote => MessageType::MsgPreVoteResp,
        other => panic!("not a vote message: {other:?}"),
    }
}

/// Size of an entry's payload, which the uncommitted-log quota counts. An
/// empty entry counts zero, so a new leader's empty entry is never refused.
pub(crate) fn payload_size(e: &Entry) -> u64 {
    e.data.len() as u64
}

/// Total payload size of entries.
pub(crate) fn payloads_size(ents: &[Entry]) -> u64 {
    ents.iter().map(payload_size).sum()
}
