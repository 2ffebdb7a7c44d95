//! Membership: proposing configuration changes (one pending at a time),
//! applying them, and how they interact with elections and commitment.

use super::*;
use crate::StateType;
use crate::raftpb::{AnyConfChange, ConfChange, ConfChangeType, EntryType};

fn conf_change_entry(cc: AnyConfChange) -> Entry {
    let (entry_type, data) = cc.to_entry_data();
    Entry { entry_type: Some(entry_type as i32), data, ..Entry::default() }
}

fn remove_node(id: u64) -> ConfChange {
    ConfChange {
        change_type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: id,
        ..ConfChange::default()
    }
}

fn empty_conf_change_prop() -> Message {
    Message {
        entries: vec![Entry {
            entry_type: Some(EntryType::EntryConfChange as i32),
            ..Entry::default()
        }],
        ..msg(1, 1, MessageType::MsgProp)
    }
}

fn new_leader(peers: &[u64]) -> TestRaft {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(peers, &[]));
    r.become_candidate();
    r.become_leader();
    r
}

/// A proposed configuration change is appended and becomes the pending one.
#[test]
fn step_config() {
    // A leader that cannot commit anything.
    let mut r = new_leader(&[1, 2]);
    let index = r.raft_log.last_index();
    r.step(empty_conf_change_prop()).unwrap();
    assert_eq!(r.raft_log.last_index(), index + 1);
    assert_eq!(r.pending_conf_index, index + 1);
}

/// A second change proposed while one is pending becomes an empty normal
/// entry, and the pending one stays.
#[test]
fn step_ignores_a_second_config_while_one_is_pending() {
    let mut r = new_leader(&[1, 2]);
    r.step(empty_conf_change_prop()).unwrap();
    let index = r.raft_log.last_index();
    let pending = r.pending_conf_index;
    r.step(empty_conf_change_prop()).unwrap();
    let want = vec![Entry {
        entry_type: Some(EntryType::EntryNormal as i32),
        term: 1,
        index: 3,
        ..Entry::default()
    }];
    assert_eq!(r.raft_log.entries(index + 1, NO_LIMIT).unwrap(), want);
    assert_eq!(r.pending_conf_index, pending);
}

/// A new leader assumes a change may be pending anywhere in its log.
#[test]
fn new_leader_pending_config() {
    for (i, (add_entry, want)) in [(false, 0), (true, 1)].into_iter().enumerate() {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
        if add_entry {
            r.must_append_entry(vec![Entry::default()]);
        }
        r.become_candidate();
        r.become_leader();
        assert_eq!(r.pending_conf_index, want, "#{i}");
    }
}

#[test]
fn add_node() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
    r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddNode, 2)).unwrap();
    assert_eq!(r.trk.voter_nodes(), vec![1, 2]);
}

/// Learners are added, promoted; a node demoted to learner knows it.
#[test]
fn add_learner() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
    r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddLearnerNode, 2)).unwrap();
    assert!(!r.is_learner);
    assert_eq!(r.trk.learner_nodes(), vec![2]);
    assert!(r.pr(2).is_learner);

    // Promote 2.
    r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddNode, 2)).unwrap();
    assert!(!r.pr(2).is_learner);

    // Demote 1 itself...
    r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddLearnerNode, 1)).unwrap();
    assert!(r.pr(1).is_learner);
    assert!(r.is_learner);

    // ...and promote it again.
    r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddNode, 1)).unwrap();
    assert!(!r.pr(1).is_learner);
    assert!(!r.is_learner);
}

/// A node just added counts as active: a quorum check right after does
/// not make the leader step down; if it then stays silent, one does.
#[test]
fn add_node_check_quorum() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
    r.check_quorum = true;
    r.become_candidate();
    r.become_leader();
    for _ in 0..r.election_timeout - 1 {
        r.tick();
    }
    r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddNode, 2)).unwrap();

    // This tick reaches the election timeout: a quorum check.
    r.tick();
    assert_eq!(r.state, StateType::Leader);

    // A whole election timeout without hearing from 2.
    for _ in 0..r.election_timeout {
        r.tick();
    }
    assert_eq!(r.state, StateType::Follower);
}

/// Removing a node; removing the last voter is refused.
#[test]
fn remove_node_and_not_the_last_voter() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
    r.apply_conf_change(&remove_node(2).as_v2()).unwrap();
    assert_eq!(r.trk.voter_nodes(), vec![1]);

    assert!(r.apply_conf_change(&remove_node(1).as_v2()).is_err());
    assert_eq!(r.trk.voter_nodes(), vec![1]);
}

#[test]
fn remove_learner() {
    let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[2]));
    r.apply_conf_change(&remove_node(2).as_v2()).unwrap();
    assert_eq!(r.trk.voter_nodes(), vec![1]);
    assert!(r.trk.learner_nodes().is_empty());

    assert!(r.apply_conf_change(&remove_node(1).as_v2()).is_err());
    assert_eq!(r.trk.voter_nodes(), vec![1]);
}

/// Voters are listed in id order whatever the order of the configuration.
#[test]
fn raft_nodes_are_sorted() {
    for (i, ids) in [[1, 2, 3], [3, 2, 1]].into_iter().enumerate() {
        let r = new_test_raft(1, 10, 1, new_test_storage(&ids, &[]));
        assert_eq!(r.trk.voter_nodes(), vec![1, 2, 3], "#{i}");
    }
}

/// Entries waiting for a quorum commit once a configuration change lowers
/// the quorum.
#[test]
fn commit_after_remove_node() {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2], &[]));
    r.become_candidate();
    r.become_leader();

    let cc = remove_node(2);
    r.step(Message {
        entries: vec![conf_change_entry(cc.clone().into())],
        ..Message::new(MessageType::MsgProp)
    })
    .unwrap();
    // Nothing commits without 2.
    assert!(r.next_ents().is_empty());
    let cc_index = r.raft_log.last_index();

    // Another proposal while the change is pending.
    r.step(Message {
        entries: vec![Entry { data: bytes::Bytes::from_static(b"hello"), ..Entry::default() }],
        ..Message::new(MessageType::MsgProp)
    })
    .unwrap();

    // 2 acknowledges the change, which commits it.
    r.step(Message { index: cc_index, ..msg(2, 0, MessageType::MsgAppResp) }).unwrap();
    let ents = r.next_ents();
    assert_eq!(ents.len(), 2);
    assert_eq!(ents[0].entry_type(), EntryType::EntryNormal);
    assert!(ents[0].data.is_empty());
    assert_eq!(ents[1].entry_type(), EntryType::EntryConfChange);

    // Applying it lowers the quorum to 1 alone: the proposal commits.
    r.apply_conf_change(&cc.as_v2()).unwrap();
    let ents = r.next_ents();
    assert_eq!(ents.len(), 1);
    assert_eq!(ents[0].entry_type(), EntryType::EntryNormal);
    assert_eq!(&ents[0].data[..], b"hello");
}

/// A node with a committed but unapplied configuration change campaigns
/// neither on its timer nor for a leadership transfer, until it applied it.
fn check_conf_change_check_before_campaign(v2: bool) {
    let mut nt = Network::fresh(3);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);

    let cc = remove_node(2);
    let cc: AnyConfChange = if v2 { cc.as_v2().into() } else { cc.into() };
    nt.send(Message { entries: vec![conf_change_entry(cc)], ..msg(1, 1, MessageType::MsgProp) });

    // 2's timer fires: it stays follower, its change is not applied.
    let n2 = nt.peer_mut(2);
    for _ in 0..n2.randomized_election_timeout {
        n2.tick();
    }
    assert_eq!(nt.peer(2).state, StateType::Follower);

    // Nor does a transfer make it campaign.
    nt.send(msg(2, 1, MessageType::MsgTransferLeader));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);

    // Let the transfer time out.
    let n1 = nt.peer_mut(1);
    for _ in 0..n1.election_timeout {
        n1.tick();
    }

    // Once 2 applied its log, the transfer works.
    nt.peer_mut(2).next_ents();
    nt.send(msg(2, 1, MessageType::MsgTransferLeader));
    assert_eq!(nt.peer(1).state, StateType::Follower);
    assert_eq!(nt.peer(2).state, StateType::Leader);

    // Likewise 1 campaigns on its timer once it applied its log.
    let n1 = nt.peer_mut(1);
    n1.next_ents();
    for _ in 0..n1.randomized_election_timeout {
        n1.tick();
    }
    assert_eq!(nt.peer(1).state, StateType::Candidate);
}

#[test]
fn conf_change_check_before_campaign() {
    check_conf_change_check_before_campaign(false);
}

#[test]
fn conf_change_v2_check_before_campaign() {
    check_conf_change_check_before_campaign(true);
}
