//! Small value types of the log: [`EntryId`] names an entry, [`LogSlice`] is a
//! validated run of entries as a leader sends it.

use crate::raftpb::{Entry, Message};
use std::fmt;

/// The identity of a log entry: the term of the leader that created it and its
/// index. A leader creates at most one entry per index in its term, so two
/// entries with the same id are the same entry (the Log Matching property).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryId {
    /// The term of the leader that created the entry.
    pub term: u64,
    /// The entry's position in the log.
    pub index: u64,
}

impl EntryId {
    /// The id of the entry at `index` created in `term`.
    pub const fn new(term: u64, index: u64) -> EntryId {
        EntryId { term, index }
    }

    /// The id of `entry`.
    pub fn of(entry: &Entry) -> EntryId {
        EntryId { term: entry.term, index: entry.index }
    }
}

/// Formats as Go's `%+v` of etcd's `entryID` does (`{term:1 index:2}`), which
/// the texts of [`LogSliceError`] use.
impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{term:{} index:{}}}", self.term, self.index)
    }
}

/// Why a `LogSlice` was refused: the entries cannot be a piece of a Raft
/// log of the given leader term. These come from untrusted input (a message),
/// so they are errors, not panics. Texts follow etcd's `logSlice.valid()`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogSliceError {
    /// Two neighbours are not contiguous, or the term goes down.
    #[error("leader term {term}: entries {prev} and {next} not consistent")]
    Inconsistent {
        /// The slice's leader term.
        term: u64,
        /// The entry before `next` (or the slice's `prev`).
        prev: EntryId,
        /// The entry that does not follow `prev`.
        next: EntryId,
    },
    /// The last entry is from a term after the slice's leader term.
    #[error("leader term {term}: entry {last} has a newer term")]
    NewerTerm {
        /// The slice's leader term.
        term: u64,
        /// The offending last entry (or `prev`).
        last: EntryId,
    },
}

/// A contiguous run of log entries as the leader of `term` has them, following
/// the entry `prev`: what an append message carries.
///
/// A `LogSlice` can only be built through [`LogSlice::new`], which checks what
/// etcd's `logSlice.valid()` checks, so code that takes one can rely on it:
/// 1. `entries[i].index == prev.index + 1 + i`;
/// 2. `prev.term <= entries[0].term` and terms never decrease;
/// 3. no entry has a term above `term` (a leader has no entries from later
///    terms).
#[derive(Clone, Debug, PartialEq)]
pub struct LogSlice {
    term: u64,
    prev: EntryId,
    entries: Vec<Entry>,
}

impl LogSlice {
    /// Validates and builds the slice of leader `term` holding `entries`
    /// right after `prev`.
    pub fn new(term: u64, prev: EntryId, entries: Vec<Entry>) -> Result<LogSlice, LogSliceError> {
        validate(term, prev, &entries)?;
        Ok(LogSlice { term, prev, entries })
    }

    /// The slice an append message `m` carries (leader term `m.term`, after
    /// `(m.log_term, m.index)`), taking its entries. Fails, leaving `m`
    /// unchanged, if they do not form a valid slice.
    pub fn from_msg_app(m: &mut Message) -> Result<LogSlice, LogSliceError> {
        let prev = EntryId::new(m.log_term, m.index);
        validate(m.term, prev, &m.entries)?;
        Ok(LogSlice { term: m.term, prev, entries: std::mem::take(&mut m.entries) })
    }

    /// [`from_msg_app`](LogSlice::from_msg_app) for a message the gateway
    /// already validated (`RawNode::step` refuses malformed appends before
    /// the state machine sees them): takes the entries without walking them
    /// a second time. Debug builds still check.
    pub(crate) fn from_validated_msg_app(m: &mut Message) -> LogSlice {
        let prev = EntryId::new(m.log_term, m.index);
        debug_assert!(
            validate(m.term, prev, &m.entries).is_ok(),
            "an unvalidated MsgApp reached the state machine"
        );
        LogSlice { term: m.term, prev, entries: std::mem::take(&mut m.entries) }
    }

    /// The leader term whose log this slice is part of.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The entry just before the first one.
    pub fn prev(&self) -> EntryId {
        self.prev
    }

    /// The entries, in index order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes the entries out of the slice.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// The index of the last entry, or `prev.index` when there is none.
    pub fn last_index(&self) -> u64 {
        self.prev.index + self.entries.len() as u64
    }

    /// The id of the last entry, or `prev` when there is none.
    pub fn last_entry_id(&self) -> EntryId {
        self.entries.last().map_or(self.prev, EntryId::of)
    }
}

/// Checks, without taking them, that an append message's entries form a
/// valid slice, so that malformed messages are refused at the gateway.
pub(crate) fn validate_msg_app(m: &Message) -> Result<(), LogSliceError> {
    validate(m.term, EntryId::new(m.log_term, m.index), &m.entries)
}

fn validate(term: u64, prev: EntryId, entries: &[Entry]) -> Result<(), LogSliceError> {
    // Every append a follower receives passes here: check the whole run
    // without a branch per entry first, and look for the culprit (below)
    // only when something is wrong.
    if prev.index.checked_add(entries.len() as u64).is_some() {
        let (mut ok, mut index, mut last_term) = (true, prev.index, prev.term);
        for e in entries {
            // No overflow: the last index fits, checked above.
            index += 1;
            ok &= (e.index == index) & (e.term >= last_term);
            last_term = e.term;
        }
        if ok && term >= last_term {
            return Ok(());
        }
    }
    let mut last = prev;
    for e in entries {
        let id = EntryId::of(e);
        if id.term < last.term || Some(id.index) != last.index.checked_add(1) {
            return Err(LogSliceError::Inconsistent { term, prev: last, next: id });
        }
        last = id;
    }
    if term < last.term {
        return Err(LogSliceError::NewerTerm { term, last });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn e(index: u64, term: u64) -> Entry {
        Entry::new(term, index, Bytes::new())
    }

    #[test]
    fn entry_id_formats_like_go() {
        assert_eq!(EntryId::new(1, 2).to_string(), "{term:1 index:2}");
        assert_eq!(EntryId::of(&e(7, 3)), EntryId::new(3, 7));
    }

    #[test]
    fn log_slice_validation() {
        let id = EntryId::new;
        // (term, prev, entries, error text or "")
        let cases: Vec<(u64, EntryId, Vec<Entry>, &str)> = vec![
            (0, id(0, 0), vec![], ""),
            (1, id(1, 1), vec![], ""),
            (1, id(2, 1), vec![], "leader term 1: entry {term:2 index:1} has a newer term"),
            (1, id(1, 1), vec![e(2, 1)], ""),
            (5, id(1, 1), vec![e(2, 1), e(3, 4), e(4, 4), e(5, 5)], ""),
            (
                5,
                id(1, 1),
                vec![e(2, 1), e(3, 4), e(4, 3)],
                "leader term 5: entries {term:4 index:3} and {term:3 index:4} not consistent",
            ),
            (
                5,
                id(1, 1),
                vec![e(3, 1)],
                "leader term 5: entries {term:1 index:1} and {term:1 index:3} not consistent",
            ),
            (
                5,
                id(2, 1),
                vec![e(2, 1)],
                "leader term 5: entries {term:2 index:1} and {term:1 index:2} not consistent",
            ),
            (
                3,
                id(1, 1),
                vec![e(2, 2), e(3, 4)],
                "leader term 3: entry {term:4 index:3} has a newer term",
            ),
            (
                9,
                id(1, u64::MAX),
                vec![e(0, 1)],
                "leader term 9: entries {term:1 index:18446744073709551615} and {term:1 index:0} \
                 not consistent",
            ),
            (9, id(1, u64::MAX - 1), vec![e(u64::MAX, 1)], ""),
            (9, id(1, u64::MAX), vec![], ""),
        ];
        for (term, prev, entries, want) in cases {
            let n = entries.len() as u64;
            let last = entries.last().map_or(prev, EntryId::of);
            match LogSlice::new(term, prev, entries) {
                Ok(s) => {
                    assert_eq!(want, "", "term {term} prev {prev}");
                    assert_eq!((s.term(), s.prev(), s.last_index()), (term, prev, prev.index + n));
                    assert_eq!(s.last_entry_id(), last);
                }
                Err(err) => assert_eq!(err.to_string(), want),
            }
        }
    }

    #[test]
    fn from_msg_app_takes_entries_only_when_valid() {
        let mut m = Message { term: 2, log_term: 1, index: 5, ..Message::default() };
        m.entries = vec![e(6, 2), e(7, 2)];
        let s = LogSlice::from_msg_app(&mut m).unwrap();
        assert_eq!((s.term(), s.prev(), s.entries().len()), (2, EntryId::new(1, 5), 2));
        assert!(m.entries.is_empty());
        let mut bad = Message { term: 1, log_term: 1, index: 5, ..Message::default() };
        bad.entries = vec![e(6, 2)];
        assert!(LogSlice::from_msg_app(&mut bad).is_err());
        assert_eq!(bad.entries.len(), 1);
        assert_eq!(s.into_entries().len(), 2);
        let mut good = Message { term: 2, log_term: 1, index: 5, ..Message::default() };
        good.entries = vec![e(6, 2)];
        let s = LogSlice::from_validated_msg_app(&mut good);
        assert_eq!((s.term(), s.prev(), s.last_index()), (2, EntryId::new(1, 5), 6));
        assert!(good.entries.is_empty());
    }
}
