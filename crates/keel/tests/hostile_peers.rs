//! Hostile peers: in-memory clusters of 3 to 5 nodes reach a steady state,
//! then random messages of every type, with hostile ids, terms, indexes,
//! entries and snapshots, are stepped into random nodes between honest
//! rounds. No message may panic a node, lower its term, make it vote twice
//! in a term, change an entry it reported committed, or move its commit
//! index past its last index.
//!
//! A few cases run in the default `cargo test`; set `KEEL_HOSTILE_CASES`
//! for more (see README).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use keel::raftpb::{AnyConfChange, ConfState, Entry, Message, Snapshot};
use keel::storage::{MemoryStorage, Storage};
use keel::{Config, DiscardLogger, RawNode, StateType};
use proptest::prelude::*;

struct Node {
    raw: RawNode<MemoryStorage>,
    storage: MemoryStorage,
    /// The highest term this node has been seen at.
    term: u64,
    /// The vote cast in each term.
    votes: HashMap<u64, u64>,
    /// Every entry it reported committed, by index.
    committed: HashMap<u64, (u64, Bytes)>,
}

struct Cluster {
    nodes: Vec<Node>,
    queue: Vec<Message>,
}

fn config(id: u64) -> Config {
    Config {
        election_tick: 10,
        heartbeat_tick: 1,
        max_size_per_msg: 4096,
        max_inflight_msgs: 64,
        check_quorum: true,
        pre_vote: true,
        logger: Arc::new(DiscardLogger),
        seed: id,
        ..Config::new(id)
    }
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let cs = ConfState { voters: (1..=n).collect(), ..ConfState::default() };
        let nodes = (1..=n)
            .map(|id| {
                let storage = MemoryStorage::new_with_conf_state(cs.clone());
                let raw = RawNode::new(&config(id), storage.clone()).expect("valid config");
                Node { raw, storage, term: 0, votes: HashMap::new(), committed: HashMap::new() }
            })
            .collect();
        let mut c = Cluster { nodes, queue: Vec::new() };
        c.nodes[0].raw.campaign().expect("campaign");
        for _ in 0..50 {
            c.round();
        }
        assert_eq!(c.nodes[0].raw.basic_status().soft_state.raft_state, StateType::Leader);
        c
    }

    /// Delivers the queued messages (to live ids only), then handles every
    /// node's Ready and checks the invariants.
    fn round(&mut self) {
        for m in std::mem::take(&mut self.queue) {
            let Some(node) = self.nodes.get_mut((m.to.wrapping_sub(1)) as usize) else { continue };
            let _ = node.raw.step(m);
        }
        for i in 0..self.nodes.len() {
            self.handle_ready(i);
        }
    }

    fn handle_ready(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if !node.raw.has_ready() {
            return;
        }
        let mut rd = node.raw.ready();
        if let Some(snap) = &rd.snapshot {
            node.storage.apply_snapshot(snap.clone()).expect("apply snapshot");
        }
        node.storage.append(&rd.entries).expect("append");
        if let Some(hs) = rd.hard_state {
            node.storage.set_hard_state(hs);
        }
        self.queue.append(&mut rd.messages);
        for e in &rd.committed_entries {
            let prev = node.committed.insert(e.index, (e.term, e.data.clone()));
            if let Some(prev) = prev {
                assert_eq!(prev, (e.term, e.data.clone()), "committed entry {} changed", e.index);
            }
            if let Ok(Some(cc)) = AnyConfChange::from_entry(e) {
                // An application may refuse a change; the core must not panic.
                let _ = node.raw.apply_conf_change(&cc);
            }
        }
        node.raw.advance();
        check(node);
    }
}

fn check(node: &mut Node) {
    let hs = node.raw.basic_status().hard_state;
    assert!(hs.term >= node.term, "term went down from {} to {}", node.term, hs.term);
    node.term = hs.term;
    if hs.vote != 0 {
        let v = *node.votes.entry(hs.term).or_insert(hs.vote);
        assert_eq!(v, hs.vote, "voted twice in term {}", hs.term);
    }
    let last = node.storage.last_index().expect("last index");
    assert!(hs.commit <= last, "commit {} past last index {}", hs.commit, last);
}

/// Values around the interesting edges: 0, the small numbers the cluster
/// actually uses, and the top of the range.
fn edgy() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..12u64,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => any::<u64>(),
    ]
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..7u64, 1 => Just(u64::MAX), 1 => Just(u64::MAX - 1), 1 => any::<u64>()]
}

fn entry() -> impl Strategy<Value = Entry> {
    let t = proptest::option::of(0..4i32);
    (edgy(), edgy(), t, proptest::collection::vec(any::<u8>(), 0..12)).prop_map(
        |(term, index, t, data)| Entry { term, index, entry_type: t, data: Bytes::from(data) },
    )
}

fn snapshot() -> impl Strategy<Value = Option<Box<Snapshot>>> {
    proptest::option::of(
        (
            edgy(),
            edgy(),
            proptest::collection::vec(id(), 0..5),
            proptest::collection::vec(id(), 0..3),
            proptest::collection::vec(id(), 0..3),
        )
            .prop_map(|(index, term, voters, learners, outgoing)| {
                let mut s = Snapshot::default();
                s.metadata.index = index;
                s.metadata.term = term;
                s.metadata.conf_state = ConfState {
                    voters,
                    learners,
                    voters_outgoing: outgoing,
                    ..ConfState::default()
                };
                Box::new(s)
            }),
    )
}

fn message(nodes: u64) -> impl Strategy<Value = Message> {
    (
        (0..26i32, id(), 1..=nodes, edgy(), edgy(), edgy(), edgy()),
        (edgy(), any::<bool>(), proptest::collection::vec(entry(), 0..4), snapshot()),
    )
        .prop_map(
            |((t, from, to, term, log_term, index, commit), (hint, reject, entries, snapshot))| {
                Message {
                    msg_type: t,
                    from,
                    to,
                    term,
                    log_term,
                    index,
                    commit,
                    reject_hint: hint,
                    reject,
                    entries,
                    snapshot,
                    ..Message::default()
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Hostile(Message),
    Round,
    Tick,
    Propose(Vec<u8>),
}

fn ops(nodes: u64) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            4 => message(nodes).prop_map(Op::Hostile),
            3 => Just(Op::Round),
            2 => Just(Op::Tick),
            1 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(Op::Propose),
        ],
        1..40,
    )
}

fn cases() -> u32 {
    std::env::var("KEEL_HOSTILE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
}

fn scenario() -> impl Strategy<Value = (u64, Vec<Op>)> {
    (3..=5u64).prop_flat_map(|n| (Just(n), ops(n)))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_messages_never_crash_or_break_safety((n, ops) in scenario()) {
        let mut c = Cluster::new(n);
        for op in ops {
            match op {
                Op::Hostile(m) => {
                    let to = m.to;
                    let node = &mut c.nodes[(to - 1) as usize];
                    let _ = node.raw.step(m);
                    c.handle_ready((to - 1) as usize);
                }
                Op::Round => c.round(),
                Op::Tick => {
                    for node in &mut c.nodes {
                        node.raw.tick();
                    }
                    c.round();
                }
                Op::Propose(data) => {
                    let _ = c.nodes[0].raw.propose(Bytes::from(data));
                    c.round();
                }
            }
        }
        for _ in 0..30 {
            c.round();
        }
    }
}
