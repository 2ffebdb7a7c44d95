//! `keel-wal dump <dir>` and `keel-wal verify <dir>`: inspect a data
//! directory written by `DiskStorage`, as etcd's `etcd-dump-logs`.
#![allow(clippy::print_stdout, reason = "a command-line tool prints its report")]

use clap::{Parser, Subcommand};
use keel_wal::StdFs;
use keel_wal::wal::scan;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Inspect a Keel WAL data directory")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the records (index, term, type, size) and the last hard state.
    Dump {
        /// The data directory (holding wal/ and snap/).
        dir: PathBuf,
    },
    /// Check every checksum; exit 1 on corruption, naming file and offset.
    Verify {
        /// The data directory (holding wal/ and snap/).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (dir, dump) = match cli.cmd {
        Cmd::Dump { dir } => (dir, true),
        Cmd::Verify { dir } => (dir, false),
    };
    let fs = StdFs::new();
    match scan(&fs, &dir.join("wal")) {
        Ok((records, torn)) => {
            let mut hs = None;
            for r in &records {
                if dump {
                    let (index, term) = r
                        .index_term
                        .map_or(("-".into(), "-".into()), |(i, t)| (i.to_string(), t.to_string()));
                    println!("{index:>10} {term:>6} {:?} {} bytes", r.ty, r.size);
                }
                hs = r.hard_state.or(hs);
            }
            if let Some(hs) = hs {
                println!("hard state: term={} vote={} commit={}", hs.term, hs.vote, hs.commit);
            }
            if let Some(t) = torn {
                println!("warning: {t} (truncated on next open)");
            }
            println!("{} records OK", records.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
