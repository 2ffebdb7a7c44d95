//! [`Unstable`]: the entries and snapshot a node holds before they are known
//! to be in its [`Storage`](crate::storage::Storage).

use super::{EntryId, SharedEntries};
use crate::logger::Logger;
use crate::raftpb::{Entry, Snapshot};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

/// Above this many entries of spare capacity, the buffer is given back to the
/// allocator once it drains; below it, it is kept for the next batch so the
/// steady state does not allocate.
const RETAINED_CAPACITY_MAX: usize = 4096;

/// At most this many stable entries are kept in shared runs for handing out
/// as committed entries (see [`Unstable::kept_run`]); older ones are read
/// from storage again.
const KEPT_ENTRIES_MAX: usize = 1 << 16;

/// The log entries and snapshot not yet written to storage, as etcd's
/// `unstable`.
///
/// It plays two roles. It holds new entries (and a snapshot received from the
/// leader) until a `Ready` hands them out to be persisted; and it keeps them
/// afterwards, while the write is in progress, so that the log can still read
/// them. Once the application reports them stable ([`stable_to`],
/// [`stable_snap_to`]) they are dropped from here and read from storage.
///
/// Entries handed out ([`take_next_entries`]) move into a [`SharedEntries`]
/// run that the `Ready` shares, so handing them out copies none; entries
/// not yet handed out stay in a vector that appends extend. Every shared
/// run is in progress, so the entries not yet handed out
/// ([`next_entries`]) are always one slice of that vector.
///
/// Once stable, the entries of shared runs are not dropped at once: the runs
/// are kept (up to 65,536 entries, until the entries are handed out to be
/// applied) so that committed entries can be handed out as a share of the
/// same run rather than cloned out of storage entry by entry (`kept_run`).
/// Kept entries are stable, so they are not part of the unstable log:
/// nothing else reads them.
///
/// The entries have indexes `offset()..offset() + len()`. The offset may be
/// at or below the last index in storage: the next write then truncates the
/// stored log first. Entries below `offset_in_progress()` are being written.
///
/// Out-of-range arguments to [`slices`] are programmer errors and panic, as
/// in etcd; stale `stable_to` acknowledgements are logged and ignored.
///
/// [`stable_to`]: Unstable::stable_to
/// [`stable_snap_to`]: Unstable::stable_snap_to
/// [`take_next_entries`]: Unstable::take_next_entries
/// [`next_entries`]: Unstable::next_entries
/// [`slices`]: Unstable::slices
pub struct Unstable {
    /// The incoming snapshot, if any.
    snapshot: Option<Snapshot>,
    /// The first entries, handed out and shared with a `Ready`, oldest
    /// first; none is empty. They hold `shared_len` entries from `offset`.
    shared: VecDeque<SharedEntries>,
    shared_len: usize,
    /// Stable entries kept from shared runs, oldest first; none is empty.
    /// They hold the `kept_len` entries just before `offset`.
    kept: VecDeque<SharedEntries>,
    kept_len: usize,
    /// The entries after the shared ones are `buf[head..]`. `buf[..head]`
    /// are already stable: their payloads are dropped at once and the slots
    /// reclaimed when they make up most of the buffer (etcd's
    /// `shrinkEntriesArray`), so stabilizing costs O(1) per entry and a
    /// steady state reuses the buffer.
    buf: Vec<Entry>,
    head: usize,
    /// The index of the first entry.
    offset: u64,
    /// Whether the snapshot is being written.
    snapshot_in_progress: bool,
    /// Entries below this index are being written; `offset + shared_len <=
    /// offset_in_progress <= offset + len()`.
    offset_in_progress: u64,
    logger: Arc<dyn Logger>,
}

impl fmt::Debug for Unstable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unstable")
            .field("snapshot", &self.snapshot)
            .field("entries", &self.entries())
            .field("offset", &self.offset)
            .field("snapshot_in_progress", &self.snapshot_in_progress)
            .field("offset_in_progress", &self.offset_in_progress)
            .finish()
    }
}

/// Keeps the first `keep` entries of `runs` (and no empty run).
fn truncate_runs(runs: &mut VecDeque<SharedEntries>, mut keep: usize) {
    let mut n = 0;
    for run in runs.iter_mut() {
        if keep == 0 {
            break;
        }
        run.truncate(keep);
        keep -= run.len();
        n += 1;
    }
    runs.truncate(n);
}

impl Unstable {
    /// An empty unstable log whose next entry has index `offset` (the last
    /// index in storage plus one).
    pub fn new(offset: u64, logger: Arc<dyn Logger>) -> Unstable {
        Unstable {
            snapshot: None,
            shared: VecDeque::new(),
            shared_len: 0,
            kept: VecDeque::new(),
            kept_len: 0,
            buf: Vec::new(),
            head: 0,
            offset,
            snapshot_in_progress: false,
            offset_in_progress: offset,
            logger,
        }
    }

    /// A copy of the unstable entries, in index order from
    /// [`offset`](Unstable::offset) (for tests and debugging output).
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.len());
        for run in &self.shared {
            out.extend_from_slice(run);
        }
        out.extend_from_slice(self.unshared());
        out
    }

    /// The number of unstable entries.
    pub fn len(&self) -> usize {
        self.shared_len + self.buf.len() - self.head
    }

    /// Whether there are no unstable entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries not in a shared run.
    fn unshared(&self) -> &[Entry] {
        &self.buf[self.head..]
    }

    /// The index of the first entry not in a shared run.
    fn unshared_offset(&self) -> u64 {
        self.offset + self.shared_len as u64
    }

    /// The index of the first unstable entry (the one after the last stable
    /// entry or the snapshot).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The index after the last entry being written to storage.
    pub fn offset_in_progress(&self) -> u64 {
        self.offset_in_progress
    }

    /// The snapshot not yet stable, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Whether the snapshot is being written to storage.
    pub fn snapshot_in_progress(&self) -> bool {
        self.snapshot_in_progress
    }

    /// The first index of the log, if the unstable part decides it: only when
    /// it holds a snapshot (the log then starts right after it).
    pub fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.metadata.index + 1)
    }

    /// The last index of the log, if the unstable part decides it: its last
    /// entry, else its snapshot's index.
    pub fn maybe_last_index(&self) -> Option<u64> {
        let len = self.len();
        if len != 0 {
            return Some(self.offset + len as u64 - 1);
        }
        self.snapshot.as_ref().map(|s| s.metadata.index)
    }

    /// The entry at `index`, if it is unstable.
    #[inline]
    fn get(&self, index: u64) -> Option<&Entry> {
        let unshared = self.unshared_offset();
        if index >= unshared {
            return self.unshared().get(usize::try_from(index - unshared).ok()?);
        }
        self.get_shared(index)
    }

    /// The entry at `index`, if a shared run holds it.
    fn get_shared(&self, index: u64) -> Option<&Entry> {
        let mut i = usize::try_from(index.checked_sub(self.offset)?).ok()?;
        for run in &self.shared {
            match run.get(i) {
                Some(e) => return Some(e),
                None => i -= run.len(),
            }
        }
        None
    }

    /// The term of entry `index`, if the unstable part holds it (as an entry,
    /// or as the snapshot's last index).
    #[inline]
    pub fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            return match &self.snapshot {
                Some(s) if s.metadata.index == index => Some(s.metadata.term),
                _ => None,
            };
        }
        self.get(index).map(|e| e.term)
    }

    /// The entries not yet being written: what the next `Ready` persists.
    pub fn next_entries(&self) -> &[Entry] {
        // Shared runs are all in progress, so these are unshared.
        let in_progress = self.offset_in_progress.saturating_sub(self.unshared_offset()) as usize;
        self.unshared().get(in_progress..).unwrap_or(&[])
    }

    /// Hands out the entries not yet being written (those of
    /// [`next_entries`](Unstable::next_entries)) without copying them, and
    /// marks every entry as being written. The unstable log keeps reading
    /// them, through the run it shares, until they are stable.
    pub fn take_next_entries(&mut self) -> SharedEntries {
        if self.next_entries().is_empty() {
            self.accept_entries_in_progress();
            return SharedEntries::default();
        }
        let start = self.head + (self.offset_in_progress - self.unshared_offset()) as usize;
        // The vector becomes the run; the next one starts with as much room
        // (up to a bound, then with room for as many entries), so that a
        // steady state does not regrow it: a leader's proposals fill it one
        // append at a time, and growing a large vector copies it. (A
        // follower takes over each append's vector unless it is much smaller
        // than the room; see `truncate_and_append_from`.)
        let room = match self.buf.capacity() {
            c if c <= RETAINED_CAPACITY_MAX => c,
            _ => self.buf.len() - self.head,
        };
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(room));
        let run = SharedEntries::from(buf);
        let (head, end) = (self.head, run.len());
        self.head = 0;
        let kept = run.slice(head..end);
        self.shared_len += kept.len();
        self.shared.push_back(kept);
        self.accept_entries_in_progress();
        run.slice(start..end)
    }

    /// The snapshot, if there is one not yet being written.
    pub fn next_snapshot(&self) -> Option<&Snapshot> {
        if self.snapshot_in_progress { None } else { self.snapshot.as_ref() }
    }

    /// Marks every current entry and the snapshot as being written: they are
    /// no longer returned by [`next_entries`](Unstable::next_entries) and
    /// [`next_snapshot`](Unstable::next_snapshot). Later additions are.
    pub fn accept_in_progress(&mut self) {
        self.accept_entries_in_progress();
        if self.snapshot.is_some() {
            self.snapshot_in_progress = true;
        }
    }

    fn accept_entries_in_progress(&mut self) {
        if !self.is_empty() {
            self.offset_in_progress = self.offset + self.len() as u64;
        }
    }

    /// Marks the entries up to `id` as written to stable storage and drops
    /// them. Ignored (with a log line) when `id` is not an unstable entry any
    /// more: it was already stable, it is the snapshot, or the log was
    /// rewritten with another term at that index while the write was under
    /// way.
    ///
    /// Call it only when no write still in progress can overwrite these
    /// entries in storage (see etcd's `newStorageAppendRespMsg`).
    pub fn stable_to(&mut self, id: EntryId) {
        let Some(term) = self.maybe_term(id.index) else {
            infof!(self.logger, "entry at index {} missing from unstable log; ignoring", id.index);
            return;
        };
        if id.index < self.offset {
            infof!(self.logger, "entry at index {} matched unstable snapshot; ignoring", id.index);
            return;
        }
        if term != id.term {
            infof!(
                self.logger,
                "entry at (index,term)=({},{}) mismatched with entry at ({},{}) in unstable log; \
                 ignoring",
                id.index,
                id.term,
                id.index,
                term
            );
            return;
        }
        let mut num = (id.index + 1 - self.offset) as usize;
        // The shared runs first: their stable part moves to the kept runs.
        while num > 0
            && let Some(run) = self.shared.front_mut()
        {
            let n = num.min(run.len());
            let stable = run.slice(0..n);
            run.advance(n);
            if run.is_empty() {
                self.shared.pop_front();
            }
            self.shared_len -= n;
            num -= n;
            self.keep(stable);
        }
        if num > 0 {
            // Stable entries that were never shared: the kept runs would no
            // longer end at the offset.
            self.clear_kept();
            if self.head + num == self.buf.len() {
                // Everything is stable: release it all at once.
                self.clear_unshared();
            } else {
                for e in &mut self.buf[self.head..self.head + num] {
                    // Release the payload now rather than when the slot is
                    // reclaimed.
                    *e = Entry::default();
                }
                self.head += num;
            }
        }
        self.offset = id.index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
        self.shrink_entries_array();
    }

    /// Adds a run of newly stable entries (those just before the new offset)
    /// to the kept runs, dropping the oldest kept entries beyond
    /// [`KEPT_ENTRIES_MAX`].
    fn keep(&mut self, run: SharedEntries) {
        self.kept_len += run.len();
        if !self.kept.back_mut().is_some_and(|last| last.try_extend(&run)) {
            self.kept.push_back(run);
        }
        if self.kept_len > KEPT_ENTRIES_MAX {
            let excess = self.kept_len - KEPT_ENTRIES_MAX;
            self.forget_kept(excess);
        }
    }

    /// Drops the `n` oldest kept entries (`n <= kept_len`).
    fn forget_kept(&mut self, mut n: usize) {
        self.kept_len -= n;
        while n > 0
            && let Some(run) = self.kept.front_mut()
        {
            let k = n.min(run.len());
            run.advance(k);
            if run.is_empty() {
                self.kept.pop_front();
            }
            n -= k;
        }
    }

    fn clear_kept(&mut self) {
        self.kept.clear();
        self.kept_len = 0;
    }

    /// The index of the first kept entry (`offset` when none is kept).
    fn kept_offset(&self) -> u64 {
        self.offset - self.kept_len as u64
    }

    /// Drops the kept entries up to `index`: they were handed out to be
    /// applied, so they are not needed again.
    pub(crate) fn forget_kept_to(&mut self, index: u64) {
        let start = self.kept_offset();
        if index >= start {
            let n = ((index - start + 1) as usize).min(self.kept_len);
            self.forget_kept(n);
        }
    }

    /// Drops the kept entries from index `from` on.
    fn truncate_kept(&mut self, from: u64) {
        let start = self.kept_offset();
        let keep = from.saturating_sub(start).min(self.kept_len as u64) as usize;
        if keep == self.kept_len {
            return;
        }
        self.kept_len = keep;
        truncate_runs(&mut self.kept, keep);
    }

    /// The entries with indexes in `lo..hi` as a share of one run, when a
    /// single run holds them all: a kept run of stable entries, or a shared
    /// run being written. Cloning the share bumps one reference count
    /// whatever its length. `None` when no single run holds them (they are
    /// only in storage, span runs, or are not yet handed out).
    pub(crate) fn kept_run(&self, lo: u64, hi: u64) -> Option<SharedEntries> {
        let start = self.kept_offset();
        if lo < start || hi > self.unshared_offset() || lo >= hi {
            return None;
        }
        let (mut lo, mut hi) = ((lo - start) as usize, (hi - start) as usize);
        for run in self.kept.iter().chain(&self.shared) {
            if lo < run.len() {
                return (hi <= run.len()).then(|| run.slice(lo..hi));
            }
            (lo, hi) = (lo - run.len(), hi - run.len());
        }
        None
    }

    /// Reclaims the slots of stable entries once they are most of the buffer,
    /// and gives a large buffer back once it is empty.
    fn shrink_entries_array(&mut self) {
        if self.head == self.buf.len() {
            self.clear_unshared();
        } else if self.head >= self.buf.len() - self.head {
            // Moving the (fewer) live entries down is paid for by the stable
            // ones that were just released.
            self.buf.drain(..self.head);
            self.head = 0;
            if self.buf.capacity() > RETAINED_CAPACITY_MAX
                && self.buf.len() * 2 < self.buf.capacity()
            {
                self.buf.shrink_to(self.buf.len() * 2);
            }
        }
    }

    fn clear_unshared(&mut self) {
        self.buf.clear();
        self.head = 0;
        if self.buf.capacity() > RETAINED_CAPACITY_MAX {
            self.buf = Vec::new();
        }
    }

    fn clear_entries(&mut self) {
        self.shared.clear();
        self.shared_len = 0;
        self.clear_unshared();
    }

    /// Drops the snapshot once it is stable, if it is still the one at
    /// `index`.
    pub fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| s.metadata.index == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with `snapshot`: the log now starts after it.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.metadata.index + 1;
        self.offset_in_progress = self.offset;
        self.clear_entries();
        self.clear_kept();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `ents` (contiguous, starting at `ents[0].index`), first
    /// dropping every unstable entry at or after that index. If `ents` starts
    /// at or before the offset, all unstable entries are replaced and the
    /// offset moves down (the next write then truncates storage).
    ///
    /// Panics if `ents` would leave a gap after the last unstable entry.
    pub fn truncate_and_append(&mut self, mut ents: Vec<Entry>) {
        self.truncate_and_append_from(&mut ents)
    }

    /// [`truncate_and_append`](Unstable::truncate_and_append), moving the
    /// entries out of `ents`: it is left empty, usually with its capacity,
    /// so that a caller can reuse it for the next batch.
    #[inline]
    pub fn truncate_and_append_from(&mut self, ents: &mut Vec<Entry>) {
        let Some(first) = ents.first() else { return };
        // The usual case, a leader's proposal: the entries follow on.
        if !self.buf.is_empty() && first.index == self.offset + self.len() as u64 {
            self.buf.append(ents);
            return;
        }
        self.truncate_and_append_from_any(ents);
    }

    /// [`truncate_and_append_from`](Unstable::truncate_and_append_from) in
    /// every case.
    fn truncate_and_append_from_any(&mut self, ents: &mut Vec<Entry>) {
        let Some(first) = ents.first() else { return };
        let from = first.index;
        let len = self.len() as u64;
        if from == self.offset + len {
            // The entries follow on directly.
        } else if from <= self.offset {
            infof!(self.logger, "replace the unstable entries from index {}", from);
            // Kept stable entries from `from` on are being replaced too.
            self.truncate_kept(from);
            self.clear_entries();
            self.offset = from;
            self.offset_in_progress = from;
        } else {
            infof!(self.logger, "truncate the unstable entries before index {}", from);
            self.must_check_out_of_bounds(self.offset, from);
            self.truncate_from(from);
            // Only in-progress entries before `from` are still in progress.
            self.offset_in_progress = self.offset_in_progress.min(from);
        }
        if self.buf.is_empty() && self.buf.capacity() < ents.len().saturating_mul(2) {
            // Adopt the caller's buffer rather than copying into a smaller
            // one, or into one not much larger (the room kept for a leader's
            // proposals, when a follower).
            std::mem::swap(&mut self.buf, ents);
        } else {
            self.buf.append(ents);
        }
    }

    /// Drops the entries from index `from` on (`offset < from <=
    /// offset + len()`).
    fn truncate_from(&mut self, from: u64) {
        let unshared = self.unshared_offset();
        if from >= unshared {
            self.buf.truncate(self.head + (from - unshared) as usize);
            return;
        }
        // The cut is inside the shared runs: keep what precedes it, and none
        // of the unshared entries.
        let keep = (from - self.offset) as usize;
        self.shared_len = keep;
        truncate_runs(&mut self.shared, keep);
        self.clear_unshared();
    }

    /// The unstable entries with indexes in `lo..hi`, as the contiguous runs
    /// that hold them, in order. The entries are shared with the log:
    /// cloning them bumps reference counts, it does not copy payloads.
    ///
    /// Panics unless `offset() <= lo <= hi <= offset() + len()`.
    pub fn slices(&self, lo: u64, hi: u64) -> impl Iterator<Item = &[Entry]> + Clone {
        self.must_check_out_of_bounds(lo, hi);
        let (mut lo, mut hi) = ((lo - self.offset) as usize, (hi - self.offset) as usize);
        let shared = self.shared.iter().map(|run| &run[..]);
        shared.chain(std::iter::once(self.unshared())).filter_map(move |run| {
            let (start, end) = (lo.min(run.len()), hi.min(run.len()));
            (lo, hi) = (lo - start, hi - end);
            (start < end).then(|| &run[start..end])
        })
    }

    /// The unstable entries with indexes in `lo..hi` as one slice, when one
    /// run holds them all (the usual case: they are not yet handed out, or
    /// were handed out together).
    ///
    /// Panics unless `offset() <= lo <= hi <= offset() + len()`.
    #[inline]
    pub fn contiguous(&self, lo: u64, hi: u64) -> Option<&[Entry]> {
        self.must_check_out_of_bounds(lo, hi);
        let unshared = self.unshared_offset();
        if lo >= unshared {
            return Some(&self.unshared()[(lo - unshared) as usize..(hi - unshared) as usize]);
        }
        let (mut lo, mut hi) = ((lo - self.offset) as usize, (hi - self.offset) as usize);
        for run in &self.shared {
            if lo < run.len() {
                return (hi <= run.len()).then(|| &run[lo..hi]);
            }
            (lo, hi) = (lo - run.len(), hi - run.len());
        }
        None
    }

    /// A copy of the unstable entries with indexes in `lo..hi` (see
    /// [`slices`](Unstable::slices)).
    pub fn slice(&self, lo: u64, hi: u64) -> Vec<Entry> {
        let mut out = Vec::with_capacity(hi.saturating_sub(lo) as usize);
        for run in self.slices(lo, hi) {
            out.extend_from_slice(run);
        }
        out
    }

    fn must_check_out_of_bounds(&self, lo: u64, hi: u64) {
        if lo > hi {
            panicf!(self.logger, "invalid unstable.slice {} > {}", lo, hi);
        }
        let upper = self.offset + self.len() as u64;
        if lo < self.offset || hi > upper {
            panicf!(
                self.logger,
                "unstable.slice[{},{}) out of bound [{},{}]",
                lo,
                hi,
                self.offset,
                upper
            );
        }
    }

    /// Builds an arbitrary state, as etcd's tests write struct literals.
    #[cfg(test)]
    pub(crate) fn from_parts(
        entries: Vec<Entry>,
        offset: u64,
        offset_in_progress: u64,
        snapshot: Option<Snapshot>,
        snapshot_in_progress: bool,
        logger: Arc<dyn Logger>,
    ) -> Unstable {
        Unstable {
            snapshot,
            shared: VecDeque::new(),
            shared_len: 0,
            kept: VecDeque::new(),
            kept_len: 0,
            buf: entries,
            head: 0,
            offset,
            snapshot_in_progress,
            offset_in_progress,
            logger,
        }
    }

    /// Checks the structural invariants; used by the property tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        assert!(self.head <= self.buf.len());
        assert_eq!(self.shared_len, self.shared.iter().map(|r| r.len()).sum::<usize>());
        assert!(self.shared.iter().all(|r| !r.is_empty()), "{self:?}");
        assert_eq!(self.kept_len, self.kept.iter().map(|r| r.len()).sum::<usize>());
        assert!(self.kept.iter().all(|r| !r.is_empty()), "{self:?}");
        assert!(self.kept_len as u64 <= self.offset);
        assert!(self.kept_len <= KEPT_ENTRIES_MAX);
        let kept = self.kept.iter().flat_map(|r| r.iter());
        for (e, i) in kept.zip(self.kept_offset()..) {
            assert_eq!(e.index, i, "{self:?}");
        }
        assert!(self.offset <= self.offset_in_progress, "{self:?}");
        assert!(self.unshared_offset() <= self.offset_in_progress, "{self:?}");
        assert!(self.offset_in_progress <= self.offset + self.len() as u64, "{self:?}");
        for (e, i) in self.entries().iter().zip(self.offset..) {
            assert_eq!(e.index, i, "{self:?}");
        }
        if let Some(s) = &self.snapshot {
            assert_eq!(s.metadata.index + 1, self.offset, "{self:?}");
        }
        assert!(!self.snapshot_in_progress || self.snapshot.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger::CaptureLogger;
    use crate::raftpb::SnapshotMetadata;
    use bytes::Bytes;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    fn terms(first: u64, terms: &[u64]) -> Vec<Entry> {
        terms.iter().zip(first..).map(|(&t, i)| Entry::new(t, i, Bytes::new())).collect()
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

    fn unstable(ents: Vec<Entry>, offset: u64, in_progress: u64, s: Option<Snapshot>) -> Unstable {
        Unstable::from_parts(ents, offset, in_progress, s, false, logger())
    }

    #[test]
    fn maybe_first_index() {
        let cases = [
            (terms(5, &[1]), 5, None, None),
            (vec![], 0, None, None),
            (terms(5, &[1]), 5, Some(snap(4, 1)), Some(5)),
            (vec![], 5, Some(snap(4, 1)), Some(5)),
        ];
        for (ents, offset, s, want) in cases {
            assert_eq!(unstable(ents, offset, offset, s).maybe_first_index(), want);
        }
    }

    #[test]
    fn maybe_last_index() {
        let cases = [
            (terms(5, &[1]), 5, None, Some(5)),
            (terms(5, &[1]), 5, Some(snap(4, 1)), Some(5)),
            (vec![], 5, Some(snap(4, 1)), Some(4)),
            (vec![], 0, None, None),
        ];
        for (ents, offset, s, want) in cases {
            assert_eq!(unstable(ents, offset, offset, s).maybe_last_index(), want);
        }
    }

    #[test]
    fn maybe_term() {
        let cases = [
            (terms(5, &[1]), 5, None, 5, Some(1)),
            (terms(5, &[1]), 5, None, 6, None),
            (terms(5, &[1]), 5, None, 4, None),
            (terms(5, &[1]), 5, Some(snap(4, 1)), 5, Some(1)),
            (terms(5, &[1]), 5, Some(snap(4, 1)), 6, None),
            (terms(5, &[1]), 5, Some(snap(4, 1)), 4, Some(1)),
            (terms(5, &[1]), 5, Some(snap(4, 1)), 3, None),
            (vec![], 5, Some(snap(4, 1)), 5, None),
            (vec![], 5, Some(snap(4, 1)), 4, Some(1)),
            (vec![], 0, None, 5, None),
        ];
        for (ents, offset, s, index, want) in cases {
            assert_eq!(unstable(ents, offset, offset, s).maybe_term(index), want, "index {index}");
        }
    }

    #[test]
    fn restore() {
        let mut u = Unstable::from_parts(terms(5, &[1]), 5, 6, Some(snap(4, 1)), true, logger());
        u.restore(snap(6, 2));
        assert_eq!((u.offset(), u.offset_in_progress()), (7, 7));
        assert!(u.entries().is_empty());
        assert_eq!(u.snapshot(), Some(&snap(6, 2)));
        assert!(!u.snapshot_in_progress());
    }

    #[test]
    fn next_entries() {
        let cases = [
            // Nothing in progress.
            (5, terms(5, &[1, 1])),
            // Partly in progress.
            (6, terms(6, &[1])),
            // Everything in progress.
            (7, vec![]),
        ];
        for (in_progress, want) in cases {
            let u = unstable(terms(5, &[1, 1]), 5, in_progress, None);
            assert_eq!(u.next_entries(), &want[..]);
        }
    }

    #[test]
    fn next_snapshot() {
        let s = snap(4, 1);
        let cases = [
            (None, false, None),
            (Some(s.clone()), false, Some(&s)),
            (Some(s.clone()), true, None),
        ];
        for (snapshot, in_progress, want) in cases {
            let u = Unstable::from_parts(vec![], 5, 5, snapshot, in_progress, logger());
            assert_eq!(u.next_snapshot(), want);
        }
    }

    #[test]
    fn accept_in_progress() {
        // (entries, snapshot?, offset in progress, snapshot in progress, wants)
        let s = || Some(snap(4, 1));
        let cases = [
            (vec![], None, 5, false, 5, false),
            (terms(5, &[1]), None, 5, false, 6, false),
            (terms(5, &[1, 1]), None, 5, false, 7, false),
            (terms(5, &[1, 1]), None, 6, false, 7, false),
            (terms(5, &[1, 1]), None, 7, false, 7, false),
            (vec![], s(), 5, false, 5, true),
            (terms(5, &[1]), s(), 5, false, 6, true),
            (terms(5, &[1, 1]), s(), 5, false, 7, true),
            (terms(5, &[1, 1]), s(), 6, false, 7, true),
            (terms(5, &[1, 1]), s(), 7, false, 7, true),
            (vec![], s(), 5, true, 5, true),
            (terms(5, &[1]), s(), 5, true, 6, true),
            (terms(5, &[1, 1]), s(), 5, true, 7, true),
            (terms(5, &[1, 1]), s(), 6, true, 7, true),
            (terms(5, &[1, 1]), s(), 7, true, 7, true),
        ];
        for (ents, snapshot, oip, sip, woip, wsip) in cases {
            let mut u = Unstable::from_parts(ents, 5, oip, snapshot, sip, logger());
            u.accept_in_progress();
            assert_eq!((u.offset_in_progress(), u.snapshot_in_progress()), (woip, wsip));
            assert!(u.next_entries().is_empty());
            assert!(u.next_snapshot().is_none());
        }
    }

    #[test]
    fn stable_to() {
        // (entries, offset, in progress, snapshot, index, term, want offset,
        // want in progress, want len)
        let s = |i, t| Some(snap(i, t));
        let cases = [
            (vec![], 0, 0, None, 5, 1, 0, 0, 0),
            // Stable to the first entry.
            (terms(5, &[1]), 5, 6, None, 5, 1, 6, 6, 0),
            (terms(5, &[1, 1]), 5, 6, None, 5, 1, 6, 6, 1),
            // Stable to the first entry, in-progress ahead.
            (terms(5, &[1, 1]), 5, 7, None, 5, 1, 6, 7, 1),
            // Term mismatch.
            (terms(6, &[2]), 6, 7, None, 6, 1, 6, 7, 1),
            // An old entry.
            (terms(5, &[1]), 5, 6, None, 4, 1, 5, 6, 1),
            (terms(5, &[1]), 5, 6, None, 4, 2, 5, 6, 1),
            // With a snapshot.
            (terms(5, &[1]), 5, 6, s(4, 1), 5, 1, 6, 6, 0),
            (terms(5, &[1, 1]), 5, 6, s(4, 1), 5, 1, 6, 6, 1),
            (terms(5, &[1, 1]), 5, 7, s(4, 1), 5, 1, 6, 7, 1),
            (terms(6, &[2]), 6, 7, s(5, 1), 6, 1, 6, 7, 1),
            // The snapshot itself.
            (terms(5, &[1]), 5, 6, s(4, 1), 4, 1, 5, 6, 1),
            (terms(5, &[2]), 5, 6, s(4, 2), 4, 1, 5, 6, 1),
        ];
        for (ents, offset, oip, snapshot, index, term, woffset, woip, wlen) in cases {
            let mut u = unstable(ents, offset, oip, snapshot);
            u.stable_to(EntryId::new(term, index));
            assert_eq!(
                (u.offset(), u.offset_in_progress(), u.entries().len()),
                (woffset, woip, wlen),
                "stable_to({index}, {term})"
            );
        }
    }

    #[test]
    fn stable_to_logs_like_etcd() {
        let capture = CaptureLogger::new();
        let mut u = Unstable::from_parts(
            terms(5, &[2]),
            5,
            5,
            Some(snap(4, 1)),
            false,
            Arc::new(capture.clone()),
        );
        u.stable_to(EntryId::new(1, 9));
        u.stable_to(EntryId::new(1, 4));
        u.stable_to(EntryId::new(1, 5));
        assert_eq!(
            capture.take(),
            "INFO entry at index 9 missing from unstable log; ignoring\n\
             INFO entry at index 4 matched unstable snapshot; ignoring\n\
             INFO entry at (index,term)=(5,1) mismatched with entry at (5,2) in unstable log; \
             ignoring\n"
        );
    }

    #[test]
    fn truncate_and_append() {
        // (entries, offset, in progress, to append, want offset, want in
        // progress, want entries)
        let cases = [
            // Append to the end.
            (terms(5, &[1]), 5, 5, terms(6, &[1, 1]), 5, 5, terms(5, &[1, 1, 1])),
            (terms(5, &[1]), 5, 6, terms(6, &[1, 1]), 5, 6, terms(5, &[1, 1, 1])),
            // Replace the unstable entries.
            (terms(5, &[1]), 5, 5, terms(5, &[2, 2]), 5, 5, terms(5, &[2, 2])),
            (terms(5, &[1]), 5, 5, terms(4, &[2, 2, 2]), 4, 4, terms(4, &[2, 2, 2])),
            (terms(5, &[1]), 5, 6, terms(5, &[2, 2]), 5, 5, terms(5, &[2, 2])),
            // Truncate the existing entries and append.
            (terms(5, &[1, 1, 1]), 5, 5, terms(6, &[2]), 5, 5, terms(5, &[1, 2])),
            (terms(5, &[1, 1, 1]), 5, 5, terms(7, &[2, 2]), 5, 5, terms(5, &[1, 1, 2, 2])),
            (terms(5, &[1, 1, 1]), 5, 6, terms(6, &[2]), 5, 6, terms(5, &[1, 2])),
            (terms(5, &[1, 1, 1]), 5, 7, terms(6, &[2]), 5, 6, terms(5, &[1, 2])),
        ];
        for (ents, offset, oip, append, woffset, woip, want) in cases {
            let mut u = unstable(ents, offset, oip, None);
            u.truncate_and_append(append);
            assert_eq!((u.offset(), u.offset_in_progress()), (woffset, woip));
            assert_eq!(u.entries(), &want[..]);
            u.check_invariants();
        }
    }

    #[test]
    fn truncate_and_append_logs_like_etcd() {
        let capture = CaptureLogger::new();
        let mut u = Unstable::new(5, Arc::new(capture.clone()));
        u.truncate_and_append(terms(5, &[1, 1, 1]));
        u.truncate_and_append(terms(6, &[2]));
        u.truncate_and_append(terms(3, &[3]));
        u.truncate_and_append(vec![]);
        assert_eq!(
            capture.take(),
            "INFO truncate the unstable entries before index 6\n\
             INFO replace the unstable entries from index 3\n"
        );
        assert_eq!(u.entries(), &terms(3, &[3])[..]);
    }

    #[test]
    fn slice_checks_bounds() {
        let u = unstable(terms(5, &[1, 1, 2]), 5, 5, None);
        assert_eq!(u.slice(6, 8), &terms(6, &[1, 2])[..]);
        assert!(u.slice(5, 5).is_empty());
        assert!(u.slice(8, 8).is_empty());
        for (lo, hi) in [(4, 6), (6, 9), (7, 6)] {
            let res = catch_unwind(AssertUnwindSafe(|| u.slice(lo, hi).len()));
            assert!(res.is_err(), "slice({lo}, {hi}) must panic");
        }
        // A gap after the last entry is a broken invariant too.
        let mut gap = unstable(terms(5, &[1]), 5, 5, None);
        let res = catch_unwind(AssertUnwindSafe(|| gap.truncate_and_append(terms(7, &[1]))));
        assert!(res.is_err());
    }

    #[test]
    fn stable_entries_release_payloads_and_the_buffer_is_reused() {
        let payload = Bytes::from(vec![1u8; 32]);
        let ents: Vec<Entry> = (5..15).map(|i| Entry::new(1, i, payload.clone())).collect();
        let mut u = Unstable::new(5, logger());
        u.truncate_and_append(ents);
        u.accept_in_progress();
        // Stabilize a minority: the slots stay, the payloads go.
        u.stable_to(EntryId::new(1, 7));
        assert_eq!(u.entries().len(), 7);
        u.check_invariants();
        // Most of the buffer is stable now: the live entries move down.
        u.stable_to(EntryId::new(1, 10));
        assert_eq!((u.head, u.buf.len()), (0, 4));
        u.check_invariants();
        let cap = u.buf.capacity();
        u.stable_to(EntryId::new(1, 14));
        assert!(u.entries().is_empty());
        assert_eq!(u.buf.capacity(), cap, "a small buffer is kept for reuse");
        // Every clone in the log is gone: only ours is left.
        assert!(payload.is_unique());
        u.truncate_and_append(terms(15, &[1, 1]));
        assert_eq!(u.buf.capacity(), cap);
        u.check_invariants();
    }

    #[test]
    fn a_large_buffer_is_released_once_drained() {
        let n = RETAINED_CAPACITY_MAX as u64 + 1;
        let mut u = Unstable::new(1, logger());
        u.truncate_and_append((1..=n).map(|i| Entry::new(1, i, Bytes::new())).collect());
        u.stable_to(EntryId::new(1, n));
        assert_eq!(u.buf.capacity(), 0);
    }

    #[test]
    fn handed_out_entries_are_shared_not_copied() {
        let mut u = Unstable::new(5, logger());
        u.truncate_and_append(terms(5, &[1, 1]));
        let first = u.take_next_entries();
        assert_eq!(first, terms(5, &[1, 1]));
        assert_eq!(u.offset_in_progress(), 7);
        assert!(u.next_entries().is_empty());
        assert!(u.take_next_entries().is_empty());
        u.truncate_and_append(terms(7, &[1, 1]));
        let second = u.take_next_entries();
        assert_eq!(second, terms(7, &[1, 1]));
        u.truncate_and_append(terms(9, &[1]));
        u.check_invariants();
        // Reads see through the runs; the log and the Ready share entries.
        assert_eq!(u.entries(), terms(5, &[1, 1, 1, 1, 1]));
        assert_eq!(u.maybe_term(8), Some(1));
        assert_eq!(u.slice(6, 10), terms(6, &[1, 1, 1, 1]));
        assert_eq!(u.slices(6, 10).count(), 3);
        assert!(std::ptr::eq(&first[1], u.slices(6, 7).next().unwrap().as_ptr()));
        // Stabilizing drops the log's share, run by run.
        u.stable_to(EntryId::new(1, 5));
        assert_eq!((u.offset(), u.len()), (6, 4));
        u.check_invariants();
        u.stable_to(EntryId::new(1, 8));
        assert_eq!((u.offset(), u.len(), u.shared.len()), (9, 1, 0));
        u.check_invariants();
        // The Ready's entries are untouched.
        assert_eq!(first, terms(5, &[1, 1]));
        assert_eq!(second, terms(7, &[1, 1]));
    }

    #[test]
    fn truncating_inside_a_shared_run() {
        let mut u = Unstable::new(5, logger());
        u.truncate_and_append(terms(5, &[1, 1, 1]));
        let handed = u.take_next_entries();
        u.truncate_and_append(terms(8, &[1]));
        // A new leader overwrites from index 6: the run is cut, the
        // unshared entries go, and only index 5 stays in progress.
        u.truncate_and_append(terms(6, &[2, 2]));
        assert_eq!(u.entries(), terms(5, &[1, 2, 2]));
        assert_eq!(u.offset_in_progress(), 6);
        assert_eq!(u.next_entries(), &terms(6, &[2, 2])[..]);
        u.check_invariants();
        assert_eq!(handed, terms(5, &[1, 1, 1]), "what was handed out stays");
        let next = u.take_next_entries();
        assert_eq!(next, terms(6, &[2, 2]));
        u.check_invariants();
        // Replacing everything clears the runs too.
        u.truncate_and_append(terms(4, &[3]));
        assert_eq!((u.offset(), u.entries()), (4, terms(4, &[3])));
        u.check_invariants();
        // A stale acknowledgement of an overwritten entry is ignored.
        u.stable_to(EntryId::new(1, 6));
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn stable_runs_are_kept_until_handed_out_to_apply() {
        let mut u = Unstable::new(5, logger());
        u.truncate_and_append(terms(5, &[1, 1, 1]));
        let first = u.take_next_entries();
        u.truncate_and_append(terms(8, &[1, 2]));
        let second = u.take_next_entries();
        // In progress: a range inside one run is shared, across runs not.
        assert_eq!(u.kept_run(6, 8).unwrap(), terms(6, &[1, 1]));
        assert!(std::ptr::eq(&first[1], &u.kept_run(6, 8).unwrap()[0]), "no copy");
        assert!(u.kept_run(7, 9).is_none());
        assert!(u.kept_run(6, 6).is_none());
        // Stable pieces of one run join up again once kept.
        u.stable_to(EntryId::new(1, 5));
        u.stable_to(EntryId::new(1, 6));
        assert_eq!((u.kept_offset(), u.kept.len()), (5, 1));
        u.stable_to(EntryId::new(2, 9));
        u.check_invariants();
        assert_eq!((u.offset(), u.len(), u.kept_len), (10, 0, 5));
        assert_eq!(u.kept_run(5, 8).unwrap(), first);
        assert_eq!(u.kept_run(8, 10).unwrap(), second);
        assert!(u.kept_run(7, 9).is_none(), "spans two runs");
        assert!(u.kept_run(4, 6).is_none() && u.kept_run(9, 11).is_none());
        assert_eq!(u.maybe_term(9), None, "kept entries are not unstable");
        // Handed out to apply: no longer needed.
        u.forget_kept_to(6);
        assert_eq!((u.kept_offset(), u.kept_len), (7, 3));
        assert_eq!(u.kept_run(7, 10).map(|r| r.len()), None, "two runs");
        assert_eq!(u.kept_run(7, 8).unwrap(), terms(7, &[1]));
        u.forget_kept_to(3);
        assert_eq!(u.kept_len, 3);
        u.forget_kept_to(20);
        assert_eq!((u.kept_len, u.kept.len()), (0, 0));
        u.check_invariants();
    }

    #[test]
    fn kept_entries_go_when_overwritten_or_restored() {
        let mut u = Unstable::new(5, logger());
        u.truncate_and_append(terms(5, &[1, 1, 1, 1]));
        let _ = u.take_next_entries();
        u.stable_to(EntryId::new(1, 8));
        assert_eq!(u.kept_len, 4);
        // A new leader overwrites stable entries from 7 on.
        u.truncate_and_append(terms(7, &[2]));
        u.check_invariants();
        assert_eq!((u.kept_offset(), u.kept_len, u.offset()), (5, 2, 7));
        assert!(u.kept_run(6, 8).is_none(), "7 is unshared");
        // Stabilizing entries that were never shared drops what is kept (it
        // would no longer end at the offset).
        u.stable_to(EntryId::new(2, 7));
        assert_eq!((u.kept_len, u.offset()), (0, 8));
        u.check_invariants();
        u.truncate_and_append(terms(8, &[2, 2]));
        let _ = u.take_next_entries();
        u.stable_to(EntryId::new(2, 9));
        assert_eq!(u.kept_len, 2);
        u.truncate_and_append(terms(3, &[3]));
        assert_eq!((u.kept_len, u.offset()), (0, 3), "replaced below the kept entries");
        u.check_invariants();
        let _ = u.take_next_entries();
        u.stable_to(EntryId::new(3, 3));
        assert_eq!(u.kept_len, 1);
        u.restore(snap(10, 3));
        assert_eq!(u.kept_len, 0);
        u.check_invariants();
    }

    #[test]
    fn kept_entries_are_bounded() {
        let mut u = Unstable::new(1, logger());
        let n = KEPT_ENTRIES_MAX as u64 + 10;
        u.truncate_and_append((1..=n).map(|i| Entry::new(1, i, Bytes::new())).collect());
        let _ = u.take_next_entries();
        u.stable_to(EntryId::new(1, n));
        assert_eq!((u.kept_len, u.kept_offset()), (KEPT_ENTRIES_MAX, 11));
        assert_eq!(u.kept_run(11, 13).map(|r| r.len()), Some(2));
        assert!(u.kept_run(10, 12).is_none());
        u.check_invariants();
    }
}
