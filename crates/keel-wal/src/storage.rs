//! [`DiskStorage`]: `keel::Storage` over the WAL and the snapshot files, with
//! a byte-bounded cache of recent entries.

use crate::error::{Result, WalError};
use crate::fs::FileSystem;
use crate::snap::SnapStore;
use crate::wal::{Location, PendingSync, Wal, WalOptions, WalRecord};
use keel::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use keel::{Ready, StorageAppend, StorageError};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How a [`DiskStorage`] is laid out and sized.
#[derive(Clone, Debug)]
pub struct DiskOptions {
    /// WAL identity and segment size.
    pub wal: WalOptions,
    /// Snapshot files kept (the newest is the one loaded).
    pub snapshots_kept: usize,
    /// Bytes of entry data kept in memory; older entries are read from disk.
    pub cache_bytes: usize,
}

impl DiskOptions {
    /// Defaults: 64 MiB segments, 5 snapshots, 64 MiB of cached entries.
    pub fn new(node_id: u64, cluster_id: u64) -> DiskOptions {
        DiskOptions {
            wal: WalOptions::new(node_id, cluster_id),
            snapshots_kept: 5,
            cache_bytes: 64 << 20,
        }
    }
}

/// What one persist step must make durable: what a `Ready` or a
/// `MsgStorageAppend` asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersistRequest<'a> {
    /// A new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append (overwriting any conflicting suffix).
    pub entries: &'a [Entry],
    /// A snapshot to install.
    pub snapshot: Option<&'a Snapshot>,
}

impl<'a> PersistRequest<'a> {
    /// What a `Ready` asks to persist.
    pub fn from_ready(rd: &'a Ready) -> PersistRequest<'a> {
        PersistRequest {
            hard_state: rd.hard_state,
            entries: &rd.entries,
            snapshot: rd.snapshot.as_ref(),
        }
    }

    /// What a `MsgStorageAppend` asks to persist.
    pub fn from_storage_append(append: StorageAppend<'a>) -> PersistRequest<'a> {
        PersistRequest {
            hard_state: append.hard_state(),
            entries: append.entries(),
            snapshot: append.snapshot(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    term: u64,
    loc: Location,
}

#[derive(Debug)]
struct Inner {
    wal: Wal,
    hard_state: HardState,
    snapshot: Snapshot,
    /// Index and term just before `log[0]`.
    base: (u64, u64),
    log: VecDeque<Meta>,
    /// The newest `cache.len()` entries of `log`.
    cache: VecDeque<Entry>,
    cache_used: usize,
    cache_bytes: usize,
}

/// Durable `keel::Storage`: persists through the WAL and snapshot files and
/// serves reads from a cache or the disk. All methods take `&self`, so the
/// storage and apply threads can share it behind an `Arc`.
#[derive(Debug)]
pub struct DiskStorage {
    /// What readers see; held only for memory updates and reads, never
    /// across a sync, so that raft reads the log while a write is in flight.
    inner: Mutex<Inner>,
    /// Serializes WAL writers (persist, a snapshot's marker, compact) from
    /// their first write to their last sync.
    writer: Mutex<()>,
    /// The snapshot files, held while one is written. Taken before `writer`
    /// (never after it), so that a snapshot the application creates is
    /// written while entries go on being persisted.
    snaps: Mutex<SnapStore>,
    /// Set by the first failed write or sync: see [`WalError::Failed`].
    failed: AtomicBool,
}

fn other(e: WalError) -> StorageError {
    StorageError::Other(Box::new(e))
}

impl DiskStorage {
    /// Opens `dir` (`dir/wal`, `dir/snap`), creating it if empty, and restores
    /// hard state, snapshot and log.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, opts: DiskOptions) -> Result<DiskStorage> {
        let snaps = SnapStore::open(fs.clone(), &dir.join("snap"), opts.snapshots_kept)?;
        let wal_dir = dir.join("wal");
        fs.create_dir_all(&wal_dir).map_err(WalError::io(&wal_dir))?;
        let segments = fs.list(&wal_dir).map_err(WalError::io(&wal_dir))?;
        if !segments.iter().any(|n| n.ends_with(".wal")) && !snaps.names()?.is_empty() {
            // Starting empty would forget every vote and entry.
            return Err(WalError::corrupt(&wal_dir, 0, "no WAL segment, but snapshot files"));
        }
        let (wal, replay) = Wal::open(fs, &wal_dir, opts.wal.clone())?;
        let mut snapshot = Snapshot::default();
        if let Some(newest) = replay.snapshots.last() {
            let mut found = None;
            for name in snaps.names()?.iter().rev() {
                match snaps.load(name)? {
                    Ok(s) if replay.snapshots.contains(&s.metadata) => {
                        found = Some(s);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("skipping snapshot file (renamed to .broken): {e}");
                        snaps.quarantine(name)?;
                    }
                }
            }
            snapshot = found
                .ok_or(WalError::MissingSnapshot { index: newest.index, term: newest.term })?;
            if snapshot.metadata != *newest {
                return Err(WalError::MissingSnapshot { index: newest.index, term: newest.term });
            }
        }
        let base = (snapshot.metadata.index, snapshot.metadata.term);
        // A snapshot covers only committed entries, so its index is a commit
        // index too. The hard state may say less: a commit index is written
        // without a sync, and with asynchronous storage writes an apply
        // thread may snapshot an entry before the append thread writes the
        // commit that covers it.
        let mut hard_state = replay.hard_state;
        hard_state.commit = hard_state.commit.max(snapshot.metadata.index);
        let mut inner = Inner {
            wal,
            hard_state,
            snapshot,
            base,
            log: VecDeque::new(),
            cache: VecDeque::new(),
            cache_used: 0,
            cache_bytes: opts.cache_bytes,
        };
        for (e, loc) in replay.entries {
            inner.push(e, loc);
        }
        Ok(DiskStorage {
            inner: Mutex::new(inner),
            writer: Mutex::new(()),
            snaps: Mutex::new(snaps),
            failed: AtomicBool::new(false),
        })
    }

    /// Refuses writes once one failed (see [`WalError::Failed`]).
    fn usable(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) { Err(WalError::Failed) } else { Ok(()) }
    }

    /// Passes `r` on, marking the storage failed if it is an I/O error.
    fn checked<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(WalError::Io { .. }) = &r {
            self.failed.store(true, Ordering::SeqCst);
        }
        r
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snaps(&self) -> MutexGuard<'_, SnapStore> {
        self.snaps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the request durable (snapshot file first, then one WAL batch and
    /// one sync) and returns once it is. Reads see the new entries as soon
    /// as they are written, before the sync: raft reads only entries it
    /// already holds, and treats nothing as durable before this returns.
    ///
    /// A request that only moves the commit index is written but not synced,
    /// as etcd's `MustSync` rule allows: a commit index lost in a crash is
    /// learned again from the leader, while entries, a snapshot, and a term
    /// or vote (a promise made to a candidate) must survive one. The next
    /// sync makes it durable along with whatever follows it.
    pub fn persist(&self, req: PersistRequest<'_>) -> Result<()> {
        self.persist_all(&[req])
    }

    /// Makes several requests durable, in order, with one sync for all of
    /// them (group commit): what an append thread does with every
    /// `MsgStorageAppend` that queued up during the previous sync.
    pub fn persist_all(&self, reqs: &[PersistRequest<'_>]) -> Result<()> {
        let snaps = reqs.iter().any(|r| r.snapshot.is_some()).then(|| self.snaps());
        let writer = self.writer();
        self.usable()?;
        let mut pending = None;
        for req in reqs {
            if let (Some(s), Some(snaps)) = (req.snapshot, &snaps) {
                // The WAL marker must not be durable before its file.
                if let Some(sync) = pending.take() {
                    self.checked(PendingSync::wait(sync))?;
                }
                snaps.save(s)?;
            }
            if let Some(sync) = self.checked(self.write(req))? {
                pending = Some(sync);
            }
        }
        if let Some(sync) = pending {
            self.checked(sync.wait())?;
        }
        drop(writer);
        if let (Some(snaps), Some(newest)) = (snaps, reqs.iter().rev().find_map(|r| r.snapshot)) {
            purge(&snaps, &newest.metadata);
        }
        Ok(())
    }

    /// Writes one request to the WAL (unsynced) and into memory; the sync it
    /// needs, if it needs one.
    fn write(&self, req: &PersistRequest<'_>) -> Result<Option<PendingSync>> {
        let mut records = Vec::with_capacity(req.entries.len() + 2);
        if let Some(s) = req.snapshot {
            records.push(WalRecord::Snapshot(&s.metadata));
        }
        records.extend(req.entries.iter().map(WalRecord::Entry));
        if let Some(hs) = &req.hard_state {
            records.push(WalRecord::HardState(hs));
        }
        if records.is_empty() {
            return Ok(None);
        }
        let mut g = self.lock();
        let must_sync = must_sync(req, &g.hard_state);
        let (locs, sync) = g.wal.append_unsynced(&records)?;
        let mut locs = locs.into_iter();
        if let Some(s) = req.snapshot {
            locs.next();
            g.install(s.clone());
        }
        for e in req.entries {
            let loc = locs.next().ok_or_else(|| WalError::Invalid("missing location".into()))?;
            g.truncate_from(e.index);
            g.push(e.clone(), loc);
        }
        if let Some(hs) = req.hard_state {
            g.hard_state = hs;
        }
        Ok(must_sync.then_some(sync))
    }

    /// Records a snapshot of the applied state at `index` (durably), as
    /// etcd's `CreateSnapshot`; the log is kept until [`compact`](Self::compact).
    pub fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: bytes::Bytes,
    ) -> Result<Snapshot> {
        // No other snapshot can be installed before this one is: a received
        // one is persisted under `snaps` too.
        let snaps = self.snaps();
        let term = {
            let g = self.lock();
            if index <= g.snapshot.metadata.index {
                return Err(WalError::Invalid(format!(
                    "snapshot {index} is not newer than {}",
                    g.snapshot.metadata.index
                )));
            }
            g.term_of(index)
                .ok_or_else(|| WalError::Invalid(format!("index {index} is not in the log")))?
        };
        let snap = Snapshot { data, metadata: SnapshotMetadata { conf_state, index, term } };
        // The file (large) is written and synced without blocking readers,
        // nor writers of entries.
        snaps.save(&snap)?;
        let writer = self.writer();
        self.usable()?;
        let sync = {
            let mut g = self.lock();
            let appended = g.wal.append_unsynced(&[WalRecord::Snapshot(&snap.metadata)]);
            let (_, sync) = self.checked(appended)?;
            g.snapshot = snap.clone();
            sync
        };
        self.checked(sync.wait())?;
        drop(writer);
        purge(&snaps, &snap.metadata);
        drop(snaps);
        Ok(snap)
    }

    /// Drops entries up to `index` (which the snapshot must cover) from memory
    /// and releases the WAL segments that hold only such entries.
    pub fn compact(&self, index: u64) -> Result<()> {
        let _writer = self.writer();
        // A snapshot whose marker may not be durable must not release the
        // segments before it.
        self.usable()?;
        let mut g = self.lock();
        if index > g.snapshot.metadata.index {
            return Err(WalError::Invalid(format!(
                "compact {index} is beyond the snapshot at {}",
                g.snapshot.metadata.index
            )));
        }
        g.drop_through(index);
        g.wal.release(index)
    }

    /// Whether persisting `req` now would wait for a sync (etcd's
    /// `MustSync`: entries, a snapshot, or a new term or vote). One that
    /// only moves the commit index is written and left for the next sync.
    pub fn needs_sync(&self, req: &PersistRequest<'_>) -> bool {
        must_sync(req, &self.lock().hard_state)
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.lock().hard_state
    }

    /// The number of WAL segment files in use.
    pub fn segment_count(&self) -> usize {
        self.lock().wal.segment_count()
    }
}

/// Removes the snapshot files that `durable`, now durable in the WAL, makes
/// unneeded. A failure loses nothing (a file too many is kept), so it is
/// logged, and the next snapshot tries again.
fn purge(snaps: &SnapStore, durable: &SnapshotMetadata) {
    if let Err(e) = snaps.purge(durable) {
        tracing::warn!("could not remove old snapshot files: {e}");
    }
}

fn must_sync(req: &PersistRequest<'_>, persisted: &HardState) -> bool {
    !req.entries.is_empty()
        || req.snapshot.is_some()
        || req.hard_state.is_some_and(|hs| hs.term != persisted.term || hs.vote != persisted.vote)
}

impl Inner {
    fn last(&self) -> u64 {
        self.base.0 + self.log.len() as u64
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        let off = index.checked_sub(self.base.0 + 1)?;
        self.log.get(off as usize).map(|m| m.term)
    }

    fn entry(&self, index: u64) -> Result<Entry> {
        let off = (index - self.base.0 - 1) as usize;
        let uncached = self.log.len() - self.cache.len();
        if off >= uncached
            && let Some(e) = self.cache.get(off - uncached)
        {
            return Ok(e.clone());
        }
        let meta =
            self.log.get(off).ok_or_else(|| WalError::Invalid(format!("entry {index} missing")))?;
        self.wal.read_entry(meta.loc)
    }

    fn push(&mut self, e: Entry, loc: Location) {
        self.log.push_back(Meta { term: e.term, loc });
        self.cache_used += e.data.len();
        self.cache.push_back(e);
        while self.cache_used > self.cache_bytes && self.cache.len() > 1 {
            if let Some(old) = self.cache.pop_front() {
                self.cache_used -= old.data.len();
            }
        }
    }

    fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.base.0 + 1) as usize;
        while self.log.len() > keep {
            self.log.pop_back();
            if let Some(e) = self.cache.pop_back() {
                self.cache_used -= e.data.len();
            }
        }
    }

    /// Drops the entries up to `index` from the front of the log and cache.
    fn drop_through(&mut self, index: u64) {
        while self.base.0 < index {
            let Some(m) = self.log.pop_front() else { break };
            self.base = (self.base.0 + 1, m.term);
            if self.log.len() < self.cache.len()
                && let Some(e) = self.cache.pop_front()
            {
                self.cache_used -= e.data.len();
            }
        }
    }

    fn install(&mut self, s: Snapshot) {
        let (index, term) = (s.metadata.index, s.metadata.term);
        if self.term_of(index) == Some(term) && index >= self.base.0 {
            self.drop_through(index);
        } else {
            self.log.clear();
            self.cache.clear();
            self.cache_used = 0;
            self.base = (index, term);
        }
        self.snapshot = s;
    }
}

impl keel::Storage for DiskStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        let g = self.lock();
        Ok((g.hard_state, g.snapshot.metadata.conf_state.clone()))
    }
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        let g = self.lock();
        if lo <= g.base.0 {
            return Err(StorageError::Compacted);
        }
        if hi > g.last() + 1 {
            return Err(StorageError::Unavailable);
        }
        let mut size = 0u64;
        for (n, i) in (lo..hi).enumerate() {
            let e = g.entry(i).map_err(other)?;
            size += (e.data.len() as u64).max(1);
            if n > 0 && size > max_size {
                break;
            }
            out.push(e);
        }
        Ok(())
    }
    fn term(&self, index: u64) -> Result<u64, StorageError> {
        let g = self.lock();
        if index < g.base.0 {
            return Err(StorageError::Compacted);
        }
        g.term_of(index).ok_or(StorageError::Unavailable)
    }
    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.lock().base.0 + 1)
    }
    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.lock().last())
    }
    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.lock().snapshot.clone())
    }
}
