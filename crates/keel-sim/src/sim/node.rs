//! One simulated server: its disk, and while it is up, its `RawNode`, the
//! state machine, its storage threads' queues and the requests it serves.
//! The event handling that drives it is in `cluster.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use keel::raftpb::{ConfState, Entry, HardState, Message};
use keel::{RawNode, Ready, StorageAppend};
use keel_wal::PersistRequest;

use super::disk::{Disk, SimStorage};
use crate::kv::Kv;

/// The terms of a node's log as far as it has handed entries out (its whole
/// in-memory log once a `Ready` is taken), for the invariant checks: the
/// snapshot's index and term, then one term per entry after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogMirror {
    snap_index: u64,
    snap_term: u64,
    terms: Vec<u64>,
}

impl LogMirror {
    /// An empty log.
    pub fn new() -> LogMirror {
        LogMirror::default()
    }

    /// The log on `disk`.
    pub fn of_disk(disk: &Disk) -> LogMirror {
        let snap = disk.snapshot();
        let mut log = LogMirror::new();
        log.restore(snap.metadata.index, snap.metadata.term);
        log.append(&disk.entries_after_snapshot());
        log
    }

    /// The snapshot's index (0: none).
    pub fn snap_index(&self) -> u64 {
        self.snap_index
    }

    /// The last index.
    pub fn last_index(&self) -> u64 {
        self.snap_index + self.terms.len() as u64
    }

    /// The term at `index`, if the log still knows it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        if index < self.snap_index {
            return None;
        }
        self.terms.get((index - self.snap_index - 1) as usize).copied()
    }

    /// Appends `entries`, replacing any from the first one's index on.
    /// Returns the term of the entry before them, or `None` when they do not
    /// follow the log (a gap, or an index behind the snapshot).
    pub fn append(&mut self, entries: &[Entry]) -> Option<u64> {
        let Some(first) = entries.first() else { return Some(0) };
        if first.index <= self.snap_index || first.index > self.last_index() + 1 {
            return None;
        }
        let prev = self.term(first.index - 1);
        self.terms.truncate((first.index - self.snap_index - 1) as usize);
        self.terms.extend(entries.iter().map(|e| e.term));
        prev
    }

    /// Resets the log to a snapshot at `(index, term)`.
    pub fn restore(&mut self, index: u64, term: u64) {
        self.snap_index = index;
        self.snap_term = term;
        self.terms.clear();
    }
}

/// A client request a node is serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRead {
    /// The client.
    pub client: usize,
    /// Its operation (an index into the history).
    pub op: usize,
    /// The key read.
    pub key: String,
    /// The term this node led in when the read was asked (0: it did not
    /// lead, the read was forwarded).
    pub local_term: u64,
    /// The highest index known committed anywhere when the read started:
    /// its read index must reach it.
    pub floor: u64,
}

/// The in-memory state of a node that is up: all of it is lost in a crash.
pub struct Live {
    /// The core.
    pub raw: RawNode<SimStorage>,
    /// The state machine.
    pub kv: Kv,
    /// The configuration as of the last applied entry (or snapshot).
    pub conf_state: ConfState,
    /// Ticks of this incarnation.
    pub ticks: u64,
    /// Synchronous mode: the `Ready` being written (awaiting its fsync, then
    /// sending, applying and `advance`).
    pub sync_ready: Option<Ready>,
    /// Asynchronous mode: the append thread's queue of `MsgStorageAppend`.
    pub append_queue: VecDeque<Message>,
    /// How many queued messages the append thread's current write (one
    /// fsync for the batch, as a group commit) covers; 0 when idle.
    pub append_batch: usize,
    /// Asynchronous mode: the apply thread's queue of `MsgStorageApply`.
    pub apply_queue: VecDeque<Message>,
    /// How many queued messages the apply thread's current batch covers; 0
    /// when idle.
    pub apply_batch: usize,
    /// Proposals made here, by `(client, seq)`, to the client's operation.
    pub proposals: BTreeMap<(u64, u64), usize>,
    /// ReadIndex requests made here, by request context.
    pub reads: BTreeMap<Bytes, PendingRead>,
    /// Reads with a read index, waiting until it is applied.
    pub waiting_reads: Vec<(u64, PendingRead)>,
    /// The log as handed out, for the invariants.
    pub log: LogMirror,
    /// The term and vote last seen in memory (they may only move forward).
    pub seen_term: u64,
    /// See `seen_term`.
    pub seen_vote: u64,
    /// The last term in which this node was checked for leader completeness.
    pub completeness_checked_term: u64,
    /// The term this node leads in (0 if it is not leader).
    pub leading_term: u64,
    /// Lease bookkeeping while leading: the tick of the last
    /// acknowledgement from each voter (or of becoming leader).
    pub last_contact: BTreeMap<u64, u64>,
    /// The configurations this node has had while leading, with the tick
    /// each took effect (CheckQuorum judges by the one in effect at its
    /// last check).
    pub leader_confs: Vec<(u64, ConfState)>,
    /// Ticks at which this leader started a leadership transfer (which
    /// restarts its CheckQuorum clock).
    pub transfer_ticks: Vec<u64>,
    /// The index of the state machine's last snapshot.
    pub snapshot_index: u64,
    /// The configuration in that snapshot: a member added since cannot
    /// install it (the core refuses a snapshot that does not list it), so a
    /// configuration change calls for a new snapshot.
    pub snapshot_conf: ConfState,
    /// The highest snapshot index the core has handed out to be installed.
    /// Committed entries at or below it that are still waiting to be applied
    /// are superseded: applying them (and above all their configuration
    /// changes, which would land on the snapshot's configuration) would be
    /// wrong. See `Cluster::apply`.
    pub snapshot_floor: u64,
    /// The commit index up to which this node's log was registered as
    /// committed with the invariants.
    pub registered_commit: u64,
}

impl Live {
    /// What its storage is writing now: a synchronous `Ready`'s, or the
    /// append thread's current batch.
    pub fn writes_in_flight(&self) -> Vec<PersistRequest<'_>> {
        match &self.sync_ready {
            Some(rd) => vec![PersistRequest::from_ready(rd)],
            None => self
                .append_queue
                .range(..self.append_batch)
                .filter_map(|m| StorageAppend::new(m).map(PersistRequest::from_storage_append))
                .collect(),
        }
    }

    /// Whether its storage is writing entries now.
    pub fn writing_entries(&self) -> bool {
        self.writes_in_flight().iter().any(|w| !w.entries.is_empty())
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A spare id that was never started.
    Unstarted,
    /// Running.
    Up,
    /// Crashed; will restart.
    Down,
    /// Removed from the cluster and stopped for good.
    Decommissioned,
}

/// A server: its disk always, its memory while up.
pub struct SimNode {
    /// The node's id.
    pub id: u64,
    /// What survives crashes.
    pub disk: Disk,
    /// The memory of the current incarnation.
    pub live: Option<Live>,
    /// Bumped at every start: events of a dead incarnation are ignored.
    pub incarnation: u32,
    /// Life cycle.
    pub phase: Phase,
    /// This node's tick interval (skewed).
    pub tick_us: u64,
    /// The last durable hard state (term and vote may only move forward).
    pub durable_hs: HardState,
    /// Paused until this time: its events wait until then.
    pub paused_until: u64,
}

impl SimNode {
    /// A node that has not started yet.
    pub fn new(id: u64, tick_us: u64, storage: super::disk::StorageKind) -> SimNode {
        SimNode {
            id,
            disk: Disk::of_kind(storage, id),
            live: None,
            incarnation: 0,
            phase: Phase::Unstarted,
            tick_us,
            durable_hs: HardState::default(),
            paused_until: 0,
        }
    }

    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up && self.live.is_some()
    }
}

/// Every member of a configuration: voters of both halves and learners.
pub fn members(cs: &ConfState) -> BTreeSet<u64> {
    cs.voters
        .iter()
        .chain(&cs.voters_outgoing)
        .chain(&cs.learners)
        .chain(&cs.learners_next)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_appends_truncates_and_restores() {
        let mut log = LogMirror::new();
        let e = |i, t| Entry::new(t, i, Bytes::new());
        assert_eq!(log.append(&[e(1, 1), e(2, 1), e(3, 2)]), Some(0));
        assert_eq!(log.append(&[e(3, 3)]), Some(1));
        assert_eq!((log.last_index(), log.term(3)), (3, Some(3)));
        assert_eq!(log.append(&[e(5, 3)]), None);
        log.restore(10, 4);
        assert_eq!((log.term(10), log.term(9), log.last_index()), (Some(4), None, 10));
        assert_eq!(log.append(&[e(10, 4)]), None);
        assert_eq!(log.append(&[e(11, 4)]), Some(4));
    }
}
