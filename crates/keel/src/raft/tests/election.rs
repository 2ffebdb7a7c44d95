//! Elections: campaigning, voting, pre-vote, CheckQuorum and the leader
//! lease, learners, and the role transitions.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;
use crate::StateType;
use crate::raftpb::ConfChangeType;
use crate::util::{NONE, vote_resp_msg_type};

type ConfigFn = fn(&mut Config);

fn check_leader_election(pre_vote: bool) {
    let cfg: ConfigFn = if pre_vote { pre_vote_config } else { no_config };
    // Without a quorum, a pre-candidate stays one without raising its term.
    let (cand_state, cand_term) =
        if pre_vote { (StateType::PreCandidate, 0) } else { (StateType::Candidate, 1) };
    use NetPeer::{BlackHole, New};
    let raft = |terms: &[u64]| NetPeer::Raft(ents_with_config(cfg, terms));
    let cases: Vec<(Vec<NetPeer>, StateType, u64)> = vec![
        (vec![New, New, New], StateType::Leader, 1),
        (vec![New, New, BlackHole], StateType::Leader, 1),
        (vec![New, BlackHole, BlackHole], cand_state, cand_term),
        (vec![New, BlackHole, BlackHole, New], cand_state, cand_term),
        (vec![New, BlackHole, BlackHole, New, New], StateType::Leader, 1),
        // Three logs further along than 1's, in the same term: their
        // rejections come back rather than being ignored.
        (vec![New, raft(&[1]), raft(&[1]), raft(&[1, 1]), New], StateType::Follower, 1),
    ];
    for (i, (peers, want_state, want_term)) in cases.into_iter().enumerate() {
        let mut nt = Network::with_config(cfg, peers);
        nt.send(hup(1));
        assert_eq!(nt.peer(1).state, want_state, "#{i}");
        assert_eq!(nt.peer(1).term, want_term, "#{i}");
    }
}

#[test]
fn leader_election() {
    check_leader_election(false);
}

#[test]
fn leader_election_pre_vote() {
    check_leader_election(true);
}

/// A learner never campaigns, even past its election timeout.
#[test]
fn learner_does_not_campaign_on_election_timeout() {
    let mut n2 = new_test_raft(2, 10, 1, new_test_storage(&[1], &[2]));
    n2.become_follower(1, NONE);
    n2.randomized_election_timeout = n2.election_timeout;
    for _ in 0..n2.election_timeout {
        n2.tick();
    }
    assert_eq!(n2.state, StateType::Follower);
    assert!(n2.read_messages().is_empty());
}

/// A learner campaigns only once it is promoted to voter.
#[test]
fn learner_campaigns_once_promoted() {
    let mut n1 = new_test_raft(1, 10, 1, new_test_storage(&[1], &[2]));
    let mut n2 = new_test_raft(2, 10, 1, new_test_storage(&[1], &[2]));
    n1.become_follower(1, NONE);
    n2.become_follower(1, NONE);
    let mut nt = Network::new(vec![NetPeer::Raft(n1), NetPeer::Raft(n2)]);
    assert_ne!(nt.peer(1).state, StateType::Leader);

    let n1 = nt.peer_mut(1);
    n1.randomized_election_timeout = n1.election_timeout;
    for _ in 0..n1.election_timeout {
        n1.tick();
    }
    n1.advance_messages_after_append();
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);

    nt.send(beat(1));
    for id in [1, 2] {
        nt.peer_mut(id)
            .apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddNode, 2))
            .unwrap();
    }
    assert!(!nt.peer(2).is_learner);

    let n2 = nt.peer_mut(2);
    n2.randomized_election_timeout = n2.election_timeout;
    for _ in 0..n2.election_timeout {
        n2.tick();
    }
    n2.advance_messages_after_append();
    nt.send(beat(2));
    assert_eq!(nt.peer(1).state, StateType::Follower);
    assert_eq!(nt.peer(2).state, StateType::Leader);
}

/// A learner grants a valid vote request: it may have been promoted
/// without knowing it yet.
#[test]
fn learner_can_vote() {
    let mut n2 = new_test_raft(2, 10, 1, new_test_storage(&[1], &[2]));
    n2.become_follower(1, NONE);
    n2.step(Message { term: 2, log_term: 11, index: 11, ..msg(1, 2, MessageType::MsgVote) })
        .unwrap();
    let msgs = n2.read_messages();
    assert_eq!(types(&msgs), vec![MessageType::MsgVoteResp]);
    assert!(!msgs[0].reject, "a learner must not reject the vote");
}

/// Every node of a cluster can campaign and win in turn: elections work
/// when not starting from a clean slate.
fn check_leader_cycle(pre_vote: bool) {
    let cfg: ConfigFn = if pre_vote { pre_vote_config } else { no_config };
    let mut nt = Network::with_config(cfg, vec![NetPeer::New, NetPeer::New, NetPeer::New]);
    for campaigner in 1..=3 {
        nt.send(hup(campaigner));
        for r in nt.rafts() {
            let want = if r.id == campaigner { StateType::Leader } else { StateType::Follower };
            assert_eq!(
                r.state, want,
                "pre_vote={pre_vote}: campaigner {campaigner}, node {}",
                r.id
            );
        }
    }
}

#[test]
fn leader_cycle() {
    check_leader_cycle(false);
}

#[test]
fn leader_cycle_pre_vote() {
    check_leader_cycle(true);
}

/// A new leader that lacks the newest (highest-term) entries overwrites
/// them with its own lower-term ones.
fn check_leader_election_overwrite_newer_logs(pre_vote: bool) {
    let cfg: ConfigFn = if pre_vote { pre_vote_config } else { no_config };
    // 1 won term 1 and replicated an entry to 2 only; 3 won term 2 and wrote
    // an entry nobody got; 4 and 5 voted for 3 in term 2.
    let mut n = Network::with_config(
        cfg,
        vec![
            NetPeer::Raft(ents_with_config(cfg, &[1])),
            NetPeer::Raft(ents_with_config(cfg, &[1])),
            NetPeer::Raft(ents_with_config(cfg, &[2])),
            NetPeer::Raft(voted_with_config(cfg, 3, 2)),
            NetPeer::Raft(voted_with_config(cfg, 3, 2)),
        ],
    );
    // A quorum knows of term 2: 1 loses, but learns the term.
    n.send(hup(1));
    assert_eq!(n.peer(1).state, StateType::Follower);
    assert_eq!(n.peer(1).term, 2);
    // With the higher term it wins.
    n.send(hup(1));
    assert_eq!(n.peer(1).state, StateType::Leader);
    assert_eq!(n.peer(1).term, 3);
    // Everyone now has 1's entry of term 1, then the empty entry of term 3.
    for r in n.rafts() {
        let entries = r.raft_log.all_entries();
        assert_eq!(entries.len(), 2, "node {}", r.id);
        assert_eq!(entries[0].term, 1, "node {}", r.id);
        assert_eq!(entries[1].term, 3, "node {}", r.id);
    }
}

#[test]
fn leader_election_overwrites_newer_logs() {
    check_leader_election_overwrite_newer_logs(false);
}

#[test]
fn leader_election_overwrites_newer_logs_pre_vote() {
    check_leader_election_overwrite_newer_logs(true);
}

/// A (pre-)vote request of a higher term is granted in any role; a real
/// vote makes the node a follower of that term, a pre-vote changes nothing.
fn check_vote_from_any_state(vt: MessageType) {
    for st in
        [StateType::Follower, StateType::Candidate, StateType::Leader, StateType::PreCandidate]
    {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2, 3], &[]));
        r.term = 1;
        match st {
            StateType::Follower => {
                let term = r.term;
                r.become_follower(term, 3);
            }
            StateType::PreCandidate => r.become_pre_candidate(),
            StateType::Candidate => r.become_candidate(),
            StateType::Leader => {
                r.become_candidate();
                r.become_leader();
            }
        }
        // Setting the role may have raised the term.
        let orig_term = r.term;
        let new_term = r.term + 1;
        let m = Message { term: new_term, log_term: new_term, index: 42, ..msg(2, 1, vt) };
        r.step(m).unwrap();
        let msgs = r.read_messages();
        assert_eq!(types(&msgs), vec![vote_resp_msg_type(vt)], "{vt:?},{st}");
        assert!(!msgs[0].reject, "{vt:?},{st}");

        if vt == MessageType::MsgVote {
            assert_eq!(r.state, StateType::Follower, "{vt:?},{st}");
            assert_eq!(r.term, new_term, "{vt:?},{st}");
            assert_eq!(r.vote, 2, "{vt:?},{st}");
        } else {
            assert_eq!(r.state, st, "{vt:?},{st}");
            assert_eq!(r.term, orig_term, "{vt:?},{st}");
            // Followers and pre-candidates have not voted; candidates and
            // leaders voted for themselves.
            assert!(r.vote == NONE || r.vote == 1, "{vt:?},{st}: vote {}", r.vote);
        }
    }
}

#[test]
fn vote_from_any_state() {
    check_vote_from_any_state(MessageType::MsgVote);
}

#[test]
fn pre_vote_from_any_state() {
    check_vote_from_any_state(MessageType::MsgPreVote);
}

/// Two candidates split the vote; the one that loses disrupts the leader
/// later with its higher term, but cannot win with its shorter log.
#[test]
fn dueling_candidates() {
    let peers = (1..=3)
        .map(|id| NetPeer::Raft(new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]))))
        .collect();
    let mut nt = Network::new(peers);
    nt.cut(1, 3);
    nt.send(hup(1));
    nt.send(hup(3));
    // 1 wins with the votes of 1 and 2.
    assert_eq!(nt.peer(1).state, StateType::Leader);
    // 3 has its own vote and 2's rejection.
    assert_eq!(nt.peer(3).state, StateType::Candidate);

    nt.recover();
    // 3 campaigns at a higher term, disrupting 1; both 1 and 2 reject it
    // for its shorter log.
    nt.send(hup(3));
    let want =
        [(StateType::Follower, 2, 1), (StateType::Follower, 2, 1), (StateType::Follower, 2, 0)];
    for (id, (state, term, last_index)) in (1..=3).zip(want) {
        let r = nt.peer(id);
        assert_eq!(r.state, state, "node {id}");
        assert_eq!(r.term, term, "node {id}");
        assert_eq!(r.raft_log.last_index(), last_index, "node {id}");
    }
}

/// With pre-vote, the losing candidate does not disrupt the leader.
#[test]
fn dueling_pre_candidates() {
    let peers = (1..=3)
        .map(|id| {
            let mut cfg = new_test_config(id, 10, 1);
            cfg.pre_vote = true;
            NetPeer::Raft(raft_with_config(&cfg, new_test_storage(&[1, 2, 3], &[])))
        })
        .collect();
    let mut nt = Network::new(peers);
    nt.cut(1, 3);
    nt.send(hup(1));
    nt.send(hup(3));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    // 3's pre-vote is rejected: it goes back to follower.
    assert_eq!(nt.peer(3).state, StateType::Follower);

    nt.recover();
    nt.send(hup(3));
    let want =
        [(StateType::Leader, 1, 1), (StateType::Follower, 1, 1), (StateType::Follower, 1, 0)];
    for (id, (state, term, last_index)) in (1..=3).zip(want) {
        let r = nt.peer(id);
        assert_eq!(r.state, state, "node {id}");
        assert_eq!(r.term, term, "node {id}");
        assert_eq!(r.raft_log.last_index(), last_index, "node {id}");
    }
}

/// An isolated candidate concedes to the leader elected meanwhile and takes
/// its log.
#[test]
fn candidate_concedes_to_the_elected_leader() {
    let mut nt = Network::fresh(3);
    nt.isolate(1);
    nt.send(hup(1));
    nt.send(hup(3));
    nt.recover();
    nt.send(beat(3));
    // A proposal flushes an append out to 1, a heartbeat the commit index.
    nt.send(prop(3, 3, b"force follower"));
    nt.send(beat(3));

    let a = nt.peer(1);
    assert_eq!(a.state, StateType::Follower);
    assert_eq!(a.term, 1);
    let want = (
        2,
        0,
        vec![
            Entry { term: 1, index: 1, ..Entry::default() },
            Entry {
                term: 1,
                index: 2,
                data: bytes::Bytes::from_static(b"force follower"),
                ..Entry::default()
            },
        ],
    );
    for r in nt.rafts() {
        assert_eq!(r.log_summary(), want, "node {}", r.id);
    }
}

#[test]
fn single_node_candidate_becomes_leader() {
    let mut nt = Network::fresh(1);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
}

#[test]
fn single_node_pre_candidate_becomes_leader() {
    let mut nt = Network::with_config(pre_vote_config, vec![NetPeer::New]);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
}

/// The randomized election timeout is uniform over `[election, 2*election)`.
#[test]
fn past_election_timeout_probability() {
    // (ticks elapsed, probability of being past the timeout, rounded?)
    let cases = [
        (5, 0.0, false),
        (10, 0.1, true),
        (13, 0.4, true),
        (15, 0.6, true),
        (18, 0.9, true),
        (20, 1.0, false),
    ];
    for (i, (elapsed, want, round)) in cases.into_iter().enumerate() {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
        r.election_elapsed = elapsed;
        let mut c = 0;
        for _ in 0..10_000 {
            r.reset_randomized_election_timeout();
            if r.past_election_timeout() {
                c += 1;
            }
        }
        let mut got = f64::from(c) / 10_000.0;
        if round {
            got = (got * 10.0 + 0.5).floor() / 10.0;
        }
        assert_eq!(got, want, "#{i}");
    }
}

/// Vote requests are granted to candidates whose log is at least as up to
/// date, and only if no other vote was cast in the term.
fn check_recv_msg_vote(msg_type: MessageType) {
    use StateType::*;
    // (role, candidate's last index, candidate's last term, current vote, rejected)
    let cases = [
        (Follower, 0, 0, NONE, true),
        (Follower, 0, 1, NONE, true),
        (Follower, 0, 2, NONE, true),
        (Follower, 0, 3, NONE, false),
        (Follower, 1, 0, NONE, true),
        (Follower, 1, 1, NONE, true),
        (Follower, 1, 2, NONE, true),
        (Follower, 1, 3, NONE, false),
        (Follower, 2, 0, NONE, true),
        (Follower, 2, 1, NONE, true),
        (Follower, 2, 2, NONE, false),
        (Follower, 2, 3, NONE, false),
        (Follower, 3, 0, NONE, true),
        (Follower, 3, 1, NONE, true),
        (Follower, 3, 2, NONE, false),
        (Follower, 3, 3, NONE, false),
        (Follower, 3, 2, 2, false),
        (Follower, 3, 2, 1, true),
        (Leader, 3, 3, 1, true),
        (PreCandidate, 3, 3, 1, true),
        (Candidate, 3, 3, 1, true),
    ];
    for (i, (state, index, log_term, vote, want_reject)) in cases.into_iter().enumerate() {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
        r.state = state;
        r.vote = vote;
        r.raft_log = log_with_entries(ents(0, &[0, 2, 2]));
        // Only the logs differ: the terms are the same.
        let term = r.raft_log.last_entry_id().term.max(log_term);
        r.term = term;
        r.step(Message { term, index, log_term, ..msg(2, 1, msg_type) }).unwrap();

        let msgs = r.read_messages();
        assert_eq!(types(&msgs), vec![vote_resp_msg_type(msg_type)], "#{i}");
        assert_eq!(msgs[0].reject, want_reject, "#{i}");
    }
}

#[test]
fn recv_msg_vote() {
    check_recv_msg_vote(MessageType::MsgVote);
}

#[test]
fn recv_msg_pre_vote() {
    check_recv_msg_vote(MessageType::MsgPreVote);
}

/// Which role transitions are allowed, and the term and leader after each.
#[test]
fn state_transitions() {
    use StateType::*;
    // (from, to, allowed, term, lead)
    let cases = [
        (Follower, Follower, true, 1, NONE),
        (Follower, PreCandidate, true, 0, NONE),
        (Follower, Candidate, true, 1, NONE),
        (Follower, Leader, false, 0, NONE),
        (PreCandidate, Follower, true, 0, NONE),
        (PreCandidate, PreCandidate, true, 0, NONE),
        (PreCandidate, Candidate, true, 1, NONE),
        (PreCandidate, Leader, true, 0, 1),
        (Candidate, Follower, true, 0, NONE),
        (Candidate, PreCandidate, true, 0, NONE),
        (Candidate, Candidate, true, 1, NONE),
        (Candidate, Leader, true, 0, 1),
        (Leader, Follower, true, 1, NONE),
        (Leader, PreCandidate, false, 0, NONE),
        (Leader, Candidate, false, 1, NONE),
        (Leader, Leader, true, 0, 1),
    ];
    for (i, (from, to, allowed, want_term, want_lead)) in cases.into_iter().enumerate() {
        let res = catch_unwind(AssertUnwindSafe(|| {
            let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
            r.state = from;
            match to {
                Follower => r.become_follower(want_term, want_lead),
                PreCandidate => r.become_pre_candidate(),
                Candidate => r.become_candidate(),
                Leader => r.become_leader(),
            }
            (r.term, r.lead)
        }));
        match res {
            Ok((term, lead)) => {
                assert!(allowed, "#{i}: {from} -> {to} should panic");
                assert_eq!(term, want_term, "#{i}");
                assert_eq!(lead, want_lead, "#{i}");
            }
            Err(_) => assert!(!allowed, "#{i}: {from} -> {to} should be allowed"),
        }
    }
}

/// Every role steps down to follower on a vote request or an append of a
/// higher term, and follows the sender of the append.
#[test]
fn all_server_stepdown() {
    use StateType::*;
    // (role, role after, term after, last index after)
    let cases = [
        (Follower, Follower, 3, 0),
        (PreCandidate, Follower, 3, 0),
        (Candidate, Follower, 3, 0),
        (Leader, Follower, 3, 1),
    ];
    let term = 3;
    for (i, (state, want_state, want_term, want_index)) in cases.into_iter().enumerate() {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2, 3], &[]));
        match state {
            Follower => r.become_follower(1, NONE),
            PreCandidate => r.become_pre_candidate(),
            Candidate => r.become_candidate(),
            Leader => {
                r.become_candidate();
                r.become_leader();
            }
        }
        for (j, t) in [MessageType::MsgVote, MessageType::MsgApp].into_iter().enumerate() {
            r.step(Message { term, log_term: term, ..msg(2, 0, t) }).unwrap();
            assert_eq!(r.state, want_state, "#{i}.{j}");
            assert_eq!(r.term, want_term, "#{i}.{j}");
            assert_eq!(r.raft_log.last_index(), want_index, "#{i}.{j}");
            assert_eq!(r.raft_log.all_entries().len() as u64, want_index, "#{i}.{j}");
            let want_lead = if t == MessageType::MsgVote { NONE } else { 2 };
            assert_eq!(r.lead, want_lead, "#{i}.{j}");
        }
    }
}

/// A candidate that hears from the leader of its term (by heartbeat or
/// append) reverts to follower and takes the leader's term.
fn check_candidate_reset_term(t: MessageType) {
    let peers = (1..=3)
        .map(|id| NetPeer::Raft(new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]))))
        .collect();
    let mut nt = Network::new(peers);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::Follower);

    // Isolate 3 and raise the term of the others.
    nt.isolate(3);
    nt.send(hup(2));
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);

    // The isolated 3 campaigns.
    let c = nt.peer_mut(3);
    c.reset_randomized_election_timeout();
    for _ in 0..c.randomized_election_timeout {
        c.tick();
    }
    c.advance_messages_after_append();
    assert_eq!(nt.peer(3).state, StateType::Candidate);

    nt.recover();
    // The leader reaches the candidate, which reverts to follower.
    let term = nt.peer(1).term;
    nt.send(Message { term, ..msg(1, 3, t) });
    assert_eq!(nt.peer(3).state, StateType::Follower);
    assert_eq!(nt.peer(3).term, nt.peer(1).term);
}

#[test]
fn candidate_reset_term_on_heartbeat() {
    check_candidate_reset_term(MessageType::MsgHeartbeat);
}

#[test]
fn candidate_reset_term_on_append() {
    check_candidate_reset_term(MessageType::MsgApp);
}

/// A (pre-)candidate's own vote, delivered once it is durable, is ignored
/// if it learnt meanwhile that it lost the election.
fn check_candidate_self_vote_after_lost_election(pre_vote: bool) {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2, 3], &[]));
    r.pre_vote = pre_vote;
    r.step(hup(1)).unwrap();
    let steps = r.take_messages_after_append();

    // 2 won the election before 1's own vote was durable.
    let term = r.term;
    r.step(Message { term, ..msg(2, 1, MessageType::MsgHeartbeat) }).unwrap();
    assert_eq!(r.state, StateType::Follower);

    r.step_or_send(steps);
    assert_eq!(r.state, StateType::Follower);
    let (granted, _, _) = r.trk.tally_votes();
    assert_eq!(granted, 0);
}

#[test]
fn candidate_self_vote_after_lost_election() {
    check_candidate_self_vote_after_lost_election(false);
}

#[test]
fn candidate_self_vote_after_lost_election_pre_vote() {
    check_candidate_self_vote_after_lost_election(true);
}

/// A pre-candidate's own pre-vote, delivered after it became a candidate,
/// does not count as a vote; its own real vote does.
#[test]
fn candidate_ignores_its_pre_candidate_self_vote() {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2, 3], &[]));
    r.pre_vote = true;
    r.step(hup(1)).unwrap();
    assert_eq!(r.state, StateType::PreCandidate);
    let steps = r.take_messages_after_append();

    // Pre-votes from both peers arrive before its own; pre-vote messages
    // carry the next term.
    let next = r.term + 1;
    r.step(Message { term: next, ..msg(2, 1, MessageType::MsgPreVoteResp) }).unwrap();
    r.step(Message { term: next, ..msg(3, 1, MessageType::MsgPreVoteResp) }).unwrap();
    assert_eq!(r.state, StateType::Candidate);

    r.step_or_send(steps);
    assert_eq!(r.state, StateType::Candidate);
    let steps = r.take_messages_after_append();
    let (granted, _, _) = r.trk.tally_votes();
    assert_eq!(granted, 0);

    // One peer's vote is not a quorum...
    let term = r.term;
    r.step(Message { term, ..msg(2, 1, MessageType::MsgVoteResp) }).unwrap();
    assert_eq!(r.state, StateType::Candidate);
    // ...with its own durable vote it is.
    r.step_or_send(steps);
    assert_eq!(r.state, StateType::Leader);
}

/// CheckQuorum: a leader that hears from a quorum stays leader.
#[test]
fn leader_stays_when_quorum_is_active() {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2, 3], &[]));
    r.check_quorum = true;
    r.become_candidate();
    r.become_leader();
    for _ in 0..=r.election_timeout {
        let term = r.term;
        r.step(Message { term, ..msg(2, 0, MessageType::MsgHeartbeatResp) }).unwrap();
        r.tick();
    }
    assert_eq!(r.state, StateType::Leader);
}

/// CheckQuorum: a leader that does not hear from a quorum steps down.
#[test]
fn leader_steps_down_when_quorum_is_lost() {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2, 3], &[]));
    r.check_quorum = true;
    r.become_candidate();
    r.become_leader();
    for _ in 0..=r.election_timeout {
        r.tick();
    }
    assert_eq!(r.state, StateType::Follower);
}

fn check_quorum_network() -> Network {
    let peers = (1..=3)
        .map(|id| {
            let mut r = new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]));
            r.check_quorum = true;
            NetPeer::Raft(r)
        })
        .collect();
    Network::new(peers)
}

/// Ticks `id` for a whole election timeout: a follower's lease on its leader
/// expires (tests raise its randomized timeout so that it does not campaign
/// itself); a leader runs its quorum check.
fn expire_lease(nt: &mut Network, id: u64) {
    let r = nt.peer_mut(id);
    for _ in 0..r.election_timeout {
        r.tick();
    }
}

/// With CheckQuorum, a follower that heard from the leader within the
/// election timeout ignores a candidate; once the lease expires it votes.
#[test]
fn leader_superseding_with_check_quorum() {
    let mut nt = check_quorum_network();
    let b = nt.peer_mut(2);
    b.randomized_election_timeout = b.election_timeout + 1;
    expire_lease(&mut nt, 2);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(3).state, StateType::Follower);

    nt.send(hup(3));
    // 2 ignored 3's request: its lease from 1 has not expired.
    assert_eq!(nt.peer(3).state, StateType::Candidate);

    expire_lease(&mut nt, 2);
    nt.send(hup(3));
    assert_eq!(nt.peer(3).state, StateType::Leader);
}

#[test]
fn leader_election_with_check_quorum() {
    let mut nt = check_quorum_network();
    nt.peer_mut(1).randomized_election_timeout = 11;
    nt.peer_mut(2).randomized_election_timeout = 12;
    // Right after creation votes are granted whatever the timers say.
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(3).state, StateType::Follower);

    // The timeouts were redrawn on the role changes; keep them above the
    // election timeout so that nobody campaigns by itself.
    nt.peer_mut(1).randomized_election_timeout = 11;
    nt.peer_mut(2).randomized_election_timeout = 12;
    expire_lease(&mut nt, 1);
    expire_lease(&mut nt, 2);
    nt.send(hup(3));
    assert_eq!(nt.peer(1).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::Leader);
}

/// A candidate stuck at a higher term (its requests ignored under the
/// lease) is freed when the leader hears its higher term and steps down.
#[test]
fn free_stuck_candidate_with_check_quorum() {
    let mut nt = check_quorum_network();
    let b = nt.peer_mut(2);
    b.randomized_election_timeout = b.election_timeout + 1;
    expire_lease(&mut nt, 2);
    nt.send(hup(1));

    nt.isolate(1);
    nt.send(hup(3));
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::Candidate);
    assert_eq!(nt.peer(3).term, nt.peer(2).term + 1);

    // Again, for good measure.
    nt.send(hup(3));
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::Candidate);
    assert_eq!(nt.peer(3).term, nt.peer(2).term + 2);

    nt.recover();
    let term = nt.peer(1).term;
    nt.send(Message { term, ..msg(1, 3, MessageType::MsgHeartbeat) });
    // The leader learnt the higher term and stepped down.
    assert_eq!(nt.peer(1).state, StateType::Follower);
    assert_eq!(nt.peer(3).term, nt.peer(1).term);

    nt.send(hup(3));
    assert_eq!(nt.peer(3).state, StateType::Leader);
}

/// A node removed from the configuration does not campaign, but follows.
#[test]
fn non_promotable_voter_with_check_quorum() {
    let mut a = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
    let mut b = new_test_raft(2, 10, 1, new_test_storage(&[1], &[]));
    a.check_quorum = true;
    b.check_quorum = true;
    let mut nt = Network::new(vec![NetPeer::Raft(a), NetPeer::Raft(b)]);
    let b = nt.peer_mut(2);
    b.randomized_election_timeout = b.election_timeout + 1;
    // The network made 2 a voter; remove it again.
    b.apply_conf_change(&conf_change(ConfChangeType::ConfChangeRemoveNode, 2)).unwrap();
    assert!(!b.promotable());

    expire_lease(&mut nt, 2);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(2).lead, 1);
}

fn check_quorum_followers_at_term_1() -> Network {
    let peers = (1..=3)
        .map(|id| {
            let mut r = new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]));
            r.check_quorum = true;
            r.become_follower(1, NONE);
            NetPeer::Raft(r)
        })
        .collect();
    Network::new(peers)
}

/// A follower whose election timer fires while the leader's messages are
/// delayed campaigns at a higher term; its answer to the late heartbeat
/// makes the leader step down.
#[test]
fn disruptive_follower() {
    let mut nt = check_quorum_followers_at_term_1();
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::Follower);

    // 3's timer runs out before the leader's heartbeat reaches it.
    let n3 = nt.peer_mut(3);
    n3.randomized_election_timeout = n3.election_timeout + 2;
    for _ in 0..n3.randomized_election_timeout - 1 {
        n3.tick();
    }
    n3.tick();
    let states: Vec<_> = nt.rafts().map(|r| (r.state, r.term)).collect();
    assert_eq!(
        states,
        vec![(StateType::Leader, 2), (StateType::Follower, 2), (StateType::Candidate, 3)]
    );

    // Its vote requests still queued, 3 gets the leader's late heartbeat of
    // a lower term, and answers with its higher term: the leader steps down.
    let term = nt.peer(1).term;
    nt.send(Message { term, ..msg(1, 3, MessageType::MsgHeartbeat) });
    let states: Vec<_> = nt.rafts().map(|r| (r.state, r.term)).collect();
    assert_eq!(
        states,
        vec![(StateType::Follower, 3), (StateType::Follower, 2), (StateType::Candidate, 3)]
    );
}

/// With pre-vote, the isolated follower (with a shorter log) cannot get
/// past the pre-vote, so it does not disrupt the leader.
#[test]
fn disruptive_follower_pre_vote() {
    let mut nt = check_quorum_followers_at_term_1();
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);

    nt.isolate(3);
    for _ in 0..3 {
        nt.send(prop(1, 1, b"somedata"));
    }
    for id in 1..=3 {
        nt.peer_mut(id).pre_vote = true;
    }
    nt.recover();
    nt.send(hup(3));
    let states: Vec<_> = nt.rafts().map(|r| (r.state, r.term)).collect();
    assert_eq!(
        states,
        vec![(StateType::Leader, 2), (StateType::Follower, 2), (StateType::PreCandidate, 2)]
    );

    // The delayed heartbeat does not make the leader step down.
    let term = nt.peer(1).term;
    nt.send(Message { term, ..msg(1, 3, MessageType::MsgHeartbeat) });
    assert_eq!(nt.peer(1).state, StateType::Leader);
}

fn pre_vote_followers_at_term_1(check_quorum: bool) -> Network {
    let peers = (1..=3)
        .map(|id| {
            let mut r = new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]));
            r.become_follower(1, NONE);
            r.pre_vote = true;
            r.check_quorum = check_quorum;
            NetPeer::Raft(r)
        })
        .collect();
    Network::new(peers)
}

/// A node that fell behind while partitioned rejoins as the leader is cut
/// off; with pre-vote, the cluster still elects a leader.
#[test]
fn node_with_smaller_term_can_complete_election() {
    let mut nt = pre_vote_followers_at_term_1(false);
    nt.cut(1, 3);
    nt.cut(2, 3);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);

    nt.send(hup(3));
    assert_eq!(nt.peer(3).state, StateType::PreCandidate);

    nt.send(hup(2));
    let states: Vec<_> = nt.rafts().map(|r| (r.state, r.term)).collect();
    assert_eq!(
        states,
        vec![(StateType::Follower, 3), (StateType::Leader, 3), (StateType::PreCandidate, 1)]
    );

    // 3 comes back just as the leader, 2, goes away.
    nt.recover();
    nt.cut(2, 1);
    nt.cut(2, 3);
    nt.send(hup(3));
    nt.send(hup(1));
    assert!(
        nt.peer(1).state == StateType::Leader || nt.peer(3).state == StateType::Leader,
        "no leader"
    );
}

/// After a split vote, the next round of pre-vote elects a leader.
#[test]
fn pre_vote_with_split_vote() {
    let mut nt = pre_vote_followers_at_term_1(false);
    nt.send(hup(1));

    // The leader goes away; the followers split the vote.
    nt.isolate(1);
    nt.send_all(vec![hup(2), hup(3)]);
    for id in [2, 3] {
        assert_eq!(nt.peer(id).term, 3, "node {id}");
        assert_eq!(nt.peer(id).state, StateType::Candidate, "node {id}");
    }

    // 2's timer fires first.
    nt.send(hup(2));
    assert_eq!((nt.peer(2).state, nt.peer(2).term), (StateType::Leader, 4));
    assert_eq!((nt.peer(3).state, nt.peer(3).term), (StateType::Follower, 4));
}

/// A pre-candidate is subject to CheckQuorum's lease like a candidate.
#[test]
fn pre_vote_with_check_quorum() {
    let mut nt = pre_vote_followers_at_term_1(true);
    nt.send(hup(1));
    nt.isolate(1);
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::Follower);

    // 2 ignores 3's pre-vote: it still knows of a leader.
    nt.send(hup(3));
    nt.send(hup(2));
    assert!(
        nt.peer(2).state == StateType::Leader || nt.peer(3).state == StateType::Follower,
        "no progress"
    );
}

/// A learner campaigns neither on MsgHup nor on MsgTimeoutNow.
#[test]
fn learner_does_not_campaign() {
    let mut n1 = new_test_raft(1, 10, 1, new_test_storage(&[1], &[]));
    n1.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddLearnerNode, 2)).unwrap();
    let mut n2 = new_test_raft(2, 10, 1, new_test_storage(&[1], &[]));
    n2.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddLearnerNode, 2)).unwrap();
    let mut nt = Network::new(vec![NetPeer::Raft(n1), NetPeer::Raft(n2)]);
    nt.send(hup(2));
    assert!(nt.peer(2).is_learner);
    assert_eq!(nt.peer(2).state, StateType::Follower);

    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert_eq!(nt.peer(1).lead, 1);

    // A transfer may have been checked before the target became a learner:
    // then the learner still ignores the MsgTimeoutNow.
    nt.send(msg(1, 2, MessageType::MsgTimeoutNow));
    assert_eq!(nt.peer(2).state, StateType::Follower);
}

/// A rolling upgrade to pre-vote: 1 leads at term 2, 2 follows, 3 was
/// partitioned without pre-vote and campaigned up to term 4 with a shorter
/// log; now it has pre-vote too and the network is healed.
fn pre_vote_migration_cluster() -> Network {
    let peers = (1..=3)
        .map(|id| {
            let mut r = new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]));
            r.become_follower(1, NONE);
            // 3 runs without pre-vote at first, like a node not yet upgraded.
            r.pre_vote = id != 3;
            NetPeer::Raft(r)
        })
        .collect();
    let mut nt = Network::new(peers);
    nt.send(hup(1));

    nt.isolate(3);
    nt.send(prop(1, 1, b"some data"));
    nt.send(hup(3));
    nt.send(hup(3));
    let states: Vec<_> = nt.rafts().map(|r| (r.state, r.term)).collect();
    assert_eq!(
        states,
        vec![(StateType::Leader, 2), (StateType::Follower, 2), (StateType::Candidate, 4)]
    );

    nt.peer_mut(3).pre_vote = true;
    nt.recover();
    nt
}

#[test]
fn pre_vote_migration_can_complete_election() {
    let mut nt = pre_vote_migration_cluster();
    // The leader goes away; 2 and 3 both campaign.
    nt.isolate(1);
    nt.send(hup(3));
    nt.send(hup(2));
    assert_eq!(nt.peer(2).state, StateType::Follower);
    assert_eq!(nt.peer(3).state, StateType::PreCandidate);

    nt.send(hup(3));
    nt.send(hup(2));
    assert!(
        nt.peer(2).state == StateType::Leader || nt.peer(3).state == StateType::Follower,
        "no progress"
    );
}

#[test]
fn pre_vote_migration_frees_the_stuck_pre_candidate() {
    let mut nt = pre_vote_migration_cluster();
    for _ in 0..2 {
        nt.send(hup(3));
        assert_eq!(nt.peer(1).state, StateType::Leader);
        assert_eq!(nt.peer(2).state, StateType::Follower);
        assert_eq!(nt.peer(3).state, StateType::PreCandidate);
    }

    let term = nt.peer(1).term;
    nt.send(Message { term, ..msg(1, 3, MessageType::MsgHeartbeat) });
    // The leader learnt 3's higher term and stepped down, freeing 3.
    assert_eq!(nt.peer(1).state, StateType::Follower);
    assert_eq!(nt.peer(3).term, nt.peer(1).term);
}

/// A leader ignores MsgHup: it neither campaigns nor changes its term.
fn check_campaign_while_leader(pre_vote: bool) {
    let mut cfg = new_test_config(1, 5, 1);
    cfg.pre_vote = pre_vote;
    let mut r = raft_with_config(&cfg, new_test_storage(&[1], &[]));
    assert_eq!(r.state, StateType::Follower);
    r.step(hup(1)).unwrap();
    r.advance_messages_after_append();
    assert_eq!(r.state, StateType::Leader);

    let term = r.term;
    r.step(hup(1)).unwrap();
    r.advance_messages_after_append();
    assert_eq!(r.state, StateType::Leader);
    assert_eq!(r.term, term);
}

#[test]
fn campaign_while_leader() {
    check_campaign_while_leader(false);
}

#[test]
fn pre_campaign_while_leader() {
    check_campaign_while_leader(true);
}

/// Only a voter of its own configuration may campaign.
#[test]
fn promotable() {
    let cases: [(&[u64], bool); 4] =
        [(&[1], true), (&[1, 2, 3], true), (&[], false), (&[2, 3], false)];
    for (i, (peers, want)) in cases.into_iter().enumerate() {
        let r = new_test_raft(1, 5, 1, new_test_storage(peers, &[]));
        assert_eq!(r.promotable(), want, "#{i}");
    }
}
