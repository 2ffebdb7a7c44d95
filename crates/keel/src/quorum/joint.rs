//! Two majority configurations that must both agree (etcd's
//! `quorum.JointConfig`), the shape of a configuration during a joint
//! consensus membership change.

use std::fmt;
use std::iter::Peekable;

use super::{AckedIndexer, MajorityConfig, VoteLookup, VoteResult};

/// The incoming and the outgoing majority configuration. Outside a
/// membership change the outgoing half is empty, and since an empty half
/// commits everything and wins every vote, the pair then behaves exactly
/// like its incoming half.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JointConfig {
    pub(crate) incoming: MajorityConfig,
    pub(crate) outgoing: MajorityConfig,
}

impl JointConfig {
    /// A joint configuration of the given halves.
    pub fn new(incoming: MajorityConfig, outgoing: MajorityConfig) -> JointConfig {
        JointConfig { incoming, outgoing }
    }

    /// The incoming half: the configuration being moved to (`Voters[0]` in
    /// etcd).
    pub fn incoming(&self) -> &MajorityConfig {
        &self.incoming
    }

    /// The outgoing half: the configuration being left (`Voters[1]` in
    /// etcd), empty unless a joint change is in progress.
    pub fn outgoing(&self) -> &MajorityConfig {
        &self.outgoing
    }

    /// Whether a joint change is in progress (the outgoing half is not
    /// empty).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every voter of either half, once each, in increasing order.
    pub fn ids(&self) -> JointIds<'_> {
        JointIds {
            incoming: self.incoming.iter().peekable(),
            outgoing: self.outgoing.iter().peekable(),
        }
    }

    /// The number of distinct voters in either half.
    pub fn len(&self) -> usize {
        self.ids().count()
    }

    /// Whether neither half has a voter.
    pub fn is_empty(&self) -> bool {
        self.incoming.is_empty() && self.outgoing.is_empty()
    }

    /// Whether `id` is a voter in either half.
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// The highest index committed in both halves.
    pub fn committed_index(&self, acked: &dyn AckedIndexer) -> u64 {
        let incoming = self.incoming.committed_index(acked);
        let outgoing = self.outgoing.committed_index(acked);
        incoming.min(outgoing)
    }

    /// Won if both halves won, lost if either lost, pending otherwise.
    pub fn vote_result(&self, votes: &dyn VoteLookup) -> VoteResult {
        let incoming = self.incoming.vote_result(votes);
        let outgoing = self.outgoing.vote_result(votes);
        if incoming == outgoing {
            incoming
        } else if incoming == VoteResult::Lost || outgoing == VoteResult::Lost {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// [`MajorityConfig::describe`] of all voters of both halves together.
    pub fn describe(&self, acked: &dyn AckedIndexer) -> String {
        self.ids().collect::<MajorityConfig>().describe(acked)
    }
}

/// `(1 2 3)`, or `(1 2 3)&&(1 2)` while joint: incoming, then outgoing.
impl fmt::Display for JointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.outgoing.is_empty() {
            write!(f, "{}", self.incoming)
        } else {
            write!(f, "{}&&{}", self.incoming, self.outgoing)
        }
    }
}

/// The sorted union of the voters of a [`JointConfig`], see
/// [`JointConfig::ids`]. Allocation-free: it merges the two sorted halves.
#[derive(Clone, Debug)]
pub struct JointIds<'a> {
    incoming: Peekable<std::iter::Copied<std::slice::Iter<'a, u64>>>,
    outgoing: Peekable<std::iter::Copied<std::slice::Iter<'a, u64>>>,
}

impl Iterator for JointIds<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match (self.incoming.peek().copied(), self.outgoing.peek().copied()) {
            (Some(a), Some(b)) if a == b => {
                self.outgoing.next();
                self.incoming.next()
            }
            (Some(a), Some(b)) if a < b => self.incoming.next(),
            (Some(_), Some(_)) | (None, Some(_)) => self.outgoing.next(),
            (Some(_), None) => self.incoming.next(),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::quorum::INDEX_INFINITY;

    fn cfg(ids: &[u64]) -> MajorityConfig {
        ids.iter().copied().collect()
    }

    #[test]
    fn display_and_ids() {
        let j = JointConfig::new(cfg(&[1, 2, 3]), MajorityConfig::new());
        assert_eq!(j.to_string(), "(1 2 3)");
        assert!(!j.is_joint());
        let j = JointConfig::new(cfg(&[2, 3, 5]), cfg(&[1, 3, 4]));
        assert_eq!(j.to_string(), "(2 3 5)&&(1 3 4)");
        assert!(j.is_joint());
        assert_eq!(j.ids().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(j.len(), 5);
        assert!(j.contains(4) && j.contains(5) && !j.contains(6));
        assert_eq!(j.incoming(), &cfg(&[2, 3, 5]));
        assert_eq!(j.outgoing(), &cfg(&[1, 3, 4]));
        assert!(JointConfig::default().is_empty());
        assert_eq!(JointConfig::default().to_string(), "()");
    }

    #[test]
    fn joint_commit_is_the_smaller_half() {
        let j = JointConfig::new(cfg(&[1]), cfg(&[2]));
        let acked: BTreeMap<u64, u64> = [(1, 13), (2, 100)].into_iter().collect();
        assert_eq!(j.committed_index(&acked), 13);
        assert_eq!(JointConfig::default().committed_index(&acked), INDEX_INFINITY);
    }

    #[test]
    fn joint_vote_needs_both_halves() {
        let j = JointConfig::new(cfg(&[1, 2, 3]), cfg(&[3, 4, 5]));
        let votes = |pairs: &[(u64, bool)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(j.vote_result(&votes(&[(1, true), (2, true)])), VoteResult::Pending);
        assert_eq!(
            j.vote_result(&votes(&[(1, true), (2, true), (4, false), (5, false)])),
            VoteResult::Lost
        );
        assert_eq!(j.vote_result(&votes(&[(1, true), (3, true), (4, true)])), VoteResult::Won);
    }

    proptest! {
        #[test]
        fn joint_is_symmetric_and_matches_halves(
            a in proptest::collection::btree_set(1u64..12, 0..7),
            b in proptest::collection::btree_set(1u64..12, 0..7),
            acked in proptest::collection::btree_map(1u64..12, 0u64..9, 0..12),
            votes in proptest::collection::btree_map(1u64..12, any::<bool>(), 0..12),
        ) {
            let (ca, cb): (MajorityConfig, MajorityConfig) =
                (a.iter().copied().collect(), b.iter().copied().collect());
            let ab = JointConfig::new(ca.clone(), cb.clone());
            let ba = JointConfig::new(cb.clone(), ca.clone());
            prop_assert_eq!(ab.committed_index(&acked), ba.committed_index(&acked));
            prop_assert_eq!(
                ab.committed_index(&acked),
                ca.committed_index(&acked).min(cb.committed_index(&acked))
            );
            prop_assert_eq!(ab.vote_result(&votes), ba.vote_result(&votes));
            // A majority joint with itself, or with nothing, is just itself.
            let self_joint = JointConfig::new(ca.clone(), ca.clone());
            prop_assert_eq!(self_joint.committed_index(&acked), ca.committed_index(&acked));
            prop_assert_eq!(self_joint.vote_result(&votes), ca.vote_result(&votes));
            let zero_joint = JointConfig::new(ca.clone(), MajorityConfig::new());
            prop_assert_eq!(zero_joint.committed_index(&acked), ca.committed_index(&acked));
            let union: Vec<u64> = a.union(&b).copied().collect();
            prop_assert_eq!(ab.ids().collect::<Vec<_>>(), union);
        }
    }
}
