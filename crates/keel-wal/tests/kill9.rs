//! Real `kill -9`: a child process (this test binary re-run with an
//! environment variable) appends to a WAL on the real file system and prints
//! each synced index; the parent kills it at a random moment, reopens the
//! directory and checks every reported index is there. Runs `KEEL_WAL_KILLS`
//! rounds (default 20).

use keel::Storage as _;
use keel::raftpb::{Entry, HardState};
use keel_wal::{DiskOptions, DiskStorage, PersistRequest, StdFs};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "KEEL_WAL_KILL9_CHILD_DIR";

fn opts() -> DiskOptions {
    let mut o = DiskOptions::new(3, 9);
    o.wal.segment_size = 1 << 20;
    o
}

/// The child side: runs only when the parent sets the variable.
#[test]
fn child_append_loop() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return Ok(()) };
    let s = DiskStorage::open(Arc::new(StdFs::new()), Path::new(&dir), opts())?;
    let mut next = s.last_index()? + 1;
    let mut out = std::io::stdout().lock();
    loop {
        let ents: Vec<Entry> = (next..next + 1 + next % 7)
            .map(|i| Entry {
                index: i,
                term: 1,
                data: vec![i as u8; 100 + (i % 300) as usize].into(),
                ..Default::default()
            })
            .collect();
        let last = next + ents.len() as u64 - 1;
        let hs = HardState { term: 1, vote: 3, commit: last };
        s.persist(PersistRequest { hard_state: Some(hs), entries: &ents, snapshot: None })?;
        writeln!(out, "synced {last}")?;
        out.flush()?;
        next = last + 1;
    }
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "a bound on waiting for a real child process is wall-clock by nature"
)]
fn sigkill_never_loses_a_synced_index() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var(CHILD_DIR).is_ok() {
        return Ok(());
    }
    let rounds: u64 =
        std::env::var("KEEL_WAL_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("keel-wal-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe()?;
    let mut reported = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(&exe)
            .args(["--exact", "child_append_loop", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Read a random number of reports (1..=200), bounded in time, then kill.
        let want = 1 + rng % 200;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        while seen < want && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(n) =
                        line.strip_prefix("synced ").and_then(|n| n.parse::<u64>().ok())
                    {
                        reported = reported.max(n);
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        let s = DiskStorage::open(Arc::new(StdFs::new()), &dir, opts())?;
        let last = s.last_index()?;
        assert!(last >= reported, "round {round}: reported {reported} synced, found only {last}");
        assert!(s.hard_state().commit >= reported, "round {round}: hard state went back");
        let ents = s.entries_vec(1, last + 1, u64::MAX)?;
        assert!(ents.iter().enumerate().all(
            |(i, e)| e.index == i as u64 + 1 && e.data.len() == 100 + (e.index % 300) as usize
        ));
    }
    assert!(reported > 0, "the child never reported a synced index");
    // What `keel-wal dump/verify` reads: every record checks out read-only.
    let (records, _torn) = keel_wal::wal::scan(&StdFs::new(), &dir.join("wal"))?;
    assert!(
        records.iter().filter(|r| r.ty == keel_wal::record::RecordType::Entry).count() as u64
            >= reported
    );
    if let Ok(keep) = std::env::var("KEEL_WAL_KEEP_DIR") {
        std::fs::rename(&dir, keep)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
