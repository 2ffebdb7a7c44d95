//! Snapshots: the leader sending them (and the progress state around it),
//! followers and learners restoring them, and snapshots that are ignored.

use super::*;
use crate::StateType;
use crate::raftpb::{ConfState, Snapshot};
use crate::tracker::ProgressState;

/// A snapshot at index 11, term 11 (arbitrary) of the given configuration.
fn snapshot(cs: ConfState) -> Snapshot {
    let mut s = Snapshot::default();
    s.metadata.index = 11;
    s.metadata.term = 11;
    s.metadata.conf_state = cs;
    s
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState { voters: ids.to_vec(), ..ConfState::default() }
}

/// A leader of term 12 over a log restored from the snapshot at 11, with
/// voters 1 and 2.
fn leader_after_snapshot(peers: &[u64]) -> TestRaft {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(peers, &[]));
    r.become_follower(11, 0);
    assert!(r.restore(snapshot(voters(&[1, 2]))));
    r.become_candidate();
    r.become_leader();
    r
}

/// Sending a snapshot records it as pending in the progress.
#[test]
fn sending_snapshot_sets_pending_snapshot() {
    let mut r = leader_after_snapshot(&[1]);
    // 2 needs a snapshot.
    let first = r.raft_log.first_index();
    r.pr_mut(2).next = first;
    let index = r.pr(2).next - 1;
    r.step(Message { index, reject: true, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
    assert_eq!(r.pr(2).pending_snapshot, 11);
    assert_eq!(r.pr(2).state, ProgressState::Snapshot);
}

/// While a snapshot is pending, no appends go to that follower.
#[test]
fn pending_snapshot_pauses_replication() {
    let mut r = leader_after_snapshot(&[1, 2]);
    r.pr_mut(2).become_snapshot(11);
    r.step(prop(1, 1, b"somedata")).unwrap();
    assert!(r.read_messages().is_empty());
}

/// A failed snapshot clears the pending snapshot; the follower is probed
/// again after a heartbeat.
#[test]
fn snapshot_failure() {
    let mut r = leader_after_snapshot(&[1, 2]);
    r.pr_mut(2).next = 1;
    r.pr_mut(2).become_snapshot(11);

    r.step(Message { reject: true, ..msg(2, 1, MessageType::MsgSnapStatus) }).unwrap();
    let pr = r.pr(2);
    assert_eq!(pr.pending_snapshot, 0);
    assert_eq!(pr.next, 1);
    assert!(pr.msg_app_flow_paused);
}

/// A delivered snapshot moves the follower to probing just past it, paused
/// until it answers.
#[test]
fn snapshot_succeed() {
    let mut r = leader_after_snapshot(&[1, 2]);
    r.pr_mut(2).next = 1;
    r.pr_mut(2).become_snapshot(11);

    r.step(msg(2, 1, MessageType::MsgSnapStatus)).unwrap();
    let pr = r.pr(2);
    assert_eq!(pr.pending_snapshot, 0);
    assert_eq!(pr.next, 12);
    assert!(pr.msg_app_flow_paused);
}

/// An acknowledgement at or past the pending snapshot ends the snapshot
/// state: the follower replicates again.
#[test]
fn snapshot_abort() {
    let mut r = leader_after_snapshot(&[1, 2]);
    r.pr_mut(2).next = 1;
    r.pr_mut(2).become_snapshot(11);

    r.step(Message { index: 11, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
    let pr = r.pr(2);
    assert_eq!(pr.pending_snapshot, 0);
    // Replicating, the leader sent its empty entry (12) right away and
    // moved next past it.
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.next, 13);
    assert_eq!(pr.inflights.count(), 1);
}

/// Restoring a snapshot replaces the log and the configuration; a node
/// with an unapplied snapshot does not campaign.
#[test]
fn restore() {
    let s = snapshot(voters(&[1, 2, 3]));
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
    assert!(r.restore(s.clone()));

    assert_eq!(r.raft_log.last_index(), s.metadata.index);
    assert_eq!(r.raft_log.term(s.metadata.index).unwrap(), s.metadata.term);
    assert_eq!(r.trk.voter_nodes(), s.metadata.conf_state.voters);

    assert!(!r.restore(s));
    for _ in 0..r.randomized_election_timeout {
        r.tick();
    }
    assert_eq!(r.state, StateType::Follower);
}

#[test]
fn restore_with_learner() {
    let s = snapshot(ConfState { voters: vec![1, 2], learners: vec![3], ..ConfState::default() });
    let mut r = new_test_raft(3, 8, 2, new_test_storage(&[1, 2], &[3]));
    assert!(r.restore(s.clone()));

    assert_eq!(r.raft_log.last_index(), s.metadata.index);
    assert_eq!(r.raft_log.term(s.metadata.index).unwrap(), s.metadata.term);
    assert_eq!(r.trk.voter_nodes().len(), 2);
    assert_eq!(r.trk.learner_nodes().len(), 1);
    for id in [1, 2] {
        assert!(!r.pr(id).is_learner);
    }
    assert!(r.pr(3).is_learner);

    assert!(!r.restore(s));
}

/// An outgoing voter of a joint configuration restores the snapshot too.
#[test]
fn restore_with_voters_outgoing() {
    let s = snapshot(ConfState {
        voters: vec![2, 3, 4],
        voters_outgoing: vec![1, 2, 3],
        ..ConfState::default()
    });
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
    assert!(r.restore(s.clone()));

    assert_eq!(r.raft_log.last_index(), s.metadata.index);
    assert_eq!(r.raft_log.term(s.metadata.index).unwrap(), s.metadata.term);
    assert_eq!(r.trk.voter_nodes(), vec![1, 2, 3, 4]);

    assert!(!r.restore(s));
    // It does not campaign before applying the snapshot.
    for _ in 0..r.randomized_election_timeout {
        r.tick();
    }
    assert_eq!(r.state, StateType::Follower);
}

/// A voter accepts a snapshot that makes it a learner: a snapshot may
/// compress a removal and a re-addition as learner, and refusing it would
/// cut the node off the log for good.
#[test]
fn restore_voter_to_learner() {
    let s = snapshot(ConfState { voters: vec![1, 2], learners: vec![3], ..ConfState::default() });
    let mut r = new_test_raft(3, 10, 1, new_test_storage(&[1, 2, 3], &[]));
    assert!(!r.is_learner);
    assert!(r.restore(s));
    assert!(r.is_learner);
}

/// A learner becomes a voter through a snapshot.
#[test]
fn restore_learner_promotion() {
    let s = snapshot(voters(&[1, 2, 3]));
    let mut r = new_test_raft(3, 10, 1, new_test_storage(&[1, 2], &[3]));
    assert!(r.is_learner);
    assert!(r.restore(s));
    assert!(!r.is_learner);
}

/// A learner receives a snapshot from the leader.
#[test]
fn learner_receives_snapshot() {
    let s = snapshot(ConfState { voters: vec![1], learners: vec![2], ..ConfState::default() });
    let store = new_test_storage(&[1], &[2]);
    let mut n1 = new_test_raft(1, 10, 1, store.clone());
    let n2 = new_test_raft(2, 10, 1, new_test_storage(&[1], &[2]));

    // 1 has a compacted log and a snapshot. (etcd's version leaves 1 at
    // term 0, below its log's term 11, so that it leads at term 1 and sends
    // appends whose entries go back in term; the state machine here refuses
    // such appends, so 1 is at the snapshot's term.)
    n1.become_follower(11, 0);
    assert!(n1.restore(s));
    let snap = n1.raft_log.next_unstable_snapshot().cloned().unwrap();
    store.apply_snapshot(snap.clone()).unwrap();
    n1.applied_snap(&snap);

    let mut nt = Network::new(vec![NetPeer::Raft(n1), NetPeer::Raft(n2)]);
    let n1 = nt.peer_mut(1);
    n1.randomized_election_timeout = n1.election_timeout;
    for _ in 0..n1.election_timeout {
        n1.tick();
    }
    nt.send(beat(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).raft_log.committed(), nt.peer(1).raft_log.committed());
    assert!(nt.peer(2).raft_log.committed() > 11);
}

/// A snapshot at or below the commit index is ignored; one whose entry the
/// log already holds is ignored too, but moves the commit index to it.
#[test]
fn restore_ignores_snapshot() {
    let commit = 1;
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
    r.raft_log.append(ents(1, &[1, 1, 1]));
    r.raft_log.commit_to(commit);

    let mut s = Snapshot::default();
    s.metadata.index = commit;
    s.metadata.term = 1;
    s.metadata.conf_state = voters(&[1, 2]);
    assert!(!r.restore(s.clone()));
    assert_eq!(r.raft_log.committed(), commit);

    s.metadata.index = commit + 1;
    assert!(!r.restore(s));
    assert_eq!(r.raft_log.committed(), commit + 1);
}

/// A leader sends its snapshot to a follower that needs compacted entries.
#[test]
fn provide_snapshot() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
    r.restore(snapshot(voters(&[1, 2])));
    r.become_candidate();
    r.become_leader();

    // 2 needs a snapshot.
    let first = r.raft_log.first_index();
    r.pr_mut(2).next = first;
    let index = r.pr(2).next - 1;
    r.step(Message { index, reject: true, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();

    let msgs = r.read_messages();
    assert_eq!(types(&msgs), vec![MessageType::MsgSnap]);
}

/// No snapshot goes to a follower that has not been active recently.
#[test]
fn ignore_providing_snapshot_to_inactive_follower() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
    r.restore(snapshot(voters(&[1, 2])));
    r.become_candidate();
    r.become_leader();

    let first = r.raft_log.first_index();
    r.pr_mut(2).next = first - 1;
    r.pr_mut(2).recent_active = false;
    r.step(prop(1, 1, b"somedata")).unwrap();
    assert!(r.read_messages().is_empty());
}

/// A snapshot from a leader makes the receiver follow it.
#[test]
fn restore_from_snapshot_message() {
    let m = Message {
        term: 2,
        snapshot: Some(Box::new(snapshot(voters(&[1, 2])))),
        ..msg(1, 0, MessageType::MsgSnap)
    };
    let mut r = new_test_raft(2, 10, 1, new_test_storage(&[1, 2], &[]));
    r.step(m).unwrap();
    assert_eq!(r.lead, 1);
    assert_eq!(r.raft_log.committed(), 11);
}

/// A node that fell behind the leader's compacted log catches up through a
/// snapshot and then commits along.
#[test]
fn slow_node_restores_from_snapshot() {
    let mut nt = Network::fresh(3);
    nt.send(hup(1));
    nt.isolate(3);
    for _ in 0..=100 {
        nt.send(empty_prop(1, 1));
    }
    let lead = nt.peer_mut(1);
    lead.next_ents();
    let applied = lead.raft_log.applied();
    let cs = voters(&lead.trk.voter_nodes());
    let s1 = nt.storage(1);
    s1.create_snapshot(applied, Some(&cs), bytes::Bytes::new()).unwrap();
    s1.compact(applied).unwrap();

    nt.recover();
    // Heartbeats until the leader knows 3 is active (it answered).
    while !nt.peer(1).pr(3).recent_active {
        nt.send(beat(1));
    }

    // A proposal triggers the snapshot...
    nt.send(empty_prop(1, 1));
    assert!(nt.peer(3).raft_log.last_index() >= applied);
    // ...another one the commit.
    nt.send(empty_prop(1, 1));
    assert_eq!(nt.peer(3).raft_log.committed(), nt.peer(1).raft_log.committed());
}
