//! `RawNode`, the application's handle on the state machine, and `Ready`, the
//! batch of work it hands out. (RawNode itself lands in its own change; the
//! data types are here so that `describe` can print them.)

use bytes::Bytes;

use crate::raft::StateType;
use crate::raftpb::{Entry, HardState, Message, Snapshot};

/// Volatile state that is useful for logging and leader tracking; it need not
/// be persisted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftState {
    /// The current leader (0 if unknown).
    pub lead: u64,
    /// This node's role.
    pub raft_state: StateType,
}

/// The answer to a read-only request: reads are linearizable once the
/// application has applied up to `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index at the time of the request.
    pub index: u64,
    /// The request's context, as given to `read_index`.
    pub request_ctx: Bytes,
}

/// Everything the application must do: persist, send, apply. Fields that are
/// empty need no action.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// Changed soft state, if any.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist before sending messages (empty: unchanged).
    pub hard_state: HardState,
    /// Read requests that are now served.
    pub read_states: Vec<ReadState>,
    /// Entries to persist before sending messages.
    pub entries: Vec<Entry>,
    /// A snapshot to persist (empty: none).
    pub snapshot: Snapshot,
    /// Committed entries to apply.
    pub committed_entries: Vec<Entry>,
    /// Messages to send after the entries and state are persisted (or, with
    /// asynchronous storage writes, messages to hand to the storage threads).
    pub messages: Vec<Message>,
    /// Whether the hard state and entries must be synced to disk.
    pub must_sync: bool,
}
