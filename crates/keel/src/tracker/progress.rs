//! What the leader knows about one follower's log, and how it should send to
//! it (etcd's `tracker.Progress` and `tracker.StateType`).

use std::fmt;

use super::Inflights;
use crate::quorum::AckedIndexer;

/// How the leader talks to a follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// The follower's log position is unknown: send at most one append per
    /// heartbeat interval and learn from the answer.
    #[default]
    Probe,
    /// The follower keeps up: stream appends optimistically, bounded by the
    /// inflight window.
    Replicate,
    /// The follower needs a snapshot, which has been sent: send no appends
    /// until it is applied (or fails).
    Snapshot,
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressState::Probe => "StateProbe",
            ProgressState::Replicate => "StateReplicate",
            ProgressState::Snapshot => "StateSnapshot",
        })
    }
}

/// A follower's progress in the leader's view: how far its log is known to
/// match, what to send next, and the flow-control state.
///
/// Invariants: `matched < next`; in [`ProgressState::Snapshot`],
/// `next == pending_snapshot + 1` and `sent_commit == pending_snapshot`.
///
/// The raft state machine drives the transitions; everyone else reads the
/// getters (for instance through a status snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The index up to which the follower's log is known to match the
    /// leader's.
    pub(crate) matched: u64,
    /// The index of the next entry to send. Entries in `(matched, next)`
    /// are already in flight.
    pub(crate) next: u64,
    /// The highest commit index in flight to the follower. Monotonic except
    /// when falling back to probing or on a rejection.
    pub(crate) sent_commit: u64,
    /// How the leader talks to the follower.
    pub(crate) state: ProgressState,
    /// In [`ProgressState::Snapshot`], the index of the snapshot sent.
    pub(crate) pending_snapshot: u64,
    /// Whether the follower was heard from recently (reset by the leader
    /// every election timeout when checking the quorum).
    pub(crate) recent_active: bool,
    /// Whether appends are throttled: in probe state after a probe was
    /// sent, in replicate state when the inflight window is full. Cleared by
    /// a heartbeat response or an accepted append.
    pub(crate) msg_app_flow_paused: bool,
    /// The appends in flight.
    pub(crate) inflights: Inflights,
    /// Whether the node is a learner (replicated to, but not voting).
    pub(crate) is_learner: bool,
}

impl Progress {
    /// A voter in [`ProgressState::Probe`] with nothing matched, about to be
    /// sent `next`, and an empty inflight window.
    ///
    /// # Panics
    /// If `next` is 0: the first log index is 1 (a programmer error).
    pub(crate) fn new(next: u64, inflights: Inflights) -> Progress {
        assert!(next >= 1, "progress next index must be at least 1, got {next}");
        Progress {
            matched: 0,
            next,
            sent_commit: 0,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            msg_app_flow_paused: false,
            inflights,
            is_learner: false,
        }
    }

    /// The index up to which the follower's log is known to match.
    pub fn matched(&self) -> u64 {
        self.matched
    }

    /// The index of the next entry to send.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The highest commit index in flight to the follower.
    pub fn sent_commit(&self) -> u64 {
        self.sent_commit
    }

    /// How the leader talks to the follower.
    pub fn state(&self) -> ProgressState {
        self.state
    }

    /// The index of the snapshot in flight ([`ProgressState::Snapshot`]),
    /// else 0.
    pub fn pending_snapshot(&self) -> u64 {
        self.pending_snapshot
    }

    /// Whether the follower was heard from recently.
    pub fn recent_active(&self) -> bool {
        self.recent_active
    }

    /// Whether appends to the follower are throttled.
    pub fn msg_app_flow_paused(&self) -> bool {
        self.msg_app_flow_paused
    }

    /// The appends in flight.
    pub fn inflights(&self) -> &Inflights {
        &self.inflights
    }

    /// Whether the node is a learner.
    pub fn is_learner(&self) -> bool {
        self.is_learner
    }

    /// Moves to `state`, unpausing the flow, forgetting any pending snapshot
    /// and emptying the inflight window.
    pub(crate) fn reset_state(&mut self, state: ProgressState) {
        self.msg_app_flow_paused = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    /// Falls back to probing from `matched + 1`, or, after a snapshot was
    /// sent, from just past the snapshot (it was delivered).
    pub(crate) fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending_snapshot = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = (self.matched + 1).max(pending_snapshot + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched + 1;
        }
        self.sent_commit = self.sent_commit.min(self.next - 1);
    }

    /// Starts streaming appends from `matched + 1`.
    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    /// Stops appends while the snapshot at `snapshot_index` is delivered.
    pub(crate) fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
        self.next = snapshot_index + 1;
        self.sent_commit = snapshot_index;
    }

    /// Accounts for an append of `n_entries` entries (`bytes` of payload)
    /// sent starting at `next`: in replicate state the entries go in flight
    /// and `next` moves past them; a probe that carries entries pauses the
    /// flow until the follower answers.
    ///
    /// # Panics
    /// In [`ProgressState::Snapshot`], where nothing may be appended (a
    /// programmer error).
    pub(crate) fn update_on_entries_send(&mut self, n_entries: usize, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if n_entries > 0 {
                    self.next += n_entries as u64;
                    self.inflights.add(self.next - 1, bytes);
                }
                // A message that fills (or finds full) the window counts as
                // a probe: pause until the follower answers.
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe => {
                if n_entries > 0 {
                    self.msg_app_flow_paused = true;
                }
            }
            ProgressState::Snapshot => {
                panic!("sending append in unhandled state {}", self.state)
            }
        }
    }

    /// Whether sending commit index `index` could advance the follower's
    /// commit index: it is above what was sent, and what was sent does not
    /// already cover everything up to `next - 1`.
    pub(crate) fn can_bump_commit(&self, index: u64) -> bool {
        index > self.sent_commit && self.sent_commit < self.next - 1
    }

    /// Records that commit index `commit` was sent to the follower.
    pub(crate) fn update_on_commit_send(&mut self, commit: u64) {
        self.sent_commit = commit;
    }

    /// Handles an accepted append up to index `n`: returns false if the
    /// answer is stale (`n <= matched`), else advances `matched` (and `next`
    /// if needed) and unpauses the flow.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        if n <= self.matched {
            return false;
        }
        self.matched = n;
        // `n` comes off the wire: wrap on overflow as etcd does rather than
        // panic.
        self.next = self.next.max(n.wrapping_add(1));
        self.msg_app_flow_paused = false;
        true
    }

    /// Handles a rejected append at index `rejected`, with the follower's
    /// hint that its log may match up to `match_hint`. Returns false if the
    /// rejection is stale (answers can be reordered or duplicated); else
    /// lowers `next` sensibly and clears the flow for sending.
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Everything up to `matched` was acknowledged: a rejection at or
            // below it is stale.
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            self.sent_commit = self.sent_commit.min(self.next - 1);
            return true;
        }
        // Outside replicate state one append is probed at a time, so a
        // rejection of anything but the last probe is stale.
        if self.next - 1 != rejected {
            return false;
        }
        // `match_hint` comes off the wire: wrap on overflow as etcd does
        // rather than panic.
        self.next = rejected.min(match_hint.wrapping_add(1)).max(self.matched + 1);
        self.sent_commit = self.sent_commit.min(self.next - 1);
        self.msg_app_flow_paused = false;
        true
    }

    /// Whether sending appends to this follower is throttled: the flow is
    /// paused, or a snapshot is being delivered.
    #[inline]
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Replicate => self.msg_app_flow_paused,
            ProgressState::Snapshot => true,
        }
    }
}

/// etcd's form: `StateReplicate match=11 next=15 paused inflight=3[full]`.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} match={} next={}", self.state, self.matched, self.next)?;
        if self.is_learner {
            f.write_str(" learner")?;
        }
        if self.is_paused() {
            f.write_str(" paused")?;
        }
        if self.pending_snapshot > 0 {
            write!(f, " pendingSnap={}", self.pending_snapshot)?;
        }
        if !self.recent_active {
            f.write_str(" inactive")?;
        }
        let n = self.inflights.count();
        if n > 0 {
            write!(f, " inflight={n}")?;
            if self.inflights.full() {
                f.write_str("[full]")?;
            }
        }
        Ok(())
    }
}

/// The progress of every tracked node (voters and learners), by id. Iterates
/// in id order.
///
/// A vector sorted by id rather than a tree: a cluster tracks a handful of
/// nodes, and the leader looks one up several times per message, which a
/// short scan answers faster than a B-tree search.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProgressMap {
    /// Sorted by id, ids unique.
    entries: Vec<(u64, Progress)>,
}

/// Up to this many nodes are searched by a linear scan, beyond it by
/// bisection.
const LINEAR_SEARCH_MAX: usize = 8;

impl ProgressMap {
    /// An empty map.
    pub fn new() -> ProgressMap {
        ProgressMap::default()
    }

    /// Where `id` is (`Ok`), or where it would be inserted (`Err`).
    #[inline]
    fn find(&self, id: u64) -> Result<usize, usize> {
        if self.entries.len() <= LINEAR_SEARCH_MAX {
            for (i, &(k, _)) in self.entries.iter().enumerate() {
                if k >= id {
                    return if k == id { Ok(i) } else { Err(i) };
                }
            }
            return Err(self.entries.len());
        }
        self.entries.binary_search_by_key(&id, |&(k, _)| k)
    }

    /// The number of tracked nodes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no node is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `id` is, if tracked: [`find`](ProgressMap::find) without the
    /// insertion point, so a short scan compares for equality only.
    #[inline]
    fn position(&self, id: u64) -> Option<usize> {
        if self.entries.len() <= LINEAR_SEARCH_MAX {
            return self.entries.iter().position(|&(k, _)| k == id);
        }
        self.find(id).ok()
    }

    /// The id and progress of the `i`th tracked node in id order (`i <
    /// len()`), to walk the map while changing other state.
    #[inline]
    pub(crate) fn nth(&self, i: usize) -> (u64, &Progress) {
        let (id, pr) = &self.entries[i];
        (*id, pr)
    }

    /// [`nth`](ProgressMap::nth), to update the progress.
    #[inline]
    pub(crate) fn nth_mut(&mut self, i: usize) -> (u64, &mut Progress) {
        let (id, pr) = &mut self.entries[i];
        (*id, pr)
    }

    /// The position of `id` in id order, if tracked (for
    /// [`nth`](ProgressMap::nth)).
    #[inline]
    pub(crate) fn index_of(&self, id: u64) -> Option<usize> {
        self.position(id)
    }

    /// Whether `id` is tracked.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.position(id).is_some()
    }

    /// The progress of `id`.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&Progress> {
        self.position(id).map(|i| &self.entries[i].1)
    }

    /// The progress of `id`, to update it.
    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Progress> {
        self.position(id).map(|i| &mut self.entries[i].1)
    }

    /// Tracks `id` with `progress`, returning what was tracked before.
    pub fn insert(&mut self, id: u64, progress: Progress) -> Option<Progress> {
        match self.find(id) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, progress)),
            Err(i) => {
                self.entries.insert(i, (id, progress));
                None
            }
        }
    }

    /// Stops tracking `id`, returning its progress.
    pub fn remove(&mut self, id: u64) -> Option<Progress> {
        self.position(id).map(|i| self.entries.remove(i).1)
    }

    /// The tracked ids, in increasing order.
    pub fn ids(&self) -> Ids<'_> {
        Ids(self.entries.iter())
    }

    /// Every (id, progress), in id order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// Every (id, progress), in id order, to update them.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }
}

/// The ids of a [`ProgressMap`], in increasing order.
#[derive(Clone, Debug)]
pub struct Ids<'a>(std::slice::Iter<'a, (u64, Progress)>);

impl<'a> Iterator for Ids<'a> {
    type Item = &'a u64;
    fn next(&mut self) -> Option<&'a u64> {
        self.0.next().map(|(id, _)| id)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Ids<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(id, _)| id)
    }
}

impl ExactSizeIterator for Ids<'_> {}

/// The (id, progress) pairs of a [`ProgressMap`], in id order.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (u64, Progress)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a u64, &'a Progress);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(id, pr)| (id, pr))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(id, pr)| (id, pr))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The (id, progress) pairs of a [`ProgressMap`], in id order, mutably.
#[derive(Debug)]
pub struct IterMut<'a>(std::slice::IterMut<'a, (u64, Progress)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a u64, &'a mut Progress);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(id, pr)| (&*id, pr))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(id, pr)| (&*id, pr))
    }
}

impl ExactSizeIterator for IterMut<'_> {}

impl<'a> IntoIterator for &'a ProgressMap {
    type Item = (&'a u64, &'a Progress);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// As a map from id to progress.
impl fmt::Debug for ProgressMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A node's acknowledged index is its `matched` index.
impl AckedIndexer for ProgressMap {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self.get(voter_id).map(|pr| pr.matched)
    }
}

/// One `id: progress` line per node, in id order, each ending in a newline.
impl fmt::Display for ProgressMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, pr) in self {
            writeln!(f, "{id}: {pr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(state: ProgressState, matched: u64, next: u64) -> Progress {
        let mut pr = Progress::new(next, Inflights::new(256, 0));
        pr.state = state;
        pr.matched = matched;
        pr
    }

    #[test]
    fn display_matches_etcd() {
        let mut ins = Inflights::new(1, 0);
        ins.add(123, 1);
        let pr = Progress {
            matched: 2,
            next: 3,
            sent_commit: 1,
            state: ProgressState::Snapshot,
            pending_snapshot: 123,
            recent_active: false,
            msg_app_flow_paused: true,
            inflights: ins,
            is_learner: true,
        };
        assert_eq!(
            pr.to_string(),
            "StateSnapshot match=2 next=3 learner paused pendingSnap=123 inactive inflight=1[full]"
        );
        let mut pr = progress(ProgressState::Replicate, 11, 15);
        pr.recent_active = true;
        pr.inflights.add(12, 0);
        assert_eq!(pr.to_string(), "StateReplicate match=11 next=15 inflight=1");
        assert_eq!(ProgressState::Probe.to_string(), "StateProbe");
        assert_eq!(ProgressState::Replicate.to_string(), "StateReplicate");
    }

    #[test]
    fn is_paused() {
        let cases = [
            (ProgressState::Probe, false, false),
            (ProgressState::Probe, true, true),
            (ProgressState::Replicate, false, false),
            (ProgressState::Replicate, true, true),
            (ProgressState::Snapshot, false, true),
            (ProgressState::Snapshot, true, true),
        ];
        for (i, (state, paused, want)) in cases.into_iter().enumerate() {
            let mut pr = progress(state, 0, 1);
            pr.msg_app_flow_paused = paused;
            assert_eq!(pr.is_paused(), want, "case {i}");
        }
    }

    #[test]
    fn update_and_decrease_resume_the_flow() {
        let mut pr = progress(ProgressState::Probe, 0, 2);
        pr.msg_app_flow_paused = true;
        assert!(pr.maybe_decr_to(1, 1));
        assert!(!pr.msg_app_flow_paused);
        pr.msg_app_flow_paused = true;
        assert!(pr.maybe_update(2));
        assert!(!pr.msg_app_flow_paused);
    }

    #[test]
    fn become_probe() {
        // (state, pending snapshot, want next); match is 1, next 5.
        let cases = [
            (ProgressState::Replicate, 0, 2),
            // The snapshot was delivered: probe from just past it.
            (ProgressState::Snapshot, 10, 11),
            (ProgressState::Snapshot, 0, 2),
        ];
        for (i, (state, pending, want_next)) in cases.into_iter().enumerate() {
            let mut pr = progress(state, 1, 5);
            pr.pending_snapshot = pending;
            pr.sent_commit = 4;
            pr.inflights.add(3, 10);
            pr.become_probe();
            assert_eq!(pr.state, ProgressState::Probe, "case {i}");
            assert_eq!(pr.matched, 1, "case {i}");
            assert_eq!(pr.next, want_next, "case {i}");
            assert_eq!(pr.sent_commit, 4.min(want_next - 1), "case {i}");
            assert_eq!(pr.pending_snapshot, 0, "case {i}");
            assert_eq!(pr.inflights.count(), 0, "case {i}");
        }
    }

    #[test]
    fn become_replicate_and_snapshot() {
        let mut pr = progress(ProgressState::Probe, 1, 5);
        pr.msg_app_flow_paused = true;
        pr.become_replicate();
        assert_eq!((pr.state, pr.matched, pr.next), (ProgressState::Replicate, 1, 2));
        assert!(!pr.msg_app_flow_paused);

        let mut pr = progress(ProgressState::Probe, 1, 5);
        pr.become_snapshot(10);
        assert_eq!((pr.state, pr.matched, pr.next), (ProgressState::Snapshot, 1, 11));
        assert_eq!((pr.pending_snapshot, pr.sent_commit), (10, 10));
        assert!(pr.is_paused());
    }

    #[test]
    fn maybe_update() {
        let (prev_m, prev_n) = (3, 5);
        // (update, want match, want next, want ok)
        let cases = [
            (prev_m - 1, prev_m, prev_n, false), // match and next never decrease
            (prev_m, prev_m, prev_n, false),
            (prev_m + 1, prev_m + 1, prev_n, true), // match grows, next stays
            (prev_m + 2, prev_m + 2, prev_n + 1, true), // both grow
        ];
        for (i, (update, want_m, want_n, want_ok)) in cases.into_iter().enumerate() {
            let mut pr = progress(ProgressState::Probe, prev_m, prev_n);
            assert_eq!(pr.maybe_update(update), want_ok, "case {i}");
            assert_eq!((pr.matched, pr.next), (want_m, want_n), "case {i}");
        }
    }

    #[test]
    fn maybe_decr_to() {
        // (state, match, next, rejected, hint, want ok, want next)
        let cases = [
            // Replicate, rejected not above match: stale.
            (ProgressState::Replicate, 5, 10, 5, 5, false, 10),
            (ProgressState::Replicate, 5, 10, 4, 4, false, 10),
            // Replicate, rejected above match: back to match+1.
            (ProgressState::Replicate, 5, 10, 9, 9, true, 6),
            // Probe: only a rejection of next-1 counts.
            (ProgressState::Probe, 0, 10, 5, 5, false, 10),
            (ProgressState::Probe, 0, 10, 9, 9, true, 9),
            (ProgressState::Probe, 0, 2, 1, 1, true, 1),
            (ProgressState::Probe, 0, 1, 0, 0, true, 1),
            // Down to min(rejected, hint+1), but never below match+1.
            (ProgressState::Probe, 0, 10, 9, 2, true, 3),
            (ProgressState::Probe, 0, 10, 9, 0, true, 1),
            (ProgressState::Probe, 4, 10, 9, 2, true, 5),
        ];
        for (i, (state, m, n, rejected, hint, want_ok, want_n)) in cases.into_iter().enumerate() {
            let mut pr = progress(state, m, n);
            pr.sent_commit = n - 1;
            assert_eq!(pr.maybe_decr_to(rejected, hint), want_ok, "case {i}");
            assert_eq!((pr.matched, pr.next), (m, want_n), "case {i}");
            assert_eq!(pr.sent_commit, want_n - 1, "case {i}: sent commit follows next");
        }
    }

    #[test]
    fn entries_send_per_state() {
        let mut pr = progress(ProgressState::Replicate, 5, 6);
        pr.inflights = Inflights::new(2, 0);
        pr.update_on_entries_send(3, 30);
        assert_eq!((pr.next, pr.inflights.count()), (9, 1));
        assert!(!pr.msg_app_flow_paused);
        // An empty append (a commit-only probe) adds nothing in flight.
        pr.update_on_entries_send(0, 0);
        assert_eq!((pr.next, pr.inflights.count()), (9, 1));
        pr.update_on_entries_send(1, 10);
        assert_eq!((pr.next, pr.inflights.count()), (10, 2));
        assert!(pr.msg_app_flow_paused, "a full window pauses the flow");
        assert_eq!(pr.inflights.indexes().collect::<Vec<_>>(), vec![8, 9]);

        let mut pr = progress(ProgressState::Probe, 5, 6);
        pr.update_on_entries_send(0, 0);
        assert!(!pr.msg_app_flow_paused);
        pr.update_on_entries_send(2, 20);
        assert!(pr.msg_app_flow_paused);
        assert_eq!(pr.next, 6, "probes do not advance next");

        let result = std::panic::catch_unwind(|| {
            let mut pr = progress(ProgressState::Probe, 5, 6);
            pr.become_snapshot(10);
            pr.update_on_entries_send(1, 1);
        });
        assert!(result.is_err());
    }

    #[test]
    fn commit_bumping() {
        let mut pr = progress(ProgressState::Replicate, 5, 10);
        assert!(pr.can_bump_commit(3));
        pr.update_on_commit_send(7);
        assert!(!pr.can_bump_commit(7));
        assert!(pr.can_bump_commit(8));
        pr.update_on_commit_send(9);
        // Everything up to next-1 is covered already.
        assert!(!pr.can_bump_commit(12));
        assert_eq!(pr.sent_commit(), 9);
    }

    #[test]
    fn getters() {
        let mut pr = Progress::new(7, Inflights::new(3, 100));
        pr.is_learner = true;
        pr.recent_active = true;
        assert_eq!((pr.matched(), pr.next(), pr.sent_commit()), (0, 7, 0));
        assert_eq!((pr.state(), pr.pending_snapshot()), (ProgressState::Probe, 0));
        assert!(pr.is_learner() && pr.recent_active() && !pr.msg_app_flow_paused());
        assert_eq!(pr.inflights().max_count(), 3);
        assert!(std::panic::catch_unwind(|| Progress::new(0, Inflights::new(1, 0))).is_err());
    }

    #[test]
    fn progress_map_keeps_ids_sorted_at_any_size() {
        // Past LINEAR_SEARCH_MAX the lookups bisect; both must agree.
        let ids: Vec<u64> = (0..20u64).map(|i| (i * 7) % 20 * 3 + 1).collect();
        let mut m = ProgressMap::new();
        for (n, &id) in ids.iter().enumerate() {
            assert!(m.insert(id, progress(ProgressState::Probe, id, id + 1)).is_none());
            let mut want: Vec<u64> = ids[..=n].to_vec();
            want.sort_unstable();
            assert_eq!(m.ids().copied().collect::<Vec<_>>(), want);
            for &id in &want {
                assert_eq!(m.get(id).map(|pr| pr.matched), Some(id));
            }
            assert!(!m.contains(0) && !m.contains(2) && !m.contains(100));
        }
        assert_eq!(m.iter().next_back().map(|(&id, _)| id), Some(58));
        assert_eq!(m.iter().len(), 20);
        let old = m.insert(31, progress(ProgressState::Replicate, 5, 6));
        assert_eq!(old.map(|pr| pr.matched), Some(31));
        assert_eq!((m.len(), m.get(31).map(|pr| pr.matched)), (20, Some(5)));
        for &id in &ids {
            assert!(m.remove(id).is_some());
            assert!(m.remove(id).is_none() && !m.contains(id));
        }
        assert!(m.is_empty());
        assert_eq!(format!("{m:?}"), "{}");
    }

    #[test]
    fn progress_map_display_and_access() {
        let mut m = ProgressMap::new();
        assert!(m.is_empty());
        let mut a = progress(ProgressState::Replicate, 3, 4);
        a.recent_active = true;
        m.insert(10, a);
        m.insert(2, progress(ProgressState::Probe, 0, 1));
        assert_eq!(
            m.to_string(),
            "2: StateProbe match=0 next=1 inactive\n10: StateReplicate match=3 next=4\n"
        );
        assert_eq!(m.ids().copied().collect::<Vec<_>>(), vec![2, 10]);
        assert_eq!(m.acked_index(10), Some(3));
        assert_eq!(m.acked_index(3), None);
        assert!(m.contains(2) && !m.contains(3));
        assert_eq!(m.len(), 2);
        if let Some(pr) = m.get_mut(2) {
            pr.matched = 1;
            pr.next = 2;
        }
        assert_eq!(m.get(2).map(|pr| pr.matched), Some(1));
        for (_, pr) in m.iter_mut() {
            pr.recent_active = true;
        }
        assert!((&m).into_iter().all(|(_, pr)| pr.recent_active));
        assert!(m.remove(2).is_some());
        assert_eq!(m.iter().count(), 1);
    }
}
