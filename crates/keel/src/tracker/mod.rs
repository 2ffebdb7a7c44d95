//! What a leader tracks about its peers (etcd's `tracker` package): the
//! active membership configuration, each node's replication [`Progress`]
//! with its [`Inflights`] window, and the votes of an election.
//!
//! Nodes are always visited in id order, so every output that lists them is
//! deterministic.

mod inflights;
mod progress;

pub use inflights::Inflights;
pub use progress::{Progress, ProgressMap, ProgressState};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::quorum::{JointConfig, VoteLookup, VoteResult};
use crate::raftpb::ConfState;

/// The membership configuration: the (possibly joint) voters and the
/// learners. Built only by the `confchange` module, which checks its
/// invariants:
/// - learners and voters (of either half) are disjoint;
/// - `learners_next` holds voters of the outgoing half that become learners
///   when the joint configuration is left (a demotion can't make them
///   learners at once without breaking the first rule);
/// - outside a joint configuration, `learners_next` is empty and
///   `auto_leave` false.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    pub(crate) voters: JointConfig,
    pub(crate) auto_leave: bool,
    pub(crate) learners: BTreeSet<u64>,
    pub(crate) learners_next: BTreeSet<u64>,
}

impl TrackerConfig {
    /// The voters: the incoming half, and while joint the outgoing one.
    pub fn voters(&self) -> &JointConfig {
        &self.voters
    }

    /// Whether a joint configuration is left automatically by Raft (else
    /// when the application proposes an empty change).
    pub fn auto_leave(&self) -> bool {
        self.auto_leave
    }

    /// The learners, in id order.
    pub fn learners(&self) -> &BTreeSet<u64> {
        &self.learners
    }

    /// The voters of the outgoing half that become learners when the joint
    /// configuration is left.
    pub fn learners_next(&self) -> &BTreeSet<u64> {
        &self.learners_next
    }
}

/// etcd's form: `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(3)
/// autoleave`, the optional parts only when present.
impl fmt::Display for TrackerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", self.voters)?;
        if !self.learners.is_empty() {
            f.write_str(" learners=")?;
            write_id_set(f, &self.learners)?;
        }
        if !self.learners_next.is_empty() {
            f.write_str(" learners_next=")?;
            write_id_set(f, &self.learners_next)?;
        }
        if self.auto_leave {
            f.write_str(" autoleave")?;
        }
        Ok(())
    }
}

/// Writes `(1 2 3)`, as a [`crate::quorum::MajorityConfig`] prints.
fn write_id_set(f: &mut fmt::Formatter<'_>, ids: &BTreeSet<u64>) -> fmt::Result {
    f.write_str("(")?;
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{id}")?;
    }
    f.write_str(")")
}

/// The active configuration, the progress of every node in it, and the
/// votes of the current election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressTracker {
    pub(crate) config: TrackerConfig,
    pub(crate) progress: ProgressMap,
    pub(crate) votes: BTreeMap<u64, bool>,
    pub(crate) max_inflight: usize,
    pub(crate) max_inflight_bytes: u64,
}

impl ProgressTracker {
    /// An empty tracker whose nodes will get inflight windows of
    /// `max_inflight` messages and `max_inflight_bytes` bytes (0: no byte
    /// limit).
    pub fn new(max_inflight: usize, max_inflight_bytes: u64) -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: ProgressMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
            max_inflight_bytes,
        }
    }

    /// The active configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The progress of every node of the configuration.
    pub fn progress(&self) -> &ProgressMap {
        &self.progress
    }

    /// The votes recorded in the current election.
    pub fn votes(&self) -> &BTreeMap<u64, bool> {
        &self.votes
    }

    /// The inflight window size, in messages, given to new nodes.
    pub fn max_inflight(&self) -> usize {
        self.max_inflight
    }

    /// The inflight window size, in bytes, given to new nodes (0: none).
    pub fn max_inflight_bytes(&self) -> u64 {
        self.max_inflight_bytes
    }

    /// Installs a configuration and progress map produced by a
    /// [`Changer`](crate::confchange::Changer) (or by the conf-change
    /// module's `restore`), which checked that they fit together.
    pub fn install(&mut self, config: TrackerConfig, progress: ProgressMap) {
        self.config = config;
        self.progress = progress;
    }

    /// The active configuration as a [`ConfState`], ids sorted.
    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.config.voters.incoming.ids().to_vec(),
            learners: self.config.learners.iter().copied().collect(),
            voters_outgoing: self.config.voters.outgoing.ids().to_vec(),
            learners_next: self.config.learners_next.iter().copied().collect(),
            auto_leave: self.config.auto_leave,
        }
    }

    /// Whether there is exactly one voter (the leader itself) and no joint
    /// change in progress.
    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && self.config.voters.outgoing.is_empty()
    }

    /// The highest log index the voters have acknowledged by quorum.
    pub fn committed(&self) -> u64 {
        self.config.voters.committed_index(&self.progress)
    }

    /// Calls `f` on every node's progress, in id order.
    pub fn visit(&mut self, mut f: impl FnMut(u64, &mut Progress)) {
        for (&id, pr) in self.progress.iter_mut() {
            f(id, pr);
        }
    }

    /// Whether a quorum of voters was recently active (the leader counts
    /// itself active).
    pub fn quorum_active(&self) -> bool {
        self.config.voters.vote_result(&RecentlyActive(&self.progress)) == VoteResult::Won
    }

    /// The voters of both halves, sorted.
    pub fn voter_nodes(&self) -> Vec<u64> {
        self.config.voters.ids().collect()
    }

    /// The learners, sorted.
    pub fn learner_nodes(&self) -> Vec<u64> {
        self.config.learners.iter().copied().collect()
    }

    /// Forgets the votes of the last election.
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records that `id` granted (or rejected) its vote; only its first
    /// answer in an election counts.
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// The number of granted and rejected votes among the tracked
    /// non-learners, and the outcome of the election.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for (id, pr) in &self.progress {
            if pr.is_learner {
                continue;
            }
            match self.votes.get(id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        (granted, rejected, self.config.voters.vote_result(&self.votes))
    }
}

/// Votes "yes" for every voter heard from recently.
struct RecentlyActive<'a>(&'a ProgressMap);

impl VoteLookup for RecentlyActive<'_> {
    fn vote(&self, voter_id: u64) -> Option<bool> {
        self.0.get(voter_id).filter(|pr| !pr.is_learner).map(|pr| pr.recent_active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::MajorityConfig;

    /// A tracker with the given voters (incoming, outgoing) and learners,
    /// every node at `next = 1`.
    fn tracker(incoming: &[u64], outgoing: &[u64], learners: &[u64]) -> ProgressTracker {
        let mut trk = ProgressTracker::new(10, 0);
        let voters = JointConfig::new(
            incoming.iter().copied().collect::<MajorityConfig>(),
            outgoing.iter().copied().collect::<MajorityConfig>(),
        );
        let mut progress = ProgressMap::new();
        for id in voters.ids().chain(learners.iter().copied()) {
            let mut pr = Progress::new(1, Inflights::new(10, 0));
            pr.is_learner = learners.contains(&id);
            progress.insert(id, pr);
        }
        let config = TrackerConfig {
            voters,
            auto_leave: false,
            learners: learners.iter().copied().collect(),
            learners_next: BTreeSet::new(),
        };
        trk.install(config, progress);
        trk
    }

    #[test]
    fn config_display() {
        let mut cfg = TrackerConfig::default();
        assert_eq!(cfg.to_string(), "voters=()");
        cfg.voters = JointConfig::new([1, 2, 3].into_iter().collect(), [1].into_iter().collect());
        cfg.learners = [4, 9].into_iter().collect();
        cfg.learners_next = [3].into_iter().collect();
        cfg.auto_leave = true;
        assert_eq!(
            cfg.to_string(),
            "voters=(1 2 3)&&(1) learners=(4 9) learners_next=(3) autoleave"
        );
        let copy = cfg.clone();
        assert_eq!(copy, cfg);
        assert!(copy.auto_leave() && copy.voters().is_joint());
        assert_eq!(copy.learners().len(), 2);
        assert_eq!(copy.learners_next().len(), 1);
    }

    #[test]
    fn conf_state_and_node_lists() {
        let mut trk = tracker(&[3, 1, 2], &[2, 5], &[7, 6]);
        trk.config.learners_next.insert(5);
        let cs = trk.conf_state();
        assert_eq!(cs.voters, vec![1, 2, 3]);
        assert_eq!(cs.voters_outgoing, vec![2, 5]);
        assert_eq!(cs.learners, vec![6, 7]);
        assert_eq!(cs.learners_next, vec![5]);
        assert!(!cs.auto_leave);
        assert_eq!(trk.voter_nodes(), vec![1, 2, 3, 5]);
        assert_eq!(trk.learner_nodes(), vec![6, 7]);
        assert!(!trk.is_singleton());
        assert!(tracker(&[1], &[], &[2]).is_singleton());
        assert!(!tracker(&[1], &[1], &[]).is_singleton());
        assert_eq!((trk.max_inflight(), trk.max_inflight_bytes()), (10, 0));
        assert_eq!(trk.config().voters().len(), 4);
    }

    #[test]
    fn committed_uses_voters_match() {
        let mut trk = tracker(&[1, 2, 3], &[], &[4]);
        let matches = [(1, 10), (2, 8), (3, 3), (4, 100)];
        trk.visit(|id, pr| pr.matched = matches.iter().find(|m| m.0 == id).map_or(0, |m| m.1));
        // The learner's 100 does not count.
        assert_eq!(trk.committed(), 8);
        // Joint: the outgoing half (2 3) has not committed past 3.
        let mut trk = tracker(&[1, 2], &[2, 3], &[]);
        trk.visit(|id, pr| pr.matched = [0, 10, 8, 3][id as usize]);
        assert_eq!(trk.committed(), 3);
    }

    #[test]
    fn visit_in_id_order() {
        let mut trk = tracker(&[9, 1, 5], &[], &[3]);
        let mut seen = Vec::new();
        trk.visit(|id, _| seen.push(id));
        assert_eq!(seen, vec![1, 3, 5, 9]);
    }

    #[test]
    fn quorum_active() {
        let mut trk = tracker(&[1, 2, 3], &[], &[4, 5]);
        // Active learners do not make a quorum.
        trk.visit(|id, pr| pr.recent_active = id == 1 || id >= 4);
        assert!(!trk.quorum_active());
        trk.visit(|id, pr| pr.recent_active = id <= 2);
        assert!(trk.quorum_active());
    }

    #[test]
    fn votes_tally() {
        let mut trk = tracker(&[1, 2, 3, 4, 5], &[], &[6]);
        trk.record_vote(1, true);
        trk.record_vote(2, false);
        // Only the first answer counts.
        trk.record_vote(2, true);
        trk.record_vote(6, true);
        // A vote from a node no longer tracked is recorded but not counted.
        trk.record_vote(9, true);
        assert_eq!(trk.tally_votes(), (1, 1, VoteResult::Pending));
        trk.record_vote(3, true);
        trk.record_vote(4, true);
        assert_eq!(trk.tally_votes(), (3, 1, VoteResult::Won));
        assert_eq!(trk.votes().get(&2), Some(&false));
        trk.reset_votes();
        assert!(trk.votes().is_empty());
        trk.record_vote(1, false);
        trk.record_vote(2, false);
        trk.record_vote(3, false);
        assert_eq!(trk.tally_votes(), (0, 3, VoteResult::Lost));
    }
}
