//! The Raft log of one node: [`Unstable`] holds what is not yet persisted,
//! [`RaftLog`] joins it with the [`Storage`](crate::storage::Storage) and keeps
//! the commit and apply cursors. Semantics, log lines and panics are
//! etcd-raft's (`log.go`, `log_unstable.go`, `types.go`).
//!
//! # Layout
//! - `types`: [`EntryId`] and [`LogSlice`], the validated form of the entries
//!   an append message carries.
//! - [`Unstable`]: the unstable tail, with its in-progress marks.
//! - [`SharedEntries`]: entries the unstable tail shares with a `Ready`.
//! - [`RaftLog`]: the whole log, with size-limited reads.
//!
//! Which misuse is an error and which a panic is documented on [`RaftLog`]
//! and [`Unstable`]: out-of-range reads that a race with compaction can cause
//! return [`StorageError`](crate::storage::StorageError); broken invariants
//! panic through the logger, as in etcd.

mod raft_log;
mod shared;
mod types;
mod unstable;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use raft_log::RaftLog;
pub use shared::SharedEntries;
pub(crate) use types::validate_msg_app;
pub use types::{EntryId, LogSlice, LogSliceError};
pub use unstable::Unstable;

/// A size limit that never binds (etcd's `noLimit`).
pub(crate) const NO_LIMIT: u64 = u64::MAX;
