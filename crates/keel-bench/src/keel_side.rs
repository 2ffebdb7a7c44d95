//! The workload of [`crate::workload`] against `keel::RawNode` with
//! `keel::storage::MemoryStorage`, using only Keel's public API.
//!
//! [`KeelCluster`] persists a `Ready`'s entries by cloning them into the
//! storage, as raft-rs's side must (its `MemStorage::append` takes a
//! slice); [`KeelMoveCluster`] moves them in with
//! `MemoryStorage::append_owned`, which raft-rs has no equivalent of. (A
//! `Ready`'s entries are shared with the node until they are stable, so
//! `into_vec()` clones them here: the row no longer saves anything and is
//! kept for comparison with older runs.)

use crate::workload::{
    AppliedLog, Cluster, ELECTION_TICK, HEARTBEAT_TICK, LEADER, MAX_INFLIGHT_MSGS,
    MAX_SIZE_PER_MSG, NODES, fresh_payload,
};
use bytes::Bytes;
use keel::raftpb::{ConfState, EntryType, Message, MessageType};
use keel::storage::MemoryStorage;
use keel::{Config, DiscardLogger, RawNode, StateType};
use std::sync::Arc;

/// The configuration every Keel node runs with; raft-rs's side sets the
/// same values where the two libraries have the same knob.
pub fn config(id: u64) -> Config {
    Config {
        election_tick: ELECTION_TICK,
        heartbeat_tick: HEARTBEAT_TICK,
        max_size_per_msg: MAX_SIZE_PER_MSG,
        max_inflight_msgs: MAX_INFLIGHT_MSGS,
        // No limit, raft-rs's default (etcd's default, 0, would mean
        // max_size_per_msg).
        max_committed_size_per_ready: u64::MAX,
        max_uncommitted_entries_size: 0,
        max_inflight_bytes: 0,
        // raft-rs defaults both off; the workload never ticks, so they only
        // change how the first election goes.
        check_quorum: false,
        pre_vote: false,
        logger: Arc::new(DiscardLogger),
        seed: id,
        ..Config::new(id)
    }
}

struct Node {
    raw: RawNode<MemoryStorage>,
    storage: MemoryStorage,
    log: AppliedLog,
}

/// Three Keel nodes wired together in memory; `MOVE` says whether a
/// `Ready`'s entries are moved into the storage (`append_owned`) or cloned
/// (`append`, what raft-rs does).
pub struct Cluster3<const MOVE: bool> {
    nodes: Vec<Node>,
    /// Messages sent by the last loop, to deliver in the next.
    queue: Vec<Message>,
    /// The queue being delivered; kept to reuse its buffer.
    delivering: Vec<Message>,
    conf_state: ConfState,
    snapshots_sent: u64,
}

/// The headline Keel side: entries cloned into the storage.
pub type KeelCluster = Cluster3<false>;
/// The extra row: entries moved into the storage.
pub type KeelMoveCluster = Cluster3<true>;

impl<const MOVE: bool> Cluster3<MOVE> {
    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
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
        if MOVE {
            node.storage
                .append_owned(std::mem::take(&mut rd.entries).into_vec())
                .expect("append to memory storage");
        } else {
            node.storage.append(&rd.entries).expect("append to memory storage");
        }
        if let Some(hs) = rd.hard_state {
            node.storage.set_hard_state(hs);
        }
        for m in rd.messages.drain(..) {
            if m.msg_type() == MessageType::MsgSnap {
                self.snapshots_sent += 1;
            }
            self.queue.push(m);
        }
        for e in &rd.committed_entries {
            let normal = e.entry_type() == EntryType::EntryNormal;
            node.log.apply(e.index, normal, e.data.len());
        }
        if let Some(index) = node.log.compaction_due() {
            node.storage
                .create_snapshot(index, Some(&self.conf_state), Bytes::new())
                .expect("snapshot at an applied index");
            node.storage.compact(index).expect("compact to an applied index");
        }
        node.raw.advance();
    }
}

impl<const MOVE: bool> Cluster for Cluster3<MOVE> {
    const NAME: &'static str = if MOVE { "keel-move" } else { "keel" };

    fn start() -> Cluster3<MOVE> {
        let conf_state = ConfState { voters: (1..=NODES).collect(), ..ConfState::default() };
        let nodes = (1..=NODES)
            .map(|id| {
                let storage = MemoryStorage::new_with_conf_state(conf_state.clone());
                let raw = RawNode::new(&config(id), storage.clone()).expect("valid config");
                Node { raw, storage, log: AppliedLog::new() }
            })
            .collect();
        let mut c = Cluster3 {
            nodes,
            queue: Vec::new(),
            delivering: Vec::new(),
            conf_state,
            snapshots_sent: 0,
        };
        c.node(LEADER).raw.campaign().expect("campaign");
        let mut loops = 0;
        while c.node(LEADER).raw.basic_status().soft_state.raft_state != StateType::Leader
            || (1..=NODES).any(|id| c.applied(id).index == 0)
        {
            c.run_loop();
            loops += 1;
            assert!(loops < 100, "keel: node 1 did not become leader");
        }
        c
    }

    fn propose_each(&mut self, n: usize) {
        let raw = &mut self.node(LEADER).raw;
        for _ in 0..n {
            raw.propose(Bytes::from(fresh_payload())).expect("the leader accepts proposals");
        }
    }

    fn propose_batch(&mut self, n: usize) {
        let raw = &mut self.node(LEADER).raw;
        raw.propose_batch((0..n).map(|_| Bytes::from(fresh_payload())))
            .expect("the leader accepts proposals");
    }

    fn run_loop(&mut self) {
        std::mem::swap(&mut self.queue, &mut self.delivering);
        let mut delivering = std::mem::take(&mut self.delivering);
        for m in delivering.drain(..) {
            let to = m.to;
            self.node(to).raw.step(m).expect("step a peer's message");
        }
        self.delivering = delivering;
        for i in 0..self.nodes.len() {
            self.handle_ready(i);
        }
    }

    fn applied(&self, id: u64) -> &AppliedLog {
        &self.nodes[(id - 1) as usize].log
    }

    fn stamp_leader_commits(&mut self, on: bool) {
        self.node(LEADER).log.set_stamp(on);
    }

    fn snapshots_sent(&self) -> u64 {
        self.snapshots_sent
    }
}
