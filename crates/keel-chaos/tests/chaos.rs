//! Short chaos runs against real keel-kv processes (127.0.0.1, OS-chosen
//! ports, every wait bounded, only our own children signalled), and the
//! proof that the test has teeth: planted bugs are caught.
//!
//! The runs take one at a time (a lock), so that two clusters never compete
//! for the machine's cores; the whole file takes about a minute. Longer runs
//! are `cargo run -p keel-chaos --release -- --duration 300` (see README).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use keel_chaos::{Kind, Options, Program, Report};
use keel_sim::linearizability::Verdict;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn options(dir: &tempfile::TempDir, secs: u64, nodes: u64, seed: u64, kinds: &[Kind]) -> Options {
    let program =
        Program { exe: env!("CARGO_BIN_EXE_keel-chaos").into(), prefix: vec!["keel-kv".into()] };
    let mut o = Options::new(program, dir.path().to_path_buf(), Duration::from_secs(secs));
    o.nodes = nodes;
    o.seed = seed;
    o.kinds = kinds.iter().copied().collect();
    o.check_timeout = Duration::from_secs(120);
    o.member_log = "info".into();
    o
}

/// Runs, prints the summary (shown when a test fails), and keeps the output
/// directory if `keep` says the run went wrong.
fn run(o: Options, dir: tempfile::TempDir, keep: impl Fn(&Report) -> bool) -> Report {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let report = runtime.block_on(keel_chaos::run(o)).unwrap();
    println!("{}", report.summary);
    if keep(&report) {
        println!("kept the history, logs and data in {}", dir.keep().display());
    }
    report
}

#[test]
fn a_short_run_with_every_fault_kind_is_linearizable() {
    let all = [Kind::Kill, Kind::Pause, Kind::Partition, Kind::Link, Kind::Membership];
    let dir = tempfile::tempdir().unwrap();
    let o = options(&dir, 20, 5, 20261204, &all);
    let r = run(o, dir, |r| r.exit_code() != 0);
    assert_eq!(r.verdict, Verdict::Linearizable, "{}", r.summary);
    assert!(r.lost_writes.is_empty(), "{}", r.summary);
    assert!(r.convergence.is_ok(), "{}", r.summary);
    assert!(r.crashed.is_empty(), "{}", r.summary);
    assert_eq!(r.exit_code(), 0);
    let kinds: BTreeSet<String> = r.faults_by_kind().into_keys().collect();
    for k in ["kill", "pause", "partition", "link", "membership"] {
        assert!(kinds.contains(k), "no {k} fault in the run:\n{}", r.summary);
    }
    // The clients got work done through the faults.
    assert!(r.counts.get("put ok").copied().unwrap_or(0) > 100, "{}", r.summary);
    assert!(r.counts.get("get ok").copied().unwrap_or(0) > 100, "{}", r.summary);
}

fn assert_caught(bug: &str, kinds: &[Kind], seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&dir, 15, 3, seed, kinds);
    o.planted_bug = Some(bug.into());
    let r = run(o, dir, |r| r.exit_code() != 1);
    assert!(
        matches!(r.verdict, Verdict::NotLinearizable { .. }),
        "planted bug {bug} not caught in 15 s:\n{}",
        r.summary
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn a_put_acknowledged_before_commit_is_caught() {
    assert_caught("ack-before-commit", &[Kind::Kill, Kind::Partition], 3);
}

#[test]
fn reads_served_without_read_index_are_caught() {
    assert_caught("local-reads", &[Kind::Partition], 4);
}
