//! Log replication: proposals, appends and their answers, commitment,
//! heartbeats, progress states, fast log backtracking, proposal forwarding
//! and the uncommitted-size limit.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;

use super::*;
use crate::StateType;
use crate::error::{DropReason, Error};
use crate::raftpb::ConfChangeType;
use crate::tracker::ProgressState;
use crate::util::{NONE, payloads_size};

fn data_entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
    Entry { term, index, data: Bytes::from_static(data), ..Entry::default() }
}

fn new_leader(peers: &[u64]) -> TestRaft {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(peers, &[]));
    r.become_candidate();
    r.become_leader();
    r
}

/// The leader's own progress follows its log only once its entries are
/// durable (the self-acknowledgement waits for the append).
#[test]
fn progress_leader() {
    let mut r = new_leader(&[1, 2]);
    r.pr_mut(2).become_replicate();

    for i in 0..5 {
        r.step(prop(1, 1, b"foo")).unwrap_or_else(|e| panic!("#{i}: {e}"));
    }
    assert_eq!(r.pr(1).matched, 0);
    let unstable = r.raft_log.next_unstable_ents();
    assert_eq!(unstable.len(), 6);
    assert!(unstable[0].data.is_empty());
    assert_eq!(&unstable[5].data[..], b"foo");

    r.advance_messages_after_append();
    assert_eq!(r.pr(1).matched, 6);
    assert_eq!(r.pr(1).next, 7);
}

/// A heartbeat response resumes a paused follower.
#[test]
fn progress_resumed_by_heartbeat_response() {
    let mut r = new_leader(&[1, 2]);
    r.pr_mut(2).msg_app_flow_paused = true;
    r.step(beat(1)).unwrap();
    assert!(r.pr(2).msg_app_flow_paused);

    r.pr_mut(2).become_replicate();
    assert!(!r.pr(2).msg_app_flow_paused);
    r.pr_mut(2).msg_app_flow_paused = true;
    r.step(msg(2, 1, MessageType::MsgHeartbeatResp)).unwrap();
    assert!(!r.pr(2).msg_app_flow_paused);
}

/// A probing follower gets one append at a time.
#[test]
fn progress_paused_while_probing() {
    let mut r = new_leader(&[1, 2]);
    for _ in 0..3 {
        r.step(prop(1, 1, b"somedata")).unwrap();
    }
    assert_eq!(r.read_messages().len(), 1);
}

/// The leader refuses proposals once its uncommitted tail reaches the
/// limit, but always takes one when the tail is empty, and always takes
/// empty entries.
#[test]
fn uncommitted_entry_limit() {
    // Many entries, so that a wrong size computation would show.
    const MAX_ENTRIES: usize = 1024;
    let test_entry = Entry { data: Bytes::from_static(b"testdata"), ..Entry::default() };
    let max_entry_size = MAX_ENTRIES as u64 * payloads_size(std::slice::from_ref(&test_entry));
    assert_eq!(payloads_size(&[Entry::default()]), 0);

    let mut cfg = new_test_config(1, 5, 1);
    cfg.max_uncommitted_entries_size = max_entry_size;
    // Keep the inflight limit out of the way.
    cfg.max_inflight_msgs = 2 * 1024;
    let mut r = raft_with_config(&cfg, new_test_storage(&[1, 2, 3], &[]));
    r.become_candidate();
    r.become_leader();
    assert_eq!(r.uncommitted_size, 0);

    // Both followers replicate; the tail is accounted from zero.
    let num_followers = 2;
    r.pr_mut(2).become_replicate();
    r.pr_mut(3).become_replicate();
    r.uncommitted_size = 0;

    let prop_msg = Message { entries: vec![test_entry.clone()], ..msg(1, 1, MessageType::MsgProp) };
    for i in 0..MAX_ENTRIES {
        r.step(prop_msg.clone()).unwrap_or_else(|e| panic!("#{i}: {e}"));
    }
    // One more is too many.
    assert!(matches!(
        r.step(prop_msg.clone()),
        Err(Error::ProposalDropped(DropReason::QuotaExceeded))
    ));

    // As if they were committed, release their quota.
    let msgs = r.read_messages();
    assert_eq!(msgs.len(), MAX_ENTRIES * num_followers);
    r.reduce_uncommitted_size(max_entry_size);
    assert_eq!(r.uncommitted_size, 0);

    // A large proposal is accepted when the tail is empty, even above the
    // limit...
    let large = vec![test_entry.clone(); 2 * MAX_ENTRIES];
    let large_size = payloads_size(&large);
    r.step(Message { entries: large, ..msg(1, 1, MessageType::MsgProp) }).unwrap();
    // ...but then nothing more is.
    assert!(matches!(r.step(prop_msg), Err(Error::ProposalDropped(DropReason::QuotaExceeded))));
    // Except an empty entry: the new leader's and the one leaving a joint
    // configuration are such.
    r.step(empty_prop(1, 1)).unwrap();

    let msgs = r.read_messages();
    assert_eq!(msgs.len(), 2 * num_followers);
    r.reduce_uncommitted_size(large_size);
    assert_eq!(r.uncommitted_size, 0);
}

#[test]
fn log_replication() {
    let somedata = || prop(1, 1, b"somedata");
    let cases: Vec<(Vec<Message>, u64)> = vec![
        (vec![somedata()], 2),
        (vec![somedata(), msg(1, 2, MessageType::MsgHup), Message { to: 2, ..somedata() }], 4),
    ];
    for (i, (msgs, want_committed)) in cases.into_iter().enumerate() {
        let mut nt = Network::fresh(3);
        nt.send(hup(1));
        for m in &msgs {
            nt.send(m.clone());
        }
        let props: Vec<&Message> =
            msgs.iter().filter(|m| m.msg_type() == MessageType::MsgProp).collect();
        for id in 1..=3 {
            let r = nt.peer_mut(id);
            assert_eq!(r.raft_log.committed(), want_committed, "#{i}.{id}");
            let applied: Vec<Entry> =
                r.next_ents().into_iter().filter(|e| !e.data.is_empty()).collect();
            assert_eq!(applied.len(), props.len(), "#{i}.{id}");
            for (e, m) in applied.iter().zip(&props) {
                assert_eq!(e.data, m.entries[0].data, "#{i}.{id}");
            }
        }
    }
}

/// A learner receives and commits the leader's entries.
#[test]
fn learner_log_replication() {
    let mut n1 = new_test_raft(1, 10, 1, new_test_storage(&[1], &[2]));
    let mut n2 = new_test_raft(2, 10, 1, new_test_storage(&[1], &[2]));
    n1.become_follower(1, NONE);
    n2.become_follower(1, NONE);
    let mut nt = Network::new(vec![NetPeer::Raft(n1), NetPeer::Raft(n2)]);

    let n1 = nt.peer_mut(1);
    n1.randomized_election_timeout = n1.election_timeout;
    for _ in 0..n1.election_timeout {
        n1.tick();
    }
    n1.advance_messages_after_append();
    nt.send(beat(1));
    assert_eq!(nt.peer(1).state, StateType::Leader);
    assert!(nt.peer(2).is_learner);

    nt.send(prop(1, 1, b"somedata"));
    assert_eq!(nt.peer(1).raft_log.committed(), 2);
    assert_eq!(nt.peer(2).raft_log.committed(), 2);
    assert_eq!(nt.peer(1).pr(2).matched, nt.peer(2).raft_log.committed());
}

#[test]
fn single_node_commit() {
    let mut nt = Network::fresh(1);
    nt.send(hup(1));
    nt.send(prop(1, 1, b"some data"));
    nt.send(prop(1, 1, b"some data"));
    assert_eq!(nt.peer(1).raft_log.committed(), 3);
}

/// A new leader cannot commit entries of earlier terms until an entry of
/// its own term is replicated.
#[test]
fn cannot_commit_without_new_term_entry() {
    let mut nt = Network::fresh(5);
    nt.send(hup(1));
    // 1 cannot reach 3, 4 and 5.
    for id in 3..=5 {
        nt.cut(1, id);
    }
    nt.send(prop(1, 1, b"some data"));
    nt.send(prop(1, 1, b"some data"));
    assert_eq!(nt.peer(1).raft_log.committed(), 1);

    nt.recover();
    // Keep the new leader's empty entry from being replicated.
    nt.ignore(MessageType::MsgApp);
    nt.send(hup(2));
    // Nothing of the earlier term is committed.
    assert_eq!(nt.peer(2).raft_log.committed(), 1);

    nt.recover();
    nt.send(beat(2));
    // An entry of the current term commits everything before it.
    nt.send(prop(2, 2, b"some data"));
    assert_eq!(nt.peer(2).raft_log.committed(), 5);
}

/// The new leader's empty entry commits the entries of earlier terms.
#[test]
fn commit_without_new_term_entry() {
    let mut nt = Network::fresh(5);
    nt.send(hup(1));
    for id in 3..=5 {
        nt.cut(1, id);
    }
    nt.send(prop(1, 1, b"some data"));
    nt.send(prop(1, 1, b"some data"));
    assert_eq!(nt.peer(1).raft_log.committed(), 1);

    nt.recover();
    // 2 is elected at term 2; its empty entry commits everything.
    nt.send(hup(2));
    assert_eq!(nt.peer(1).raft_log.committed(), 4);
}

/// An append from a leader of an old term is ignored.
#[test]
fn old_messages_are_ignored() {
    let mut nt = Network::fresh(3);
    // 1 leads at term 3.
    nt.send(hup(1));
    nt.send(hup(2));
    nt.send(hup(1));
    // An old leader of term 2 tries to make progress.
    nt.send(Message { term: 2, entries: ents(3, &[2]), ..msg(2, 1, MessageType::MsgApp) });
    nt.send(prop(1, 1, b"somedata"));

    let mut want_entries = ents(1, &[1, 2, 3, 3]);
    want_entries[3].data = Bytes::from_static(b"somedata");
    let want = (4, 0, want_entries);
    for r in nt.rafts() {
        assert_eq!(r.log_summary(), want, "node {}", r.id);
    }
}

/// A proposal commits on every node when a quorum is reachable; without
/// one, nothing is appended anywhere.
#[test]
fn proposal() {
    use NetPeer::{BlackHole, New};
    let cases = vec![
        (vec![New, New, New], true),
        (vec![New, New, BlackHole], true),
        (vec![New, BlackHole, BlackHole], false),
        (vec![New, BlackHole, BlackHole, New], false),
        (vec![New, BlackHole, BlackHole, New, New], true),
    ];
    for (j, (peers, success)) in cases.into_iter().enumerate() {
        let mut nt = Network::new(peers);
        nt.send(hup(1));
        nt.send(prop(1, 1, b"somedata"));

        let want = if success {
            (
                2,
                0,
                vec![
                    Entry { term: 1, index: 1, ..Entry::default() },
                    data_entry(1, 2, b"somedata"),
                ],
            )
        } else {
            (0, 0, vec![])
        };
        for r in nt.rafts() {
            assert_eq!(r.log_summary(), want, "#{j}, node {}", r.id);
        }
        assert_eq!(nt.peer(1).term, 1, "#{j}");
    }
}

/// A proposal made on a follower is forwarded to the leader.
#[test]
fn proposal_by_proxy() {
    for (j, peers) in [
        vec![NetPeer::New, NetPeer::New, NetPeer::New],
        vec![NetPeer::New, NetPeer::New, NetPeer::BlackHole],
    ]
    .into_iter()
    .enumerate()
    {
        let mut nt = Network::new(peers);
        nt.send(hup(1));
        nt.send(prop(2, 2, b"somedata"));

        let want = (
            2,
            0,
            vec![Entry { term: 1, index: 1, ..Entry::default() }, data_entry(1, 2, b"somedata")],
        );
        for r in nt.rafts() {
            assert_eq!(r.log_summary(), want, "#{j}, node {}", r.id);
        }
        assert_eq!(nt.peer(1).term, 1, "#{j}");
    }
}

/// With proposal forwarding disabled, a follower drops proposals instead of
/// sending them to the leader.
#[test]
fn disabled_proposal_forwarding() {
    let r1 = new_test_raft(1, 10, 1, new_test_storage(&[1, 2, 3], &[]));
    let r2 = new_test_raft(2, 10, 1, new_test_storage(&[1, 2, 3], &[]));
    let mut cfg3 = new_test_config(3, 10, 1);
    cfg3.disable_proposal_forwarding = true;
    let r3 = raft_with_config(&cfg3, new_test_storage(&[1, 2, 3], &[]));
    let mut nt = Network::new(vec![NetPeer::Raft(r1), NetPeer::Raft(r2), NetPeer::Raft(r3)]);
    nt.send(hup(1));

    // 2 forwards.
    let r2 = nt.peer_mut(2);
    r2.step(prop(2, 2, b"testdata")).unwrap();
    assert_eq!(types(&r2.msgs), vec![MessageType::MsgProp]);
    assert_eq!(r2.msgs[0].to, 1);

    // 3 does not, and says the proposal was dropped.
    let r3 = nt.peer_mut(3);
    assert_eq!(r3.lead, 1);
    assert!(matches!(
        r3.step(prop(3, 3, b"testdata")),
        Err(Error::ProposalDropped(DropReason::ForwardingDisabled))
    ));
    assert!(r3.msgs.is_empty());
    assert!(r3.read_messages().is_empty());

    // Nothing reached the leader's log.
    assert_eq!(nt.peer(1).raft_log.last_index(), 1);
}

/// The commit index is the highest index a quorum has, if it is of the
/// leader's term.
#[test]
fn commit() {
    // (matches of nodes 1.., log terms from index 1, term, want commit)
    let cases: Vec<(Vec<u64>, Vec<u64>, u64, u64)> = vec![
        // Single node.
        (vec![1], vec![1], 1, 1),
        (vec![1], vec![1], 2, 0),
        (vec![2], vec![1, 2], 2, 2),
        (vec![1], vec![2], 2, 1),
        // Odd number of nodes.
        (vec![2, 1, 1], vec![1, 2], 1, 1),
        (vec![2, 1, 1], vec![1, 1], 2, 0),
        (vec![2, 1, 2], vec![1, 2], 2, 2),
        (vec![2, 1, 2], vec![1, 1], 2, 0),
        // Even number of nodes.
        (vec![2, 1, 1, 1], vec![1, 2], 1, 1),
        (vec![2, 1, 1, 1], vec![1, 1], 2, 0),
        (vec![2, 1, 1, 2], vec![1, 2], 1, 1),
        (vec![2, 1, 1, 2], vec![1, 1], 2, 0),
        (vec![2, 1, 2, 2], vec![1, 2], 2, 2),
        (vec![2, 1, 2, 2], vec![1, 1], 2, 0),
    ];
    for (i, (matches, terms, term, want)) in cases.into_iter().enumerate() {
        let storage = new_test_storage(&[1], &[]);
        storage.append(&ents(1, &terms)).unwrap();
        storage.set_hard_state(HardState { term, ..HardState::default() });
        let mut r = new_test_raft(1, 10, 2, storage);
        for (j, &matched) in matches.iter().enumerate() {
            let id = j as u64 + 1;
            if id > 1 {
                r.apply_conf_change(&conf_change(ConfChangeType::ConfChangeAddNode, id)).unwrap();
            }
            let pr = r.pr_mut(id);
            pr.matched = matched;
            pr.next = matched + 1;
        }
        r.maybe_commit();
        assert_eq!(r.raft_log.committed(), want, "#{i}");
    }
}

/// A follower's handling of appends: it refuses one whose previous entry
/// it lacks, replaces conflicting entries, and commits up to the leader's
/// commit index but not past the last new entry.
#[test]
fn handle_msg_app() {
    // etcd sends some of these from a leader of a lower term than the
    // entries they carry, which no leader does and which the state machine
    // here refuses outright: those messages come from a leader of the
    // entries' term instead. The follower's answers do not depend on it.
    let app = |term, log_term, index, commit, entries: Vec<Entry>| Message {
        term,
        log_term,
        index,
        commit,
        entries,
        ..msg(2, 1, MessageType::MsgApp)
    };
    // (message, last index, commit, rejected)
    let cases = vec![
        // No entry matching the previous one.
        (app(3, 3, 2, 3, vec![]), 2, 0, true),
        (app(3, 3, 3, 3, vec![]), 2, 0, true),
        // Conflicting entries are replaced, new ones appended.
        (app(2, 1, 1, 1, vec![]), 2, 1, false),
        (app(2, 0, 0, 1, ents(1, &[2])), 1, 1, false),
        (app(2, 2, 2, 3, ents(3, &[2, 2])), 4, 3, false),
        (app(2, 2, 2, 4, ents(3, &[2])), 3, 3, false),
        (app(2, 1, 1, 4, ents(2, &[2])), 2, 2, false),
        // Commits up to the last new entry.
        (app(1, 1, 1, 3, vec![]), 2, 1, false),
        (app(2, 1, 1, 3, ents(2, &[2])), 2, 2, false),
        (app(2, 2, 2, 3, vec![]), 2, 2, false),
        (app(2, 2, 2, 4, vec![]), 2, 2, false),
    ];
    for (i, (m, want_index, want_commit, want_reject)) in cases.into_iter().enumerate() {
        let storage = new_test_storage(&[1], &[]);
        storage.append(&ents(1, &[1, 2])).unwrap();
        let mut r = new_test_raft(1, 10, 1, storage);
        r.become_follower(2, NONE);

        r.handle_append_entries(m);
        assert_eq!(r.raft_log.last_index(), want_index, "#{i}");
        assert_eq!(r.raft_log.committed(), want_commit, "#{i}");
        let msgs = r.read_messages();
        assert_eq!(msgs.len(), 1, "#{i}");
        assert_eq!(msgs[0].reject, want_reject, "#{i}");
    }
}

/// A follower commits up to a heartbeat's commit index, never down.
#[test]
fn handle_heartbeat() {
    let commit = 2;
    for (i, (m_commit, want)) in
        [(commit + 1, commit + 1), (commit - 1, commit)].into_iter().enumerate()
    {
        let storage = new_test_storage(&[1, 2], &[]);
        storage.append(&ents(1, &[1, 2, 3])).unwrap();
        let mut r = new_test_raft(1, 5, 1, storage);
        r.become_follower(2, 2);
        r.raft_log.commit_to(commit);
        r.handle_heartbeat(Message {
            term: 2,
            commit: m_commit,
            ..msg(2, 1, MessageType::MsgHeartbeat)
        })
        .unwrap();
        assert_eq!(r.raft_log.committed(), want, "#{i}");
        let msgs = r.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgHeartbeatResp], "#{i}");
    }
}

/// A heartbeat whose commit is past the last index is refused: the commit
/// index stays where it was and nothing is answered.
#[test]
fn handle_heartbeat_past_last_index_is_refused() {
    let storage = new_test_storage(&[1, 2], &[]);
    storage.append(&ents(1, &[1, 2, 3])).unwrap();
    let mut r = new_test_raft(1, 5, 1, storage);
    r.become_follower(2, 2);
    r.raft_log.commit_to(2);
    let res =
        r.handle_heartbeat(Message { term: 2, commit: 4, ..msg(2, 1, MessageType::MsgHeartbeat) });
    assert!(matches!(
        res,
        Err(crate::Error::InvalidMessage(crate::InvalidMessage::PastLastIndex(_, 2, 4, 3)))
    ));
    assert_eq!(r.raft_log.committed(), 2);
    assert!(r.read_messages().is_empty());
}

/// A heartbeat response from a follower that is behind re-sends the
/// append; once the follower caught up, heartbeats send nothing more.
#[test]
fn handle_heartbeat_response() {
    let storage = new_test_storage(&[1, 2], &[]);
    storage.append(&ents(1, &[1, 2, 3])).unwrap();
    let mut r = new_test_raft(1, 5, 1, storage);
    r.become_candidate();
    r.become_leader();
    let last = r.raft_log.last_index();
    r.raft_log.commit_to(last);

    let heartbeat_resp = msg(2, 0, MessageType::MsgHeartbeatResp);
    r.step(heartbeat_resp.clone()).unwrap();
    let msgs = r.read_messages();
    assert_eq!(types(&msgs), vec![MessageType::MsgApp]);
    // Again.
    r.step(heartbeat_resp.clone()).unwrap();
    let msgs = r.read_messages();
    assert_eq!(types(&msgs), vec![MessageType::MsgApp]);

    // Once the append is acknowledged, heartbeats send no append.
    let index = msgs[0].index + msgs[0].entries.len() as u64;
    r.step(Message { index, ..msg(2, 0, MessageType::MsgAppResp) }).unwrap();
    r.read_messages();
    r.step(heartbeat_resp).unwrap();
    assert!(r.read_messages().is_empty());
}

/// An acknowledgement lets the follower out of the probe wait; followers
/// still waiting get nothing new.
#[test]
fn msg_app_resp_wait_reset() {
    let mut r = new_leader(&[1, 2, 3]);
    // Persists the empty entry (the leader acknowledges it).
    r.next_ents();

    // 2 acknowledges it: committed.
    r.step(Message { index: 1, ..msg(2, 0, MessageType::MsgAppResp) }).unwrap();
    assert_eq!(r.raft_log.committed(), 1);
    // Drop the appends telling the followers.
    r.read_messages();

    // A new proposal goes to 2, which is no longer waiting; 3 still is.
    r.step(empty_prop(1, 0)).unwrap();
    let msgs = r.read_messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].msg_type(), msgs[0].to), (MessageType::MsgApp, 2));
    assert_eq!(msgs[0].entries.len(), 1);
    assert_eq!(msgs[0].entries[0].index, 2);

    // 3 acknowledges the first entry: the new one is sent to it.
    r.step(Message { index: 1, ..msg(3, 0, MessageType::MsgAppResp) }).unwrap();
    let msgs = r.read_messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].msg_type(), msgs[0].to), (MessageType::MsgApp, 3));
    assert_eq!(msgs[0].entries.len(), 1);
    assert_eq!(msgs[0].entries[0].index, 2);
}

/// The leader's handling of an append response, from a progress at
/// match 0, next 3.
#[test]
fn leader_app_resp() {
    // (index, rejected, match, next, messages, their index, their commit)
    let cases = [
        // Stale: nothing happens.
        (3, true, 0, 3, 0, 0, 0),
        // Refused: next goes down and a probe goes out.
        (2, true, 0, 2, 1, 1, 0),
        // Accepted: the leader commits and tells everyone.
        (2, false, 2, 4, 2, 2, 2),
        // A probing follower at 0 acknowledges 0, its match: it moves to
        // replicate and gets everything (1 to 3) at once.
        (0, false, 0, 4, 1, 0, 0),
    ];
    for (i, (index, reject, want_match, want_next, want_msgs, want_index, want_commit)) in
        cases.into_iter().enumerate()
    {
        // The leader's term is 1, so the last log term must be 1 to commit.
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2, 3], &[]));
        r.raft_log = log_with_entries(ents(0, &[0, 1, 1]));
        r.become_candidate();
        r.become_leader();
        r.read_messages();
        let term = r.term;
        r.step(Message {
            index,
            term,
            reject,
            reject_hint: index,
            ..msg(2, 0, MessageType::MsgAppResp)
        })
        .unwrap();

        assert_eq!(r.pr(2).matched, want_match, "#{i}");
        assert_eq!(r.pr(2).next, want_next, "#{i}");
        let msgs = r.read_messages();
        assert_eq!(msgs.len(), want_msgs, "#{i}");
        for m in &msgs {
            assert_eq!(m.index, want_index, "#{i}: {m:?}");
            assert_eq!(m.commit, want_commit, "#{i}: {m:?}");
        }
    }
}

/// On MsgBeat the leader sends heartbeats (no index, term or entries) with
/// each follower's commit index capped at its match.
#[test]
fn bcast_beat() {
    let offset = 1000;
    let storage = MemoryStorage::new();
    let mut snap = crate::raftpb::Snapshot::default();
    snap.metadata.index = offset;
    snap.metadata.term = 1;
    snap.metadata.conf_state.voters = vec![1, 2, 3];
    storage.apply_snapshot(snap).unwrap();
    let mut r = new_test_raft(1, 10, 1, storage);
    r.term = 1;
    r.become_candidate();
    r.become_leader();
    for i in 0..10 {
        r.must_append_entry(vec![Entry { index: i + 1, ..Entry::default() }]);
    }
    r.advance_messages_after_append();
    // A slow follower and one that is up to date.
    let last = r.raft_log.last_index();
    (r.pr_mut(2).matched, r.pr_mut(2).next) = (5, 6);
    (r.pr_mut(3).matched, r.pr_mut(3).next) = (last, last + 1);

    r.step(msg(0, 0, MessageType::MsgBeat)).unwrap();
    let msgs = r.read_messages();
    assert_eq!(msgs.len(), 2);
    let committed = r.raft_log.committed();
    for m in &msgs {
        assert_eq!(m.msg_type(), MessageType::MsgHeartbeat);
        assert_eq!(m.index, 0);
        assert_eq!(m.log_term, 0);
        assert_eq!(m.commit, committed.min(r.pr(m.to).matched), "to {}", m.to);
        assert!(m.entries.is_empty());
    }
}

/// Only leaders act on MsgBeat.
#[test]
fn recv_msg_beat() {
    for (i, (state, want_msgs)) in
        [(StateType::Leader, 2), (StateType::Candidate, 0), (StateType::Follower, 0)]
            .into_iter()
            .enumerate()
    {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2, 3], &[]));
        r.raft_log = log_with_entries(ents(0, &[0, 1, 1]));
        r.term = 1;
        r.state = state;
        r.step(beat(1)).unwrap();
        let msgs = r.read_messages();
        assert_eq!(msgs.len(), want_msgs, "#{i}");
        assert!(msgs.iter().all(|m| m.msg_type() == MessageType::MsgHeartbeat), "#{i}");
    }
}

/// A replicating follower's next index moves optimistically past what was
/// sent; a probing one's does not.
#[test]
fn leader_increase_next() {
    let previous = ents(1, &[1, 2, 3]);
    // Previous entries, then the empty entry and the proposal.
    let cases = [
        (ProgressState::Replicate, 2, previous.len() as u64 + 1 + 1 + 1),
        (ProgressState::Probe, 2, 2),
    ];
    for (i, (state, next, want_next)) in cases.into_iter().enumerate() {
        let mut r = new_test_raft(1, 10, 1, new_test_storage(&[1, 2], &[]));
        r.raft_log.append(previous.clone());
        r.become_candidate();
        r.become_leader();
        r.pr_mut(2).state = state;
        r.pr_mut(2).next = next;
        r.step(prop(1, 1, b"somedata")).unwrap();
        assert_eq!(r.pr(2).next, want_next, "#{i}");
    }
}

/// A probing follower gets one append, then nothing until a heartbeat
/// response says it is alive.
#[test]
fn send_append_for_progress_probe() {
    let mut r = new_leader(&[1, 2]);
    r.read_messages();
    r.pr_mut(2).become_probe();

    for round in 0..3 {
        if round == 0 {
            // Only the first append goes out; then the flow is paused until
            // a heartbeat response.
            r.must_append_entry(vec![Entry {
                data: Bytes::from_static(b"somedata"),
                ..Entry::default()
            }]);
            r.send_append(2);
            let msgs = r.read_messages();
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].index, 0);
        }
        assert!(r.pr(2).msg_app_flow_paused, "round {round}");
        for _ in 0..10 {
            r.must_append_entry(vec![Entry {
                data: Bytes::from_static(b"somedata"),
                ..Entry::default()
            }]);
            r.send_append(2);
            assert!(r.read_messages().is_empty(), "round {round}");
        }
        // A heartbeat does not resume it.
        for _ in 0..r.heartbeat_timeout {
            r.step(beat(1)).unwrap();
        }
        assert!(r.pr(2).msg_app_flow_paused, "round {round}");
        let msgs = r.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgHeartbeat], "round {round}");
    }

    // A heartbeat response lets one more append out.
    r.step(msg(2, 1, MessageType::MsgHeartbeatResp)).unwrap();
    let msgs = r.read_messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].index, 0);
    assert!(r.pr(2).msg_app_flow_paused);
}

/// A replicating follower gets every new entry at once.
#[test]
fn send_append_for_progress_replicate() {
    let mut r = new_leader(&[1, 2]);
    r.read_messages();
    r.pr_mut(2).become_replicate();
    for i in 0..10 {
        r.must_append_entry(vec![Entry {
            data: Bytes::from_static(b"somedata"),
            ..Entry::default()
        }]);
        r.send_append(2);
        assert_eq!(r.read_messages().len(), 1, "#{i}");
    }
}

/// A follower receiving a snapshot gets no appends.
#[test]
fn send_append_for_progress_snapshot() {
    let mut r = new_leader(&[1, 2]);
    r.read_messages();
    r.pr_mut(2).become_snapshot(10);
    for i in 0..10 {
        r.must_append_entry(vec![Entry {
            data: Bytes::from_static(b"somedata"),
            ..Entry::default()
        }]);
        r.send_append(2);
        assert!(r.read_messages().is_empty(), "#{i}");
    }
}

/// An unreachable replicating follower falls back to probing from its
/// match.
#[test]
fn recv_msg_unreachable() {
    let storage = new_test_storage(&[1, 2], &[]);
    storage.append(&ents(1, &[1, 2, 3])).unwrap();
    let mut r = new_test_raft(1, 10, 1, storage);
    r.become_candidate();
    r.become_leader();
    r.read_messages();
    r.pr_mut(2).matched = 3;
    r.pr_mut(2).become_replicate();
    r.pr_mut(2).next = 6;

    r.step(msg(2, 1, MessageType::MsgUnreachable)).unwrap();
    assert_eq!(r.pr(2).state, ProgressState::Probe);
    assert_eq!(r.pr(2).next, r.pr(2).matched + 1);
}

/// Rejection hints let the leader find the point where the logs diverge in
/// one round trip per term instead of one per entry, from either side.
#[test]
fn fast_log_rejection() {
    struct Case {
        leader_log: Vec<Entry>,
        follower_log: Vec<Entry>,
        // The follower's log is compacted up to here (0: not).
        follower_compact: u64,
        reject_hint_term: u64,
        reject_hint_index: u64,
        next_append_term: u64,
        next_append_index: u64,
    }
    let case = |leader: &[u64], follower: &[u64], compact, ht, hi, nt, ni| Case {
        leader_log: ents(1, leader),
        follower_log: ents(1, follower),
        follower_compact: compact,
        reject_hint_term: ht,
        reject_hint_index: hi,
        next_append_term: nt,
        next_append_index: ni,
    };
    let cases = [
        // The leader finds the conflict fast: it probes at (7, 4), then at
        // (3, 2).
        case(&[1, 2, 2, 4, 4, 4, 4], &[1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], 0, 3, 7, 2, 3),
        // Probes at (8, 5), then at (4, 3).
        case(&[1, 2, 2, 3, 4, 4, 4, 5], &[1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], 0, 3, 8, 3, 4),
        // The follower finds it fast: (4, 1), then (1, 1).
        case(&[1, 1, 1, 1], &[1, 2, 2, 4], 0, 1, 1, 1, 1),
        // Likewise with a longer uncommitted tail on the leader: (6, 1),
        // then (1, 1).
        case(&[1, 1, 1, 1, 1, 1], &[1, 2, 2, 4], 0, 1, 1, 1, 1),
        // Likewise with a longer tail on the follower: (4, 1), then (1, 1).
        case(&[1, 1, 1, 1], &[1, 2, 2, 4, 4, 4], 0, 1, 1, 1, 1),
        // No conflict at all, the follower is just behind: (5, 5), then
        // (4, 4).
        case(&[1, 1, 1, 4, 5], &[1, 1, 1, 4], 0, 4, 4, 4, 4),
        // The example in the leader's handling of rejections.
        case(&[2, 5, 5, 5, 5, 5, 5, 5, 5], &[2, 4, 4, 4, 4, 4], 0, 4, 6, 2, 1),
        // The example in the follower's handling of appends.
        case(&[2, 2, 2, 2, 2], &[2, 4, 4, 4, 4, 4, 4, 4], 0, 2, 1, 2, 1),
        // A stale append (3, 3) reaches a follower that compacted past
        // index 3: its term there is unknown (0), and the leader steps back
        // one entry to (2, 1).
        case(&[1, 1, 3], &[1, 1, 3, 3, 3], 5, 0, 3, 1, 2),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let last = c.leader_log.last().cloned().unwrap();
        let s1 = new_test_storage(&[1, 2, 3], &[]);
        s1.append(&c.leader_log).unwrap();
        s1.set_hard_state(HardState { term: last.term - 1, commit: last.index, vote: 0 });
        let mut n1 = new_test_raft(1, 10, 1, s1);
        // Raises the term to the last entry's.
        n1.become_candidate();
        n1.become_leader();

        let s2 = new_test_storage(&[1, 2, 3], &[]);
        s2.append(&c.follower_log).unwrap();
        s2.set_hard_state(HardState { term: last.term, vote: 1, commit: 0 });
        let mut n2 = new_test_raft(2, 10, 1, s2.clone());
        if c.follower_compact != 0 {
            // Not a realistic state (the commit index is still 0), but it
            // exercises an edge case that should not happen anyway.
            s2.compact(c.follower_compact).unwrap();
        }

        n2.step(msg(1, 2, MessageType::MsgHeartbeat)).unwrap();
        let msgs = n2.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgHeartbeatResp], "#{i}");

        n1.step(msgs[0].clone()).unwrap();
        let msgs = n1.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgApp], "#{i}");

        n2.step(msgs[0].clone()).unwrap();
        let msgs = n2.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgAppResp], "#{i}");
        assert!(msgs[0].reject, "#{i}: expected a rejection");
        assert_eq!(msgs[0].log_term, c.reject_hint_term, "#{i}: hint term");
        assert_eq!(msgs[0].reject_hint, c.reject_hint_index, "#{i}: hint index");

        n1.step(msgs[0].clone()).unwrap();
        let msgs = n1.read_messages();
        assert_eq!(msgs[0].log_term, c.next_append_term, "#{i}");
        assert_eq!(msgs[0].index, c.next_append_index, "#{i}");
    }
}

fn expect_one_message(r: &mut TestRaft) -> Message {
    let mut msgs = r.read_messages();
    assert_eq!(msgs.len(), 1, "expected one message: {msgs:?}");
    msgs.remove(0)
}

/// A delayed rejection whose hint is below the follower's match does not
/// move the leader back past the match.
#[test]
fn log_replication_with_reordered_message() {
    let mut r1 = new_leader(&[1, 2]);
    r1.read_messages();
    r1.pr_mut(2).become_replicate();
    let mut r2 = new_test_raft(2, 10, 1, new_test_storage(&[1, 2], &[]));

    // 1 sends two appends to 2.
    r1.must_append_entry(vec![Entry { data: Bytes::from_static(b"somedata"), ..Entry::default() }]);
    r1.send_append(2);
    let req1 = expect_one_message(&mut r1);
    r1.must_append_entry(vec![Entry { data: Bytes::from_static(b"somedata"), ..Entry::default() }]);
    r1.send_append(2);
    let req2 = expect_one_message(&mut r1);

    // 2 gets the second first, and rejects it.
    r2.step(req2).unwrap();
    let resp2 = expect_one_message(&mut r2);
    assert!(resp2.reject);
    assert_eq!(resp2.reject_hint, 0);
    assert_eq!(resp2.index, 2);

    // Then the first, which it accepts; 1 updates the match.
    r2.step(req1).unwrap();
    let m = expect_one_message(&mut r2);
    assert!(!m.reject);
    assert_eq!(m.index, 2);
    r1.step(m).unwrap();
    expect_one_message(&mut r1);
    assert_eq!(r1.pr(2).matched, 2);

    // A transient network problem: 1 probes 2 again.
    r1.step(msg(2, 1, MessageType::MsgUnreachable)).unwrap();
    assert_eq!(r1.pr(2).state, ProgressState::Probe);

    // The delayed rejection arrives: 1 resends from the match, not from
    // the lower hint.
    r1.step(resp2).unwrap();
    let m = expect_one_message(&mut r1);
    assert_eq!(m.index, r1.pr(2).matched);
}

/// A leader that stepped down ignores its own late acknowledgement of an
/// append of the earlier term.
#[test]
fn leader_msg_app_self_ack_after_term_change() {
    let mut r = new_leader(&[1, 2, 3]);
    r.step(prop(1, 1, b"somedata")).unwrap();
    let steps = r.take_messages_after_append();

    // 2 is the new leader.
    let term = r.term + 1;
    r.step(Message { term, ..msg(2, 1, MessageType::MsgHeartbeat) }).unwrap();
    assert_eq!(r.state, StateType::Follower);

    // The self-acknowledgement of the old term is ignored.
    r.step_or_send(steps);
    assert_eq!(r.state, StateType::Follower);
}

/// Appends are paginated by `max_size_per_msg`, and batch as much as fits.
#[test]
fn append_pagination() {
    let max_size_per_msg = 2048;
    let mut n = Network::with_config(
        |c| c.max_size_per_msg = max_size_per_msg,
        vec![NetPeer::New, NetPeer::New, NetPeer::New],
    );
    let seen_full = Rc::new(Cell::new(false));
    let seen = seen_full.clone();
    n.msg_hook = Some(Box::new(move |m: &Message| {
        if m.msg_type() == MessageType::MsgApp {
            let size: u64 = m.entries.iter().map(|e| e.data.len() as u64).sum();
            assert!(size <= max_size_per_msg, "sent an append of {size} bytes");
            if size > max_size_per_msg / 2 {
                seen.set(true);
            }
        }
        true
    }));

    n.send(hup(1));
    // Partitioned, the proposals pile up to be batched.
    n.isolate(1);
    let blob = Bytes::from(vec![b'a'; 1000]);
    for _ in 0..5 {
        n.send(Message {
            entries: vec![Entry { data: blob.clone(), ..Entry::default() }],
            ..msg(1, 1, MessageType::MsgProp)
        });
    }
    n.recover();
    // Wake everyone up.
    n.send(beat(1));
    assert!(seen_full.get(), "no append was more than half the maximum size");
    assert_eq!(n.peer(2).raft_log.last_index(), 6);
}
