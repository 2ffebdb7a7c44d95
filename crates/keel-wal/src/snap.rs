//! Snapshot files, `{term:016x}-{index:016x}.snap`: `KEELSNP1`, a CRC32C of
//! the body, the body's length, then the prost-encoded `Snapshot`. Written to a
//! temporary file, synced, renamed into place and the directory synced, so a
//! crash leaves either the old set of files or the new one.

use crate::error::{Result, WalError};
use crate::fs::{FileSystem, read_all};
use keel::raftpb::{Snapshot, SnapshotMetadata};
use prost::Message as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"KEELSNP1";
const HEADER: usize = 20;

/// The snapshot directory.
#[derive(Debug)]
pub struct SnapStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    keep: usize,
}

/// Why a snapshot file was not usable.
#[derive(Debug, thiserror::Error)]
pub enum SnapFileError {
    /// Shorter than its header or its declared length.
    #[error("snapshot file {0} is truncated")]
    Truncated(PathBuf),
    /// Wrong magic number.
    #[error("snapshot file {0} has a bad magic number")]
    Magic(PathBuf),
    /// The checksum does not match.
    #[error("snapshot file {0} fails its checksum")]
    Checksum(PathBuf),
    /// The body is not a `Snapshot`.
    #[error("snapshot file {0} does not decode: {1}")]
    Decode(PathBuf, prost::DecodeError),
}

fn name(s: &Snapshot) -> String {
    meta_name(&s.metadata)
}

fn meta_name(m: &SnapshotMetadata) -> String {
    format!("{:016x}-{:016x}.snap", m.term, m.index)
}

impl SnapStore {
    /// The store in `dir`, keeping the `keep` newest files (at least one).
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, keep: usize) -> Result<SnapStore> {
        fs.create_dir_all(dir).map_err(WalError::io(dir))?;
        Ok(SnapStore { fs, dir: dir.to_path_buf(), keep: keep.max(1) })
    }

    /// Durably writes `snap`. Old files stay until [`SnapStore::purge`], which
    /// must wait until the WAL marker of `snap` is durable: until then, the
    /// newest durable marker's file is the one a restart needs.
    pub fn save(&self, snap: &Snapshot) -> Result<()> {
        // Encoded in place behind its header: a snapshot is as large as the
        // application's state, and a second copy of it would be the peak of
        // the process's memory.
        let body_len = snap.encoded_len();
        let mut buf = Vec::with_capacity(HEADER + body_len);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&(body_len as u64).to_le_bytes());
        snap.encode(&mut buf).map_err(|e| WalError::Invalid(format!("snapshot encoding: {e}")))?;
        let crc = crc32c::crc32c(&buf[HEADER..]);
        buf[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&crc.to_le_bytes());
        let path = self.dir.join(name(snap));
        let tmp = self.dir.join(format!("{}.tmp", name(snap)));
        (|| {
            self.fs.set_len(&tmp, 0)?;
            self.fs.write_at(&tmp, 0, &buf)?;
            self.fs.sync(&tmp)?;
            self.fs.rename(&tmp, &path)?;
            self.fs.sync_dir(&self.dir)
        })()
        .map_err(WalError::io(&path))
    }

    /// Removes the files a restart can no longer need, once `durable` is the
    /// newest snapshot whose WAL marker is durable: those newer than it
    /// (saved, but their marker never written: a crash came between), and
    /// those beyond the newest `keep` of the rest. Files sort by term, then
    /// index, as snapshots are taken.
    pub fn purge(&self, durable: &SnapshotMetadata) -> Result<()> {
        let durable = meta_name(durable);
        let mut doomed = self.names()?;
        let newer = doomed.iter().rposition(|n| *n <= durable).map_or(0, |i| i + 1);
        // What stays: the `keep` newest files up to `durable`.
        doomed.drain(newer.saturating_sub(self.keep)..newer);
        for name in &doomed {
            let old = self.dir.join(name);
            self.fs.remove(&old).map_err(WalError::io(&old))?;
        }
        if !doomed.is_empty() {
            self.fs.sync_dir(&self.dir).map_err(WalError::io(&self.dir))?;
        }
        Ok(())
    }

    /// Snapshot file names, oldest first.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .fs
            .list(&self.dir)
            .map_err(WalError::io(&self.dir))?
            .into_iter()
            .filter(|n| n.ends_with(".snap"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Renames a snapshot file that failed its checks to `<name>.broken` (as
    /// etcd does), so that it is kept for inspection but never loaded again.
    pub fn quarantine(&self, file: &str) -> Result<()> {
        let from = self.dir.join(file);
        let to = self.dir.join(format!("{file}.broken"));
        self.fs.rename(&from, &to).map_err(WalError::io(&from))?;
        self.fs.sync_dir(&self.dir).map_err(WalError::io(&self.dir))
    }

    /// Reads and checks one snapshot file.
    pub fn load(&self, file: &str) -> Result<Result<Snapshot, SnapFileError>> {
        let path = self.dir.join(file);
        let buf = read_all(self.fs.as_ref(), &path).map_err(WalError::io(&path))?;
        Ok(decode(&path, &buf))
    }
}

fn decode(path: &Path, buf: &[u8]) -> Result<Snapshot, SnapFileError> {
    if buf.len() < HEADER {
        return Err(SnapFileError::Truncated(path.into()));
    }
    if &buf[..8] != MAGIC {
        return Err(SnapFileError::Magic(path.into()));
    }
    let mut len = [0; 8];
    len.copy_from_slice(&buf[12..20]);
    if u64::from_le_bytes(len) != (buf.len() - HEADER) as u64 {
        return Err(SnapFileError::Truncated(path.into()));
    }
    let body = &buf[HEADER..];
    if crc32c::crc32c(body).to_le_bytes() != buf[8..12] {
        return Err(SnapFileError::Checksum(path.into()));
    }
    Snapshot::decode(body).map_err(|e| SnapFileError::Decode(path.into(), e))
}
