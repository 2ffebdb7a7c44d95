//! Linearizable reads (ReadIndex): confirmed by a quorum of heartbeats
//! (safe) or by the leader lease (lease-based), from the leader, followers
//! and learners; and held back until a new leader has committed an entry of
//! its term.

use bytes::Bytes;

use super::*;
use crate::StateType;
use crate::config::ReadOnlyOption;
use crate::raft::ReadOnly;

fn read_index(from: u64, to: u64, ctx: &'static [u8]) -> Message {
    Message {
        entries: vec![Entry { data: Bytes::from_static(ctx), ..Entry::default() }],
        ..msg(from, to, MessageType::MsgReadIndex)
    }
}

fn use_lease_reads(r: &mut TestRaft) {
    r.check_quorum = true;
    r.read_only = ReadOnly::new(ReadOnlyOption::LeaseBased);
}

/// Three nodes with 1 elected; 2's election timer has run out, so that it
/// votes even under CheckQuorum.
fn elected_cluster(configure: impl Fn(&mut TestRaft)) -> Network {
    let peers = (1..=3)
        .map(|id| {
            let mut r = new_test_raft(id, 10, 1, new_test_storage(&[1, 2, 3], &[]));
            configure(&mut r);
            NetPeer::Raft(r)
        })
        .collect();
    let mut nt = Network::new(peers);
    let b = nt.peer_mut(2);
    b.randomized_election_timeout = b.election_timeout + 1;
    for _ in 0..b.election_timeout {
        b.tick();
    }
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    nt
}

/// Reads on each node, after ten more entries each time, see the commit
/// index the leader had when the read reached it.
fn check_reads_on_every_node(nt: &mut Network, nodes: &[u64]) {
    let ctxs: [&'static [u8]; 6] = [b"ctx1", b"ctx2", b"ctx3", b"ctx4", b"ctx5", b"ctx6"];
    for (i, (&id, ctx)) in nodes.iter().zip(ctxs).enumerate() {
        for _ in 0..10 {
            nt.send(empty_prop(1, 1));
        }
        nt.send(read_index(id, id, ctx));
        let r = nt.peer_mut(id);
        assert!(!r.read_states.is_empty(), "#{i}");
        let want_index = 11 + 10 * i as u64;
        assert_eq!(r.read_states[0].index, want_index, "#{i}");
        assert_eq!(&r.read_states[0].request_ctx[..], ctx, "#{i}");
        r.read_states.clear();
    }
}

/// Safe reads: confirmed by a round of heartbeats, on the leader and (by
/// forwarding) on followers.
#[test]
fn read_only_option_safe() {
    let mut nt = elected_cluster(|_| {});
    check_reads_on_every_node(&mut nt, &[1, 2, 3, 1, 2, 3]);
}

/// A learner's reads are forwarded like a follower's; the leader's quorum
/// is itself.
#[test]
fn read_only_with_learner() {
    let a = new_test_raft(1, 10, 1, new_test_storage(&[1], &[2]));
    let b = new_test_raft(2, 10, 1, new_test_storage(&[1], &[2]));
    let mut nt = Network::new(vec![NetPeer::Raft(a), NetPeer::Raft(b)]);
    let b = nt.peer_mut(2);
    b.randomized_election_timeout = b.election_timeout + 1;
    for _ in 0..b.election_timeout {
        b.tick();
    }
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);

    let ctxs: [&'static [u8]; 4] = [b"ctx1", b"ctx2", b"ctx3", b"ctx4"];
    for (i, (id, ctx)) in [1, 2, 1, 2].into_iter().zip(ctxs).enumerate() {
        for _ in 0..10 {
            nt.send(empty_prop(1, 1));
            // The leader persists its entries.
            nt.peer_mut(1).next_ents();
        }
        nt.send(read_index(id, id, ctx));
        let r = nt.peer_mut(id);
        assert!(!r.read_states.is_empty(), "#{i}");
        assert_eq!(r.read_states[0].index, 11 + 10 * i as u64, "#{i}");
        assert_eq!(&r.read_states[0].request_ctx[..], ctx, "#{i}");
        r.read_states.clear();
    }
}

/// Lease-based reads: answered at once from the leader lease, on the
/// leader and (by forwarding) on followers.
#[test]
fn read_only_option_lease() {
    let mut nt = elected_cluster(use_lease_reads);
    check_reads_on_every_node(&mut nt, &[1, 2, 3, 1, 2, 3]);
}

/// A lease-based read costs no heartbeat round: the leader answers right
/// away, even with every follower unreachable.
#[test]
fn lease_based_read_needs_no_heartbeat_round() {
    let mut nt = elected_cluster(use_lease_reads);
    nt.isolate(1);
    nt.send(read_index(1, 1, b"lease"));
    let r = nt.peer(1);
    assert_eq!(r.read_states.len(), 1);
    assert_eq!(r.read_states[0].index, r.raft_log.committed());
    assert_eq!(&r.read_states[0].request_ctx[..], b"lease");

    // A safe read, in the same situation, waits for the heartbeats.
    let mut nt = elected_cluster(|_| {});
    nt.isolate(1);
    nt.send(read_index(1, 1, b"safe"));
    assert!(nt.peer(1).read_states.is_empty());
    nt.recover();
    nt.send(beat(1));
    assert_eq!(nt.peer(1).read_states.len(), 1);
}

/// Nodes whose logs hold two committed entries of term 1 (node 1 has
/// applied only the first); node 1 becomes leader at term 2 but cannot
/// commit its empty entry.
fn new_leader_without_commit(configure: impl Fn(&mut TestRaft)) -> Network {
    // (id, committed, applied, compacted up to)
    let nodes = [(1, 1, 1, 0), (2, 2, 2, 2), (3, 2, 2, 2)];
    let peers = nodes
        .into_iter()
        .map(|(id, committed, applied, compact)| {
            let storage = new_test_storage(&[1, 2, 3], &[]);
            storage.append(&ents(1, &[1, 1])).unwrap();
            storage.set_hard_state(HardState { term: 1, commit: committed, vote: 0 });
            if compact != 0 {
                storage.compact(compact).unwrap();
            }
            let mut cfg = new_test_config(id, 10, 1);
            cfg.applied = applied;
            let mut r = raft_with_config(&cfg, storage);
            configure(&mut r);
            NetPeer::Raft(r)
        })
        .collect();
    let mut nt = Network::new(peers);
    // Keep the leader from committing anything in its term.
    nt.ignore(MessageType::MsgApp);
    nt.send(hup(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    nt
}

/// A leader that has not yet committed an entry of its term may not know
/// the latest commit index: it holds read requests until it has, then
/// answers them; later requests are answered at once.
fn check_read_index_before_first_commit(configure: impl Fn(&mut TestRaft)) {
    let mut nt = new_leader_without_commit(configure);

    nt.send(read_index(1, 1, b"ctx"));
    assert!(nt.peer(1).read_states.is_empty(), "answered before committing in its term");
    assert_eq!(nt.peer(1).pending_read_index_messages.len(), 1, "the request was not queued");

    nt.recover();
    // Commit an entry of the leader's term.
    let sm = nt.peer_mut(1);
    for _ in 0..sm.heartbeat_timeout {
        sm.tick();
    }
    nt.send(empty_prop(1, 1));
    let sm = nt.peer(1);
    assert_eq!(sm.raft_log.committed(), 4);
    assert_eq!(sm.raft_log.term_or_zero(sm.raft_log.committed()), sm.term);

    // The queued request was answered.
    assert_eq!(sm.read_states.len(), 1);
    assert_eq!(sm.read_states[0].index, 4);
    assert_eq!(&sm.read_states[0].request_ctx[..], b"ctx");
    assert!(sm.pending_read_index_messages.is_empty());

    // Later requests are answered right away.
    nt.send(read_index(1, 1, b"ctx"));
    let sm = nt.peer(1);
    assert_eq!(sm.read_states.len(), 2);
    assert_eq!(sm.read_states[1].index, 4);
    assert_eq!(&sm.read_states[1].request_ctx[..], b"ctx");
}

#[test]
fn read_index_before_first_commit_in_term_is_queued_then_answered() {
    check_read_index_before_first_commit(|_| {});
}

#[test]
fn lease_read_index_before_first_commit_in_term_is_queued_then_answered() {
    check_read_index_before_first_commit(use_lease_reads);
}

/// A follower's read reaching a new leader before its first commit waits
/// too, and is answered to the follower afterwards.
#[test]
fn forwarded_read_index_before_first_commit_in_term_is_answered_later() {
    let mut nt = new_leader_without_commit(|_| {});
    // Heartbeats (appends are still dropped) tell 2 who leads.
    nt.send(beat(1));
    assert_eq!(nt.peer(2).lead, 1);
    assert_eq!(nt.peer(1).raft_log.committed(), 1);
    nt.send(read_index(2, 2, b"from 2"));
    assert!(nt.peer(2).read_states.is_empty());
    assert_eq!(nt.peer(1).pending_read_index_messages.len(), 1);

    nt.recover();
    // A heartbeat round resumes the probes that went unanswered: the empty
    // entry of the leader's term commits, and the read is answered with
    // that commit index.
    nt.send(beat(1));
    assert_eq!(nt.peer(1).raft_log.committed(), 3);
    assert!(nt.peer(1).pending_read_index_messages.is_empty());
    let r = nt.peer(2);
    assert_eq!(r.read_states.len(), 1);
    assert_eq!(r.read_states[0].index, 3);
    assert_eq!(&r.read_states[0].request_ctx[..], b"from 2");
}

/// How many of `msgs` answer a read (the others catch the follower's log
/// up).
fn read_index_resps(msgs: Vec<Message>) -> usize {
    msgs.iter().filter(|m| m.msg_type() == MessageType::MsgReadIndexResp).count()
}

/// Answered safe reads leave nothing behind in the leader's queue.
#[test]
fn answered_reads_free_the_leaders_queue() {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2], &[]));
    r.become_candidate();
    r.become_leader();
    let last = r.raft_log.last_index();
    r.raft_log.commit_to(last);
    let ctx = Bytes::from_static(b"ctx");

    // Raft thesis 6.4, step 2: the leader confirms its leadership with a
    // round of heartbeats carrying the request's context.
    r.step(read_index(2, 0, b"ctx")).unwrap();
    let msgs = r.read_messages();
    assert_eq!(types(&msgs), vec![MessageType::MsgHeartbeat]);
    assert_eq!(msgs[0].context, ctx);
    assert_eq!(r.last_pending_read_ctx(), ctx);

    // Step 3: a quorum (here 2 alone) acknowledges: the read is answered
    // and dequeued.
    r.step(Message { context: ctx.clone().into(), ..msg(2, 0, MessageType::MsgHeartbeatResp) })
        .unwrap();
    assert_eq!(read_index_resps(r.read_messages()), 1);
    assert!(r.last_pending_read_ctx().is_empty());

    // The same context can be asked again, and is answered again: nothing
    // of the first request remained.
    r.step(read_index(2, 0, b"ctx")).unwrap();
    r.read_messages();
    r.step(Message { context: ctx.clone().into(), ..msg(2, 0, MessageType::MsgHeartbeatResp) })
        .unwrap();
    assert_eq!(read_index_resps(r.read_messages()), 1);
    assert!(r.last_pending_read_ctx().is_empty());
}

/// A lone voter answers reads at once, whatever the option.
#[test]
fn single_voter_answers_reads_at_once() {
    for option in [ReadOnlyOption::Safe, ReadOnlyOption::LeaseBased] {
        let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1], &[]));
        r.read_only = ReadOnly::new(option);
        r.check_quorum = true;
        r.step(hup(1)).unwrap();
        r.advance_messages_after_append();
        assert_eq!(r.state, StateType::Leader);
        r.step(read_index(1, 1, b"solo")).unwrap();
        assert_eq!(r.read_states.len(), 1, "{option:?}");
        assert_eq!(r.read_states[0].index, r.raft_log.committed(), "{option:?}");
        assert!(r.read_messages().is_empty(), "{option:?}");
    }
}
