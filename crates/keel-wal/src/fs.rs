//! The file-system operations the WAL and the snapshot files use, behind a
//! trait so the simulator can run the real storage code on a disk that loses
//! power ([`MemFs`]); [`StdFs`] is the real one over `std::fs`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The small set of file operations durable storage needs. Paths are whole
/// file paths; a write to a missing file creates it (its directory entry is
/// durable only after [`sync_dir`](FileSystem::sync_dir)).
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Creates a directory and its missing parents, durably: each new
    /// directory's entry is synced in its parent.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The length of a file.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Fills `buf` from `offset`; fails with `UnexpectedEof` past the end.
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `data` at `offset`, creating the file if needed.
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Sets the length of a file (zero-filling when it grows).
    fn set_len(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Grows a file to at least `len` bytes of zeros with its blocks
    /// reserved, so that later writes and syncs allocate nothing (a sparse
    /// `set_len` leaves block allocation to every `fdatasync`).
    fn preallocate(&self, path: &Path, len: u64) -> io::Result<()> {
        if self.len(path).is_ok_and(|have| have >= len) {
            return Ok(());
        }
        self.set_len(path, len)
    }
    /// Makes the file's data durable (`fdatasync`).
    fn sync(&self, path: &Path) -> io::Result<()>;
    /// Renames a file (atomic; durable after syncing the directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file (durable after syncing the directory).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Reads a whole file; its length comes from the file system, not from data.
pub fn read_all(fs: &dyn FileSystem, path: &Path) -> io::Result<Vec<u8>> {
    let len = usize::try_from(fs.len(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    let mut buf = vec![0; len];
    fs.read_at(path, 0, &mut buf)?;
    Ok(buf)
}

/// The real file system. Open files are cached so that appends do not reopen.
#[derive(Debug, Default)]
pub struct StdFs {
    files: Mutex<HashMap<PathBuf, File>>,
}

impl StdFs {
    /// A file system over `std::fs`.
    pub fn new() -> StdFs {
        StdFs::default()
    }

    fn with_file<T>(&self, path: &Path, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let mut files = lock(&self.files);
        if !files.contains_key(path) {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            files.insert(path.to_path_buf(), file);
        }
        let file = files.get(path).ok_or_else(|| io::Error::other("file cache"))?;
        f(file)
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            self.create_dir_all(parent)?;
        }
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            r => r?,
        }
        // Lost with a power cut until its parent is synced: a WAL directory
        // gone that way would open as a new, empty one.
        File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if !path.exists() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        self.with_file(path, |f| f.read_exact_at(buf, offset))
    }
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.with_file(path, |f| f.write_all_at(data, offset))
    }
    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        self.with_file(path, |f| f.set_len(len))
    }
    #[cfg(target_os = "linux")]
    fn preallocate(&self, path: &Path, len: u64) -> io::Result<()> {
        use nix::fcntl::{FallocateFlags, fallocate};
        use std::os::fd::AsRawFd;
        let len = i64::try_from(len).map_err(|_| io::Error::other("length beyond i64"))?;
        self.with_file(path, |f| {
            // Mode 0 allocates and extends the size; bytes already there stay.
            match fallocate(f.as_raw_fd(), FallocateFlags::empty(), 0, len) {
                Ok(()) => Ok(()),
                // A file system without fallocate gets a sparse file.
                Err(nix::errno::Errno::EOPNOTSUPP) => {
                    if f.metadata()?.len() < len as u64 {
                        f.set_len(len as u64)
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(io::Error::from(e)),
            }
        })
    }
    fn sync(&self, path: &Path) -> io::Result<()> {
        self.with_file(path, |f| f.sync_data())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = lock(&self.files);
        files.remove(from);
        files.remove(to);
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.files).remove(path);
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One not-yet-durable change to a file's bytes.
#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

fn apply(data: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write(off, bytes) => {
            let off = *off as usize;
            if data.len() < off + bytes.len() {
                data.resize(off + bytes.len(), 0);
            }
            data[off..off + bytes.len()].copy_from_slice(bytes);
        }
        Pending::SetLen(len) => data.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct MemState {
    // Ordered: a power loss draws from its generator inode by inode, so the
    // order must not vary from one process to the next.
    inodes: BTreeMap<u64, Inode>,
    dir: BTreeMap<PathBuf, u64>,
    durable_dir: BTreeMap<PathBuf, u64>,
    next_inode: u64,
    fail_syncs: bool,
    syncs: u64,
}

/// An in-memory file system that can lose power: [`power_loss`](MemFs::power_loss)
/// keeps only synced bytes and durable directory entries, plus a random prefix
/// of the unsynced writes in order, the last of which may be torn at any byte.
/// Directories are implicit: every path's parent exists.
#[derive(Debug, Default)]
pub struct MemFs {
    state: Mutex<MemState>,
}

impl MemFs {
    /// An empty file system.
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// While set, every `sync` fails and syncs nothing: the write it should
    /// have covered stays volatile (for tests of failures mid-batch).
    pub fn set_fail_syncs(&self, fail: bool) {
        lock(&self.state).fail_syncs = fail;
    }

    /// How many file syncs succeeded so far.
    pub fn sync_count(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// Cuts the power. `seed` chooses how much unsynced data survives; with
    /// `tear`, the last surviving write may be cut at an arbitrary byte.
    pub fn power_loss(&self, seed: u64, tear: bool) {
        let mut rng = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut st = lock(&self.state);
        st.dir = st.durable_dir.clone();
        let live: Vec<u64> = st.dir.values().copied().collect();
        st.inodes.retain(|id, _| live.contains(id));
        for inode in st.inodes.values_mut() {
            let mut data = inode.durable.clone();
            let keep = (next() % (inode.pending.len() as u64 + 1)) as usize;
            for op in &inode.pending[..keep] {
                apply(&mut data, op);
            }
            if tear
                && keep < inode.pending.len()
                && let Pending::Write(off, bytes) = &inode.pending[keep]
            {
                let cut = (next() % (bytes.len() as u64 + 1)) as usize;
                apply(&mut data, &Pending::Write(*off, bytes[..cut].to_vec()));
            }
            inode.data = data.clone();
            inode.durable = data;
            inode.pending.clear();
        }
    }

    /// Overwrites bytes directly and durably (tests plant corruption with it).
    pub fn corrupt(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_at(path, offset, data)?;
        let mut st = lock(&self.state);
        let id = *st.dir.get(path).ok_or_else(not_found)?;
        st.durable_dir.insert(path.to_path_buf(), id);
        let inode = st.inodes.get_mut(&id).ok_or_else(not_found)?;
        inode.durable = inode.data.clone();
        inode.pending.clear();
        Ok(())
    }

    fn modify(&self, path: &Path, op: Pending) -> io::Result<()> {
        let mut st = lock(&self.state);
        let id = match st.dir.get(path) {
            Some(id) => *id,
            None => {
                let id = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(id, Inode::default());
                st.dir.insert(path.to_path_buf(), id);
                id
            }
        };
        let inode = st.inodes.get_mut(&id).ok_or_else(not_found)?;
        apply(&mut inode.data, &op);
        inode.pending.push(op);
        Ok(())
    }
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl FileSystem for MemFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = lock(&self.state);
        Ok(st
            .dir
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        let st = lock(&self.state);
        let id = st.dir.get(path).ok_or_else(not_found)?;
        Ok(st.inodes.get(id).ok_or_else(not_found)?.data.len() as u64)
    }
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let st = lock(&self.state);
        let id = st.dir.get(path).ok_or_else(not_found)?;
        let data = &st.inodes.get(id).ok_or_else(not_found)?.data;
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let end = start.checked_add(buf.len()).filter(|e| *e <= data.len());
        let end = end.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        self.modify(path, Pending::Write(offset, data.to_vec()))
    }
    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        self.modify(path, Pending::SetLen(len))
    }
    fn sync(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.fail_syncs {
            return Err(io::Error::other("injected sync failure"));
        }
        st.syncs += 1;
        let id = *st.dir.get(path).ok_or_else(not_found)?;
        let inode = st.inodes.get_mut(&id).ok_or_else(not_found)?;
        inode.durable = inode.data.clone();
        inode.pending.clear();
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        let id = st.dir.remove(from).ok_or_else(not_found)?;
        st.dir.insert(to.to_path_buf(), id);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.state).dir.remove(path).map(|_| ()).ok_or_else(not_found)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.fail_syncs {
            return Err(io::Error::other("injected sync failure"));
        }
        st.durable_dir.retain(|p, _| p.parent() != Some(dir));
        let entries: Vec<(PathBuf, u64)> = st
            .dir
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable_dir.extend(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_preallocate_reserves_blocks_and_keeps_bytes() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("seg");
        let fs = StdFs::new();
        fs.write_at(&path, 0, b"head")?;
        fs.preallocate(&path, 1 << 20)?;
        assert_eq!(fs.len(&path)?, 1 << 20);
        let mut head = [0u8; 4];
        fs.read_at(&path, 0, &mut head)?;
        assert_eq!(&head, b"head");
        let mut tail = [0xffu8; 16];
        fs.read_at(&path, (1 << 20) - 16, &mut tail)?;
        assert_eq!(tail, [0u8; 16]);
        // Blocks are reserved, not a sparse hole (where the file system
        // supports fallocate; tmpfs and ext4 do).
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let blocks = std::fs::metadata(&path)?.blocks();
            assert!(blocks * 512 >= 1 << 20, "only {blocks} blocks allocated");
        }
        // Never shrinks.
        fs.preallocate(&path, 16)?;
        assert_eq!(fs.len(&path)?, 1 << 20);
        Ok(())
    }

    #[test]
    fn memfs_preallocate_grows_with_zeros() -> io::Result<()> {
        let fs = MemFs::new();
        let path = Path::new("/d/seg");
        fs.write_at(path, 0, b"ab")?;
        fs.preallocate(path, 8)?;
        let mut all = [1u8; 8];
        fs.read_at(path, 0, &mut all)?;
        assert_eq!(&all, b"ab\0\0\0\0\0\0");
        Ok(())
    }
}
