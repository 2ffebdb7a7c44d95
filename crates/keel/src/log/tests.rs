//! Table tests for [`RaftLog`], covering what etcd-raft's `log_test.go` does.

use super::*;
use crate::logger::{CaptureLogger, Logger};
use crate::raftpb::{Entry, Snapshot, SnapshotMetadata};
use crate::storage::{MemoryStorage, Storage, StorageError, ents_size};
use bytes::Bytes;
use prost::Message as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Entries at consecutive indexes from `first`, one per term given.
fn terms(first: u64, terms: &[u64]) -> Vec<Entry> {
    terms.iter().zip(first..).map(|(&t, i)| Entry::new(t, i, Bytes::new())).collect()
}

/// Entries at consecutive indexes from `first`, with terms `from..to`.
fn term_range(first: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..to).zip(first..).map(|(t, i)| Entry::new(t, i, Bytes::new())).collect()
}

fn ids(ents: &[Entry]) -> Vec<(u64, u64)> {
    ents.iter().map(|e| (e.index, e.term)).collect()
}

fn snap(index: u64, term: u64) -> Snapshot {
    Snapshot {
        metadata: SnapshotMetadata { index, term, ..SnapshotMetadata::default() },
        ..Snapshot::default()
    }
}

fn logger() -> Arc<dyn Logger> {
    Arc::new(CaptureLogger::new())
}

fn new_log(storage: MemoryStorage) -> RaftLog<MemoryStorage> {
    RaftLog::new(storage, logger()).unwrap()
}

fn new_log_with_size(storage: MemoryStorage, max: u64) -> RaftLog<MemoryStorage> {
    RaftLog::with_size(storage, logger(), max).unwrap()
}

/// A log over a storage holding `snapshot` and nothing else.
fn log_after_snapshot(index: u64, term: u64) -> (MemoryStorage, RaftLog<MemoryStorage>) {
    let storage = MemoryStorage::new();
    storage.apply_snapshot(snap(index, term)).unwrap();
    (storage.clone(), new_log(storage))
}

fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[test]
fn find_conflict() {
    let cases: Vec<(Vec<Entry>, u64)> = vec![
        // No conflict, empty.
        (vec![], 0),
        // No conflict.
        (terms(1, &[1, 2, 3]), 0),
        (terms(2, &[2, 3]), 0),
        (terms(3, &[3]), 0),
        // No conflict, but new entries.
        (terms(1, &[1, 2, 3, 4, 4]), 4),
        (terms(2, &[2, 3, 4, 5]), 4),
        (terms(3, &[3, 4, 4]), 4),
        (terms(4, &[4, 4]), 4),
        // Conflicts with existing entries.
        (terms(1, &[4, 4]), 1),
        (terms(2, &[1, 4, 4]), 2),
        (terms(3, &[1, 2, 4, 4]), 3),
    ];
    for (ents, want) in cases {
        let mut log = new_log(MemoryStorage::new());
        log.append(terms(1, &[1, 2, 3]));
        assert_eq!(log.find_conflict(&ents), want, "{:?}", ids(&ents));
    }
}

#[test]
fn find_conflict_logs_like_etcd() {
    let capture = CaptureLogger::new();
    let mut log = RaftLog::new(MemoryStorage::new(), Arc::new(capture.clone())).unwrap();
    log.append(terms(1, &[1, 2, 3]));
    assert_eq!(log.find_conflict(&terms(2, &[1, 4])), 2);
    assert_eq!(log.find_conflict(&terms(4, &[4])), 4);
    assert_eq!(
        capture.take(),
        "INFO found conflict at index 2 [existing term: 2, conflicting term: 1]\n"
    );
}

#[test]
fn find_conflict_by_term() {
    // (log: index of the snapshot and terms from there, index, term, want)
    let cases: &[(u64, &[u64], u64, u64, u64)] = &[
        // The log starts at index 1.
        (0, &[0, 2, 2, 5, 5, 5], 100, 2, 100), // Unavailable
        (0, &[0, 2, 2, 5, 5, 5], 5, 6, 5),
        (0, &[0, 2, 2, 5, 5, 5], 5, 5, 5),
        (0, &[0, 2, 2, 5, 5, 5], 5, 4, 2),
        (0, &[0, 2, 2, 5, 5, 5], 5, 2, 2),
        (0, &[0, 2, 2, 5, 5, 5], 5, 1, 0),
        (0, &[0, 2, 2, 5, 5, 5], 1, 2, 1),
        (0, &[0, 2, 2, 5, 5, 5], 1, 1, 0),
        (0, &[0, 2, 2, 5, 5, 5], 0, 0, 0),
        // A log with compacted entries.
        (10, &[3, 3, 3, 4, 4, 4], 30, 3, 30), // Unavailable
        (10, &[3, 3, 3, 4, 4, 4], 14, 9, 14),
        (10, &[3, 3, 3, 4, 4, 4], 14, 4, 14),
        (10, &[3, 3, 3, 4, 4, 4], 14, 3, 12),
        (10, &[3, 3, 3, 4, 4, 4], 14, 2, 9),
        (10, &[3, 3, 3, 4, 4, 4], 11, 5, 11),
        (10, &[3, 3, 3, 4, 4, 4], 10, 5, 10),
        (10, &[3, 3, 3, 4, 4, 4], 10, 3, 10),
        (10, &[3, 3, 3, 4, 4, 4], 10, 2, 9),
        (10, &[3, 3, 3, 4, 4, 4], 9, 2, 9), // Compacted
        (10, &[3, 3, 3, 4, 4, 4], 4, 2, 4), // Compacted
        (10, &[3, 3, 3, 4, 4, 4], 0, 0, 0), // Compacted
    ];
    for &(snap_index, log_terms, index, term, want) in cases {
        let storage = MemoryStorage::new();
        if snap_index > 0 {
            storage.apply_snapshot(snap(snap_index, log_terms[0])).unwrap();
        }
        let mut log = new_log(storage);
        log.append(terms(snap_index + 1, &log_terms[1..]));
        let (got, got_term) = log.find_conflict_by_term(index, term);
        assert_eq!(got, want, "find_conflict_by_term({index}, {term})");
        assert_eq!(got_term, log.zero_term_on_out_of_bounds(log.term(got)));
    }
}

#[test]
fn is_up_to_date() {
    let mut log = new_log(MemoryStorage::new());
    log.append(terms(1, &[1, 2, 3]));
    let last = log.last_index();
    let cases = [
        // A greater term wins whatever the index.
        (last - 1, 4, true),
        (last, 4, true),
        (last + 1, 4, true),
        // A smaller term loses whatever the index.
        (last - 1, 2, false),
        (last, 2, false),
        (last + 1, 2, false),
        // With equal terms, an equal or larger index wins.
        (last - 1, 3, false),
        (last, 3, true),
        (last + 1, 3, true),
    ];
    for (index, term, want) in cases {
        assert_eq!(log.is_up_to_date(EntryId::new(term, index)), want, "({index}, {term})");
    }
}

#[test]
fn append() {
    // (to append, want last index, want log, want unstable offset)
    let cases: Vec<(Vec<Entry>, u64, Vec<Entry>, u64)> = vec![
        (vec![], 2, terms(1, &[1, 2]), 3),
        (terms(3, &[2]), 3, terms(1, &[1, 2, 2]), 3),
        // Conflicts with index 1.
        (terms(1, &[2]), 1, terms(1, &[2]), 1),
        // Conflicts with index 2.
        (terms(2, &[3, 3]), 3, terms(1, &[1, 3, 3]), 2),
    ];
    for (ents, windex, wents, woffset) in cases {
        let storage = MemoryStorage::new();
        storage.append(&terms(1, &[1, 2])).unwrap();
        let mut log = new_log(storage);
        assert_eq!(log.append(ents), windex);
        assert_eq!(ids(&log.entries(1, NO_LIMIT).unwrap()), ids(&wents));
        assert_eq!(log.unstable().offset(), woffset);
    }
}

#[test]
fn append_below_commit_panics() {
    let mut log = new_log(MemoryStorage::new());
    log.append(terms(1, &[1, 1, 1]));
    log.commit_to(2);
    assert!(panics(|| {
        log.append(terms(2, &[2]));
    }));
}

/// If the slice's previous entry matches the log, conflicting entries are
/// replaced, new ones appended and the commit index raised to what the leader
/// committed, but not past the slice; otherwise nothing happens.
#[test]
fn maybe_append() {
    let (last_index, last_term, commit) = (3u64, 3u64, 1u64);
    let id = EntryId::new;
    // (prev, committed, entries, want last new, want append, want commit,
    // want panic)
    type Case = (EntryId, u64, Vec<Entry>, Option<u64>, u64, bool);
    let cases: Vec<Case> = vec![
        // No match: the term differs.
        (
            id(last_term - 1, last_index),
            last_index,
            terms(last_index + 1, &[4]),
            None,
            commit,
            false,
        ),
        // No match: the index is out of bounds.
        (
            id(last_term, last_index + 1),
            last_index,
            terms(last_index + 2, &[4]),
            None,
            commit,
            false,
        ),
        // Match with the last entry.
        (id(last_term, last_index), last_index, vec![], Some(last_index), last_index, false),
        // Do not commit past the slice.
        (id(last_term, last_index), last_index + 1, vec![], Some(last_index), last_index, false),
        // Commit up to what the leader committed.
        (
            id(last_term, last_index),
            last_index - 1,
            vec![],
            Some(last_index),
            last_index - 1,
            false,
        ),
        // Never lower the commit index.
        (id(last_term, last_index), 0, vec![], Some(last_index), commit, false),
        (id(0, 0), last_index, vec![], Some(0), commit, false),
        (id(last_term, last_index), last_index, terms(4, &[4]), Some(4), last_index, false),
        (id(last_term, last_index), last_index + 1, terms(4, &[4]), Some(4), 4, false),
        (id(last_term, last_index), last_index + 2, terms(4, &[4]), Some(4), 4, false),
        (id(last_term, last_index), last_index + 2, terms(4, &[4, 4]), Some(5), 5, false),
        // Match with an entry in the middle.
        (id(last_term - 1, last_index - 1), last_index, terms(3, &[4]), Some(3), 3, false),
        (id(last_term - 2, last_index - 2), last_index, terms(2, &[4]), Some(2), 2, false),
        // Conflict with a committed entry.
        (id(last_term - 3, last_index - 3), last_index, terms(1, &[4]), Some(1), 1, true),
        (id(last_term - 2, last_index - 2), last_index, terms(2, &[4, 4]), Some(3), 3, false),
    ];
    for (prev, committed, ents, wlast, wcommit, wpanic) in cases {
        let what = format!("prev {prev} committed {committed} ents {:?}", ids(&ents));
        let a = LogSlice::new(100, prev, ents.clone()).unwrap();
        let mut log = new_log(MemoryStorage::new());
        log.append(terms(1, &[1, 2, 3]));
        log.set_committed(commit);
        let res = catch_unwind(AssertUnwindSafe(|| log.maybe_append(a, committed)));
        let Ok(got) = res else {
            assert!(wpanic, "{what}: unexpected panic");
            continue;
        };
        assert!(!wpanic, "{what}: no panic");
        assert_eq!(got, wlast, "{what}");
        assert_eq!(log.committed(), wcommit, "{what}");
        if got.is_some() && !ents.is_empty() {
            let last = log.last_index();
            let tail = log.slice(last - ents.len() as u64 + 1, last + 1, NO_LIMIT).unwrap();
            assert_eq!(tail, ents, "{what}");
        }
    }
}

/// Everything keeps working after the storage is compacted under the log.
#[test]
fn compaction_side_effects() {
    // 750 entries in storage and 250 unstable, entry i at term i.
    let (last_index, unstable_index) = (1000u64, 750u64);
    let storage = MemoryStorage::new();
    storage.append(&term_range(1, 1, unstable_index + 1)).unwrap();
    let mut log = new_log(storage.clone());
    log.append(term_range(unstable_index + 1, unstable_index + 1, last_index + 1));
    assert!(log.maybe_commit(log.last_entry_id()));
    log.applied_to(log.committed(), 0);

    let offset = 500;
    storage.compact(offset).unwrap();
    assert_eq!(log.last_index(), last_index);
    for j in offset..=log.last_index() {
        assert_eq!(log.term(j).unwrap(), j);
        assert!(log.match_term(EntryId::new(j, j)));
    }
    let unstable = log.next_unstable_ents();
    assert_eq!(unstable.len(), 250);
    assert_eq!(unstable[0].index, 751);

    let prev = log.last_index();
    log.append(vec![Entry::new(prev + 1, prev + 1, Bytes::new())]);
    assert_eq!(log.last_index(), prev + 1);
    assert_eq!(log.entries(log.last_index(), NO_LIMIT).unwrap().len(), 1);
}

/// The fixture of the apply tests: snapshot at 3, entry 4 stable, 5 and 6
/// unstable, committed up to 5.
fn apply_fixture(max: u64) -> RaftLog<MemoryStorage> {
    let storage = MemoryStorage::new();
    storage.apply_snapshot(snap(3, 1)).unwrap();
    let ents = terms(4, &[1, 1, 1]);
    storage.append(&ents[..1]).unwrap();
    let mut log = new_log_with_size(storage, max);
    log.append(ents);
    log.stable_to(EntryId::new(1, 4));
    log.maybe_commit(EntryId::new(1, 5));
    log
}

/// (applied, applying, allow unstable, paused, with snapshot, want entries)
type NextCase = (u64, u64, bool, bool, bool, Vec<(u64, u64)>);

fn next_committed_cases() -> Vec<NextCase> {
    let (e4, e5) = ((4, 1), (5, 1));
    vec![
        (3, 3, true, false, false, vec![e4, e5]),
        (3, 4, true, false, false, vec![e5]),
        (3, 5, true, false, false, vec![]),
        (4, 4, true, false, false, vec![e5]),
        (4, 5, true, false, false, vec![]),
        (5, 5, true, false, false, vec![]),
        // Unstable entries not allowed.
        (3, 3, false, false, false, vec![e4]),
        (3, 4, false, false, false, vec![]),
        (3, 5, false, false, false, vec![]),
        (4, 4, false, false, false, vec![]),
        (4, 5, false, false, false, vec![]),
        (5, 5, false, false, false, vec![]),
        // Paused.
        (3, 3, true, true, false, vec![]),
        // A snapshot is pending.
        (3, 3, true, false, true, vec![]),
    ]
}

#[test]
fn has_next_and_next_committed_ents() {
    for (applied, applying, allow_unstable, paused, with_snap, want) in next_committed_cases() {
        let mut log = apply_fixture(NO_LIMIT);
        log.applied_to(applied, 0);
        log.accept_applying(applying, 0, allow_unstable);
        log.set_applying_ents_paused(paused);
        if with_snap {
            log.restore(snap(4, 1));
        }
        let what = format!("applied {applied} applying {applying} unstable {allow_unstable}");
        assert_eq!(log.has_next_committed_ents(allow_unstable), !want.is_empty(), "{what}");
        assert_eq!(ids(&log.next_committed_ents(allow_unstable)), want, "{what}");
    }
}

#[test]
fn accept_applying() {
    let max = 100;
    // (index, allow unstable, size, want paused)
    let cases = [
        (3, true, max - 1, true),
        (3, true, max, true),
        (3, true, max + 1, true),
        (4, true, max - 1, true),
        (4, true, max, true),
        (4, true, max + 1, true),
        (5, true, max - 1, false),
        (5, true, max, true),
        (5, true, max + 1, true),
        // Unstable entries not allowed.
        (3, false, max - 1, true),
        (3, false, max, true),
        (3, false, max + 1, true),
        (4, false, max - 1, false),
        (4, false, max, true),
        (4, false, max + 1, true),
        (5, false, max - 1, false),
        (5, false, max, true),
        (5, false, max + 1, true),
    ];
    for (index, allow_unstable, size, want) in cases {
        let mut log = apply_fixture(max);
        log.applied_to(3, 0);
        log.accept_applying(index, size, allow_unstable);
        assert_eq!(log.applying_ents_paused(), want, "{index} {allow_unstable} {size}");
    }
}

#[test]
fn applied_to() {
    let (max, overshoot) = (100, 5);
    // (index, size, want applying size, want paused)
    let cases = [
        // Apply some of the entries in progress (applying is 5).
        (4, overshoot - 1, max + 1, true),
        (4, overshoot, max, true),
        (4, overshoot + 1, max - 1, false),
        // Apply all of them.
        (5, overshoot - 1, max + 1, true),
        (5, overshoot, max, true),
        (5, overshoot + 1, max - 1, false),
        // Release every outstanding byte.
        (4, max + overshoot, 0, false),
        // Release more than outstanding: no underflow.
        (4, max + overshoot + 1, 0, false),
    ];
    for (index, size, wsize, wpaused) in cases {
        let mut log = apply_fixture(max);
        log.applied_to(3, 0);
        log.accept_applying(5, max + overshoot, false);
        log.applied_to(index, size);
        assert_eq!((log.applied(), log.applying()), (index, 5));
        assert_eq!((log.applying_ents_size(), log.applying_ents_paused()), (wsize, wpaused));
    }
}

#[test]
fn apply_cursor_misuse_panics() {
    let mut log = apply_fixture(NO_LIMIT);
    assert!(panics(|| log.applied_to(6, 0)));
    let mut log = apply_fixture(NO_LIMIT);
    log.applied_to(4, 0);
    assert!(panics(|| log.applied_to(3, 0)));
    let mut log = apply_fixture(NO_LIMIT);
    assert!(panics(|| log.accept_applying(6, 0, true)));
}

#[test]
fn next_committed_ents_respects_the_size_bound() {
    let storage = MemoryStorage::new();
    let mut log = new_log_with_size(storage, 1);
    log.append(terms(1, &[1, 1, 1]));
    log.commit_to(3);
    // At least one entry comes out even if it alone exceeds the bound.
    let ents = log.next_committed_ents(true);
    assert_eq!(ids(&ents), vec![(1, 1)]);
    log.accept_applying(1, ents_size(&ents), true);
    assert!(log.applying_ents_paused());
    assert!(log.next_committed_ents(true).is_empty());
    log.applied_to(1, ents_size(&ents));
    assert_eq!(ids(&log.next_committed_ents(true)), vec![(2, 1)]);
}

#[test]
fn next_unstable_ents() {
    let previous = terms(1, &[1, 2]);
    for (unstable_from, want) in [(3, vec![]), (1, previous.clone())] {
        // Stable entries in storage, the rest in the log.
        let storage = MemoryStorage::new();
        storage.append(&previous[..unstable_from - 1]).unwrap();
        let mut log = new_log(storage);
        log.append(previous[unstable_from - 1..].to_vec());
        let ents = log.next_unstable_ents().to_vec();
        assert_eq!(log.has_next_unstable_ents(), !ents.is_empty());
        if let Some(last) = ents.last() {
            log.stable_to(EntryId::of(last));
        }
        assert_eq!(ents, want);
        assert_eq!(log.unstable().offset(), 3);
        assert!(!log.has_next_or_in_progress_unstable_ents());
    }
}

#[test]
fn accept_unstable_hands_entries_out_once() {
    let mut log = new_log(MemoryStorage::new());
    log.append(terms(1, &[1, 1]));
    log.accept_unstable();
    assert!(!log.has_next_unstable_ents());
    assert!(log.has_next_or_in_progress_unstable_ents());
    log.append(terms(3, &[1]));
    assert_eq!(ids(log.next_unstable_ents()), vec![(3, 1)]);
}

#[test]
fn commit_to() {
    for (to, want) in [(3, 3), (1, 2)] {
        let mut log = new_log(MemoryStorage::new());
        log.append(terms(1, &[1, 2, 3]));
        log.set_committed(2);
        log.commit_to(to);
        assert_eq!(log.committed(), want);
    }
    // Past the last index: the log was lost.
    let mut log = new_log(MemoryStorage::new());
    log.append(terms(1, &[1, 2, 3]));
    assert!(panics(|| log.commit_to(4)));
}

#[test]
fn stable_to() {
    // (index, term, want offset)
    let cases = [(1, 1, 2), (2, 2, 3), (2, 1, 1), (3, 1, 1)];
    for (index, term, want) in cases {
        let mut log = new_log(MemoryStorage::new());
        log.append(terms(1, &[1, 2]));
        log.stable_to(EntryId::new(term, index));
        assert_eq!(log.unstable().offset(), want, "stable_to({index}, {term})");
    }
}

#[test]
fn stable_to_with_snapshot() {
    let (si, st) = (5, 2);
    // (index, term, new entries, want offset)
    let cases: Vec<(u64, u64, Vec<Entry>, u64)> = vec![
        (si + 1, st, vec![], si + 1),
        (si, st, vec![], si + 1),
        (si - 1, st, vec![], si + 1),
        (si + 1, st + 1, vec![], si + 1),
        (si, st + 1, vec![], si + 1),
        (si - 1, st + 1, vec![], si + 1),
        (si + 1, st, terms(si + 1, &[st]), si + 2),
        (si, st, terms(si + 1, &[st]), si + 1),
        (si - 1, st, terms(si + 1, &[st]), si + 1),
        (si + 1, st + 1, terms(si + 1, &[st]), si + 1),
        (si, st + 1, terms(si + 1, &[st]), si + 1),
        (si - 1, st + 1, terms(si + 1, &[st]), si + 1),
    ];
    for (index, term, ents, want) in cases {
        let (_, mut log) = log_after_snapshot(si, st);
        log.append(ents);
        log.stable_to(EntryId::new(term, index));
        assert_eq!(log.unstable().offset(), want, "stable_to({index}, {term})");
    }
}

/// The number of entries left after compactions.
#[test]
fn compaction() {
    // (last index, compactions, entries left after each (None: error))
    let cases: Vec<(u64, Vec<u64>, Vec<Option<usize>>)> = vec![
        (1000, vec![300, 500, 800, 900], vec![Some(700), Some(500), Some(200), Some(100)]),
        // Below the first index.
        (1000, vec![300, 299], vec![Some(700), None]),
    ];
    for (last, compactions, want) in cases {
        let storage = MemoryStorage::new();
        storage.append(&term_range(1, 1, last + 1)).unwrap();
        let mut log = new_log(storage.clone());
        // Term 0 never matches: this is a no-op, as in etcd's test.
        assert!(!log.maybe_commit(EntryId::new(0, last)));
        log.applied_to(log.committed(), 0);
        for (i, w) in compactions.into_iter().zip(want) {
            match (storage.compact(i), w) {
                (Ok(()), Some(left)) => assert_eq!(log.all_entries().len(), left),
                (Err(StorageError::Compacted), None) => {}
                (res, w) => panic!("compact({i}): {res:?}, want {w:?}"),
            }
        }
    }
    // Past the last index.
    let storage = MemoryStorage::new();
    storage.append(&term_range(1, 1, 1001)).unwrap();
    assert!(panics(|| drop(storage.compact(1001))));
}

#[test]
fn restore_from_storage_snapshot() {
    let (index, term) = (1000, 1000);
    let (_, log) = log_after_snapshot(index, term);
    assert!(log.all_entries().is_empty());
    assert_eq!(log.first_index(), index + 1);
    assert_eq!(log.committed(), index);
    assert_eq!((log.applying(), log.applied()), (index, index));
    assert_eq!(log.unstable().offset(), index + 1);
    assert_eq!(log.term(index).unwrap(), term);
}

#[test]
fn restore_logs_and_moves_commit() {
    let capture = CaptureLogger::new();
    let mut log = RaftLog::new(MemoryStorage::new(), Arc::new(capture.clone())).unwrap();
    log.restore(snap(4, 1));
    assert_eq!(
        capture.take(),
        "INFO log [committed=0, applied=0, applying=0, unstable.offset=1, \
         unstable.offsetInProgress=1, len(unstable.Entries)=0] starts to restore snapshot \
         [index: 4, term: 1]\n"
    );
    assert_eq!((log.committed(), log.first_index(), log.last_index()), (4, 5, 4));
    assert_eq!(log.last_entry_id(), EntryId::new(1, 4));
    assert_eq!(log.snapshot().unwrap(), snap(4, 1));
    assert_eq!(log.next_unstable_snapshot(), Some(&snap(4, 1)));
    log.accept_unstable();
    assert!(!log.has_next_unstable_snapshot());
    assert!(log.has_next_or_in_progress_snapshot());
    log.stable_snap_to(4);
    assert!(!log.has_next_or_in_progress_snapshot());
}

#[test]
fn string_form() {
    let mut log = new_log(MemoryStorage::new());
    log.append(terms(1, &[1, 1, 1]));
    log.accept_unstable();
    log.stable_to(EntryId::new(1, 1));
    log.commit_to(2);
    log.accept_applying(2, 0, true);
    log.applied_to(1, 0);
    assert_eq!(
        log.to_string(),
        "committed=2, applied=1, applying=2, unstable.offset=2, unstable.offsetInProgress=4, \
         len(unstable.Entries)=2"
    );
}

#[test]
fn out_of_bounds() {
    let (offset, num) = (100, 100);
    let (_, mut log) = log_after_snapshot(offset, 0);
    log.append(term_range(offset + 1, offset + 1, offset + num + 1));
    let first = offset + 1;
    // (lo, hi, want panic, want compacted)
    let cases = [
        (first - 2, first + 1, false, true),
        (first - 1, first + 1, false, true),
        (first, first, false, false),
        (first + num / 2, first + num / 2, false, false),
        (first + num - 1, first + num - 1, false, false),
        (first + num, first + num, false, false),
        (first + num, first + num + 1, true, false),
        (first + num + 1, first + num + 1, true, false),
        (first + 1, first, true, false),
    ];
    for (lo, hi, wpanic, wcompacted) in cases {
        let res = catch_unwind(AssertUnwindSafe(|| log.slice(lo, hi, NO_LIMIT)));
        match res {
            Err(_) => assert!(wpanic, "[{lo}, {hi}) panicked"),
            Ok(res) => {
                assert!(!wpanic, "[{lo}, {hi}) did not panic");
                assert_eq!(matches!(res, Err(StorageError::Compacted)), wcompacted);
                assert_eq!(res.is_ok(), !wcompacted);
            }
        }
    }
}

#[test]
fn term() {
    let (offset, num) = (100, 100);
    let (_, mut log) = log_after_snapshot(offset, 1);
    log.append(term_range(offset + 1, 1, num));
    let cases = [
        (offset - 1, Err(StorageError::Compacted)),
        (offset, Ok(1)),
        (offset + num / 2, Ok(num / 2)),
        (offset + num - 1, Ok(num - 1)),
        (offset + num, Err(StorageError::Unavailable)),
    ];
    for (index, want) in cases {
        assert_eq!(format!("{:?}", log.term(index)), format!("{want:?}"), "term({index})");
    }
}

#[test]
fn term_with_unstable_snapshot() {
    let (storage_snap, unstable_snap) = (100, 105);
    let (_, mut log) = log_after_snapshot(storage_snap, 1);
    log.restore(snap(unstable_snap, 1));
    let cases = [
        // Not from storage.
        (storage_snap, Err(StorageError::Compacted)),
        // Not from the gap between storage and the unstable snapshot.
        (storage_snap + 1, Err(StorageError::Compacted)),
        (unstable_snap - 1, Err(StorageError::Compacted)),
        // From the unstable snapshot.
        (unstable_snap, Ok(1)),
        // Nothing after it.
        (unstable_snap + 1, Err(StorageError::Unavailable)),
    ];
    for (index, want) in cases {
        assert_eq!(format!("{:?}", log.term(index)), format!("{want:?}"), "term({index})");
    }
}

#[test]
fn slice() {
    let (offset, num) = (100u64, 100u64);
    let (last, half) = (offset + num, offset + num / 2);
    let entries = |from: u64, to: u64| term_range(from, from, to);
    let one = Entry::new(half, half, Bytes::new()).encoded_len() as u64;

    let storage = MemoryStorage::new();
    storage.apply_snapshot(snap(offset, 0)).unwrap();
    storage.append(&entries(offset + 1, half)).unwrap();
    let mut log = new_log(storage);
    log.append(entries(half, last));

    // (lo, hi, limit, want: None for Compacted)
    let cases: Vec<(u64, u64, u64, Option<Vec<Entry>>)> = vec![
        (offset - 1, offset + 1, NO_LIMIT, None),
        (offset, offset + 1, NO_LIMIT, None),
        // No limit.
        (offset + 1, offset + 1, NO_LIMIT, Some(vec![])),
        (offset + 1, half - 1, NO_LIMIT, Some(entries(offset + 1, half - 1))),
        (offset + 1, half, NO_LIMIT, Some(entries(offset + 1, half))),
        (offset + 1, half + 1, NO_LIMIT, Some(entries(offset + 1, half + 1))),
        (offset + 1, last, NO_LIMIT, Some(entries(offset + 1, last))),
        (half - 1, half, NO_LIMIT, Some(entries(half - 1, half))),
        (half - 1, half + 1, NO_LIMIT, Some(entries(half - 1, half + 1))),
        (half - 1, last, NO_LIMIT, Some(entries(half - 1, last))),
        (half, half + 1, NO_LIMIT, Some(entries(half, half + 1))),
        (half, last, NO_LIMIT, Some(entries(half, last))),
        (last - 1, last, NO_LIMIT, Some(entries(last - 1, last))),
        // At least one entry always comes back.
        (offset + 1, last, 0, Some(entries(offset + 1, offset + 2))),
        (half - 1, half + 1, 0, Some(entries(half - 1, half))),
        (half, last, 0, Some(entries(half, half + 1))),
        (half + 1, last, 0, Some(entries(half + 1, half + 2))),
        // A low limit.
        (offset + 1, last, one - 1, Some(entries(offset + 1, offset + 2))),
        (half - 1, half + 1, one - 1, Some(entries(half - 1, half))),
        (half, last, one - 1, Some(entries(half, half + 1))),
        // Just enough for one.
        (offset + 1, last, one, Some(entries(offset + 1, offset + 2))),
        (half - 1, half + 1, one, Some(entries(half - 1, half))),
        (half, last, one, Some(entries(half, half + 1))),
        // Not enough for two.
        (offset + 1, last, one + 1, Some(entries(offset + 1, offset + 2))),
        (half - 1, half + 1, one + 1, Some(entries(half - 1, half))),
        (half, last, one + 1, Some(entries(half, half + 1))),
        // Enough for two.
        (offset + 1, last, one * 2, Some(entries(offset + 1, offset + 3))),
        (half - 2, half + 1, one * 2, Some(entries(half - 2, half))),
        (half - 1, half + 1, one * 2, Some(entries(half - 1, half + 1))),
        (half, last, one * 2, Some(entries(half, half + 2))),
        // Not enough for three.
        (half - 2, half + 1, one * 3 - 1, Some(entries(half - 2, half))),
        // Enough for three.
        (half - 1, half + 2, one * 3, Some(entries(half - 1, half + 2))),
    ];
    for (lo, hi, limit, want) in cases {
        match (log.slice(lo, hi, limit), want) {
            (Ok(got), Some(want)) => assert_eq!(ids(&got), ids(&want), "[{lo}, {hi}) @ {limit}"),
            (Err(StorageError::Compacted), None) => {}
            (got, want) => panic!("[{lo}, {hi}) @ {limit}: {got:?}, want {want:?}"),
        }
    }
    // Inverted bounds, and past the last index.
    assert!(panics(|| drop(log.slice(half, half - 1, NO_LIMIT))));
    assert!(panics(|| drop(log.slice(last, last + 1, NO_LIMIT))));
}

#[test]
fn slice_shares_payloads() {
    let payload = Bytes::from(vec![9u8; 100]);
    let storage = MemoryStorage::new();
    storage.append(&[Entry::new(1, 1, payload.clone())]).unwrap();
    let mut log = new_log(storage);
    log.append(vec![Entry::new(1, 2, payload.clone())]);
    let got = log.slice(1, 3, NO_LIMIT).unwrap();
    assert!(got.iter().all(|e| e.data.as_ptr() == payload.as_ptr()));
}

#[derive(Debug)]
enum ScanError {
    Break,
    Storage,
}

impl From<StorageError> for ScanError {
    fn from(_: StorageError) -> Self {
        ScanError::Storage
    }
}

#[test]
fn scan() {
    let (offset, num) = (47u64, 20u64);
    let (last, half) = (offset + num, offset + num / 2);
    let entries = |from: u64, to: u64| term_range(from, from, to);
    let entry_size = ents_size(&entries(half, half + 1));

    let storage = MemoryStorage::new();
    storage.apply_snapshot(snap(offset, 0)).unwrap();
    storage.append(&entries(offset + 1, half)).unwrap();
    let mut log = new_log(storage);
    log.append(entries(half, last));

    // scan() returns what slice() does, on every input.
    for page in [0, 1, 10, 100, entry_size, entry_size + 1] {
        for lo in offset + 1..last {
            for hi in lo..=last {
                let mut got = Vec::new();
                log.scan::<ScanError, _>(lo, hi, page, |e| {
                    assert!(e.len() == 1 || ents_size(e) <= page);
                    got.extend_from_slice(e);
                    Ok(())
                })
                .unwrap();
                let want = log.slice(lo, hi, NO_LIMIT).unwrap();
                assert_eq!(got, want, "[{lo}, {hi}) @ {page}");
            }
        }
    }

    // The visitor's error stops the scan and comes back.
    let mut iters = 0;
    let res = log.scan(offset + 1, half, 0, |_| {
        iters += 1;
        if iters == 2 { Err(ScanError::Break) } else { Ok(()) }
    });
    assert!(matches!(res, Err(ScanError::Break)));
    assert_eq!(iters, 2);

    // Pages are filled up to the limit, not one entry each.
    log.scan::<ScanError, _>(offset + 1, offset + 11, entry_size * 2, |e| {
        assert_eq!(e.len(), 2);
        assert_eq!(ents_size(e), entry_size * 2);
        Ok(())
    })
    .unwrap();

    // A compacted start is a storage error.
    let res = log.scan(offset, half, NO_LIMIT, |_| Ok(()));
    assert!(matches!(res, Err(ScanError::Storage)));
}

#[test]
fn new_log_starts_at_the_storage_snapshot() {
    let storage = MemoryStorage::new();
    storage.apply_snapshot(snap(10, 2)).unwrap();
    storage.append(&terms(11, &[2, 3])).unwrap();
    let log = new_log(storage.clone());
    assert_eq!((log.committed(), log.applying(), log.applied()), (10, 10, 10));
    assert_eq!((log.first_index(), log.last_index()), (11, 12));
    assert_eq!(log.unstable().offset(), 13);
    assert_eq!(log.last_term(), 3);
    assert_eq!(log.storage().last_index().unwrap(), 12);
    assert_eq!(log.snapshot().unwrap(), snap(10, 2));
}

/// A storage whose engine fails: construction reports it, reads mid-flight
/// panic as in etcd.
#[test]
fn storage_failures() {
    struct Broken;
    impl Storage for Broken {
        fn initial_state(
            &self,
        ) -> Result<(crate::raftpb::HardState, crate::raftpb::ConfState), StorageError> {
            Err(StorageError::Other("broken".into()))
        }
        fn entries(&self, _: u64, _: u64, _: u64, _: &mut Vec<Entry>) -> Result<(), StorageError> {
            Err(StorageError::Other("broken".into()))
        }
        fn term(&self, _: u64) -> Result<u64, StorageError> {
            Err(StorageError::Other("broken".into()))
        }
        fn first_index(&self) -> Result<u64, StorageError> {
            Err(StorageError::Other("broken".into()))
        }
        fn last_index(&self) -> Result<u64, StorageError> {
            Ok(0)
        }
        fn snapshot(&self) -> Result<Snapshot, StorageError> {
            Err(StorageError::Other("broken".into()))
        }
    }
    let err = RaftLog::new(Broken, logger()).unwrap_err();
    assert_eq!(err.to_string(), "broken");

    /// Storage with entries 1..=2 whose reads fail.
    struct Flaky(MemoryStorage);
    impl Storage for Flaky {
        fn initial_state(
            &self,
        ) -> Result<(crate::raftpb::HardState, crate::raftpb::ConfState), StorageError> {
            self.0.initial_state()
        }
        fn entries(&self, _: u64, _: u64, _: u64, _: &mut Vec<Entry>) -> Result<(), StorageError> {
            Err(StorageError::Other("read failed".into()))
        }
        fn term(&self, _: u64) -> Result<u64, StorageError> {
            Err(StorageError::Other("read failed".into()))
        }
        fn first_index(&self) -> Result<u64, StorageError> {
            self.0.first_index()
        }
        fn last_index(&self) -> Result<u64, StorageError> {
            self.0.last_index()
        }
        fn snapshot(&self) -> Result<Snapshot, StorageError> {
            self.0.snapshot()
        }
    }
    let ms = MemoryStorage::new();
    ms.append(&terms(1, &[1, 1])).unwrap();
    let log = RaftLog::new(Flaky(ms), logger()).unwrap();
    assert!(panics(|| drop(log.term(1))));
    assert!(panics(|| drop(log.slice(1, 2, NO_LIMIT))));
}

/// Indexes and terms from messages are untrusted: extreme values give the
/// usual answers, not arithmetic overflow.
#[test]
fn extreme_indexes_from_messages() {
    let mut log = new_log(MemoryStorage::new());
    log.append(terms(1, &[1, 1]));
    assert!(matches!(log.term(u64::MAX), Err(StorageError::Unavailable)));
    assert!(!log.match_term(EntryId::new(1, u64::MAX)));
    assert_eq!(log.find_conflict_by_term(u64::MAX, 1), (u64::MAX, 0));
    assert!(log.is_up_to_date(EntryId::new(u64::MAX, u64::MAX)));
    let a = LogSlice::new(u64::MAX, EntryId::new(u64::MAX, u64::MAX), vec![]).unwrap();
    assert_eq!(log.maybe_append(a, u64::MAX), None);
    assert!(!log.maybe_commit(EntryId::new(1, u64::MAX)));
    assert_eq!(log.committed(), 0);
}
