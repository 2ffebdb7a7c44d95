//! `keel-wal dump <dir>` and `keel-wal verify <dir>`: inspect a data
//! directory written by `DiskStorage`, as etcd's `etcd-dump-logs`.

use clap::{Parser, Subcommand};
use keel_wal::snap::SnapStore;
use keel_wal::wal::scan;
use keel_wal::{FileSystem, StdFs};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Inspect a Keel WAL data directory")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the snapshot files, the records (index, term, type, size) and the last hard state.
    Dump {
        /// The data directory (holding wal/ and snap/).
        dir: PathBuf,
    },
    /// Check every checksum (WAL records and snapshot files); exit 1 on
    /// corruption, naming file and offset.
    Verify {
        /// The data directory (holding wal/ and snap/).
        dir: PathBuf,
    },
}

/// Writes the report; `Err` only when stdout is gone (for example a closed
/// pipe under `| head`), which ends the command quietly.
fn report(out: &mut impl Write, dir: &Path, dump: bool) -> std::io::Result<ExitCode> {
    let mut ok = true;
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let snap_dir = dir.join("snap");
    match SnapStore::open(Arc::clone(&fs), &snap_dir, usize::MAX) {
        _ if !snap_dir.is_dir() => {}
        Ok(snaps) => {
            for name in snaps.names().unwrap_or_default() {
                match snaps.load(&name) {
                    Ok(Ok(snap)) => {
                        let m = &snap.metadata;
                        if dump {
                            writeln!(
                                out,
                                "snapshot {name}: index={} term={} voters={:?} learners={:?} {} bytes",
                                m.index,
                                m.term,
                                m.conf_state.voters,
                                m.conf_state.learners,
                                snap.data.len()
                            )?;
                        }
                    }
                    Ok(Err(e)) => {
                        ok = false;
                        writeln!(out, "error: {e}")?;
                    }
                    Err(e) => {
                        ok = false;
                        writeln!(out, "error: {e}")?;
                    }
                }
            }
        }
        Err(e) => {
            ok = false;
            writeln!(out, "error: {e}")?;
        }
    }
    match scan(fs.as_ref(), &dir.join("wal")) {
        Ok((records, torn)) => {
            let mut hs = None;
            for r in &records {
                if dump {
                    let (index, term) = r
                        .index_term
                        .map_or(("-".into(), "-".into()), |(i, t)| (i.to_string(), t.to_string()));
                    writeln!(out, "{index:>10} {term:>6} {:?} {} bytes", r.ty, r.size)?;
                }
                hs = r.hard_state.or(hs);
            }
            if let Some(hs) = hs {
                writeln!(
                    out,
                    "hard state: term={} vote={} commit={}",
                    hs.term, hs.vote, hs.commit
                )?;
            }
            if let Some(t) = torn {
                writeln!(out, "warning: {t} (truncated on next open)")?;
            }
            writeln!(out, "{} records OK", records.len())?;
        }
        Err(e) => {
            ok = false;
            writeln!(out, "error: {e}")?;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (dir, dump) = match cli.cmd {
        Cmd::Dump { dir } => (dir, true),
        Cmd::Verify { dir } => (dir, false),
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout is not the data's fault: stop quietly.
    report(&mut out, &dir, dump).unwrap_or(ExitCode::SUCCESS)
}
