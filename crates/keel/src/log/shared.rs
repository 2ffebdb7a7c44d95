//! [`SharedEntries`]: a run of log entries shared, without copying, between
//! the unstable log and the `Ready` that hands them out to be persisted.

use crate::raftpb::Entry;
use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// An immutable run of log entries that several owners share: cloning one
/// bumps a single reference count, whatever its length.
///
/// A `Ready`'s `entries` are the unstable log's own: the log keeps reading
/// them (to send appends, to answer term lookups) until they are stable, so
/// it shares them with the `Ready` rather than cloning every entry. It
/// derefs to `[Entry]`; [`into_vec`](SharedEntries::into_vec) gives an owned
/// vector (moving the entries out when nothing else shares them).
#[derive(Clone, Default)]
pub struct SharedEntries {
    /// `None` for no entries (which then cost no allocation).
    buf: Option<Arc<Vec<Entry>>>,
    /// The part of `buf` this run covers.
    start: usize,
    end: usize,
}

impl SharedEntries {
    /// The entries, as an owned vector: moved out when this is the only
    /// owner of all of them, cloned otherwise.
    pub fn into_vec(self) -> Vec<Entry> {
        let Some(buf) = self.buf else { return Vec::new() };
        match Arc::try_unwrap(buf) {
            Ok(mut v) => {
                v.truncate(self.end);
                v.drain(..self.start);
                v
            }
            Err(shared) => shared[self.start..self.end].to_vec(),
        }
    }

    /// The entries at `range` (relative to this run), sharing the same
    /// buffer. Panics if the range is out of bounds.
    pub(crate) fn slice(&self, range: Range<usize>) -> SharedEntries {
        assert!(range.start <= range.end && range.end <= self.len(), "{range:?} of {}", self.len());
        if range.is_empty() {
            return SharedEntries::default();
        }
        SharedEntries {
            buf: self.buf.clone(),
            start: self.start + range.start,
            end: self.start + range.end,
        }
    }

    /// Keeps the first `len` entries.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
        if self.is_empty() {
            *self = SharedEntries::default();
        }
    }

    /// Extends this run with `next` when `next` follows it in the same
    /// buffer (as the pieces of one run do); returns whether it did.
    pub(crate) fn try_extend(&mut self, next: &SharedEntries) -> bool {
        match (&self.buf, &next.buf) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) && self.end == next.start => {
                self.end = next.end;
                true
            }
            _ => false,
        }
    }

    /// Drops the first `n` entries (all of them if there are fewer).
    pub(crate) fn advance(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.is_empty() {
            *self = SharedEntries::default();
        }
    }
}

impl Deref for SharedEntries {
    type Target = [Entry];
    #[inline]
    fn deref(&self) -> &[Entry] {
        match &self.buf {
            Some(buf) => &buf[self.start..self.end],
            None => &[],
        }
    }
}

impl From<Vec<Entry>> for SharedEntries {
    fn from(v: Vec<Entry>) -> SharedEntries {
        if v.is_empty() {
            return SharedEntries::default();
        }
        let end = v.len();
        SharedEntries { buf: Some(Arc::new(v)), start: 0, end }
    }
}

impl From<SharedEntries> for Vec<Entry> {
    fn from(s: SharedEntries) -> Vec<Entry> {
        s.into_vec()
    }
}

impl<'a> IntoIterator for &'a SharedEntries {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for SharedEntries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Equal when the entries are, wherever they are kept.
impl PartialEq for SharedEntries {
    fn eq(&self, other: &SharedEntries) -> bool {
        **self == **other
    }
}

impl PartialEq<[Entry]> for SharedEntries {
    fn eq(&self, other: &[Entry]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<Entry>> for SharedEntries {
    fn eq(&self, other: &Vec<Entry>) -> bool {
        **self == **other
    }
}

impl PartialEq<SharedEntries> for Vec<Entry> {
    fn eq(&self, other: &SharedEntries) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ents(n: u64) -> Vec<Entry> {
        (1..=n).map(|i| Entry::new(1, i, Bytes::from(vec![i as u8; 3]))).collect()
    }

    #[test]
    fn slices_share_one_buffer() {
        let all = SharedEntries::from(ents(5));
        assert_eq!(all, ents(5));
        let mid = all.slice(1..4);
        assert_eq!(mid.iter().map(|e| e.index).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(std::ptr::eq(&all[1], &mid[0]), "no copy");
        assert!(all.slice(2..2).is_empty());
        let mut m = mid.clone();
        m.advance(1);
        m.truncate(1);
        assert_eq!(m.iter().map(|e| e.index).collect::<Vec<_>>(), [3]);
        m.advance(5);
        assert!(m.is_empty());
        assert_eq!(m, SharedEntries::default());
        // Shared: cloned out; sole owner: moved out, narrowed to the run.
        assert_eq!(mid.clone().into_vec(), ents(5)[1..4].to_vec());
        drop(all);
        let first = mid.as_ptr();
        let v = mid.into_vec();
        assert_eq!(v, ents(5)[1..4].to_vec());
        assert_ne!(first, v.as_ptr(), "the prefix was drained");
        assert!(SharedEntries::default().into_vec().is_empty());
        assert!(SharedEntries::from(Vec::new()).buf.is_none());
    }

    #[test]
    fn adjacent_pieces_of_one_run_join() {
        let all = SharedEntries::from(ents(5));
        let mut head = all.slice(0..2);
        assert!(!head.try_extend(&all.slice(3..5)), "not adjacent");
        assert!(!head.try_extend(&SharedEntries::from(ents(5)).slice(2..5)), "another buffer");
        assert!(!head.try_extend(&SharedEntries::default()));
        assert_eq!(head.len(), 2);
        assert!(head.try_extend(&all.slice(2..4)));
        assert_eq!(head, ents(4));
        assert!(std::ptr::eq(&all[3], &head[3]), "no copy");
    }

    #[test]
    fn debug_and_equality_are_the_slices() {
        let s = SharedEntries::from(ents(2));
        assert_eq!(format!("{s:?}"), format!("{:?}", ents(2)));
        assert_eq!(s, *ents(2).as_slice());
        assert_ne!(s, ents(3));
    }
}
