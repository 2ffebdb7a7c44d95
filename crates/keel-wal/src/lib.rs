//! Durable storage for Keel, as etcd's `server/storage/wal` and
//! `etcdserver/api/snap` are for etcd: a segmented write-ahead log with
//! per-record CRC32C, snapshot files, and [`DiskStorage`], a `keel::Storage`
//! built on them. All file access goes through [`fs::FileSystem`], so the
//! simulator can run this code on [`fs::MemFs`], a disk that loses power.

pub mod error;
pub mod fs;
pub mod record;
pub mod snap;
pub mod storage;
pub mod wal;

pub use error::WalError;
pub use fs::{FileSystem, MemFs, StdFs};
pub use storage::{DiskOptions, DiskStorage, PersistRequest};
pub use wal::{PendingSync, Wal, WalOptions};
