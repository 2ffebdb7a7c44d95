//! The write-ahead log: a directory of preallocated segment files named
//! `{seq:016x}-{first_index:016x}.wal`, each a [`SegmentHeader`] followed by
//! records. Appends are batched into one write and one sync; a segment is cut
//! when the next batch would not fit, and its first records restate the hard
//! state and the latest snapshot marker, so older segments hold only entries
//! and can be released once a snapshot covers them.

use crate::error::{Result, WalError};
use crate::fs::{FileSystem, read_all};
use crate::record::{self, Decoded, RecordType, SEGMENT_HEADER, SegmentHeader};
use keel::raftpb::{Entry, HardState, SnapshotMetadata};
use prost::Message as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a record's bytes live, so an entry evicted from the cache can be read
/// back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Segment sequence number.
    pub seq: u64,
    /// Byte offset of the record header.
    pub offset: u64,
    /// Total encoded length.
    pub len: u32,
}

/// Identity and sizing of a WAL.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// This node's id; a WAL of another node is refused.
    pub node_id: u64,
    /// The cluster's id; a WAL of another cluster is refused.
    pub cluster_id: u64,
    /// Bytes preallocated per segment (64 MiB by default).
    pub segment_size: u64,
}

impl WalOptions {
    /// Options with the default 64 MiB segments.
    pub fn new(node_id: u64, cluster_id: u64) -> WalOptions {
        WalOptions { node_id, cluster_id, segment_size: 64 << 20 }
    }
}

/// Everything replay found, in log order.
#[derive(Debug, Default)]
pub struct Replay {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The log after the latest snapshot marker, with the records' locations.
    pub entries: Vec<(Entry, Location)>,
    /// Every snapshot marker still in the WAL, oldest first.
    pub snapshots: Vec<SnapshotMetadata>,
    /// Torn tails that were truncated.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct Segment {
    seq: u64,
    first_index: u64,
    path: PathBuf,
}

/// An open WAL, appending at the end of its last segment.
#[derive(Debug)]
pub struct Wal {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: WalOptions,
    segments: Vec<Segment>,
    tail: u64,
    alloc: u64,
    last_index: u64,
    hard_state: HardState,
    snapshot: Option<SnapshotMetadata>,
    /// The batch buffer, kept between appends: a fresh multi-megabyte `Vec`
    /// per append costs a page fault per 4 KiB before a byte is written.
    scratch: Vec<u8>,
}

/// Largest batch buffer kept between appends.
const SCRATCH_KEEP: usize = 64 << 20;

/// The sync that makes an [`Wal::append_unsynced`] durable.
#[derive(Debug)]
#[must_use = "the records are not durable until the sync is waited for"]
pub struct PendingSync {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
}

impl PendingSync {
    /// Syncs the segment written to (one `fdatasync`).
    pub fn wait(self) -> Result<()> {
        self.fs.sync(&self.path).map_err(WalError::io(&self.path))
    }
}

/// One record to append.
#[derive(Debug)]
pub enum WalRecord<'a> {
    /// An entry.
    Entry(&'a Entry),
    /// A hard state.
    HardState(&'a HardState),
    /// A snapshot marker.
    Snapshot(&'a SnapshotMetadata),
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

impl Wal {
    /// Opens (or creates) the WAL in `dir` and replays it.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, opts: WalOptions) -> Result<(Wal, Replay)> {
        fs.create_dir_all(dir).map_err(WalError::io(dir))?;
        let mut segments = Vec::new();
        for name in fs.list(dir).map_err(WalError::io(dir))? {
            if let Some((seq, first_index)) = parse_name(&name) {
                segments.push(Segment { seq, first_index, path: dir.join(name) });
            }
        }
        segments.sort_by_key(|s| s.seq);
        let mut wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments: Vec::new(),
            tail: 0,
            alloc: 0,
            last_index: 0,
            hard_state: HardState::default(),
            snapshot: None,
            scratch: Vec::new(),
        };
        if segments.is_empty() {
            wal.cut()?;
            return Ok((wal, Replay::default()));
        }
        for pair in segments.windows(2) {
            if pair[0].seq.checked_add(1) != Some(pair[1].seq) {
                return Err(WalError::corrupt(
                    &pair[1].path,
                    0,
                    format!("segment {} is missing", pair[0].seq.wrapping_add(1)),
                ));
            }
        }
        let mut replay = Replay::default();
        let last = segments.len() - 1;
        for (i, seg) in segments.iter().enumerate() {
            let (end, alloc) = wal.replay_segment(seg, i == last, &mut replay)?;
            if i == last {
                wal.tail = end;
                wal.alloc = alloc;
            }
        }
        // Checked once everything is read: a segment may restate an older
        // marker than one further on, and start after it (the segments
        // between were released).
        let base = replay.snapshots.last().map_or(0, |s| s.index);
        if let Some((first, _)) = replay.entries.first()
            && Some(first.index) != base.checked_add(1)
        {
            return Err(WalError::corrupt(
                &segments[0].path,
                0,
                format!(
                    "the log starts at entry {} after the snapshot at {base}: a segment is missing",
                    first.index
                ),
            ));
        }
        wal.last_index = replay
            .entries
            .last()
            .map_or_else(|| replay.snapshots.last().map_or(0, |s| s.index), |(e, _)| e.index);
        wal.hard_state = replay.hard_state;
        wal.snapshot = replay.snapshots.last().cloned();
        wal.segments = segments;
        Ok((wal, replay))
    }

    fn replay_segment(
        &self,
        seg: &Segment,
        is_last: bool,
        replay: &mut Replay,
    ) -> Result<(u64, u64)> {
        let buf = read_all(self.fs.as_ref(), &seg.path).map_err(WalError::io(&seg.path))?;
        let header = SegmentHeader::decode(&buf).map_err(|r| WalError::corrupt(&seg.path, 0, r))?;
        if header.node_id != self.opts.node_id || header.cluster_id != self.opts.cluster_id {
            return Err(WalError::Identity {
                path: seg.path.clone(),
                found_node: header.node_id,
                found_cluster: header.cluster_id,
                node: self.opts.node_id,
                cluster: self.opts.cluster_id,
            });
        }
        if header.seq != seg.seq || header.first_index != seg.first_index {
            return Err(WalError::corrupt(
                &seg.path,
                0,
                "segment header does not match its file name",
            ));
        }
        let mut off = SEGMENT_HEADER;
        loop {
            let (reason, extent) = match record::decode(&buf[off..]) {
                Decoded::Record(ty, payload, len) => {
                    let loc = Location { seq: seg.seq, offset: off as u64, len: len as u32 };
                    apply_record(ty, payload, loc, replay)
                        .map_err(|r| WalError::corrupt(&seg.path, off as u64, r))?;
                    off += len;
                    continue;
                }
                Decoded::End if buf[off..].iter().all(|b| *b == 0) => {
                    return Ok((off as u64, buf.len() as u64));
                }
                Decoded::End => {
                    return Err(WalError::corrupt(
                        &seg.path,
                        off as u64,
                        "data after the end of the log",
                    ));
                }
                Decoded::Bad { reason, extent } => (reason, extent),
            };
            // A bad record followed only by zeros, at the end of the last
            // segment, is a write torn by a crash; anything else is corruption.
            let rest_zero = buf[off + extent..].iter().all(|b| *b == 0);
            if !(is_last && rest_zero) {
                return Err(WalError::corrupt(&seg.path, off as u64, reason));
            }
            let msg =
                format!("{}: truncating torn record at offset {off}: {reason}", seg.path.display());
            tracing::warn!("{msg}");
            replay.warnings.push(msg);
            let zeros = vec![0; extent];
            self.fs.write_at(&seg.path, off as u64, &zeros).map_err(WalError::io(&seg.path))?;
            self.fs.sync(&seg.path).map_err(WalError::io(&seg.path))?;
            return Ok((off as u64, buf.len() as u64));
        }
    }

    /// Appends the records as one write followed by one sync (group commit),
    /// cutting a new segment first if they would not fit. Returns each
    /// record's location once it is durable.
    pub fn append(&mut self, records: &[WalRecord<'_>]) -> Result<Vec<Location>> {
        let (locs, sync) = self.append_unsynced(records)?;
        sync.wait()?;
        Ok(locs)
    }

    /// As [`Wal::append`], but the sync is left to the caller, so that it can
    /// run without whatever lock guards this `Wal`. The records are durable
    /// once [`PendingSync::wait`] returns. Several appends may share one
    /// wait (the last one's covers them all: a segment cut syncs the segment
    /// it leaves).
    pub fn append_unsynced(
        &mut self,
        records: &[WalRecord<'_>],
    ) -> Result<(Vec<Location>, PendingSync)> {
        let mut size = 0;
        for r in records {
            let len = match r {
                WalRecord::Entry(e) => e.encoded_len(),
                WalRecord::HardState(h) => h.encoded_len(),
                WalRecord::Snapshot(s) => s.encoded_len(),
            };
            // Refused before anything is written: replay would refuse it.
            if len > record::MAX_RECORD as usize {
                return Err(WalError::Invalid(format!(
                    "a record of {len} bytes is over the WAL's limit of {} bytes",
                    record::MAX_RECORD
                )));
            }
            size += 16 + len;
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.reserve(size);
        let mut lens = Vec::with_capacity(records.len());
        for r in records {
            let before = buf.len();
            match r {
                WalRecord::Entry(e) => record::encode_message(&mut buf, RecordType::Entry, *e),
                WalRecord::HardState(h) => {
                    record::encode_message(&mut buf, RecordType::HardState, *h)
                }
                WalRecord::Snapshot(s) => {
                    record::encode_message(&mut buf, RecordType::Snapshot, *s)
                }
            }
            lens.push((buf.len() - before) as u32);
        }
        if self.tail + buf.len() as u64 > self.opts.segment_size
            && self.tail > self.state_prefix_len()
        {
            // What an earlier unsynced append left in this segment must be
            // durable before a later segment can be.
            if let Some(seg) = self.segments.last() {
                self.fs.sync(&seg.path).map_err(WalError::io(&seg.path))?;
            }
            self.cut()?;
        }
        let locs = self.write(&buf, &lens);
        if buf.capacity() <= SCRATCH_KEEP {
            self.scratch = buf;
        }
        let locs = locs?;
        for r in records {
            match r {
                WalRecord::Entry(e) => self.last_index = e.index,
                WalRecord::HardState(h) => self.hard_state = **h,
                WalRecord::Snapshot(s) => {
                    self.snapshot = Some((*s).clone());
                    self.last_index = self.last_index.max(s.index);
                }
            }
        }
        let path = self.segments.last().map(|seg| seg.path.clone()).unwrap_or_default();
        Ok((locs, PendingSync { fs: Arc::clone(&self.fs), path }))
    }

    fn state_prefix_len(&self) -> u64 {
        let mut buf = Vec::new();
        self.encode_state(&mut buf);
        (SEGMENT_HEADER + buf.len()) as u64
    }

    fn encode_state(&self, buf: &mut Vec<u8>) {
        record::encode(buf, RecordType::HardState, &self.hard_state.encode_to_vec());
        if let Some(s) = &self.snapshot {
            record::encode(buf, RecordType::Snapshot, &s.encode_to_vec());
        }
    }

    fn write(&mut self, buf: &[u8], lens: &[u32]) -> Result<Vec<Location>> {
        let seg = self.segments.last().ok_or_else(|| WalError::Invalid("no segment".into()))?;
        let path = seg.path.clone();
        let end = self.tail + buf.len() as u64;
        if end > self.alloc {
            // Grow first, so a torn record's length always lies inside the file.
            self.fs.preallocate(&path, end).map_err(WalError::io(&path))?;
            self.alloc = end;
        }
        self.fs.write_at(&path, self.tail, buf).map_err(WalError::io(&path))?;
        let mut locs = Vec::with_capacity(lens.len());
        let mut off = self.tail;
        for len in lens {
            locs.push(Location { seq: seg.seq, offset: off, len: *len });
            off += u64::from(*len);
        }
        self.tail = off;
        Ok(locs)
    }

    /// Starts a new segment: preallocated, headed, restating the state, synced,
    /// and with its directory entry synced.
    fn cut(&mut self) -> Result<()> {
        let seq = self.segments.last().map_or(Some(0), |s| s.seq.checked_add(1));
        let (Some(seq), Some(first_index)) = (seq, self.last_index.checked_add(1)) else {
            return Err(WalError::Invalid("segment number or log index out of range".into()));
        };
        let path = self.dir.join(format!("{seq:016x}-{first_index:016x}.wal"));
        let header = SegmentHeader {
            node_id: self.opts.node_id,
            cluster_id: self.opts.cluster_id,
            seq,
            first_index,
        };
        let mut buf = header.encode().to_vec();
        self.encode_state(&mut buf);
        let tmp = self.dir.join(format!("{seq:016x}.wal.tmp"));
        let io = WalError::io(&tmp);
        (|| {
            // A crashed cut may have left a longer file under this name.
            self.fs.set_len(&tmp, 0)?;
            self.fs.preallocate(&tmp, self.opts.segment_size.max(buf.len() as u64))?;
            self.fs.write_at(&tmp, 0, &buf)?;
            self.fs.sync(&tmp)?;
            self.fs.rename(&tmp, &path)?;
            self.fs.sync_dir(&self.dir)
        })()
        .map_err(io)?;
        self.segments.push(Segment { seq, first_index, path });
        self.tail = buf.len() as u64;
        self.alloc = self.opts.segment_size.max(self.tail);
        Ok(())
    }

    /// Removes the segments whose entries are all at or below `index`
    /// (never the last one), oldest first, and syncs the directory.
    pub fn release(&mut self, index: u64) -> Result<()> {
        let mut n = 0;
        while n + 1 < self.segments.len() && self.segments[n + 1].first_index <= index + 1 {
            n += 1;
        }
        for seg in self.segments.drain(..n) {
            self.fs.remove(&seg.path).map_err(WalError::io(&seg.path))?;
        }
        if n > 0 {
            self.fs.sync_dir(&self.dir).map_err(WalError::io(&self.dir))?;
        }
        Ok(())
    }

    /// Reads back and checks the entry record at `loc`.
    pub fn read_entry(&self, loc: Location) -> Result<Entry> {
        let seg = self.segments.iter().find(|s| s.seq == loc.seq);
        let seg =
            seg.ok_or_else(|| WalError::Invalid(format!("segment {} was released", loc.seq)))?;
        let mut buf = vec![0; loc.len as usize];
        self.fs.read_at(&seg.path, loc.offset, &mut buf).map_err(WalError::io(&seg.path))?;
        match record::decode(&buf) {
            Decoded::Record(RecordType::Entry, payload, _) => Entry::decode(payload)
                .map_err(|e| WalError::corrupt(&seg.path, loc.offset, e.to_string())),
            _ => Err(WalError::corrupt(&seg.path, loc.offset, "entry record changed on disk")),
        }
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn apply_record(
    ty: RecordType,
    payload: &[u8],
    loc: Location,
    replay: &mut Replay,
) -> Result<(), String> {
    match ty {
        RecordType::Entry => {
            let e = Entry::decode(payload).map_err(|e| format!("bad entry: {e}"))?;
            if e.index == u64::MAX {
                return Err("entry index out of range".into());
            }
            if e.index <= replay.snapshots.last().map_or(0, |s| s.index) {
                return Ok(()); // Covered by the snapshot.
            }
            let log = &mut replay.entries;
            match log.first().map(|(f, _)| f.index) {
                // Entries are contiguous: an append follows the last one, or
                // overwrites a suffix.
                Some(first) if e.index >= first => {
                    let len = log.len() as u64;
                    if e.index - first > len {
                        return Err(format!(
                            "entry {} leaves a gap after {}",
                            e.index,
                            first + len - 1
                        ));
                    }
                    log.truncate((e.index - first) as usize);
                }
                Some(_) => log.clear(),
                None => {}
            }
            log.push((e, loc));
        }
        RecordType::HardState => {
            replay.hard_state =
                HardState::decode(payload).map_err(|e| format!("bad hard state: {e}"))?;
        }
        RecordType::Snapshot => {
            let s = SnapshotMetadata::decode(payload)
                .map_err(|e| format!("bad snapshot marker: {e}"))?;
            if s.index == u64::MAX {
                return Err("snapshot index out of range".into());
            }
            if let Some(last) = replay.snapshots.last() {
                if *last == s {
                    return Ok(()); // Restated at the start of a segment.
                }
                if s.index <= last.index {
                    return Err(format!(
                        "snapshot marker {} follows the newer marker {}",
                        s.index, last.index
                    ));
                }
            }
            // As `DiskStorage` installs a snapshot: entries after it stay if
            // the log holds it, and all go if the log disagrees or ends
            // before it. A log that starts after it (the segments before
            // were released) holds only entries it does not cover.
            let log = &mut replay.entries;
            if let Some(first) = log.first().map(|(f, _)| f.index)
                && first <= s.index
            {
                let at = (s.index - first) as usize;
                match log.get(at) {
                    Some((e, _)) if e.term == s.term => drop(log.drain(..=at)),
                    _ => log.clear(),
                }
            }
            replay.snapshots.push(s);
        }
    }
    Ok(())
}

/// One record found by [`scan`].
#[derive(Debug, Clone)]
pub struct RecordInfo {
    /// The segment file.
    pub path: PathBuf,
    /// Offset of the record.
    pub offset: u64,
    /// Its type.
    pub ty: RecordType,
    /// Encoded size in bytes.
    pub size: usize,
    /// Index and term for entries and snapshot markers.
    pub index_term: Option<(u64, u64)>,
    /// The hard state, for hard-state records.
    pub hard_state: Option<HardState>,
}

/// Reads every segment in `dir` without changing anything (for `dump` and
/// `verify`): each record, and the torn tail of the last segment if any.
/// Corruption anywhere else is an error naming file and offset.
pub fn scan(fs: &dyn FileSystem, dir: &Path) -> Result<(Vec<RecordInfo>, Option<String>)> {
    let mut names: Vec<String> = fs
        .list(dir)
        .map_err(WalError::io(dir))?
        .into_iter()
        .filter(|n| parse_name(n).is_some())
        .collect();
    names.sort();
    let mut out = Vec::new();
    let mut torn = None;
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name);
        let buf = read_all(fs, &path).map_err(WalError::io(&path))?;
        SegmentHeader::decode(&buf).map_err(|r| WalError::corrupt(&path, 0, r))?;
        let mut off = SEGMENT_HEADER;
        loop {
            match record::decode(&buf[off..]) {
                Decoded::Record(ty, payload, size) => {
                    let bad =
                        |e: prost::DecodeError| WalError::corrupt(&path, off as u64, e.to_string());
                    let (index_term, hard_state) = match ty {
                        RecordType::Entry => Entry::decode(payload)
                            .map(|e| (Some((e.index, e.term)), None))
                            .map_err(bad)?,
                        RecordType::Snapshot => SnapshotMetadata::decode(payload)
                            .map(|s| (Some((s.index, s.term)), None))
                            .map_err(bad)?,
                        RecordType::HardState => {
                            HardState::decode(payload).map(|h| (None, Some(h))).map_err(bad)?
                        }
                    };
                    out.push(RecordInfo {
                        path: path.clone(),
                        offset: off as u64,
                        ty,
                        size,
                        index_term,
                        hard_state,
                    });
                    off += size;
                }
                Decoded::End if buf[off..].iter().all(|b| *b == 0) => break,
                Decoded::End => {
                    return Err(WalError::corrupt(
                        &path,
                        off as u64,
                        "data after the end of the log",
                    ));
                }
                Decoded::Bad { reason, extent } => {
                    if i + 1 == names.len() && buf[off + extent..].iter().all(|b| *b == 0) {
                        torn = Some(format!(
                            "{}: torn record at offset {off}: {reason}",
                            path.display()
                        ));
                        break;
                    }
                    return Err(WalError::corrupt(&path, off as u64, reason));
                }
            }
        }
    }
    Ok((out, torn))
}
