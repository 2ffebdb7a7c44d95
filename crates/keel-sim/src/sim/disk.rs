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
//! the write (no response is sent before the fsync returns). On the model
//! disk a crash in between is the same as a crash before the write; on a WAL
//! disk the write in flight reaches the file system unsynced
//! ([`Disk::crash_while_writing`]), so the power loss keeps a prefix of it,
//! its last record possibly torn, which the WAL must drop when it reopens.
//! On a crash the node's
//! memory (its `RawNode`, unsent messages, queued storage work, the state
//! machine) is dropped and [`Disk::recover`] gives a fresh storage with the
//! same durable contents, shared with nothing of the dead incarnation.
//!
//! A disk is either a `MemoryStorage` (the model) or keel-wal's real
//! `DiskStorage` over an in-memory file system that loses power (`MemFs`):
//! then the simulator runs the real WAL, snapshot files, segment cuts and
//! releases, and a restart replays them. [`StorageKind::LyingWal`] plants a
//! storage bug: the file system acknowledges every fsync without syncing, so
//! a crash loses "durable" writes, and the invariants must notice.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use keel::raftpb::{ConfState, Entry, HardState, Snapshot};
use keel::{MemoryStorage, Storage, StorageError};
use keel_wal::{DiskOptions, DiskStorage, FileSystem, MemFs, PersistRequest};

/// Which storage a simulated node runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// `MemoryStorage`: durable by construction.
    #[default]
    Memory,
    /// keel-wal's `DiskStorage` on a `MemFs` that loses power at each crash.
    Wal,
    /// As `Wal`, on a disk that acknowledges fsyncs it never does (a planted
    /// storage bug).
    LyingWal,
}

/// A file system whose fsyncs succeed without syncing anything.
#[derive(Debug)]
struct LyingFs(Arc<MemFs>);

impl FileSystem for LyingFs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.0.list(dir)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        self.0.len(path)
    }
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read_at(path, offset, buf)
    }
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write_at(path, offset, data)
    }
    fn set_len(&self, path: &Path, len: u64) -> std::io::Result<()> {
        self.0.set_len(path, len)
    }
    /// Lies for the WAL's appends; temporary files (new segments, snapshot
    /// files before their rename) are synced, so that what is lost is
    /// acknowledged records, not the files' structure.
    fn sync(&self, path: &Path) -> std::io::Result<()> {
        if path.extension().is_some_and(|e| e == "tmp") { self.0.sync(path) } else { Ok(()) }
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.sync_dir(dir)
    }
}

/// What a `RawNode` of the simulator reads: either storage, behind one type.
pub type SimStorage = Arc<dyn Storage>;

/// The WAL's home on a simulated disk.
const WAL_DIR: &str = "/node";

/// Small segments and cache, so that runs cut and release segments (often
/// just after a snapshot, and then crash) and read entries back from files.
fn wal_options(node_id: u64) -> DiskOptions {
    let mut o = DiskOptions::new(node_id, 1);
    o.wal.segment_size = 2 << 10;
    o.cache_bytes = 2 << 10;
    o.snapshots_kept = 2;
    o
}

#[derive(Debug)]
struct WalDisk {
    mem: Arc<MemFs>,
    lying: bool,
    node_id: u64,
    storage: Arc<DiskStorage>,
}

impl WalDisk {
    fn open(mem: Arc<MemFs>, lying: bool, node_id: u64) -> Result<WalDisk, String> {
        let fs: Arc<dyn FileSystem> =
            if lying { Arc::new(LyingFs(Arc::clone(&mem))) } else { Arc::clone(&mem) as _ };
        let storage = DiskStorage::open(fs, Path::new(WAL_DIR), wal_options(node_id))
            .map_err(|err| format!("the WAL does not open: {err}"))?;
        Ok(WalDisk { mem, lying, node_id, storage: Arc::new(storage) })
    }
}

#[derive(Debug)]
enum Backend {
    Memory(MemoryStorage),
    Wal(WalDisk),
}

/// The durable state of one node.
#[derive(Debug)]
pub struct Disk {
    backend: Backend,
}

fn wal_error(e: keel_wal::WalError) -> StorageError {
    match e {
        keel_wal::WalError::Invalid(_) => StorageError::SnapOutOfDate,
        other => StorageError::Other(Box::new(other)),
    }
}

impl Disk {
    /// An empty model disk (a node that was never started).
    pub fn new() -> Disk {
        Disk { backend: Backend::Memory(MemoryStorage::new()) }
    }

    /// An empty disk of `kind` for node `node_id`.
    pub fn of_kind(kind: StorageKind, node_id: u64) -> Disk {
        match kind {
            StorageKind::Memory => Disk::new(),
            StorageKind::Wal | StorageKind::LyingWal => {
                let lying = kind == StorageKind::LyingWal;
                match WalDisk::open(Arc::new(MemFs::new()), lying, node_id) {
                    Ok(w) => Disk { backend: Backend::Wal(w) },
                    Err(err) => panic!("node {node_id}: an empty disk: {err}"),
                }
            }
        }
    }

    /// The storage a `RawNode` of this incarnation reads (a shared handle).
    pub fn storage(&self) -> SimStorage {
        match &self.backend {
            // A clone of a `MemoryStorage` shares its contents.
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Wal(w) => Arc::clone(&w.storage) as SimStorage,
        }
    }

    /// Writes and fsyncs a snapshot, entries and a hard state (each
    /// optional), in that order, as etcd's `raftexample` saves a `Ready`.
    pub fn persist(&self, snapshot: Option<&Snapshot>, entries: &[Entry], hs: Option<HardState>) {
        match &self.backend {
            Backend::Memory(storage) => {
                if let Some(snap) = snapshot {
                    // Out of date only if a newer one is already durable, which
                    // the core never asks for; the invariant checks would flag
                    // the log.
                    let _ = storage.apply_snapshot(snap.clone());
                }
                if let Err(err) = storage.append(entries) {
                    panic!("disk append failed: {err}");
                }
                if let Some(hs) = hs {
                    storage.set_hard_state(hs);
                }
            }
            Backend::Wal(w) => {
                let req = PersistRequest { hard_state: hs, entries, snapshot };
                if let Err(err) = w.storage.persist(req) {
                    panic!("node {}: WAL persist failed: {err}", w.node_id);
                }
            }
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
    ) -> Result<Snapshot, StorageError> {
        match &self.backend {
            Backend::Memory(storage) => {
                let snap = storage.create_snapshot(index, Some(conf_state), data)?;
                if compact_to > storage.first_index()? {
                    storage.compact(compact_to)?;
                }
                Ok(snap)
            }
            Backend::Wal(w) => {
                let snap = w
                    .storage
                    .create_snapshot(index, conf_state.clone(), data)
                    .map_err(wal_error)?;
                if compact_to > w.storage.first_index()? {
                    w.storage.compact(compact_to).map_err(wal_error)?;
                }
                Ok(snap)
            }
        }
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        match &self.backend {
            Backend::Memory(s) => s.hard_state(),
            Backend::Wal(w) => w.storage.hard_state(),
        }
    }

    /// The last durable log index.
    pub fn storage_last_index(&self) -> u64 {
        self.storage().last_index().unwrap_or(0)
    }

    /// The durable snapshot (index 0 if none).
    pub fn snapshot(&self) -> Snapshot {
        self.storage().snapshot().unwrap_or_default()
    }

    /// A crash in the middle of writing `reqs` (the node's write in flight,
    /// none of it acknowledged): on a WAL disk their bytes reach the file
    /// system but no sync completes, so the power loss at the restart keeps
    /// some prefix of them, the last record possibly torn. The model disk
    /// loses them whole. Writes from a snapshot on are left out (a snapshot
    /// file written without its sync is lost with its directory entry).
    pub fn crash_while_writing(&self, reqs: &[PersistRequest<'_>]) {
        let Backend::Wal(w) = &self.backend else { return };
        let n = reqs.iter().position(|r| r.snapshot.is_some()).unwrap_or(reqs.len());
        w.mem.set_fail_syncs(true);
        // The sync fails, as it must: this storage dies with the incarnation
        // and `recover` reopens the files.
        let _ = w.storage.persist_all(&reqs[..n]);
        w.mem.set_fail_syncs(false);
    }

    /// The durable log after the snapshot.
    pub fn entries_after_snapshot(&self) -> Vec<Entry> {
        let index = self.snapshot().metadata.index;
        self.entries().into_iter().filter(|e| e.index > index).collect()
    }

    /// The durable log, from its first stored index (entries a compaction
    /// kept behind the snapshot included).
    pub fn entries(&self) -> Vec<Entry> {
        let storage = self.storage();
        let (Ok(first), Ok(last)) = (storage.first_index(), storage.last_index()) else {
            return Vec::new();
        };
        if last < first {
            return Vec::new();
        }
        storage.entries_vec(first, last + 1, u64::MAX).unwrap_or_default()
    }

    /// A fresh disk with the same durable contents: what a restarted process
    /// finds. A WAL disk loses power first (`seed` picks which unsynced
    /// writes survive, torn) and is opened again from its files; an error
    /// says why it does not open.
    pub fn recover(&self, seed: u64) -> Result<Disk, String> {
        match &self.backend {
            Backend::Memory(_) => {
                let fresh = Disk::new();
                let snap = self.snapshot();
                if let Backend::Memory(storage) = &fresh.backend
                    && !snap.is_empty()
                {
                    let _ = storage.apply_snapshot(snap);
                }
                fresh.persist(None, &self.entries(), Some(self.hard_state()));
                Ok(fresh)
            }
            Backend::Wal(w) => {
                w.mem.power_loss(seed, true);
                let w = WalDisk::open(Arc::clone(&w.mem), w.lying, w.node_id)?;
                Ok(Disk { backend: Backend::Wal(w) })
            }
        }
    }
}

impl Default for Disk {
    fn default() -> Self {
        Disk::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn recover_copies_the_durable_state() {
        let disk = Disk::new();
        let ents: Vec<Entry> = (1..=4).map(|i| Entry::new(1, i, Bytes::new())).collect();
        disk.persist(None, &ents, Some(HardState { term: 1, vote: 2, commit: 3 }));
        let cs = ConfState { voters: vec![1, 2], ..ConfState::default() };
        disk.snapshot_and_compact(3, &cs, Bytes::from_static(b"x"), 2).unwrap();
        let back = disk.recover(0).unwrap();
        assert_eq!(back.hard_state(), disk.hard_state());
        assert_eq!(back.snapshot(), disk.snapshot());
        let idx: Vec<u64> = back.entries().iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![4]);
        // The copy is independent of the original.
        back.persist(None, &[Entry::new(2, 5, Bytes::new())], None);
        assert_eq!(disk.storage().last_index().unwrap(), 4);
    }

    #[test]
    fn a_crash_mid_write_keeps_a_prefix_and_the_wal_drops_the_torn_record() {
        let entry = |i: u64| Entry::new(1, i, Bytes::from(vec![i as u8; 40]));
        let durable: Vec<Entry> = (1..=2).map(entry).collect();
        let in_flight: Vec<Entry> = (3..=6).map(entry).collect();
        let mut kept = BTreeSet::new();
        for seed in 0..40 {
            let disk = Disk::of_kind(StorageKind::Wal, 1);
            disk.persist(None, &durable, Some(HardState { term: 1, vote: 2, commit: 2 }));
            let req = PersistRequest { hard_state: None, entries: &in_flight, snapshot: None };
            disk.crash_while_writing(&[req]);
            // A record cut short is dropped when the WAL reopens, not an error.
            let log = disk.recover(seed).unwrap().entries();
            let (old, new) = log.split_at(2);
            assert_eq!(old, &durable[..]);
            assert_eq!(new, &in_flight[..new.len()], "seed {seed}: whole entries, in order");
            kept.insert(new.len());
        }
        assert!(kept.len() > 2, "the power loss keeps prefixes of several lengths: {kept:?}");
    }

    #[test]
    fn a_wal_disk_survives_power_loss_and_a_lying_one_does_not() {
        let hs = HardState { term: 1, vote: 2, commit: 3 };
        let ents: Vec<Entry> = (1..=4).map(|i| Entry::new(1, i, Bytes::new())).collect();
        let mut lost = 0;
        for seed in 0..20 {
            let disk = Disk::of_kind(StorageKind::Wal, 1);
            disk.persist(None, &ents, Some(hs));
            let back = disk.recover(seed).unwrap();
            assert_eq!((back.storage_last_index(), back.hard_state()), (4, hs));
            // Restarted twice, it still holds everything.
            let again = back.recover(seed + 1).unwrap();
            assert_eq!(again.entries(), back.entries());
            let lying = Disk::of_kind(StorageKind::LyingWal, 1);
            lying.persist(None, &ents, Some(hs));
            match lying.recover(seed) {
                Ok(d) if d.storage_last_index() == 4 && d.hard_state() == hs => {}
                _ => lost += 1,
            }
        }
        assert!(lost > 0, "a disk that skips its fsyncs must lose acknowledged writes");
    }
}
