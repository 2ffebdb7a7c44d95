//! A node's simulated disk: what survives a crash.
//!
//! The disk holds exactly the durable state: the hard state, the log and the
//! latest snapshot. The simulator writes to it only at the points where a
//! real server's write has been fsynced:
//! - synchronous mode: when a `Ready`'s write completes, before its messages
//!   are sent (a crash before that point loses the whole write);
//! - asynchronous mode: when the append thread has processed a
//!   `MsgStorageAppend`, before its responses are delivered;
//! - the state machine's own snapshots (`create_snapshot` and `compact`).
//!
//! A write and its fsync are one step: between the two nothing can observe
//! the write (no response is sent before the fsync returns), so a crash in
//! between is the same as a crash before the write. On a crash the node's
//! memory (its `RawNode`, unsent messages, queued storage work, the state
//! machine) is dropped and [`Disk::recover`] gives a fresh storage with the
//! same durable contents, shared with nothing of the dead incarnation.

use bytes::Bytes;
use keel::raftpb::{ConfState, Entry, HardState, Snapshot};
use keel::{MemoryStorage, Storage};

/// The durable state of one node, as a `MemoryStorage` the node reads.
#[derive(Debug)]
pub struct Disk {
    storage: MemoryStorage,
}

impl Disk {
    /// An empty disk (a node that was never started).
    pub fn new() -> Disk {
        Disk { storage: MemoryStorage::new() }
    }

    /// The storage a `RawNode` of this incarnation reads (a shared handle).
    pub fn storage(&self) -> MemoryStorage {
        self.storage.clone()
    }

    /// Writes and fsyncs a snapshot, entries and a hard state (each
    /// optional), in that order, as etcd's `raftexample` saves a `Ready`.
    pub fn persist(&self, snapshot: Option<&Snapshot>, entries: &[Entry], hs: Option<HardState>) {
        if let Some(snap) = snapshot {
            // Out of date only if a newer one is already durable, which the
            // core never asks for; the invariant checks would flag the log.
            let _ = self.storage.apply_snapshot(snap.clone());
        }
        if let Err(err) = self.storage.append(entries) {
            panic!("disk append failed: {err}");
        }
        if let Some(hs) = hs {
            self.storage.set_hard_state(hs);
        }
    }

    /// Records a state machine snapshot at `index` and discards the log up
    /// to `compact_to` (if after the current start).
    pub fn snapshot_and_compact(
        &self,
        index: u64,
        conf_state: &ConfState,
        data: Bytes,
        compact_to: u64,
    ) -> Result<Snapshot, keel::StorageError> {
        let snap = self.storage.create_snapshot(index, Some(conf_state), data)?;
        if compact_to > self.storage.first_index()? {
            self.storage.compact(compact_to)?;
        }
        Ok(snap)
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.storage.hard_state()
    }

    /// The last durable log index.
    pub fn storage_last_index(&self) -> u64 {
        self.storage.last_index().unwrap_or(0)
    }

    /// The durable snapshot (index 0 if none).
    pub fn snapshot(&self) -> Snapshot {
        self.storage.snapshot().unwrap_or_default()
    }

    /// The durable log after the snapshot.
    pub fn entries(&self) -> Vec<Entry> {
        let (Ok(first), Ok(last)) = (self.storage.first_index(), self.storage.last_index()) else {
            return Vec::new();
        };
        if last < first {
            return Vec::new();
        }
        self.storage.entries(first, last + 1, u64::MAX).unwrap_or_default()
    }

    /// A fresh disk with the same durable contents: what a restarted process
    /// finds.
    pub fn recover(&self) -> Disk {
        let fresh = Disk::new();
        let snap = self.snapshot();
        if !snap.is_empty() {
            let _ = fresh.storage.apply_snapshot(snap);
        }
        fresh.persist(None, &self.entries(), Some(self.hard_state()));
        fresh
    }
}

impl Default for Disk {
    fn default() -> Self {
        Disk::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_copies_the_durable_state() {
        let disk = Disk::new();
        let ents: Vec<Entry> = (1..=4).map(|i| Entry::new(1, i, Bytes::new())).collect();
        disk.persist(None, &ents, Some(HardState { term: 1, vote: 2, commit: 3 }));
        let cs = ConfState { voters: vec![1, 2], ..ConfState::default() };
        disk.snapshot_and_compact(3, &cs, Bytes::from_static(b"x"), 2).unwrap();
        let back = disk.recover();
        assert_eq!(back.hard_state(), disk.hard_state());
        assert_eq!(back.snapshot(), disk.snapshot());
        let idx: Vec<u64> = back.entries().iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![4]);
        // The copy is independent of the original.
        back.persist(None, &[Entry::new(2, 5, Bytes::new())], None);
        assert_eq!(disk.storage().last_index().unwrap(), 4);
    }
}
