//! [`MemoryStorage`]: etcd-raft's in-memory `Storage`, shared between the Raft
//! loop and the application's storage threads.

use super::{Storage, StorageError, limit_count};
use crate::raftpb::{ConfState, Entry, HardState, Snapshot};
use bytes::Bytes;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many times each [`Storage`] method of a [`MemoryStorage`] was called,
/// so that benchmarks can report storage accesses per operation (as etcd's
/// `BenchmarkRawNode` does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStorageCallStats {
    /// Calls of [`Storage::initial_state`].
    pub initial_state: u64,
    /// Calls of [`Storage::first_index`].
    pub first_index: u64,
    /// Calls of [`Storage::last_index`].
    pub last_index: u64,
    /// Calls of [`Storage::entries`].
    pub entries: u64,
    /// Calls of [`Storage::term`].
    pub term: u64,
    /// Calls of [`Storage::snapshot`].
    pub snapshot: u64,
}

/// A [`Storage`] held in memory, with etcd's layout: the entries vector starts
/// with a dummy entry holding the index and term of the last compacted entry
/// (the snapshot's, once one is applied), so `first_index()` is the dummy's
/// index plus one.
///
/// Clones share the same state behind a mutex, as etcd's `MemoryStorage` is
/// shared between the Raft goroutine and the application's: the Raft loop
/// reads it while a storage thread appends to it.
///
/// Errors and panics follow etcd: asking for compacted indexes or offering
/// an outdated snapshot gives a [`StorageError`]; asking beyond the last index
/// (`entries` with `hi > last_index() + 1`, `create_snapshot` or `compact`
/// past the last index) or appending with a gap after the last index breaks
/// the caller's contract and panics.
#[derive(Clone, Debug)]
pub struct MemoryStorage {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Inner>,
    /// `first_index()` and `last_index()`, published by every write before
    /// it releases the lock. The Raft loop asks for them several times per
    /// message, so they are read without locking.
    first_index: AtomicU64,
    last_index: AtomicU64,
    calls: CallCounters,
}

/// [`MemoryStorageCallStats`], counted without the lock.
#[derive(Debug, Default)]
struct CallCounters {
    initial_state: AtomicU64,
    first_index: AtomicU64,
    last_index: AtomicU64,
    entries: AtomicU64,
    term: AtomicU64,
    snapshot: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The lock, held for a change to the entries: releasing it publishes the
/// new first and last index.
struct WriteGuard<'a> {
    inner: MutexGuard<'a, Inner>,
    shared: &'a Shared,
}

impl Deref for WriteGuard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.shared.first_index.store(self.inner.first_index(), Ordering::Release);
        self.shared.last_index.store(self.inner.last_index(), Ordering::Release);
    }
}

#[derive(Debug)]
struct Inner {
    hard_state: HardState,
    snapshot: Snapshot,
    /// `ents[i]` has log index `ents[0].index + i`; `ents[0]` is the dummy.
    /// A ring buffer, so that compaction drops the compacted entries without
    /// moving the ones that stay.
    ents: VecDeque<Entry>,
}

impl Inner {
    fn offset(&self) -> u64 {
        self.ents[0].index
    }

    fn first_index(&self) -> u64 {
        self.offset() + 1
    }

    fn last_index(&self) -> u64 {
        self.offset() + self.ents.len() as u64 - 1
    }

    /// Prepares appending `n` entries from index `head`: drops the entries
    /// they replace and returns how many of them to skip because they are
    /// already compacted (`None`: all of them).
    ///
    /// Panics if they would leave a gap after the last index.
    fn make_room(&mut self, head: u64, n: usize) -> Option<usize> {
        let first = self.first_index();
        let last_new = head + n as u64 - 1;
        if last_new < first {
            // Everything is already compacted.
            return None;
        }
        let skip = first.saturating_sub(head);
        let start = head + skip;
        let offset = (start - self.offset()) as usize;
        if offset > self.ents.len() {
            let last = self.last_index();
            panic!("missing log entry [last: {last}, append at: {start}]");
        }
        self.ents.truncate(offset);
        Some(skip as usize)
    }
}

fn dummy(index: u64, term: u64) -> Entry {
    Entry { term, index, ..Entry::default() }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

impl MemoryStorage {
    /// An empty storage: only the dummy entry at index 0, term 0.
    pub fn new() -> MemoryStorage {
        MemoryStorage::new_with_entries(vec![Entry::default()])
    }

    /// A storage whose entries vector is `ents`, dummy included: `ents[0]`
    /// holds the index and term of the last compacted entry and the log is
    /// `ents[1..]`. Tests use it to start from a given log, as etcd's tests
    /// build `MemoryStorage{ents: ...}`. Panics if `ents` is empty.
    pub fn new_with_entries(mut ents: Vec<Entry>) -> MemoryStorage {
        assert!(!ents.is_empty(), "MemoryStorage needs at least the dummy entry");
        // The dummy entry keeps only its position, as after a compaction.
        ents[0] = dummy(ents[0].index, ents[0].term);
        let storage = MemoryStorage {
            inner: Arc::new(Shared {
                state: Mutex::new(Inner {
                    hard_state: HardState::default(),
                    snapshot: Snapshot::default(),
                    ents: ents.into(),
                }),
                first_index: AtomicU64::new(0),
                last_index: AtomicU64::new(0),
                calls: CallCounters::default(),
            }),
        };
        drop(storage.write());
        storage
    }

    /// An empty storage whose (empty) snapshot carries `conf_state`: the way
    /// tests give a fresh node its initial members, as etcd's `withPeers` and
    /// `withLearners` test options do.
    pub fn new_with_conf_state(conf_state: ConfState) -> MemoryStorage {
        let storage = MemoryStorage::new();
        storage.lock().snapshot.metadata.conf_state = conf_state;
        storage
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The methods panic only before they mutate, so a poisoned lock still
        // guards a consistent state.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock, for changing the entries.
    fn write(&self) -> WriteGuard<'_> {
        WriteGuard { inner: self.lock(), shared: &self.inner }
    }

    /// Persists `hard_state`; [`Storage::initial_state`] returns it.
    pub fn set_hard_state(&self, hard_state: HardState) {
        self.lock().hard_state = hard_state;
    }

    /// The persisted hard state, without counting a storage call.
    pub fn hard_state(&self) -> HardState {
        self.lock().hard_state
    }

    /// How often each [`Storage`] method has been called so far.
    pub fn call_stats(&self) -> MemoryStorageCallStats {
        let c = &self.inner.calls;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MemoryStorageCallStats {
            initial_state: load(&c.initial_state),
            first_index: load(&c.first_index),
            last_index: load(&c.last_index),
            entries: load(&c.entries),
            term: load(&c.term),
            snapshot: load(&c.snapshot),
        }
    }

    /// Replaces the whole contents with `snapshot`: the log becomes empty
    /// after the snapshot's index.
    ///
    /// Returns [`StorageError::SnapOutOfDate`] if the storage already has a
    /// snapshot at that index or a later one.
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError> {
        let mut inner = self.write();
        if inner.snapshot.metadata.index >= snapshot.metadata.index {
            return Err(StorageError::SnapOutOfDate);
        }
        inner.ents.clear();
        inner.ents.push_back(dummy(snapshot.metadata.index, snapshot.metadata.term));
        inner.snapshot = snapshot;
        Ok(())
    }

    /// Records a snapshot of the state machine as of entry `index`, with
    /// `data` its serialized state and `conf_state` the configuration at that
    /// point (pass the result of the last applied configuration change if
    /// there was one since the previous snapshot; `None` keeps the previous
    /// one). Returns the new snapshot. The entries stay until [`compact`].
    ///
    /// Returns [`StorageError::SnapOutOfDate`] if `index` is not after the
    /// current snapshot, and [`StorageError::Compacted`] if it was compacted
    /// away (its term is gone; etcd indexes out of bounds there). Panics if
    /// `index` is past the last index.
    ///
    /// [`compact`]: MemoryStorage::compact
    pub fn create_snapshot(
        &self,
        index: u64,
        conf_state: Option<&ConfState>,
        data: Bytes,
    ) -> Result<Snapshot, StorageError> {
        let mut inner = self.lock();
        if index <= inner.snapshot.metadata.index {
            return Err(StorageError::SnapOutOfDate);
        }
        let last = inner.last_index();
        if index > last {
            panic!("snapshot {index} is out of bound lastindex({last})");
        }
        let Some(i) = index.checked_sub(inner.offset()) else {
            return Err(StorageError::Compacted);
        };
        let term = inner.ents[i as usize].term;
        let meta = &mut inner.snapshot.metadata;
        meta.index = index;
        meta.term = term;
        if let Some(cs) = conf_state {
            meta.conf_state = cs.clone();
        }
        inner.snapshot.data = data;
        Ok(inner.snapshot.clone())
    }

    /// Discards the entries before `compact_index`; the entry at
    /// `compact_index` becomes the dummy, so its term stays known. The
    /// application must not compact past what it has applied.
    ///
    /// Returns [`StorageError::Compacted`] if `compact_index` is not after the
    /// current dummy entry. Panics if it is past the last index.
    pub fn compact(&self, compact_index: u64) -> Result<(), StorageError> {
        let mut inner = self.write();
        let offset = inner.offset();
        if compact_index <= offset {
            return Err(StorageError::Compacted);
        }
        let last = inner.last_index();
        if compact_index > last {
            panic!("compact {compact_index} is out of bound lastindex({last})");
        }
        let i = (compact_index - offset) as usize;
        inner.ents.drain(..i);
        let (index, term) = (inner.ents[0].index, inner.ents[0].term);
        inner.ents[0] = dummy(index, term);
        Ok(())
    }

    /// Appends `entries`, which must be contiguous, replacing any existing
    /// entries from `entries[0].index` on (a new leader overwrote them).
    /// Entries at compacted indexes are skipped.
    ///
    /// Panics if `entries` would leave a gap after the last index.
    pub fn append(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(head) = entries.first() else { return Ok(()) };
        let mut inner = self.write();
        if let Some(skip) = inner.make_room(head.index, entries.len()) {
            inner.ents.extend(entries[skip..].iter().cloned());
        }
        Ok(())
    }

    /// [`append`](MemoryStorage::append), taking the entries by value: they
    /// are moved in rather than cloned, which saves a reference count
    /// increment and decrement per entry. Pass a `Ready`'s entries with
    /// `std::mem::take(&mut ready.entries)` once nothing else needs them.
    ///
    /// Panics if `entries` would leave a gap after the last index.
    pub fn append_owned(&self, mut entries: Vec<Entry>) -> Result<(), StorageError> {
        let Some(head) = entries.first() else { return Ok(()) };
        let mut inner = self.write();
        if let Some(skip) = inner.make_room(head.index, entries.len()) {
            entries.drain(..skip);
            // Extending from a whole Vec moves the entries in one copy.
            inner.ents.extend(entries);
        }
        Ok(())
    }

    /// The entries vector including the dummy, for tests that check the
    /// layout.
    #[cfg(test)]
    pub(crate) fn entries_with_dummy(&self) -> Vec<Entry> {
        self.lock().ents.iter().cloned().collect()
    }
}

impl Storage for MemoryStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        count(&self.inner.calls.initial_state);
        let inner = self.lock();
        Ok((inner.hard_state, inner.snapshot.metadata.conf_state.clone()))
    }

    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        ents: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        count(&self.inner.calls.entries);
        let inner = self.lock();
        let offset = inner.offset();
        if lo <= offset {
            return Err(StorageError::Compacted);
        }
        let last = inner.last_index();
        if hi > last + 1 {
            panic!("entries' hi({hi}) is out of bound lastindex({last})");
        }
        if inner.ents.len() == 1 {
            // Only the dummy entry.
            return Err(StorageError::Unavailable);
        }
        assert!(lo <= hi, "invalid entries range [{lo}, {hi})");
        let (start, end) = ((lo - offset) as usize, (hi - offset) as usize);
        let n = limit_count(inner.ents.range(start..end), end - start, max_size);
        // The range is at most two contiguous runs of the ring buffer: clone
        // them slice by slice, which is faster than entry by entry.
        let (head, tail) = inner.ents.as_slices();
        let split = head.len();
        let front = &head[start.min(split)..end.min(split)];
        let back = &tail[start.saturating_sub(split)..end.saturating_sub(split)];
        ents.reserve(n);
        ents.extend_from_slice(&front[..n.min(front.len())]);
        ents.extend_from_slice(&back[..n.saturating_sub(front.len())]);
        Ok(())
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        count(&self.inner.calls.term);
        let inner = self.lock();
        let offset = inner.offset();
        if index < offset {
            return Err(StorageError::Compacted);
        }
        match inner.ents.get((index - offset) as usize) {
            Some(e) => Ok(e.term),
            None => Err(StorageError::Unavailable),
        }
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        count(&self.inner.calls.first_index);
        Ok(self.inner.first_index.load(Ordering::Acquire))
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        count(&self.inner.calls.last_index);
        Ok(self.inner.last_index.load(Ordering::Acquire))
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        count(&self.inner.calls.snapshot);
        let inner = self.lock();
        Ok(inner.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftpb::SnapshotMetadata;
    use crate::storage::limit_size;
    use prost::Message as _;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// Entries at consecutive indexes from `first`, one per term given.
    fn terms(first: u64, terms: &[u64]) -> Vec<Entry> {
        terms.iter().zip(first..).map(|(&t, i)| Entry::new(t, i, Bytes::new())).collect()
    }

    fn ids(ents: &[Entry]) -> Vec<(u64, u64)> {
        ents.iter().map(|e| (e.index, e.term)).collect()
    }

    fn snap(index: u64, term: u64, voters: &[u64], data: &'static [u8]) -> Snapshot {
        Snapshot {
            data: Bytes::from_static(data),
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state: ConfState { voters: voters.to_vec(), ..ConfState::default() },
            },
        }
    }

    fn panics(f: impl FnOnce()) -> bool {
        catch_unwind(AssertUnwindSafe(f)).is_err()
    }

    #[test]
    fn term() {
        let cases: &[(u64, Result<u64, StorageError>)] = &[
            (2, Err(StorageError::Compacted)),
            (3, Ok(3)),
            (4, Ok(4)),
            (5, Ok(5)),
            (6, Err(StorageError::Unavailable)),
        ];
        for (i, want) in cases {
            let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
            let got = s.term(*i);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "index {i}");
        }
    }

    #[test]
    fn entries() {
        let ents = terms(3, &[3, 4, 5, 6]);
        let size = |i: usize| ents[i].encoded_len() as u64;
        // (lo, hi, max size, want ids or Compacted)
        type Case = (u64, u64, u64, Result<Vec<(u64, u64)>, ()>);
        let cases: Vec<Case> = vec![
            (2, 6, u64::MAX, Err(())),
            (3, 4, u64::MAX, Err(())),
            (4, 5, u64::MAX, Ok(vec![(4, 4)])),
            (4, 6, u64::MAX, Ok(vec![(4, 4), (5, 5)])),
            (4, 7, u64::MAX, Ok(vec![(4, 4), (5, 5), (6, 6)])),
            // Even with no room at all, the first entry comes back.
            (4, 7, 0, Ok(vec![(4, 4)])),
            (4, 7, size(1) + size(2), Ok(vec![(4, 4), (5, 5)])),
            (4, 7, size(1) + size(2) + size(3) / 2, Ok(vec![(4, 4), (5, 5)])),
            (4, 7, size(1) + size(2) + size(3) - 1, Ok(vec![(4, 4), (5, 5)])),
            (4, 7, size(1) + size(2) + size(3), Ok(vec![(4, 4), (5, 5), (6, 6)])),
            (4, 4, u64::MAX, Ok(vec![])),
        ];
        for (lo, hi, max, want) in cases {
            let s = MemoryStorage::new_with_entries(ents.clone());
            match (s.entries_vec(lo, hi, max), want) {
                (Ok(got), Ok(want)) => assert_eq!(ids(&got), want, "[{lo}, {hi}) max {max}"),
                (Err(StorageError::Compacted), Err(())) => {}
                (got, want) => panic!("[{lo}, {hi}) max {max}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn entries_panics_past_last_and_is_unavailable_when_empty() {
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        assert!(panics(|| drop(s.entries_vec(4, 7, u64::MAX))));
        let empty = MemoryStorage::new();
        assert!(matches!(empty.entries_vec(1, 1, u64::MAX), Err(StorageError::Unavailable)));
    }

    #[test]
    fn last_index() {
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        assert_eq!(s.last_index().unwrap(), 5);
        s.append(&terms(6, &[5])).unwrap();
        assert_eq!(s.last_index().unwrap(), 6);
    }

    #[test]
    fn first_index() {
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        assert_eq!(s.first_index().unwrap(), 4);
        s.compact(4).unwrap();
        assert_eq!(s.first_index().unwrap(), 5);
    }

    #[test]
    fn compact() {
        // (compact index, error?, dummy index, dummy term, len with dummy)
        let cases =
            [(2, true, 3, 3, 3), (3, true, 3, 3, 3), (4, false, 4, 4, 2), (5, false, 5, 5, 1)];
        for (i, err, windex, wterm, wlen) in cases {
            let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
            let res = s.compact(i);
            assert_eq!(matches!(res, Err(StorageError::Compacted)), err, "compact {i}");
            let ents = s.entries_with_dummy();
            assert_eq!((ents[0].index, ents[0].term, ents.len()), (windex, wterm, wlen));
        }
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        assert!(panics(|| drop(s.compact(6))));
    }

    #[test]
    fn compact_drops_the_payload_of_the_new_dummy() {
        let s = MemoryStorage::new();
        s.append(&[Entry::new(1, 1, Bytes::from_static(b"a")), Entry::new(1, 2, Bytes::new())])
            .unwrap();
        s.compact(1).unwrap();
        assert_eq!(s.entries_with_dummy()[0], dummy(1, 1));
    }

    #[test]
    fn create_snapshot() {
        let cs = ConfState { voters: vec![1, 2, 3], ..ConfState::default() };
        for i in [4, 5] {
            let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
            let got = s.create_snapshot(i, Some(&cs), Bytes::from_static(b"data")).unwrap();
            assert_eq!(got, snap(i, i, &[1, 2, 3], b"data"));
            assert_eq!(s.snapshot().unwrap(), got);
        }
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        s.create_snapshot(4, Some(&cs), Bytes::new()).unwrap();
        // Compacted away.
        let compacted = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        let res = compacted.create_snapshot(2, None, Bytes::new());
        assert!(matches!(res, Err(StorageError::Compacted)));
        // Not after the existing snapshot.
        let again = s.create_snapshot(4, None, Bytes::new());
        assert!(matches!(again, Err(StorageError::SnapOutOfDate)));
        // Without a conf state, the previous one is kept.
        let next = s.create_snapshot(5, None, Bytes::new()).unwrap();
        assert_eq!(next.metadata.conf_state, cs);
        assert!(panics(|| drop(s.create_snapshot(6, None, Bytes::new()))));
    }

    #[test]
    fn append() {
        type Case = (Vec<Entry>, Vec<(u64, u64)>);
        let cases: &[Case] = &[
            (terms(1, &[1, 2]), vec![(3, 3), (4, 4), (5, 5)]),
            (terms(3, &[3, 4, 5]), vec![(3, 3), (4, 4), (5, 5)]),
            (terms(3, &[3, 6, 6]), vec![(3, 3), (4, 6), (5, 6)]),
            (terms(3, &[3, 4, 5, 5]), vec![(3, 3), (4, 4), (5, 5), (6, 5)]),
            // Skip the compacted part of the input, truncate, then append.
            (terms(2, &[3, 3, 5]), vec![(3, 3), (4, 5)]),
            // Truncate the existing entries and append.
            (terms(4, &[5]), vec![(3, 3), (4, 5)]),
            // Append right after the last entry.
            (terms(6, &[5]), vec![(3, 3), (4, 4), (5, 5), (6, 5)]),
        ];
        for (input, want) in cases {
            let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
            s.append(input).unwrap();
            assert_eq!(&ids(&s.entries_with_dummy()), want, "append {:?}", ids(input));
            let owned = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
            owned.append_owned(input.clone()).unwrap();
            assert_eq!(&ids(&owned.entries_with_dummy()), want, "append_owned {:?}", ids(input));
        }
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        assert!(panics(|| drop(s.append(&terms(7, &[5])))));
        assert!(panics(|| drop(s.append_owned(terms(7, &[5])))));
        s.append(&[]).unwrap();
        s.append_owned(Vec::new()).unwrap();
        assert_eq!(s.last_index().unwrap(), 5);
        // Entirely compacted input is ignored by both.
        s.append(&terms(1, &[1, 1])).unwrap();
        s.append_owned(terms(1, &[1, 1])).unwrap();
        assert_eq!(ids(&s.entries_with_dummy()), vec![(3, 3), (4, 4), (5, 5)]);
    }

    #[test]
    fn apply_snapshot() {
        let cs = [1, 2, 3];
        // The normal case.
        let s = MemoryStorage::new();
        s.apply_snapshot(snap(4, 4, &cs, b"data")).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (5, 4));
        assert_eq!(s.term(4).unwrap(), 4);
        assert_eq!(s.initial_state().unwrap().1.voters, cs);
        // An older snapshot is refused.
        let older = s.apply_snapshot(snap(3, 3, &cs, b"data"));
        assert!(matches!(older, Err(StorageError::SnapOutOfDate)));
        let same = s.apply_snapshot(snap(4, 4, &cs, b"data"));
        assert!(matches!(same, Err(StorageError::SnapOutOfDate)));
        // A snapshot replaces every entry.
        let s = MemoryStorage::new_with_entries(terms(3, &[3, 4, 5]));
        s.apply_snapshot(snap(10, 7, &cs, b"")).unwrap();
        assert_eq!(ids(&s.entries_with_dummy()), vec![(10, 7)]);
    }

    #[test]
    fn hard_state_and_call_stats() {
        let s = MemoryStorage::new_with_conf_state(ConfState {
            voters: vec![1, 2],
            ..ConfState::default()
        });
        let hs = HardState { term: 3, vote: 2, commit: 1 };
        s.set_hard_state(hs);
        let (got, cs) = s.initial_state().unwrap();
        assert_eq!((got, cs.voters), (hs, vec![1, 2]));
        assert_eq!(s.hard_state(), hs);
        let _ = s.term(0);
        let _ = s.first_index();
        let _ = s.last_index();
        let _ = s.snapshot();
        let _ = s.entries_vec(1, 1, 0);
        let stats = s.call_stats();
        assert_eq!(
            stats,
            MemoryStorageCallStats {
                initial_state: 1,
                first_index: 1,
                last_index: 1,
                entries: 1,
                term: 1,
                snapshot: 1
            }
        );
    }

    #[test]
    fn clones_share_state_across_threads() {
        let s = MemoryStorage::new();
        let writer = s.clone();
        std::thread::spawn(move || writer.append(&terms(1, &[1, 1, 2])).unwrap()).join().unwrap();
        assert_eq!(s.last_index().unwrap(), 3);
    }

    #[test]
    fn returned_entries_share_payloads() {
        let payload = Bytes::from(vec![7u8; 64]);
        let s = MemoryStorage::new();
        s.append(&[Entry::new(1, 1, payload.clone())]).unwrap();
        let got = s.entries_vec(1, 2, u64::MAX).unwrap();
        assert_eq!(got[0].data.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn entries_read_across_the_ring_buffer_wrap() {
        // Compacting the front and appending at the back makes the deque
        // wrap around; every range must still read like a plain vector.
        let s = MemoryStorage::new();
        let mut model: Vec<Entry> = vec![Entry::default()];
        let mut next = 1u64;
        let mut wrapped = false;
        for round in 0..40u64 {
            let batch: Vec<Entry> = (next..next + 7)
                .map(|i| Entry::new(1, i, Bytes::from(vec![i as u8; (i % 5) as usize])))
                .collect();
            next += 7;
            if round % 2 == 0 {
                s.append(&batch).unwrap();
            } else {
                s.append_owned(batch.clone()).unwrap();
            }
            model.extend(batch);
            let compact_to = model[0].index + 5;
            s.compact(compact_to).unwrap();
            let cut = (compact_to - model[0].index) as usize;
            model.drain(..cut);
            model[0] = dummy(model[0].index, model[0].term);
            assert_eq!(ids(&s.entries_with_dummy()), ids(&model));
            wrapped |= !s.lock().ents.as_slices().1.is_empty();
            let (first, last) = (model[0].index + 1, model[model.len() - 1].index);
            for lo in first..=last {
                for hi in lo..=last + 1 {
                    let want =
                        &model[(lo - model[0].index) as usize..(hi - model[0].index) as usize];
                    for max in [u64::MAX, 0, 20, 50] {
                        let got = s.entries_vec(lo, hi, max).unwrap();
                        assert_eq!(got, limit_size(want, max), "[{lo}, {hi}) max {max}");
                    }
                }
            }
        }
        assert!(wrapped, "the test must exercise a wrapped ring buffer");
    }
}
