//! The simulator's fixed seeds: every run of these must pass (no safety
//! violation, convergence after healing, a linearizable history). The soak
//! command (`cargo run -p keel-sim --release -- --seeds 10000`) runs many
//! more.
//!
//! Each test pins the node count and the storage write mode and lets the
//! seed draw everything else (swarm testing).

use keel_sim::sim::{self, Options, Outcome, Overrides, RunSettings, StorageKind, TraceRecord};
use std::cell::RefCell;
use std::rc::Rc;

/// Seeds per configuration in the default test run.
const SEEDS: u64 = 500;

fn run_seeds(nodes: usize, async_storage_writes: bool) {
    run_seeds_on(nodes, async_storage_writes, StorageKind::Memory, SEEDS);
}

fn run_seeds_on(nodes: usize, async_storage_writes: bool, storage: StorageKind, seeds: u64) {
    let overrides = Overrides {
        nodes: Some(nodes),
        async_storage_writes: Some(async_storage_writes),
        storage: Some(storage),
        ..Overrides::default()
    };
    let mut failures = Vec::new();
    let mut ops = 0;
    for seed in 0..seeds {
        let options = Options::swarm(seed, &overrides);
        let report = sim::run(seed, &options, RunSettings::default());
        ops += report.stats.ops_checked;
        if report.outcome.is_failure() {
            failures.push(report.to_string());
        }
    }
    assert!(failures.is_empty(), "{} failing seeds:\n{}", failures.len(), failures.join("\n"));
    // The runs did real work: many client operations were checked.
    assert!(ops > seeds * 20, "only {ops} operations checked");
}

/// The same runs with keel-wal's real WAL as every node's disk, on a file
/// system that loses power (unsynced writes, torn) at every crash.
#[test]
fn wal_sync_3_nodes() {
    run_seeds_on(3, false, StorageKind::Wal, SEEDS / 2);
}

#[test]
fn wal_async_5_nodes() {
    run_seeds_on(5, true, StorageKind::Wal, SEEDS / 2);
}

#[test]
fn sync_3_nodes() {
    run_seeds(3, false);
}

#[test]
fn async_3_nodes() {
    run_seeds(3, true);
}

#[test]
fn sync_5_nodes() {
    run_seeds(5, false);
}

#[test]
fn async_5_nodes() {
    run_seeds(5, true);
}

/// A run is a pure function of its seed and options: the same trace, the
/// same counters.
#[test]
fn a_seed_replays_exactly() {
    let record = |seed: u64| {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let sink = lines.clone();
        let options = Options::swarm(seed, &Overrides::default());
        let settings = RunSettings {
            sink: Some(Box::new(move |r: &TraceRecord| sink.borrow_mut().push(r.to_string()))),
            ..RunSettings::default()
        };
        let report = sim::run(seed, &options, settings);
        let lines = lines.borrow().clone();
        (report.stats, lines)
    };
    let (stats_a, trace_a) = record(7);
    let (stats_b, trace_b) = record(7);
    assert_eq!(stats_a, stats_b);
    assert_eq!(trace_a, trace_b);
    assert!(trace_a.len() as u64 >= stats_a.steps / 2, "one line per event, or close");
    let (_, other) = record(8);
    assert_ne!(trace_a, other);
}

/// A cluster that cannot converge in time is a liveness failure, reported
/// apart from safety, with the state of each node.
#[test]
fn no_time_to_converge_is_a_liveness_failure() {
    let mut options = Options::swarm(3, &Overrides::default());
    options.liveness_election_timeouts = 0;
    options.steps = 50;
    let report = sim::run(3, &options, RunSettings::default());
    assert!(matches!(&report.outcome, Outcome::Liveness(s) if s.contains("n1:")));
    assert!(report.outcome.is_failure() && !report.outcome.is_safety_failure());
}

/// A failure report names the seed, the options and the last events.
#[test]
fn failure_reports_carry_seed_options_and_events() {
    let mut options = Options::swarm(3, &Overrides::default());
    options.liveness_election_timeouts = 0;
    options.steps = 50;
    let report = sim::run(3, &options, RunSettings::default()).to_string();
    assert!(report.starts_with("seed=3 LIVENESS FAILURE"), "{report}");
    assert!(report.contains("options: nodes="), "{report}");
    assert!(report.contains("last ") && report.contains(" events:"), "{report}");
}
