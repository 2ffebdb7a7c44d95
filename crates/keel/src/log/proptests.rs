//! Property tests: random sequences of appends (with truncation), leader
//! appends, asynchronous and synchronous writes to storage, commits, applies,
//! snapshots and compactions, checked after every step against a model log
//! (one term per index, as Raft's Log Matching property makes it).

use super::*;
use crate::logger::{CaptureLogger, Level, Logger};
use crate::raftpb::{Entry, Snapshot, SnapshotMetadata};
use crate::storage::{MemoryStorage, Storage, StorageError, ents_size};
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;

/// The payload of the entry `(index, term)`: equal ids give equal entries,
/// and sizes vary so that size limits cut at different places.
fn entry(index: u64, term: u64) -> Entry {
    let len = ((index * 7 + term) % 13) as usize;
    Entry::new(term, index, Bytes::from(vec![(index ^ term) as u8; len]))
}

#[derive(Clone, Debug)]
enum Op {
    /// The leader appends `n` entries at a term `bump` above the current one
    /// (a new one if it truncates), after dropping `back` entries from the
    /// end (never below the commit index).
    Append { back: u64, n: u64, bump: u64 },
    /// A follower receives an append: after `prev` (counted back from the
    /// end, not below the commit index), `keep` entries it already has, then
    /// `n` new ones (of a new term if they replace entries). `bad_prev`
    /// breaks the match; `commit` is how far the leader's commit index
    /// reaches into the slice.
    MaybeAppend { back: u64, keep: u64, n: u64, bump: u64, bad_prev: bool, commit: u64 },
    /// Hand the unstable entries and snapshot out to be written.
    Accept,
    /// Complete every write handed out, in order, then acknowledge each.
    Persist,
    /// Hand out and complete a write at once (synchronous storage).
    PersistSync,
    /// Commit `back` entries before the end (through `maybe_commit` when
    /// `via_term`, which must agree with the model's term).
    Commit { back: u64, via_term: bool },
    /// Hand committed entries to the application.
    Apply { allow_unstable: bool },
    /// The application finishes the oldest batch it was given.
    Applied,
    /// A snapshot from a new leader, `ahead` entries past the commit index.
    Restore { ahead: u64 },
    /// The application snapshots and compacts storage `back` entries before
    /// what it may compact at most.
    Compact { back: u64 },
    /// Read `lo..hi` (fractions of the log) with a size limit.
    Read { lo: u8, hi: u8, max: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u64, 0..5u64, 0..2u64).prop_map(|(back, n, bump)| Op::Append { back, n, bump }),
        3 => (0..4u64, 0..3u64, 0..4u64, 0..2u64, proptest::bool::weighted(0.2), 0..6u64)
            .prop_map(|(back, keep, n, bump, bad_prev, commit)| Op::MaybeAppend {
                back, keep, n, bump, bad_prev, commit
            }),
        2 => Just(Op::Accept),
        2 => Just(Op::Persist),
        2 => Just(Op::PersistSync),
        3 => (0..4u64, any::<bool>()).prop_map(|(back, via_term)| Op::Commit { back, via_term }),
        3 => any::<bool>().prop_map(|allow_unstable| Op::Apply { allow_unstable }),
        3 => Just(Op::Applied),
        1 => (0..6u64).prop_map(|ahead| Op::Restore { ahead }),
        1 => (0..3u64).prop_map(|back| Op::Compact { back }),
        2 => (any::<u8>(), any::<u8>(), prop_oneof![Just(0), 0..64u64, Just(NO_LIMIT)])
            .prop_map(|(lo, hi, max)| Op::Read { lo, hi, max }),
    ]
}

/// A write handed out by a `Ready`: a snapshot and/or entries.
struct Write {
    snapshot: Option<Snapshot>,
    /// Shared with the log's unstable tail until the write completes, as a
    /// `Ready`'s are.
    entries: SharedEntries,
}

/// An application batch: applied up to `index`, releasing `size` bytes.
struct Batch {
    index: u64,
    size: u64,
}

struct Harness {
    log: RaftLog<MemoryStorage>,
    storage: MemoryStorage,
    /// The model: the log is `base..=base + terms.len() - 1`, with the term of
    /// index `base + i` at `terms[i]`; `base` is a snapshot or the start.
    base: u64,
    terms: Vec<u64>,
    term: u64,
    writes: VecDeque<Write>,
    batches: VecDeque<Batch>,
}

impl Harness {
    fn new() -> Harness {
        let storage = MemoryStorage::new();
        let logger = CaptureLogger::new();
        // The log lines are covered elsewhere; keep only what matters here.
        logger.set_level(Some(Level::Fatal));
        let logger: Arc<dyn Logger> = Arc::new(logger);
        let log = RaftLog::with_size(storage.clone(), logger, 40).unwrap();
        Harness {
            log,
            storage,
            base: 0,
            terms: vec![0],
            term: 1,
            writes: VecDeque::new(),
            batches: VecDeque::new(),
        }
    }

    fn last(&self) -> u64 {
        self.base + self.terms.len() as u64 - 1
    }

    fn model_term(&self, index: u64) -> u64 {
        self.terms[(index - self.base) as usize]
    }

    /// Truncates the model after `index` and appends `n` entries of `term`.
    fn model_append(&mut self, after: u64, n: u64, term: u64) -> Vec<Entry> {
        self.terms.truncate((after - self.base + 1) as usize);
        self.terms.extend(std::iter::repeat_n(term, n as usize));
        (after + 1..=after + n).map(|i| entry(i, term)).collect()
    }

    fn step(&mut self, op: &Op) {
        let committed = self.log.committed();
        match *op {
            Op::Append { n: 0, .. } => assert_eq!(self.log.append(Vec::new()), self.last()),
            Op::Append { back, n, bump } => {
                let after = self.last().saturating_sub(back).max(committed);
                // Log Matching: a log rewritten under the same term would give
                // one id two histories, so rewrites come from a new term.
                self.term += if after < self.last() { 1 } else { bump };
                let ents = self.model_append(after, n, self.term);
                let last = self.log.append(ents);
                assert_eq!(last, self.last());
            }
            Op::MaybeAppend { back, keep, n, bump, bad_prev, commit } => {
                let prev_index = self.last().saturating_sub(back).max(committed);
                let prev_term = self.model_term(prev_index) + u64::from(bad_prev);
                let keep = keep.min(self.last() - prev_index);
                let mut ents: Vec<Entry> = (prev_index + 1..=prev_index + keep)
                    .map(|i| entry(i, self.model_term(i)))
                    .collect();
                let first_new = prev_index + keep + 1;
                let new_term = self.term + if first_new <= self.last() { 1 } else { bump };
                ents.extend((first_new..first_new + n).map(|i| entry(i, new_term)));
                let last_new = prev_index + keep + n;
                let slice_terms: Vec<u64> = ents.iter().map(|e| e.term).collect();
                let term_at = |i: u64| slice_terms[(i - prev_index - 1) as usize];
                let leader_commit = (committed + commit).min(last_new + 1);
                let prev = EntryId::new(prev_term, prev_index);
                let Ok(slice) = LogSlice::new(new_term, prev, ents) else {
                    assert!(bad_prev, "a well-formed slice was refused");
                    return;
                };
                let got = self.log.maybe_append(slice, leader_commit);
                if bad_prev {
                    assert_eq!(got, None);
                    assert_eq!(self.log.committed(), committed);
                    return;
                }
                assert_eq!(got, Some(last_new));
                self.term = new_term;
                // Entries the log already has stay; from the first one it
                // lacks (or has with another term), the slice replaces it.
                let conflict = (prev_index + 1..=last_new)
                    .find(|&i| i > self.last() || self.model_term(i) != term_at(i));
                if let Some(from) = conflict {
                    self.terms.truncate((from - self.base) as usize);
                    self.terms.extend((from..=last_new).map(term_at));
                }
                assert_eq!(self.log.committed(), committed.max(leader_commit.min(last_new)));
            }
            Op::Accept => self.accept(),
            Op::Persist => self.persist(),
            Op::PersistSync => {
                self.accept();
                self.persist();
            }
            Op::Commit { back, via_term } => {
                let to = self.last().saturating_sub(back).max(self.base);
                if via_term {
                    let moved = self.log.maybe_commit(EntryId::new(self.model_term(to), to));
                    assert_eq!(moved, to > committed && self.model_term(to) != 0);
                    let wrong = EntryId::new(self.model_term(to) + 1, to);
                    assert!(!self.log.maybe_commit(wrong));
                } else {
                    self.log.commit_to(to);
                    assert_eq!(self.log.committed(), committed.max(to));
                }
            }
            Op::Apply { allow_unstable } => {
                let has = self.log.has_next_committed_ents(allow_unstable);
                let ents = self.log.next_committed_ents(allow_unstable);
                assert_eq!(has, !ents.is_empty());
                let Some(last) = ents.last() else { return };
                for (e, i) in ents.iter().zip(self.log.applying() + 1..) {
                    assert_eq!(*e, entry(i, self.model_term(i)));
                }
                assert!(last.index <= self.log.max_appliable_index(allow_unstable));
                let size = ents_size(&ents);
                let room = self.log.max_applying_ents_size() - self.log.applying_ents_size();
                assert!(ents.len() == 1 || size <= room, "{} entries of {size} bytes", ents.len());
                self.log.accept_applying(last.index, size, allow_unstable);
                self.batches.push_back(Batch { index: last.index, size });
            }
            Op::Applied => {
                if let Some(b) = self.batches.pop_front() {
                    self.log.applied_to(b.index, b.size);
                }
            }
            Op::Restore { ahead } => {
                // A snapshot the log does not have (else etcd fast-forwards the
                // commit index instead of restoring).
                self.term += 1;
                let index = committed + 1 + ahead;
                let snapshot = Snapshot {
                    metadata: SnapshotMetadata { index, term: self.term, ..Default::default() },
                    ..Snapshot::default()
                };
                self.log.restore(snapshot);
                self.base = index;
                self.terms = vec![self.term];
            }
            Op::Compact { back } => {
                let stable_last = self.storage.last_index().unwrap();
                let most =
                    self.log.applied().min(self.log.unstable().offset() - 1).min(stable_last);
                let to = most.saturating_sub(back);
                if to < self.storage.first_index().unwrap() {
                    return;
                }
                self.storage.create_snapshot(to, None, Bytes::from_static(b"state")).unwrap();
                self.storage.compact(to).unwrap();
            }
            Op::Read { lo, hi, max } => self.read(lo, hi, max),
        }
    }

    fn accept(&mut self) {
        let snapshot = self.log.next_unstable_snapshot().cloned();
        let want = self.log.next_unstable_ents().to_vec();
        let entries = self.log.take_next_unstable_ents();
        assert_eq!(entries, want);
        self.log.accept_unstable();
        if snapshot.is_some() || !entries.is_empty() {
            self.writes.push_back(Write { snapshot, entries });
        }
        assert!(self.log.next_unstable_ents().is_empty());
        assert!(self.log.next_unstable_snapshot().is_none());
    }

    /// Completes every pending write, then acknowledges them in order: the
    /// acknowledgements are then true of the storage, whatever the log did
    /// in the meantime.
    fn persist(&mut self) {
        let writes: Vec<Write> = self.writes.drain(..).collect();
        if writes.iter().any(|w| w.snapshot.is_some()) {
            // The apply thread finishes earlier batches before a snapshot.
            while let Some(b) = self.batches.pop_front() {
                self.log.applied_to(b.index, b.size);
            }
        }
        for w in &writes {
            if let Some(s) = &w.snapshot {
                self.storage.apply_snapshot(s.clone()).unwrap();
            }
            self.storage.append(&w.entries).unwrap();
        }
        for w in &writes {
            if let Some(s) = &w.snapshot {
                // As etcd's appliedSnap does.
                self.log.stable_snap_to(s.metadata.index);
                self.log.applied_to(s.metadata.index, 0);
            }
            if let Some(last) = w.entries.last() {
                self.log.stable_to(EntryId::of(last));
            }
        }
    }

    fn read(&self, lo: u8, hi: u8, max: u64) {
        let (first, last) = (self.log.first_index(), self.log.last_index());
        let span = last + 1 - first;
        let lo = first + span * u64::from(lo) / 255;
        let hi = lo + (last + 1 - lo) * u64::from(hi) / 255;
        let got = self.log.slice(lo, hi, max).unwrap();
        check_limited(&got, lo, hi, max, |i| entry(i, self.model_term(i)));

        let (sfirst, slast) =
            (self.storage.first_index().unwrap(), self.storage.last_index().unwrap());
        if slast >= sfirst {
            let got = self.storage.entries_vec(sfirst, slast + 1, max).unwrap();
            let all = self.storage.entries_vec(sfirst, slast + 1, NO_LIMIT).unwrap();
            check_limited(&got, sfirst, slast + 1, max, |i| all[(i - sfirst) as usize].clone());
        }
    }

    fn check(&self) {
        let log = &self.log;
        log.unstable().check_invariants();
        let (first, last) = (log.first_index(), log.last_index());
        assert!(log.applied() <= log.applying(), "{log}");
        assert!(log.applying() <= log.committed(), "{log}");
        assert!(log.committed() <= last, "{log}");
        assert_eq!(last, self.last(), "{log}");
        assert!(first > self.base, "first {first} base {}", self.base);
        // One contiguous log, one term per index, from the entry before the
        // first one to the last.
        for i in first - 1..=last {
            assert_eq!(log.term(i).unwrap(), self.model_term(i), "term({i}) of {log}");
        }
        assert!(matches!(log.term(last + 1), Err(StorageError::Unavailable)));
        if first >= 2 {
            assert!(matches!(log.term(first - 2), Err(StorageError::Compacted)));
        }
        let all = log.all_entries();
        assert_eq!(all.len() as u64, last + 1 - first);
        for (e, i) in all.iter().zip(first..) {
            assert_eq!(*e, entry(i, self.model_term(i)));
        }
        assert_eq!(log.last_entry_id(), EntryId::new(self.model_term(last), last));
        // What is stable is really in storage.
        if log.unstable().snapshot().is_none() {
            let (sfirst, slast) =
                (self.storage.first_index().unwrap(), self.storage.last_index().unwrap());
            assert!(log.unstable().offset() <= slast + 1, "gap before the unstable entries");
            for i in (sfirst - 1).max(self.base)..log.unstable().offset() {
                assert_eq!(self.storage.term(i).unwrap(), self.model_term(i), "stored term({i})");
            }
        }
        for allow in [false, true] {
            let has = log.has_next_committed_ents(allow);
            assert_eq!(has, !log.next_committed_ents(allow).is_empty());
        }
    }
}

/// `got`, read from `lo..hi` with limit `max`, is a prefix of the range that
/// is non-empty when the range is, within `max` unless it is one entry, and
/// as long as `max` allows.
fn check_limited(got: &[Entry], lo: u64, hi: u64, max: u64, want: impl Fn(u64) -> Entry) {
    assert_eq!(got.is_empty(), lo == hi, "[{lo}, {hi}) @ {max}");
    assert!(got.len() as u64 <= hi - lo);
    for (e, i) in got.iter().zip(lo..) {
        assert_eq!(*e, want(i), "[{lo}, {hi}) @ {max}");
    }
    let size = ents_size(got);
    assert!(got.len() <= 1 || size <= max, "{} entries, {size} bytes > {max}", got.len());
    let end = lo + got.len() as u64;
    if end < hi && !got.is_empty() {
        let next = ents_size(std::slice::from_ref(&want(end)));
        assert!(size + next > max, "[{lo}, {hi}) @ {max} stopped early at {end}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness::new();
        for op in &ops {
            h.step(op);
            h.check();
        }
    }

    /// `MemoryStorage` alone against a model: appends with truncation,
    /// compactions and snapshots keep one contiguous log, and reads honour
    /// their size limit.
    #[test]
    fn memory_storage_matches_model(
        steps in proptest::collection::vec((0..4u8, 0..6u64, 0..4u64, 0..80u64), 1..60),
    ) {
        let storage = MemoryStorage::new();
        // Model: terms of indexes base..; base is the dummy.
        let (mut base, mut terms) = (0u64, vec![0u64]);
        let mut term = 1;
        for (kind, a, b, max) in steps {
            let last = base + terms.len() as u64 - 1;
            match kind {
                0 => {
                    // Append b entries after last - a (possibly before base).
                    let after = last.saturating_sub(a);
                    term += 1;
                    let ents: Vec<Entry> =
                        (after + 1..=after + b).map(|i| entry(i, term)).collect();
                    storage.append(&ents).unwrap();
                    if b > 0 && after + b > base {
                        let start = after.max(base);
                        terms.truncate((start - base + 1) as usize);
                        terms.extend((start + 1..=after + b).map(|_| term));
                    }
                }
                1 => {
                    let to = last.saturating_sub(a);
                    let res = storage.compact(to);
                    if to <= base {
                        prop_assert!(matches!(res, Err(StorageError::Compacted)));
                    } else {
                        res.unwrap();
                        terms.drain(..(to - base) as usize);
                        base = to;
                    }
                }
                2 => {
                    let to = last.saturating_sub(a);
                    let snap_index = storage.snapshot().unwrap().metadata.index;
                    match storage.create_snapshot(to, None, Bytes::new()) {
                        Ok(s) => {
                            prop_assert!(to > snap_index);
                            prop_assert_eq!(s.metadata.term, terms[(to - base) as usize]);
                        }
                        Err(StorageError::SnapOutOfDate) => prop_assert!(to <= snap_index),
                        Err(StorageError::Compacted) => prop_assert!(to < base),
                        Err(err) => prop_assert!(false, "{}", err),
                    }
                }
                _ => {
                    let index = last + a;
                    let s = Snapshot {
                        metadata: SnapshotMetadata { index, term, ..Default::default() },
                        ..Snapshot::default()
                    };
                    let snap_index = storage.snapshot().unwrap().metadata.index;
                    match storage.apply_snapshot(s) {
                        Ok(()) => {
                            base = index;
                            terms = vec![term];
                        }
                        Err(StorageError::SnapOutOfDate) => prop_assert!(index <= snap_index),
                        Err(err) => prop_assert!(false, "{}", err),
                    }
                }
            }
            let (first, last) = (storage.first_index().unwrap(), storage.last_index().unwrap());
            prop_assert_eq!(first, base + 1);
            prop_assert_eq!(last, base + terms.len() as u64 - 1);
            for i in base..=last {
                prop_assert_eq!(storage.term(i).unwrap(), terms[(i - base) as usize]);
            }
            if last >= first {
                let lo = first + (last - first) * b / 3;
                let got = storage.entries_vec(lo, last + 1, max).unwrap();
                check_limited(&got, lo, last + 1, max, |i| entry(i, terms[(i - base) as usize]));
            }
        }
    }
}
