//! Membership changes (etcd's `confchange` package): applying
//! [`ConfChangeSingle`] operations to a tracker's configuration, with the
//! simple protocol (one voter at a time) or joint consensus.
//!
//! Everything here is pure: a [`Changer`] copies the tracker's configuration
//! and progress map, applies the operations to the copy, checks the result's
//! invariants and returns it; the caller installs it
//! ([`ProgressTracker::install`]) or drops it. An invalid change therefore
//! never touches the active configuration.
//!
//! The operations come from proposals and from the log, so every invalid
//! request is an error, never a panic.

mod restore;

pub(crate) use restore::restore;

use crate::quorum::MajorityConfig;
use crate::raftpb::{ConfChangeSingle, ConfChangeType};
use crate::tracker::{Inflights, Progress, ProgressMap, ProgressTracker, TrackerConfig};

/// Why a configuration change was refused. The messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfChangeError {
    /// Entering a joint configuration while one is active.
    #[error("config is already joint")]
    AlreadyJoint,
    /// Entering a joint configuration from one without voters.
    #[error("can't make a zero-voter config joint")]
    ZeroVoterJoint,
    /// Leaving a joint configuration when none is active.
    #[error("can't leave a non-joint config")]
    NotJoint,
    /// A simple change (no joint consensus) while a joint configuration is
    /// active.
    #[error("can't apply simple config change in joint config")]
    SimpleInJoint,
    /// A simple change (no joint consensus) of more than one voter.
    #[error("more than one voter changed without entering joint config")]
    TooManyVoterChanges,
    /// The change would leave no voter.
    #[error("removed all voters")]
    RemovedAllVoters,
    /// A change would make a member of an id reserved for the local storage
    /// threads (`LOCAL_APPEND_THREAD`, `LOCAL_APPLY_THREAD`): the leader
    /// would address entries to them.
    #[error("{0:x} is a reserved id and cannot be a member")]
    ReservedId(u64),
    /// A change type outside [`ConfChangeType`].
    #[error("unexpected conf type {0}")]
    UnexpectedConfType(i32),
    /// Invariant: every voter and learner has a progress.
    #[error("no progress for {0}")]
    NoProgress(u64),
    /// Invariant: a staged learner is an outgoing voter.
    #[error("{0} is in LearnersNext, but not Voters[1]")]
    LearnerNextNotOutgoingVoter(u64),
    /// Invariant: a staged learner is not a learner yet.
    #[error("{0} is in LearnersNext, but is already marked as learner")]
    LearnerNextAlreadyLearner(u64),
    /// Invariant: learners and outgoing voters are disjoint.
    #[error("{0} is in Learners and Voters[1]")]
    LearnerIsOutgoingVoter(u64),
    /// Invariant: learners and incoming voters are disjoint.
    #[error("{0} is in Learners and Voters[0]")]
    LearnerIsIncomingVoter(u64),
    /// Invariant: a learner's progress says so.
    #[error("{0} is in Learners, but is not marked as learner")]
    LearnerNotMarked(u64),
    /// Invariant: only a joint configuration stages learners.
    #[error("cfg.LearnersNext must be nil when not joint")]
    LearnersNextNotJoint,
    /// Invariant: only a joint configuration is left automatically.
    #[error("AutoLeave must be false when not joint")]
    AutoLeaveNotJoint,
}

/// Computes configuration changes against a tracker. Nodes added get a
/// progress that probes from `last_index` (the leader's last log index).
#[derive(Clone, Copy, Debug)]
pub struct Changer<'a> {
    /// The tracker whose configuration is changed (only read).
    pub tracker: &'a ProgressTracker,
    /// The last index of the log, where new nodes start probing.
    pub last_index: u64,
}

impl<'a> Changer<'a> {
    /// A changer of `tracker`'s configuration.
    pub fn new(tracker: &'a ProgressTracker, last_index: u64) -> Changer<'a> {
        Changer { tracker, last_index }
    }

    /// Enters a joint configuration: the current voters become the outgoing
    /// half (`(1 2 3)&&()` to `(1 2 3)&&(1 2 3)`), then `ccs` are applied to
    /// the incoming half (C_{new,old} in the Raft thesis, section 4.3).
    /// `auto_leave` says whether Raft leaves it on its own.
    pub fn enter_joint(
        &self,
        auto_leave: bool,
        ccs: &[ConfChangeSingle],
    ) -> Result<(TrackerConfig, ProgressMap), ConfChangeError> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        if cfg.voters.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        if cfg.voters.incoming.is_empty() {
            // Adding voters to an empty configuration is allowed (that is how
            // a group is bootstrapped), but it cannot be made joint.
            return Err(ConfChangeError::ZeroVoterJoint);
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply(&mut cfg, &mut prs, ccs)?;
        cfg.auto_leave = auto_leave;
        check_and_return(cfg, prs)
    }

    /// Leaves a joint configuration: the outgoing half is dropped (C_new),
    /// staged learners become learners, and nodes that were only outgoing
    /// voters stop being tracked.
    pub fn leave_joint(&self) -> Result<(TrackerConfig, ProgressMap), ConfChangeError> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        if !cfg.voters.is_joint() {
            return Err(ConfChangeError::NotJoint);
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            cfg.learners.insert(id);
            if let Some(pr) = prs.get_mut(id) {
                pr.is_learner = true;
            }
        }
        for id in cfg.voters.outgoing.iter() {
            if !cfg.voters.incoming.contains(id) && !cfg.learners.contains(&id) {
                prs.remove(id);
            }
        }
        cfg.voters.outgoing = MajorityConfig::new();
        cfg.auto_leave = false;
        check_and_return(cfg, prs)
    }

    /// Applies `ccs` without joint consensus. Together they may change at
    /// most one voter (adding, removing, promoting or demoting it); learners
    /// may change freely.
    pub fn simple(
        &self,
        ccs: &[ConfChangeSingle],
    ) -> Result<(TrackerConfig, ProgressMap), ConfChangeError> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        if cfg.voters.is_joint() {
            return Err(ConfChangeError::SimpleInJoint);
        }
        self.apply(&mut cfg, &mut prs, ccs)?;
        if symmetric_difference(&self.tracker.config.voters.incoming, &cfg.voters.incoming) > 1 {
            return Err(ConfChangeError::TooManyVoterChanges);
        }
        check_and_return(cfg, prs)
    }

    /// Applies the operations to the incoming half (the outgoing half, if
    /// any, keeps the old voters).
    fn apply(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut ProgressMap,
        ccs: &[ConfChangeSingle],
    ) -> Result<(), ConfChangeError> {
        for cc in ccs {
            if cc.node_id == 0 {
                // etcd zeroes the node id of a change it decides (outside
                // Raft) not to apply; such changes are ignored.
                continue;
            }
            let adds = matches!(
                ConfChangeType::try_from(cc.change_type),
                Ok(ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode)
            );
            if adds && crate::util::is_local_msg_target(cc.node_id) {
                return Err(ConfChangeError::ReservedId(cc.node_id));
            }
            match ConfChangeType::try_from(cc.change_type) {
                Ok(ConfChangeType::ConfChangeAddNode) => self.make_voter(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeAddLearnerNode) => {
                    self.make_learner(cfg, prs, cc.node_id)
                }
                Ok(ConfChangeType::ConfChangeRemoveNode) => remove(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeUpdateNode) => {}
                Err(_) => return Err(ConfChangeError::UnexpectedConfType(cc.change_type)),
            }
        }
        if cfg.voters.incoming.is_empty() {
            return Err(ConfChangeError::RemovedAllVoters);
        }
        Ok(())
    }

    /// Adds `id` as an incoming voter, or promotes it from learner.
    fn make_voter(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        let Some(pr) = prs.get_mut(id) else {
            self.init_progress(cfg, prs, id, false);
            return;
        };
        pr.is_learner = false;
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        cfg.voters.incoming.insert(id);
    }

    /// Adds `id` as a learner or demotes it from voter. A node that is still
    /// an outgoing voter cannot be a learner at the same time, so it is
    /// staged in `learners_next` until the joint configuration is left.
    fn make_learner(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        let Some(pr) = prs.get_mut(id) else {
            self.init_progress(cfg, prs, id, true);
            return;
        };
        if pr.is_learner {
            return;
        }
        // Remove it as a voter (and from staging), keeping its progress.
        cfg.voters.incoming.remove(id);
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        if cfg.voters.outgoing.contains(id) {
            cfg.learners_next.insert(id);
        } else {
            pr.is_learner = true;
            cfg.learners.insert(id);
        }
    }

    /// Tracks a new voter or learner, probing from the last index.
    fn init_progress(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut ProgressMap,
        id: u64,
        learner: bool,
    ) {
        if learner {
            cfg.learners.insert(id);
        } else {
            cfg.voters.incoming.insert(id);
        }
        let inflights = Inflights::new(self.tracker.max_inflight, self.tracker.max_inflight_bytes);
        // Probing from the last index is optimistic (a new node usually has
        // no log), but right if the application seeded it with a snapshot.
        let mut pr = Progress::new(self.last_index.max(1), inflights);
        pr.is_learner = learner;
        // A new node counts as active, so that a quorum check right after
        // adding it does not make the leader step down.
        pr.recent_active = true;
        prs.insert(id, pr);
    }

    /// Copies the tracker's configuration and progress, checking first that
    /// they are valid.
    fn check_and_copy(&self) -> Result<(TrackerConfig, ProgressMap), ConfChangeError> {
        check_and_return(self.tracker.config.clone(), self.tracker.progress.clone())
    }
}

/// Removes `id` as an incoming voter or learner. Its progress is kept while
/// it is still an outgoing voter.
fn remove(cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
    if !prs.contains(id) {
        return;
    }
    cfg.voters.incoming.remove(id);
    cfg.learners.remove(&id);
    cfg.learners_next.remove(&id);
    if !cfg.voters.outgoing.contains(id) {
        prs.remove(id);
    }
}

/// Returns the pair if it satisfies every invariant.
fn check_and_return(
    cfg: TrackerConfig,
    prs: ProgressMap,
) -> Result<(TrackerConfig, ProgressMap), ConfChangeError> {
    check_invariants(&cfg, &prs)?;
    Ok((cfg, prs))
}

/// Checks that the configuration and progress map fit together (see
/// [`TrackerConfig`] for the rules). The empty configuration is valid: it is
/// where bootstrapping starts.
fn check_invariants(cfg: &TrackerConfig, prs: &ProgressMap) -> Result<(), ConfChangeError> {
    let tracked = cfg.voters.ids().chain(cfg.learners.iter().copied());
    for id in tracked.chain(cfg.learners_next.iter().copied()) {
        if !prs.contains(id) {
            return Err(ConfChangeError::NoProgress(id));
        }
    }
    for &id in &cfg.learners_next {
        if !cfg.voters.outgoing.contains(id) {
            return Err(ConfChangeError::LearnerNextNotOutgoingVoter(id));
        }
        if prs.get(id).is_some_and(|pr| pr.is_learner) {
            return Err(ConfChangeError::LearnerNextAlreadyLearner(id));
        }
    }
    for &id in &cfg.learners {
        if cfg.voters.outgoing.contains(id) {
            return Err(ConfChangeError::LearnerIsOutgoingVoter(id));
        }
        if cfg.voters.incoming.contains(id) {
            return Err(ConfChangeError::LearnerIsIncomingVoter(id));
        }
        if prs.get(id).is_some_and(|pr| !pr.is_learner) {
            return Err(ConfChangeError::LearnerNotMarked(id));
        }
    }
    if !cfg.voters.is_joint() {
        if !cfg.learners_next.is_empty() {
            return Err(ConfChangeError::LearnersNextNotJoint);
        }
        if cfg.auto_leave {
            return Err(ConfChangeError::AutoLeaveNotJoint);
        }
    }
    Ok(())
}

/// The number of ids in exactly one of the two sets.
fn symmetric_difference(a: &MajorityConfig, b: &MajorityConfig) -> usize {
    let only_a = a.iter().filter(|&id| !b.contains(id)).count();
    let only_b = b.iter().filter(|&id| !a.contains(id)).count();
    only_a + only_b
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::quorum::JointConfig;
    use crate::raftpb::conf_changes_from_string;

    fn ccs(s: &str) -> Vec<ConfChangeSingle> {
        conf_changes_from_string(s).unwrap()
    }

    /// Runs `f` against `trk` and installs the result.
    fn step(
        trk: &mut ProgressTracker,
        last_index: u64,
        f: impl FnOnce(&Changer<'_>) -> Result<(TrackerConfig, ProgressMap), ConfChangeError>,
    ) -> Result<(), ConfChangeError> {
        let (cfg, prs) = f(&Changer::new(trk, last_index))?;
        trk.install(cfg, prs);
        Ok(())
    }

    fn show(trk: &ProgressTracker) -> String {
        format!("{}\n{}", trk.config(), trk.progress())
    }

    #[test]
    fn reserved_ids_never_become_members() {
        let mut trk = ProgressTracker::new(10, 0);
        step(&mut trk, 1, |c| c.simple(&ccs("v1"))).unwrap();
        let before = show(&trk);
        for id in [crate::util::LOCAL_APPEND_THREAD, crate::util::LOCAL_APPLY_THREAD] {
            for change in
                [ConfChangeType::ConfChangeAddNode, ConfChangeType::ConfChangeAddLearnerNode]
            {
                let cc = ConfChangeSingle { change_type: change as i32, node_id: id };
                let err = Changer::new(&trk, 2).simple(&[cc]).unwrap_err();
                assert_eq!(err, ConfChangeError::ReservedId(id));
            }
        }
        assert_eq!(show(&trk), before);
    }

    #[test]
    fn errors_leave_the_tracker_alone() {
        let mut trk = ProgressTracker::new(10, 0);
        let err = step(&mut trk, 0, |c| c.simple(&ccs("l1")));
        assert_eq!(err, Err(ConfChangeError::RemovedAllVoters));
        assert_eq!(show(&trk), "voters=()\n");
        step(&mut trk, 1, |c| c.simple(&ccs("v1"))).unwrap();
        let before = trk.clone();
        for (s, want) in [
            ("v2 v3", "more than one voter changed without entering joint config"),
            ("r1", "removed all voters"),
        ] {
            let err = Changer::new(&trk, 2).simple(&ccs(s)).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        assert_eq!(
            Changer::new(&trk, 2).leave_joint().unwrap_err().to_string(),
            "can't leave a non-joint config"
        );
        assert_eq!(trk, before);
    }

    #[test]
    fn unknown_change_type_is_an_error() {
        let mut trk = ProgressTracker::new(10, 0);
        step(&mut trk, 1, |c| c.simple(&ccs("v1"))).unwrap();
        let bad = ConfChangeSingle { change_type: 9, node_id: 2 };
        let err = Changer::new(&trk, 2).simple(&[bad]).unwrap_err();
        assert_eq!(err.to_string(), "unexpected conf type 9");
        // A zeroed node id is skipped before the type is looked at.
        let ignored = ConfChangeSingle { change_type: 9, node_id: 0 };
        assert!(Changer::new(&trk, 2).simple(&[ignored]).is_ok());
    }

    #[test]
    fn joint_round_trip_with_demotion() {
        let mut trk = ProgressTracker::new(10, 0);
        step(&mut trk, 1, |c| c.simple(&ccs("v1"))).unwrap();
        step(&mut trk, 2, |c| c.simple(&ccs("v2"))).unwrap();
        step(&mut trk, 3, |c| c.simple(&ccs("v3"))).unwrap();
        step(&mut trk, 4, |c| c.enter_joint(true, &ccs("l3 v4"))).unwrap();
        assert_eq!(
            show(&trk),
            "voters=(1 2 4)&&(1 2 3) learners_next=(3) autoleave\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=2\n\
             3: StateProbe match=0 next=3\n\
             4: StateProbe match=0 next=4\n"
        );
        assert_eq!(
            Changer::new(&trk, 5).enter_joint(false, &[]).unwrap_err(),
            ConfChangeError::AlreadyJoint
        );
        assert_eq!(Changer::new(&trk, 5).simple(&[]).unwrap_err(), ConfChangeError::SimpleInJoint);
        step(&mut trk, 5, |c| c.leave_joint()).unwrap();
        assert_eq!(
            show(&trk),
            "voters=(1 2 4) learners=(3)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=2\n\
             3: StateProbe match=0 next=3 learner\n\
             4: StateProbe match=0 next=4\n"
        );
    }

    #[test]
    fn zero_voter_config_cannot_be_joint() {
        let trk = ProgressTracker::new(10, 0);
        let err = Changer::new(&trk, 0).enter_joint(false, &ccs("v1")).unwrap_err();
        assert_eq!(err.to_string(), "can't make a zero-voter config joint");
    }

    /// A tracker whose (invalid) configuration the changer must refuse.
    fn broken(mutate: impl FnOnce(&mut TrackerConfig, &mut ProgressMap)) -> ConfChangeError {
        let mut trk = ProgressTracker::new(10, 0);
        step(&mut trk, 1, |c| c.simple(&ccs("v1"))).unwrap();
        step(&mut trk, 1, |c| c.simple(&ccs("l2"))).unwrap();
        let (mut cfg, mut prs) = (trk.config().clone(), trk.progress().clone());
        mutate(&mut cfg, &mut prs);
        trk.install(cfg, prs);
        Changer::new(&trk, 1).simple(&[]).unwrap_err()
    }

    #[test]
    fn invariant_violations_are_reported_with_etcd_texts() {
        type Mutation = Box<dyn FnOnce(&mut TrackerConfig, &mut ProgressMap)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|_, prs| drop(prs.remove(1))), "no progress for 1"),
            (Box::new(|_, prs| drop(prs.remove(2))), "no progress for 2"),
            (
                Box::new(|cfg, _| {
                    cfg.learners_next.insert(1);
                }),
                "1 is in LearnersNext, but not Voters[1]",
            ),
            (
                Box::new(|cfg, _| {
                    cfg.voters.outgoing.insert(2);
                    cfg.learners.remove(&2);
                    cfg.learners_next.insert(2);
                }),
                "2 is in LearnersNext, but is already marked as learner",
            ),
            (
                Box::new(|cfg, _| {
                    cfg.voters.outgoing.insert(2);
                }),
                "2 is in Learners and Voters[1]",
            ),
            (
                Box::new(|cfg, _| {
                    cfg.voters.incoming.insert(2);
                }),
                "2 is in Learners and Voters[0]",
            ),
            (
                Box::new(|_, prs| {
                    if let Some(pr) = prs.get_mut(2) {
                        pr.is_learner = false;
                    }
                }),
                "2 is in Learners, but is not marked as learner",
            ),
            (Box::new(|cfg, _| cfg.auto_leave = true), "AutoLeave must be false when not joint"),
        ];
        for (mutate, want) in cases {
            assert_eq!(broken(mutate).to_string(), want);
        }
        // Staged learners outside a joint configuration: build by hand, as
        // the other checks would fire first otherwise.
        let cfg = TrackerConfig {
            voters: JointConfig::new([1].into_iter().collect(), MajorityConfig::new()),
            learners_next: BTreeSet::from([1]),
            ..TrackerConfig::default()
        };
        let mut prs = ProgressMap::new();
        prs.insert(1, Progress::new(1, Inflights::new(1, 0)));
        // 1 is not an outgoing voter, which is checked first.
        assert_eq!(
            check_invariants(&cfg, &prs),
            Err(ConfChangeError::LearnerNextNotOutgoingVoter(1))
        );
        assert_eq!(
            ConfChangeError::LearnersNextNotJoint.to_string(),
            "cfg.LearnersNext must be nil when not joint"
        );
    }

    /// Operations on node ids 2..=10 (1 is the permanent voter), any type.
    fn changes() -> impl Strategy<Value = Vec<ConfChangeSingle>> {
        proptest::collection::vec((0i32..4, 2u64..=10), 1..=9).prop_map(|v| {
            v.into_iter()
                .map(|(change_type, node_id)| ConfChangeSingle { change_type, node_id })
                .collect()
        })
    }

    /// The starting voters: 1, and up to five adds of ids 1..=5.
    fn setup() -> impl Strategy<Value = Vec<ConfChangeSingle>> {
        proptest::collection::vec(1u64..=5, 0..=5).prop_map(|ids| {
            let add = ConfChangeType::ConfChangeAddNode as i32;
            std::iter::once(1)
                .chain(ids)
                .map(|node_id| ConfChangeSingle { change_type: add, node_id })
                .collect()
        })
    }

    fn run_simple(
        trk: &mut ProgressTracker,
        ccs: &[ConfChangeSingle],
    ) -> Result<(), ConfChangeError> {
        for cc in ccs {
            step(trk, 10, |c| c.simple(std::slice::from_ref(cc)))?;
        }
        Ok(())
    }

    proptest! {
        /// One change at a time and one joint change arrive at the same
        /// configuration (etcd's TestConfChangeQuick).
        #[test]
        fn simple_and_joint_agree(setup in setup(), ccs in changes()) {
            let mut base = ProgressTracker::new(10, 0);
            run_simple(&mut base, &setup).unwrap();

            let mut by_simple = base.clone();
            run_simple(&mut by_simple, &ccs).unwrap();

            let changer = Changer::new(&base, 10);
            let (cfg, prs) = changer.enter_joint(false, &ccs).unwrap();
            let (mut cfg_auto, prs_auto) = changer.enter_joint(true, &ccs).unwrap();
            prop_assert!(cfg_auto.auto_leave);
            cfg_auto.auto_leave = false;
            prop_assert_eq!(&cfg, &cfg_auto);
            prop_assert_eq!(&prs, &prs_auto);

            let mut joint = base.clone();
            joint.install(cfg, prs);
            let (cfg, prs) = Changer::new(&joint, 10).leave_joint().unwrap();
            let mut auto = base.clone();
            auto.install(cfg_auto, prs_auto);
            let left_auto = Changer::new(&auto, 10).leave_joint().unwrap();
            prop_assert_eq!(left_auto, (cfg.clone(), prs.clone()));
            joint.install(cfg, prs);

            prop_assert_eq!(joint.config(), by_simple.config());
            prop_assert_eq!(joint.progress(), by_simple.progress());
        }
    }
}
