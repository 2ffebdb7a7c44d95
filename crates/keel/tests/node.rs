//! `Node` through its public API: the behaviours of etcd-raft's
//! `node_test.go`, written anew. Ticks are driven by hand and every wait on
//! the loop is bounded by the node's request timeout, so a bug fails a test
//! instead of hanging it. (Waiting for storage work is not bounded by it:
//! the storage threads here end when the test stops the node.)

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use keel::raftpb::{
    AnyConfChange, ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, MessageType,
};
use keel::{
    Config, DropReason, EntryId, Error, MemoryStorage, Node, NodeOptions, Peer, Proposed, Ready,
    SnapshotStatus, StateType,
};

const WAIT: Duration = Duration::from_secs(10);

fn options() -> NodeOptions {
    NodeOptions { request_timeout: Some(WAIT), ..NodeOptions::default() }
}

fn peers(ids: &[u64]) -> Vec<Peer> {
    ids.iter().map(|&id| Peer { id, ..Peer::default() }).collect()
}

/// Persists a `Ready` the way etcd's docs order it: snapshot, then hard
/// state and entries.
fn persist(storage: &MemoryStorage, rd: &Ready) {
    if let Some(snap) = &rd.snapshot {
        storage.apply_snapshot(snap.clone()).unwrap();
    }
    if let Some(hs) = rd.hard_state {
        storage.set_hard_state(hs);
    }
    storage.append(&rd.entries).unwrap();
}

/// A one-voter node driven on the test thread.
struct Single {
    node: Node,
    storage: MemoryStorage,
    applied: Vec<Entry>,
    conf: Option<ConfState>,
}

impl Single {
    fn start() -> Single {
        let storage = MemoryStorage::new();
        let node =
            Node::start_with(&Config::new(1), storage.clone(), &peers(&[1]), options()).unwrap();
        Single { node, storage, applied: Vec::new(), conf: None }
    }

    /// Handles one `Ready`: persist, apply (conf changes through the node),
    /// advance.
    fn step_ready(&mut self) -> Ready {
        let rd = self.node.ready().unwrap();
        persist(&self.storage, &rd);
        for e in &rd.committed_entries {
            if let Some(cc) = AnyConfChange::from_entry(e).unwrap()
                && e.index > 1
            {
                self.conf = Some(self.node.apply_conf_change_at(e.index, cc).unwrap());
            }
            self.applied.push(e.clone());
        }
        self.node.advance().unwrap();
        rd
    }

    /// Runs Readys until `done`, at most 100 of them.
    fn until(&mut self, mut done: impl FnMut(&Single) -> bool) {
        for _ in 0..100 {
            if done(self) {
                return;
            }
            self.step_ready();
        }
        panic!("condition not reached in 100 Readys");
    }

    /// Applies the bootstrap configuration (a node does not campaign with
    /// configuration changes left to apply), then campaigns.
    fn elect(&mut self) {
        self.step_ready();
        self.node.campaign().unwrap();
        self.until(|s| s.node.status().unwrap().basic.soft_state.raft_state == StateType::Leader);
    }

    fn applied_data(&self) -> Vec<Bytes> {
        self.applied
            .iter()
            .filter(|e| e.entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect()
    }
}

#[test]
fn proposals_are_committed_and_applied() {
    let mut s = Single::start();
    s.elect();
    let mut ids = Vec::new();
    for i in 0..10u8 {
        ids.push(s.node.propose(Bytes::from(vec![i])).unwrap());
    }
    let batch = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
    ids.push(s.node.propose_batch(batch).unwrap());
    s.until(|s| s.applied_data().len() == 12);
    // Each outcome names the entry that was applied with its data (a batch
    // its last entry).
    let applied: Vec<Proposed> = s
        .applied
        .iter()
        .filter(|e| !e.data.is_empty() && e.entry_type() == EntryType::EntryNormal)
        .map(|e| Proposed::Appended(EntryId { term: e.term, index: e.index }))
        .collect();
    assert_eq!(ids[..10], applied[..10]);
    assert_eq!(ids[10], applied[11]);
    let want: Vec<Bytes> = (0..10u8)
        .map(|i| Bytes::from(vec![i]))
        .chain([Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        .collect();
    assert_eq!(s.applied_data(), want);
    s.node.stop();
}

#[test]
fn a_follower_without_a_leader_drops_proposals() {
    // Three voters, never elected: nobody to forward to.
    let storage = MemoryStorage::new();
    let node =
        Node::start_with(&Config::new(1), storage.clone(), &peers(&[1, 2, 3]), options()).unwrap();
    let err = node.propose(Bytes::from_static(b"x")).unwrap_err();
    assert!(matches!(err, Error::ProposalDropped(DropReason::NoLeader)), "{err:?}");
    let err = node.read_index(Bytes::from_static(b"r")).unwrap_err();
    assert!(matches!(err, Error::ProposalDropped(DropReason::NoLeader)), "{err:?}");
    node.stop();
}

#[test]
fn conf_changes_go_through_the_node() {
    let mut s = Single::start();
    s.elect();
    let cc = ConfChange {
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: 2,
        ..ConfChange::default()
    };
    s.node.propose_conf_change(cc).unwrap();
    s.until(|s| s.conf.is_some());
    assert_eq!(s.conf.as_ref().unwrap().voters, vec![1, 2]);
    let st = s.node.status().unwrap();
    assert!(st.config.voters().ids().any(|id| id == 2));
    s.node.stop();
}

#[test]
fn stop_answers_every_waiting_caller_and_every_later_call() {
    let storage = MemoryStorage::new();
    // No timeout: only stop can release the waiters.
    let node = Node::start(&Config::new(1), storage, &peers(&[1, 2, 3])).unwrap();
    // Take the bootstrap Ready and do not advance: the next ready() blocks.
    let _ = node.ready().unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let node = node.clone();
        thread::spawn(move || tx.send(node.ready().map(|_| ())).unwrap())
    };
    thread::sleep(Duration::from_millis(20));
    node.stop();
    let got = rx.recv_timeout(WAIT).expect("the blocked ready() returned");
    assert!(matches!(got, Err(Error::Stopped)), "{got:?}");
    waiter.join().unwrap();
    // Idempotent, and every call now fails fast.
    node.stop();
    assert!(node.is_stopped());
    assert!(matches!(node.tick(), Err(Error::Stopped)));
    assert!(matches!(node.propose(Bytes::from_static(b"x")), Err(Error::Stopped)));
    assert!(matches!(node.status(), Err(Error::Stopped)));
    assert!(matches!(node.ready(), Err(Error::Stopped)));
    assert!(matches!(node.step(Message::new(MessageType::MsgHeartbeat)), Err(Error::Stopped)));
}

#[test]
fn dropping_the_last_handle_stops_the_loop() {
    let node = Node::start(&Config::new(1), MemoryStorage::new(), &peers(&[1])).unwrap();
    let clone = node.clone();
    drop(node);
    assert!(clone.status().is_ok(), "a clone keeps the loop alive");
    drop(clone); // joins the thread; the test would hang otherwise
}

#[test]
fn dropping_the_last_handle_with_a_full_queue_does_not_hang() {
    let options = NodeOptions { queue_capacity: 2, ..options() };
    let node =
        Node::start_with(&Config::new(1), MemoryStorage::new(), &peers(&[1]), options).unwrap();
    // Fill the queue with fire-and-forget requests (async ones: a blocking
    // call made while the loop is idle runs inline instead of queueing),
    // then drop the handle.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        for _ in 0..2 {
            let _ = node.tick_async().await;
        }
    });
    drop(node); // joins the loop thread; the test would hang otherwise
}

#[test]
fn step_refuses_local_message_types() {
    let node = Node::start(&Config::new(1), MemoryStorage::new(), &peers(&[1])).unwrap();
    for t in [MessageType::MsgHup, MessageType::MsgBeat, MessageType::MsgStorageAppendResp] {
        let err = node.step(Message::new(t)).unwrap_err();
        assert!(matches!(err, Error::StepLocalMsg), "{t:?}: {err:?}");
    }
    node.stop();
}

#[test]
fn restart_from_storage_keeps_the_log() {
    let mut s = Single::start();
    s.elect();
    s.node.propose(Bytes::from_static(b"before")).unwrap();
    s.until(|s| s.applied_data().len() == 1);
    let hs = s.storage.hard_state();
    s.node.stop();

    let node = Node::restart_with(&Config::new(1), s.storage.clone(), options()).unwrap();
    let st = node.status().unwrap();
    assert_eq!(st.basic.hard_state, hs);
    // The restarted node hands out the committed entries again (applied is
    // 0 in its config), ending with the proposal.
    let rd = node.ready().unwrap();
    assert_eq!(rd.committed_entries.last().unwrap().data, Bytes::from_static(b"before"));
    node.advance().unwrap();
    node.stop();
}

#[test]
fn restart_from_a_snapshot() {
    let mut s = Single::start();
    s.elect();
    s.node.propose(Bytes::from_static(b"x")).unwrap();
    s.until(|s| s.applied_data().len() == 1);
    let applied = s.applied.last().unwrap().index;
    let cs = ConfState { voters: vec![1], ..ConfState::default() };
    s.storage.create_snapshot(applied, Some(&cs), Bytes::from_static(b"state")).unwrap();
    s.storage.compact(applied).unwrap();
    s.node.stop();

    let mut config = Config::new(1);
    config.applied = applied;
    let node = Node::restart_with(&config, s.storage.clone(), options()).unwrap();
    let st = node.status().unwrap();
    assert_eq!(st.basic.applied, applied);
    assert_eq!(st.config.voters().ids().collect::<Vec<_>>(), vec![1]);
    node.stop();
}

#[test]
fn read_index_is_answered_in_a_ready() {
    let mut s = Single::start();
    s.elect();
    let commit = s.node.status().unwrap().basic.hard_state.commit;
    s.node.read_index(Bytes::from_static(b"ctx")).unwrap();
    let mut found = None;
    for _ in 0..10 {
        let rd = s.step_ready();
        if let Some(rs) = rd.read_states.first() {
            found = Some(rs.clone());
            break;
        }
    }
    let rs = found.expect("a read state");
    assert_eq!(rs.request_ctx, Bytes::from_static(b"ctx"));
    // A lone voter answers at once with its commit index, as etcd's does.
    assert!(rs.index >= commit, "{rs:?} before commit {commit}");
    s.node.stop();
}

#[test]
fn no_second_ready_before_advance() {
    let mut s = Single::start();
    s.elect();
    s.node.propose(Bytes::from_static(b"one")).unwrap();
    let rd = s.node.ready().unwrap();
    persist(&s.storage, &rd);
    // More work arrives while the Ready is outstanding...
    s.node.propose(Bytes::from_static(b"two")).unwrap();
    let _ = s.node.status().unwrap(); // the loop has seen the proposal
    assert!(s.node.try_ready().unwrap().is_none(), "a second Ready before advance");
    // ... and is handed out after it.
    s.node.advance().unwrap();
    let rd = s.node.ready().unwrap();
    assert!(rd.entries.iter().any(|e| e.data == Bytes::from_static(b"two")));
    persist(&s.storage, &rd);
    s.node.advance().unwrap();
    s.node.stop();
}

#[test]
fn advance_is_refused_with_async_storage_writes() {
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let node = Node::start(&config, MemoryStorage::new(), &peers(&[1])).unwrap();
    assert!(matches!(node.advance(), Err(Error::AdvanceWithAsyncStorageWrites)));
    node.stop();
}

/// With asynchronous storage writes the loop routes the storage messages to
/// a storage thread and an apply thread, which step their responses back.
#[test]
fn async_storage_writes_through_the_node() {
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let storage = MemoryStorage::new();
    let node = Node::start_with(&config, storage.clone(), &peers(&[1]), options()).unwrap();

    // Waiting for work is not bounded by the request timeout: these threads
    // wait until the node stops, however long they are idle.
    let appender = {
        let (node, storage) = (node.clone(), storage.clone());
        thread::spawn(move || {
            while let Ok(mut w) = node.append_work().recv() {
                if let Some(snap) = w.snapshot() {
                    storage.apply_snapshot(snap.clone()).unwrap();
                }
                if let Some(hs) = w.hard_state() {
                    storage.set_hard_state(hs);
                }
                storage.append(w.entries()).unwrap();
                let responses = w.take_responses();
                // One voter: every response is for this node.
                assert!(responses.peers.is_empty());
                for r in responses.local {
                    if node.step_local(r).is_err() {
                        return;
                    }
                }
            }
        })
    };
    let (applied_tx, applied_rx) = mpsc::channel();
    let applier = {
        let node = node.clone();
        thread::spawn(move || {
            while let Ok(w) = node.apply_work().recv() {
                let (entries, responses) = w.into_parts();
                for e in entries {
                    if e.entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                        applied_tx.send(e.data).unwrap();
                    }
                }
                for r in responses {
                    if node.step_local(r).is_err() {
                        return;
                    }
                }
            }
        })
    };
    // The main loop: take Readys, nothing to send (one voter).
    let reader = {
        let node = node.clone();
        thread::spawn(move || {
            while let Ok(rd) = node.ready() {
                assert!(rd.messages.is_empty(), "storage messages are routed, not in the Ready");
            }
        })
    };

    // Campaign once the bootstrap configuration is applied.
    for attempt in 0.. {
        node.campaign().unwrap();
        thread::sleep(Duration::from_millis(1));
        if node.status().unwrap().basic.soft_state.raft_state == StateType::Leader {
            break;
        }
        assert!(attempt < 5000, "no leader");
    }
    let mut got = Vec::new();
    for i in 0..20u8 {
        // Proposals are dropped until the node leads; retry boundedly.
        for attempt in 0.. {
            match node.propose(Bytes::from(vec![i])) {
                Ok(_) => break,
                Err(Error::ProposalDropped(_)) if attempt < 1000 => {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("propose: {e}"),
            }
        }
    }
    while got.len() < 20 {
        got.push(applied_rx.recv_timeout(WAIT).expect("applied in time"));
    }
    assert_eq!(got, (0..20u8).map(|i| Bytes::from(vec![i])).collect::<Vec<_>>());
    // Bootstrap entry, the leader's empty entry, then the 20 proposals.
    assert_eq!(keel::Storage::last_index(&storage).unwrap(), 22);
    node.stop();
    for t in [appender, applier, reader] {
        t.join().unwrap();
    }
}

#[test]
fn report_calls_reach_the_loop() {
    let mut s = Single::start();
    s.elect();
    s.node.report_unreachable(2).unwrap();
    s.node.report_snapshot(2, SnapshotStatus::Failure).unwrap();
    s.node.transfer_leadership(1).unwrap();
    assert_eq!(s.node.status().unwrap().basic.soft_state.raft_state, StateType::Leader);
    s.node.stop();
}

/// Item 5 of the Node issue: while committed entries are being applied, a
/// snapshot that covers them arrives; applying their conf change afterwards
/// through `apply_conf_change_at` changes nothing.
#[test]
fn a_restored_snapshot_guards_conf_changes_it_covers() {
    let storage = MemoryStorage::new();
    let node =
        Node::start_with(&Config::new(1), storage.clone(), &peers(&[1, 2, 3]), options()).unwrap();
    let rd = node.ready().unwrap();
    persist(&storage, &rd);
    node.advance().unwrap();

    let mut snap = keel::raftpb::Snapshot::default();
    snap.metadata.index = 10;
    snap.metadata.term = 1;
    snap.metadata.conf_state = ConfState { voters: vec![1, 2, 3], ..ConfState::default() };
    node.step(Message {
        from: 2,
        to: 1,
        term: 1,
        snapshot: Some(Box::new(snap)),
        ..Message::new(MessageType::MsgSnap)
    })
    .unwrap();
    let rd = node.ready().unwrap();
    assert_eq!(rd.snapshot.as_ref().map(|s| s.metadata.index), Some(10));
    persist(&storage, &rd);
    node.advance().unwrap();

    let add4 = ConfChange {
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: 4,
        ..ConfChange::default()
    };
    // A change committed at index 3, handed out before the snapshot came.
    let cs = node.apply_conf_change_at(3, add4.clone()).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 3]);
    let cs = node.apply_conf_change_at(11, add4).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 3, 4]);
    node.stop();
}

/// An idle storage or apply thread is not a failed request: waiting for
/// work outlasts the request timeout and ends only when the node stops.
#[test]
fn waiting_for_work_is_not_bounded_by_the_request_timeout() {
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let options = NodeOptions { request_timeout: Some(Duration::from_millis(5)), ..options() };
    let node = Node::start_with(&config, MemoryStorage::new(), &peers(&[1]), options).unwrap();
    // Nothing persists the bootstrap entries, so nothing is ever applied.
    let (tx, rx) = mpsc::channel();
    let applier = {
        let node = node.clone();
        thread::spawn(move || tx.send(node.apply_work().recv().map(|_| ())).unwrap())
    };
    // Many request timeouts pass; had `recv` given up, it would have said
    // `Timeout` by now.
    thread::sleep(Duration::from_millis(100));
    node.stop();
    let got = rx.recv_timeout(WAIT).expect("recv returned once the node stopped");
    assert!(matches!(got, Err(Error::Stopped)), "{got:?}");
    applier.join().unwrap();
    assert!(matches!(node.append_work().try_recv(), Err(Error::Stopped)));
}

/// etcd's TestNodeTick: ticks reach raft; a lone voter elects itself once
/// its (randomized, below twice `election_tick`) election timeout passes.
#[test]
fn ticks_elect_a_lone_voter() {
    let mut s = Single::start();
    s.step_ready(); // the bootstrap configuration, applied
    let election_tick = Config::new(1).election_tick;
    for _ in 0..2 * election_tick {
        s.node.tick().unwrap();
    }
    s.until(|s| s.node.status().unwrap().basic.soft_state.raft_state == StateType::Leader);
    s.node.stop();
}

/// etcd's TestNodeProposeAddDuplicateNode: adding a member twice changes
/// nothing the second time, and a later change still goes through.
#[test]
fn adding_a_member_twice_is_harmless() {
    let mut s = Single::start();
    s.elect();
    let add = |id| ConfChange {
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: id,
        ..ConfChange::default()
    };
    let mut confs = Vec::new();
    for id in [1, 1, 2] {
        s.conf = None;
        s.node.propose_conf_change(add(id)).unwrap();
        s.until(|s| s.conf.is_some());
        confs.push(s.conf.take().unwrap().voters);
    }
    assert_eq!(confs, vec![vec![1], vec![1], vec![1, 2]]);
    s.node.stop();
}

/// Blocking calls (run on the caller's thread when the loop is idle) and
/// async calls (always queued for the node's thread) on one node at once:
/// every proposal is answered and committed, each caller's in its order.
#[test]
fn blocking_and_async_callers_share_the_node() {
    let mut s = Single::start();
    s.elect();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let async_proposer = {
        let node = s.node.clone();
        thread::spawn(move || {
            runtime.block_on(async {
                for i in 0..50u8 {
                    node.propose_async(Bytes::from(vec![1, i])).await.unwrap();
                    node.tick_async().await.unwrap();
                }
            });
        })
    };
    let blocking_proposer = {
        let node = s.node.clone();
        thread::spawn(move || {
            for i in 0..50u8 {
                node.propose(Bytes::from(vec![2, i])).unwrap();
                node.tick().unwrap();
            }
        })
    };
    // Each Ready carries a new entry or a new commit: at most two per
    // proposal.
    for _ in 0..200 {
        if s.applied_data().len() == 100 {
            break;
        }
        s.step_ready();
    }
    assert_eq!(s.applied_data().len(), 100);
    async_proposer.join().unwrap();
    blocking_proposer.join().unwrap();
    for caller in [1u8, 2] {
        let mine: Vec<u8> =
            s.applied_data().iter().filter(|d| d[0] == caller).map(|d| d[1]).collect();
        assert_eq!(mine, (0..50).collect::<Vec<_>>(), "caller {caller}");
    }
    s.node.stop();
}

/// With `on_ready`, every `Ready` goes to the handler, in order, and none to
/// `ready`; the application's loop is otherwise the same.
#[test]
fn a_ready_handler_takes_every_ready() {
    let storage = MemoryStorage::new();
    let (tx, rx) = mpsc::channel();
    let opts = NodeOptions {
        on_ready: Some(keel::ReadyHandler::new(move |rd| tx.send(rd).unwrap())),
        ..options()
    };
    let node = Node::start_with(&Config::new(1), storage.clone(), &peers(&[1]), opts).unwrap();
    let mut applied = Vec::new();
    let (mut campaigned, mut proposed) = (false, false);
    while applied.len() < 3 {
        let rd = rx.recv_timeout(WAIT).expect("a Ready for the handler");
        assert!(node.try_ready().unwrap().is_none(), "nothing for Node::ready");
        persist(&storage, &rd);
        for e in &rd.committed_entries {
            if e.entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                applied.push(e.data.clone());
            }
        }
        let leader = rd.soft_state.is_some_and(|s| s.lead == 1);
        node.advance().unwrap();
        if !campaigned {
            node.campaign().unwrap();
            campaigned = true;
        }
        if leader && !proposed {
            for v in ["a", "b", "c"] {
                node.propose(Bytes::from(v)).unwrap();
            }
            proposed = true;
        }
    }
    assert_eq!(applied, ["a", "b", "c"].map(Bytes::from));
    node.stop();
}

/// `step_many` steps a burst before the next `Ready`: three appends from a
/// leader land in one `Ready`, and a local-only message among them is left
/// out and reported without costing the others their step.
#[test]
fn step_many_lands_a_burst_in_one_ready() {
    let storage = MemoryStorage::new();
    let node =
        Node::start_with(&Config::new(2), storage.clone(), &peers(&[1, 2]), options()).unwrap();
    let rd = node.ready().unwrap();
    persist(&storage, &rd);
    node.advance().unwrap();
    let last = keel::Storage::last_index(&storage).unwrap();
    let append = |index: u64, log_term: u64| {
        let mut m = Message::new(MessageType::MsgApp);
        (m.from, m.to, m.term, m.index, m.log_term) = (1, 2, 2, index, log_term);
        m.entries =
            vec![Entry { term: 2, index: index + 1, data: Bytes::from("x"), ..Entry::default() }];
        m
    };
    let burst = vec![
        append(last, 1),
        append(last + 1, 2),
        Message::new(MessageType::MsgHup),
        append(last + 2, 2),
    ];
    assert!(matches!(node.step_many(burst), Err(Error::StepLocalMsg)));
    let rd = node.ready().unwrap();
    let indexes: Vec<u64> = rd.entries.iter().map(|e| e.index).collect();
    assert_eq!(indexes, [last + 1, last + 2, last + 3]);
    let acks: Vec<u64> = rd
        .messages
        .iter()
        .filter(|m| m.msg_type() == MessageType::MsgAppResp && !m.reject)
        .map(|m| m.index)
        .collect();
    assert_eq!(acks.last(), Some(&(last + 3)));
    node.stop();
}

/// Storage work done where raft makes it, for a one-voter node: persists
/// to `storage`, records the indexes of applied normal entries in `log`
/// (shared with any consumer thread, so that the order of all applies
/// shows), and refuses applies while `refuse_apply` is set.
#[derive(Default)]
struct InlineWork {
    storage: MemoryStorage,
    log: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    refuse_apply: std::sync::atomic::AtomicBool,
    applies: std::sync::atomic::AtomicUsize,
    /// ("commit", index) for each append of a hard state alone and
    /// ("apply", last index) for each apply, in the order they ran.
    order: std::sync::Mutex<Vec<(&'static str, u64)>>,
}

impl InlineWork {
    fn record(&self, entries: &[Entry]) {
        let normal = entries
            .iter()
            .filter(|e| e.entry_type() == EntryType::EntryNormal && !e.data.is_empty());
        self.log.lock().unwrap().extend(normal.map(|e| e.index));
    }
}

impl keel::node::InlineStorage for InlineWork {
    fn append(
        &self,
        mut w: keel::node::AppendWork,
    ) -> Result<Vec<Message>, keel::node::AppendWork> {
        if let Some(hs) = w.hard_state() {
            self.storage.set_hard_state(hs);
            if w.entries().is_empty() && w.snapshot().is_none() {
                self.order.lock().unwrap().push(("commit", hs.commit));
            }
        }
        self.storage.append(w.entries()).unwrap();
        let responses = w.take_responses();
        assert!(responses.peers.is_empty(), "one voter");
        Ok(responses.local)
    }

    fn apply(&self, w: keel::node::ApplyWork) -> Result<Vec<Message>, keel::node::ApplyWork> {
        if self.refuse_apply.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(w);
        }
        self.applies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.record(w.entries());
        if let Some(last) = w.entries().last() {
            self.order.lock().unwrap().push(("apply", last.index));
        }
        Ok(w.into_parts().1)
    }
}

fn start_inline(work: &std::sync::Arc<InlineWork>) -> Node {
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let inline: std::sync::Arc<dyn keel::node::InlineStorage> = work.clone();
    // One voter: its Readys hold nothing to send.
    let opts = NodeOptions {
        inline_storage: Some(inline),
        on_ready: Some(keel::ReadyHandler::new(|_| {})),
        ..options()
    };
    let node = Node::start_with(&config, work.storage.clone(), &peers(&[1]), opts).unwrap();
    // The bootstrap configuration is applied by the loop's first run.
    for attempt in 0.. {
        node.campaign().unwrap();
        if node.status().unwrap().basic.soft_state.raft_state == StateType::Leader {
            return node;
        }
        assert!(attempt < 5000, "no leader: {:?}", node.status().unwrap());
        thread::sleep(Duration::from_millis(1));
    }
    unreachable!()
}

/// Proposes `v` on a leader; its index.
fn propose_index(node: &Node, v: &str) -> u64 {
    match node.propose(Bytes::from(v.to_string())).unwrap() {
        Proposed::Appended(id) => id.index,
        other => panic!("a leader appends, got {other:?}"),
    }
}

/// With no storage or apply thread at all, a blocking call does the storage
/// work it causes: a proposal is durable, committed and applied by the time
/// `propose` returns, and nothing is queued.
#[test]
fn inline_storage_does_the_work_on_the_calling_thread() {
    let work = std::sync::Arc::new(InlineWork::default());
    let node = start_inline(&work);
    let mut indexes = Vec::new();
    for v in ["a", "b", "c"] {
        indexes.push(propose_index(&node, v));
        assert_eq!(*work.log.lock().unwrap(), indexes, "applied on return");
    }
    assert_eq!(keel::Storage::last_index(&work.storage).unwrap(), indexes[2]);
    assert!(node.append_work().try_recv().unwrap().is_none());
    assert!(node.apply_work().try_recv().unwrap().is_none());
    node.stop();
}

/// When one `Ready` holds both, committed entries are applied (answering
/// their requests) before the append that only records the new commit index.
#[test]
fn applies_go_before_an_append_of_the_commit_index_alone() {
    let work = std::sync::Arc::new(InlineWork::default());
    let node = start_inline(&work);
    let i = propose_index(&node, "a");
    let order = work.order.lock().unwrap().clone();
    let at = |e: (&'static str, u64)| order.iter().position(|&x| x == e);
    let (apply, commit) = (at(("apply", i)), at(("commit", i)));
    assert!(apply.is_some() && commit.is_some(), "{order:?}");
    assert!(apply < commit, "{order:?}");
    node.stop();
}

/// Work is done where it is made only once the queue's consumer did all it
/// took and came back for more: behind queued work, later work queues too,
/// so that applies (and the responses raft must take in order) keep the
/// log's order.
#[test]
fn inline_storage_queues_behind_work_the_consumer_has_not_finished() {
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::{Context, Waker};
    let work = std::sync::Arc::new(InlineWork::default());
    let node = start_inline(&work);
    let inline_applies = work.applies.load(SeqCst);
    work.refuse_apply.store(true, SeqCst);
    let a = propose_index(&node, "a"); // refused: queued
    work.refuse_apply.store(false, SeqCst);
    propose_index(&node, "b"); // behind "a": queued although accepted
    assert_eq!(work.applies.load(SeqCst), inline_applies);
    assert!(work.log.lock().unwrap().is_empty());

    // The consumer takes both, in order, and steps their responses.
    let queue = node.apply_work();
    for _ in 0..2 {
        let w = queue.try_recv().unwrap().expect("queued");
        work.record(w.entries());
        for r in w.into_parts().1 {
            node.step_local(r).unwrap();
        }
    }
    // Taken but not finished: the consumer has not come back for more.
    propose_index(&node, "c");
    assert_eq!(work.applies.load(SeqCst), inline_applies);
    let w = queue.try_recv().unwrap().expect("queued behind the unfinished");
    work.record(w.entries());
    for r in w.into_parts().1 {
        node.step_local(r).unwrap();
    }
    // Coming back for more (one poll of the wait) finishes what it took.
    let mut wait = std::pin::pin!(queue.recv_async());
    assert!(wait.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    propose_index(&node, "d");
    assert_eq!(work.applies.load(SeqCst), inline_applies + 1, "applied where it was made");
    assert_eq!(*work.log.lock().unwrap(), [a, a + 1, a + 2, a + 3]);
    node.stop();
}

/// The `try_` calls run on the calling thread when the loop is idle and
/// give their input back, without waiting, while another thread holds it.
#[test]
fn try_calls_give_their_input_back_while_the_loop_is_busy() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    // The loop's thread hands out the bootstrap Ready at once, and the
    // handler holds the loop until released.
    let opts = NodeOptions {
        on_ready: Some(keel::ReadyHandler::new(move |_| {
            if entered_tx.send(()).is_ok() {
                release_rx.lock().unwrap().recv().unwrap();
            }
        })),
        ..options()
    };
    let node = Node::start_with(&Config::new(1), MemoryStorage::new(), &peers(&[1]), opts).unwrap();
    entered.recv_timeout(WAIT).expect("the handler holds the loop");
    drop(entered);
    match node.try_propose(Bytes::from("y")) {
        Ok(Err(back)) => assert_eq!(back, "y"),
        other => panic!("expected the data back, got {other:?}"),
    }
    let heartbeat = {
        let mut m = Message::new(MessageType::MsgHeartbeat);
        (m.from, m.to, m.term) = (2, 1, 1);
        m
    };
    match node.try_step_many(vec![heartbeat.clone()]) {
        Ok(Err(back)) => assert_eq!(back, [heartbeat]),
        other => panic!("expected the messages back, got {other:?}"),
    }
    release.send(()).unwrap();
    // Idle again (once the handler returns): run here, and refused, as
    // the node has no leader.
    for attempt in 0.. {
        match node.try_propose(Bytes::from("x")) {
            Ok(Err(_)) if attempt < 5000 => thread::sleep(Duration::from_millis(1)),
            idle => {
                assert!(matches!(idle, Err(Error::ProposalDropped(_))), "run: {idle:?}");
                break;
            }
        }
    }
    node.stop();
}
