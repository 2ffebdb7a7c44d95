//! The workload of [`crate::workload`] against raft-rs 0.7's `RawNode` with
//! its `MemStorage`, handled the way raft-rs's own examples
//! (`five_mem_node`) handle a `Ready`.

use crate::workload::{
    AppliedLog, Cluster, ELECTION_TICK, HEARTBEAT_TICK, LEADER, MAX_INFLIGHT_MSGS,
    MAX_SIZE_PER_MSG, NODES, fresh_payload,
};
use bytes::Bytes;
use raft_rs::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
use raft_rs::storage::MemStorage;
use raft_rs::{Config, NO_LIMIT, RawNode, StateRole};

/// The configuration every raft-rs node runs with: the same values as
/// [`crate::keel_side::config`] where the two libraries share a knob.
pub fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: ELECTION_TICK,
        heartbeat_tick: HEARTBEAT_TICK,
        max_size_per_msg: MAX_SIZE_PER_MSG,
        max_inflight_msgs: MAX_INFLIGHT_MSGS,
        // raft-rs's default; Keel's side sets no limit too.
        max_committed_size_per_ready: NO_LIMIT,
        max_uncommitted_size: NO_LIMIT,
        check_quorum: false,
        pre_vote: false,
        ..Config::default()
    }
}

struct Node {
    raw: RawNode<MemStorage>,
    /// A handle on the node's storage (shared with `raw`).
    storage: MemStorage,
    log: AppliedLog,
}

/// Three raft-rs nodes wired together in memory.
pub struct RaftRsCluster {
    nodes: Vec<Node>,
    queue: Vec<Message>,
    delivering: Vec<Message>,
    snapshots_sent: u64,
}

impl RaftRsCluster {
    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn send(queue: &mut Vec<Message>, snapshots_sent: &mut u64, msgs: Vec<Message>) {
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                *snapshots_sent += 1;
            }
            queue.push(m);
        }
    }

    fn apply(log: &mut AppliedLog, ents: &[Entry]) {
        for e in ents {
            let normal = e.get_entry_type() == EntryType::EntryNormal;
            log.apply(e.index, normal, e.data.len());
        }
    }

    fn handle_ready(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if !node.raw.has_ready() {
            return;
        }
        let mut rd = node.raw.ready();
        // Messages that may go out before the entries are persisted (the
        // leader's appends).
        Self::send(&mut self.queue, &mut self.snapshots_sent, rd.take_messages());
        let store = &node.storage;
        if !rd.snapshot().is_empty() {
            store.wl().apply_snapshot(rd.snapshot().clone()).expect("apply snapshot");
        }
        Self::apply(&mut node.log, rd.committed_entries());
        if !rd.entries().is_empty() {
            store.wl().append(rd.entries()).expect("append to memory storage");
        }
        if let Some(hs) = rd.hs() {
            store.wl().set_hardstate(hs.clone());
        }
        Self::send(&mut self.queue, &mut self.snapshots_sent, rd.take_persisted_messages());
        let mut light = node.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            store.wl().mut_hard_state().set_commit(commit);
        }
        Self::send(&mut self.queue, &mut self.snapshots_sent, light.take_messages());
        Self::apply(&mut node.log, light.committed_entries());
        node.raw.advance_apply();
        if let Some(index) = node.log.compaction_due() {
            // raft-rs's compact keeps the entry at the index it is given;
            // Keel's turns it into the dummy. Both keep entries after it.
            store.wl().compact(index + 1).expect("compact to an applied index");
        }
    }
}

impl Cluster for RaftRsCluster {
    const NAME: &'static str = "raft-rs";

    fn start() -> RaftRsCluster {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters: Vec<u64> = (1..=NODES).collect();
        let nodes = (1..=NODES)
            .map(|id| {
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((voters.clone(), Vec::new())));
                let raw =
                    RawNode::new(&config(id), storage.clone(), &logger).expect("valid config");
                Node { raw, storage, log: AppliedLog::new() }
            })
            .collect();
        let mut c =
            RaftRsCluster { nodes, queue: Vec::new(), delivering: Vec::new(), snapshots_sent: 0 };
        c.node(LEADER).raw.campaign().expect("campaign");
        let mut loops = 0;
        while c.node(LEADER).raw.raft.state != StateRole::Leader
            || (1..=NODES).any(|id| c.applied(id).index == 0)
        {
            c.run_loop();
            loops += 1;
            assert!(loops < 100, "raft-rs: node 1 did not become leader");
        }
        c
    }

    fn propose_each(&mut self, n: usize) {
        let raw = &mut self.node(LEADER).raw;
        for _ in 0..n {
            // The owned Vec becomes the entry's Bytes without a copy, as
            // Keel's side turns it into Bytes.
            raw.propose(Vec::new(), fresh_payload()).expect("the leader accepts proposals");
        }
    }

    fn propose_batch(&mut self, n: usize) {
        let raw = &mut self.node(LEADER).raw;
        let entries: Vec<Entry> = (0..n)
            .map(|_| Entry { data: Bytes::from(fresh_payload()), ..Entry::default() })
            .collect();
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = LEADER;
        m.set_entries(entries.into());
        raw.step(m).expect("the leader accepts proposals");
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
