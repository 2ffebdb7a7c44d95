//! Where the stable part of the Raft log lives: the [`Storage`] trait the core
//! reads through, its errors, and [`MemoryStorage`], the in-memory
//! implementation tests and simple applications use.
//!
//! The core only reads storage. The application writes to it (appending the
//! entries and installing the snapshots a `Ready` hands out) before it tells
//! the core they are stable. The layout and error semantics are etcd-raft's.

mod memory;

pub use memory::{MemoryStorage, MemoryStorageCallStats};

use crate::raftpb::{ConfState, Entry, HardState, Snapshot};
use prost::Message as _;
use std::sync::Arc;

/// Why a [`Storage`] call could not answer. The first four are the expected,
/// recoverable conditions etcd-raft defines (the texts are etcd's); `Other`
/// carries a real storage engine's failure (I/O, corruption).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The requested index is older than the first one kept: it was folded
    /// into a snapshot. The leader answers this by sending the snapshot.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// A snapshot was requested or offered at an index older than the one the
    /// storage already has.
    #[error("requested index is older than the existing snapshot")]
    SnapOutOfDate,
    /// The requested entry is not (yet) in the storage.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// The storage is still preparing a snapshot; the leader retries later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Any other failure of the storage engine. The core cannot recover from
    /// it where etcd-raft cannot either (it panics with the error, see the
    /// `log` module docs); it is returned where a caller can act on it.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl StorageError {
    /// Whether this is one of the two "index out of range" answers
    /// ([`Compacted`](StorageError::Compacted) or
    /// [`Unavailable`](StorageError::Unavailable)) that the log treats as "term
    /// unknown" rather than as a failure.
    pub fn is_out_of_bounds(&self) -> bool {
        matches!(self, StorageError::Compacted | StorageError::Unavailable)
    }
}

/// Read access to the stable log, the persisted `HardState` and the latest
/// snapshot: what a Raft node needs from its disk.
///
/// The log a storage holds is contiguous: it covers indexes
/// `first_index()..=last_index()`, and the term of `first_index() - 1` (the
/// last index the snapshot covers) is still known. If a method returns an error
/// other than the documented ones, the node cannot go on (etcd-raft panics in
/// that case, and so does the core: see the `log` module).
///
/// Methods take `&self`: an implementation shared with the storage and apply
/// threads of asynchronous storage writes uses interior mutability, as
/// [`MemoryStorage`] does.
pub trait Storage {
    /// The persisted `HardState` and the `ConfState` of the latest snapshot,
    /// read once when a node starts.
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError>;

    /// Appends to `out` the entries with indexes in `lo..hi`, in order, at
    /// most `max_size` bytes in protobuf encoding, but always at least one
    /// entry when `lo < hi`. Entries already in `out` are left alone and do
    /// not count towards `max_size`.
    ///
    /// The caller owns the buffer, so the node builds a `Ready`'s committed
    /// entries and an append message's entries in place, without an
    /// intermediate vector; an implementation only pushes what it holds or
    /// decodes (cloning an [`Entry`] shares its payload).
    ///
    /// Returns [`StorageError::Compacted`] if `lo` has been compacted away and
    /// [`StorageError::Unavailable`] if some entry in the range is missing;
    /// on an error `out` may hold a prefix of the range, which the caller
    /// discards. Implementations may panic if `hi > last_index() + 1`
    /// (etcd's `MemoryStorage` does: the caller broke its contract).
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError>;

    /// [`entries`](Storage::entries) into a new vector: for tests and tools
    /// that read the log once.
    fn entries_vec(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        self.entries(lo, hi, max_size, &mut out)?;
        Ok(out)
    }

    /// The term of entry `index`, for `index` in
    /// `first_index() - 1..=last_index()`: the term of the entry just before
    /// the first one is kept for matching, even though the entry is gone.
    ///
    /// Returns [`StorageError::Compacted`] below that range and
    /// [`StorageError::Unavailable`] above it.
    fn term(&self, index: u64) -> Result<u64, StorageError>;

    /// The index of the first entry that may be available through
    /// [`entries`](Storage::entries); older entries are in the snapshot. When
    /// the log is empty this is `last_index() + 1`.
    fn first_index(&self) -> Result<u64, StorageError>;

    /// The index of the last entry in the log (the snapshot's index when there
    /// is no entry after it).
    fn last_index(&self) -> Result<u64, StorageError>;

    /// The most recent snapshot. Returns
    /// [`StorageError::SnapshotTemporarilyUnavailable`] while one is being
    /// prepared, so that the leader can try again later.
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
}

macro_rules! forward_storage {
    ($($target:tt)*) => {
        fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
            $($target)*::initial_state(self)
        }
        fn entries(
            &self,
            lo: u64,
            hi: u64,
            max_size: u64,
            out: &mut Vec<Entry>,
        ) -> Result<(), StorageError> {
            $($target)*::entries(self, lo, hi, max_size, out)
        }
        fn term(&self, index: u64) -> Result<u64, StorageError> {
            $($target)*::term(self, index)
        }
        fn first_index(&self) -> Result<u64, StorageError> {
            $($target)*::first_index(self)
        }
        fn last_index(&self) -> Result<u64, StorageError> {
            $($target)*::last_index(self)
        }
        fn snapshot(&self) -> Result<Snapshot, StorageError> {
            $($target)*::snapshot(self)
        }
    };
}

/// A shared reference reads the same storage, so a node can borrow one that
/// the application keeps writing to.
impl<S: Storage + ?Sized> Storage for &S {
    forward_storage!(S);
}

/// Shared ownership, for storages shared with other threads.
impl<S: Storage + ?Sized> Storage for Arc<S> {
    forward_storage!(S);
}

/// Boxed storages, for choosing the implementation at run time.
impl<S: Storage + ?Sized> Storage for Box<S> {
    forward_storage!(S);
}

/// The total protobuf-encoded size of `ents`, the measure every size limit of
/// the core uses (as etcd's `entsSize` does).
pub fn ents_size(ents: &[Entry]) -> u64 {
    ents.iter().map(|e| e.encoded_len() as u64).fold(0, u64::saturating_add)
}

/// [`ents_size`] and the payload bytes of `ents` (what the uncommitted-log
/// quota counts), in one pass.
pub(crate) fn ents_and_payloads_size(ents: &[Entry]) -> (u64, u64) {
    ents.iter().fold((0u64, 0u64), |(size, payloads), e| {
        (size.saturating_add(e.encoded_len() as u64), payloads + e.data.len() as u64)
    })
}

/// The most bytes the encoding of an [`Entry`] adds to its payload: four
/// one-byte keys, three varints of at most ten bytes (term, index, and the
/// type, sign-extended when negative) and the payload's length varint.
const ENTRY_OVERHEAD_MAX: u64 = 4 + 3 * 10 + 10;

/// An upper bound on [`ents_size`] from the payload lengths alone, much
/// cheaper than encoding each entry's size: enough to show that a batch is
/// far below a limit.
/// `len` is the number of entries `ents` yields.
pub(crate) fn ents_size_bound<'a>(ents: impl Iterator<Item = &'a Entry>, len: usize) -> u64 {
    // The payload lengths are summed on their own and the overhead added
    // once: one addition per entry, on a path that sees every entry a
    // leader sends.
    let payloads = ents.fold(0u64, |sum, e| sum.saturating_add(e.data.len() as u64));
    payloads.saturating_add((len as u64).saturating_mul(ENTRY_OVERHEAD_MAX))
}

/// How many entries of `ents`, from the front, fit in `max_size` bytes of
/// protobuf encoding; at least one when `ents` is not empty, even if that
/// entry alone is larger, so that progress is always possible.
pub fn limit_len(ents: &[Entry], max_size: u64) -> usize {
    limit_count(ents.iter(), ents.len(), max_size)
}

/// [`limit_len`] over any sequence of `len` entries (a `VecDeque`'s range,
/// runs of the unstable log, ...).
pub(crate) fn limit_count<'a, I>(ents: I, len: usize, max_size: u64) -> usize
where
    I: Iterator<Item = &'a Entry> + Clone,
{
    if max_size == u64::MAX {
        // Sizes add up saturating, so nothing exceeds this: skip measuring.
        return len;
    }
    // Usually everything fits by far (a Ready's or a message's worth of
    // entries against a 1 MiB limit): a bound from the payload lengths
    // alone settles that without encoding sizes entry by entry.
    if ents_size_bound(ents.clone(), len) <= max_size {
        return len;
    }
    let mut size = 0u64;
    for (n, e) in ents.enumerate() {
        size = size.saturating_add(e.encoded_len() as u64);
        // The first entry always counts, so that progress is possible.
        if n > 0 && size > max_size {
            return n;
        }
    }
    len
}

/// The longest prefix of `ents` within `max_size` bytes of protobuf encoding,
/// never empty unless `ents` is (etcd's `limitSize`).
pub fn limit_size(ents: &[Entry], max_size: u64) -> &[Entry] {
    &ents[..limit_len(ents, max_size)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ent(index: u64, term: u64, len: usize) -> Entry {
        Entry::new(term, index, Bytes::from(vec![b'x'; len]))
    }

    #[test]
    fn error_texts_are_etcds() {
        assert_eq!(
            StorageError::Compacted.to_string(),
            "requested index is unavailable due to compaction"
        );
        assert_eq!(
            StorageError::SnapOutOfDate.to_string(),
            "requested index is older than the existing snapshot"
        );
        assert_eq!(
            StorageError::Unavailable.to_string(),
            "requested entry at index is unavailable"
        );
        assert_eq!(
            StorageError::SnapshotTemporarilyUnavailable.to_string(),
            "snapshot is temporarily unavailable"
        );
        let other = StorageError::Other("disk on fire".into());
        assert_eq!(other.to_string(), "disk on fire");
        assert!(!other.is_out_of_bounds());
        assert!(StorageError::Compacted.is_out_of_bounds());
        assert!(StorageError::Unavailable.is_out_of_bounds());
    }

    #[test]
    fn limit_size_keeps_a_prefix_of_at_least_one() {
        let ents: Vec<Entry> = (1..=4).map(|i| ent(i, 1, 10)).collect();
        let one = ents[0].encoded_len() as u64;
        assert_eq!(ents_size(&ents), 4 * one);
        let payloads = crate::util::payloads_size(&ents);
        assert_eq!(ents_and_payloads_size(&ents), (4 * one, payloads));
        let cases: &[(u64, usize)] = &[
            (0, 1),
            (one - 1, 1),
            (one, 1),
            (2 * one - 1, 1),
            (2 * one, 2),
            (3 * one + 1, 3),
            (4 * one, 4),
            (u64::MAX, 4),
        ];
        for &(max, want) in cases {
            assert_eq!(limit_size(&ents, max).len(), want, "max_size {max}");
        }
        assert!(limit_size(&[], 0).is_empty());
        assert_eq!(ents_size(&[]), 0);
        assert_eq!(ents_and_payloads_size(&[]), (0, 0));
    }

    #[test]
    fn entry_overhead_bound_holds_at_the_extremes() {
        let huge =
            Entry { term: u64::MAX, index: u64::MAX, entry_type: Some(-1), data: Bytes::new() };
        assert!(huge.encoded_len() as u64 <= ENTRY_OVERHEAD_MAX);
        let with_data = Entry { data: Bytes::from(vec![0; 300]), ..huge.clone() };
        assert!(with_data.encoded_len() as u64 <= ENTRY_OVERHEAD_MAX + 300);
        // The bound is what lets limit_len skip measuring; it must not change
        // the answer near the limit either.
        let ents: Vec<Entry> = (1..=100).map(|i| ent(i, 1, 128)).collect();
        let exact = ents_size(&ents);
        for max in [exact - 1, exact, exact + 1, exact + 100 * ENTRY_OVERHEAD_MAX] {
            let slow = ents
                .iter()
                .scan(0u64, |sum, e| {
                    *sum += e.encoded_len() as u64;
                    Some(*sum)
                })
                .take_while(|&sum| sum <= max)
                .count()
                .max(1);
            assert_eq!(limit_len(&ents, max), slow, "max_size {max}");
        }
    }

    #[test]
    fn forwarding_impls_read_the_same_storage() {
        let ms = MemoryStorage::new();
        ms.append(&[ent(1, 1, 0), ent(2, 1, 0)]).unwrap();
        fn last<S: Storage>(s: S) -> u64 {
            s.last_index().unwrap()
        }
        assert_eq!(last(&ms), 2);
        assert_eq!(last(Arc::new(ms.clone())), 2);
        let boxed: Box<dyn Storage> = Box::new(ms.clone());
        assert_eq!(last(boxed), 2);
    }
}
