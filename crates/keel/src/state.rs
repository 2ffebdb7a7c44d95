//! The small value types the state machine reports about itself: a node's
//! role (`StateType`), its volatile leader and role (`SoftState`), and the
//! answer to a read-only request (`ReadState`).
//!
//! They sit below both `raft`, which produces them, and `raw_node`, which
//! hands them to the application in a `Ready`, so that neither of those two
//! modules needs the other's types.

use std::fmt;

use bytes::Bytes;

/// The role a node plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StateType {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Campaigning for votes.
    Candidate,
    /// Leads the group.
    Leader,
    /// Asking for pre-votes before campaigning (PreVote).
    PreCandidate,
}

impl StateType {
    /// etcd's name for the role (`StateFollower`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Follower => "StateFollower",
            StateType::Candidate => "StateCandidate",
            StateType::Leader => "StateLeader",
            StateType::PreCandidate => "StatePreCandidate",
        }
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
