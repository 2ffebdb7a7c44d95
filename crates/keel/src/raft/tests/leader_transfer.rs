//! Leadership transfer: `MsgTransferLeader`, catching the transferee up,
//! `MsgTimeoutNow`, and the cases where a transfer is ignored or aborted.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::StateType;
use crate::error::{DropReason, Error};
use crate::raftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use crate::util::NONE;

fn transfer(transferee: u64, to: u64) -> Message {
    msg(transferee, to, MessageType::MsgTransferLeader)
}

/// The node is in `state`, follows `lead`, and no transfer is under way.
#[track_caller]
fn check_leader_transfer_state(r: &TestRaft, state: StateType, lead: u64) {
    assert_eq!(r.state, state);
    assert_eq!(r.lead, lead);
    assert_eq!(r.lead_transferee, NONE);
}

fn elected_cluster() -> Network {
    let mut nt = Network::fresh(3);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).lead, 1);
    nt
}

/// A transferee with the leader's whole log is told to campaign at once;
/// leadership can move back the same way.
#[test]
fn transfer_to_up_to_date_node() {
    let mut nt = elected_cluster();
    nt.send(transfer(2, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 2);

    // After some replication, back to 1.
    nt.send(empty_prop(1, 1));
    nt.send(transfer(1, 2));
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// The same, with the requests sent to the followers (which forward them).
#[test]
fn transfer_to_up_to_date_node_from_follower() {
    let mut nt = elected_cluster();
    nt.send(transfer(2, 2));
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 2);

    nt.send(empty_prop(1, 1));
    nt.send(transfer(1, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// A transfer works even while the leader's lease holds: the transferee's
/// vote requests are marked as a transfer.
#[test]
fn transfer_with_check_quorum() {
    let mut nt = Network::fresh(3);
    for id in 1..=3 {
        let r = nt.peer_mut(id);
        r.check_quorum = true;
        r.randomized_election_timeout = r.election_timeout + id as usize;
    }
    // 2's timer runs out, so that it votes for 1.
    let f = nt.peer_mut(2);
    for _ in 0..f.election_timeout {
        f.tick();
    }
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);

    nt.send(transfer(2, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 2);

    nt.send(empty_prop(1, 1));
    nt.send(transfer(1, 2));
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// A transferee that lacks entries is caught up first.
#[test]
fn transfer_to_slow_follower() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(empty_prop(1, 1));
    nt.recover();
    assert_eq!(nt.peer(1).pr(3).matched, 1);

    nt.send(transfer(3, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 3);
}

/// A transferee behind the leader's compacted log gets a snapshot first;
/// it is told to campaign once it acknowledges it.
#[test]
fn transfer_after_snapshot() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(empty_prop(1, 1));
    let lead = nt.peer_mut(1);
    lead.next_ents();
    let applied = lead.raft_log.applied();
    let voters = lead.trk.voter_nodes();
    let s1 = nt.storage(1);
    let cs = crate::raftpb::ConfState { voters, ..Default::default() };
    s1.create_snapshot(applied, Some(&cs), bytes::Bytes::new()).unwrap();
    s1.compact(applied).unwrap();

    nt.recover();
    assert_eq!(nt.peer(1).pr(3).matched, 1);

    // Hold back 3's acknowledgement: it must apply the snapshot first.
    let held: Rc<RefCell<Option<Message>>> = Rc::default();
    let hold = held.clone();
    nt.msg_hook = Some(Box::new(move |m: &Message| {
        if m.msg_type() != MessageType::MsgAppResp || m.from != 3 || m.reject {
            return true;
        }
        *hold.borrow_mut() = Some(m.clone());
        false
    }));
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    let filtered = held.borrow_mut().take().expect("3 acknowledged the snapshot");

    // 3 applies the snapshot; its acknowledgement goes through.
    let follower = nt.peer_mut(3);
    let snap = follower.raft_log.next_unstable_snapshot().cloned().expect("a snapshot to apply");
    follower.raft_log.storage().apply_snapshot(snap.clone()).unwrap();
    follower.applied_snap(&snap);
    nt.msg_hook = None;
    nt.send(filtered);
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 3);
}

/// A transfer to the leader itself does nothing.
#[test]
fn transfer_to_self() {
    let mut nt = elected_cluster();
    nt.send(transfer(1, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// A transfer to a node outside the configuration does nothing.
#[test]
fn transfer_to_non_existing_node() {
    let mut nt = elected_cluster();
    nt.send(transfer(4, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// A transfer that does not finish within an election timeout is aborted.
#[test]
fn transfer_times_out() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    let lead = nt.peer_mut(1);
    for _ in 0..lead.heartbeat_timeout {
        lead.tick();
    }
    assert_eq!(lead.lead_transferee, 3);
    for _ in 0..lead.election_timeout - lead.heartbeat_timeout {
        lead.tick();
    }
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// While a transfer is under way, proposals are dropped.
#[test]
fn transfer_drops_proposals() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.peer_mut(1).next_ents();

    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    nt.send(empty_prop(1, 1));
    let lead = nt.peer_mut(1);
    assert!(matches!(
        lead.step(empty_prop(1, 1)),
        Err(Error::ProposalDropped(DropReason::Transferring))
    ));
    assert_eq!(lead.pr(1).matched, 1);
}

/// A vote request of a higher term during a transfer ends it: the leader
/// steps down to follow the winner.
#[test]
fn transfer_receive_higher_term_vote() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    nt.send(Message { index: 1, term: 2, ..hup(2) });
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 2);
}

/// Removing the transferee aborts the transfer.
#[test]
fn transfer_aborted_when_transferee_is_removed() {
    let mut nt = elected_cluster();
    nt.ignore(MessageType::MsgTimeoutNow);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    let cc = crate::raftpb::ConfChange {
        change_type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: 3,
        ..Default::default()
    };
    nt.peer_mut(1).apply_conf_change(&cc.as_v2()).unwrap();
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// Demoting the transferee to learner aborts the transfer once the joint
/// configuration is left.
#[test]
fn transfer_aborted_when_transferee_is_demoted() {
    let mut nt = elected_cluster();
    nt.ignore(MessageType::MsgTimeoutNow);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    let single = |t: ConfChangeType| ConfChangeSingle { change_type: t as i32, node_id: 3 };
    let demote = ConfChangeV2 {
        changes: vec![
            single(ConfChangeType::ConfChangeRemoveNode),
            single(ConfChangeType::ConfChangeAddLearnerNode),
        ],
        ..ConfChangeV2::default()
    };
    let lead = nt.peer_mut(1);
    lead.apply_conf_change(&demote).unwrap();
    // Leave the joint configuration.
    lead.apply_conf_change(&ConfChangeV2::default()).unwrap();
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// Leadership can be transferred back to the leader while a transfer is
/// pending: that aborts it.
#[test]
fn transfer_back_to_self_aborts() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    nt.send(transfer(1, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// A second transfer to another node replaces the pending one.
#[test]
fn second_transfer_to_another_node() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    nt.send(transfer(2, 1));
    check_leader_transfer_state(nt.peer(1), StateType::Follower, 2);
}

/// A second transfer to the same node does not extend the first one's
/// timeout.
#[test]
fn second_transfer_to_same_node() {
    let mut nt = elected_cluster();
    nt.isolate(3);
    nt.send(transfer(3, 1));
    assert_eq!(nt.peer(1).lead_transferee, 3);

    let lead = nt.peer_mut(1);
    for _ in 0..lead.heartbeat_timeout {
        lead.tick();
    }
    nt.send(transfer(3, 1));
    let lead = nt.peer_mut(1);
    for _ in 0..lead.election_timeout - lead.heartbeat_timeout {
        lead.tick();
    }
    check_leader_transfer_state(nt.peer(1), StateType::Leader, 1);
}

/// A node outside the configuration ignores MsgTimeoutNow, and votes for it
/// do not make it leader.
#[test]
fn transfer_to_non_member() {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[2, 3, 4], &[]));
    r.step(msg(2, 1, MessageType::MsgTimeoutNow)).unwrap();
    r.step(msg(2, 1, MessageType::MsgVoteResp)).unwrap();
    r.step(msg(3, 1, MessageType::MsgVoteResp)).unwrap();
    assert_eq!(r.state, StateType::Follower);
}
