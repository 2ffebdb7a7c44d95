//! Rebuilding a tracker configuration from a [`ConfState`] (etcd's
//! `confchange.Restore`), as a node does when it starts or applies a
//! snapshot.

use super::{Changer, ConfChangeError};
use crate::raftpb::{ConfChangeSingle, ConfChangeType, ConfState};
use crate::tracker::{ProgressMap, ProgressTracker, TrackerConfig};

/// Builds the configuration `cs` describes by replaying changes from the
/// changer's (empty) configuration: so a restored configuration passes the
/// same checks as any other. New nodes probe from the changer's last index.
///
/// For a joint `cs` the outgoing voters are added one by one first, then a
/// joint change removes them all and adds the incoming voters, learners and
/// staged learners. For example `voters=(1 2 3) learners=(5)
/// voters_outgoing=(1 2 4 6) learners_next=(4)` is replayed as `v1`, `v2`,
/// `v4`, `v6`, then joint `r1 r2 r4 r6 v1 v2 v3 l5 l4`.
///
/// Invalid input (a node both voter and learner, say) is an error.
pub(crate) fn restore(
    changer: &Changer<'_>,
    cs: &ConfState,
) -> Result<(TrackerConfig, ProgressMap), ConfChangeError> {
    let (outgoing, incoming) = to_conf_change_singles(cs);
    let mut tracker = changer.tracker.clone();
    let step = |tracker: &mut ProgressTracker, op: Step<'_>| -> Result<(), ConfChangeError> {
        let changer = Changer::new(tracker, changer.last_index);
        let (cfg, prs) = match op {
            Step::Simple(cc) => changer.simple(std::slice::from_ref(cc))?,
            Step::EnterJoint(ccs) => changer.enter_joint(cs.auto_leave, ccs)?,
        };
        tracker.install(cfg, prs);
        Ok(())
    };
    if outgoing.is_empty() {
        for cc in &incoming {
            step(&mut tracker, Step::Simple(cc))?;
        }
    } else {
        for cc in &outgoing {
            step(&mut tracker, Step::Simple(cc))?;
        }
        step(&mut tracker, Step::EnterJoint(&incoming))?;
    }
    Ok((tracker.config, tracker.progress))
}

/// One change of a restore sequence.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// A simple change of one operation.
    Simple(&'a ConfChangeSingle),
    /// Entering the joint configuration with these operations.
    EnterJoint(&'a [ConfChangeSingle]),
}

/// The changes that build the outgoing configuration from nothing, and the
/// changes that then turn it into `cs`.
fn to_conf_change_singles(cs: &ConfState) -> (Vec<ConfChangeSingle>, Vec<ConfChangeSingle>) {
    let single = |change_type: ConfChangeType, node_id: u64| ConfChangeSingle {
        change_type: change_type as i32,
        node_id,
    };
    let outgoing = cs
        .voters_outgoing
        .iter()
        .map(|&id| single(ConfChangeType::ConfChangeAddNode, id))
        .collect();
    let incoming = cs
        .voters_outgoing
        .iter()
        .map(|&id| single(ConfChangeType::ConfChangeRemoveNode, id))
        .chain(cs.voters.iter().map(|&id| single(ConfChangeType::ConfChangeAddNode, id)))
        .chain(cs.learners.iter().map(|&id| single(ConfChangeType::ConfChangeAddLearnerNode, id)))
        .chain(
            cs.learners_next.iter().map(|&id| single(ConfChangeType::ConfChangeAddLearnerNode, id)),
        )
        .collect();
    (outgoing, incoming)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Restores `cs` into a fresh tracker and returns the tracker's view of
    /// it.
    fn round_trip(cs: &ConfState) -> ConfState {
        let empty = ProgressTracker::new(20, 0);
        let (cfg, prs) = restore(&Changer::new(&empty, 10), cs).unwrap();
        let mut trk = ProgressTracker::new(20, 0);
        trk.install(cfg, prs);
        trk.conf_state()
    }

    fn sorted(cs: &ConfState) -> ConfState {
        let sort = |v: &Vec<u64>| {
            let mut v = v.clone();
            v.sort_unstable();
            v
        };
        ConfState {
            voters: sort(&cs.voters),
            learners: sort(&cs.learners),
            voters_outgoing: sort(&cs.voters_outgoing),
            learners_next: sort(&cs.learners_next),
            auto_leave: cs.auto_leave,
        }
    }

    #[test]
    fn restore_examples() {
        let cases = [
            ConfState::default(),
            ConfState { voters: vec![1, 2, 3], ..ConfState::default() },
            ConfState { voters: vec![1, 2, 3], learners: vec![4, 5, 6], ..ConfState::default() },
            ConfState {
                voters: vec![1, 2, 3],
                learners: vec![5],
                voters_outgoing: vec![1, 2, 4, 6],
                learners_next: vec![4],
                auto_leave: false,
            },
            ConfState {
                voters: vec![3, 1],
                voters_outgoing: vec![2],
                auto_leave: true,
                ..ConfState::default()
            },
        ];
        for cs in cases {
            let got = round_trip(&cs);
            assert_eq!(got, sorted(&cs));
            assert!(got.equivalent(&cs));
        }
    }

    #[test]
    fn restored_nodes_probe_from_the_last_index() {
        let cs = ConfState { voters: vec![1, 2], learners: vec![3], ..ConfState::default() };
        let empty = ProgressTracker::new(20, 0);
        let (cfg, prs) = restore(&Changer::new(&empty, 7), &cs).unwrap();
        assert_eq!(cfg.to_string(), "voters=(1 2) learners=(3)");
        assert_eq!(
            prs.to_string(),
            "1: StateProbe match=0 next=7\n2: StateProbe match=0 next=7\n\
             3: StateProbe match=0 next=7 learner\n"
        );
        assert_eq!(prs.get(1).map(|pr| pr.inflights().max_count()), Some(20));
    }

    #[test]
    fn invalid_conf_states() {
        let empty = ProgressTracker::new(20, 0);
        let changer = Changer::new(&empty, 1);
        // Learners without voters: the first step removes all voters.
        let cs = ConfState { learners: vec![1], ..ConfState::default() };
        assert_eq!(restore(&changer, &cs).unwrap_err(), ConfChangeError::RemovedAllVoters);
        // Outside a joint configuration `auto_leave` is not replayed, and a
        // node listed as voter and learner ends up a learner: the caller
        // (Raft) compares the result with its input and refuses both.
        let cs = ConfState {
            voters: vec![1, 2],
            learners: vec![2],
            auto_leave: true,
            ..ConfState::default()
        };
        let got = round_trip(&cs);
        assert_eq!((got.voters, got.learners, got.auto_leave), (vec![1], vec![2], false));
    }

    /// A random valid ConfState, as etcd's quickcheck generator builds it.
    fn conf_state() -> impl Strategy<Value = ConfState> {
        (1usize..=5, 0usize..5, 0usize..3)
            .prop_flat_map(|(n_voters, n_learners, n_removed)| {
                let n_ids = 2 * (n_voters + n_learners + n_removed);
                let ids = Just((1..=n_ids as u64).collect::<Vec<u64>>()).prop_shuffle();
                (
                    Just((n_voters, n_learners, n_removed)),
                    ids,
                    0..=n_voters,
                    0..=n_removed,
                    any::<bool>(),
                )
            })
            .prop_map(|((n_voters, n_learners, n_removed), ids, n_retained, n_next, auto)| {
                let voters = ids[..n_voters].to_vec();
                let learners = ids[n_voters..n_voters + n_learners].to_vec();
                let removed = &ids[n_voters + n_learners..n_voters + n_learners + n_removed];
                let mut voters_outgoing = voters[..n_retained].to_vec();
                voters_outgoing.extend_from_slice(removed);
                // Only removed voters can be demoted into learners_next.
                let learners_next = removed[..n_next].to_vec();
                let auto_leave = !voters_outgoing.is_empty() && auto;
                ConfState { voters, learners, voters_outgoing, learners_next, auto_leave }
            })
    }

    proptest! {
        #[test]
        fn restore_round_trips(cs in conf_state()) {
            let got = round_trip(&cs);
            prop_assert_eq!(&got, &sorted(&cs));
            prop_assert!(got.equivalent(&cs) && cs.equivalent(&got));
        }
    }
}
