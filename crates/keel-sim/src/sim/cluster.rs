//! The cluster: the event queue, and how each event drives the nodes, their
//! storage and the network. The workload (clients, membership changes,
//! transfers) is in `workload.rs`; the faults' schedule is here.
//!
//! Every event touches one node at most (plus the network); after it, the
//! node's `Ready`s are taken and its local invariants checked, so a
//! violation is caught at the event that caused it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use keel::quorum::{JointConfig, MajorityConfig};
use keel::raftpb::{AnyConfChange, ConfState, Entry, HardState, Message, MessageType};
use keel::{
    Config, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, Logger, Peer, RawNode, ReadOnlyOption,
    SnapshotStatus, StateType, StorageAppend, StorageApply, StorageResponses,
};

use super::RunStats;
use super::disk::StorageKind;
use super::invariants::{Checked, Invariants, Violation};
use super::network::{Fate, Network};
use super::node::{Live, LogMirror, Phase, SimNode, members};
use super::options::Options;
use super::rng::Rng;
use super::trace::{MsgSummary, NodeLine, Trace, TraceEvent, TraceRecord};
use super::workload::{Client, History};
use crate::kv::{Kv, Request};
use crate::linearizability::Operation;
use crate::linearizability::models::{KvInput, KvOutput};

/// Something that happens at a point of simulated time.
#[derive(Debug)]
pub(crate) enum Ev {
    /// A node's clock ticks.
    Tick(u64, u32),
    /// The network delivers a message.
    Deliver(Box<Message>),
    /// Synchronous mode: a node's `Ready` write has been fsynced.
    SyncWriteDone(u64, u32),
    /// Asynchronous mode: a node's append thread finished its next write.
    AppendDone(u64, u32),
    /// Asynchronous mode: a node's apply thread finished its next batch.
    ApplyDone(u64, u32),
    /// The transport reports a snapshot's fate to its sender.
    SnapStatus { leader: u64, incarnation: u32, follower: u64, ok: bool },
    /// A client starts its next operation (token 0) or gives up on
    /// operation `token - 1`.
    Client(usize, usize),
    /// The operator changes the membership.
    ConfChange,
    /// The operator asks the leader to hand over.
    Transfer,
    /// A node crashes.
    Crash,
    /// A crashed node restarts.
    Restart(u64),
    /// The network partitions.
    Partition,
    /// The partition heals.
    Heal,
    /// A node pauses.
    Pause,
}

impl Ev {
    /// The node whose process handles the event, if one does (it waits
    /// while that node is paused).
    fn handler(&self) -> Option<u64> {
        match self {
            Ev::Tick(id, _)
            | Ev::SyncWriteDone(id, _)
            | Ev::AppendDone(id, _)
            | Ev::ApplyDone(id, _) => Some(*id),
            Ev::Deliver(m) => Some(m.to),
            Ev::SnapStatus { leader, .. } => Some(*leader),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// Which part of the run we are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunPhase {
    /// Faults and workload.
    Faulty,
    /// Healed: the cluster must converge before the deadline.
    Liveness { deadline: u64 },
}

/// The simulated world.
pub(crate) struct Cluster {
    pub(crate) o: Options,
    pub(crate) seed: u64,
    pub(crate) rng: Rng,
    pub(crate) now: u64,
    pub(crate) step: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    pub(crate) nodes: BTreeMap<u64, SimNode>,
    pub(crate) net: Network,
    pub(crate) inv: Invariants,
    pub(crate) trace: Trace,
    pub(crate) clients: Vec<Client>,
    pub(crate) history: History,
    /// The `(client, seq)` of each operation in `history`.
    pub(crate) commands: Vec<(u64, u64)>,
    /// Commands that took effect on some replica (applied, not a duplicate).
    pub(crate) effective: HashSet<(u64, u64)>,
    pub(crate) phase: RunPhase,
    /// The configuration of the highest-index configuration change applied
    /// anywhere (committed, so eventually everyone's).
    pub(crate) latest_conf: (u64, ConfState),
    /// Ids that were members of a committed configuration and are not any
    /// more; never reused.
    pub(crate) removed: BTreeSet<u64>,
    /// A configuration disagreement found while applying (reported after
    /// the event).
    conf_violation: Option<Violation>,
    /// Removed nodes the operator stops after the current event.
    pending_decommissions: Vec<u64>,
    /// Read contexts answered by a leader after a later term had a leader:
    /// etcd's lease does not cover them (see the module docs of `sim`).
    pub(crate) unverifiable_reads: HashSet<Bytes>,
    pub(crate) stats: RunStats,
    logger: Arc<dyn Logger>,
}

/// The lease contract's slack: a read state is observed up to this many
/// ticks after it was produced.
const LEASE_SLACK_TICKS: u64 = 2;

impl Cluster {
    pub(crate) fn new(seed: u64, o: Options, trace: Trace, logger: Arc<dyn Logger>) -> Cluster {
        let mut rng = Rng::new(seed);
        let mut nodes = BTreeMap::new();
        for id in 1..=(o.nodes + o.spare_nodes) as u64 {
            let skew = o.tick_skew_pct as i64;
            let pct = 100 + rng.range(0, 2 * skew as u64) as i64 - skew;
            let tick_us = (o.tick_us as i64 * pct / 100).max(1) as u64;
            nodes.insert(id, SimNode::new(id, tick_us, o.storage));
        }
        let net = Network::new(o.drop_per_mille, o.dup_per_mille, o.delay_min_us, o.delay_max_us);
        let clients = (0..o.clients).map(|_| Client::new()).collect();
        let voters: Vec<u64> = (1..=o.nodes as u64).collect();
        Cluster {
            o,
            seed,
            rng,
            now: 0,
            step: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            net,
            inv: Invariants::new(),
            trace,
            clients,
            history: Vec::new(),
            commands: Vec::new(),
            effective: HashSet::new(),
            phase: RunPhase::Faulty,
            latest_conf: (0, ConfState { voters, ..ConfState::default() }),
            removed: BTreeSet::new(),
            pending_decommissions: Vec::new(),
            conf_violation: None,
            unverifiable_reads: HashSet::new(),
            stats: RunStats::default(),
            logger,
        }
    }

    pub(crate) fn schedule(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { time: self.now + delay, seq: self.seq, ev }));
    }

    /// Adds a trace record for `node` (0: none), with its status.
    pub(crate) fn note(&mut self, node: u64, event: TraceEvent) {
        let status = self.node_line(node);
        self.trace.push(TraceRecord { time_us: self.now, step: self.step, node, event, status });
    }

    /// Adds a formatted note; the text is built only when it will be kept.
    pub(crate) fn note_with(&mut self, node: u64, text: impl FnOnce() -> String) {
        self.note(node, TraceEvent::Note(text()));
    }

    fn node_line(&self, id: u64) -> Option<NodeLine> {
        let live = self.nodes.get(&id)?.live.as_ref()?;
        let st = live.raw.basic_status();
        Some(NodeLine {
            role: st.soft_state.raft_state,
            term: st.hard_state.term,
            vote: st.hard_state.vote,
            lead: st.soft_state.lead,
            commit: st.hard_state.commit,
            applied: st.applied,
            last: live.log.last_index(),
        })
    }

    fn config(&self, id: u64, applied: u64, incarnation: u32) -> Config {
        let o = &self.o;
        let mut c = Config::new(id);
        c.election_tick = o.election_tick;
        c.heartbeat_tick = o.heartbeat_tick;
        c.applied = applied;
        c.async_storage_writes = o.async_storage_writes;
        c.max_size_per_msg = o.max_size_per_msg;
        c.max_committed_size_per_ready = o.max_committed_size_per_ready;
        c.max_inflight_msgs = o.max_inflight_msgs;
        c.max_inflight_bytes = o.max_inflight_bytes;
        c.max_uncommitted_entries_size = o.max_uncommitted_entries_size;
        c.check_quorum = o.check_quorum;
        c.pre_vote = o.pre_vote;
        c.read_only_option =
            if o.lease_reads { ReadOnlyOption::LeaseBased } else { ReadOnlyOption::Safe };
        c.disable_proposal_forwarding = o.disable_proposal_forwarding;
        c.step_down_on_removal = o.step_down_on_removal;
        c.logger = self.logger.clone();
        c.seed = self.seed ^ (u64::from(incarnation) << 48);
        c.planted_bug = o.planted_bug;
        c
    }

    // ----- life cycle -------------------------------------------------------

    /// Starts (or restarts) node `id` from its disk; bootstrap peers for the
    /// initial members.
    pub(crate) fn start(&mut self, id: u64, bootstrap: Option<&[u64]>) -> Checked {
        let restart = self.nodes[&id].phase == Phase::Down;
        let node = self.nodes.get_mut(&id).expect("known node");
        if restart {
            // Which unsynced writes survive the power loss: fixed per node and
            // incarnation, so that the run's own random stream is untouched.
            let seed = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(node.incarnation);
            node.disk = match node.disk.recover(seed) {
                Ok(disk) => disk,
                Err(err) => {
                    return Err(Violation::new(
                        "restart from durable state",
                        format!("node {id} cannot reopen its disk: {err}"),
                    ));
                }
            };
        }
        node.incarnation += 1;
        let incarnation = node.incarnation;
        let snap = node.disk.snapshot();
        let hs = node.disk.hard_state();
        let storage = node.disk.storage();
        let log = LogMirror::of_disk(&node.disk);
        let cfg = self.config(id, snap.metadata.index, incarnation);
        let mut raw = match RawNode::new(&cfg, storage) {
            Ok(raw) => raw,
            Err(err) => {
                return Err(Violation::new(
                    "restart from durable state",
                    format!("node {id} cannot restart: {err}"),
                ));
            }
        };
        if let Some(peers) = bootstrap {
            let peers: Vec<Peer> =
                peers.iter().map(|&p| Peer { id: p, context: Bytes::new() }).collect();
            if let Err(err) = raw.bootstrap(&peers) {
                panic!("bootstrap of node {id} failed: {err}");
            }
        }
        let kv = match Kv::restore(&snap.data) {
            Ok(kv) => kv,
            Err(err) => panic!("node {id}: bad snapshot data: {err}"),
        };
        let live = Live {
            raw,
            kv,
            conf_state: snap.metadata.conf_state.clone(),
            ticks: 0,
            sync_ready: None,
            append_queue: VecDeque::new(),
            append_batch: 0,
            apply_queue: VecDeque::new(),
            apply_batch: 0,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            waiting_reads: Vec::new(),
            log,
            seen_term: hs.term,
            seen_vote: hs.vote,
            completeness_checked_term: 0,
            leading_term: 0,
            last_contact: BTreeMap::new(),
            leader_confs: Vec::new(),
            transfer_ticks: Vec::new(),
            snapshot_index: snap.metadata.index,
            snapshot_conf: snap.metadata.conf_state.clone(),
            registered_commit: 0,
            snapshot_floor: snap.metadata.index,
        };
        let node = self.nodes.get_mut(&id).expect("known node");
        node.live = Some(live);
        node.phase = Phase::Up;
        // Committed entries survive crashes: the durable log up to the
        // durable commit index must be the committed one.
        if restart {
            self.stats.restarts += 1;
            let node = &self.nodes[&id];
            let live = node.live.as_ref().expect("just started");
            self.inv.commit(id, snap.metadata.index, snap.metadata.term, hs.term)?;
            self.inv.commit_log(id, &live.log, 0, hs.commit, hs.term)?;
            // The log read back is the one written: a write the crash tore
            // is dropped whole, never read as another entry.
            let log = node.disk.entries_after_snapshot();
            self.inv.appended(id, &log, snap.metadata.term)?;
            // The state machine read back from the durable snapshot is the
            // one recorded when it was taken (or installed).
            if snap.metadata.index > 0 {
                let digest = live.kv.digest();
                self.inv.state_digest(id, snap.metadata.index, digest)?;
            }
            if hs.term < node.durable_hs.term {
                return Err(Violation::new(
                    "term never goes back",
                    format!(
                        "node {id} restarted at term {} after term {}",
                        hs.term, node.durable_hs.term
                    ),
                ));
            }
            // A commit index is written without a sync (etcd's `MustSync`),
            // so a power loss may take it back; the node learns it again.
            // The term and vote checked above are synced (a write the crash
            // cut short may still have carried a newer one to the disk).
            self.nodes.get_mut(&id).expect("known node").durable_hs = hs;
        }
        if let Some(live) = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()) {
            live.registered_commit = hs.commit;
        }
        self.note_with(id, || {
            format!(
                "{} (incarnation {incarnation}, snapshot {}, hs term {} vote {} commit {})",
                if restart { "restart" } else { "start" },
                snap.metadata.index,
                hs.term,
                hs.vote,
                hs.commit
            )
        });
        let tick_us = self.nodes[&id].tick_us;
        let first = self.rng.range(1, tick_us);
        self.schedule(first, Ev::Tick(id, incarnation));
        self.after(id)
    }

    /// Crashes node `id`: its memory is gone, and the write its storage
    /// had in flight (a synchronous `Ready`'s, or the append thread's
    /// batch) may be cut short on its disk.
    pub(crate) fn crash(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some(live) = node.live.take() {
            let writes = live.writes_in_flight();
            if writes.iter().any(|w| !w.entries.is_empty()) {
                self.stats.crashes_mid_write += 1;
            }
            node.disk.crash_while_writing(&writes);
        }
        node.phase = Phase::Down;
        self.stats.crashes += 1;
        self.note_with(id, || "CRASH".to_owned());
    }

    /// Stops node `id` for good (it was removed from the cluster).
    pub(crate) fn decommission(&mut self, id: u64, why: &str) {
        let node = self.nodes.get_mut(&id).expect("known node");
        node.live = None;
        node.phase = Phase::Decommissioned;
        self.note_with(id, || format!("decommissioned ({why})"));
    }

    /// The live node of `id` with its incarnation, if up and `incarnation`
    /// is current.
    fn live_at(&mut self, id: u64, incarnation: u32) -> Option<&mut Live> {
        let node = self.nodes.get_mut(&id)?;
        if node.incarnation != incarnation {
            return None;
        }
        node.live.as_mut()
    }

    pub(crate) fn live(&mut self, id: u64) -> Option<&mut Live> {
        self.nodes.get_mut(&id).and_then(|n| n.live.as_mut())
    }

    // ----- the main loop ----------------------------------------------------

    /// Processes the next event. Returns false when the queue is empty.
    pub(crate) fn next(&mut self) -> Result<bool, Violation> {
        let Some(Reverse(s)) = self.queue.pop() else { return Ok(false) };
        self.now = s.time;
        self.step += 1;
        self.handle(s.ev)?;
        if let Some(v) = self.conf_violation.take() {
            return Err(v);
        }
        for id in std::mem::take(&mut self.pending_decommissions) {
            if matches!(self.nodes[&id].phase, Phase::Up | Phase::Down) {
                self.decommission(id, "removed from the cluster");
            }
        }
        Ok(true)
    }

    fn handle(&mut self, ev: Ev) -> Checked {
        if let Some(id) = ev.handler()
            && self.paused(id)
        {
            // Handled once the process resumes, in the order they came.
            let until = self.nodes[&id].paused_until;
            self.schedule(until - self.now, ev);
            return Ok(());
        }
        match ev {
            Ev::Tick(id, inc) => {
                let tick_us = self.nodes[&id].tick_us;
                let Some(live) = self.live_at(id, inc) else { return Ok(()) };
                live.raw.tick();
                live.ticks += 1;
                self.schedule(tick_us, Ev::Tick(id, inc));
                if self.trace.is_streaming() {
                    self.note(id, TraceEvent::Tick);
                }
                self.after(id)
            }
            Ev::Deliver(m) => self.deliver(*m),
            Ev::SyncWriteDone(id, inc) => self.sync_write_done(id, inc),
            Ev::AppendDone(id, inc) => self.append_done(id, inc),
            Ev::ApplyDone(id, inc) => self.apply_done(id, inc),
            Ev::SnapStatus { leader, incarnation, follower, ok } => {
                let Some(live) = self.live_at(leader, incarnation) else { return Ok(()) };
                let status = if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                live.raw.report_snapshot(follower, status);
                self.note_with(leader, || format!("snapshot to {follower} reported {status:?}"));
                self.after(leader)
            }
            Ev::Client(c, token) => self.client_event(c, token),
            Ev::ConfChange => self.conf_change_event(),
            Ev::Transfer => self.transfer_event(),
            Ev::Crash => self.crash_event(),
            Ev::Restart(id) => {
                if self.nodes[&id].phase == Phase::Down {
                    self.start(id, None)?;
                }
                Ok(())
            }
            Ev::Partition => self.partition_event(),
            Ev::Pause => self.pause_event(),
            Ev::Heal => {
                if self.phase == RunPhase::Faulty && self.net.is_partitioned() {
                    self.net.heal();
                    self.note_with(0, || "partition healed".to_owned());
                }
                Ok(())
            }
        }
    }

    // ----- network ----------------------------------------------------------

    /// Puts `m` (from a node) on the network.
    pub(crate) fn send(&mut self, m: Message) {
        match self.net.send(&mut self.rng) {
            Fate::Dropped => self.lost(m, "dropped"),
            Fate::Delivered(delays) => {
                let last = delays.len() - 1;
                for (i, d) in delays.into_iter().enumerate() {
                    let copy = if i == last { None } else { Some(m.clone()) };
                    match copy {
                        Some(c) => self.schedule(d, Ev::Deliver(Box::new(c))),
                        None => {
                            self.schedule(d, Ev::Deliver(Box::new(m)));
                            break;
                        }
                    }
                }
            }
        }
    }

    /// `m` will not arrive; the transport tells a snapshot's sender.
    fn lost(&mut self, m: Message, why: &'static str) {
        let summary = MsgSummary::of(&m);
        self.note(0, TraceEvent::Lost(summary, why));
        if m.msg_type() == MessageType::MsgSnap {
            let incarnation = self.nodes.get(&m.from).map_or(0, |n| n.incarnation);
            let ev = Ev::SnapStatus { leader: m.from, incarnation, follower: m.to, ok: false };
            let d = self.o.delay_max_us;
            self.schedule(d, ev);
        }
    }

    fn deliver(&mut self, m: Message) -> Checked {
        let to = m.to;
        if !self.nodes.get(&to).is_some_and(SimNode::is_up) {
            self.lost(m, "recipient down");
            return Ok(());
        }
        if self.net.is_blocked(m.from, to) {
            if m.msg_type() == MessageType::MsgApp && self.rng.chance(500) {
                // The transport notices the broken link.
                if let Some(sender) = self.live(m.from) {
                    sender.raw.report_unreachable(to);
                }
            }
            self.lost(m, "partition");
            return Ok(());
        }
        let t = m.msg_type();
        if t == MessageType::MsgSnap {
            let incarnation = self.nodes.get(&m.from).map_or(0, |n| n.incarnation);
            let ev = Ev::SnapStatus { leader: m.from, incarnation, follower: to, ok: true };
            self.schedule(self.o.delay_min_us, ev);
        }
        let summary = MsgSummary::of(&m);
        let live = self.live(to).expect("up");
        if matches!(t, MessageType::MsgAppResp | MessageType::MsgHeartbeatResp)
            && live.leading_term != 0
            && m.term == live.leading_term
        {
            live.last_contact.insert(m.from, live.ticks);
        }
        let res = live.raw.step(m);
        self.note(to, TraceEvent::Deliver(summary));
        if let Err(err) = res {
            self.note_with(to, || format!("step refused: {err}"));
        }
        self.after(to)
    }

    // ----- Ready handling ---------------------------------------------------

    /// After any event at node `id`: take its `Ready`s and check its local
    /// invariants.
    pub(crate) fn after(&mut self, id: u64) -> Checked {
        self.pump(id)?;
        self.check_node(id)
    }

    fn pump(&mut self, id: u64) -> Checked {
        let asynchronous = self.o.async_storage_writes;
        loop {
            let Some(live) = self.live(id) else { return Ok(()) };
            if !asynchronous && live.sync_ready.is_some() {
                return Ok(());
            }
            if !live.raw.has_ready() {
                return Ok(());
            }
            let mut rd = live.raw.ready();
            self.observe_ready(id, &rd)?;
            if !asynchronous {
                let live = self.live(id).expect("up");
                live.sync_ready = Some(rd);
                let d = self.rng.range(1, self.o.fsync_max_us);
                let inc = self.nodes[&id].incarnation;
                self.schedule(d, Ev::SyncWriteDone(id, inc));
                return Ok(());
            }
            for m in std::mem::take(&mut rd.messages) {
                match m.to {
                    LOCAL_APPEND_THREAD => {
                        self.live(id).expect("up").append_queue.push_back(m);
                        self.kick_append(id);
                    }
                    LOCAL_APPLY_THREAD => {
                        self.live(id).expect("up").apply_queue.push_back(m);
                        self.kick_apply(id);
                    }
                    _ => {
                        self.check_durable_ack(id, &m)?;
                        self.send(m);
                    }
                }
            }
            self.take_read_states(id, &rd)?;
        }
    }

    /// Starts the append thread's next write if it is idle: one fsync for
    /// everything queued so far.
    fn kick_append(&mut self, id: u64) {
        let inc = self.nodes[&id].incarnation;
        let d = self.rng.range(1, self.o.fsync_max_us);
        let live = self.live(id).expect("up");
        if live.append_batch == 0 && !live.append_queue.is_empty() {
            live.append_batch = live.append_queue.len();
            self.schedule(d, Ev::AppendDone(id, inc));
        }
    }

    /// Starts the apply thread's next batch if it is idle.
    fn kick_apply(&mut self, id: u64) {
        let inc = self.nodes[&id].incarnation;
        let d = self.rng.range(1, self.o.fsync_max_us);
        let live = self.live(id).expect("up");
        if live.apply_batch == 0 && !live.apply_queue.is_empty() {
            live.apply_batch = live.apply_queue.len();
            self.schedule(d, Ev::ApplyDone(id, inc));
        }
    }

    /// Records what a `Ready` reveals: the node's log, its commit index,
    /// whether it leads. In synchronous mode its read states are taken when
    /// the write completes (they need the entries applied first).
    fn observe_ready(&mut self, id: u64, rd: &keel::Ready) -> Checked {
        self.note(
            id,
            TraceEvent::Ready {
                entries: rd.entries.len(),
                committed: rd.committed_entries.len(),
                messages: rd.messages.len(),
                hard_state: rd.hard_state,
                snapshot: rd.snapshot.as_ref().map_or(0, |s| s.metadata.index),
                read_states: rd.read_states.len(),
            },
        );
        let live = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()).expect("up");
        let term = live.raw.basic_status().hard_state.term;
        if let Some(snap) = &rd.snapshot {
            let meta = &snap.metadata;
            live.snapshot_floor = live.snapshot_floor.max(meta.index);
            live.log.restore(meta.index, meta.term);
            live.registered_commit = live.registered_commit.max(meta.index);
            self.inv.commit(id, meta.index, meta.term, term)?;
        }
        let live = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()).expect("up");
        if !rd.entries.is_empty() {
            let Some(prev) = live.log.append(&rd.entries) else {
                return Err(Violation::new(
                    "log continuity",
                    format!(
                        "node {id} appends entries from index {} to a log ending at {} (snapshot {})",
                        rd.entries[0].index,
                        live.log.last_index(),
                        live.log.snap_index()
                    ),
                ));
            };
            self.inv.appended(id, &rd.entries, prev)?;
        }
        let live = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()).expect("up");
        if let Some(hs) = rd.hard_state
            && hs.commit > live.registered_commit
        {
            let from = live.registered_commit;
            live.registered_commit = hs.commit;
            self.inv.commit_log(id, &live.log, from, hs.commit, hs.term)?;
        }
        // Leader completeness, once per term, with the whole log in view.
        let live = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()).expect("up");
        let st = live.raw.basic_status();
        if st.soft_state.raft_state == StateType::Leader
            && st.hard_state.term > live.completeness_checked_term
        {
            live.completeness_checked_term = st.hard_state.term;
            self.inv.leader_complete(id, st.hard_state.term, &live.log)?;
        }
        // Lease reads: answered for other nodes, or for this one's clients
        // while it led (the term it led in is noted with the request).
        if self.o.lease_reads {
            for m in &rd.messages {
                if m.msg_type() == MessageType::MsgReadIndexResp {
                    let ctx = m.entries.first().map(|e| e.data.clone()).unwrap_or_default();
                    self.lease_read_served(id, m.term, ctx)?;
                }
            }
            for rs in &rd.read_states {
                let live = self.live(id).expect("up");
                let term = live.reads.get(&rs.request_ctx).map_or(0, |r| r.local_term);
                if term != 0 {
                    self.lease_read_served(id, term, rs.request_ctx.clone())?;
                }
            }
        }
        Ok(())
    }

    /// A lease-based read was answered by node `id` in `term`: check the
    /// lease contract, and mark the read unverifiable if a later term already
    /// had a leader (etcd's lease does not cover that window).
    fn lease_read_served(&mut self, id: u64, term: u64, ctx: Bytes) -> Checked {
        if self.inv.max_leader_term > term {
            self.unverifiable_reads.insert(ctx);
            self.stats.lease_reads_unverifiable += 1;
        }
        let et = self.o.election_tick as u64;
        let live = self.nodes.get(&id).and_then(|n| n.live.as_ref()).expect("up");
        if live.leading_term != term {
            // Answered while (or just after) stepping down: the read was
            // produced when it led; only the window rule above applies.
            return Ok(());
        }
        let mut acked: BTreeMap<u64, u64> = live.last_contact.clone();
        acked.insert(id, live.ticks);
        let transfers = live.transfer_ticks.len() as u64;
        // CheckQuorum's last check was at most this long ago...
        let window = et * (1 + transfers) + LEASE_SLACK_TICKS;
        // ...and it found a quorum (of the configuration then in effect)
        // heard from since the check before.
        let allowed = 2 * et + LEASE_SLACK_TICKS + et * transfers;
        let mut best_age = u64::MAX;
        for (i, (_, cs)) in live.leader_confs.iter().enumerate() {
            let until = live.leader_confs.get(i + 1).map_or(u64::MAX, |(t, _)| *t);
            if until.saturating_add(window) < live.ticks {
                continue;
            }
            let contact = joint_config(cs).committed_index(&acked);
            best_age = best_age.min(live.ticks.saturating_sub(contact));
        }
        if best_age > allowed {
            return Err(Violation::new(
                "lease contract",
                format!(
                    "node {id} served a lease-based read in term {term} {best_age} ticks after \
                     last hearing from a quorum (CheckQuorum allows at most {allowed})"
                ),
            ));
        }
        Ok(())
    }

    /// Moves the `Ready`'s read states to the waiting list (the read is
    /// answered once its index is applied), after checking that each read
    /// index covers what was committed when the read started. A lease read
    /// served after a later term had a leader is outside etcd's lease (see
    /// the `sim` module docs) and is not checked.
    fn take_read_states(&mut self, id: u64, rd: &keel::Ready) -> Checked {
        if rd.read_states.is_empty() {
            return Ok(());
        }
        for rs in &rd.read_states {
            let live = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()).expect("up");
            let Some(read) = live.reads.remove(&rs.request_ctx) else { continue };
            let floor = read.floor;
            live.waiting_reads.push((rs.index, read));
            if !self.unverifiable_reads.contains(&rs.request_ctx) {
                self.inv.read_index(id, rs.index, floor)?;
            }
        }
        self.serve_reads(id);
        Ok(())
    }

    /// Answers the waiting reads whose index is applied.
    fn serve_reads(&mut self, id: u64) {
        let live = self.live(id).expect("up");
        if live.waiting_reads.is_empty() {
            return;
        }
        let applied = live.kv.applied();
        let mut ready = Vec::new();
        live.waiting_reads.retain(|(index, read)| {
            if *index <= applied {
                ready.push(read.clone());
                false
            } else {
                true
            }
        });
        for read in ready {
            let live = self.live(id).expect("up");
            let value = live.kv.get(&read.key);
            let unverifiable =
                self.unverifiable_reads.contains(&super::workload::read_ctx(read.client, read.op));
            self.complete_read(read.client, read.op, value, unverifiable);
        }
    }

    fn sync_write_done(&mut self, id: u64, inc: u32) -> Checked {
        let Some(live) = self.live_at(id, inc) else { return Ok(()) };
        let Some(rd) = live.sync_ready.take() else { return Ok(()) };
        let (hs, snap) = (rd.hard_state, rd.snapshot.as_ref());
        self.nodes[&id].disk.persist(snap, &rd.entries, hs);
        self.persisted(id, hs, rd.entries.len(), snap.map_or(0, |s| s.metadata.index))?;
        for m in rd.messages.iter() {
            self.record_vote(id, m)?;
            self.check_durable_ack(id, m)?;
        }
        for m in rd.messages.clone() {
            self.send(m);
        }
        if let Some(snap) = snap {
            self.install_snapshot(id, snap)?;
        }
        self.apply(id, &rd.committed_entries)?;
        if self.live(id).is_none() {
            // It applied its own removal and stopped.
            return Ok(());
        }
        self.take_read_states(id, &rd)?;
        // A snapshot that arrived while the Ready was handled is stepped
        // now, by the core (it holds it until `advance`).
        if let Some(live) = self.live(id) {
            live.raw.advance();
        }
        self.after(id)
    }

    fn append_done(&mut self, id: u64, inc: u32) -> Checked {
        let Some(live) = self.live_at(id, inc) else { return Ok(()) };
        let batch: Vec<Message> = {
            let n = std::mem::take(&mut live.append_batch);
            live.append_queue.drain(..n).collect()
        };
        // The batch is one write and one fsync: it is durable as a whole
        // before any of its responses goes out. (Each message's responses
        // are checked against the disk as it was written so far: a later
        // message of the batch may legitimately overwrite what an earlier
        // response acknowledged.)
        let mut outgoing = Vec::new();
        for m in batch {
            let append = StorageAppend::new(&m).expect("the append queue holds appends");
            let (hs, snap) = (append.hard_state(), append.snapshot());
            self.nodes[&id].disk.persist(snap, append.entries(), hs);
            let snap_index = snap.map_or(0, |s| s.metadata.index);
            self.persisted(id, hs, append.entries().len(), snap_index)?;
            for r in append.peer_responses() {
                self.check_durable_ack(id, r)?;
            }
            outgoing.push(m);
        }
        for mut m in outgoing {
            if let Some(snap) = StorageAppend::new(&m).and_then(|a| a.snapshot()) {
                self.install_snapshot(id, snap)?;
            }
            let responses = StorageResponses::take(&mut m);
            for r in responses.local {
                if r.msg_type() == MessageType::MsgVoteResp && !r.reject {
                    self.inv.vote(id, r.term, id)?;
                }
                let Some(live) = self.live(id) else { return Ok(()) };
                refused_local_step(id, live.raw.step_local(r))?;
            }
            for r in responses.peers {
                self.record_vote(id, &r)?;
                self.send(r);
            }
        }
        // The durable commit index may have caught up with what is applied.
        self.maybe_snapshot(id)?;
        self.kick_append(id);
        self.after(id)
    }

    fn apply_done(&mut self, id: u64, inc: u32) -> Checked {
        let Some(live) = self.live_at(id, inc) else { return Ok(()) };
        let batch: Vec<Message> = {
            let n = std::mem::take(&mut live.apply_batch);
            live.apply_queue.drain(..n).collect()
        };
        for mut m in batch {
            let apply = StorageApply::new(&m).expect("the apply queue holds applies");
            self.apply(id, apply.entries())?;
            let Some(live) = self.live(id) else { return Ok(()) };
            for r in StorageResponses::take(&mut m).local {
                refused_local_step(id, live.raw.step_local(r))?;
            }
        }
        if self.live(id).is_some() {
            self.serve_reads(id);
            self.kick_apply(id);
        }
        self.after(id)
    }

    /// A write of `hs` reached node `id`'s disk: durable term and vote only
    /// move forward, and so does the commit index between restarts.
    fn persisted(
        &mut self,
        id: u64,
        hs: Option<HardState>,
        entries: usize,
        snapshot: u64,
    ) -> Checked {
        self.note(id, TraceEvent::Persisted { entries, snapshot });
        let Some(hs) = hs else { return Ok(()) };
        let node = self.nodes.get_mut(&id).expect("known");
        let old = node.durable_hs;
        node.durable_hs = hs;
        if hs.term < old.term {
            return Err(Violation::new(
                "term never goes back",
                format!("node {id} persisted term {} after term {}", hs.term, old.term),
            ));
        }
        if hs.term == old.term && old.vote != 0 && hs.vote != old.vote {
            return Err(Violation::new(
                "vote never changes within a term",
                format!(
                    "node {id} persisted vote {} in term {} after voting {}",
                    hs.vote, hs.term, old.vote
                ),
            ));
        }
        if hs.commit < old.commit {
            return Err(Violation::new(
                "commit index never goes back",
                format!("node {id} persisted commit {} after {}", hs.commit, old.commit),
            ));
        }
        Ok(())
    }

    /// Durable before acknowledged (Raft thesis 3.8): an append
    /// acknowledgement leaves node `id` only once the entries it covers are
    /// on its disk, and a granted vote only once the vote (or a later term)
    /// is.
    fn check_durable_ack(&self, id: u64, m: &Message) -> Checked {
        let disk = &self.nodes[&id].disk;
        match m.msg_type() {
            MessageType::MsgAppResp if !m.reject && m.index > 0 => {
                let durable = disk.storage_last_index();
                if durable < m.index {
                    return Err(Violation::new(
                        "durable before acknowledged",
                        format!(
                            "node {id} acknowledges index {} to {} but its disk ends at {durable}",
                            m.index, m.to
                        ),
                    ));
                }
            }
            MessageType::MsgVoteResp if !m.reject => {
                let hs = disk.hard_state();
                if hs.term < m.term || (hs.term == m.term && hs.vote != m.to) {
                    return Err(Violation::new(
                        "durable before acknowledged",
                        format!(
                            "node {id} grants its vote in term {} to {} but its disk has term {} \
                             vote {}",
                            m.term, m.to, hs.term, hs.vote
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn record_vote(&mut self, id: u64, m: &Message) -> Checked {
        if m.msg_type() == MessageType::MsgVoteResp && !m.reject {
            self.inv.vote(id, m.term, m.to)?;
        }
        Ok(())
    }

    /// The state machine takes over a snapshot the core has installed.
    fn install_snapshot(&mut self, id: u64, snap: &keel::raftpb::Snapshot) -> Checked {
        let kv = match Kv::restore(&snap.data) {
            Ok(kv) => kv,
            Err(err) => panic!("node {id}: bad snapshot from the leader: {err}"),
        };
        let digest = kv.digest();
        let index = snap.metadata.index;
        let live = self.live(id).expect("up");
        live.kv = kv;
        live.conf_state = snap.metadata.conf_state.clone();
        live.snapshot_conf = snap.metadata.conf_state.clone();
        live.snapshot_index = index;
        self.stats.snapshots_installed += 1;
        self.note_with(id, || format!("state machine restored from snapshot at {index}"));
        self.inv.state_digest(id, index, digest)
    }

    // ----- applying ---------------------------------------------------------

    fn apply(&mut self, id: u64, entries: &[Entry]) -> Checked {
        let (mut first, mut last) = (0, 0);
        let mut removed_self = false;
        for e in entries {
            let live = self.live(id).expect("up");
            if e.index <= live.kv.applied().max(live.snapshot_floor) {
                // Covered by a snapshot the state machine has or will install
                // (etcd-io/etcd#11510: applying it, configuration change
                // included, after the core installed the snapshot would undo
                // part of the snapshot's configuration).
                continue;
            }
            if e.index != live.kv.applied() + 1 {
                return Err(Violation::new(
                    "entries are applied in order",
                    format!("node {id} applies index {} after {}", e.index, live.kv.applied()),
                ));
            }
            self.inv.applied(id, e)?;
            if first == 0 {
                first = e.index;
            }
            last = e.index;
            match AnyConfChange::from_entry(e).expect("own conf change") {
                None => self.apply_normal(id, e),
                Some(cc) => removed_self |= self.apply_conf_change(id, e.index, cc),
            }
        }
        if first != 0 {
            self.note(id, TraceEvent::Applied { first, last });
        }
        self.serve_reads(id);
        self.maybe_snapshot(id)?;
        if removed_self {
            self.decommission(id, "applied its own removal");
        }
        Ok(())
    }

    fn apply_normal(&mut self, id: u64, e: &Entry) {
        let live = self.live(id).expect("up");
        if e.data.is_empty() {
            live.kv.skip_to(e.index);
            return;
        }
        let req = match Request::decode(&e.data) {
            Ok(req) => req,
            Err(err) => panic!("node {id}: undecodable entry {}: {err}", e.index),
        };
        let out = live.kv.apply(e.index, &req);
        let waiting = live.proposals.remove(&(req.client, req.seq));
        if out.is_some() {
            self.effective.insert((req.client, req.seq));
        }
        if let (Some(out), Some(op)) = (out, waiting) {
            self.complete(req.client as usize, op, out);
        }
    }

    /// Applies a configuration change; returns whether it removed this node.
    fn apply_conf_change(&mut self, id: u64, index: u64, cc: AnyConfChange) -> bool {
        let live = self.live(id).expect("up");
        live.kv.skip_to(index);
        let before = members(&live.conf_state);
        let old_voters: BTreeSet<u64> = live
            .conf_state
            .voters
            .iter()
            .chain(&live.conf_state.voters_outgoing)
            .copied()
            .collect();
        let cs = match live.raw.apply_conf_change(&cc) {
            Ok(cs) => cs,
            Err(err) => {
                self.note_with(id, || format!("conf change at {index} refused: {err}"));
                return false;
            }
        };
        live.conf_state = cs.clone();
        // A leader counts new voters as recently active (etcd does).
        if live.leading_term != 0 {
            let ticks = live.ticks;
            live.leader_confs.push((ticks, cs.clone()));
            for v in cs.voters.iter().chain(&cs.voters_outgoing) {
                if !old_voters.contains(v) {
                    live.last_contact.insert(*v, live.ticks);
                }
            }
        }
        let after = members(&cs);
        // Bootstrapped members applied all the initial changes at once
        // (`RawNode::bootstrap`), so their configuration differs from a new
        // member's replaying them one by one until the last of them.
        if index > self.o.nodes as u64
            && let Err(v) = self.inv.conf_applied(id, index, &cs)
        {
            self.conf_violation = Some(v);
        }
        if index > self.latest_conf.0 {
            let prev = members(&self.latest_conf.1);
            let gone: Vec<u64> = prev.difference(&after).copied().collect();
            self.removed.extend(gone.iter().copied());
            if matches!(self.phase, RunPhase::Liveness { .. }) {
                // The operator stops members once they are removed.
                self.pending_decommissions.extend(gone.into_iter().filter(|&g| g != id));
            }
            self.latest_conf = (index, cs.clone());
            self.stats.conf_changes_applied += 1;
        }
        self.note_with(id, || format!("applied conf change at {index}: {}", describe_cs(&cs)));
        before.contains(&id) && !after.contains(&id)
    }

    fn maybe_snapshot(&mut self, id: u64) -> Checked {
        let every = self.o.snapshot_every;
        let keep = self.o.compact_keep;
        let Some(node) = self.nodes.get(&id) else { return Ok(()) };
        let Some(live) = node.live.as_ref() else { return Ok(()) };
        let applied = live.kv.applied();
        let conf_changed = !live.conf_state.equivalent(&live.snapshot_conf);
        if every == 0
            || applied <= live.snapshot_index
            || (applied < live.snapshot_index + every && !conf_changed)
        {
            return Ok(());
        }
        // Only what is durable, and known committed on disk, can be snapshot
        // (a restart must find its commit index at or past the snapshot).
        if applied > node.disk.hard_state().commit || applied > node.disk.storage_last_index() {
            return Ok(());
        }
        let data = live.kv.snapshot();
        let digest = live.kv.digest();
        let cs = live.conf_state.clone();
        let res = node.disk.snapshot_and_compact(applied, &cs, data, applied.saturating_sub(keep));
        match res {
            Ok(_) => {
                let live = self.live(id).expect("up");
                live.snapshot_index = applied;
                live.snapshot_conf = cs;
                self.stats.snapshots_created += 1;
                self.note_with(id, || {
                    format!("snapshot at {applied}, compacted to {}", applied.saturating_sub(keep))
                });
                self.inv.state_digest(id, applied, digest)
            }
            Err(err) => {
                self.note_with(id, || format!("snapshot at {applied} skipped: {err}"));
                Ok(())
            }
        }
    }

    // ----- per-node invariants ----------------------------------------------

    fn check_node(&mut self, id: u64) -> Checked {
        let Some(live) = self.nodes.get_mut(&id).and_then(|n| n.live.as_mut()) else {
            return Ok(());
        };
        let st = live.raw.basic_status();
        let (term, vote) = (st.hard_state.term, st.hard_state.vote);
        if st.applied > st.hard_state.commit || live.kv.applied() > st.hard_state.commit {
            return Err(Violation::new(
                "applied <= committed",
                format!(
                    "node {id} has applied {} (state machine {}) but commit {}",
                    st.applied,
                    live.kv.applied(),
                    st.hard_state.commit
                ),
            ));
        }
        if term < live.seen_term {
            return Err(Violation::new(
                "term never goes back",
                format!("node {id} went from term {} to {term}", live.seen_term),
            ));
        }
        if term == live.seen_term && live.seen_vote != 0 && vote != live.seen_vote {
            return Err(Violation::new(
                "vote never changes within a term",
                format!(
                    "node {id} changed its vote in term {term} from {} to {vote}",
                    live.seen_vote
                ),
            ));
        }
        live.seen_term = term;
        live.seen_vote = vote;
        if st.soft_state.raft_state == StateType::Leader {
            if live.leading_term != term {
                live.leading_term = term;
                live.transfer_ticks.clear();
                live.last_contact.clear();
                let ticks = live.ticks;
                live.leader_confs = vec![(ticks, live.conf_state.clone())];
                for v in live.conf_state.voters.iter().chain(&live.conf_state.voters_outgoing) {
                    live.last_contact.insert(*v, live.ticks);
                }
                self.stats.leaders_elected += 1;
                self.note_with(id, || format!("became leader in term {term}"));
            }
            self.inv.leader(term, id)?;
        } else {
            live.leading_term = 0;
        }
        Ok(())
    }

    // ----- faults -----------------------------------------------------------

    /// The nodes that are running (up, not paused), in id order.
    fn up_ids(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| self.running(n)).map(|n| n.id).collect()
    }

    /// Whether `n` is up and not paused.
    fn running(&self, n: &SimNode) -> bool {
        n.is_up() && n.paused_until <= self.now
    }

    /// Whether node `id` is paused.
    pub(crate) fn paused(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.paused_until > self.now)
    }

    /// In the faulty phase, schedules the next `ev` about `every` from now
    /// (jittered by half) and says so.
    fn fault_rescheduled(&mut self, every: u64, ev: Ev) -> bool {
        if self.phase != RunPhase::Faulty {
            return false;
        }
        let next = self.rng.range(every / 2, every * 3 / 2);
        self.schedule(next, ev);
        true
    }

    /// [`Self::fault_rescheduled`], then the nodes up to inflict the fault
    /// on (`None`: not now).
    fn next_fault(&mut self, every: u64, ev: Ev) -> Option<Vec<u64>> {
        if !self.fault_rescheduled(every, ev) {
            return None;
        }
        Some(self.up_ids()).filter(|up| !up.is_empty())
    }

    fn pause_event(&mut self) -> Checked {
        let Some(up) = self.next_fault(self.o.pause_every_us, Ev::Pause) else { return Ok(()) };
        // The leader now and then: a deposed leader that resumes still
        // believes it leads.
        let id = match self.leader() {
            Some(l) if self.rng.chance(400) => l,
            _ => *self.rng.pick(&up),
        };
        let pause = self.rng.range(self.o.pause_max_us / 10, self.o.pause_max_us);
        self.nodes.get_mut(&id).expect("known node").paused_until = self.now + pause;
        self.stats.pauses += 1;
        self.note_with(id, || format!("PAUSE for {}ms", pause / 1000));
        Ok(())
    }

    /// The nodes that are members of the cluster, running or crashed, in id
    /// order.
    pub(super) fn member_ids(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| matches!(n.phase, Phase::Up | Phase::Down))
            .map(|n| n.id)
            .collect()
    }

    fn crash_event(&mut self) -> Checked {
        let Some(up) = self.next_fault(self.o.crash_every_us, Ev::Crash) else { return Ok(()) };
        // Prefer the leader now and then: that is where the trouble is.
        let leader = self.leader();
        let mut id = match leader {
            Some(l) if self.rng.chance(400) => l,
            _ => *self.rng.pick(&up),
        };
        // On a WAL disk, often crash a node in the middle of writing entries
        // instead, so that torn records are common. The choice has its own
        // generator: runs on the model disk, where it would change nothing
        // but the victim, keep their course.
        if self.o.storage != StorageKind::Memory {
            let mut own = Rng::new(self.seed ^ self.step.wrapping_mul(0x2545_f491_4f6c_dd1d));
            let writing: Vec<u64> = up
                .iter()
                .copied()
                .filter(|&n| self.nodes[&n].live.as_ref().is_some_and(Live::writing_entries))
                .collect();
            if !writing.is_empty() && own.chance(500) {
                id = *own.pick(&writing);
            }
        }
        self.crash(id);
        if leader == Some(id) && self.o.forget_crashed_leader {
            // The operator saw the leader die and tells the others, so that
            // they vote at once instead of waiting out its lease.
            for f in self.up_ids() {
                let live = self.live(f).expect("up");
                let res = live.raw.forget_leader();
                self.note_with(f, || format!("operator: forget leader {id} ({res:?})"));
                self.after(f)?;
            }
        }
        let down = self.rng.range(self.o.down_max_us / 10, self.o.down_max_us);
        self.schedule(down, Ev::Restart(id));
        Ok(())
    }

    fn partition_event(&mut self) -> Checked {
        if !self.fault_rescheduled(self.o.partition_every_us, Ev::Partition) {
            return Ok(());
        }
        let ids = self.member_ids();
        if ids.len() < 2 {
            return Ok(());
        }
        self.net.heal();
        let leader = self.leader();
        let kind = self.rng.below(4);
        let mut side: Vec<u64> = match (kind, leader) {
            // Isolate the leader (alone, or with others).
            (0, Some(l)) => vec![l],
            _ => {
                let size = self.rng.range(1, (ids.len() as u64 - 1).max(1));
                let mut pool = ids.clone();
                let mut side = Vec::new();
                for _ in 0..size {
                    let i = self.rng.below(pool.len() as u64) as usize;
                    side.push(pool.swap_remove(i));
                }
                side
            }
        };
        side.sort_unstable();
        let one_way = self.rng.chance(300);
        if one_way {
            self.net.partition_one_way(&side, &ids);
        } else {
            self.net.partition_symmetric(&side, &ids);
        }
        self.stats.partitions += 1;
        self.note_with(0, || {
            format!("partition {} {side:?}", if one_way { "one-way from" } else { "isolating" })
        });
        let heal = self.rng.range(self.o.partition_max_us / 4, self.o.partition_max_us);
        self.schedule(heal, Ev::Heal);
        Ok(())
    }

    /// The running node that leads in the highest term, if any.
    pub(crate) fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for n in self.nodes.values() {
            let Some(live) = n.live.as_ref().filter(|_| self.running(n)) else { continue };
            let st = live.raw.basic_status();
            if st.soft_state.raft_state == StateType::Leader
                && best.is_none_or(|(t, _)| st.hard_state.term > t)
            {
                best = Some((st.hard_state.term, n.id));
            }
        }
        best.map(|(_, id)| id)
    }

    // ----- phases -----------------------------------------------------------

    /// Bootstraps the initial members and schedules the first events.
    pub(crate) fn boot(&mut self) -> Checked {
        let peers: Vec<u64> = (1..=self.o.nodes as u64).collect();
        for &id in &peers {
            self.start(id, Some(&peers))?;
        }
        for c in 0..self.clients.len() {
            let d = self.rng.range(0, self.o.election_timeout_us() * 2);
            self.schedule(d, Ev::Client(c, 0));
        }
        let o = self.o.clone();
        for (every, ev) in [
            (o.crash_every_us, Ev::Crash),
            (o.partition_every_us, Ev::Partition),
            (o.conf_change_every_us, Ev::ConfChange),
            (o.transfer_every_us, Ev::Transfer),
            (o.pause_every_us, Ev::Pause),
        ] {
            if every > 0 {
                let d = self.rng.range(every / 2, every * 3 / 2);
                self.schedule(d, ev);
            }
        }
        Ok(())
    }

    /// Ends the faulty phase: heals the network, restarts every crashed
    /// node, stops removed ones, and gives the cluster a deadline.
    pub(crate) fn heal(&mut self) -> Checked {
        let deadline = self.now + self.o.liveness_election_timeouts * self.o.election_timeout_us();
        self.phase = RunPhase::Liveness { deadline };
        self.net.heal();
        // Paused nodes resume (their waiting events come at their times).
        for n in self.nodes.values_mut() {
            n.paused_until = 0;
        }
        self.net.drop_per_mille = 0;
        self.net.dup_per_mille = 0;
        self.net.delay_max_us = self.net.delay_max_us.min(10_000).max(self.net.delay_min_us);
        self.note_with(0, || {
            "=== faults end: network healed, crashed nodes restart ===".to_owned()
        });
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let phase = self.nodes[&id].phase;
            if self.removed.contains(&id) && matches!(phase, Phase::Up | Phase::Down) {
                self.decommission(id, "removed from the cluster");
            } else if phase == Phase::Down {
                self.start(id, None)?;
            }
        }
        // The operator keeps an eye on explicit joint configurations.
        let et = self.o.election_timeout_us();
        self.schedule(et, Ev::ConfChange);
        Ok(())
    }

    /// Whether the healed cluster has converged: one leader at the highest
    /// term of the voters, which has committed an entry of its term and
    /// everything in its log, a simple configuration, and every member up and
    /// applied to the leader's commit index with the same configuration.
    /// Returns the commit index and the number of stranded learners.
    ///
    /// A stranded member is one whose term is above the leader's while
    /// neither PreVote nor CheckQuorum is on, and that cannot campaign to any
    /// current member (it is a learner in its own view, or the voters of its
    /// stale configuration are all gone): etcd then drops the leader's
    /// lower-term messages without answering, and nobody ever hears of the
    /// higher term, so nothing brings it back. A known limitation of etcd's
    /// protocol, reported in the statistics rather than as a failure.
    pub(crate) fn converged(&self) -> Option<(u64, u64)> {
        let cs = &self.latest_conf.1;
        if !cs.voters_outgoing.is_empty() {
            return None;
        }
        // A leader demoted to learner keeps leading unless
        // `step_down_on_removal` is set (etcd's documented behaviour).
        let leader = self.leader()?;
        if !members(cs).contains(&leader) {
            return None;
        }
        let live = self.nodes[&leader].live.as_ref()?;
        let st = live.raw.basic_status();
        let (term, commit) = (st.hard_state.term, st.hard_state.commit);
        if live.log.term(commit) != Some(term)
            || live.log.last_index() != commit
            || !live.conf_state.equivalent(cs)
        {
            return None;
        }
        let strandable = !self.o.pre_vote && !self.o.check_quorum;
        let member_ids = members(cs);
        let mut stranded = 0;
        for &m in &member_ids {
            let l = self.nodes.get(&m)?.live.as_ref()?;
            let mst = l.raw.basic_status();
            if mst.hard_state.term > term {
                let own = &l.conf_state;
                let reaches_a_member = own
                    .voters
                    .iter()
                    .chain(&own.voters_outgoing)
                    .any(|&v| v != m && member_ids.contains(&v) && self.nodes[&v].is_up());
                let campaigns = own.voters.contains(&m) || own.voters_outgoing.contains(&m);
                if strandable && !(campaigns && reaches_a_member) {
                    stranded += 1;
                    continue;
                }
                return None;
            }
            if mst.applied != commit || l.kv.applied() != commit || !l.conf_state.equivalent(cs) {
                return None;
            }
        }
        Some((commit, stranded))
    }

    /// After convergence: the members' state machines are identical.
    pub(crate) fn check_replicas(&mut self, index: u64) -> Checked {
        for m in members(&self.latest_conf.1) {
            let digest = self.nodes[&m]
                .live
                .as_ref()
                .filter(|l| l.kv.applied() == index)
                .map(|l| l.kv.digest());
            if let Some(d) = digest {
                self.inv.state_digest(m, index, d)?;
            }
        }
        Ok(())
    }

    /// The history to check: an operation that never returned stays only if
    /// it is a write that took effect somewhere (the simulator sees every
    /// replica, so a write that never took effect can be left out, which
    /// keeps the search small).
    pub(crate) fn checked_history(&self) -> Vec<Operation<KvInput, KvOutput>> {
        self.history
            .iter()
            .zip(&self.commands)
            .filter_map(|(op, cmd)| {
                let op = op.as_ref()?;
                let keep = op.return_time.is_some()
                    || (!matches!(op.input, KvInput::Get { .. }) && self.effective.contains(cmd));
                keep.then(|| op.clone())
            })
            .collect()
    }

    /// What each node looks like, for a liveness failure report.
    pub(crate) fn describe_nodes(&self) -> String {
        let mut out = Vec::new();
        out.push(format!("latest config: {}", describe_cs(&self.latest_conf.1)));
        for n in self.nodes.values() {
            let line = match (&n.live, n.phase) {
                (Some(live), _) => {
                    let st = live.raw.basic_status();
                    format!(
                        "n{}: {:?} term={} lead={} commit={} applied={} last={} conf={}",
                        n.id,
                        st.soft_state.raft_state,
                        st.hard_state.term,
                        st.soft_state.lead,
                        st.hard_state.commit,
                        st.applied,
                        live.log.last_index(),
                        describe_cs(&live.conf_state)
                    )
                }
                (None, phase) => format!("n{}: {phase:?}", n.id),
            };
            out.push(line);
        }
        out.join("\n")
    }
}

/// The voters of `cs` as a (possibly joint) quorum configuration.
pub(crate) fn joint_config(cs: &ConfState) -> JointConfig {
    let mut incoming = MajorityConfig::new();
    for &v in &cs.voters {
        incoming.insert(v);
    }
    let mut outgoing = MajorityConfig::new();
    for &v in &cs.voters_outgoing {
        outgoing.insert(v);
    }
    JointConfig::new(incoming, outgoing)
}

/// `voters=(1 2 3)&&(1 2) learners=(4)`-like text.
pub(crate) fn describe_cs(cs: &ConfState) -> String {
    keel::describe::describe_conf_state(cs)
}

/// A storage or apply thread's response that raft refuses: raft would never
/// learn of the write or apply it answers (a refused apply response keeps
/// its entries counted as being applied for good), which the run would show
/// only as a stall far from its cause.
fn refused_local_step(id: u64, r: keel::Result<()>) -> Checked {
    r.map_err(|err| {
        Violation::new("storage response accepted", format!("node {id} refused one: {err}"))
    })
}
