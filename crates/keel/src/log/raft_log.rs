//! [`RaftLog`]: the whole log of a node, stable storage plus the unstable
//! tail, with the commit and apply cursors.

use super::{EntryId, LogSlice, NO_LIMIT, SharedEntries, Unstable};
use crate::logger::Logger;
use crate::raftpb::{Entry, Snapshot};
use crate::storage::{Storage, StorageError, ents_size, ents_size_bound, limit_count, limit_len};
use std::fmt;
use std::sync::Arc;

/// A node's Raft log, as etcd's `raftLog`: the entries in [`Storage`] followed
/// by the [`Unstable`] ones, and three cursors into them.
///
/// `applied <= applying <= committed <= last_index()` always holds:
/// - `committed` is the highest index known to be stored on a quorum;
/// - `applying` is the highest index handed to the application to apply;
/// - `applied` is the highest index the application reports applied.
///
/// The bytes handed out for applying and not yet reported applied are bounded
/// by `max_applying_ents_size`; when the bound is reached, handing out pauses.
///
/// # Errors and panics
/// As in etcd, asking for entries that were compacted away is an expected
/// condition and returns [`StorageError::Compacted`]; asking for a term outside
/// the log returns `Compacted` or [`StorageError::Unavailable`]. Breaking an
/// invariant panics through the logger (logged at fatal level first), with
/// etcd's message: committing past the last index, truncating committed
/// entries, applying past the commit index, slicing with `lo > hi` or past the
/// last index. A storage failure other than those two errors in the middle of
/// an operation also panics (etcd does the same); only constructing a log
/// returns it.
pub struct RaftLog<S> {
    /// The stable entries since the last snapshot.
    storage: S,
    /// The entries and snapshot not yet in storage.
    unstable: Unstable,
    committed: u64,
    applying: u64,
    applied: u64,
    logger: Arc<dyn Logger>,
    /// Bound on the bytes returned by `next_committed_ents` and not yet
    /// acknowledged by `applied_to`.
    max_applying_ents_size: u64,
    /// The bytes returned by `next_committed_ents` and not yet acknowledged.
    applying_ents_size: u64,
    /// Whether handing out entries to apply is paused until enough of the
    /// outstanding ones are acknowledged.
    applying_ents_paused: bool,
}

/// etcd's `raftLog.String()`, used in log lines.
impl<S> fmt::Display for RaftLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "committed={}, applied={}, applying={}, unstable.offset={}, \
             unstable.offsetInProgress={}, len(unstable.Entries)={}",
            self.committed,
            self.applied,
            self.applying,
            self.unstable.offset(),
            self.unstable.offset_in_progress(),
            self.unstable.len()
        )
    }
}

impl<S> fmt::Debug for RaftLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftLog")
            .field("committed", &self.committed)
            .field("applying", &self.applying)
            .field("applied", &self.applied)
            .field("unstable", &self.unstable)
            .field("max_applying_ents_size", &self.max_applying_ents_size)
            .field("applying_ents_size", &self.applying_ents_size)
            .field("applying_ents_paused", &self.applying_ents_paused)
            .finish_non_exhaustive()
    }
}

/// After the storage entries `out[start..]`, appends what fits of the
/// unstable entries `tail` within `max_size` bytes in all.
fn extend_with_tail(out: &mut Vec<Entry>, start: usize, tail: &[Entry], max_size: u64) {
    let ents = &out[start..];
    // Usually all of it fits by far, which a bound from the payload lengths
    // shows without measuring every entry.
    let bound = ents_size_bound(ents.iter(), ents.len())
        .saturating_add(ents_size_bound(tail.iter(), tail.len()));
    if bound <= max_size {
        out.extend_from_slice(tail);
        return;
    }
    let size = ents_size(ents);
    if size >= max_size {
        return;
    }
    let tail = &tail[..limit_len(tail, max_size - size)];
    // `limit_len` keeps one entry even when it alone is too big; here the
    // storage entries already make progress, so leave it out.
    if tail.len() == 1 && size.saturating_add(ents_size(tail)) > max_size {
        return;
    }
    out.extend_from_slice(tail);
}

/// Appends the first `n` entries of `runs` to `out`, run by run.
fn extend_from_runs<'a>(
    out: &mut Vec<Entry>,
    runs: impl Iterator<Item = &'a [Entry]>,
    mut n: usize,
) {
    out.reserve(n);
    for run in runs {
        if n == 0 {
            break;
        }
        let run = &run[..n.min(run.len())];
        out.extend_from_slice(run);
        n -= run.len();
    }
}

/// A storage failure the log cannot go on from: etcd panics with the error.
fn storage_failed(err: StorageError) -> ! {
    panic!("{err}")
}

impl<S: Storage> RaftLog<S> {
    /// A log over `storage`, with no limit on the bytes outstanding for
    /// applying. The cursors start at the storage's snapshot: everything
    /// before the first stored index counts as committed and applied.
    pub fn new(storage: S, logger: Arc<dyn Logger>) -> Result<RaftLog<S>, StorageError> {
        RaftLog::with_size(storage, logger, NO_LIMIT)
    }

    /// Like [`new`](RaftLog::new), handing out at most
    /// `max_applying_ents_size` bytes of entries to apply before they are
    /// acknowledged (at least one entry is always handed out).
    pub fn with_size(
        storage: S,
        logger: Arc<dyn Logger>,
        max_applying_ents_size: u64,
    ) -> Result<RaftLog<S>, StorageError> {
        let first_index = storage.first_index()?;
        let last_index = storage.last_index()?;
        Ok(RaftLog {
            storage,
            unstable: Unstable::new(last_index + 1, logger.clone()),
            committed: first_index - 1,
            applying: first_index - 1,
            applied: first_index - 1,
            logger,
            max_applying_ents_size,
            applying_ents_size: 0,
            applying_ents_paused: false,
        })
    }

    /// The storage the stable entries are read from.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, mutably (for the application to persist and compact).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// The unstable tail.
    pub fn unstable(&self) -> &Unstable {
        &self.unstable
    }

    /// The highest index known to be stored on a quorum.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The highest index handed to the application to apply.
    pub fn applying(&self) -> u64 {
        self.applying
    }

    /// The highest index the application reports applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The bound on bytes handed out for applying and not yet acknowledged.
    pub fn max_applying_ents_size(&self) -> u64 {
        self.max_applying_ents_size
    }

    /// Whether the bytes handed out for applying are bounded. Without a
    /// bound ([`NO_LIMIT`](crate::NO_LIMIT)) the count can never pause
    /// handing out (sizes add up saturating), so callers may skip measuring
    /// entries and count 0.
    pub fn applying_size_bounded(&self) -> bool {
        self.max_applying_ents_size != NO_LIMIT
    }

    /// The bytes handed out for applying and not yet acknowledged (0 when
    /// they are not bounded: see
    /// [`applying_size_bounded`](RaftLog::applying_size_bounded)).
    pub fn applying_ents_size(&self) -> u64 {
        self.applying_ents_size
    }

    /// Whether handing out entries to apply is paused by the size bound.
    pub fn applying_ents_paused(&self) -> bool {
        self.applying_ents_paused
    }

    /// Appends the slice `a` received from a leader if it attaches to this
    /// log (the entry before it matches), replacing any conflicting suffix,
    /// and commits up to `min(committed, a.last_index())`. Returns the index
    /// of the last entry of `a`, or `None` if `a.prev()` does not match.
    ///
    /// Panics if a committed entry conflicts with `a`.
    pub fn maybe_append(&mut self, a: LogSlice, committed: u64) -> Option<u64> {
        if !self.match_term(a.prev()) {
            return None;
        }
        let prev_index = a.prev().index;
        let last_new = a.last_index();
        let conflict = self.find_conflict(a.entries());
        if conflict != 0 {
            if conflict <= self.committed {
                panicf!(
                    self.logger,
                    "entry {} conflict with committed entry [committed({})]",
                    conflict,
                    self.committed
                );
            }
            let skip = conflict - (prev_index + 1);
            let len = a.entries().len();
            if skip > len as u64 {
                panicf!(self.logger, "index, {}, is out of range [{}]", skip, len);
            }
            let mut entries = a.into_entries();
            if skip > 0 {
                entries.drain(..skip as usize);
            }
            self.append(entries);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Appends `ents` (contiguous) to the unstable tail, truncating the log
    /// from `ents[0].index` on, and returns the new last index.
    ///
    /// Panics if that would truncate a committed entry.
    pub fn append(&mut self, mut ents: Vec<Entry>) -> u64 {
        self.append_from(&mut ents)
    }

    /// [`append`](RaftLog::append), moving the entries out of `ents` (left
    /// empty, for the caller to reuse).
    #[inline]
    pub fn append_from(&mut self, ents: &mut Vec<Entry>) -> u64 {
        let Some(first) = ents.first() else { return self.last_index() };
        let after = first.index - 1;
        if after < self.committed {
            panicf!(
                self.logger,
                "after({}) is out of range [committed({})]",
                after,
                self.committed
            );
        }
        self.unstable.truncate_and_append_from(ents);
        self.last_index()
    }

    /// The index of the first entry of `ents` that is not in this log: the
    /// first whose term differs from ours at its index (a conflict, which is
    /// logged), or the first past our last index. Returns 0 when every entry
    /// is already in the log. `ents` must be contiguous.
    pub fn find_conflict(&self, ents: &[Entry]) -> u64 {
        for e in ents {
            let id = EntryId::of(e);
            if !self.match_term(id) {
                if id.index <= self.last_index() {
                    infof!(
                        self.logger,
                        "found conflict at index {} [existing term: {}, conflicting term: {}]",
                        id.index,
                        self.zero_term_on_out_of_bounds(self.term(id.index)),
                        id.term
                    );
                }
                return id.index;
            }
        }
        0
    }

    /// A best guess of where this log stops matching another log of which we
    /// only know that it has an entry `(index, term)`: the largest
    /// `guess <= index` whose term is at most `term`, or whose term is unknown
    /// (compacted or not yet stored). Returns `(guess, term of guess)`, the
    /// term 0 when unknown. Followers and leaders use it to skip a divergent
    /// tail after a rejected append in one step per term.
    pub fn find_conflict_by_term(&self, mut index: u64, term: u64) -> (u64, u64) {
        while index > 0 {
            match self.term(index) {
                // Unknown: this may match, so stop here.
                Err(_) => return (index, 0),
                Ok(ours) if ours <= term => return (index, ours),
                Ok(_) => index -= 1,
            }
        }
        (0, 0)
    }

    /// The unstable entries not yet handed out to be written.
    pub fn next_unstable_ents(&self) -> &[Entry] {
        self.unstable.next_entries()
    }

    /// Hands out the unstable entries not yet handed out to be written
    /// (those of [`next_unstable_ents`](RaftLog::next_unstable_ents)),
    /// shared rather than copied, and marks every unstable entry as being
    /// written.
    pub fn take_next_unstable_ents(&mut self) -> SharedEntries {
        self.unstable.take_next_entries()
    }

    /// Whether there are unstable entries not yet handed out to be written.
    pub fn has_next_unstable_ents(&self) -> bool {
        !self.next_unstable_ents().is_empty()
    }

    /// Whether there are unstable entries, handed out or not.
    pub fn has_next_or_in_progress_unstable_ents(&self) -> bool {
        !self.unstable.is_empty()
    }

    /// The committed entries to hand to the application next: after
    /// `applying`, up to the commit index (up to the last stable entry unless
    /// `allow_unstable`), and within the outstanding size bound (but at least
    /// one entry). Empty while paused or while a snapshot is pending.
    ///
    /// Entries that one run of the unstable log still holds (in progress,
    /// or stable and kept: see [`Unstable`]) are shared with it
    /// rather than cloned out of storage.
    pub fn next_committed_ents(&self, allow_unstable: bool) -> SharedEntries {
        if self.applying_ents_paused || self.has_next_or_in_progress_snapshot() {
            // Either the size bound is reached, or a snapshot must be applied
            // first (see has_next_committed_ents).
            return SharedEntries::default();
        }
        let (lo, hi) = (self.applying + 1, self.max_appliable_index(allow_unstable) + 1);
        if lo >= hi {
            return SharedEntries::default();
        }
        let max_size = self.max_applying_ents_size.wrapping_sub(self.applying_ents_size);
        if max_size == 0 {
            panicf!(
                self.logger,
                "applying entry size ({}-{})={} not positive",
                self.max_applying_ents_size,
                self.applying_ents_size,
                max_size
            );
        }
        if let Some(mut run) = self.unstable.kept_run(lo, hi) {
            // The same bounds check and size limit as `slice`: kept entries
            // are the ones storage holds.
            if let Err(err) = self.must_check_out_of_bounds(lo, hi) {
                panicf!(self.logger, "unexpected error when getting unapplied entries ({})", err)
            }
            run.truncate(limit_len(&run, max_size));
            return run;
        }
        match self.slice(lo, hi, max_size) {
            Ok(ents) => ents.into(),
            Err(err) => {
                panicf!(self.logger, "unexpected error when getting unapplied entries ({})", err)
            }
        }
    }

    /// Whether [`next_committed_ents`](RaftLog::next_committed_ents) has
    /// anything, without building it.
    pub fn has_next_committed_ents(&self, allow_unstable: bool) -> bool {
        if self.applying_ents_paused || self.has_next_or_in_progress_snapshot() {
            // With a snapshot to apply, handing out entries too would raise
            // the question of which goes first.
            return false;
        }
        self.applying < self.max_appliable_index(allow_unstable)
    }

    /// The highest committed index that may be applied: the commit index, or
    /// the last stable index if that is lower and `allow_unstable` is false.
    pub fn max_appliable_index(&self, allow_unstable: bool) -> u64 {
        if allow_unstable { self.committed } else { self.committed.min(self.unstable.offset() - 1) }
    }

    /// The unstable snapshot, if it is not yet handed out to be written.
    pub fn next_unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.next_snapshot()
    }

    /// Whether there is an unstable snapshot not yet handed out.
    pub fn has_next_unstable_snapshot(&self) -> bool {
        self.unstable.next_snapshot().is_some()
    }

    /// Whether there is an unstable snapshot, handed out or not.
    pub fn has_next_or_in_progress_snapshot(&self) -> bool {
        self.unstable.snapshot().is_some()
    }

    /// The latest snapshot: the unstable one if any, else the storage's.
    pub fn snapshot(&self) -> Result<Snapshot, StorageError> {
        match self.unstable.snapshot() {
            Some(s) => Ok(s.clone()),
            None => self.storage.snapshot(),
        }
    }

    /// The index of the first entry still in the log.
    pub fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            None => self.storage.first_index().unwrap_or_else(|e| storage_failed(e)),
        }
    }

    /// The index of the last entry in the log.
    pub fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self.storage.last_index().unwrap_or_else(|e| storage_failed(e)),
        }
    }

    /// Raises the commit index to `to_commit`; never lowers it.
    ///
    /// Panics if `to_commit` is past the last index: the log was lost.
    pub fn commit_to(&mut self, to_commit: u64) {
        if self.committed < to_commit {
            let last = self.last_index();
            if last < to_commit {
                panicf!(
                    self.logger,
                    "tocommit({}) is out of range [lastIndex({})]. Was the raft log corrupted, \
                     truncated, or lost?",
                    to_commit,
                    last
                );
            }
            self.committed = to_commit;
        }
    }

    /// Records that the application applied the entries up to `index`,
    /// releasing `size` bytes of the outstanding bound.
    ///
    /// Panics if `index` is below `applied` or above `committed`.
    pub fn applied_to(&mut self, index: u64, size: u64) {
        if self.committed < index || index < self.applied {
            panicf!(
                self.logger,
                "applied({}) is out of range [prevApplied({}), committed({})]",
                index,
                self.applied,
                self.committed
            );
        }
        self.applied = index;
        self.applying = self.applying.max(index);
        // Saturating: accounting errors must not wrap around.
        self.applying_ents_size = self.applying_ents_size.saturating_sub(size);
        self.applying_ents_paused = self.applying_ents_size >= self.max_applying_ents_size;
    }

    /// Records that the entries up to `index`, of `size` bytes, were handed to
    /// the application, and pauses handing out more if the bound is reached
    /// or the last batch was cut short by it.
    ///
    /// Panics if `index` is above `committed`.
    pub fn accept_applying(&mut self, index: u64, size: u64, allow_unstable: bool) {
        if self.committed < index {
            panicf!(
                self.logger,
                "applying({}) is out of range [prevApplying({}), committed({})]",
                index,
                self.applying,
                self.committed
            );
        }
        self.applying = index;
        self.unstable.forget_kept_to(index);
        self.applying_ents_size = self.applying_ents_size.saturating_add(size);
        // Pause when the bound is reached, or when the batch stopped short of
        // what could be applied: the next entry would then cross the bound.
        self.applying_ents_paused = self.applying_ents_size >= self.max_applying_ents_size
            || index < self.max_appliable_index(allow_unstable);
    }

    /// Records that the entries up to `id` are stable in storage (see
    /// [`Unstable::stable_to`]).
    pub fn stable_to(&mut self, id: EntryId) {
        self.unstable.stable_to(id)
    }

    /// Records that the snapshot at `index` is stable in storage.
    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index)
    }

    /// Marks the current unstable entries and snapshot as handed out to be
    /// written, so that the next `Ready` does not repeat them.
    pub fn accept_unstable(&mut self) {
        self.unstable.accept_in_progress()
    }

    /// The id of the last entry.
    pub fn last_entry_id(&self) -> EntryId {
        let index = self.last_index();
        match self.term(index) {
            Ok(term) => EntryId { term, index },
            Err(err) => panicf!(
                self.logger,
                "unexpected error when getting the last term at {}: {}",
                index,
                err
            ),
        }
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.last_entry_id().term
    }

    /// The term of entry `index`, for `index` in
    /// `first_index() - 1..=last_index()`. Returns
    /// [`StorageError::Compacted`] below and [`StorageError::Unavailable`]
    /// above that range.
    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        // The unstable part first: if it has the entry, no need to ask the
        // storage for the valid range.
        if let Some(term) = self.unstable.maybe_term(index) {
            return Ok(term);
        }
        // The entry before the first one is gone, but its term is kept. (The
        // first index is at least 1; `index` may come from a message.)
        if index < self.first_index() - 1 {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        match self.storage.term(index) {
            Ok(term) => Ok(term),
            Err(err) if err.is_out_of_bounds() => Err(err),
            Err(err) => storage_failed(err),
        }
    }

    /// The entries from `index` to the end, within `max_size` bytes (at least
    /// one). Empty if `index` is past the last index.
    pub fn entries(&self, index: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        let last = self.last_index();
        if index > last {
            return Ok(Vec::new());
        }
        self.slice(index, last + 1, max_size)
    }

    /// Every entry in the log (retrying if a compaction races with it).
    pub fn all_entries(&self) -> Vec<Entry> {
        loop {
            match self.entries(self.first_index(), NO_LIMIT) {
                Ok(ents) => return ents,
                Err(StorageError::Compacted) => continue,
                Err(err) => storage_failed(err),
            }
        }
    }

    /// Whether a log ending with entry `their` is at least as up to date as
    /// this one: a later last term wins; with equal last terms, the longer
    /// log (or an equal one) does.
    pub fn is_up_to_date(&self, their: EntryId) -> bool {
        let ours = self.last_entry_id();
        their.term > ours.term || (their.term == ours.term && their.index >= ours.index)
    }

    /// Whether this log has the entry `id`.
    pub fn match_term(&self, id: EntryId) -> bool {
        self.term(id.index).is_ok_and(|t| t == id.term)
    }

    /// Commits up to `at` if this log has that entry and it is past the
    /// commit index. A term of 0 never matches (a leader's term is at least
    /// 1). Returns whether the commit index moved.
    pub fn maybe_commit(&mut self, at: EntryId) -> bool {
        if at.term != 0 && at.index > self.committed && self.match_term(at) {
            self.commit_to(at.index);
            return true;
        }
        false
    }

    /// Resets the log to `snapshot`, received from the leader: the snapshot
    /// becomes unstable and the commit index moves to it.
    pub fn restore(&mut self, snapshot: Snapshot) {
        infof!(
            self.logger,
            "log [{}] starts to restore snapshot [index: {}, term: {}]",
            self,
            snapshot.metadata.index,
            snapshot.metadata.term
        );
        self.committed = snapshot.metadata.index;
        self.unstable.restore(snapshot);
    }

    /// Sets the commit index from a persisted `HardState` on restart. The
    /// caller (the Raft state machine) checks the range first, as etcd's
    /// `loadState` does, with its own message.
    ///
    /// Panics if `committed` is below the current commit index or past the
    /// last index.
    pub fn set_committed(&mut self, committed: u64) {
        assert!(committed >= self.committed, "commit {committed} below {}", self.committed);
        let last = self.last_index();
        assert!(committed <= last, "commit {committed} past the last index {last}");
        self.committed = committed;
    }

    /// Visits the entries in `lo..hi` in order, in pages of at most
    /// `page_size` bytes (a page holds at least one entry). Stops at the first
    /// error: a storage error (converted into `E`), or the visitor's own,
    /// which is how a visitor ends the scan early.
    pub fn scan<E, F>(&self, mut lo: u64, hi: u64, page_size: u64, mut visit: F) -> Result<(), E>
    where
        E: From<StorageError>,
        F: FnMut(&[Entry]) -> Result<(), E>,
    {
        // One buffer for every page.
        let mut ents = Vec::new();
        while lo < hi {
            ents.clear();
            self.slice_into(lo, hi, page_size, &mut ents)?;
            if ents.is_empty() {
                let text = format!("got 0 entries in [{lo}, {hi})");
                return Err(StorageError::Other(text.into()).into());
            }
            visit(&ents)?;
            lo += ents.len() as u64;
        }
        Ok(())
    }

    /// The entries in `lo..hi`, within `max_size` bytes but at least one
    /// when `lo < hi`. Entries are shared, not deep-copied.
    ///
    /// Returns [`StorageError::Compacted`] if `lo` is before the first index.
    /// Panics if `lo > hi`, if `hi` is past the last index plus one, or if the
    /// storage lacks entries it claims to have.
    pub fn slice(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        let mut ents = Vec::new();
        self.slice_into(lo, hi, max_size, &mut ents)?;
        Ok(ents)
    }

    /// [`slice`](RaftLog::slice), appending to `out` (entries already in it
    /// do not count towards `max_size`). On an error `out` is as it was.
    pub fn slice_into(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        self.must_check_out_of_bounds(lo, hi)?;
        if lo == hi {
            return Ok(());
        }
        let offset = self.unstable.offset();
        if lo >= offset {
            if let Some(ents) = self.unstable.contiguous(lo, hi) {
                out.extend_from_slice(&ents[..limit_len(ents, max_size)]);
                return Ok(());
            }
            let runs = self.unstable.slices(lo, hi);
            let n = limit_count(runs.clone().flatten(), (hi - lo) as usize, max_size);
            extend_from_runs(out, runs, n);
            return Ok(());
        }
        let cut = hi.min(offset);
        let start = out.len();
        match self.storage.entries(lo, cut, max_size, out) {
            Ok(()) => {}
            Err(err) => {
                out.truncate(start);
                match err {
                    StorageError::Compacted => return Err(StorageError::Compacted),
                    StorageError::Unavailable => {
                        panicf!(self.logger, "entries[{}:{}) is unavailable from storage", lo, cut)
                    }
                    err => storage_failed(err),
                }
            }
        }
        let ents = &out[start..];
        // Done if the range ends in storage, or if storage returned fewer
        // entries than asked: the size bound is hit.
        if hi <= offset || (ents.len() as u64) < cut - lo {
            return Ok(());
        }
        // Otherwise add what fits of the unstable part, usually one run
        // (copied out first in the rare case that it spans several).
        let spanning;
        let tail = match self.unstable.contiguous(offset, hi) {
            Some(tail) => tail,
            None => {
                spanning = self.unstable.slice(offset, hi);
                &spanning[..]
            }
        };
        extend_with_tail(out, start, tail, max_size);
        Ok(())
    }

    /// Checks `first_index() <= lo <= hi <= last_index() + 1`: a low `lo` is
    /// [`StorageError::Compacted`], the rest are panics.
    fn must_check_out_of_bounds(&self, lo: u64, hi: u64) -> Result<(), StorageError> {
        if lo > hi {
            panicf!(self.logger, "invalid slice {} > {}", lo, hi);
        }
        let first = self.first_index();
        if lo < first {
            return Err(StorageError::Compacted);
        }
        let last = self.last_index();
        if hi > last + 1 {
            panicf!(self.logger, "slice[{},{}) out of bound [{},{}]", lo, hi, first, last);
        }
        Ok(())
    }

    /// The term from a [`term`](RaftLog::term) result, or 0 if the index was
    /// out of range. Panics on any other error.
    pub fn zero_term_on_out_of_bounds(&self, term: Result<u64, StorageError>) -> u64 {
        match term {
            Ok(t) => t,
            Err(err) if err.is_out_of_bounds() => 0,
            Err(err) => panicf!(self.logger, "unexpected error ({})", err),
        }
    }

    /// The term at `index`, or 0 if it is compacted or past the end.
    pub fn term_or_zero(&self, index: u64) -> u64 {
        self.zero_term_on_out_of_bounds(self.term(index))
    }

    /// Sets the pause flag directly, as etcd's tests do.
    #[cfg(test)]
    pub(crate) fn set_applying_ents_paused(&mut self, paused: bool) {
        self.applying_ents_paused = paused;
    }
}
