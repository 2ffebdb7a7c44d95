//! Scenario tests of the state machine, rewritten from etcd-raft's
//! `raft_test.go`, `raft_paper_test.go`, `raft_flow_control_test.go` and
//! `raft_snap_test.go` (the parts its datadriven interaction files do not
//! cover). They live inside the crate so that they can set up and inspect
//! the state machine's internals, as etcd's do.
//!
//! This module holds the shared helpers: test configurations and storages,
//! a few shortcuts on [`Raft`], and [`Network`], a synchronous in-memory
//! network of state machines that delivers every message until none is
//! left, with partitions and message-type filters.

mod conf_change;
mod election;
mod flow_control;
mod leader_transfer;
mod paper;
mod read_index;
mod replication;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::Raft;
use crate::confchange::{self, Changer};
use crate::config::Config;
use crate::log::{NO_LIMIT, RaftLog};
use crate::logger::{DiscardLogger, Level, Logger};
use crate::raftpb::{ConfState, Entry, HardState, Message, MessageType};
use crate::storage::MemoryStorage;
use crate::tracker::{Progress, ProgressTracker};

/// The state machine under test, always over a [`MemoryStorage`] (whose
/// clones share their contents, so a test can keep a handle on it).
type TestRaft = Raft<MemoryStorage>;

/// Writes log lines to stderr when `KEEL_TEST_LOG` is set (handy when a test
/// fails), else drops them: formatting them would only slow the suite.
struct StderrLogger;

impl Logger for StderrLogger {
    fn is_enabled(&self, _level: Level) -> bool {
        true
    }
    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        eprintln!("{level} {message}");
    }
}

fn test_logger() -> Arc<dyn Logger> {
    if std::env::var_os("KEEL_TEST_LOG").is_some() {
        Arc::new(StderrLogger)
    } else {
        Arc::new(DiscardLogger)
    }
}

/// etcd's `newTestConfig`: no message size limit, 256 messages in flight, and
/// none of the optional features (no CheckQuorum, no PreVote).
fn new_test_config(id: u64, election: usize, heartbeat: usize) -> Config {
    Config {
        election_tick: election,
        heartbeat_tick: heartbeat,
        max_size_per_msg: NO_LIMIT,
        max_inflight_msgs: 256,
        check_quorum: false,
        pre_vote: false,
        logger: test_logger(),
        seed: 0x5eed,
        ..Config::new(id)
    }
}

/// An empty storage whose initial configuration has these voters and
/// learners (etcd's `newTestMemoryStorage(withPeers(..), withLearners(..))`).
fn new_test_storage(voters: &[u64], learners: &[u64]) -> MemoryStorage {
    MemoryStorage::new_with_conf_state(ConfState {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        ..ConfState::default()
    })
}

fn new_test_raft(id: u64, election: usize, heartbeat: usize, storage: MemoryStorage) -> TestRaft {
    raft_with_config(&new_test_config(id, election, heartbeat), storage)
}

fn raft_with_config(cfg: &Config, storage: MemoryStorage) -> TestRaft {
    Raft::new(cfg, storage).expect("valid test configuration")
}

/// The ids `1..=n`.
fn ids_by_size(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// Entries with consecutive indexes from `first` and the given terms
/// (etcd's `index(first).terms(..)`).
fn ents(first: u64, terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry { term, index: first + i as u64, ..Entry::default() })
        .collect()
}

/// A message of type `t` from `from` to `to`; set the other fields with
/// struct update syntax.
fn msg(from: u64, to: u64, t: MessageType) -> Message {
    Message { from, to, msg_type: t as i32, ..Message::default() }
}

/// A proposal of one entry carrying `data`.
fn prop(from: u64, to: u64, data: &'static [u8]) -> Message {
    Message {
        entries: vec![Entry { data: bytes::Bytes::from_static(data), ..Entry::default() }],
        ..msg(from, to, MessageType::MsgProp)
    }
}

/// A proposal of one empty entry.
fn empty_prop(from: u64, to: u64) -> Message {
    Message { entries: vec![Entry::default()], ..msg(from, to, MessageType::MsgProp) }
}

/// The (sorted) message types of `msgs`, for compact assertions.
fn types(msgs: &[Message]) -> Vec<MessageType> {
    msgs.iter().map(Message::msg_type).collect()
}

/// A `MemoryStorage` whose entries vector is exactly `ents`, dummy first
/// (etcd's `&MemoryStorage{ents: ...}`), wrapped in a fresh log.
fn log_with_entries(ents: Vec<Entry>) -> RaftLog<MemoryStorage> {
    RaftLog::new(MemoryStorage::new_with_entries(ents), test_logger()).expect("valid log")
}

/// Shortcuts on the state machine that etcd's tests define next to them.
impl TestRaft {
    /// Delivers the messages that wait for durable state: those to itself
    /// are stepped (repeatedly, as stepping may produce more), the others
    /// join `msgs`. Storage is not touched: entries stay unstable.
    fn advance_messages_after_append(&mut self) {
        loop {
            let msgs = self.take_messages_after_append();
            if msgs.is_empty() {
                break;
            }
            self.step_or_send(msgs);
        }
    }

    fn take_messages_after_append(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.msgs_after_append)
    }

    /// Steps the messages addressed to this node and queues the others.
    fn step_or_send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            if m.to == self.id {
                // Errors (dropped proposals) are part of what tests check
                // elsewhere; here a step is as good as its effects.
                let _ = self.step(m);
            } else {
                self.msgs.push(m);
            }
        }
    }

    /// Everything this node wants to send, after delivering what waits for
    /// durable state.
    fn read_messages(&mut self) -> Vec<Message> {
        self.advance_messages_after_append();
        std::mem::take(&mut self.msgs)
    }

    /// Persists the unstable entries to the node's storage, marks them
    /// stable, delivers the post-append messages, and returns the entries
    /// now ready to apply, marking them applied (etcd's `nextEnts`).
    fn next_ents(&mut self) -> Vec<Entry> {
        let unstable = self.raft_log.next_unstable_ents().to_vec();
        self.raft_log.storage().append(&unstable).expect("append to storage");
        let last = self.raft_log.last_entry_id();
        self.raft_log.stable_to(last);
        self.advance_messages_after_append();
        let ents = self.raft_log.next_committed_ents(true);
        let committed = self.raft_log.committed();
        self.raft_log.applied_to(committed, 0);
        ents.into_vec()
    }

    /// Appends entries as a leader does, failing the test if the
    /// uncommitted-size limit drops them.
    fn must_append_entry(&mut self, ents: Vec<Entry>) {
        assert!(self.append_entry(ents), "entry unexpectedly dropped");
    }

    fn pr(&self, id: u64) -> &Progress {
        self.trk.progress.get(id).expect("peer is tracked")
    }

    fn pr_mut(&mut self, id: u64) -> &mut Progress {
        self.trk.progress.get_mut(id).expect("peer is tracked")
    }

    /// Restores term, vote and commit as if read from storage at startup.
    fn load_test_state(&mut self, hs: HardState) {
        self.load_state(&hs).expect("valid hard state");
    }

    /// The log as etcd's `ltoa` shows it: last index, applied index and
    /// every entry. Two nodes with equal summaries hold the same log.
    fn log_summary(&self) -> (u64, u64, Vec<Entry>) {
        (self.raft_log.last_index(), self.raft_log.applied(), self.raft_log.all_entries())
    }
}

/// What sits at one address of a [`Network`].
enum Node {
    Raft(Box<TestRaft>),
    /// Swallows everything and never answers (etcd's `nopStepper`).
    BlackHole,
}

/// How to populate one address when building a [`Network`].
#[allow(clippy::large_enum_variant, reason = "a handful per test network")]
enum NetPeer {
    /// A fresh node whose storage knows every address as a voter.
    New,
    /// This node; its configuration is rebuilt to know every address.
    Raft(TestRaft),
    /// A node that never answers.
    BlackHole,
}

/// A hook that sees every message the network is about to deliver and says
/// whether to deliver it.
type MsgHook = Box<dyn FnMut(&Message) -> bool>;

/// etcd's test `network`: nodes at addresses `1..=n` and a synchronous
/// delivery loop. Links can be cut, nodes isolated and message types
/// ignored; all drops are total, so runs are deterministic.
struct Network {
    nodes: BTreeMap<u64, Node>,
    dropped: BTreeSet<(u64, u64)>,
    ignored: BTreeSet<i32>,
    msg_hook: Option<MsgHook>,
}

impl Network {
    fn new(peers: Vec<NetPeer>) -> Network {
        Network::with_config(|_| {}, peers)
    }

    /// A network of `n` fresh nodes.
    fn fresh(n: usize) -> Network {
        Network::new((0..n).map(|_| NetPeer::New).collect())
    }

    /// Like [`Network::new`], with `configure` applied to the
    /// configuration of every fresh node.
    fn with_config(configure: impl Fn(&mut Config), peers: Vec<NetPeer>) -> Network {
        let ids = ids_by_size(peers.len() as u64);
        let mut nodes = BTreeMap::new();
        for (peer, &id) in peers.into_iter().zip(&ids) {
            let node = match peer {
                NetPeer::New => {
                    let mut cfg = new_test_config(id, 10, 1);
                    configure(&mut cfg);
                    Node::Raft(Box::new(raft_with_config(&cfg, new_test_storage(&ids, &[]))))
                }
                NetPeer::Raft(mut r) => {
                    r.id = id;
                    rebuild_membership(&mut r, &ids);
                    Node::Raft(Box::new(r))
                }
                NetPeer::BlackHole => Node::BlackHole,
            };
            nodes.insert(id, node);
        }
        Network { nodes, dropped: BTreeSet::new(), ignored: BTreeSet::new(), msg_hook: None }
    }

    /// The node at `id`; panics if it is a black hole.
    fn peer(&self, id: u64) -> &TestRaft {
        match self.nodes.get(&id) {
            Some(Node::Raft(r)) => r,
            _ => panic!("no state machine at {id}"),
        }
    }

    fn peer_mut(&mut self, id: u64) -> &mut TestRaft {
        match self.nodes.get_mut(&id) {
            Some(Node::Raft(r)) => r,
            _ => panic!("no state machine at {id}"),
        }
    }

    /// The storage of the node at `id` (a handle sharing its contents).
    fn storage(&self, id: u64) -> MemoryStorage {
        self.peer(id).raft_log.storage().clone()
    }

    /// The state machines, in address order.
    fn rafts(&self) -> impl Iterator<Item = &TestRaft> {
        self.nodes.values().filter_map(|n| match n {
            Node::Raft(r) => Some(&**r),
            Node::BlackHole => None,
        })
    }

    /// Delivers `m` and everything it causes, breadth first, until no
    /// message is left.
    fn send(&mut self, m: Message) {
        self.send_all(vec![m]);
    }

    fn send_all(&mut self, msgs: Vec<Message>) {
        let mut queue: std::collections::VecDeque<Message> = msgs.into();
        while let Some(m) = queue.pop_front() {
            let out = match self.nodes.get_mut(&m.to) {
                Some(Node::Raft(r)) => {
                    let _ = r.step(m);
                    r.read_messages()
                }
                Some(Node::BlackHole) | None => Vec::new(),
            };
            let kept = self.filter(out);
            queue.extend(kept);
        }
    }

    /// Drops every message from `from` to `to`.
    fn drop_link(&mut self, from: u64, to: u64) {
        self.dropped.insert((from, to));
    }

    /// Drops every message between `a` and `b`, both ways.
    fn cut(&mut self, a: u64, b: u64) {
        self.drop_link(a, b);
        self.drop_link(b, a);
    }

    /// Drops every message to and from `id`.
    fn isolate(&mut self, id: u64) {
        let others: Vec<u64> = self.nodes.keys().copied().filter(|&n| n != id).collect();
        for other in others {
            self.cut(id, other);
        }
    }

    /// Drops every message of type `t`.
    fn ignore(&mut self, t: MessageType) {
        self.ignored.insert(t as i32);
    }

    /// Heals every partition and stops ignoring message types.
    fn recover(&mut self) {
        self.dropped.clear();
        self.ignored.clear();
    }

    fn filter(&mut self, msgs: Vec<Message>) -> Vec<Message> {
        let mut kept = Vec::with_capacity(msgs.len());
        for m in msgs {
            if self.ignored.contains(&m.msg_type) {
                continue;
            }
            assert_ne!(m.msg_type(), MessageType::MsgHup, "MsgHup never goes over the network");
            if self.dropped.contains(&(m.from, m.to)) {
                continue;
            }
            if let Some(hook) = self.msg_hook.as_mut()
                && !hook(&m)
            {
                continue;
            }
            kept.push(m);
        }
        kept
    }
}

/// Makes `r` know every address in `ids`: as a learner if it already knew it
/// as one, else as a voter; then resets its volatile state (etcd's network
/// does this to the nodes it is given).
fn rebuild_membership(r: &mut TestRaft, ids: &[u64]) {
    let learners: BTreeSet<u64> = r.trk.config.learners.iter().copied().collect();
    let cs = ConfState {
        voters: ids.iter().copied().filter(|id| !learners.contains(id)).collect(),
        learners: ids.iter().copied().filter(|id| learners.contains(id)).collect(),
        ..ConfState::default()
    };
    let fresh = ProgressTracker::new(r.trk.max_inflight, r.trk.max_inflight_bytes);
    let changer = Changer { tracker: &fresh, last_index: r.raft_log.last_index() };
    let (cfg, prs) = confchange::restore(&changer, &cs).expect("valid membership");
    r.trk = fresh;
    r.trk.install(cfg, prs);
    r.refresh_peer_ids();
    let term = r.term;
    r.reset(term);
}

/// A node with entries of the given terms at indexes `1..`, at the last of
/// those terms (etcd's `entsWithConfig`).
fn ents_with_config(configure: impl Fn(&mut Config), terms: &[u64]) -> TestRaft {
    let storage = MemoryStorage::new();
    storage.append(&ents(1, terms)).expect("append");
    let mut cfg = new_test_config(1, 5, 1);
    configure(&mut cfg);
    let mut r = raft_with_config(&cfg, storage);
    r.reset(*terms.last().expect("at least one term"));
    r
}

/// A node that voted for `vote` in `term` and has no entries (etcd's
/// `votedWithConfig`).
fn voted_with_config(configure: impl Fn(&mut Config), vote: u64, term: u64) -> TestRaft {
    let storage = MemoryStorage::new();
    storage.set_hard_state(HardState { term, vote, commit: 0 });
    let mut cfg = new_test_config(1, 5, 1);
    configure(&mut cfg);
    let mut r = raft_with_config(&cfg, storage);
    r.reset(term);
    r
}

fn pre_vote_config(c: &mut Config) {
    c.pre_vote = true;
}

fn no_config(_: &mut Config) {}

/// A V1 configuration change of `node`, as the V2 change nodes apply.
fn conf_change(t: crate::raftpb::ConfChangeType, node: u64) -> crate::raftpb::ConfChangeV2 {
    crate::raftpb::ConfChange { change_type: t as i32, node_id: node, ..Default::default() }.as_v2()
}

/// `MsgHup` to `id` from itself: campaign now.
fn hup(id: u64) -> Message {
    msg(id, id, MessageType::MsgHup)
}

/// `MsgBeat` to `id` from itself: heartbeat now (if leader).
fn beat(id: u64) -> Message {
    msg(id, id, MessageType::MsgBeat)
}
