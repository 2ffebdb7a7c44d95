//! Errors of the WAL, the snapshot files and the disk storage.

use std::path::PathBuf;

/// Why opening, reading or writing the data directory failed. Corruption
/// names the file and the byte offset so an operator can look at it.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The file system refused an operation.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checksum, length or structure check failed away from the torn tail.
    #[error("corrupt WAL file {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record or header.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The directory belongs to another node or cluster.
    #[error(
        "WAL {path} belongs to node {found_node} of cluster {found_cluster}, expected node {node} of cluster {cluster}"
    )]
    Identity {
        /// The segment file whose header disagreed.
        path: PathBuf,
        /// Node id in the header.
        found_node: u64,
        /// Cluster id in the header.
        found_cluster: u64,
        /// Node id asked for.
        node: u64,
        /// Cluster id asked for.
        cluster: u64,
    },
    /// The WAL names a snapshot for which no valid snapshot file exists.
    #[error("no valid snapshot file for the WAL's snapshot at index {index} term {term}")]
    MissingSnapshot {
        /// Index of the newest snapshot the WAL records.
        index: u64,
        /// Its term.
        term: u64,
    },
    /// The caller broke a contract (e.g. compacting past the snapshot).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An earlier write or sync failed. What it covered may be lost while
    /// later writes succeed (a failed fsync may drop the dirty pages it
    /// failed on), so the storage takes no more writes; reopening it finds
    /// what is durable. etcd exits in the same case.
    #[error("an earlier write to the WAL failed; reopen the storage")]
    Failed,
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { path, source }
    }

    pub(crate) fn corrupt(
        path: &std::path::Path,
        offset: u64,
        reason: impl Into<String>,
    ) -> WalError {
        WalError::Corrupt { path: path.to_path_buf(), offset, reason: reason.into() }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;
