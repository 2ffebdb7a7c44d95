//! Quorum arithmetic, as etcd-raft's `quorum` package: which log index a
//! configuration has committed and how an election stands.
//!
//! A [`MajorityConfig`] is a set of voters deciding by simple majority; a
//! [`JointConfig`] pairs two of them (the incoming and the outgoing
//! configuration of a membership change) and needs both to agree. Everything
//! here is pure: inputs come in through the [`AckedIndexer`] and
//! [`VoteLookup`] traits, and the answers are values.
//!
//! Conventions inherited from etcd, which make a joint configuration with an
//! empty half behave exactly like its other half:
//! - an empty majority configuration has committed "everything"
//!   ([`INDEX_INFINITY`]), and
//! - an empty majority configuration wins every election.

mod joint;
mod majority;

pub use joint::{JointConfig, JointIds};
pub use majority::MajorityConfig;

use std::collections::BTreeMap;
use std::fmt;

/// The committed index of an empty configuration: "everything". Printed as
/// `∞` by [`Index`].
pub const INDEX_INFINITY: u64 = u64::MAX;

/// A log index as the quorum code prints it: decimal, and `∞` for
/// [`INDEX_INFINITY`] (etcd's `quorum.Index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Index(pub u64);

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == INDEX_INFINITY { f.write_str("∞") } else { write!(f, "{}", self.0) }
    }
}

/// Where the quorum code learns how far each voter's log is known to match
/// the leader's. The leader's progress map implements it; tests use a map.
pub trait AckedIndexer {
    /// The highest index `voter_id` has acknowledged, or `None` if nothing is
    /// known about this voter (which is not the same as `Some(0)`).
    fn acked_index(&self, voter_id: u64) -> Option<u64>;
}

impl AckedIndexer for BTreeMap<u64, u64> {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self.get(&voter_id).copied()
    }
}

/// Where the quorum code learns how each voter voted: `Some(true)` granted,
/// `Some(false)` rejected, `None` not (yet) voted.
pub trait VoteLookup {
    /// The vote cast by `voter_id`, if any.
    fn vote(&self, voter_id: u64) -> Option<bool>;
}

impl VoteLookup for BTreeMap<u64, bool> {
    fn vote(&self, voter_id: u64) -> Option<bool> {
        self.get(&voter_id).copied()
    }
}

/// The state of an election (or of any yes/no question put to a quorum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoteResult {
    /// Neither a quorum of yes nor a quorum of no has been reached yet.
    Pending = 1,
    /// A quorum has said no (or can no longer say yes).
    Lost = 2,
    /// A quorum has said yes.
    Won = 3,
}

impl fmt::Display for VoteResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VoteResult::Pending => "VotePending",
            VoteResult::Lost => "VoteLost",
            VoteResult::Won => "VoteWon",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_prints_infinity() {
        assert_eq!(Index(0).to_string(), "0");
        assert_eq!(Index(12).to_string(), "12");
        assert_eq!(Index(INDEX_INFINITY).to_string(), "∞");
        assert_eq!(Index(INDEX_INFINITY - 1).to_string(), "18446744073709551614");
    }

    #[test]
    fn vote_result_prints_etcd_names() {
        assert_eq!(VoteResult::Pending.to_string(), "VotePending");
        assert_eq!(VoteResult::Lost.to_string(), "VoteLost");
        assert_eq!(VoteResult::Won.to_string(), "VoteWon");
    }
}
