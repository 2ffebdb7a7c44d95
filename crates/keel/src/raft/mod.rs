//! The Raft state machine: roles, stepping, elections, replication,
//! configuration changes and reads. (The state machine lands in its own change;
//! this file holds the role type that other modules already need.)

use std::fmt;

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
