//! Scenario tests of [`RawNode`], rewritten from etcd-raft's
//! `rawnode_test.go` and the `RawNode`-level parts of `node_test.go`: the
//! `Ready`/`advance` cycle, configuration changes through it, restarts,
//! pagination of committed entries, and asynchronous storage writes (the
//! order in which entries become durable, acknowledged and applied).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::logger::DiscardLogger;
use crate::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeV2, SnapshotMetadata};
use crate::storage::{MemoryStorage, StorageError};
use crate::tracker::ProgressState;
use crate::util::NO_LIMIT;

fn new_test_config(id: u64, election: usize, heartbeat: usize) -> Config {
    Config {
        election_tick: election,
        heartbeat_tick: heartbeat,
        max_size_per_msg: NO_LIMIT,
        max_inflight_msgs: 256,
        check_quorum: false,
        pre_vote: false,
        logger: Arc::new(DiscardLogger),
        seed: 0x5eed,
        ..Config::new(id)
    }
}

fn new_test_storage(voters: &[u64]) -> MemoryStorage {
    MemoryStorage::new_with_conf_state(ConfState {
        voters: voters.to_vec(),
        ..ConfState::default()
    })
}

fn new_raw_node(cfg: &Config, storage: &MemoryStorage) -> RawNode<MemoryStorage> {
    RawNode::new(cfg, storage.clone()).expect("valid test configuration")
}

fn entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
    Entry { term, index, data: Bytes::from_static(data), ..Entry::default() }
}

fn is_leader(rd: &Ready, id: u64) -> bool {
    rd.soft_state.is_some_and(|ss| ss.lead == id)
}

/// The configuration change an entry carries, if any.
fn decode_conf_change(e: &Entry) -> Option<AnyConfChange> {
    AnyConfChange::from_entry(e).expect("a decodable conf change")
}

/// Handles one `Ready` synchronously: persists the entries, applies the
/// committed configuration changes, advances. Returns the configurations
/// the changes produced.
fn handle_ready(rn: &mut RawNode<MemoryStorage>, s: &MemoryStorage, rd: &Ready) -> Vec<ConfState> {
    s.append(&rd.entries).unwrap();
    let mut states = Vec::new();
    for e in &rd.committed_entries {
        if let Some(cc) = decode_conf_change(e) {
            states.push(rn.apply_conf_change(&cc).unwrap());
        }
    }
    rn.advance();
    states
}

/// Every message type stepped from outside: the local ones are refused;
/// the others do not upset a fresh node.
#[test]
fn step_refuses_local_messages() {
    for i in 0.. {
        let Ok(t) = MessageType::try_from(i) else { break };
        let s = MemoryStorage::new();
        s.set_hard_state(HardState { term: 1, commit: 1, vote: 0 });
        s.append(&[Entry { term: 1, index: 1, ..Entry::default() }]).unwrap();
        let mut snap = Snapshot::default();
        snap.metadata.conf_state.voters = vec![1];
        snap.metadata.index = 1;
        snap.metadata.term = 1;
        s.apply_snapshot(snap).unwrap();
        let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
        let res = rn.step(Message::new(t));
        if crate::util::is_local_msg(t) {
            assert!(matches!(res, Err(Error::StepLocalMsg)), "{t:?}: {res:?}");
        }
    }
}

/// Proposes a change (simple, or joint with explicit or implicit exit),
/// checks that it applies with the right configuration, and that a joint
/// configuration is then left (automatically or by an explicit proposal).
#[test]
fn propose_and_conf_change() {
    use ConfChangeType::{ConfChangeAddLearnerNode as AddLearner, ConfChangeAddNode as AddNode};
    let single = |t: ConfChangeType, id| ConfChangeSingle { change_type: t as i32, node_id: id };
    let v2 = |changes, transition: ConfChangeTransition| -> AnyConfChange {
        ConfChangeV2 { changes, transition: transition as i32, ..ConfChangeV2::default() }.into()
    };
    let cs =
        |voters: &[u64], outgoing: &[u64], learners: &[u64], next: &[u64], auto_leave| ConfState {
            voters: voters.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners: learners.to_vec(),
            learners_next: next.to_vec(),
            auto_leave,
        };
    let auto = ConfChangeTransition::ConfChangeTransitionAuto;
    let explicit = ConfChangeTransition::ConfChangeTransitionJointExplicit;
    let implicit = ConfChangeTransition::ConfChangeTransitionJointImplicit;
    let demote_and_add = || vec![single(AddNode, 2), single(AddLearner, 1), single(AddLearner, 3)];
    // (change, configuration after it, configuration after leaving joint)
    let cases: Vec<(AnyConfChange, ConfState, Option<ConfState>)> = vec![
        // A V1 change.
        (
            ConfChange { change_type: AddNode as i32, node_id: 2, ..ConfChange::default() }.into(),
            cs(&[1, 2], &[], &[], &[], false),
            None,
        ),
        // The same as V2: no joint configuration.
        (v2(vec![single(AddNode, 2)], auto), cs(&[1, 2], &[], &[], &[], false), None),
        // Likewise adding a learner.
        (v2(vec![single(AddLearner, 2)], auto), cs(&[1], &[], &[2], &[], false), None),
        // Joint consensus on request, left explicitly...
        (
            v2(vec![single(AddLearner, 2)], explicit),
            cs(&[1], &[1], &[2], &[], false),
            Some(cs(&[1], &[], &[2], &[], false)),
        ),
        // ...or automatically.
        (
            v2(vec![single(AddLearner, 2)], implicit),
            cs(&[1], &[1], &[2], &[], true),
            Some(cs(&[1], &[], &[2], &[], false)),
        ),
        // Adding 2 and demoting 1 needs joint consensus and LearnersNext.
        (
            v2(demote_and_add(), auto),
            cs(&[2], &[1], &[3], &[1], true),
            Some(cs(&[2], &[], &[1, 3], &[], false)),
        ),
        (
            v2(demote_and_add(), explicit),
            cs(&[2], &[1], &[3], &[1], false),
            Some(cs(&[2], &[], &[1, 3], &[], false)),
        ),
        (
            v2(demote_and_add(), implicit),
            cs(&[2], &[1], &[3], &[1], true),
            Some(cs(&[2], &[], &[1, 3], &[], false)),
        ),
    ];
    for (i, (cc, want, want_after_leave)) in cases.into_iter().enumerate() {
        let s = new_test_storage(&[1]);
        let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
        rn.campaign().unwrap();

        // Propose a command and the change once leader; wait until the
        // change applies.
        let mut proposed = false;
        let mut applied = None;
        while applied.is_none() {
            let rd = rn.ready();
            applied = handle_ready(&mut rn, &s, &rd).pop();
            if !proposed && is_leader(&rd, 1) {
                rn.propose(Bytes::from_static(b"somedata")).unwrap();
                rn.propose_conf_change(cc.clone()).unwrap();
                proposed = true;
            }
        }

        // The last two stable entries are the command and the change, down
        // to the bytes.
        let last_index = s.last_index().unwrap();
        let entries = s.entries_vec(last_index - 1, last_index + 1, NO_LIMIT).unwrap();
        assert_eq!(entries.len(), 2, "#{i}");
        assert_eq!(&entries[0].data[..], b"somedata", "#{i}");
        let (want_type, want_data) = cc.to_entry_data();
        assert_eq!(entries[1].entry_type(), want_type, "#{i}");
        assert_eq!(entries[1].data, want_data, "#{i}");

        assert_eq!(applied, Some(want.clone()), "#{i}");

        // An auto-leaving joint change proposed the exit as soon as it
        // applied: that entry is not stable yet.
        let auto_leave = cc.as_v2().enter_joint() == Some(true);
        assert_eq!(rn.raft.pending_conf_index, last_index + u64::from(auto_leave), "#{i}");

        // A simple change is done; a joint one is left automatically or
        // by proposing the exit.
        let mut rd = rn.ready();
        let mut context = Bytes::new();
        if !want.auto_leave {
            assert!(rd.entries.is_empty(), "#{i}");
            rn.advance();
            let Some(_) = want_after_leave else { continue };
            context = Bytes::from_static(b"manual");
            rn.propose_conf_change(ConfChangeV2 {
                context: context.clone(),
                ..ConfChangeV2::default()
            })
            .unwrap();
            rd = rn.ready();
        }

        assert_eq!(rd.entries.len(), 1, "#{i}");
        assert_eq!(rd.entries[0].entry_type(), EntryType::EntryConfChangeV2, "#{i}");
        let leave = ConfChangeV2::decode(rd.entries[0].data.clone()).unwrap();
        assert_eq!(leave, ConfChangeV2 { context, ..ConfChangeV2::default() }, "#{i}");
        // Pretend it applied: it cannot commit, as the joint quorum needs
        // nodes that do not run here.
        let after = rn.apply_conf_change(&leave.into()).unwrap();
        assert_eq!(Some(after), want_after_leave, "#{i}");
        rn.advance();
    }
}

/// An auto-leaving joint configuration is left even if the leader lost its
/// leadership in between: the next leader leaves it.
#[test]
fn joint_auto_leave_after_losing_leadership() {
    let cc: AnyConfChange = ConfChangeV2 {
        changes: vec![ConfChangeSingle {
            change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
            node_id: 2,
        }],
        transition: ConfChangeTransition::ConfChangeTransitionJointImplicit as i32,
        ..ConfChangeV2::default()
    }
    .into();
    let want = ConfState {
        voters: vec![1],
        voters_outgoing: vec![1],
        learners: vec![2],
        auto_leave: true,
        ..ConfState::default()
    };
    let want_after_leave = ConfState { voters: vec![1], learners: vec![2], ..ConfState::default() };

    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.campaign().unwrap();
    let mut proposed = false;
    let mut applied = None;
    while applied.is_none() {
        let rd = rn.ready();
        s.append(&rd.entries).unwrap();
        for e in &rd.committed_entries {
            if let Some(cc) = decode_conf_change(e) {
                // Step down before applying it.
                let term = rn.raft.term + 1;
                // (Past the gateway: from is the node itself.)
                rn.raft
                    .step(Message { from: 1, term, ..Message::new(MessageType::MsgHeartbeatResp) })
                    .unwrap();
                applied = Some(rn.apply_conf_change(&cc).unwrap());
            }
        }
        rn.advance();
        if !proposed && is_leader(&rd, 1) {
            rn.propose(Bytes::from_static(b"somedata")).unwrap();
            rn.propose_conf_change(cc.clone()).unwrap();
            proposed = true;
        }
    }

    let last_index = s.last_index().unwrap();
    let entries = s.entries_vec(last_index - 1, last_index + 1, NO_LIMIT).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(&entries[0].data[..], b"somedata");
    assert_eq!(entries[1].entry_type(), EntryType::EntryConfChangeV2);
    assert_eq!(entries[1].data, cc.to_entry_data().1);
    assert_eq!(applied, Some(want));

    // A follower does not leave the joint configuration.
    assert_eq!(rn.raft.pending_conf_index, 0);
    assert!(!rn.has_ready() || rn.ready().entries.is_empty());
    rn.advance();

    // Once leader again, it leaves it after applying its first entry.
    rn.campaign().unwrap();
    let mut leave = None;
    for _ in 0..10 {
        let rd = rn.ready();
        s.append(&rd.entries).unwrap();
        if let Some(e) = rd.entries.iter().find(|e| decode_conf_change(e).is_some()) {
            leave = Some(e.clone());
            break;
        }
        rn.advance();
    }
    let leave = leave.expect("the leader proposed leaving the joint configuration");
    assert_eq!(leave.entry_type(), EntryType::EntryConfChangeV2);
    let leave = ConfChangeV2::decode(leave.data).unwrap();
    assert_eq!(leave, ConfChangeV2::default());
    // Pretend it applied (the joint quorum cannot commit it here).
    assert_eq!(rn.apply_conf_change(&leave.into()).unwrap(), want_after_leave);
}

/// Proposing to add a node twice does not keep a later addition out.
#[test]
fn propose_add_duplicate_node() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);

    rn.campaign().unwrap();
    loop {
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
        if is_leader(&rd, 1) {
            break;
        }
    }

    let mut propose_and_apply = |cc: &ConfChange| {
        rn.propose_conf_change(cc.clone()).unwrap();
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
    };
    let add = |id| ConfChange {
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: id,
        ..ConfChange::default()
    };
    propose_and_apply(&add(1));
    // The same again.
    propose_and_apply(&add(1));
    // A new node still joins.
    propose_and_apply(&add(2));

    let last_index = s.last_index().unwrap();
    let entries = s.entries_vec(last_index - 2, last_index + 1, NO_LIMIT).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].data, Bytes::from(add(1).encode_to_vec()));
    assert_eq!(entries[2].data, Bytes::from(add(2).encode_to_vec()));
}

/// Read states come out in a `Ready` and are cleared after it; a leader's
/// own read request produces one.
#[test]
fn read_index_produces_read_states() {
    let want = vec![ReadState { index: 1, request_ctx: Bytes::from_static(b"somedata") }];
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.raft.read_states = want.clone();

    assert!(rn.has_ready());
    let rd = rn.ready();
    assert_eq!(rd.read_states, want);
    handle_ready(&mut rn, &s, &rd);
    assert!(rn.raft.read_states.is_empty());

    rn.campaign().unwrap();
    loop {
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
        if is_leader(&rd, 1) {
            break;
        }
    }
    // Settle the leader's empty entry.
    while rn.has_ready() {
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
    }
    rn.read_index(Bytes::from_static(b"somedata2")).unwrap();
    assert!(rn.has_ready());
    let rd = rn.ready();
    let committed = rn.raft.raft_log.committed();
    assert_eq!(
        rd.read_states,
        vec![ReadState { index: committed, request_ctx: Bytes::from_static(b"somedata2") }]
    );
    handle_ready(&mut rn, &s, &rd);
    assert!(rn.raft.read_states.is_empty());
}

/// A node bootstrapped from a snapshot (the log starts after index 1, so
/// empty followers must take the snapshot) campaigns, proposes and commits.
#[test]
fn start_from_bootstrap_snapshot() {
    let want_entries = vec![entry(1, 2, b""), entry(1, 3, b"foo")];
    let storage = MemoryStorage::new();
    let mut snap = Snapshot::default();
    snap.metadata.index = 1;
    snap.metadata.term = 0;
    snap.metadata.conf_state.voters = vec![1];
    storage.apply_snapshot(snap).unwrap();
    assert_eq!(storage.first_index().unwrap(), 2);
    let (hs, _) = storage.initial_state().unwrap();
    assert!(hs.is_empty());

    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &storage);
    assert!(!rn.has_ready());

    rn.campaign().unwrap();
    let rd = rn.ready();
    handle_ready(&mut rn, &storage, &rd);
    rn.propose(Bytes::from_static(b"foo")).unwrap();
    assert!(rn.has_ready());

    let rd = rn.ready();
    assert_eq!(rd.entries, want_entries);
    handle_ready(&mut rn, &storage, &rd);

    assert!(rn.has_ready());
    let mut rd = rn.ready();
    assert!(rd.entries.is_empty());
    assert!(!rd.must_sync);
    handle_ready(&mut rn, &storage, &rd);

    rd.soft_state = None;
    let want = Ready {
        hard_state: Some(HardState { term: 1, vote: 1, commit: 3 }),
        committed_entries: want_entries.into(),
        // Only applying, nothing to append.
        must_sync: false,
        ..Ready::default()
    };
    assert_eq!(rd, want);
    assert!(!rn.has_ready());
}

/// A restarted node hands out its committed entries again, and nothing
/// else: its hard state did not change.
#[test]
fn restart() {
    let entries = vec![entry(1, 1, b""), entry(1, 2, b"foo")];
    let hs = HardState { term: 1, commit: 1, vote: 0 };
    let storage = new_test_storage(&[1]);
    storage.set_hard_state(hs);
    storage.append(&entries).unwrap();

    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &storage);
    let rd = rn.ready();
    let want = Ready { committed_entries: entries[..1].to_vec().into(), ..Ready::default() };
    assert_eq!(rd, want);
    rn.advance();
    assert!(!rn.has_ready());
}

#[test]
fn restart_from_snapshot() {
    let mut snap = Snapshot::default();
    snap.metadata.conf_state.voters = vec![1, 2];
    snap.metadata.index = 2;
    snap.metadata.term = 1;
    let entries = vec![entry(1, 3, b"foo")];
    let storage = MemoryStorage::new();
    storage.set_hard_state(HardState { term: 1, commit: 3, vote: 0 });
    storage.apply_snapshot(snap).unwrap();
    storage.append(&entries).unwrap();

    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &storage);
    let rd = rn.ready();
    assert_eq!(rd, Ready { committed_entries: entries.into(), ..Ready::default() });
    rn.advance();
    assert!(!rn.has_ready());
}

/// A bootstrapped single node: the configuration entry, then an election,
/// a proposal, and the entries committing (etcd's `TestNodeStart`).
#[test]
fn bootstrap_then_campaign_and_commit() {
    let cc = ConfChange {
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: 1,
        ..ConfChange::default()
    };
    let cc_entry = Entry {
        entry_type: Some(EntryType::EntryConfChange as i32),
        term: 1,
        index: 1,
        data: Bytes::from(cc.encode_to_vec()),
    };
    let storage = MemoryStorage::new();
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &storage);
    rn.bootstrap(&[Peer { id: 1, context: Bytes::new() }]).unwrap();

    let rd = rn.ready();
    let want = Ready {
        hard_state: Some(HardState { term: 1, commit: 1, vote: 0 }),
        entries: vec![cc_entry.clone()].into(),
        committed_entries: vec![cc_entry].into(),
        must_sync: true,
        ..Ready::default()
    };
    assert_eq!(rd, want);
    handle_ready(&mut rn, &storage, &rd);

    rn.campaign().unwrap();
    // Persist the vote, then the empty entry.
    for _ in 0..2 {
        let rd = rn.ready();
        handle_ready(&mut rn, &storage, &rd);
    }

    rn.propose(Bytes::from_static(b"foo")).unwrap();
    let rd = rn.ready();
    let want = Ready {
        hard_state: Some(HardState { term: 2, commit: 2, vote: 1 }),
        entries: vec![entry(2, 3, b"foo")].into(),
        committed_entries: vec![entry(2, 2, b"")].into(),
        must_sync: true,
        ..Ready::default()
    };
    assert_eq!(rd, want);
    handle_ready(&mut rn, &storage, &rd);

    let rd = rn.ready();
    let want = Ready {
        hard_state: Some(HardState { term: 2, commit: 3, vote: 1 }),
        committed_entries: vec![entry(2, 3, b"foo")].into(),
        must_sync: false,
        ..Ready::default()
    };
    assert_eq!(rd, want);
    handle_ready(&mut rn, &storage, &rd);
    assert!(!rn.has_ready());
}

/// Bootstrapping needs peers and an empty storage.
#[test]
fn bootstrap_refuses_bad_input() {
    let storage = MemoryStorage::new();
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &storage);
    assert!(matches!(rn.bootstrap(&[]), Err(Error::BootstrapNoPeers)));

    let storage = new_test_storage(&[1]);
    storage.append(&[entry(1, 1, b"")]).unwrap();
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &storage);
    let res = rn.bootstrap(&[Peer { id: 1, context: Bytes::new() }]);
    assert!(matches!(res, Err(Error::BootstrapNonEmpty)));
}

#[test]
fn status() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    assert!(rn.status().progress.is_empty());
    rn.campaign().unwrap();
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);

    let status = rn.status();
    assert_eq!(status.basic.soft_state.lead, 1);
    assert_eq!(status.basic.soft_state.raft_state, StateType::Leader);
    assert_eq!(status.progress.get(&1), rn.raft.trk.progress.get(1));
    assert_eq!(status.config.voters().ids().collect::<Vec<_>>(), vec![1]);
    assert!(status.config.learners().is_empty());
}

/// Proposals are dropped until a leader is known.
#[test]
fn proposals_dropped_without_leader() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    assert!(matches!(
        rn.propose(Bytes::from_static(b"somedata")),
        Err(Error::ProposalDropped(DropReason::NoLeader))
    ));
    assert!(matches!(
        rn.read_index(Bytes::from_static(b"ctx")),
        Err(Error::ProposalDropped(DropReason::NoLeader))
    ));

    rn.campaign().unwrap();
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);
    rn.propose(Bytes::from_static(b"somedata")).unwrap();
}

#[test]
fn tick_advances_the_election_clock() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    let elapsed = rn.raft.election_elapsed;
    rn.tick();
    assert_eq!(rn.raft.election_elapsed, elapsed + 1);
}

/// After appending a proposal, its commitment is the next `Ready`.
#[test]
fn advance_leaves_the_next_ready() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.campaign().unwrap();
    // Persist the vote, then the empty entry.
    for _ in 0..2 {
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
    }
    rn.propose(Bytes::from_static(b"foo")).unwrap();
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);
    assert!(rn.has_ready());
}

/// Adding a learner through the `Ready` loop.
#[test]
fn propose_add_learner_node() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.campaign().unwrap();
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);

    let cc = ConfChange {
        change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id: 2,
        ..ConfChange::default()
    };
    rn.propose_conf_change(cc).unwrap();
    let mut state = None;
    for _ in 0..10 {
        let rd = rn.ready();
        if let Some(cs) = handle_ready(&mut rn, &s, &rd).pop() {
            state = Some(cs);
            break;
        }
    }
    let state = state.expect("the change applied");
    assert_eq!(state.learners, vec![2]);
    assert_eq!(state.voters, vec![1]);
}

/// A storage that ignores the size limit of `entries` (as some real ones
/// do), returning more than asked.
struct IgnoreSizeHintStorage(MemoryStorage);

impl Storage for IgnoreSizeHintStorage {
    fn initial_state(&self) -> std::result::Result<(HardState, ConfState), StorageError> {
        self.0.initial_state()
    }
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        _max_size: u64,
        out: &mut Vec<Entry>,
    ) -> std::result::Result<(), StorageError> {
        self.0.entries(lo, hi, NO_LIMIT, out)
    }
    fn term(&self, index: u64) -> std::result::Result<u64, StorageError> {
        self.0.term(index)
    }
    fn first_index(&self) -> std::result::Result<u64, StorageError> {
        self.0.first_index()
    }
    fn last_index(&self) -> std::result::Result<u64, StorageError> {
        self.0.last_index()
    }
    fn snapshot(&self) -> std::result::Result<Snapshot, StorageError> {
        self.0.snapshot()
    }
}

/// Ten committed entries, an eleventh uncommitted, and a message size limit
/// just too small for the ten (which the storage ignores).
fn pagination_after_restart_node() -> (RawNode<IgnoreSizeHintStorage>, HardState) {
    let s = new_test_storage(&[1]);
    let persisted = HardState { term: 1, vote: 1, commit: 10 };
    s.set_hard_state(persisted);
    let ents: Vec<Entry> = (1..=10).map(|i| entry(1, i, b"a")).collect();
    let size = crate::storage::ents_size(&ents);
    s.append(&ents).unwrap();
    s.append(&[entry(1, 11, b"boom")]).unwrap();

    let mut cfg = new_test_config(1, 10, 1);
    // This limit suggests the tenth entry stays out of the first batch of
    // committed entries; the storage returns it anyway.
    cfg.max_size_per_msg = size - crate::storage::ents_size(&ents[9..]) - 1;
    (RawNode::new(&cfg, IgnoreSizeHintStorage(s)).unwrap(), persisted)
}

/// The commit index never regresses after a restart, even when the storage
/// returns more entries than the size limit asks for.
#[test]
fn commit_index_does_not_regress_after_restart() {
    let (mut rn, persisted) = pagination_after_restart_node();
    let rd = rn.ready();
    if let Some(hs) = rd.hard_state {
        assert!(
            hs.commit >= persisted.commit,
            "hard state regressed: commit {} -> {}",
            persisted.commit,
            hs.commit
        );
    }
}

/// Applying entries paginated after a restart leaves no gap.
#[test]
fn commit_pagination_after_restart_applies_without_gaps() {
    let (mut rn, _) = pagination_after_restart_node();
    let mut highest_applied = 0;
    while highest_applied != 11 {
        let rd = rn.ready();
        let n = rd.committed_entries.len();
        assert_ne!(n, 0, "stopped applying entries at index {highest_applied}");
        let next = rd.committed_entries[0].index;
        assert!(
            highest_applied == 0 || highest_applied + 1 == next,
            "applying index {next} after index {highest_applied} leaves a gap"
        );
        highest_applied = rd.committed_entries[n - 1].index;
        rn.advance();
        // From a node that is not a member: illegal, but harmless here.
        rn.step(Message {
            to: 1,
            from: 2,
            term: 1,
            commit: 11,
            ..Message::new(MessageType::MsgHeartbeat)
        })
        .unwrap();
    }
}

/// A leader cut off from its quorum does not grow its log without bound:
/// proposals beyond the uncommitted-size limit are dropped, and the quota
/// is released as entries are applied.
#[test]
fn bounded_log_growth_with_partition() {
    const MAX_ENTRIES: u64 = 16;
    let data = Bytes::from_static(b"testdata");
    let max_entry_size = MAX_ENTRIES * data.len() as u64;

    let s = new_test_storage(&[1]);
    let mut cfg = new_test_config(1, 10, 1);
    cfg.max_uncommitted_entries_size = max_entry_size;
    let mut rn = new_raw_node(&cfg, &s);

    // Become leader and apply the empty entry.
    rn.campaign().unwrap();
    loop {
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
        if !rd.committed_entries.is_empty() {
            break;
        }
    }

    // Nothing commits while "partitioned" (no Ready is handled).
    let mut accepted = 0;
    for _ in 0..1024 {
        if rn.propose(data.clone()).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, MAX_ENTRIES);
    assert_eq!(rn.raft.uncommitted_size, max_entry_size);

    // The partition heals: entries are appended, then committed and
    // applied, releasing the quota.
    let rd = rn.ready();
    assert_eq!(rd.entries.len() as u64, MAX_ENTRIES);
    handle_ready(&mut rn, &s, &rd);
    // Appended, not applied.
    assert_eq!(rn.raft.uncommitted_size, max_entry_size);

    let rd = rn.ready();
    assert!(rd.entries.is_empty());
    assert_eq!(rd.committed_entries.len() as u64, MAX_ENTRIES);
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.uncommitted_size, 0);
}

/// `ready` moves the pending messages into the `Ready`; messages produced
/// after it survive `advance`.
#[test]
fn ready_consumes_messages() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 3, 1), &s);
    let m1 = Message { context: Bytes::from_static(b"foo").into(), ..Message::default() };
    let m2 = Message { context: Bytes::from_static(b"bar").into(), ..Message::default() };

    rn.raft.msgs.push(m1.clone());
    assert!(rn.has_ready());
    let rd = rn.ready();
    assert!(rn.raft.msgs.is_empty());
    assert_eq!(rd.messages, vec![m1]);

    rn.raft.msgs.push(m2.clone());
    rn.advance();
    assert_eq!(rn.raft.msgs, vec![m2]);
}

/// Committed entries are handed out in batches of at most
/// `max_committed_size_per_ready` bytes (but at least one entry).
#[test]
fn commit_pagination() {
    let s = new_test_storage(&[1]);
    let mut cfg = new_test_config(1, 10, 1);
    cfg.max_committed_size_per_ready = 2048;
    let mut rn = new_raw_node(&cfg, &s);
    rn.campaign().unwrap();

    // Persist the vote, append the empty entry, apply it.
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);
    let rd = rn.ready();
    handle_ready(&mut rn, &s, &rd);
    let rd = rn.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    handle_ready(&mut rn, &s, &rd);

    let blob = Bytes::from(vec![b'a'; 1000]);
    for i in 0..3 {
        rn.propose(blob.clone()).unwrap_or_else(|e| panic!("#{i}: {e}"));
    }
    // The three proposals are appended at once...
    let rd = rn.ready();
    assert_eq!(rd.entries.len(), 3);
    handle_ready(&mut rn, &s, &rd);
    // ...and applied in two batches.
    let rd = rn.ready();
    assert_eq!(rd.committed_entries.len(), 2);
    handle_ready(&mut rn, &s, &rd);
    let rd = rn.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    handle_ready(&mut rn, &s, &rd);
}

/// The bytes handed out for applying are measured only when bounded; the
/// payload bytes are released from a bounded uncommitted quota either way.
#[test]
fn applying_size_is_measured_only_when_bounded() {
    for (limit, measured) in [(1 << 20, true), (crate::NO_LIMIT, false)] {
        let s = new_test_storage(&[1]);
        let mut cfg = new_test_config(1, 10, 1);
        cfg.max_committed_size_per_ready = limit;
        cfg.max_uncommitted_entries_size = 1 << 20;
        let mut rn = new_raw_node(&cfg, &s);
        rn.campaign().unwrap();
        while rn.has_ready() {
            let rd = rn.ready();
            handle_ready(&mut rn, &s, &rd);
        }
        for _ in 0..3 {
            rn.propose(Bytes::from_static(b"payload")).unwrap();
        }
        assert_eq!(rn.raft.uncommitted_size, 21);
        let rd = rn.ready();
        handle_ready(&mut rn, &s, &rd);
        let rd = rn.ready();
        assert_eq!(rd.committed_entries.len(), 3);
        let want = if measured { crate::storage::ents_size(&rd.committed_entries) } else { 0 };
        assert_eq!(rn.raft.raft_log.applying_ents_size(), want, "limit {limit}");
        assert!(!rn.raft.raft_log.applying_ents_paused());
        handle_ready(&mut rn, &s, &rd);
        assert_eq!(rn.raft.raft_log.applying_ents_size(), 0);
        assert_eq!(rn.raft.uncommitted_size, 0, "limit {limit}");
    }
}

/// Without an uncommitted-size quota nothing can be refused, so the
/// payloads are not counted when proposed nor released when applied; with
/// one, they are (above).
#[test]
fn uncommitted_size_is_not_counted_without_a_quota() {
    for apply_size_bounded in [false, true] {
        let s = new_test_storage(&[1]);
        let mut cfg = new_test_config(1, 10, 1);
        assert_eq!(cfg.max_uncommitted_entries_size, 0, "no quota by default");
        if apply_size_bounded {
            cfg.max_committed_size_per_ready = 1 << 20;
        }
        let mut rn = single_node_leader(&cfg, &s);
        assert!(!rn.raft.uncommitted_size_bounded());
        rn.propose_batch([Bytes::from_static(b"a"), Bytes::from_static(b"bc")]).unwrap();
        rn.propose(Bytes::from_static(b"def")).unwrap();
        assert_eq!(rn.raft.uncommitted_size, 0);
        let mut applied = 0;
        while rn.has_ready() {
            let rd = rn.ready();
            applied += rd.committed_entries.len();
            handle_ready(&mut rn, &s, &rd);
        }
        assert_eq!(applied, 3);
        assert_eq!(rn.raft.uncommitted_size, 0);
    }
}

// ---- Asynchronous storage writes ----

fn async_config(id: u64) -> Config {
    Config { async_storage_writes: true, ..new_test_config(id, 10, 1) }
}

/// What an append thread does with a `MsgStorageAppend`: persist the hard
/// state, snapshot and entries, then hand back the message to deliver the
/// responses of.
fn persist(s: &MemoryStorage, m: &Message) -> Message {
    assert_eq!(m.to, LOCAL_APPEND_THREAD);
    let append = StorageAppend::new(m).expect("a MsgStorageAppend");
    if let Some(hs) = append.hard_state() {
        s.set_hard_state(hs);
    }
    if let Some(snap) = append.snapshot() {
        s.apply_snapshot(snap.clone()).unwrap();
    }
    s.append(append.entries()).unwrap();
    m.clone()
}

/// Delivers a storage message's responses: those to this node are stepped,
/// the others are returned (to send to peers).
fn deliver(rn: &mut RawNode<MemoryStorage>, mut m: Message) -> Vec<Message> {
    let responses = StorageResponses::take(&mut m);
    for r in responses.local {
        rn.step_local(r).unwrap();
    }
    responses.peers
}

/// Handles every message of a `Ready` at once: storage work synchronously,
/// peer messages returned.
fn handle_async_ready(
    rn: &mut RawNode<MemoryStorage>,
    s: &MemoryStorage,
    rd: Ready,
) -> Vec<Message> {
    let mut out = Vec::new();
    for m in rd.messages {
        match m.msg_type() {
            MessageType::MsgStorageAppend => {
                out.extend(deliver(rn, persist(s, &m)));
            }
            MessageType::MsgStorageApply => {
                assert_eq!(m.to, LOCAL_APPLY_THREAD);
                out.extend(deliver(rn, m));
            }
            _ => out.push(m),
        }
    }
    out
}

/// The typed views read a follower's storage messages: hard state, entries
/// and responses split between this node and its peers.
#[test]
fn storage_message_views() {
    let s = new_test_storage(&[1, 2]);
    let mut rn = new_raw_node(&async_config(2), &s);
    let app = Message {
        from: 1,
        to: 2,
        term: 1,
        commit: 1,
        entries: vec![entry(1, 1, b"x")],
        ..Message::new(MessageType::MsgApp)
    };
    assert!(StorageAppend::new(&app).is_none(), "not a storage message");
    assert!(StorageApply::new(&app).is_none(), "not a storage message");
    rn.step(app).unwrap();
    let rd = rn.ready();
    let append = rd.messages.iter().find_map(StorageAppend::new).expect("an append");
    assert_eq!(append.hard_state(), Some(HardState { term: 1, vote: 0, commit: 1 }));
    assert_eq!(append.entries(), &[entry(1, 1, b"x")]);
    assert!(append.snapshot().is_none());
    let local: Vec<_> = append.local_responses().map(Message::msg_type).collect();
    let peers: Vec<_> = append.peer_responses().map(|m| (m.msg_type(), m.to)).collect();
    assert_eq!(local, vec![MessageType::MsgStorageAppendResp]);
    assert_eq!(peers, vec![(MessageType::MsgAppResp, 1)]);
    assert_eq!(append.responses().len(), 2);
    let mut owned = rd.messages[0].clone();
    let split = StorageResponses::take(&mut owned);
    assert!(owned.responses.is_empty());
    assert_eq!(types(&split.local), local);
    assert_eq!(split.peers.len(), 1);
    persist(&s, &rd.messages[0]);
    for r in split.local {
        rn.step_local(r).unwrap();
    }

    // The committed entry is now durable: it goes to the apply thread.
    let rd = rn.ready();
    let apply = rd.messages.iter().find_map(StorageApply::new).expect("an apply");
    assert_eq!(apply.entries(), &[entry(1, 1, b"x")]);
    assert_eq!(types(apply.responses()), vec![MessageType::MsgStorageApplyResp]);
    assert!(rd.messages.iter().all(|m| StorageAppend::new(m).is_none()), "nothing to write");
}

fn only_message(rd: &Ready, t: MessageType) -> Message {
    assert_eq!(rd.messages.len(), 1, "expected one message: {:?}", rd.messages);
    assert_eq!(rd.messages[0].msg_type(), t);
    rd.messages[0].clone()
}

/// With asynchronous writes, each step of an election and a proposal is a
/// message to the append or apply thread; entries are applied only after
/// the append thread reports them durable, and `advance` is refused.
#[test]
fn async_storage_writes_ready_and_responses_order() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&async_config(1), &s);
    rn.campaign().unwrap();

    // The vote goes to the append thread; its own vote comes back from it.
    let rd = rn.ready();
    assert!(rd.entries.is_empty());
    assert_eq!(rd.hard_state, Some(HardState { term: 1, vote: 1, commit: 0 }));
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    assert_eq!((m.term, m.vote, m.commit), (1, 1, 0));
    assert_eq!(types(&m.responses), vec![MessageType::MsgVoteResp]);
    assert_eq!(rn.raft.state, StateType::Candidate);
    // Until the vote is durable the node does not count it.
    assert!(!rn.has_ready());
    deliver(&mut rn, persist(&s, &m));
    assert_eq!(rn.raft.state, StateType::Leader);

    // The empty entry goes to the append thread; the leader's own
    // acknowledgement and the thread's response come back.
    let rd = rn.ready();
    assert_eq!(rd.entries, vec![entry(1, 1, b"")]);
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    assert_eq!(m.entries, vec![entry(1, 1, b"")]);
    assert_eq!(
        types(&m.responses),
        vec![MessageType::MsgAppResp, MessageType::MsgStorageAppendResp]
    );
    let append_resp = &m.responses[1];
    assert_eq!((append_resp.to, append_resp.from), (1, LOCAL_APPEND_THREAD));
    assert_eq!((append_resp.index, append_resp.log_term, append_resp.term), (1, 1, 1));
    // Nothing is committed before the entry is durable.
    assert!(!rn.has_ready());
    assert_eq!(rn.raft.raft_log.committed(), 0);
    deliver(&mut rn, persist(&s, &m));
    assert_eq!(rn.raft.raft_log.committed(), 1);
    assert!(rn.raft.raft_log.unstable().entries().is_empty());

    // The commit index goes to the append thread, the entry to the apply
    // thread, with the acknowledgement of its application.
    let rd = rn.ready();
    assert_eq!(rd.committed_entries, vec![entry(1, 1, b"")]);
    assert_eq!(
        types(&rd.messages),
        vec![MessageType::MsgStorageAppend, MessageType::MsgStorageApply]
    );
    let apply = rd.messages[1].clone();
    assert_eq!(apply.entries, vec![entry(1, 1, b"")]);
    assert_eq!(types(&apply.responses), vec![MessageType::MsgStorageApplyResp]);
    assert_eq!(apply.responses[0].from, LOCAL_APPLY_THREAD);
    assert_eq!(rn.raft.raft_log.applied(), 0);
    handle_async_ready(&mut rn, &s, rd);
    assert_eq!(rn.raft.raft_log.applied(), 1);
    assert_eq!(s.hard_state(), HardState { term: 1, vote: 1, commit: 1 });
    assert!(!rn.has_ready());

    // `advance` belongs to the synchronous mode.
    let res = catch_unwind(AssertUnwindSafe(|| rn.advance()));
    assert!(res.is_err(), "advance must refuse asynchronous storage writes");
}

/// With asynchronous writes, a follower's acknowledgement of an append is
/// released only by its append thread, once the entries are durable; a
/// leader's appends to peers go out at once, before its own write.
#[test]
fn async_storage_writes_acknowledge_after_durability() {
    let s1 = new_test_storage(&[1, 2]);
    let s2 = new_test_storage(&[1, 2]);
    let mut n1 = new_raw_node(&async_config(1), &s1);
    let mut n2 = new_raw_node(&async_config(2), &s2);

    // Elect 1.
    n1.campaign().unwrap();
    let rd = n1.ready();
    let mut to_2 = handle_async_ready(&mut n1, &s1, rd);
    assert_eq!(types(&to_2), vec![MessageType::MsgVote]);
    n2.step(to_2.remove(0)).unwrap();
    let rd = n2.ready();
    // The vote is granted only once it is durable: the response rides on
    // the append thread's message.
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    assert_eq!(types(&m.responses), vec![MessageType::MsgVoteResp]);
    let mut to_1 = handle_async_ready(&mut n2, &s2, rd);
    assert_eq!(types(&to_1), vec![MessageType::MsgVoteResp]);
    n1.step(to_1.remove(0)).unwrap();
    assert_eq!(n1.raft.state, StateType::Leader);

    // The leader's append to 2 is sent right away, next to its own write,
    // which the test holds back.
    let rd = n1.ready();
    assert_eq!(types(&rd.messages), vec![MessageType::MsgApp, MessageType::MsgStorageAppend]);
    let app = rd.messages[0].clone();
    let own_write = rd.messages[1].clone();
    assert_eq!(app.to, 2);
    assert_eq!(app.entries.len(), 1);
    // 2 gets the entry before 1 has written it.
    n2.step(app).unwrap();
    let rd = n2.ready();
    assert_eq!(rd.entries.len(), 1);
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    assert_eq!(m.entries, rd.entries);
    // 2's acknowledgement waits for its write.
    assert_eq!(
        types(&m.responses),
        vec![MessageType::MsgAppResp, MessageType::MsgStorageAppendResp]
    );
    assert_eq!(m.responses[0].to, 1);
    assert_eq!(s2.last_index().unwrap(), 0, "not written yet");
    let mut to_1 = handle_async_ready(&mut n2, &s2, rd);
    assert_eq!(s2.last_index().unwrap(), 1);
    assert_eq!(types(&to_1), vec![MessageType::MsgAppResp]);

    // 2's acknowledgement alone does not commit: the leader's own write is
    // not done.
    n1.step(to_1.remove(0)).unwrap();
    assert_eq!(n1.raft.raft_log.committed(), 0, "committed before the leader's own write");

    // The leader's own write completes: now a quorum has the entry.
    deliver(&mut n1, persist(&s1, &own_write));
    assert_eq!(n1.raft.raft_log.committed(), 1);
}

/// With asynchronous writes, applying is bounded too: entries beyond
/// `max_committed_size_per_ready` are handed to the apply thread only as
/// earlier ones are acknowledged applied.
#[test]
fn commit_pagination_with_async_storage_writes() {
    let s = new_test_storage(&[1]);
    let mut cfg = async_config(1);
    cfg.max_committed_size_per_ready = 2048;
    let mut rn = new_raw_node(&cfg, &s);
    rn.campaign().unwrap();

    // Persist the vote.
    let rd = rn.ready();
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    deliver(&mut rn, persist(&s, &m));
    // Append the empty entry.
    let rd = rn.ready();
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    deliver(&mut rn, persist(&s, &m));
    // Apply it.
    let rd = rn.ready();
    assert_eq!(
        types(&rd.messages),
        vec![MessageType::MsgStorageAppend, MessageType::MsgStorageApply]
    );
    assert_eq!(rd.messages[1].entries.len(), 1);
    handle_async_ready(&mut rn, &s, rd);

    let blob = Bytes::from(vec![b'a'; 1024]);
    // The first entry: appended.
    rn.propose(blob.clone()).unwrap();
    let rd = rn.ready();
    let m = only_message(&rd, MessageType::MsgStorageAppend);
    assert_eq!(m.entries.len(), 1);
    deliver(&mut rn, persist(&s, &m));

    // The second: appended while the first goes to be applied, which the
    // test holds back.
    let mut apply_resps = Vec::new();
    let append_and_hold_apply = |rn: &mut RawNode<MemoryStorage>| {
        rn.propose(blob.clone()).unwrap();
        let rd = rn.ready();
        assert_eq!(
            types(&rd.messages),
            vec![MessageType::MsgStorageAppend, MessageType::MsgStorageApply]
        );
        deliver(rn, persist(&s, &rd.messages[0]));
        let apply = &rd.messages[1];
        assert_eq!(apply.entries.len(), 1);
        assert_eq!(apply.responses.len(), 1);
        apply.responses[0].clone()
    };
    apply_resps.push(append_and_hold_apply(&mut rn));
    // The third: likewise, with the second going to be applied.
    apply_resps.push(append_and_hold_apply(&mut rn));

    // The third is not handed out before the first is applied: two entries
    // of 1 KiB fill the 2 KiB.
    while rn.has_ready() {
        let rd = rn.ready();
        assert!(
            rd.messages.iter().all(|m| m.msg_type() != MessageType::MsgStorageApply),
            "unexpected: {:?}",
            rd.messages
        );
        handle_async_ready(&mut rn, &s, rd);
    }

    // The first is applied: the third is handed out.
    rn.step_local(apply_resps.remove(0)).unwrap();
    let rd = rn.ready();
    let m = only_message(&rd, MessageType::MsgStorageApply);
    assert_eq!(m.entries.len(), 1);
    apply_resps.push(m.responses[0].clone());

    for resp in apply_resps {
        rn.step_local(resp).unwrap();
    }
    assert_eq!(rn.raft.raft_log.applied(), 4);
}

/// Node 1 of three, leader with async storage writes, and the write of its
/// empty entry and one proposal (not done yet).
fn async_leader_writing_a_proposal() -> (MemoryStorage, RawNode<MemoryStorage>, Message) {
    let s = new_test_storage(&[1, 2, 3]);
    let mut rn = new_raw_node(&async_config(1), &s);
    rn.raft.become_candidate();
    rn.raft.become_leader();
    rn.propose(Bytes::from_static(b"somedata")).unwrap();
    let rd = rn.ready();
    let write =
        rd.messages.into_iter().find(|m| m.msg_type() == MessageType::MsgStorageAppend).unwrap();
    assert_eq!(write.entries.len(), 2);
    (s, rn, write)
}

/// An append response from an earlier term does not mark entries stable
/// (they may have been overwritten since); the next response, of the
/// current term and covering the whole unstable log, does.
#[test]
fn async_append_response_of_an_earlier_term_is_ignored() {
    let (s, mut rn, write) = async_leader_writing_a_proposal();

    // Before the write completes, 2 is elected at a higher term.
    let term = rn.raft.term + 1;
    rn.step(Message { from: 2, to: 1, term, ..Message::new(MessageType::MsgHeartbeat) }).unwrap();
    assert_eq!(rn.raft.state, StateType::Follower);

    // The old write completes: its responses carry the old term (which
    // raft ignores with its own log line, so it is not called stale).
    assert!(!rn.is_stale_append_response(write.responses.last().unwrap()));
    deliver(&mut rn, persist(&s, &write));
    assert_eq!(rn.raft.raft_log.unstable().entries().len(), 2, "stabilized by a stale response");

    // The next write (the new term) carries a response for the whole
    // unstable log, which stabilizes it.
    let rd = rn.ready();
    let write =
        rd.messages.into_iter().find(|m| m.msg_type() == MessageType::MsgStorageAppend).unwrap();
    assert_eq!(write.term, term);
    let resp = write.responses.last().unwrap();
    assert_eq!(resp.msg_type(), MessageType::MsgStorageAppendResp);
    assert_eq!((resp.term, resp.index, resp.log_term), (term, 2, 1));
    assert!(!rn.is_stale_append_response(resp), "the response that stabilizes is not stale");
    deliver(&mut rn, persist(&s, &write));
    assert!(rn.raft.raft_log.unstable().entries().is_empty());
}

/// A commit-only append made while the entries are still being written
/// repeats their last id in its response. Once the entries' own response
/// made them stable, that repeat would change nothing (raft would ignore it
/// with an info line): `is_stale_append_response` says so, and only then.
#[test]
fn a_commit_only_append_response_after_the_entries_response_is_stale() {
    let (s, mut rn, entries_write) = async_leader_writing_a_proposal();

    // Both followers acknowledge before the leader's own write completes:
    // the entries commit, and the next write holds only the commit index.
    let term = rn.raft.term;
    for from in [2, 3] {
        let ack = Message { from, to: 1, term, index: 2, ..Message::new(MessageType::MsgAppResp) };
        rn.step(ack).unwrap();
    }
    let rd = rn.ready();
    let commit_write =
        rd.messages.into_iter().find(|m| m.msg_type() == MessageType::MsgStorageAppend).unwrap();
    assert!(commit_write.entries.is_empty());
    assert_eq!(commit_write.commit, 2);
    let repeat = commit_write.responses.last().unwrap().clone();
    assert_eq!((repeat.msg_type(), repeat.index), (MessageType::MsgStorageAppendResp, 2));

    // While the entries are unstable, neither response is stale.
    let first = entries_write.responses.last().unwrap();
    assert!(!rn.is_stale_append_response(first));
    assert!(!rn.is_stale_append_response(&repeat));
    deliver(&mut rn, persist(&s, &entries_write));
    assert!(rn.raft.raft_log.unstable().entries().is_empty());
    assert!(rn.is_stale_append_response(&repeat));
    // Other local responses are never stale.
    let apply =
        Message { from: LOCAL_APPLY_THREAD, ..Message::new(MessageType::MsgStorageApplyResp) };
    assert!(!rn.is_stale_append_response(&apply));
}

/// In synchronous mode, the responses that wait for durability are in the
/// `Ready`'s messages (sent after persisting), and the node's own
/// acknowledgements are stepped by `advance`: nothing commits before it.
#[test]
fn sync_ready_then_advance_order() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.campaign().unwrap();
    let rd = rn.ready();
    assert_eq!(rd.hard_state, Some(HardState { term: 1, vote: 1, commit: 0 }));
    assert!(rd.must_sync);
    // The node's own vote counts only after advance.
    assert_eq!(rn.raft.state, StateType::Candidate);
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.state, StateType::Leader);

    let rd = rn.ready();
    assert_eq!(rd.entries, vec![entry(1, 1, b"")]);
    assert!(rd.committed_entries.is_empty());
    assert_eq!(rn.raft.raft_log.committed(), 0);
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.raft_log.committed(), 1);
    assert!(rn.raft.raft_log.unstable().entries().is_empty());

    let rd = rn.ready();
    assert_eq!(rd.committed_entries, vec![entry(1, 1, b"")]);
    assert_eq!(rd.hard_state.map(|hs| hs.commit), Some(1));
    assert!(!rd.must_sync);
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.raft_log.applied(), 1);
    assert!(!rn.has_ready());
}

/// In synchronous mode a follower's acknowledgement of an append is in the
/// `Ready` along with the entries to persist first.
#[test]
fn sync_follower_acknowledges_in_the_ready_of_the_entries() {
    let s = new_test_storage(&[1, 2]);
    let mut rn = new_raw_node(&new_test_config(2, 10, 1), &s);
    let app = Message {
        from: 1,
        to: 2,
        term: 1,
        entries: vec![entry(1, 1, b"x")],
        ..Message::new(MessageType::MsgApp)
    };
    rn.step(app).unwrap();
    let rd = rn.ready();
    assert_eq!(rd.entries, vec![entry(1, 1, b"x")]);
    assert!(rd.must_sync);
    assert_eq!(types(&rd.messages), vec![MessageType::MsgAppResp]);
    assert_eq!((rd.messages[0].to, rd.messages[0].index), (1, 1));
    handle_ready(&mut rn, &s, &rd);
    assert!(rn.raft.raft_log.unstable().entries().is_empty());
    assert!(!rn.has_ready());
}

/// Taking a second `Ready` with acknowledgements pending, without
/// `advance`, is a programmer error.
#[test]
fn two_readys_without_advance_panic() {
    let s = new_test_storage(&[1]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.campaign().unwrap();
    let _ = rn.ready();
    rn.raft.msgs.push(Message::default());
    let res = catch_unwind(AssertUnwindSafe(|| rn.ready()));
    assert!(res.is_err());
}

fn types(msgs: &[Message]) -> Vec<MessageType> {
    msgs.iter().map(Message::msg_type).collect()
}

// ---- The rest of the RawNode surface ----

/// Settles a single-node leader: elected, empty entry committed and
/// applied.
fn single_node_leader(cfg: &Config, s: &MemoryStorage) -> RawNode<MemoryStorage> {
    let mut rn = new_raw_node(cfg, s);
    rn.campaign().unwrap();
    while rn.has_ready() {
        let rd = rn.ready();
        handle_ready(&mut rn, s, &rd);
    }
    assert_eq!(rn.raft.state, StateType::Leader);
    rn
}

/// A batch proposal appends all its entries together, in order, and
/// commits them together.
#[test]
fn propose_batch_appends_entries_together() {
    let s = new_test_storage(&[1]);
    let mut rn = single_node_leader(&new_test_config(1, 10, 1), &s);
    rn.propose_batch([
        Bytes::from_static(b"a"),
        Bytes::from_static(b"b"),
        Bytes::from_static(b"c"),
    ])
    .unwrap();
    // An empty batch has no entry to name: refused, nothing appended.
    let res = rn.propose_batch(std::iter::empty());
    assert!(matches!(res, Err(Error::ProposalDropped(DropReason::EmptyBatch))));
    let rd = rn.ready();
    assert_eq!(rd.entries, vec![entry(1, 2, b"a"), entry(1, 3, b"b"), entry(1, 4, b"c")]);
    handle_ready(&mut rn, &s, &rd);
    let rd = rn.ready();
    assert_eq!(rd.committed_entries.len(), 3);
    handle_ready(&mut rn, &s, &rd);
}

/// A leader's proposals name the entry they were appended as (a batch its
/// last entry; a conf change even when replaced by an empty entry); a
/// follower's say they were forwarded.
#[test]
fn propose_reports_the_entry_or_forwarding() {
    let s = new_test_storage(&[1]);
    let mut rn = single_node_leader(&new_test_config(1, 10, 1), &s);
    let id = |term, index| Proposed::Appended(EntryId { term, index });
    assert_eq!(rn.propose(Bytes::from_static(b"a")).unwrap(), id(1, 2));
    let batch = [Bytes::from_static(b"b"), Bytes::from_static(b"c")];
    assert_eq!(rn.propose_batch(batch).unwrap(), id(1, 4));
    let add2 = ConfChangeV2::add_learner(2);
    assert_eq!(rn.propose_conf_change(add2.clone()).unwrap(), id(1, 5));
    // Another change while one is pending: replaced, but still at index 6.
    assert_eq!(rn.propose_conf_change(add2).unwrap(), id(1, 6));
    let rd = rn.ready();
    let ids: Vec<_> = rd.entries.iter().map(|e| (e.index, e.entry_type())).collect();
    assert_eq!(ids[3], (5, EntryType::EntryConfChangeV2));
    assert_eq!(ids[4], (6, EntryType::EntryNormal));
    handle_ready(&mut rn, &s, &rd);

    let s = new_test_storage(&[1, 2]);
    let mut follower = new_raw_node(&new_test_config(2, 10, 1), &s);
    let heartbeat = Message { from: 1, to: 2, term: 1, ..Message::new(MessageType::MsgHeartbeat) };
    follower.step(heartbeat).unwrap();
    assert_eq!(follower.propose(Bytes::from_static(b"x")).unwrap(), Proposed::Forwarded);
    let rd = follower.ready();
    assert!(rd.messages.iter().any(|m| m.msg_type() == MessageType::MsgProp && m.to == 1));
}

/// A node that owns its storage persists through `storage_mut`.
#[test]
fn storage_mut_persists_into_the_owned_storage() {
    let mut rn = RawNode::new(&new_test_config(1, 10, 1), new_test_storage(&[1])).unwrap();
    rn.campaign().unwrap();
    for _ in 0..3 {
        let rd = rn.ready();
        if let Some(hs) = rd.hard_state {
            rn.storage_mut().set_hard_state(hs);
        }
        rn.storage_mut().append(&rd.entries).unwrap();
        rn.advance();
    }
    assert_eq!(rn.raft.state, StateType::Leader);
    assert_eq!(rn.storage().last_index().unwrap(), 1);
    assert_eq!(rn.storage().initial_state().unwrap().0.vote, 1);
}

/// A batch is refused whole when it would overflow the uncommitted-size
/// limit of a non-empty tail.
#[test]
fn propose_batch_is_dropped_whole() {
    let s = new_test_storage(&[1, 2]);
    let mut cfg = new_test_config(1, 10, 1);
    cfg.max_uncommitted_entries_size = 10;
    let mut rn = new_raw_node(&cfg, &s);
    rn.raft.become_candidate();
    rn.raft.become_leader();
    rn.propose(Bytes::from_static(b"12345")).unwrap();
    let last = rn.raft.raft_log.last_index();
    let res = rn.propose_batch([Bytes::from_static(b"123"), Bytes::from_static(b"456")]);
    assert!(matches!(res, Err(Error::ProposalDropped(DropReason::QuotaExceeded))));
    assert_eq!(rn.raft.raft_log.last_index(), last);
}

/// Responses from nodes outside the configuration are refused, and so are
/// malformed appends: untrusted input gives an error, not a panic.
#[test]
fn step_refuses_unknown_peers_and_malformed_appends() {
    let s = new_test_storage(&[1, 2]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    let resp = Message { from: 9, to: 1, term: 1, ..Message::new(MessageType::MsgAppResp) };
    assert!(matches!(rn.step(resp), Err(Error::StepPeerNotFound)));

    // Entries that do not follow each other.
    let gap = Message {
        from: 2,
        to: 1,
        term: 1,
        entries: vec![entry(1, 1, b""), entry(1, 3, b"")],
        ..Message::new(MessageType::MsgApp)
    };
    assert!(matches!(rn.step(gap), Err(Error::InvalidMessage(_))));
    // Entries of a later term than the leader's.
    let newer = Message {
        from: 2,
        to: 1,
        term: 1,
        entries: vec![entry(2, 1, b"")],
        ..Message::new(MessageType::MsgApp)
    };
    assert!(matches!(rn.step(newer), Err(Error::InvalidMessage(_))));
    assert_eq!(rn.raft.raft_log.last_index(), 0);
    assert_eq!(rn.raft.term, 0);
}

/// `report_unreachable` moves a replicating follower back to probing;
/// `report_snapshot` ends a pending snapshot.
#[test]
fn report_unreachable_and_snapshot() {
    let s = new_test_storage(&[1, 2]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.raft.become_candidate();
    rn.raft.become_leader();

    let pr = rn.raft.trk.progress.get_mut(2).unwrap();
    pr.become_replicate();
    rn.report_unreachable(2);
    assert_eq!(rn.raft.trk.progress.get(2).unwrap().state, ProgressState::Probe);

    rn.raft.trk.progress.get_mut(2).unwrap().become_snapshot(5);
    rn.report_snapshot(2, SnapshotStatus::Failure);
    let pr = rn.raft.trk.progress.get(2).unwrap();
    assert_eq!(pr.state, ProgressState::Probe);
    assert_eq!(pr.pending_snapshot, 0);

    rn.raft.trk.progress.get_mut(2).unwrap().become_snapshot(5);
    rn.report_snapshot(2, SnapshotStatus::Finish);
    let pr = rn.raft.trk.progress.get(2).unwrap();
    assert_eq!(pr.state, ProgressState::Probe);
    assert_eq!(pr.next, 6);
}

/// `transfer_leader` on the leader starts a transfer (here to an
/// up-to-date node, which is told to campaign at once).
#[test]
fn transfer_leader_sends_timeout_now() {
    let s = new_test_storage(&[1, 2]);
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    rn.raft.become_candidate();
    rn.raft.become_leader();
    let last = rn.raft.raft_log.last_index();
    rn.raft.trk.progress.get_mut(2).unwrap().matched = last;

    rn.transfer_leader(2);
    assert_eq!(rn.basic_status().lead_transferee, 2);
    let rd = rn.ready();
    assert!(rd.messages.iter().any(|m| m.msg_type() == MessageType::MsgTimeoutNow && m.to == 2));
}

/// `forget_leader` makes a follower forget its leader, unless reads rely
/// on the leader lease.
#[test]
fn forget_leader() {
    for lease in [false, true] {
        let s = new_test_storage(&[1, 2]);
        let mut cfg = new_test_config(2, 10, 1);
        if lease {
            cfg.check_quorum = true;
            cfg.read_only_option = crate::config::ReadOnlyOption::LeaseBased;
        }
        let mut rn = new_raw_node(&cfg, &s);
        rn.step(Message { from: 1, to: 2, term: 1, ..Message::new(MessageType::MsgHeartbeat) })
            .unwrap();
        assert_eq!(rn.raft.lead, 1);
        rn.forget_leader().unwrap();
        let want = if lease { 1 } else { crate::util::NONE };
        assert_eq!(rn.raft.lead, want, "lease={lease}");
        assert_eq!(rn.raft.term, 1, "lease={lease}");
    }
}

/// `with_progress` visits every peer in id order, learners marked.
#[test]
fn with_progress_visits_peers_in_order() {
    let s = MemoryStorage::new_with_conf_state(ConfState {
        voters: vec![3, 1],
        learners: vec![2],
        ..ConfState::default()
    });
    let rn = new_raw_node(&new_test_config(1, 10, 1), &s);
    let mut seen = Vec::new();
    rn.with_progress(|id, typ, _| seen.push((id, typ)));
    assert_eq!(
        seen,
        vec![(1, ProgressType::Peer), (2, ProgressType::Learner), (3, ProgressType::Peer)]
    );
}

/// A conf change that a restored snapshot already covers changes nothing
/// through the index-carrying `apply_conf_change_at` (etcd-io/etcd#11510);
/// one above the snapshot applies.
#[test]
fn apply_conf_change_at_skips_changes_a_snapshot_covers() {
    let storage = MemoryStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    });
    let mut rn = RawNode::new(&Config::new(1), storage.clone()).unwrap();
    let mut snap = Snapshot::default();
    snap.metadata.index = 10;
    snap.metadata.term = 1;
    snap.metadata.conf_state = ConfState { voters: vec![1, 2, 3], ..ConfState::default() };
    rn.step(Message {
        from: 2,
        to: 1,
        term: 1,
        snapshot: Some(Box::new(snap)),
        ..Message::new(MessageType::MsgSnap)
    })
    .unwrap();
    let restored = rn.ready().snapshot.map(|s| s.metadata.index);
    assert_eq!(restored, Some(10), "the snapshot was restored");

    let add4: AnyConfChange = ConfChange {
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: 4,
        ..ConfChange::default()
    }
    .into();
    let cs = rn.apply_conf_change_at(7, &add4).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 3], "a change below the snapshot is ignored");
    let cs = rn.apply_conf_change_at(10, &add4).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 3], "a change at the snapshot is ignored");
    let cs = rn.apply_conf_change_at(11, &add4).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 3, 4], "a change above the snapshot applies");
}

/// `RawNode::new` returns errors, not panics, for state that storage or
/// the config got wrong.
#[test]
fn new_refuses_bad_applied_index_and_conf_state() {
    let storage =
        MemoryStorage::new_with_conf_state(ConfState { voters: vec![1], ..ConfState::default() });
    let mut config = Config::new(1);
    config.applied = 5; // nothing is committed
    let err = RawNode::new(&config, storage).err().expect("refused");
    assert!(matches!(err, Error::AppliedOutOfRange { applied: 5, lo: 0, hi: 0 }), "{err:?}");

    // An id both voter and learner restores to something else.
    let storage = MemoryStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2],
        learners: vec![2],
        ..ConfState::default()
    });
    match RawNode::new(&Config::new(1), storage) {
        Err(Error::ConfStateNotRestorable { .. } | Error::ConfChange(_)) => {}
        other => panic!("want a refusal, got {:?}", other.err()),
    }
}

/// With `max_size_per_msg` and `max_committed_size_per_ready` both 0, the
/// node applies one entry per Ready instead of panicking (etcd panics).
#[test]
fn zero_size_limits_apply_one_entry_at_a_time() {
    let storage =
        MemoryStorage::new_with_conf_state(ConfState { voters: vec![1], ..ConfState::default() });
    let mut config = Config::new(1);
    config.max_size_per_msg = 0;
    config.max_committed_size_per_ready = 0;
    let mut rn = RawNode::new(&config, storage.clone()).unwrap();
    rn.campaign().unwrap();
    let mut applied = Vec::new();
    for round in 0..20 {
        if round == 3 {
            for i in 0..3u8 {
                rn.propose(Bytes::from(vec![i])).unwrap();
            }
        }
        while rn.has_ready() {
            let rd = rn.ready();
            assert!(
                rd.committed_entries.len() <= 1,
                "{} entries at once",
                rd.committed_entries.len()
            );
            if let Some(hs) = rd.hard_state {
                storage.set_hard_state(hs);
            }
            storage.append(&rd.entries).unwrap();
            applied.extend(rd.committed_entries.iter().filter(|e| !e.data.is_empty()).cloned());
            rn.advance();
        }
    }
    assert_eq!(applied.len(), 3);
}

/// A malformed conf change is refused when proposed, on the leader and
/// when a peer forwards it, so it is never committed (a poison pill
/// otherwise: every replica would fail to apply it, on every restart).
#[test]
fn malformed_conf_changes_are_never_committed() {
    let storage = MemoryStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    });
    let mut rn = RawNode::new(&Config::new(1), storage.clone()).unwrap();
    rn.raft.become_candidate();
    rn.raft.become_leader();
    assert_eq!(rn.status().basic.soft_state.raft_state, StateType::Leader);
    let bad_transition = ConfChangeV2 { transition: 7, ..ConfChangeV2::default() };
    let bad_type = ConfChangeV2 {
        changes: vec![ConfChangeSingle { change_type: 9, node_id: 4 }],
        ..ConfChangeV2::default()
    };
    let reserved = ConfChangeV2 {
        changes: vec![ConfChangeSingle {
            change_type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: crate::util::LOCAL_APPEND_THREAD,
        }],
        ..ConfChangeV2::default()
    };
    let last = rn.raft.raft_log.last_index();
    for cc in [bad_transition, bad_type, reserved] {
        let err = rn.propose_conf_change(cc.clone()).unwrap_err();
        assert!(matches!(err, Error::ProposalDropped(DropReason::InvalidConfChange)), "{err:?}");
        // The same change forwarded by a follower.
        let entry = Entry {
            entry_type: Some(EntryType::EntryConfChangeV2 as i32),
            data: cc.encode_to_vec().into(),
            ..Entry::default()
        };
        let m =
            Message { from: 2, to: 1, entries: vec![entry], ..Message::new(MessageType::MsgProp) };
        let err = rn.step(m).unwrap_err();
        assert!(matches!(err, Error::ProposalDropped(DropReason::InvalidConfChange)), "{err:?}");
    }
    assert_eq!(rn.raft.raft_log.last_index(), last, "nothing was appended");
}

/// A follower of {1, 2} that has appended and committed, at index 1, a
/// change adding learner 3, and a `MsgSnap` at index 5 whose configuration
/// is {1, 2} (the leader has since removed 3 again).
fn follower_with_committed_conf_change(cfg: &Config) -> (RawNode<MemoryStorage>, Message) {
    let s = new_test_storage(&[1, 2]);
    let mut rn = new_raw_node(cfg, &s);
    let (t, data) = AnyConfChange::from(ConfChangeV2::add_learner(3)).to_entry_data();
    let cc_entry = Entry { entry_type: Some(t as i32), term: 1, index: 1, data };
    let app = Message {
        from: 1,
        to: 2,
        term: 1,
        commit: 1,
        entries: vec![cc_entry],
        ..Message::new(MessageType::MsgApp)
    };
    rn.step(app).unwrap();
    let snap = |index| Snapshot {
        metadata: SnapshotMetadata {
            conf_state: ConfState { voters: vec![1, 2], ..ConfState::default() },
            index,
            term: 1,
        },
        ..Snapshot::default()
    };
    let msg_snap = Message {
        from: 1,
        to: 2,
        term: 1,
        snapshot: Some(Box::new(snap(5))),
        ..Message::new(MessageType::MsgSnap)
    };
    (rn, msg_snap)
}

/// Synchronous mode: a `MsgSnap` stepped while a `Ready` is outstanding is
/// held until `advance`, so that the Ready's committed conf change applies
/// first and the snapshot's configuration then replaces it (not the other
/// way round, etcd-io/etcd#11510).
#[test]
fn sync_msg_snap_during_a_ready_waits_for_advance() {
    let (mut rn, msg_snap) = follower_with_committed_conf_change(&new_test_config(2, 10, 1));
    let s = rn.storage().clone();
    let rd = rn.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    let mut older = msg_snap.clone();
    older.snapshot.as_mut().unwrap().metadata.index = 4;
    rn.step(msg_snap).unwrap();
    rn.step(older).unwrap();
    assert_eq!(rn.raft.raft_log.committed(), 1, "not restored under the application");
    assert!(rn.raft.raft_log.unstable().snapshot().is_none());
    // The application applies the Ready: the change lands on {1, 2}.
    let states = handle_ready(&mut rn, &s, &rd);
    assert_eq!(states[0].learners, vec![3]);
    // advance stepped the held snapshot (the newer one): the next Ready
    // restores it, and with it the configuration {1, 2}.
    let rd = rn.ready();
    assert_eq!(rd.snapshot.as_ref().map(|s| s.metadata.index), Some(5));
    s.apply_snapshot(rd.snapshot.clone().unwrap()).unwrap();
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.trk.conf_state(), ConfState { voters: vec![1, 2], ..ConfState::default() });
    assert_eq!(rn.raft.raft_log.committed(), 5);
    // With no Ready outstanding a snapshot is stepped at once.
    let mut newer = rd.snapshot.clone().unwrap();
    newer.metadata.index = 8;
    let m = Message {
        from: 1,
        to: 2,
        term: 1,
        snapshot: Some(Box::new(newer)),
        ..Message::new(MessageType::MsgSnap)
    };
    rn.step(m).unwrap();
    assert_eq!(rn.raft.raft_log.committed(), 8);
}

/// Asynchronous mode: the snapshot is restored at once (the storage threads
/// order the writes), and the apply thread's late application of a change
/// the snapshot covers goes through `apply_conf_change_at`, which ignores it.
#[test]
fn async_msg_snap_during_an_apply_is_restored_and_covers_the_change() {
    let (mut rn, msg_snap) = follower_with_committed_conf_change(&async_config(2));
    let s = rn.storage().clone();
    // Persist the entry; the apply thread then receives the conf change.
    let rd = rn.ready();
    for m in rd.messages.iter().filter(|m| StorageAppend::new(m).is_some()) {
        deliver(&mut rn, persist(&s, m));
    }
    let rd = rn.ready();
    let apply = rd.messages.iter().find(|m| StorageApply::new(m).is_some()).unwrap().clone();
    // The snapshot arrives while the apply thread holds the change.
    rn.step(msg_snap).unwrap();
    let rd = rn.ready();
    let append = rd.messages.iter().find_map(StorageAppend::new).unwrap();
    assert_eq!(append.snapshot().map(|s| s.metadata.index), Some(5));
    // The apply thread applies index 1, a change the snapshot covers.
    let cc = AnyConfChange::from_entry(&StorageApply::new(&apply).unwrap().entries()[0]);
    let cs = rn.apply_conf_change_at(1, &cc.unwrap().unwrap()).unwrap();
    assert_eq!(cs, ConfState { voters: vec![1, 2], ..ConfState::default() });
    deliver(&mut rn, apply);
    for m in rd.messages.iter().filter(|m| StorageAppend::new(m).is_some()) {
        deliver(&mut rn, persist(&s, m));
    }
    assert_eq!(rn.raft.trk.conf_state(), cs);
    assert_eq!(rn.raft.raft_log.committed(), 5);
}

/// Entry sizes follow etcd-raft v3.7 (protobuf-go): a proposal's entry
/// leaves its type unset, so two one-byte proposals (7 bytes each) fit a
/// 14-byte `max_committed_size_per_ready` together, as in Go; with the type
/// written (9 bytes each) they would come one per Ready.
#[test]
fn proposals_leave_the_entry_type_unset_and_batch_as_go_does() {
    let s = new_test_storage(&[1]);
    let mut cfg = new_test_config(1, 10, 1);
    cfg.max_committed_size_per_ready = 14;
    let mut rn = single_node_leader(&cfg, &s);
    rn.propose(Bytes::from_static(b"a")).unwrap();
    rn.propose(Bytes::from_static(b"b")).unwrap();
    let rd = rn.ready();
    assert_eq!(rd.entries.len(), 2);
    assert!(rd.entries.iter().all(|e| e.entry_type.is_none()));
    assert_eq!(rd.entries[0].encoded_len(), 7);
    handle_ready(&mut rn, &s, &rd);
    let rd = rn.ready();
    let data: Vec<_> = rd.committed_entries.iter().map(|e| e.data.clone()).collect();
    assert_eq!(data, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    handle_ready(&mut rn, &s, &rd);

    // A conf change sets its type; a refused one is replaced by an entry
    // that sets EntryNormal explicitly (etcd's `Type: EntryNormal.Enum()`).
    rn.propose_conf_change(ConfChangeV2::add_learner(2)).unwrap();
    rn.propose_conf_change(ConfChangeV2::add_learner(3)).unwrap();
    let rd = rn.ready();
    let types: Vec<_> = rd.entries.iter().map(|e| e.entry_type).collect();
    let (v2, normal) = (EntryType::EntryConfChangeV2 as i32, EntryType::EntryNormal as i32);
    assert_eq!(types, vec![Some(v2), Some(normal)]);
    handle_ready(&mut rn, &s, &rd);
}

// ---- A synchronous leader's own acknowledgements ----
//
// In synchronous mode a leader records its acknowledgement of each of its
// own appends as an index (`Raft::own_acks`) instead of a `MsgAppResp` to
// itself; `accept_ready` hands them to `advance` (`acks_on_advance`), or
// turns them back into the messages they stand for when something must be
// stepped or sent before them.

/// A three-member leader at term 1 whose followers have not answered, with
/// its empty entry (index 1) persisted and its own acknowledgement stepped.
fn three_member_leader(s: &MemoryStorage) -> RawNode<MemoryStorage> {
    let mut rn = new_raw_node(&new_test_config(1, 10, 1), s);
    rn.raft.become_candidate();
    rn.raft.become_leader();
    let rd = rn.ready();
    handle_ready(&mut rn, s, &rd);
    assert_eq!((rn.raft.term, rn.raft.raft_log.last_index()), (1, 1));
    assert_eq!(rn.raft.trk.progress.get(1).unwrap().matched, 1);
    rn
}

/// Each append records one index, no message; the `Ready` hands them to
/// `advance` as indexes, and nothing commits until `advance` steps them.
#[test]
fn own_acks_are_kept_as_indexes_until_advance() {
    let s = new_test_storage(&[1]);
    let mut rn = single_node_leader(&new_test_config(1, 10, 1), &s);
    let (term, last) = (rn.raft.term, rn.raft.raft_log.last_index());
    rn.propose(Bytes::from_static(b"a")).unwrap();
    rn.propose_batch([Bytes::from_static(b"b"), Bytes::from_static(b"c")]).unwrap();
    rn.propose(Bytes::from_static(b"d")).unwrap();
    assert_eq!(rn.raft.own_acks, [last + 1, last + 3, last + 4]);
    assert_eq!(rn.raft.own_acks_term, term);
    assert!(rn.raft.msgs_after_append.is_empty());
    assert!(rn.has_ready());

    let rd = rn.ready();
    assert!(rd.messages.is_empty());
    assert!(rn.raft.own_acks.is_empty());
    // Only the storage's own response is a message (stepped after them).
    assert_eq!(types(&rn.steps_on_advance), [MessageType::MsgStorageAppendResp]);
    assert_eq!(rn.acks_on_advance, [last + 1, last + 3, last + 4]);
    assert_eq!(rn.acks_on_advance_term, term);
    assert_eq!(rn.raft.raft_log.committed(), last, "the entries are not durable yet");

    handle_ready(&mut rn, &s, &rd);
    assert!(rn.acks_on_advance.is_empty());
    assert_eq!(rn.raft.trk.progress.get(1).unwrap().matched, last + 4);
    assert_eq!(rn.raft.raft_log.committed(), last + 4);
    let rd = rn.ready();
    assert_eq!(rd.committed_entries.len(), 4);
    handle_ready(&mut rn, &s, &rd);
    assert!(!rn.has_ready());
}

/// `own_ack_run_skip`: all but the last of a run are skipped only when they
/// rise, are of the current term, and the last alone cannot commit anything
/// (so the intermediate ones could not either).
#[test]
fn own_acks_skip_all_but_the_last_only_when_equivalent() {
    let s = new_test_storage(&[1, 2, 3]);
    let mut rn = three_member_leader(&s);
    for data in [b"a", b"b", b"c"] {
        rn.propose(Bytes::from_static(data)).unwrap();
    }
    let acks = [2, 3, 4];
    let skip = |rn: &RawNode<MemoryStorage>, term: u64, acks: &[u64]| {
        rn.own_ack_run_skip(term, acks.len(), |i| acks[i])
    };
    // No follower holds anything past 1: no ack of the leader's commits.
    assert_eq!(skip(&rn, 1, &acks), 2);
    assert_eq!(skip(&rn, 1, &acks[..1]), 0, "a single ack is stepped");
    assert_eq!(skip(&rn, 1, &[2, 4, 3]), 0, "not rising");
    assert_eq!(skip(&rn, 2, &acks), 0, "another term");

    // Once a follower holds 3, the leader's ack of 3 commits it: each ack
    // must be stepped for the commit index to move as etcd moves it.
    let matched = std::mem::replace(&mut rn.raft.trk.progress.get_mut(2).unwrap().matched, 3);
    assert_eq!(skip(&rn, 1, &acks), 0);
    rn.raft.trk.progress.get_mut(2).unwrap().matched = matched;

    // Skipped or not, the leader ends up acknowledging the last index.
    let rd = rn.ready();
    assert_eq!(rn.acks_on_advance, acks);
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.trk.progress.get(1).unwrap().matched, 4);
    assert_eq!(rn.raft.raft_log.committed(), 0, "no follower has acknowledged");
    let ack =
        Message { from: 2, to: 1, term: 1, index: 4, ..Message::new(MessageType::MsgAppResp) };
    rn.step(ack).unwrap();
    assert_eq!(rn.raft.raft_log.committed(), 4);
}

/// A response queued after the leader's acknowledgements turns them into
/// messages first, so that everything keeps its order; acknowledgements
/// recorded after that follow as messages too.
#[test]
fn own_acks_become_messages_when_a_response_is_queued_after_them() {
    let s = new_test_storage(&[1, 2, 3]);
    let mut rn = three_member_leader(&s);
    rn.propose(Bytes::from_static(b"x")).unwrap();
    assert_eq!(rn.raft.own_acks, [2]);

    // A pre-vote from 3 at a higher term, with a log as long as ours: the
    // leader grants it (without changing its term), a response that waits
    // for durability like the acknowledgements do.
    let pre_vote = Message {
        from: 3,
        to: 1,
        term: 2,
        log_term: 1,
        index: 2,
        ..Message::new(MessageType::MsgPreVote)
    };
    rn.step(pre_vote).unwrap();
    assert_eq!((rn.raft.state, rn.raft.term), (StateType::Leader, 1));
    assert!(rn.raft.own_acks.is_empty());
    let after: Vec<_> =
        rn.raft.msgs_after_append.iter().map(|m| (m.msg_type(), m.to, m.term, m.index)).collect();
    assert_eq!(after, [(MessageType::MsgAppResp, 1, 1, 2), (MessageType::MsgPreVoteResp, 3, 2, 0)]);

    // A proposal after the response records an index again...
    rn.propose(Bytes::from_static(b"y")).unwrap();
    assert_eq!(rn.raft.own_acks, [3]);
    // ...which the Ready turns into a message after the one stepped before
    // it, since indexes are stepped first on advance.
    let rd = rn.ready();
    // (The appends to 2 and 3 went out with x; they are paused since.)
    let sent = [MessageType::MsgApp, MessageType::MsgApp, MessageType::MsgPreVoteResp];
    assert_eq!(types(&rd.messages), sent);
    assert!(rn.acks_on_advance.is_empty());
    let steps: Vec<_> = rn.steps_on_advance.iter().map(|m| (m.msg_type(), m.index)).collect();
    let app_resp = MessageType::MsgAppResp;
    let storage_resp = MessageType::MsgStorageAppendResp;
    assert_eq!(steps, [(app_resp, 2), (app_resp, 3), (storage_resp, 3)]);
    handle_ready(&mut rn, &s, &rd);
    assert_eq!(rn.raft.trk.progress.get(1).unwrap().matched, 3);
    assert!(rn.steps_on_advance.is_empty());
}

/// Acknowledgements keep the term they were recorded at: a new term's
/// append turns the old ones into messages of the old term, which `advance`
/// then steps as the stale responses they are.
#[test]
fn own_acks_keep_their_term_across_a_term_change() {
    let s = new_test_storage(&[1]);
    let mut rn = single_node_leader(&new_test_config(1, 10, 1), &s);
    let (term, last) = (rn.raft.term, rn.raft.raft_log.last_index());
    rn.propose(Bytes::from_static(b"a")).unwrap();
    assert_eq!((rn.raft.own_acks.as_slice(), rn.raft.own_acks_term), ([last + 1].as_slice(), term));

    // Elected again two terms later without sending anything in between:
    // the new leader's empty entry is acknowledged at the new term.
    rn.raft.become_follower(term + 1, NONE);
    rn.raft.become_candidate();
    rn.raft.become_leader();
    let new_term = term + 2;
    assert_eq!(rn.raft.term, new_term);
    let after: Vec<_> =
        rn.raft.msgs_after_append.iter().map(|m| (m.msg_type(), m.term, m.index)).collect();
    assert_eq!(after, [(MessageType::MsgAppResp, term, last + 1)]);
    assert_eq!(
        (rn.raft.own_acks.as_slice(), rn.raft.own_acks_term),
        ([last + 2].as_slice(), new_term)
    );

    let rd = rn.ready();
    assert!(rn.acks_on_advance.is_empty());
    let steps: Vec<_> = rn
        .steps_on_advance
        .iter()
        .filter(|m| m.msg_type() == MessageType::MsgAppResp)
        .map(|m| (m.term, m.index))
        .collect();
    assert_eq!(steps, [(term, last + 1), (new_term, last + 2)]);
    handle_ready(&mut rn, &s, &rd);
    // The stale acknowledgement is ignored; the new one commits both
    // entries (the new term's entry carries the old one with it).
    assert_eq!(rn.raft.raft_log.committed(), last + 2);
}

/// Acknowledgements handed to `advance` whose term has passed by then (the
/// leader stepped down in between) are stepped as stale and change
/// nothing; the next `Ready` starts clean.
#[test]
fn own_acks_of_a_past_term_are_ignored_on_advance() {
    let s = new_test_storage(&[1, 2, 3]);
    let mut rn = three_member_leader(&s);
    rn.propose(Bytes::from_static(b"x")).unwrap();
    let rd = rn.ready();
    assert_eq!((rn.acks_on_advance.as_slice(), rn.acks_on_advance_term), ([2].as_slice(), 1));

    // 2 leads at term 2 before this Ready is handled.
    let heartbeat = Message { from: 2, to: 1, term: 2, ..Message::new(MessageType::MsgHeartbeat) };
    rn.step(heartbeat).unwrap();
    assert_eq!(rn.raft.state, StateType::Follower);
    assert_eq!(rn.own_ack_run_skip(1, 2, |i| [2, 2][i]), 0, "a past term is never skipped");
    handle_ready(&mut rn, &s, &rd);
    assert!(rn.acks_on_advance.is_empty());
    assert_eq!((rn.raft.state, rn.raft.term), (StateType::Follower, 2));
    assert_eq!(rn.raft.raft_log.committed(), 0);
    // The heartbeat's response is all that is left to send.
    let rd = rn.ready();
    assert_eq!(types(&rd.messages), [MessageType::MsgHeartbeatResp]);
    handle_ready(&mut rn, &s, &rd);
}
