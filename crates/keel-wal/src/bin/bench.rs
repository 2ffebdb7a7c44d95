//! Throughput and latency of `DiskStorage::persist` on the real disk, against
//! the disk's own floor measured in the same run: one write plus one
//! `fdatasync` of the same size on a preallocated file.
//!
//! Run: `cargo run --release -p keel-wal --bin keel-wal-bench [-- --dir /path --secs 3]`
//! (default: a temp dir under the current directory, so it measures the disk
//! the project is on, not a tmpfs).
#![allow(clippy::print_stdout, clippy::disallowed_methods, reason = "a benchmark prints timings")]

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use keel::raftpb::{Entry, HardState};
use keel_wal::{DiskOptions, DiskStorage, FileSystem, PersistRequest, StdFs};

#[derive(Parser)]
#[command(about = "keel-wal persist throughput and latency against raw fdatasync")]
struct Args {
    /// Where to write (default: a new directory under the current one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds per case.
    #[arg(long, default_value_t = 3)]
    secs: u64,
    /// Run only these cases, as BATCHxSIZE (e.g. `--only 4096x4096`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

struct Row {
    name: String,
    ops: u64,
    bytes: u64,
    secs: f64,
    hist: Histogram<u64>,
}

impl Row {
    fn new(name: String) -> Row {
        Row { name, ops: 0, bytes: 0, secs: 0.0, hist: hist() }
    }

    fn print(&self) {
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<28} {:>9.0} syncs/s {:>9.1} MB/s   p50 {:>7.3} ms  p99 {:>7.3} ms",
            self.name,
            self.ops as f64 / self.secs,
            self.bytes as f64 / self.secs / 1e6,
            us(0.5) / 1000.0,
            us(0.99) / 1000.0,
        );
    }
}

fn hist() -> Histogram<u64> {
    // Nanoseconds, 1 µs .. 60 s.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn raw_fdatasync(dir: &std::path::Path, size: usize, secs: u64) -> std::io::Result<Row> {
    let path = dir.join("raw.bin");
    let mut f =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let span = (64u64 << 20).max(2 * size as u64);
    f.set_len(span)?;
    f.sync_all()?;
    let buf = vec![0x5au8; size];
    let mut row = Row::new(format!("raw write+fdatasync {size} B"));
    let start = Instant::now();
    let mut off = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        if off + size as u64 > span {
            off = 0;
        }
        f.seek(SeekFrom::Start(off))?;
        f.write_all(&buf)?;
        f.sync_data()?;
        off += size as u64;
        let _ = row.hist.record(t.elapsed().as_nanos() as u64);
        row.ops += 1;
        row.bytes += size as u64;
    }
    row.secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(row)
}

/// Sequential writes of `size` bytes, each followed by one `fdatasync`, into
/// fresh preallocated files of 256 MiB (a new one when full, the old one
/// removed): what an append-only log does, unlike overwriting blocks that
/// are already allocated and written (`raw_fdatasync`), which skips the
/// file system's extent conversion and is faster on ext4.
fn fresh_sequential(dir: &std::path::Path, size: usize, secs: u64) -> std::io::Result<Row> {
    let fs = StdFs::new();
    let span = (256u64 << 20).max(2 * size as u64);
    let buf = vec![0x5au8; size];
    let mut row = Row::new(format!("fresh write+fdatasync {size} B"));
    let mut file = 0u64;
    let path = |n: u64| dir.join(format!("fresh-{n}.bin"));
    fs.preallocate(&path(file), span)?;
    let start = Instant::now();
    let mut off = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        if off + size as u64 > span {
            fs.remove(&path(file))?;
            file += 1;
            fs.preallocate(&path(file), span)?;
            off = 0;
        }
        let t = Instant::now();
        fs.write_at(&path(file), off, &buf)?;
        fs.sync(&path(file))?;
        off += size as u64;
        let _ = row.hist.record(t.elapsed().as_nanos() as u64);
        row.ops += 1;
        row.bytes += size as u64;
    }
    row.secs = start.elapsed().as_secs_f64();
    fs.remove(&path(file))?;
    Ok(row)
}

fn persist(dir: &std::path::Path, batch: usize, size: usize, secs: u64) -> Result<Row, String> {
    let sub = dir.join(format!("wal-{batch}x{size}"));
    let storage = DiskStorage::open(Arc::new(StdFs::new()), &sub, DiskOptions::new(1, 1))
        .map_err(|e| e.to_string())?;
    let payload = Bytes::from(vec![0xa5u8; size]);
    let name = format!("persist {batch} x {size} B");
    let mut row = Row::new(name);
    let start = Instant::now();
    let mut index = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let entries: Vec<Entry> = (0..batch)
            .map(|_| {
                index += 1;
                Entry::new(1, index, payload.clone())
            })
            .collect();
        let hs = HardState { term: 1, vote: 1, commit: index };
        let t = Instant::now();
        storage
            .persist(PersistRequest { hard_state: Some(hs), entries: &entries, snapshot: None })
            .map_err(|e| e.to_string())?;
        let _ = row.hist.record(t.elapsed().as_nanos() as u64);
        row.ops += 1;
        row.bytes += (batch * size) as u64;
        // Keep the log (and the disk) bounded, as a server's compaction does.
        if index % 50_000 < batch as u64 && index > 100_000 {
            let snap_at = index - 1;
            storage
                .create_snapshot(snap_at, Default::default(), Bytes::new())
                .map_err(|e| e.to_string())?;
            storage.compact(snap_at).map_err(|e| e.to_string())?;
        }
    }
    row.secs = start.elapsed().as_secs_f64();
    drop(storage);
    let _ = std::fs::remove_dir_all(&sub);
    Ok(row)
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let base = match args.dir {
        Some(d) => d,
        None => std::env::current_dir().map_err(|e| e.to_string())?,
    };
    let dir = tempfile::Builder::new()
        .prefix("keel-wal-bench")
        .tempdir_in(&base)
        .map_err(|e| e.to_string())?;
    println!("keel-wal-bench in {} ({} s per case)", dir.path().display(), args.secs);
    // The disk's sequential bandwidth: 16 MiB writes, each followed by one
    // sync, into fresh preallocated files (the log's case) and over blocks
    // already written (the disk's best case).
    let mbps = |r: &Row| r.bytes as f64 / r.secs / 1e6;
    let seq = fresh_sequential(dir.path(), 16 << 20, args.secs).map_err(|e| e.to_string())?;
    seq.print();
    let seq_mbps = mbps(&seq);
    let over = raw_fdatasync(dir.path(), 16 << 20, args.secs).map_err(|e| e.to_string())?;
    over.print();
    let over_mbps = mbps(&over);
    for size in [128usize, 4096] {
        for batch in [1usize, 16, 256, 4096] {
            if !args.only.is_empty() && !args.only.contains(&format!("{batch}x{size}")) {
                continue;
            }
            // The same bytes as the WAL writes: payload plus about 32 bytes of
            // record framing per entry.
            let raw = raw_fdatasync(dir.path(), batch * (size + 32), args.secs)
                .map_err(|e| e.to_string())?;
            raw.print();
            let row = persist(dir.path(), batch, size, args.secs)?;
            row.print();
            let p50 = |r: &Row| r.hist.value_at_quantile(0.5).max(1) as f64;
            println!(
                "{:<28} persist p50 / raw p50: {:.2}   MB/s / sequential: {:.0}% \
                 (fresh files), {:.0}% (overwrite)",
                "",
                p50(&row) / p50(&raw),
                100.0 * mbps(&row) / seq_mbps,
                100.0 * mbps(&row) / over_mbps
            );
        }
    }
    Ok(())
}
